"""Replaying a recording as a stream: paced in real time (or faster, or as fast as it goes),
once or in a loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime

from monitor.sources.base import IQBlock, Source
from monitor.sources.files import Recording

__all__ = ["ReplaySource"]

BLOCK_SECONDS = 0.02


class ReplaySource(Source):
    """A recording, block by block.

    Args:
        recording: an opened recording.
        speed: stream seconds per wall second (1: real time); None: as fast as the pipeline
            takes it.
        loop: start again at the end (the first block of each pass is marked ``retuned``: the
            content jumps).

    The first sample's time is the recording's ``core:datetime`` where its metadata has one,
    else the moment the replay starts.
    """

    live = False

    def __init__(self, recording: Recording, speed: float | None = None,
                 loop: bool = False) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.recording = recording
        self.speed = speed
        self.loop = loop
        self._stop = threading.Event()
        self.block_samples = max(4096, round(recording.sample_rate * BLOCK_SECONDS))

    @property
    def sample_rate(self) -> float:
        return self.recording.sample_rate

    @property
    def center_freq(self) -> float:
        return self.recording.center_freq

    def describe(self) -> str:
        return f"replay {self.recording.path.name}"

    def open(self) -> None:
        self._stop.clear()

    def close(self) -> None:
        self._stop.set()

    def blocks(self) -> Iterator[IQBlock]:
        rec = self.recording
        rate = rec.sample_rate
        t0 = _recording_time(rec.meta) or time.time()
        wall0 = time.monotonic()
        emitted = 0
        first_pass = True
        while not self._stop.is_set() and (first_pass or self.loop):
            for start in range(0, len(rec), self.block_samples):
                if self._stop.is_set():
                    return
                samples = rec.read(start, self.block_samples)
                if self.speed is not None:
                    due = wall0 + emitted / rate / self.speed
                    if self._stop.wait(max(0.0, due - time.monotonic())):
                        return
                yield IQBlock(samples, emitted, rec.center_freq, rate, t0 + emitted / rate,
                              retuned=start == 0 and not first_pass)
                emitted += len(samples)
            first_pass = False


def _recording_time(meta: dict) -> float | None:
    """POSIX time of the first sample from SigMF ``core:datetime``, if the metadata has it."""
    captures = meta.get("captures") or [{}]
    stamp = captures[0].get("core:datetime") if isinstance(captures[0], dict) else None
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None

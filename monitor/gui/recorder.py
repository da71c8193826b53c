"""Recording switched on and off from the window while the pipeline runs.

:class:`Recorder` is one block sink that stays in the pipeline for the whole run; starting and
stopping swaps the :class:`~monitor.recordings.StreamingRecording` inside it under a lock, so the
processing thread never writes to a recording the window has just closed. A recording begins with
the next block the pipeline processes and keeps the stream's sample indices (its first capture
segment carries ``core:global_index``).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from monitor.occupancy.logs import validate_output_path
from monitor.recordings import StreamingRecording
from monitor.sources.base import IQBlock

__all__ = ["Recorder"]

log = logging.getLogger(__name__)


class Recorder:
    """A block sink that records when asked to.

    Args:
        sample_rate: the stream's sample rate.
        center_freq: its centre frequency when recording starts (each capture segment carries
            the frequency of its blocks).
        folder: where :meth:`start` puts a recording it names itself.
    """

    def __init__(self, sample_rate: float, center_freq: float, folder: Path) -> None:
        self.sample_rate = sample_rate
        self.center_freq = center_freq
        self.folder = folder
        self._lock = threading.Lock()
        self._recording: StreamingRecording | None = None
        self._path: Path | None = None

    @property
    def path(self) -> Path | None:
        """The recording being written (its ``.sigmf-meta``); None when not recording."""
        return self._path

    def start(self, path: Path | None = None) -> Path:
        """Start recording into ``path``, or a new ``prmnet-YYYYmmdd-HHMMSS.sigmf-meta`` in
        :attr:`folder`; a recording already going is finished first.

        Raises:
            InputError: the path cannot be written.
        """
        if path is None:
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
            path = self.folder / f"prmnet-{stamp}.sigmf-meta"
        validate_output_path(path, "recording")
        recording = StreamingRecording(path, self.sample_rate, self.center_freq)
        self.stop()
        with self._lock:
            self._recording, self._path = recording, recording.meta_path
        log.info("recording to %s", recording.meta_path)
        return recording.meta_path

    def stop(self) -> Path | None:
        """Finish the recording (its metadata written); returns its path, None if none was
        going."""
        with self._lock:
            recording, path = self._recording, self._path
            self._recording = self._path = None
            if recording is not None:
                recording.close()
        if path is not None:
            log.info("recorded %s", path)
        return path

    def write_block(self, block: IQBlock) -> None:
        """Called by the processing thread with every block."""
        with self._lock:
            if self._recording is not None:
                self._recording.write_block(block)

    def close(self) -> None:
        """End of the run: finish any recording."""
        self.stop()

"""The synthetic radio: a built-in world of LTE and NR carriers, streamed in real time.

What a new user sees first, on any machine. The world is a band plan of transmitters at absolute
RF frequencies (band 3 around 1.8 GHz, band 7 around 2.6 GHz, n78 around 3.5 GHz), some always
on, some coming and going. The radio looks at ``sample_rate`` around ``center_freq`` and can be
retuned while it runs.

Generating 3GPP waveforms is far slower than real time on a CPU, so on every (re)tune the radio
renders a loop of ``LOOP_SECONDS`` of each transmitter in view (a multiple of the 10 ms radio
frame and of every SSB period), plus a loop of receiver noise, and then streams by adding the
loops of the transmitters that are on: a few additions per sample. The render is the settle time
of a retune; the stream goes on from where it was, with the next block marked ``retuned``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from monitor.errors import InputError
from monitor.sources.base import IQBlock, Source
from monitor.synth.scene import CarrierSpec, carrier_signal

__all__ = ["BAND_PLAN", "SyntheticSource", "Transmitter"]

LOOP_SECONDS = 0.16
BLOCK_SECONDS = 0.02
#: Full-scale level of the noise floor at the nominal gain: unit-power noise is scaled to this.
NOISE_DBFS = -40.0
#: The gain ``auto`` stands for; another gain moves every level by the difference.
NOMINAL_GAIN_DB = 20.0


@dataclass(frozen=True)
class Transmitter:
    """A carrier of the synthetic world.

    Attributes:
        label: ``"LTE"`` or ``"NR"``.
        rf_hz: centre frequency.
        bandwidth_hz: channel bandwidth.
        snr_db: SNR per resource element at the radio (see ``monitor.synth.scene``).
        scs: subcarrier spacing.
        options: generator options.
        mean_on_s: mean time on air; None: always on.
        mean_off_s: mean time off air.
    """

    label: str
    rf_hz: float
    bandwidth_hz: float
    snr_db: float
    scs: float = 15e3
    options: tuple[tuple[str, object], ...] = ()
    mean_on_s: float | None = None
    mean_off_s: float = 3.0


BAND_PLAN = (
    Transmitter("LTE", 1815.0e6, 20e6, 18.0, options=(("load", 0.5), ("cell_id", 142))),
    Transmitter("LTE", 1837.5e6, 10e6, 12.0, options=(("load", 0.2), ("cell_id", 86))),
    Transmitter("NR", 1860.0e6, 20e6, 14.0, 15e3, options=(("load", 0.4),),
                mean_on_s=6.0, mean_off_s=3.0),
    Transmitter("LTE", 1877.5e6, 5e6, 9.0, options=(("load", 0.7),), mean_on_s=4.0,
                mean_off_s=4.0),
    Transmitter("LTE", 2645.0e6, 20e6, 15.0, options=(("load", 0.4),)),
    Transmitter("LTE", 2585.0e6, 20e6, 16.0,
                options=(("load", 0.3), ("duplex", "tdd"), ("tdd_config", 2))),
    Transmitter("NR", 3500.0e6, 100e6, 12.0, 30e3,
                options=(("load", 0.3), ("tdd_pattern", "DDDSU"))),
    Transmitter("NR", 3440.0e6, 20e6, 10.0, 30e3, options=(("load", 0.6),),
                mean_on_s=8.0, mean_off_s=2.0),
)


class SyntheticSource(Source):
    """The built-in LTE/NR world, in real time.

    Args:
        center_freq: where the radio looks, Hz.
        sample_rate: samples per second.
        seed: the world's randomness (the same seed streams the same samples).
        realtime: pace the blocks at the sample rate; False: as fast as they are taken.
        plan: the transmitters of the world.
    """

    live = True

    def __init__(self, center_freq: float = 1.84e9, sample_rate: float = 30.72e6,
                 seed: int = 0, realtime: bool = True,
                 plan: tuple[Transmitter, ...] = BAND_PLAN) -> None:
        if not sample_rate > 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        self._fc = float(center_freq)
        self._rate = float(sample_rate)
        self._rng = np.random.default_rng(seed)
        self.realtime = realtime
        self.plan = plan
        self._stop = threading.Event()
        self._retune_to: float | None = None
        self._lock = threading.Lock()
        self._loops: list[tuple[int, np.ndarray]] = []  # (index in the plan, loop)
        self._noise = np.zeros(0, dtype=np.complex64)
        self._gain_db = NOMINAL_GAIN_DB
        self._on = [True] * len(plan)
        self._switch_at = [0.0] * len(plan)

    @property
    def sample_rate(self) -> float:
        return self._rate

    @property
    def center_freq(self) -> float:
        return self._fc

    def describe(self) -> str:
        return "synthetic LTE/NR radio"

    def open(self) -> None:
        self._stop.clear()
        self._render_view()
        for i, tx in enumerate(self.plan):
            self._on[i] = True
            self._switch_at[i] = self._next_switch(tx, True, 0.0)

    def close(self) -> None:
        self._stop.set()

    def retune(self, center_freq: float) -> None:
        with self._lock:
            self._retune_to = float(center_freq)

    def set_gain(self, gain: float | str) -> None:
        """``"auto"`` (the nominal 20 dB) or dB: every level, noise floor included, moves by the
        difference from the nominal gain, as a radio's would; taken up at the next block.

        Raises:
            InputError: a gain that is neither ``"auto"`` nor a number.
        """
        self._gain_db = _gain_db(gain)

    def in_view(self) -> list[Transmitter]:
        """The transmitters that reach into the current view."""
        half = self._rate / 2
        return [tx for tx in self.plan
                if abs(tx.rf_hz - self._fc) < half + tx.bandwidth_hz / 2]

    def blocks(self) -> Iterator[IQBlock]:
        block = max(1024, round(self._rate * BLOCK_SECONDS))
        loop_len = len(self._noise)
        emitted = 0
        t0 = time.time()
        wall0 = time.monotonic()
        retuned = False
        while not self._stop.is_set():
            with self._lock:
                target, self._retune_to = self._retune_to, None
            if target is not None and target != self._fc:
                self._fc = target
                self._render_view()
                loop_len = len(self._noise)
                retuned = True
                # the render was the settle time: the stream resumes now, in real time
                wall0 = time.monotonic() - emitted / self._rate
            stream_s = emitted / self._rate
            self._update_switches(stream_s)
            start = emitted % loop_len
            samples = _wrapped(self._noise, start, block)
            for i, loop in self._loops:
                if self._on[i]:
                    samples += _wrapped(loop, start, block)
            samples *= np.float32(10 ** ((NOISE_DBFS + self._gain_db - NOMINAL_GAIN_DB) / 20))
            if self.realtime:
                due = wall0 + (emitted + block) / self._rate
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
            yield IQBlock(samples, emitted, self._fc, self._rate, t0 + stream_s,
                          retuned=retuned)
            retuned = False
            emitted += block

    def _render_view(self) -> None:
        """Render the loops of the transmitters in view and of the noise."""
        n = round(LOOP_SECONDS * self._rate)
        noise = self._rng.standard_normal((n, 2), dtype=np.float32).view(np.complex64)[:, 0]
        self._noise = noise * np.float32(np.sqrt(0.5))
        loops = []
        for i, tx in enumerate(self.plan):
            if tx in self.in_view():
                spec = CarrierSpec(tx.label, tx.bandwidth_hz, tx.rf_hz - self._fc, tx.snr_db,
                                   tx.scs, options=dict(tx.options), channel="epa5")
                loops.append((i, carrier_signal(spec, self._rate, LOOP_SECONDS, self._rng)))
        self._loops = loops

    def _update_switches(self, now: float) -> None:
        for i, tx in enumerate(self.plan):
            if tx.mean_on_s is not None and now >= self._switch_at[i]:
                self._on[i] = not self._on[i]
                self._switch_at[i] = self._next_switch(tx, self._on[i], now)

    def _next_switch(self, tx: Transmitter, on: bool, now: float) -> float:
        if tx.mean_on_s is None:
            return float("inf")
        mean = tx.mean_on_s if on else tx.mean_off_s
        return now + float(self._rng.exponential(mean))


def _wrapped(loop: np.ndarray, start: int, n: int) -> np.ndarray:
    """``n`` samples of ``loop`` from ``start`` on, wrapping around its end (a new array)."""
    stop = start + n
    if stop <= len(loop):
        return loop[start:stop].copy()
    return np.concatenate((loop[start:], np.resize(loop, stop - len(loop))))


def _gain_db(gain: float | str) -> float:
    if gain == "auto":
        return NOMINAL_GAIN_DB
    try:
        return float(gain)
    except (TypeError, ValueError):
        raise InputError(f"gain must be 'auto' or a number of dB, got {gain!r}") from None

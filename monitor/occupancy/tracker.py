"""From segmented rows to emissions: carriers per chunk of rows, followed across chunks.

The tracker is a pure stage: it is fed chunks of consecutive spectrogram rows with their class
probabilities and powers, and returns the emissions that closed. A chunk is the rows segmented
since the last one (a hop, or more where frames were skipped).

In a chunk, a class occupies a column when it wins the pixel in at least ``MIN_COLUMN_SHARE`` of
the rows where it wins anything; its carriers are the runs of occupied columns (gaps of one
pixel bridged, runs shorter than ``MIN_PIXELS`` dropped). A carrier is on in the rows where its
class wins at least half of its columns. Carriers join the open emission of the same class whose
frequency span overlaps theirs most (intersection over union at least ``MIN_OVERLAP``); the rest
open new emissions. An emission's power is the power within its band (pixel powers summed
across, averaged over its rows), in dBFS. An emission closes once it has not been seen for
``close_after`` seconds, at a break in the stream (lost samples, a retune), and at the end of
the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from monitor.dsp.geometry import Geometry
from monitor.occupancy.emission import Emission

__all__ = ["LABELS", "StreamClock", "Tracker", "occupied_spans"]

LABELS = {1: "LTE", 2: "NR"}
MIN_COLUMN_SHARE = 0.3
MIN_PIXELS = 2
MIN_OVERLAP = 0.3


@dataclass(frozen=True)
class StreamClock:
    """Maps rows of the current stretch of stream to samples and times.

    Row r starts at sample ``first_sample + r * samples_per_row``; sample s was taken at
    ``time + (s - time_sample) / sample_rate`` (POSIX seconds).
    """

    first_sample: int
    samples_per_row: int
    sample_rate: float
    time: float
    time_sample: int

    def row_sample(self, row: int) -> int:
        return self.first_sample + row * self.samples_per_row

    def sample_time(self, sample: int) -> float:
        return self.time + (sample - self.time_sample) / self.sample_rate


@dataclass
class _Open:
    label: str
    first_row: int
    last_row: int
    low_px: float
    high_px: float
    rows_seen: int = 0
    confidence_sum: float = 0.0
    power_sum: float = 0.0
    pixels: int = 0
    edge_weight: float = 0.0
    edges_sum: list[float] = field(default_factory=lambda: [0.0, 0.0])


class Tracker:
    """Emissions from chunks of segmented rows.

    Args:
        geometry: the spectrogram geometry (pixel width, row length).
        center_freq: RF centre of the view, Hz.
        close_after: seconds an emission may go unseen before it closes.
    """

    def __init__(self, geometry: Geometry, center_freq: float, close_after: float = 0.25) -> None:
        self.geometry = geometry
        self.center_freq = center_freq
        self.close_after_rows = max(1, round(close_after / geometry.row_seconds))
        self._open: list[_Open] = []
        self._clock: StreamClock | None = None

    def start(self, clock: StreamClock, center_freq: float) -> list[Emission]:
        """Begin a new stretch of stream (after a break or a retune): closes what is open."""
        closed = self.close_all()
        self._clock = clock
        self.center_freq = center_freq
        return closed

    def update(self, first_row: int, probs: np.ndarray, power_db: np.ndarray) -> list[Emission]:
        """Feed a chunk of rows; return the emissions that closed.

        Args:
            first_row: index of the chunk's first row in the current stretch.
            probs: float, (rows, width, classes): class probabilities.
            power_db: float, (rows, width): pixel power, dBFS.
        """
        rows = probs.shape[0]
        winner = probs.argmax(axis=-1)
        seen: set[int] = set()
        for cls, label in LABELS.items():
            wins = winner == cls
            for low, high in occupied_spans(wins):
                on = wins[:, low:high].mean(axis=1) >= 0.5
                if not on.any():
                    continue
                active = np.flatnonzero(on)
                block = np.s_[active[0] : active[-1] + 1, low:high]
                target = self._match(label, low, high, seen)
                if target is None:
                    target = _Open(label, first_row + int(active[0]),
                                   first_row + int(active[-1]), low, high)
                    self._open.append(target)
                seen.add(id(target))
                target.last_row = first_row + int(active[-1])
                n_rows = int(active[-1] - active[0]) + 1
                target.rows_seen += n_rows
                target.confidence_sum += float(probs[block][..., cls].sum())
                target.power_sum += float((10 ** (power_db[block] / 10)).sum())
                target.pixels += n_rows * (high - low)
                target.edges_sum[0] += n_rows * low
                target.edges_sum[1] += n_rows * high
                target.edge_weight += n_rows
                target.low_px = target.edges_sum[0] / target.edge_weight
                target.high_px = target.edges_sum[1] / target.edge_weight
        now = first_row + rows
        stale = [e for e in self._open
                 if id(e) not in seen and now - e.last_row > self.close_after_rows]
        return self._close(stale)

    def close_all(self) -> list[Emission]:
        """Close every open emission (end of run, break in the stream)."""
        return self._close(list(self._open))

    @property
    def open_count(self) -> int:
        return len(self._open)

    def _match(self, label: str, low: int, high: int, taken: set[int]) -> _Open | None:
        best, best_iou = None, MIN_OVERLAP
        for e in self._open:
            if e.label != label or id(e) in taken:
                continue
            inter = min(high, e.high_px) - max(low, e.low_px)
            union = max(high, e.high_px) - min(low, e.low_px)
            iou = inter / union if union > 0 else 0.0
            if iou >= best_iou:
                best, best_iou = e, iou
        return best

    def _close(self, items: list[_Open]) -> list[Emission]:
        if not items or self._clock is None:
            self._open = [e for e in self._open if e not in items]
            return []
        g, clock = self.geometry, self._clock
        out = []
        for e in items:
            self._open.remove(e)
            start = clock.row_sample(e.first_row)
            stop = clock.row_sample(e.last_row + 1)
            centre_px = g.width // 2
            low = self.center_freq + (e.low_px - centre_px - 0.5) * g.pixel_hz
            high = self.center_freq + (e.high_px - centre_px - 0.5) * g.pixel_hz
            out.append(Emission(
                start_time=clock.sample_time(start),
                end_time=clock.sample_time(stop - 1),
                start_sample=start,
                sample_count=stop - start,
                freq_low_hz=low,
                freq_high_hz=high,
                label=e.label,
                confidence=e.confidence_sum / max(e.pixels, 1),
                power_db=float(10 * np.log10(e.power_sum / max(e.rows_seen, 1) + 1e-30)),
            ))
        return sorted(out, key=lambda em: em.start_sample)


def occupied_spans(wins: np.ndarray) -> list[tuple[int, int]]:
    """The carriers of one class in a chunk of rows, as [low, high) column ranges.

    Args:
        wins: bool, (rows, width): where the class wins the pixel.

    A column is occupied when the class wins it in at least ``MIN_COLUMN_SHARE`` of the rows
    where the class wins at least ``MIN_PIXELS`` pixels; see :func:`_spans` for the runs.
    """
    present = wins.sum(axis=1) >= MIN_PIXELS
    if not present.any():
        return []
    return _spans(wins[present].mean(axis=0) >= MIN_COLUMN_SHARE)


def _spans(occupied: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True as [low, high) column ranges; one-column gaps bridged; short runs dropped."""
    closed = occupied.copy()
    closed[1:-1] |= occupied[:-2] & occupied[2:]
    edges = np.diff(np.concatenate(([0], closed.astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b - a >= MIN_PIXELS]

"""The waterfall's history: display lines in a preallocated ring, fed from published frames.

The processing thread publishes overlapping frames (:class:`~monitor.processing.FrameResult`);
the display takes from each only the rows it has not taken yet, found from the frame's
``end_sample`` and the geometry's ``samples_per_row``. ``rows_per_line`` spectrogram rows make one
display line: their powers averaged (in dB), the class that wins most of them (noise on a tie).
Frames the processor skipped to keep up come without classes: their rows show as power only,
without segmentation. Rows that no frame showed (the display paused, samples lost) become
blank lines, so the time axis stays true to the sample indices. A change of view (centre
frequency, sample rate, frame width, row length) or a stream that goes back in time (a new run)
clears the history.

The ring holds twice the display height and writes every line at ``i`` and ``i + lines``, so the
visible window, oldest line first, is always the one contiguous slice ``[next, next + lines)``:
no roll of the whole history, no copy to display it. Powers are kept in dB and also quantized to
8 bits with the current colour levels, so a draw only uploads bytes; changing the levels
quantizes the ring again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.processing import FrameResult

__all__ = ["View", "WaterfallRing"]


@dataclass(frozen=True)
class View:
    """What the lines of the ring show: the frequencies and the length of a row.

    Attributes:
        center_freq: RF centre, Hz.
        sample_rate: samples per second.
        width: frequency pixels of the frames.
        samples_per_row: samples one spectrogram row spans.
    """

    center_freq: float
    sample_rate: float
    width: int
    samples_per_row: int

    @property
    def pixel_hz(self) -> float:
        return self.sample_rate / self.width

    @property
    def low_edge_hz(self) -> float:
        """Lower edge of pixel 0: pixel j is centred ``(j - width // 2) * pixel_hz`` from the
        centre frequency (the tracker's convention)."""
        return self.center_freq - (self.width // 2 + 0.5) * self.pixel_hz


class WaterfallRing:
    """The newest ``lines`` display lines of ``bins`` pixels.

    Args:
        lines: display height, in lines.
        bins: display width; None: the width of the frames. Frames of another width are mapped
            onto it by nearest pixel.
        rows_per_line: spectrogram rows that make one line.

    Attributes:
        view: what the lines show; None before the first frame.
        filled: lines written since the history was last cleared (at most ``lines``).
        lines_total: lines of rows written since the ring was made (blank lines not counted).
        end_sample: the sample after the newest row taken (lines and rows still pending).
        line_end_sample: the sample after the newest line's last row.
        levels: (low, high) dB mapped to the first and last of the 256 quantized values.
    """

    def __init__(self, lines: int = 512, bins: int | None = None, rows_per_line: int = 32) -> None:
        if lines < 2 or rows_per_line < 1 or (bins is not None and bins < 2):
            raise ValueError(f"bad waterfall size: {lines} lines, {bins} bins, "
                             f"{rows_per_line} rows per line")
        self.lines = lines
        self.rows_per_line = rows_per_line
        self._bins = bins
        self.view: View | None = None
        self.levels = (-120.0, -20.0)
        self.filled = 0
        self.lines_total = 0
        self.end_sample: int | None = None
        self.line_end_sample = 0
        self._next = 0
        self._power = np.empty((0, 0), dtype=np.float32)
        self._image = np.empty((0, 0), dtype=np.uint8)
        self._classes = np.empty((0, 0), dtype=np.uint8)
        self._columns: np.ndarray | None = None
        self._pending_power = np.empty((0, 0), dtype=np.float32)
        self._pending_classes = np.empty((0, 0), dtype=np.uint8)
        self._last: FrameResult | None = None

    @property
    def bins(self) -> int:
        """Display width (0 before the first frame)."""
        return self._power.shape[1]

    @property
    def line_seconds(self) -> float:
        """Stream seconds one line spans (0 before the first frame)."""
        if self.view is None:
            return 0.0
        return self.rows_per_line * self.view.samples_per_row / self.view.sample_rate

    def clear(self) -> None:
        """Forget every line and the frames taken; the next frame starts a new history."""
        self.view = None
        self.end_sample = None
        self._last = None

    def take(self, frame: FrameResult, samples_per_row: int) -> int:
        """Append the rows of ``frame`` that no frame taken before held.

        Args:
            frame: the newest frame published.
            samples_per_row: samples one row of it spans.

        Returns:
            The number of display lines of rows written (blank lines for rows no frame showed
            are not counted).
        """
        if frame is self._last:
            return 0
        self._last = frame
        held, width = frame.rows_db.shape
        view = View(frame.center_freq, frame.sample_rate, width, samples_per_row)
        if view != self.view or self.end_sample is None or frame.end_sample < self.end_sample:
            self._reset(view)
            new = held
        else:
            rows = (frame.end_sample - self.end_sample) // samples_per_row
            new = min(held, rows)
            if rows > new:
                self._skip(rows - new)
        self.end_sample = frame.end_sample
        if new <= 0:
            return 0
        power = frame.rows_db[held - new :].float().cpu().numpy()
        classes = (np.zeros(power.shape, dtype=np.uint8) if frame.classes is None
                   else frame.classes[held - new :].cpu().numpy())
        return self._append(power, classes, frame.end_sample)

    def visible_image(self) -> np.ndarray:
        """(lines, bins) uint8 quantized powers, oldest line first (a view into the ring)."""
        return self._image[self._next : self._next + self.lines]

    def visible_classes(self) -> np.ndarray:
        """(lines, bins) uint8 classes, oldest line first (a view into the ring)."""
        return self._classes[self._next : self._next + self.lines]

    def newest_power(self, count: int) -> np.ndarray:
        """(count, bins) dB of the newest ``count`` lines, oldest first (a view)."""
        end = self._next + self.lines
        return self._power[end - min(count, self.lines) : end]

    def recent_percentiles(self, low: float, high: float, count: int = 64) -> tuple[float, float]:
        """The ``low`` and ``high`` percentiles of the newest ``count`` lines' powers."""
        recent = self.newest_power(min(count, self.filled))
        recent = recent[np.isfinite(recent)]
        lo, hi = np.percentile(recent, [low, high]) if recent.size else self.levels
        return float(lo), float(hi)

    def set_levels(self, low: float, high: float) -> None:
        """Map ``low``..``high`` dB onto the colour map; quantizes the whole ring again."""
        if not high > low:
            raise ValueError(f"levels must rise, got {low}..{high}")
        self.levels = (float(low), float(high))
        if self._power.size:
            self._image[:] = self._quantize(self._power)

    def _reset(self, view: View) -> None:
        bins = self._bins or view.width
        self.view = view
        self.filled = 0
        self._next = 0
        if self._power.shape != (2 * self.lines, bins):
            self._power = np.empty((2 * self.lines, bins), dtype=np.float32)
            self._image = np.empty((2 * self.lines, bins), dtype=np.uint8)
            self._classes = np.empty((2 * self.lines, bins), dtype=np.uint8)
        self._power.fill(-np.inf)
        self._image.fill(0)
        self._classes.fill(0)
        self._columns = None if bins == view.width else (np.arange(bins) * view.width) // bins
        self._pending_power = np.empty((0, view.width), dtype=np.float32)
        self._pending_classes = np.empty((0, view.width), dtype=np.uint8)

    def _append(self, power: np.ndarray, classes: np.ndarray, end_sample: int) -> int:
        """Make lines of the pending rows and these, write them; keep the rest pending."""
        power = np.concatenate((self._pending_power, power))
        classes = np.concatenate((self._pending_classes, classes))
        k = self.rows_per_line
        count = power.shape[0] // k
        used = count * k
        self._pending_power, self._pending_classes = power[used:], classes[used:]
        assert self.view is not None
        self.line_end_sample = end_sample - (power.shape[0] - used) * self.view.samples_per_row
        if count == 0:
            return 0
        line_power, line_classes = _lines(power[:used], classes[:used], k)
        if self._columns is not None:
            line_power = line_power[:, self._columns]
            line_classes = line_classes[:, self._columns]
        self._write(line_power, line_classes)
        self.lines_total += count
        return count

    def _skip(self, rows: int) -> None:
        """``rows`` rows that no frame showed: the pending rows and they become blank lines."""
        count = round((self._pending_power.shape[0] + rows) / self.rows_per_line)
        self._pending_power = self._pending_power[:0]
        self._pending_classes = self._pending_classes[:0]
        count = min(count, self.lines)
        if count:
            self._write(np.full((count, self.bins), -np.inf, np.float32),
                        np.zeros((count, self.bins), np.uint8))

    def _write(self, power: np.ndarray, classes: np.ndarray) -> None:
        """Write lines (oldest first) at the write index; only the newest ``lines`` can stay."""
        count = power.shape[0]
        keep = min(count, self.lines)
        rows = (self._next + np.arange(count - keep, count)) % self.lines
        for ring_rows in (rows, rows + self.lines):
            self._power[ring_rows] = power[-keep:]
            self._image[ring_rows] = self._quantize(power[-keep:])
            self._classes[ring_rows] = classes[-keep:]
        self._next = (self._next + count) % self.lines
        self.filled = min(self.filled + count, self.lines)

    def _quantize(self, power: np.ndarray) -> np.ndarray:
        low, high = self.levels
        scaled = (power - low) * (255.0 / (high - low))
        return np.clip(scaled, 0.0, 255.0, out=scaled).astype(np.uint8)


def _lines(power: np.ndarray, classes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Groups of ``k`` rows to lines: mean dB, and the class that wins most of the rows."""
    count, width = power.shape[0] // k, power.shape[1]
    line_power = power.reshape(count, k, width).mean(axis=1)
    if k == 1:
        return line_power, classes
    grouped = classes.reshape(count, k, width)
    lte = (grouped == 1).sum(axis=1)
    nr = (grouped == 2).sum(axis=1)
    votes = np.stack((k - lte - nr, lte, nr))
    return line_power, votes.argmax(axis=0).astype(np.uint8)

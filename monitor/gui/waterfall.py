"""The waterfall widget: spectrum trace above, scrolling waterfall below, the segmentation drawn
over it as a translucent per-class layer, each carrier labelled where it is.

The widget follows a callable that returns the newest published frame (``pipeline.latest``) on
a timer at display rate, in the GUI thread; it never waits on processing. Each tick takes the rows
that are new (:class:`~monitor.gui.ring.WaterfallRing`) and uploads the visible slice of the
ring as 8-bit images with a lookup table: grey levels for power, and an RGBA table for the classes
(noise transparent, LTE Okabe-Ito orange, NR Okabe-Ito sky blue: apart for colour-blind eyes and
both clear of the grey map). The images are placed with ``setRect`` in absolute MHz and stream
seconds (newest line at the top).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtWidgets

from monitor.gui.labels import CarrierLabel, carrier_labels
from monitor.gui.ring import View, WaterfallRing
from monitor.occupancy.cells import FrameCells
from monitor.processing import FrameResult

__all__ = ["CLASS_COLORS", "OVERLAY_LUT", "WaterfallWidget"]

log = logging.getLogger(__name__)

#: Colour of each class on the overlay, its labels and its legend: LTE orange, NR sky blue.
CLASS_COLORS = {1: (230, 159, 0), 2: (86, 180, 233)}
#: RGBA lookup table of the overlay: index = class; noise (and every unused index) transparent.
#: 256 entries, so that 8-bit class maps index it directly.
OVERLAY_LUT = np.zeros((256, 4), dtype=np.uint8)
for _cls, _rgb in CLASS_COLORS.items():
    OVERLAY_LUT[_cls] = (*_rgb, 255)
GREY_LUT = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
TRACE_COLORS = {"live": (220, 220, 220), "average": (0, 158, 115), "peak": (213, 94, 0)}
#: Auto levels: these percentiles of the newest lines, widened by the margin, in dB.
AUTO_PERCENTILES = (10.0, 99.7)
AUTO_MARGIN_DB = 3.0
AUTO_EVERY_S = 0.5
AUTO_HYSTERESIS_DB = 1.0
#: Weight of each new line in the average trace (linear power).
AVERAGE_WEIGHT = 0.1


class WaterfallWidget(pg.GraphicsLayoutWidget):
    """Spectrum and waterfall of the frames a pipeline publishes.

    Args:
        lines: waterfall height in display lines.
        bins: waterfall width; None: the frames' width.
        rows_per_line: spectrogram rows averaged into one line.
        display_hz: polls per second (0: as fast as the event loop goes).
        fit_channels: label carriers with the channels the log gives them (see
            :mod:`monitor.gui.labels`); False: with their pixels, as ``--raw-edges``.
        parent: the Qt parent.

    Attributes:
        ring: the history.
        draws: ticks that drew new lines.
        labels: the carriers labelled now.
        spectrum: the plot of the traces (``traces``: live, average, peak).
        waterfall: the plot of the waterfall: ``image`` (power) under ``overlay`` (classes).
    """

    def __init__(self, lines: int = 512, bins: int | None = None, rows_per_line: int = 32,
                 display_hz: float = 60.0, fit_channels: bool = True,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent=parent)
        self.ring = WaterfallRing(lines, bins, rows_per_line)
        self.fit_channels = fit_channels
        self.draws = 0
        self.labels: list[CarrierLabel] = []
        self._latest: Callable[[], FrameResult | None] | None = None
        self._samples_per_row = 0
        self._paused = False
        self._auto_levels = True
        self._levels_at = 0.0
        self._view: View | None = None
        self._rect = QtCore.QRectF()
        self._average: np.ndarray | None = None
        self._peak: np.ndarray | None = None
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(round(1000 / display_hz) if display_hz > 0 else 0)
        self._timer.timeout.connect(self.poll)
        self._build()

    def _build(self) -> None:
        self.spectrum = self.addPlot(row=0, col=0)
        self.spectrum.setLabel("left", "dBFS")
        self.spectrum.showGrid(x=True, y=True, alpha=0.2)
        self.spectrum.hideButtons()
        self.spectrum.setMouseEnabled(x=True, y=False)
        self.spectrum.getAxis("bottom").setStyle(showValues=False)
        legend = self.spectrum.addLegend(offset=(-10, 5))
        self.traces: dict[str, pg.PlotDataItem] = {}
        for name, color in TRACE_COLORS.items():
            self.traces[name] = self.spectrum.plot(pen=pg.mkPen(color, width=1), name=name)
        legend.setColumnCount(3)
        self.waterfall = self.addPlot(row=1, col=0)
        self.waterfall.setLabel("bottom", "frequency (MHz)")
        self.waterfall.setLabel("left", "stream time (s)")
        self.waterfall.getAxis("left").enableAutoSIPrefix(False)
        self.waterfall.hideButtons()
        self.waterfall.setMouseEnabled(x=True, y=False)
        self.spectrum.setXLink(self.waterfall)
        self.ci.layout.setRowStretchFactor(0, 1)
        self.ci.layout.setRowStretchFactor(1, 3)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(GREY_LUT)
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setLookupTable(OVERLAY_LUT)
        self.overlay.setOpacity(0.45)
        self.waterfall.addItem(self.image)
        self.waterfall.addItem(self.overlay)
        key = self.waterfall.addLegend(offset=(10, 10), brush=pg.mkBrush(0, 0, 0, 170),
                                       labelTextColor=(230, 230, 230))
        for cls, name in ((1, "LTE"), (2, "NR")):
            sample = pg.ScatterPlotItem(symbol="s", size=12, pen=None,
                                        brush=pg.mkBrush(*CLASS_COLORS[cls]))
            key.addItem(sample, name)
        self._text_items: list[pg.TextItem] = []

    # -- following a pipeline ------------------------------------------------------------------

    def follow(self, latest: Callable[[], FrameResult | None], samples_per_row: int) -> None:
        """Draw what ``latest()`` returns, ``samples_per_row`` samples to a row, from now on;
        the history starts again."""
        self._latest = latest
        self._samples_per_row = samples_per_row
        self.ring.clear()
        self._timer.start()

    def stop_following(self) -> None:
        """Stop the timer (the last frame stays on screen)."""
        self._timer.stop()

    def poll(self) -> bool:
        """One tick: draw the rows that are new, unless paused; True if it drew."""
        frame = self._latest() if self._latest is not None else None
        if frame is None or self._paused:
            return False
        return self.draw(frame, self._samples_per_row)

    def draw(self, frame: FrameResult, samples_per_row: int) -> bool:
        """Take ``frame``'s new rows and show them; True if there were any."""
        new = self.ring.take(frame, samples_per_row)
        if self.ring.view != self._view:
            self._new_view()
        if new == 0:
            return False
        now = time.monotonic()
        if self._auto_levels and now - self._levels_at > AUTO_EVERY_S:
            self._levels_at = now
            self._update_auto_levels()
        self._update_traces(new)
        ring = self.ring
        top = ring.line_end_sample / frame.sample_rate
        height = ring.lines * ring.line_seconds
        assert ring.view is not None
        self._rect = QtCore.QRectF(ring.view.low_edge_hz / 1e6, top - height,
                                   ring.view.sample_rate / 1e6, height)
        self.image.setImage(ring.visible_image(), autoLevels=False)
        self.image.setRect(self._rect)
        if self.overlay.isVisible():
            self.overlay.setImage(ring.visible_classes(), autoLevels=False)
            self.overlay.setRect(self._rect)
        self.waterfall.setYRange(top - height, top, padding=0)
        if frame.classes is not None:  # a skipped frame keeps the last segmented frame's labels
            self._update_labels(frame.classes.cpu().numpy(), ring.view, top, frame.cells)
        self.draws += 1
        return True

    # -- controls ------------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    def set_paused(self, paused: bool) -> None:
        """Freeze the display (processing goes on); the rows missed meanwhile are not shown."""
        self._paused = paused

    def set_overlay_visible(self, visible: bool) -> None:
        """Show or hide the segmentation: the class layer and the carrier labels."""
        self.overlay.setVisible(visible)
        for item in self._text_items[: len(self.labels)]:
            item.setVisible(visible)
        if visible and self.ring.view is not None:
            self.overlay.setImage(self.ring.visible_classes(), autoLevels=False)
            self.overlay.setRect(self._rect)

    def set_overlay_opacity(self, opacity: float) -> None:
        """0 (invisible) to 1 (opaque)."""
        self.overlay.setOpacity(min(max(opacity, 0.0), 1.0))

    @property
    def auto_levels(self) -> bool:
        return self._auto_levels

    def set_auto_levels(self, auto: bool) -> None:
        """Levels from the newest lines' percentiles (auto) or held where they are."""
        self._auto_levels = auto
        if auto and self.ring.filled:
            self._update_auto_levels()
            self._refresh_image()

    def set_levels(self, low: float, high: float) -> None:
        """Fixed colour levels, dB (auto levels off)."""
        self._auto_levels = False
        self._apply_levels(low, high)
        self._refresh_image()

    def reset_traces(self) -> None:
        """Start the average and the peak hold again."""
        self._average = self._peak = None

    # -- drawing -------------------------------------------------------------------------------

    def _new_view(self) -> None:
        """The view changed (first frame, retune, new run): frequency range, traces, levels."""
        view = self._view = self.ring.view
        self._levels_at = 0.0  # auto levels from the first lines of the new view
        self.reset_traces()
        if view is None:
            return
        low = view.low_edge_hz / 1e6
        self.waterfall.setXRange(low, low + view.sample_rate / 1e6, padding=0)

    def _update_auto_levels(self) -> None:
        low, high = self.ring.recent_percentiles(*AUTO_PERCENTILES)
        low, high = low - AUTO_MARGIN_DB, max(high + AUTO_MARGIN_DB, low + 2 * AUTO_MARGIN_DB)
        old_low, old_high = self.ring.levels
        if abs(low - old_low) > AUTO_HYSTERESIS_DB or abs(high - old_high) > AUTO_HYSTERESIS_DB:
            self._apply_levels(low, high)

    def _apply_levels(self, low: float, high: float) -> None:
        self.ring.set_levels(low, high)
        self.spectrum.setYRange(low - AUTO_MARGIN_DB, high + AUTO_MARGIN_DB, padding=0)

    def _refresh_image(self) -> None:
        if self.ring.view is not None:
            self.image.setImage(self.ring.visible_image(), autoLevels=False)

    def _update_traces(self, new: int) -> None:
        ring, view = self.ring, self.ring.view
        assert view is not None
        lines = ring.newest_power(new)
        linear = 10 ** (lines / 10)
        keep = (1 - AVERAGE_WEIGHT) ** lines.shape[0]
        if self._average is None or self._peak is None:
            self._average, self._peak = linear.mean(axis=0), lines.max(axis=0)
        else:
            self._average = keep * self._average + (1 - keep) * linear.mean(axis=0)
            self._peak = np.maximum(self._peak, lines.max(axis=0))
        bin_hz = view.sample_rate / ring.bins
        freqs = (view.low_edge_hz + (np.arange(ring.bins) + 0.5) * bin_hz) / 1e6
        self.traces["live"].setData(freqs, lines[-1])
        self.traces["average"].setData(freqs, 10 * np.log10(self._average + 1e-30))
        self.traces["peak"].setData(freqs, self._peak)

    def _update_labels(self, classes: np.ndarray, view: View, top: float,
                       cells: FrameCells) -> None:
        self.labels = carrier_labels(classes, view, self.fit_channels, cells)
        while len(self._text_items) < len(self.labels):
            item = pg.TextItem(anchor=(0.5, 0.0), fill=pg.mkBrush(0, 0, 0, 160))
            self.waterfall.addItem(item, ignoreBounds=True)
            self._text_items.append(item)
        for item, carrier in zip(self._text_items, self.labels, strict=False):
            item.setText(carrier.text(view.pixel_hz), color=CLASS_COLORS[carrier.cls])
            item.setPos(carrier.center_hz / 1e6, top)
            item.setVisible(self.overlay.isVisible())
        for item in self._text_items[len(self.labels):]:
            item.setVisible(False)

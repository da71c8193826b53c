"""The waterfall's data side, without Qt: the ring of display lines and the carrier labels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from monitor.dsp.geometry import Geometry
from monitor.dsp.lte_sync import LteCell
from monitor.dsp.nr_mib import NrPbch
from monitor.dsp.nr_sync import NrCell
from monitor.gui.labels import carrier_labels
from monitor.gui.ring import View, WaterfallRing
from monitor.occupancy.cells import FrameCells
from monitor.occupancy.tracker import StreamClock, Tracker
from monitor.processing import FrameResult
from monitor.rasters import nearest_sync_raster
from monitor.synth.bch import Mib
from monitor.synth.nr_bch import NrMib

G = Geometry.for_rate(19.2e6)
SPR = G.samples_per_row
FC = 2.6e9


def _frame(first_row: int, rows: int = 256, width: int = 256, fc: float = FC,
           classes: np.ndarray | None = None) -> FrameResult:
    """A frame whose row r (absolute) reads r dB everywhere."""
    db = np.repeat(np.arange(first_row, first_row + rows, dtype=np.float32)[:, None], width, 1)
    cls = np.zeros((rows, width), np.uint8) if classes is None else classes
    return FrameResult(torch.from_numpy(db), torch.from_numpy(cls), fc, G.sample_rate,
                       (first_row + rows) * SPR)


def test_overlapping_frames_give_only_their_new_rows() -> None:
    ring = WaterfallRing(lines=64, rows_per_line=1)
    assert ring.take(_frame(0), SPR) == 256 and ring.filled == 64
    assert ring.take(_frame(128), SPR) == 128  # half a frame is new
    assert ring.take(_frame(128), SPR) == 0
    newest = ring.newest_power(64)[:, 0]
    assert list(newest) == list(range(384 - 64, 384))
    assert ring.line_end_sample == 384 * SPR


def test_rows_make_lines_and_the_rest_waits() -> None:
    ring = WaterfallRing(lines=16, rows_per_line=32)
    cls = np.zeros((256, 8), np.uint8)
    cls[:20, 0] = 1  # LTE in 20 of the first 32 rows: LTE wins
    cls[:16, 1] = 2  # NR in half of them: a tie, noise wins
    cls[:10, 2], cls[10:20, 2] = 1, 2  # 10 LTE, 10 NR, 12 noise: noise wins
    assert ring.take(_frame(0, 250, 8, classes=cls[:250]), SPR) == 7  # 224 rows, 26 wait
    first = ring.newest_power(7)[0]
    assert first[0] == pytest.approx(np.mean(np.arange(32)))
    assert list(ring.visible_classes()[-7, :3]) == [1, 0, 0]
    assert ring.line_end_sample == 224 * SPR
    assert ring.take(_frame(250, 256, 8), SPR) == 8  # 26 waiting + 256 new: 8 lines, 26 wait
    assert ring.newest_power(1)[0, 0] == pytest.approx(np.mean(np.arange(448, 480)))


def test_the_visible_window_is_one_slice_oldest_first() -> None:
    ring = WaterfallRing(lines=100, rows_per_line=1)
    for first in range(0, 1000, 64):  # wraps the ring many times
        ring.take(_frame(first, 64, 4), SPR)
    image_rows = ring.visible_image()
    assert image_rows.base is not None  # a view into the ring, not a copy
    assert list(ring.newest_power(100)[:, 0]) == list(range(1024 - 100, 1024))
    ring.set_levels(1024 - 100, 1024 - 100 + 255)
    assert list(ring.visible_image()[:, 0]) == list(range(100))


def test_a_retune_or_a_new_run_clears_the_history() -> None:
    ring = WaterfallRing(lines=64, rows_per_line=1)
    ring.take(_frame(0), SPR)
    assert ring.filled == 64
    ring.take(_frame(256, fc=FC + 10e6), SPR)
    assert ring.filled == 64 and ring.view is not None and ring.view.center_freq == FC + 10e6
    assert ring.take(_frame(0, 32, fc=FC + 10e6), SPR) == 32  # back in time: a new stream
    assert ring.filled == 32
    assert (ring.visible_image()[:32] == 0).all()


def test_frames_are_mapped_onto_the_display_width() -> None:
    ring = WaterfallRing(lines=8, bins=1024, rows_per_line=1)
    cls = np.zeros((8, 256), np.uint8)
    cls[:, 10:20] = 2
    ring.take(_frame(0, 8, 256, classes=cls), SPR)
    shown = ring.visible_classes()[-1]
    assert shown.shape == (1024,)
    assert np.flatnonzero(shown).tolist() == list(range(40, 80))


@pytest.mark.parametrize(("fit", "text"), [(True, "LTE 5.0 MHz @ 2594.86 MHz"),
                                         (False, "LTE 4.5 MHz @ 2594.86 MHz")])
def test_labels_have_the_edges_the_tracker_logs(fit: bool, text: str) -> None:
    probs = np.zeros((64, G.width, 3), np.float32)
    probs[..., 0] = 1.0
    probs[:, 30:90] = (0.1, 0.9, 0.0)
    probs[:, 110:113] = (0.1, 0.9, 0.0)  # a 225 kHz sliver
    probs[:, 150:230] = (0.2, 0.0, 0.8)
    tracker = Tracker(G, FC, fit_channels=fit)
    tracker.start(StreamClock(0, SPR, G.sample_rate, 0.0, 0), FC)
    tracker.update(0, probs, np.full((64, G.width), -50.0, np.float32))
    logged = sorted(tracker.close_all(), key=lambda e: e.freq_low_hz)
    labels = carrier_labels(probs.argmax(-1).astype(np.uint8), View(FC, G.sample_rate,
                                                                     G.width, SPR), fit)
    assert [c.label for c in labels] == [e.label for e in logged]
    assert [c.label for c in labels] == (["LTE", "NR"] if fit else ["LTE", "LTE", "NR"])
    for label, emission in zip(labels, logged, strict=True):
        assert label.low_hz == pytest.approx(emission.freq_low_hz)
        assert label.high_hz == pytest.approx(emission.freq_high_hz)
    assert labels[0].text(G.pixel_hz) == text


def test_a_label_names_the_cells_in_its_carrier() -> None:
    classes = np.zeros((64, G.width), np.uint8)
    classes[:, 30:90] = 1
    classes[:, 150:230] = 2
    view = View(FC, G.sample_rate, G.width, SPR)
    inside = view.low_edge_hz + 60.5 * G.pixel_hz - FC
    cells = [LteCell(inside, 86, "FDD", 0.5, 0.3), LteCell(-FC, 7, "TDD", 0.5, 0.3)]
    labels = carrier_labels(classes, view, True, FrameCells(tuple(cells)))
    assert [c.cells for c in labels] == [(86,), ()]
    assert labels[0].text(G.pixel_hz).endswith(", PCI 86")
    assert "PCI" not in labels[1].text(G.pixel_hz)
    # an NR cell's SSB names the carrier that holds it
    ssb = NrCell(view.low_edge_hz + 200.5 * G.pixel_hz - FC, 500, 30e3, 0.9, 0.9, 0.0)
    labels = carrier_labels(classes, view, True, FrameCells(tuple(cells), (ssb,)))
    assert [c.cells for c in labels] == [(86,), (500,)]
    point = nearest_sync_raster(FC + ssb.ssb_hz)  # the SSB's synchronisation raster point
    assert labels[1].gscns == (point.gscn,)
    assert labels[1].text(G.pixel_hz).endswith(f", PCI 500, GSCN {point.gscn}")
    # and what its MIB says, where it decoded
    decoded = replace(ssb, pbch=NrPbch(NrMib(k_ssb=31, cell_barred=True), 0, 0))
    labels = carrier_labels(classes, view, True, FrameCells(tuple(cells), (decoded,)))
    assert labels[1].text(G.pixel_hz).endswith(f", PCI 500, GSCN {point.gscn}, barred, no SIB1")
    # a view whose centre frequency is unknown (a raw file without --fc): no raster point
    unknown = View(0.0, G.sample_rate, G.width, SPR)
    labels = carrier_labels(classes, unknown, True, FrameCells(tuple(cells), (ssb,)))
    assert labels[1].text(G.pixel_hz).endswith(", PCI 500")
    # with the cell's MIB, the label is the cell's channel, also beyond the view
    cells[0] = LteCell(inside, 86, "FDD", 0.5, 0.3, Mib(100), 2)
    (label, _) = carrier_labels(classes, view, True, FrameCells(tuple(cells)))
    assert label.center_hz == pytest.approx(FC + inside)
    assert label.bandwidth_hz == pytest.approx(20e6)
    assert label.text(G.pixel_hz).startswith("LTE 20.0 MHz")


def test_rows_no_frame_showed_become_blank_lines() -> None:
    ring = WaterfallRing(lines=64, rows_per_line=32)
    ring.take(_frame(0, 256, 4), SPR)
    assert ring.filled == 8
    ring.take(_frame(512 + 256, 256, 4), SPR)  # the frames of rows 256-767 were skipped
    assert ring.filled == 8 + 16 + 8 and ring.lines_total == 16
    shown = ring.newest_power(24)[:, 0]
    assert np.isinf(shown[:16]).all() and np.isfinite(shown[16:]).all()
    assert ring.line_end_sample == 1024 * SPR
    low, high = ring.recent_percentiles(0, 100)
    assert np.isfinite([low, high]).all()


def test_a_skipped_frame_shows_its_rows_without_segmentation() -> None:
    ring = WaterfallRing(lines=64, rows_per_line=32)
    cls = np.full((256, 4), 2, np.uint8)
    ring.take(_frame(0, 256, 4, classes=cls), SPR)
    skipped = _frame(256, 256, 4)
    ring.take(FrameResult(skipped.rows_db, None, FC, G.sample_rate, skipped.end_sample), SPR)
    assert ring.filled == 16 and np.isfinite(ring.newest_power(16)).all()
    classes = ring.visible_classes()[-16:, 0]
    assert (classes[:8] == 2).all() and (classes[8:] == 0).all()

"""Tests of monitor.train.metrics against hand-computed matrices and hand-made masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from monitor.dsp.geometry import Geometry
from monitor.train.metrics import (
    CarrierCounts,
    ConfusionMatrix,
    Span,
    edge_errors,
    match_carriers,
    predicted_carriers,
    span_iou,
    truth_carriers,
)

TRUTH = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
PRED = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0])
# matrix[truth, prediction]: [[2, 1, 0], [0, 1, 1], [1, 0, 2]]


def test_confusion_matrix_and_every_figure_by_hand() -> None:
    cm = ConfusionMatrix()
    cm.update(PRED, TRUTH)
    assert cm.matrix.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 2]]
    s = cm.summary()
    assert s["iou"] == pytest.approx({"noise": 2 / 4, "LTE": 1 / 3, "NR": 2 / 4})
    assert s["miou"] == pytest.approx((0.5 + 1 / 3 + 0.5) / 3)
    assert s["pixel_accuracy"] == pytest.approx(5 / 8)
    assert s["recall"] == pytest.approx({"noise": 2 / 3, "LTE": 1 / 2, "NR": 2 / 3})
    assert s["mean_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert s["precision"] == pytest.approx({"noise": 2 / 3, "LTE": 1 / 2, "NR": 2 / 3})
    assert s["f1"] == pytest.approx({"noise": 4 / 6, "LTE": 2 / 4, "NR": 4 / 6})
    assert s["macro_f1"] == pytest.approx((4 / 6 + 2 / 4 + 4 / 6) / 3)
    assert s["lte_as_nr"] == pytest.approx(1 / 2)
    assert s["nr_as_lte"] == 0.0
    assert s["pixels"] == 8


def test_updates_accumulate_like_one_batch() -> None:
    whole = ConfusionMatrix()
    whole.update(PRED.reshape(2, 2, 2), TRUTH.reshape(2, 2, 2))
    parts = ConfusionMatrix()
    parts.update(PRED[:3], TRUTH[:3])
    parts.update(PRED[3:], TRUTH[3:])
    assert torch.equal(whole.matrix, parts.matrix)


def test_a_class_absent_everywhere_is_left_out_of_the_means() -> None:
    cm = ConfusionMatrix()
    cm.update(torch.tensor([0, 0, 2, 2]), torch.tensor([0, 0, 2, 0]))
    s = cm.summary()
    assert math.isnan(s["iou"]["LTE"]) and math.isnan(s["lte_as_nr"])
    assert s["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_predicted_carriers_are_column_majority_spans() -> None:
    mask = np.zeros((16, 64), dtype=np.uint8)
    mask[:, 4:12] = 1  # LTE on every row
    mask[:8, 20:30] = 2  # NR in the first half only: still its own rows' majority
    mask[3, 40] = 2  # a stray NR pixel: one column of 1/8 of the NR rows, not a carrier
    mask[:, 50:51] = 1  # one pixel wide: dropped
    mask[::2, 56:60] = 1  # every other row: half of the LTE rows, kept
    assert predicted_carriers(mask) == [Span(1, 4, 12), Span(1, 56, 60), Span(2, 20, 30)]
    assert predicted_carriers(torch.from_numpy(mask), min_width=1)[1] == Span(1, 50, 51)


def test_truth_carriers_use_the_pixels_within_the_band_and_the_on_time() -> None:
    g = Geometry.for_rate(1.92e6)  # 7.5 kHz pixels; pixel j is centred on (j - 128) * 7.5 kHz
    meta = {"carriers": [
        {"label": "LTE", "freq_low_hz": -7500 * 10, "freq_high_hz": 7500 * 20.5},
        {"label": "NR", "freq_low_hz": 3e6, "freq_high_hz": 5e6},  # out of view
        {"label": "NR", "freq_low_hz": -7500 * 100, "freq_high_hz": -7500 * 90,
         "start_sample": g.frame_samples, "sample_count": 1000},  # after the frame
        {"label": "NR", "freq_low_hz": -7500 * 100.5, "freq_high_hz": -7500 * 90,
         "start_sample": 0, "sample_count": g.samples_per_row},  # on for the first row only
    ]}
    assert truth_carriers(meta, g) == [Span(1, 118, 149), Span(2, 28, 39)]


def test_matching_needs_half_the_union_and_the_same_class() -> None:
    truth = [Span(1, 0, 10), Span(2, 20, 30)]
    assert span_iou(Span(1, 0, 5), truth[0]) == 0.5
    assert match_carriers([Span(1, 0, 5)], truth) == [(Span(1, 0, 5), truth[0])]
    assert match_carriers([Span(1, 0, 4)], truth) == []
    assert match_carriers([Span(1, 20, 30)], truth) == []
    # One prediction matches at most one carrier, and the better overlap wins.
    pairs = match_carriers([Span(1, 0, 6), Span(1, 0, 9)], [Span(1, 0, 10)])
    assert pairs == [(Span(1, 0, 9), Span(1, 0, 10))]


def test_carrier_counts_give_precision_and_recall() -> None:
    counts = CarrierCounts()
    counts.update([Span(1, 0, 10), Span(2, 40, 50)], [Span(1, 1, 10), Span(2, 60, 70)])
    counts.update([], [Span(2, 0, 5)])
    s = counts.summary()
    assert s["precision"] == pytest.approx(1 / 2)
    assert s["recall"] == pytest.approx(1 / 3)
    assert s["per_class"]["LTE"] == {"precision": 1.0, "recall": 1.0, "found": 1,
                                     "predicted": 1, "truth": 1}
    assert s["per_class"]["NR"]["recall"] == 0.0


def test_edge_errors_score_the_found_carriers_in_view_as_painted_and_as_fitted() -> None:
    g = Geometry.for_rate(19.2e6)  # 75 kHz pixels; pixel j is centred on (j - 128) * 75 kHz
    meta = {"carriers": [
        {"label": "LTE", "freq_low_hz": -2.5e6, "freq_high_hz": 2.5e6},  # 5 MHz in view
        {"label": "NR", "freq_low_hz": -20e6, "freq_high_hz": -5e6},  # runs off the view
    ]}
    # LTE painted on pixels 99-156: -2.2125 to +2.1375 MHz, 4.35 MHz
    predicted = [Span(1, 99, 157), Span(2, 0, 62)]
    ((painted, fitted),) = edge_errors(predicted, meta, g)
    assert painted == pytest.approx(0.3625e6 / 5e6)
    # fitted: the 5 MHz channel on the painted centre, -37.5 kHz
    assert fitted == pytest.approx(37.5e3 / 5e6)
    counts = CarrierCounts(edges=[(painted, fitted), (0.2, 0.01)])
    edges = counts.summary()["edges"]
    assert edges["carriers"] == 2
    assert edges["painted"]["within_5pct"] == 0.0 and edges["fitted"]["within_5pct"] == 1.0

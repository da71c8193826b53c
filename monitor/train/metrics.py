"""Segmentation metrics: pixels by confusion matrix, carriers by frequency-span matching.

Pixels: :class:`ConfusionMatrix` accumulates truth-by-prediction counts on torch tensors, batch
by batch, on the device the predictions are on; :meth:`ConfusionMatrix.summary` derives every
figure from it: per-class IoU and its macro mean over noise, LTE and NR (the mean IoU of the
PRMNet paper), pixel accuracy, mean accuracy (mean per-class recall), per-class and macro
precision, recall and F1, and the LTE/NR confusion (share of true LTE pixels called NR, and of
true NR pixels called LTE). A figure whose denominator is zero (a class that is neither in the
truth nor in the prediction) is NaN and left out of the macro means.

Carriers: a predicted carrier is a connected span of frequency pixels of one class
(:func:`predicted_carriers`); a true one comes from the frame's truth (:func:`truth_carriers`).
A true carrier counts as found when a predicted carrier of the same class overlaps it with a
frequency-span IoU of at least 0.5 (one-to-one, :func:`match_carriers`); precision and recall
follow (:class:`CarrierCounts`). For the found carriers wholly in view, the edges are scored as
painted and as fitted to the nominal channel of their class (:func:`edge_errors`), as the
monitor logs them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engines.prmnet import CLASS_NAMES
from monitor.dsp.geometry import Geometry
from monitor.occupancy.channels import fit_channel, wholly_in_view

__all__ = [
    "CarrierCounts",
    "ConfusionMatrix",
    "Span",
    "edge_errors",
    "false_alarm",
    "match_carriers",
    "predicted_carriers",
    "span_iou",
    "summarize_confusion",
    "truth_carriers",
]

NUM_CLASSES = len(CLASS_NAMES)
LTE, NR = CLASS_NAMES.index("LTE"), CLASS_NAMES.index("NR")
MATCH_IOU = 0.5
MIN_SPAN = 2
EDGE_SHARE = 0.05


class ConfusionMatrix:
    """Pixel counts, ``matrix[truth, prediction]``, accumulated over batches.

    Args:
        num_classes: classes (3: noise, LTE, NR).
        device: where the counts live (that of the predictions is fastest).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, device: torch.device | str = "cpu") -> None:
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, prediction: torch.Tensor, truth: torch.Tensor) -> None:
        """Count the pixels of a batch: class indices of any (equal) shapes."""
        if prediction.shape != truth.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} vs truth {tuple(truth.shape)}")
        n = self.num_classes
        flat = truth.reshape(-1).to(self.matrix.device, torch.int64) * n + prediction.reshape(
            -1
        ).to(self.matrix.device, torch.int64)
        self.matrix += torch.bincount(flat, minlength=n * n).reshape(n, n)

    def summary(self) -> dict[str, Any]:
        """Every figure of the matrix (see :func:`summarize_confusion`)."""
        return summarize_confusion(self.matrix)


def summarize_confusion(matrix: torch.Tensor | np.ndarray) -> dict[str, Any]:
    """Metrics of a confusion matrix ``[truth, prediction]``; undefined figures are NaN.

    Returns:
        A dict: ``miou``, ``pixel_accuracy``, ``mean_accuracy``, ``macro_precision``,
        ``macro_recall``, ``macro_f1``, ``lte_as_nr``, ``nr_as_lte`` (floats in [0, 1]),
        ``iou``, ``precision``, ``recall``, ``f1`` (per class name), ``pixels`` (int) and
        ``confusion`` (list of rows).
    """
    cm = torch.as_tensor(matrix, dtype=torch.float64).cpu()
    tp = cm.diagonal()
    truth = cm.sum(dim=1)
    predicted = cm.sum(dim=0)
    nan = torch.tensor(float("nan"), dtype=torch.float64)

    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return torch.where(den > 0, num / den.clamp(min=1e-300), nan)

    iou = ratio(tp, truth + predicted - tp)
    precision = ratio(tp, predicted)
    recall = ratio(tp, truth)
    f1 = ratio(2 * tp, truth + predicted)
    names = CLASS_NAMES if cm.shape[0] == NUM_CLASSES else [str(i) for i in range(cm.shape[0])]
    per_class = {
        key: {name: float(v) for name, v in zip(names, values.tolist(), strict=True)}
        for key, values in (("iou", iou), ("precision", precision), ("recall", recall), ("f1", f1))
    }
    total = cm.sum()
    return {
        "miou": _nanmean(iou),
        "pixel_accuracy": float(ratio(tp.sum(), total)),
        "mean_accuracy": _nanmean(recall),
        "macro_precision": _nanmean(precision),
        "macro_recall": _nanmean(recall),
        "macro_f1": _nanmean(f1),
        "lte_as_nr": float(ratio(cm[LTE, NR], truth[LTE])) if cm.shape[0] > NR else math.nan,
        "nr_as_lte": float(ratio(cm[NR, LTE], truth[NR])) if cm.shape[0] > NR else math.nan,
        **per_class,
        "pixels": int(total),
        "confusion": cm.to(torch.int64).tolist(),
    }


def false_alarm(matrix: torch.Tensor | np.ndarray) -> float:
    """Share of the true noise pixels called LTE or NR, from a confusion matrix
    ``[truth, prediction]`` (NaN without noise pixels)."""
    noise = matrix[0]
    total = float(noise.sum())
    return float(noise[1:].sum()) / total if total else math.nan


def _nanmean(values: torch.Tensor) -> float:
    defined = values[~values.isnan()]
    return float(defined.mean()) if defined.numel() else math.nan


@dataclass(frozen=True, order=True)
class Span:
    """A carrier in a frame: a class and frequency pixels ``[low, high)``."""

    cls: int
    low: int
    high: int

    @property
    def width(self) -> int:
        return self.high - self.low


def span_iou(a: Span, b: Span) -> float:
    """Intersection over union of two spans' frequency pixels (classes not compared)."""
    inter = max(0, min(a.high, b.high) - max(a.low, b.low))
    union = a.width + b.width - inter
    return inter / union if union > 0 else 0.0


def predicted_carriers(mask: torch.Tensor | np.ndarray, min_width: int = MIN_SPAN) -> list[Span]:
    """Carriers in a class mask (rows = time, columns = frequency).

    For each signal class, the rows where the class appears at all are the class's rows; a column
    belongs to the class where at least half of those rows call it that class. Runs of such
    columns are carriers; runs narrower than ``min_width`` pixels are dropped.
    """
    labels = torch.as_tensor(mask).cpu().numpy()
    spans = []
    for cls in range(1, NUM_CLASSES):
        hits = labels == cls
        rows = hits.any(axis=1)
        if not rows.any():
            continue
        columns = hits[rows].mean(axis=0) >= 0.5
        spans.extend(Span(cls, lo, hi) for lo, hi in _runs(columns) if hi - lo >= min_width)
    return spans


def truth_carriers(
    meta: dict[str, Any], geometry: Geometry, rows: int | None = None
) -> list[Span]:
    """The true carriers of a data-set frame, as frequency spans at ``geometry``.

    A carrier owns the pixels whose centres lie within its nominal band (as in the class mask);
    carriers with no pixel in view, or not on during any of the frame's ``rows`` (default: all),
    are left out.
    """
    return [span for _, span in _visible_carriers(meta, geometry, rows)]


def edge_errors(
    predicted: Sequence[Span], meta: dict[str, Any], geometry: Geometry
) -> list[tuple[float, float]]:
    """How far the found carriers wholly in view are from their true edges: per carrier, the
    larger of its two edge errors as a share of its bandwidth, for the edges as painted and as
    fitted to the nominal channel of the class (:func:`~monitor.occupancy.channels.fit_channel`).

    Wholly in view: the true band lies between the centres of the view's outer pixels, and the
    predicted span touches neither outer pixel (the monitor's rule for fitting).
    """
    visible = _visible_carriers(meta, geometry)
    centres, half = geometry.pixel_centres(), 0.5 * geometry.pixel_hz
    errors = []
    for p, t in match_carriers(predicted, [span for _, span in visible]):
        carrier = next(c for c, span in visible if span is t)
        low, high = carrier["freq_low_hz"], carrier["freq_high_hz"]
        if low < centres[0] or high > centres[-1] or not wholly_in_view(p.low, p.high,
                                                                        geometry.width):
            continue
        painted = (centres[p.low] - half, centres[p.high - 1] + half)
        fitted = fit_channel(CLASS_NAMES[p.cls], *painted)
        errors.append(tuple(max(abs(a - low), abs(b - high)) / (high - low)
                            for a, b in (painted, fitted)))
    return errors


def _visible_carriers(
    meta: dict[str, Any], geometry: Geometry, rows: int | None = None
) -> list[tuple[dict[str, Any], Span]]:
    """The carriers of :func:`truth_carriers`, each with its entry of ``meta``."""
    rows = geometry.height if rows is None else rows
    centres = geometry.pixel_centres()
    row_samples = (np.arange(rows) + 0.5) * geometry.samples_per_row
    visible = []
    for carrier in meta.get("carriers", []):
        cols = np.flatnonzero(
            (centres >= carrier["freq_low_hz"]) & (centres <= carrier["freq_high_hz"])
        )
        start = carrier.get("start_sample", 0)
        count = carrier.get("sample_count", rows * geometry.samples_per_row)
        on = (row_samples >= start) & (row_samples < start + count)
        if cols.size and on.any():
            visible.append((carrier, Span(CLASS_NAMES.index(carrier["label"]), int(cols[0]),
                                          int(cols[-1]) + 1)))
    return visible


def match_carriers(
    predicted: Sequence[Span], truth: Sequence[Span], min_iou: float = MATCH_IOU
) -> list[tuple[Span, Span]]:
    """Pairs (predicted, true) of the same class with span IoU >= ``min_iou``, one-to-one.

    Greedy by IoU, best first.
    """
    candidates = sorted(
        (
            (span_iou(p, t), i, j)
            for i, p in enumerate(predicted)
            for j, t in enumerate(truth)
            if p.cls == t.cls
        ),
        reverse=True,
    )
    used_p: set[int] = set()
    used_t: set[int] = set()
    pairs = []
    for iou, i, j in candidates:
        if iou >= min_iou and i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            pairs.append((predicted[i], truth[j]))
    return pairs


@dataclass
class CarrierCounts:
    """Carrier-level counts per class, accumulated over frames."""

    found: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASS_NAMES[1:], 0))
    predicted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASS_NAMES[1:], 0))
    truth: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASS_NAMES[1:], 0))
    edges: list[tuple[float, float]] = field(default_factory=list)
    """(painted, fitted) edge errors of the found carriers wholly in view (see edge_errors)."""

    def update(self, predicted: Sequence[Span], truth: Sequence[Span]) -> None:
        """Count one frame's carriers and matches."""
        for p, _ in match_carriers(predicted, truth):
            self.found[CLASS_NAMES[p.cls]] += 1
        for span in predicted:
            self.predicted[CLASS_NAMES[span.cls]] += 1
        for span in truth:
            self.truth[CLASS_NAMES[span.cls]] += 1

    def summary(self) -> dict[str, Any]:
        """Precision (found / predicted) and recall (found / true), overall and per class."""
        found, predicted, truth = (
            sum(d.values()) for d in (self.found, self.predicted, self.truth)
        )
        return {
            "precision": _ratio(found, predicted),
            "recall": _ratio(found, truth),
            "per_class": {
                name: {
                    "precision": _ratio(self.found[name], self.predicted[name]),
                    "recall": _ratio(self.found[name], self.truth[name]),
                    "found": self.found[name],
                    "predicted": self.predicted[name],
                    "truth": self.truth[name],
                }
                for name in self.found
            },
            "found": found,
            "predicted": predicted,
            "truth": truth,
            "edges": self._edges_summary(),
        }

    def _edges_summary(self) -> dict[str, Any]:
        errors = np.asarray(self.edges, dtype=np.float64).reshape(-1, 2)
        summary: dict[str, Any] = {"carriers": len(errors)}
        for k, name in enumerate(("painted", "fitted")):
            summary[name] = {
                "within_5pct": float((errors[:, k] <= EDGE_SHARE).mean()) if len(errors)
                else math.nan,
                "median": float(np.median(errors[:, k])) if len(errors) else math.nan,
            }
        return summary


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[low, high)`` of every run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate(([0], flags.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(),
                    strict=True))

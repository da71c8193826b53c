"""``prmnet eval``: models on a test set and on real recordings, side by side, in one report.

On a test set (:func:`evaluate`): every frame whole (256x256), pixel metrics from the confusion
matrix (macro mean IoU over noise, LTE and NR, per-class IoU, pixel and mean accuracy, F1,
precision, recall, the LTE/NR confusion), the same per SNR bin (a frame's SNR is the highest of
its visible carriers'; bins of 5 dB from -10 to 30 dB, frames without a carrier in a bin of their
own where the false-alarm share is what counts), the same per kind of view (:func:`view_kind`:
inside a carrier, carriers and noise, noise only) and per sample rate (:func:`rate_key`),
carrier-level precision and recall (:mod:`monitor.train.metrics`), and where the wrong pixels
lie (:data:`ERROR_PLACES`). The forward pass is timed per frame. The pixel figures are also
measured on the classes as the monitor shows them, each carrier's pixels in the carrier's class
(:func:`~monitor.occupancy.tracker.carrier_classes`); every other figure is of the network's own.

On real recordings (:func:`evaluate_captures`), a folder of SigMF recordings with a
``truth.json`` (see ``../shared/captures``): each recording is cut into frames with the model's
geometry at its own sample rate (a recording shorter than a frame gives one frame of the rows it
has, mirrored to the frame's height as the monitor does, and only its real rows count), and the
share of pixels given to each class is checked against the classes present and absent: the
dominant signal class must be a present one, absent classes must get under 5 % of the signal
pixels (every present one at least that), at least 1 % of the pixels must be signal; a recording
of noise passes with under 2 % of its pixels called LTE or NR. Each recording is judged twice:
on the network's own classes and on the classes as the monitor shows them.

:func:`write_report` writes ``report.md`` (tables), ``metrics.json`` (every figure),
``miou_vs_snr.png``, ``confusion.png``, ``errors.png`` and, given a gallery
(:mod:`monitor.train.gallery`), ``worst.png`` into the report folder.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engines.prmnet import CLASS_NAMES
from monitor.dsp.frames import pad_rows
from monitor.dsp.geometry import Geometry
from monitor.dsp.lte_sync import PSS_HALF_BAND_HZ, LteCell
from monitor.dsp.nr_sync import NrCell
from monitor.dsp.spectrogram import Spectrogram, network_input
from monitor.errors import InputError
from monitor.occupancy.cells import (
    SAME_CELL_HZ,
    FrameCells,
    cell_marks,
    find_frame_cells,
    search_cells,
    with_known_mibs,
)
from monitor.occupancy.tracker import carrier_classes
from monitor.rasters import nearest_sync_raster
from monitor.sources.files import open_recording
from monitor.synth.nr_bch import NrMib
from monitor.synth.truth import CLASS_INDEX, carrier_region, silent_as_noise
from monitor.train.cards import ModelCard, json_safe
from monitor.train.data import FrameSet, ShardFrames, collate
from monitor.train.gallery import MIN_SNR_DB, Gallery, frame_miou, plot_gallery
from monitor.train.loop import segment
from monitor.train.metrics import (
    LTE,
    NR,
    CarrierCounts,
    ConfusionMatrix,
    edge_errors,
    false_alarm,
    predicted_carriers,
    truth_carriers,
)

__all__ = [
    "ERROR_PLACES",
    "NOISE_ONLY",
    "REACH_SHARES",
    "SNR_BINS",
    "CaptureResult",
    "EvalResult",
    "check_not_training_data",
    "evaluate",
    "evaluate_captures",
    "format_report",
    "rate_key",
    "snr_bin",
    "view_kind",
    "write_report",
]

SNR_EDGES = tuple(range(-10, 31, 5))
SNR_BINS = tuple(f"{lo} to {hi} dB" for lo, hi in itertools.pairwise(SNR_EDGES))
NOISE_ONLY = "noise only"
UNKNOWN = "unknown"
INSIDE = "inside a carrier"
MIXED = "carriers and noise"
VIEW_KINDS = (INSIDE, MIXED, NOISE_ONLY)
MAX_OTHER_SHARE = 0.05
MIN_SIGNAL_SHARE = 0.01
MAX_FALSE_ALARM = 0.02
EDGE_PIXELS = 3
REACH_SHARES = (0.0, 0.01, 0.02, 0.05, 0.1)
"""Shares of a carrier's channel (while it is on) it sent in, at or under which the report's
table of what a receiver can reach counts the carrier as beyond any receiver."""
MISSED_SHARE = 0.1
"""A carrier is missed when fewer than this share of its labelled pixels are called signal."""
IDLE_SHARE = 0.02
"""A missed carrier that sent in at most this share of its labelled pixels is idle (an idle NR
cell's SSBs fill 1-2 % of its channel) or silent: no receiver finds its channel."""
ERROR_PLACES = (
    "signal called noise, sent",
    "signal called noise, little or nothing sent",
    "signal called the other class, sent",
    "signal called the other class, little or nothing sent",
    "noise called signal, at a carrier's edge",
    "noise called signal, in a carrier's band while it is off",
    "noise called signal, apart from any carrier",
)
"""Where a wrong pixel lies. Signal: whether its carrier sent at least a tenth of a fully loaded
carrier's energy in the pixel (the energy mask) or little or nothing (the labels mark the whole
channel while a carrier is on, sent or not; an idle LTE carrier's reference signals are under a
tenth). Noise: within
``EDGE_PIXELS`` of a carrier in its row, in a column that is a carrier's in another row, or
neither."""


@dataclass
class EvalResult:
    """One model on one test set.

    Attributes:
        name: the model's name in the report.
        card: its model card.
        frames: frames evaluated.
        confusion: pixel counts over every frame.
        shown: pixel counts of the classes as the monitor shows them (carrier classes; with the
            carriers an LTE cell's PSS names made LTE and those an NR cell's SSB names NR, where
            ``cells`` searched for them).
        lte_cells: frames searched for cells (in IQ rendered again), and LTE cells found.
        nr_cells: NR cells found; of those, the cells of an NR carrier of the frame (its PCI,
            the SSB within its band); and of those, the ones whose MIB decoded.
        nr_carriers: of the NR carriers in the frames searched that sent an SSB whole in view
            (:func:`monitor.synth.truth.ssbs_in_view`), those whose cell was found.
        lte_carriers: of the LTE carriers in the frames searched whose PSS lies in view, those
            found with their cell's PCI (within ``SAME_CELL_HZ`` of their centre), and those
            whose MIB gave their bandwidth too.
        by_snr: pixel counts per SNR bin.
        frames_by_snr: frames per SNR bin.
        by_view: pixel counts per kind of view (see view_kind).
        frames_by_view: frames per kind of view.
        by_rate: pixel counts per sample rate (see rate_key).
        frames_by_rate: frames per sample rate.
        as_sent: pixel counts against the truth with silent carriers as noise
            (:func:`monitor.synth.truth.silent_as_noise`), on the frames with an energy mask.
        silent_pixels: pixels of the truth's signal that belong to silent carriers.
        reachable: per share of :data:`REACH_SHARES`, pixel counts of the truth with the
            carriers that sent in at most that share of their region as noise, taken as a
            prediction, against the truth: at share 0 (silent carriers), the best any receiver
            can do on those frames.
        energy_painted: pixel counts of the energy mask, taken as a prediction, against the
            truth: a receiver that paints exactly where each carrier sent.
        sent_pixels: pixels of the truth's signal where its carrier sent (energy mask).
        signal_pixels: pixels of the truth's signal on those frames.
        noise_pixels: pixels of the truth's noise on those frames.
        error_places: wrong pixels on those frames by where they lie (ERROR_PLACES).
        carriers: carrier-level counts.
        carrier_pixels: per SNR bin of the carriers' own SNR, their labelled pixels, and of
            those the ones called signal and the ones called the carrier's class.
        missed: on the frames with an energy mask, carriers (and their labelled pixels): all,
            missed (:data:`MISSED_SHARE`), and of those the idle ones (:data:`IDLE_SHARE`).
        missed_painted: on the same frames, pixel counts of the classes as they are, with every
            missed carrier that sent more than an idle one painted its class (its labelled
            pixels), and with every missed carrier painted: what finding the carriers wholly
            missed would be worth.
        frame_snrs: frame index -> its strongest carrier's SNR, for the frames at
            :data:`~monitor.train.gallery.MIN_SNR_DB` or more (the gallery's candidates).
        frame_mious: frame index -> its mean IoU, for the same frames.
        seconds_per_frame: mean forward-pass time of one frame.
        batch_size: frames per forward pass.
        threads: torch threads during the timing.
    """

    name: str
    card: ModelCard
    frames: int = 0
    confusion: ConfusionMatrix = field(default_factory=ConfusionMatrix)
    shown: ConfusionMatrix = field(default_factory=ConfusionMatrix)
    lte_cells: tuple[int, int] = (0, 0)
    lte_carriers: tuple[int, int, int] = (0, 0, 0)
    nr_cells: tuple[int, int, int] = (0, 0, 0)
    nr_carriers: tuple[int, int] = (0, 0)
    by_snr: dict[str, ConfusionMatrix] = field(default_factory=dict)
    frames_by_snr: dict[str, int] = field(default_factory=dict)
    by_view: dict[str, ConfusionMatrix] = field(default_factory=dict)
    frames_by_view: dict[str, int] = field(default_factory=dict)
    by_rate: dict[str, ConfusionMatrix] = field(default_factory=dict)
    frames_by_rate: dict[str, int] = field(default_factory=dict)
    as_sent: ConfusionMatrix = field(default_factory=ConfusionMatrix)
    silent_pixels: int = 0
    reachable: dict[float, ConfusionMatrix] = field(
        default_factory=lambda: {share: ConfusionMatrix() for share in REACH_SHARES})
    energy_painted: ConfusionMatrix = field(default_factory=ConfusionMatrix)
    sent_pixels: int = 0
    signal_pixels: int = 0
    noise_pixels: int = 0
    error_places: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_PLACES, 0))
    carriers: CarrierCounts = field(default_factory=CarrierCounts)
    carrier_pixels: dict[str, list[int]] = field(default_factory=dict)
    missed: dict[str, list[int]] = field(
        default_factory=lambda: {kind: [0, 0] for kind in ("all", "missed", "idle")})
    missed_painted: dict[str, ConfusionMatrix] = field(
        default_factory=lambda: {kind: ConfusionMatrix() for kind in ("none", "sent", "all")})
    frame_snrs: dict[int, float] = field(default_factory=dict)
    frame_mious: dict[int, float] = field(default_factory=dict)
    seconds_per_frame: float = float("nan")
    batch_size: int = 1
    threads: int = 1

    def error_shares(self) -> dict[str, float]:
        """Each of ERROR_PLACES as a share of the truth's signal pixels (the signal's errors)
        or noise pixels (the noise's), and the share of signal pixels where something was sent."""
        shares = {place: count / (self.signal_pixels if place.startswith("signal")
                                  else self.noise_pixels)
                  for place, count in self.error_places.items()}
        return {"signal sent": self.sent_pixels / self.signal_pixels, **shares}

    def summary(self) -> dict[str, Any]:
        """Every figure, JSON-ready (NaN as None)."""
        by_snr = {}
        for name in (*SNR_BINS, NOISE_ONLY, UNKNOWN):
            if name in self.by_snr:
                s = self.by_snr[name].summary()
                by_snr[name] = {"frames": self.frames_by_snr[name], "miou": s["miou"],
                                "pixel_accuracy": s["pixel_accuracy"],
                                "lte_as_nr": s["lte_as_nr"], "nr_as_lte": s["nr_as_lte"],
                                "false_alarm": false_alarm(self.by_snr[name].matrix)}
        by_view = {name: {"frames": self.frames_by_view[name],
                          **self.by_view[name].summary()} for name in VIEW_KINDS
                   if name in self.by_view}
        by_rate = {name: {"frames": self.frames_by_rate[name], **self.by_rate[name].summary(),
                          "false_alarm": false_alarm(self.by_rate[name].matrix)}
                   for name in _by_rate(self.by_rate)}
        return json_safe({
            "model": self.card.model,
            "overrides": self.card.overrides,
            "parameters": self.card.parameters,
            "gflops": self.card.gflops,
            "frames": self.frames,
            "pixels": self.confusion.summary(),
            "pixels_as_shown": self.shown.summary(),
            "lte_cells": {"frames_searched": self.lte_cells[0], "found": self.lte_cells[1],
                          "carriers_in_view": self.lte_carriers[0],
                          "carriers_found": self.lte_carriers[1],
                          "carriers_with_bandwidth": self.lte_carriers[2]},
            "nr_cells": {"found": self.nr_cells[0], "of_a_carrier": self.nr_cells[1],
                         "mib_decoded": self.nr_cells[2],
                         "carriers_with_ssb_in_view": self.nr_carriers[0],
                         "carriers_found": self.nr_carriers[1]},
            "pixels_as_sent": self.as_sent.summary() if self.signal_pixels else None,
            "silent_share": self.silent_pixels / self.signal_pixels if self.signal_pixels
            else None,
            "reachable_miou": {f"{share:g}": m.summary()["miou"]
                               for share, m in self.reachable.items()} if self.signal_pixels
            else None,
            "energy_painted_miou": self.energy_painted.summary()["miou"] if self.signal_pixels
            else None,
            "carrier_pixels_by_snr": {
                name: {"pixels": c[0], "called_signal": c[1] / c[0], "called_class": c[2] / c[0]}
                for name in SNR_BINS if (c := self.carrier_pixels.get(name))},
            "error_places": self.error_shares() if self.signal_pixels else None,
            "missed_carriers": {
                kind: {"carriers": n, "pixel_share": px / self.signal_pixels}
                for kind, (n, px) in self.missed.items()} if self.signal_pixels else None,
            "miou_missed_painted": {kind: m.summary()["miou"]
                                    for kind, m in self.missed_painted.items()}
            if self.signal_pixels else None,
            "carriers": self.carriers.summary(),
            "by_snr": by_snr,
            "by_view": by_view,
            "by_rate": by_rate,
            "ms_per_frame": 1e3 * self.seconds_per_frame,
            "batch_size": self.batch_size,
            "threads": self.threads,
        })


@dataclass
class CaptureResult:
    """One model on one real recording.

    Attributes:
        recording: the recording's name in truth.json.
        sample_rate: its sample rate.
        present: classes truth.json says are present.
        absent: classes it says are absent.
        frames: frames evaluated.
        rows: spectrogram rows evaluated (real rows only).
        counts: pixels given to each class (noise, LTE, NR).
        shown_counts: the same for the classes as the monitor shows them (carrier classes,
            with the carriers an LTE cell's PSS names made LTE, an NR cell's SSB NR).
        served: whether the sample rate is one the model was trained for.
        cells: the cells found in the frames (:mod:`monitor.occupancy.cells`), each once:
            ``"LTE PCI (duplex)"``, or ``"LTE PCI (duplex, N RB)"`` where a frame's MIB
            decoded; ``"NR PCI (SSB S kHz)"``.
    """

    recording: str
    sample_rate: float
    present: list[str]
    absent: list[str]
    frames: int
    rows: int
    counts: list[int]
    shown_counts: list[int]
    served: bool
    cells: list[str] = field(default_factory=list)

    def as_shown(self) -> CaptureResult:
        """The same recording judged on the classes as the monitor shows them."""
        return replace(self, counts=self.shown_counts)

    @property
    def shares(self) -> dict[str, float]:
        """Share of all pixels given to each class."""
        total = sum(self.counts)
        return {n: (c / total if total else float("nan"))
                for n, c in zip(CLASS_NAMES, self.counts, strict=True)}

    @property
    def signal_shares(self) -> dict[str, float]:
        """Of the pixels called LTE or NR, the share of each."""
        signal = self.counts[LTE] + self.counts[NR]
        return {CLASS_NAMES[c]: (self.counts[c] / signal if signal else float("nan"))
                for c in (LTE, NR)}

    def verdict(self) -> tuple[bool, str]:
        """Pass or fail against truth.json, and why."""
        if self.rows == 0:
            return False, "shorter than one spectrogram row"
        shares, signal = self.shares, self.signal_shares
        signal_share = shares["LTE"] + shares["NR"]
        if not self.present:
            limit = f"limit {100 * MAX_FALSE_ALARM:g} %"
            return signal_share < MAX_FALSE_ALARM, f"{100 * signal_share:.1f} % signal ({limit})"
        if signal_share < MIN_SIGNAL_SHARE:
            return False, f"only {100 * signal_share:.2f} % of the pixels called signal"
        dominant = max(("LTE", "NR"), key=lambda c: signal[c])
        if dominant not in self.present:
            return False, f"{dominant} dominates ({100 * signal[dominant]:.0f} % of signal)"
        for cls in self.absent:
            if cls in signal and signal[cls] >= MAX_OTHER_SHARE:
                return False, f"{cls} is absent but holds {100 * signal[cls]:.1f} % of signal"
        for cls in self.present:
            if signal[cls] < MAX_OTHER_SHARE:
                return False, f"{cls} is present but holds {100 * signal[cls]:.1f} % of signal"
        others = ", ".join(f"{c} {100 * signal[c]:.1f} %" for c in self.absent if c in signal)
        return True, f"{dominant} dominates; {others} of signal"

    def summary(self) -> dict[str, Any]:
        passed, reason = self.verdict()
        shown = self.as_shown()
        shown_passed, shown_reason = shown.verdict()
        return json_safe({
            "recording": self.recording, "sample_rate": self.sample_rate,
            "present": self.present, "absent": self.absent, "served": self.served,
            "frames": self.frames, "rows": self.rows, "shares": self.shares,
            "signal_shares": self.signal_shares, "passed": passed, "reason": reason,
            "as_shown": {"shares": shown.shares, "signal_shares": shown.signal_shares,
                         "passed": shown_passed, "reason": shown_reason},
            "cells": self.cells,
        })


def snr_bin(snr_db: float | None) -> str:
    """The report's SNR bin of a frame (None: a frame without a carrier)."""
    if snr_db is None:
        return NOISE_ONLY
    k = int(np.clip((snr_db - SNR_EDGES[0]) // 5, 0, len(SNR_BINS) - 1))
    return SNR_BINS[k]


def rate_key(meta: dict[str, Any]) -> str:
    """The report's sample-rate group of a frame ("unknown" for frames that do not say)."""
    rate = meta.get("sample_rate")
    return UNKNOWN if rate is None else f"{rate / 1e6:g} MS/s"


def view_kind(mask: torch.Tensor) -> str:
    """What a frame's class mask shows: no noise pixel (a view inside carriers, which at a scale
    tied to the frame's own floor can look like noise), carriers and noise, or noise only."""
    if not bool((mask == 0).any()):
        return INSIDE
    return MIXED if bool((mask != 0).any()) else NOISE_ONLY


def evaluate(
    model: nn.Module,
    card: ModelCard,
    frames: FrameSet,
    name: str,
    limit: int | None = None,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    cells: bool = False,
    nr_found: dict[int, tuple[NrCell, ...]] | None = None,
) -> EvalResult:
    """Run ``model`` on the frames (of the first ``limit``, those at rates it serves) and
    measure everything.

    With ``cells``, the classes as shown are the monitor's in full: each frame's IQ is rendered
    again (:meth:`~monitor.train.data.FrameSet.samples`) and searched for LTE and NR cells
    (:func:`~monitor.occupancy.cells.search_cells`), whose PSS or SSB names their carriers.
    That costs seconds a frame. The NR search takes the whole view, whatever the model's
    classes: ``nr_found`` (frame index: cells, filled as they are found) lets the models of one
    report share it.

    Raises:
        InputError: if the frames do not fit the model (channels, image size).
    """
    g = card.geometry
    if frames.in_chans != card.in_chans:
        raise InputError(f"{name} takes {card.in_chans} input channels, the data gives "
                         f"{frames.in_chans}")
    device = torch.device(device)
    model = model.to(device).eval()
    result = EvalResult(name, card, batch_size=batch_size, threads=torch.get_num_threads())
    count = len(frames) if limit is None else min(limit, len(frames))
    served = [i for i in range(count) if (rate := frames.rate(i)) is None or card.serves(rate)]
    if not served:
        raise InputError(f"none of the frames is at a rate {name} serves")
    seconds = 0.0
    for first in range(0, len(served), batch_size):
        indices = served[first : first + batch_size]
        inputs, labels, metas = collate([frames[i] for i in indices])
        if tuple(labels.shape[-2:]) != (g["height"], g["width"]):
            raise InputError(f"the data's frames are {tuple(labels.shape[-2:])}, {name} was "
                             f"trained on {g['height']}x{g['width']}")
        inputs = inputs.to(device)
        if first == 0:  # the first call pays for allocation and kernel choice: run, not timed
            segment(model, inputs)
        start = time.perf_counter()
        prediction = segment(model, inputs).cpu()
        seconds += time.perf_counter() - start
        result.confusion.update(prediction, labels)
        shown = [_shown(p.numpy(), frames, i, card, result if cells else None, meta, nr_found)
                 for i, p, meta in zip(indices, prediction, metas, strict=True)]
        result.shown.update(torch.from_numpy(np.stack(shown)), labels)
        for i, pred, truth, meta in zip(indices, prediction, labels, metas, strict=True):
            spans = predicted_carriers(pred)
            if "carriers" in meta:
                geometry = card.geometry_for(meta["sample_rate"])
                _count_as_sent(result, frames.energy(i), pred, truth, meta, geometry)
                _count_carrier_pixels(result, pred.numpy(), truth.numpy(), meta, geometry)
                truth_spans = truth_carriers(meta, geometry)
                snr = _frame_snr(meta, geometry)
                key = snr_bin(snr)
                if snr is not None and snr >= MIN_SNR_DB:
                    result.frame_snrs[i] = snr
                    result.frame_mious[i] = frame_miou(pred, truth)
                result.carriers.edges.extend(edge_errors(spans, meta, geometry))
            else:
                truth_spans, key = predicted_carriers(truth), UNKNOWN
            result.carriers.update(spans, truth_spans)
            _tally(result.by_snr, result.frames_by_snr, key, pred, truth)
            _tally(result.by_view, result.frames_by_view, view_kind(truth), pred, truth)
            _tally(result.by_rate, result.frames_by_rate, rate_key(meta), pred, truth)
    result.frames = len(served)
    result.seconds_per_frame = seconds / len(served)
    return result


def _shown(prediction: np.ndarray, frames: FrameSet, index: int, card: ModelCard,
           searched: EvalResult | None, meta: dict[str, Any],
           nr_found: dict[int, tuple[NrCell, ...]] | None) -> np.ndarray:
    """A frame's classes as the monitor shows them; its cells searched for and counted in
    ``searched`` where given and where the frame's samples can be had, its NR cells taken from
    ``nr_found`` where they were found before."""
    samples = None if searched is None else frames.samples(index)
    if samples is None:
        return carrier_classes(prediction)
    geometry = card.geometry_for(float(frames.rate(index)))
    nr_found = {} if nr_found is None else nr_found
    if index in nr_found:
        cells = FrameCells(tuple(find_frame_cells(samples, geometry, prediction)), nr_found[index])
    else:
        cells = search_cells(samples, geometry, prediction)
        nr_found[index] = cells.nr
    done, found = searched.lte_cells
    searched.lte_cells = (done + 1, found + len(cells.lte))
    in_view, found, sized = _cells_found(meta, list(cells.lte), geometry)
    before = searched.lte_carriers
    searched.lte_carriers = (before[0] + in_view, before[1] + found, before[2] + sized)
    found, right, decoded = searched.nr_cells
    of_a_carrier = _nr_cells_right(meta, cells.nr)
    searched.nr_cells = (found + len(cells.nr), right + len(of_a_carrier),
                         decoded + sum(c.pbch is not None for c in of_a_carrier))
    in_view, found = _nr_carriers_found(meta, frames.ssbs_in_view(index), of_a_carrier)
    searched.nr_carriers = (searched.nr_carriers[0] + in_view, searched.nr_carriers[1] + found)
    return carrier_classes(prediction, cell_marks(cells, geometry))


def _nr_cells_right(meta: dict[str, Any], cells: Sequence[NrCell]) -> list[NrCell]:
    """The ``cells`` that are a cell of the frame: an NR carrier with the cell's PCI whose band
    (resource blocks) holds its SSB's centre."""
    return [cell for cell in cells
            if any(_is_cell_of(cell, c) for c in meta.get("carriers", []))]


def _is_cell_of(cell: NrCell, carrier: dict[str, Any]) -> bool:
    """Whether ``cell`` is the NR ``carrier``'s: its PCI, and its SSB's centre in its band."""
    return (carrier["label"] == "NR" and carrier["cell_id"] == cell.cell_id
            and carrier["occupied_low_hz"] <= cell.ssb_hz <= carrier["occupied_high_hz"])


def _nr_carriers_found(meta: dict[str, Any], ssbs: list[int] | None,
                       cells: Sequence[NrCell]) -> tuple[int, int]:
    """Of a frame's NR carriers that sent an SSB whole in view (``ssbs``: per carrier, how
    many), how many, and how many of them ``cells`` (the frame's cells of an NR carrier) found."""
    if ssbs is None:
        return 0, 0
    in_view = found = 0
    for carrier, sent in zip(meta.get("carriers", []), ssbs, strict=True):
        if carrier["label"] == "NR" and sent:
            in_view += 1
            found += any(_is_cell_of(cell, carrier) for cell in cells)
    return in_view, found


def _cells_found(meta: dict[str, Any], cells: list[LteCell], geometry: Geometry
                 ) -> tuple[int, int, int]:
    """Of a frame's LTE carriers whose PSS lies in view: how many, how many ``cells`` found with
    their PCI, and how many of those with their bandwidth from the MIB."""
    edge = geometry.sample_rate / 2 - PSS_HALF_BAND_HZ
    in_view = found = sized = 0
    for carrier in meta.get("carriers", []):
        centre = (carrier["freq_low_hz"] + carrier["freq_high_hz"]) / 2
        if carrier["label"] != "LTE" or abs(centre) > edge:
            continue
        in_view += 1
        cell = next((c for c in cells if c.cell_id == carrier["cell_id"]
                     and abs(c.centre_hz - centre) <= SAME_CELL_HZ), None)
        found += cell is not None
        width = carrier["freq_high_hz"] - carrier["freq_low_hz"]
        sized += cell is not None and cell.channel_hz is not None and abs(
            cell.channel_hz - width) < 1e3
    return in_view, found, sized


def _tally(groups: dict[str, ConfusionMatrix], frames: dict[str, int], key: str,
           pred: torch.Tensor, truth: torch.Tensor) -> None:
    """Count a frame's pixels and the frame itself in its group ``key``."""
    groups.setdefault(key, ConfusionMatrix()).update(pred, truth)
    frames[key] = frames.get(key, 0) + 1


def _labelled_carriers(meta: dict[str, Any], truth: np.ndarray, geometry: Geometry
                       ) -> Iterator[tuple[dict[str, Any], int, Any, np.ndarray]]:
    """A frame's carriers that own labelled pixels: each with its class, its region
    (:func:`~monitor.synth.truth.carrier_region`) and where in it the truth is its class."""
    for carrier in meta["carriers"]:
        cls = CLASS_INDEX[carrier["label"]]
        region = carrier_region(carrier, geometry)
        own = truth[region] == cls
        if own.any():
            yield carrier, cls, region, own


def _count_carrier_pixels(result: EvalResult, pred: np.ndarray, truth: np.ndarray,
                          meta: dict[str, Any], geometry: Geometry) -> None:
    """Count each carrier's labelled pixels, and those called signal and its class, in the
    bin of its own SNR."""
    for carrier, cls, region, own in _labelled_carriers(meta, truth, geometry):
        n = int(own.sum())
        called = pred[region][own]
        counts = result.carrier_pixels.setdefault(snr_bin(carrier["snr_db"]), [0, 0, 0])
        counts[0] += n
        counts[1] += int((called != 0).sum())
        counts[2] += int((called == cls).sum())


def _count_error_places(result: EvalResult, sent: torch.Tensor, pred: torch.Tensor,
                        truth: torch.Tensor) -> None:
    """Count a frame's wrong pixels by where they lie (ERROR_PLACES); ``sent``: where a carrier
    sent something (the energy mask)."""
    signal, called = truth != 0, pred != 0
    near = F.max_pool2d(signal[None, None].float(), (1, 2 * EDGE_PIXELS + 1), stride=1,
                        padding=(0, EDGE_PIXELS))[0, 0] > 0
    in_band = signal.any(dim=0, keepdim=True)
    missed, swapped, false = signal & ~called, signal & called & (pred != truth), ~signal & called
    counts = result.error_places
    for place, where in zip(ERROR_PLACES, (missed & sent, missed & ~sent, swapped & sent,
                                           swapped & ~sent, false & near,
                                           false & ~near & in_band, false & ~near & ~in_band),
                            strict=True):
        counts[place] += int(where.sum())
    result.sent_pixels += int((signal & sent).sum())
    result.noise_pixels += int((~signal).sum())


def _count_as_sent(result: EvalResult, energy: np.ndarray | None, pred: torch.Tensor,
                   truth: torch.Tensor, meta: dict[str, Any], geometry: Geometry) -> None:
    """Count a frame against the truth with its silent carriers as noise, where it has an
    energy mask."""
    if energy is None:
        return
    seen = torch.from_numpy(silent_as_noise(truth.numpy(), energy, meta["carriers"], geometry))
    result.as_sent.update(pred[None], seen[None])
    for share, matrix in result.reachable.items():
        reached = seen if share == 0 else torch.from_numpy(
            silent_as_noise(truth.numpy(), energy, meta["carriers"], geometry, share))
        matrix.update(reached[None], truth[None])
    result.energy_painted.update(torch.tensor(energy)[None], truth[None])  # a read-only map
    result.signal_pixels += int((truth != 0).sum())
    _count_error_places(result, torch.from_numpy(energy != 0), pred, truth)
    result.silent_pixels += int(((truth != 0) & (seen == 0)).sum())
    _count_missed(result, energy, pred.numpy(), truth.numpy(), meta, geometry)


def _count_missed(result: EvalResult, energy: np.ndarray, pred: np.ndarray, truth: np.ndarray,
                  meta: dict[str, Any], geometry: Geometry) -> None:
    """Count a frame's carriers that the classes miss (fewer than :data:`MISSED_SHARE` of their
    labelled pixels called signal), and its classes with those carriers painted."""
    painted = {kind: pred.copy() for kind in result.missed_painted}
    for _, cls, region, own in _labelled_carriers(meta, truth, geometry):
        n = int(own.sum())
        kinds = ["all"]
        if (pred[region][own] != 0).mean() < MISSED_SHARE:
            idle = (energy[region][own] != 0).mean() <= IDLE_SHARE
            kinds += ["missed", "idle"] if idle else ["missed"]
            for kind in ("all",) if idle else ("sent", "all"):  # "none" keeps the classes
                block = painted[kind][region]
                block[own] = cls
                painted[kind][region] = block
        for kind in kinds:
            result.missed[kind][0] += 1
            result.missed[kind][1] += n
    for kind, matrix in result.missed_painted.items():
        matrix.update(torch.from_numpy(painted[kind])[None], torch.from_numpy(truth)[None])


def evaluate_captures(
    model: nn.Module,
    card: ModelCard,
    captures_dir: str | Path,
    max_frames: int = 8,
    device: torch.device | str = "cpu",
) -> list[CaptureResult]:
    """Run ``model`` on every recording of ``captures_dir/truth.json`` (at most ``max_frames``
    consecutive frames each).

    Raises:
        InputError: for a missing or malformed truth.json, or a recording that cannot be read.
    """
    folder = Path(captures_dir)
    truth = _read_truth(folder)
    if card.in_chans != 1:
        raise InputError(f"{card.model} takes {card.in_chans}-channel pictures, not spectrograms")
    device = torch.device(device)
    model = model.to(device).eval()
    results = []
    for entry in truth:
        rec = open_recording(folder / f"{entry['recording']}.sigmf-meta")
        geometry = card.geometry_for(rec.sample_rate)
        spectrogram = Spectrogram(geometry, device)
        spr = geometry.samples_per_row
        rows_total = len(rec) // spr
        if rows_total >= geometry.height:
            spans = [(k * geometry.height, geometry.height)
                     for k in range(min(max_frames, rows_total // geometry.height))]
        else:
            spans = [(0, rows_total)] if rows_total else []
        counts = torch.zeros(len(CLASS_NAMES), dtype=torch.int64)
        shown = torch.zeros(len(CLASS_NAMES), dtype=torch.int64)
        lte: dict[tuple[int, str], int | None] = {}  # (PCI, duplex): RBs, where a MIB gave them
        # PCI: SSB subcarrier spacing and centre, and the MIB where a PBCH decoded
        nr: dict[int, tuple[float, float, NrMib | None]] = {}
        known: list[LteCell] = []  # as the monitor's, a cell keeps a MIB once decoded
        for first_row, rows in spans:
            iq = rec.read(first_row * spr, rows * spr)
            x = network_input(spectrogram.rows(torch.from_numpy(iq).to(device)))
            padded = pad_rows(x, geometry.height)
            prediction = segment(model, padded[None])[0, :rows].cpu().numpy()
            found = search_cells(iq, geometry, prediction)
            found = replace(found, lte=tuple(with_known_mibs(list(found.lte), known)))
            known = [*found.lte, *known]
            for c in found.lte:
                key = (c.cell_id, c.duplex)
                lte[key] = lte.get(key) or (c.mib.n_rb if c.mib else None)
            for c in found.nr:
                known_mib = nr[c.cell_id][2] if c.cell_id in nr else None
                nr[c.cell_id] = (c.scs, rec.center_freq + c.ssb_hz,
                                 c.pbch.mib if c.pbch else known_mib)
            carrier_shown = carrier_classes(prediction, cell_marks(found, geometry))
            counts += torch.bincount(torch.from_numpy(prediction).reshape(-1),
                                     minlength=len(CLASS_NAMES))
            shown += torch.bincount(torch.from_numpy(carrier_shown).reshape(-1),
                                    minlength=len(CLASS_NAMES))
        results.append(CaptureResult(
            recording=entry["recording"], sample_rate=rec.sample_rate,
            present=list(entry.get("present", [])), absent=list(entry.get("absent", [])),
            frames=len(spans), rows=sum(r for _, r in spans), counts=counts.tolist(),
            shown_counts=shown.tolist(),
            served=card.serves(rec.sample_rate),
            cells=[*(f"LTE {pci} ({duplex}, {n_rb} RB)" if n_rb else f"LTE {pci} ({duplex})"
                     for (pci, duplex), n_rb in lte.items()),
                   *(_nr_cell_text(pci, scs, ssb_hz if rec.center_freq > 0 else None, mib)
                     for pci, (scs, ssb_hz, mib) in nr.items())],
        ))
    return results


def _nr_cell_text(pci: int, scs: float, ssb_hz: float | None, mib: NrMib | None) -> str:
    """``NR 500 (SSB 30 kHz, GSCN 7855; MIB: barred, no SIB1)``: the GSCN where the SSB's
    frequency is known, what the MIB says where it decoded."""
    point = nearest_sync_raster(ssb_hz) if ssb_hz is not None else None
    raster = f", GSCN {point.gscn}" if point is not None else ""
    said = f"; MIB: {mib.summary()}" if mib is not None else ""
    return f"NR {pci} (SSB {scs / 1e3:g} kHz{raster}{said})"


def format_report(
    results: Sequence[EvalResult],
    captures: dict[str, list[CaptureResult]],
    command: str = "",
    data: str = "",
) -> str:
    """The report as Markdown: models, pixel metrics, carriers, mean IoU by SNR, captures."""
    lines = ["# Evaluation report", ""]
    if command:
        lines += [f"Regenerate with `{command}`.", ""]
    if data:
        lines += [f"Test data: {data}.", ""]
    if results:
        lines += _models_table(results) + _pixel_table(results) + _carrier_table(results)
        lines += (_snr_table(results) + _carrier_snr_table(results) + _missed_table(results)
                  + _view_table(results))
        lines += _rate_table(results)
        lines += _error_table([r for r in results if r.signal_pixels])
        lines += _confusion_tables(results)
    for name, recs in captures.items():
        lines += _captures_table(name, recs)
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    results: Sequence[EvalResult],
    captures: dict[str, list[CaptureResult]],
    out_dir: str | Path,
    command: str = "",
    data: str = "",
    gallery: Gallery | None = None,
) -> Path:
    """Write report.md, metrics.json and the plots into ``out_dir``; return report.md's path.
    ``gallery``: frames to draw with every model's classes (``worst.png``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.md"
    metrics = {
        "command": command,
        "data": data,
        "models": {r.name: r.summary() for r in results},
        "captures": {name: [c.summary() for c in recs] for name, recs in captures.items()},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if results:
        _plot_snr(results, out / "miou_vs_snr.png")
        _plot_confusion(results, out / "confusion.png")
    placed = [r for r in results if r.signal_pixels]
    if placed:
        _plot_error_places(placed, out / "errors.png")
    text = format_report(results, captures, command, data)
    if results:
        text += "\n![mean IoU against SNR](miou_vs_snr.png)\n\n![confusion](confusion.png)\n"
    if placed:
        text += "\n![where the errors lie](errors.png)\n"
    if gallery is not None and gallery.indices:
        plot_gallery(gallery, out / "worst.png")
        text += "\n" + "\n".join(_gallery_text(gallery, results[0].name)) + "\n"
    report.write_text(text)
    return report


def _gallery_text(gallery: Gallery, first: str) -> list[str]:
    return [
        "## The worst frames at high SNR", "",
        f"The {len(gallery.indices)} test frames {first} segments worst (lowest mean IoU of the "
        f"frame) of those whose strongest carrier is at least {MIN_SNR_DB:g} dB above the floor, "
        "with every model's classes on the same frames and each one's mean IoU of the frame. "
        "Labels mark a carrier's whole channel while it is on: where a carrier sent nothing in "
        "view, no model can see it.", "",
        "![the worst frames at high SNR](worst.png)",
    ]


def check_not_training_data(card: ModelCard, frames: FrameSet, name: str) -> None:
    """Refuse test frames drawn with the seed of the model's training data.

    Raises:
        InputError: if a data set of ``frames`` shares a seed with the model's training data.
    """
    if not isinstance(frames, ShardFrames):
        return
    trained = {
        entry["request"]["seed"]
        for entry in card.data.get("train", [])
        if isinstance(entry, dict) and "request" in entry
    }
    shared = trained & set(frames.seeds())
    if shared:
        raise InputError(
            f"the test data was drawn with seed {min(shared)}, like {name}'s training data: its "
            f"frames are training frames; draw test data with another --seed (or give "
            f"--training-data to measure how well {name} fits what it trained on)"
        )


def _frame_snr(meta: dict[str, Any], geometry: Any) -> float | None:
    """Highest SNR of the frame's carriers in view, None where there is none."""
    snrs = [c["snr_db"] for c in meta["carriers"]
            if truth_carriers({"carriers": [c]}, geometry)]
    return max(snrs) if snrs else None


def _read_truth(folder: Path) -> list[dict[str, Any]]:
    path = folder / "truth.json"
    try:
        truth = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{folder} has no truth.json (see ../shared/captures)") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if not isinstance(truth, list) or not all(
        isinstance(e, dict) and "recording" in e for e in truth
    ):
        raise InputError(f"{path} must be a list of objects with a 'recording' name")
    return truth


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}"


def _models_table(results: Sequence[EvalResult]) -> list[str]:
    lines = ["## Models", "",
             "| model | architecture | parameters | GFLOP/frame | rates served (MS/s) | "
             "ms/frame | frames |",
             "|---|---|---:|---:|---|---:|---:|"]
    for r in results:
        arch = r.card.model + (f" {r.card.overrides}" if r.card.overrides else "")
        low, high = (x / 1e6 for x in r.card.sample_rates)
        lines.append(f"| {r.name} | {arch} | {r.card.parameters:,} | {r.card.gflops:.2f} | "
                     f"{low:g}-{high:g} | {1e3 * r.seconds_per_frame:.1f} | {r.frames} |")
    threads = {r.threads for r in results}
    lines += ["", f"Time: forward pass only, batch {results[0].batch_size}, "
              f"{'/'.join(map(str, sorted(threads)))} torch thread(s), of the network as "
              "trained (batch norms not folded into the convolutions, contiguous memory), "
              "which is slower than the monitor's engines run it: `prmnet bench model` times "
              "it as they do.", ""]
    return lines


def _row(name: str, figures: Sequence[float]) -> str:
    """A table row: the model's name, then its figures as percentages."""
    return f"| {name} | " + " | ".join(_pct(v) for v in figures) + " |"


def _pixel_table(results: Sequence[EvalResult]) -> list[str]:
    lines = ["## Pixels (%)", "",
             "| model | mean IoU | IoU noise | IoU LTE | IoU NR | pixel acc. | mean acc. | "
             "F1 | precision | recall | LTE called NR | NR called LTE |",
             "|---|" + "---:|" * 11]
    for r in results:
        s = r.confusion.summary()
        cells = [s["miou"], *(s["iou"][c] for c in CLASS_NAMES), s["pixel_accuracy"],
                 s["mean_accuracy"], s["macro_f1"], s["macro_precision"], s["macro_recall"],
                 s["lte_as_nr"], s["nr_as_lte"]]
        lines.append(_row(r.name, cells))
    lines += ["", "F1, precision and recall: macro means over the three classes."]
    if len({r.frames for r in results}) > 1:
        lines += ["A model is evaluated on the frames at the rates it serves (the models' table "
                  "counts them); the table by sample rate compares models rate for rate."]
    return [*lines, "", *_shown_table(results),
            *_as_sent_table([r for r in results if r.signal_pixels]), *_reach_table(results)]


def _shown_table(results: Sequence[EvalResult]) -> list[str]:
    """The pixel figures of the classes as the monitor shows them, beside the network's own."""
    lines = ["As the monitor shows them: every signal pixel of a carrier in the class most of the "
             "carrier's columns give it (a carrier is LTE or NR, not both; `prmnet-monitor "
             "--raw-classes` shows the network's own). The last column is the change in mean "
             "IoU from the network's own classes.", ""]
    for r in results:
        if r.lte_cells[0]:
            in_view, found, sized = r.lte_carriers
            share = [n / in_view if in_view else float("nan") for n in (found, sized)]
            nr_found, nr_right, nr_mibs = r.nr_cells
            nr_in_view, nr_carriers = r.nr_carriers
            nr_share = nr_carriers / nr_in_view if nr_in_view else float("nan")
            lines += [f"{r.name}: {r.lte_cells[0]} frames searched for cells (`--cells`), "
                      f"{r.lte_cells[1]} LTE cells found; the carriers they name are LTE, and the "
                      f"signal in the channels their MIBs give. Of the {in_view} LTE carriers "
                      f"whose PSS lies in view, {found} were found with their PCI "
                      f"({_pct(share[0])} %), {sized} with their bandwidth from the MIB too "
                      f"({_pct(share[1])} %). {nr_found} NR cells found by their SSB, "
                      f"{nr_right} of them an NR carrier's of the frame (its PCI, the SSB in "
                      f"its band), {nr_mibs} of those with their MIB decoded; the carriers "
                      f"that hold their SSBs are NR. Of the {nr_in_view} NR carriers that sent "
                      f"an SSB whole in view (the symbol and subcarriers of its PSS), "
                      f"{nr_carriers} were found ({_pct(nr_share)} %).", ""]
    lines += _class_header("change")
    for r in results:
        s = r.shown.summary()
        change = s["miou"] - r.confusion.summary()["miou"]
        lines.append(_row(r.name, _class_cells(s)) + f" {100 * change:+.1f} |")
    return [*lines, ""]


def _class_header(*more: str) -> list[str]:
    """The head of a table of :func:`_class_cells` and ``more`` columns."""
    return ["| model | mean IoU | IoU noise | IoU LTE | IoU NR | pixel acc. | LTE called NR | "
            f"NR called LTE | {' | '.join(more)} |", "|---|" + "---:|" * (7 + len(more))]


def _class_cells(s: dict[str, Any]) -> list[float]:
    """Mean IoU, IoU per class, pixel accuracy and the LTE/NR confusion of a summary."""
    return [s["miou"], *(s["iou"][c] for c in CLASS_NAMES), s["pixel_accuracy"],
            s["lte_as_nr"], s["nr_as_lte"]]


def _as_sent_table(results: Sequence[EvalResult]) -> list[str]:
    """The pixel figures against what was sent: silent carriers as noise."""
    if not results:
        return []
    lines = ["Against what was sent: the labels mark a carrier's whole channel for as long as it "
             "is on, also where nothing is sent at that moment. A carrier that sent nothing in "
             "the view during the whole frame (an idle NR cell between its SSBs, or whose SSB "
             "lies outside the view) cannot be told from an empty channel by any receiver; "
             "here those carriers are noise. The last column is their share of the labelled "
             "signal pixels of the frames the model was evaluated on.", "",
             *_class_header("silent")]
    for r in results:
        lines.append(_row(r.name, [*_class_cells(r.as_sent.summary()),
                                   r.silent_pixels / r.signal_pixels]))
    return [*lines, ""]


def _carrier_table(results: Sequence[EvalResult]) -> list[str]:
    lines = ["## Carriers (%)", "",
             "A carrier is found when a predicted span of the same class overlaps its band with "
             "an IoU of at least 0.5.", "",
             "| model | precision | recall | LTE precision | LTE recall | NR precision | "
             "NR recall | true carriers |",
             "|---|" + "---:|" * 7]
    for r in results:
        s = r.carriers.summary()
        pc = s["per_class"]
        cells = [s["precision"], s["recall"], pc["LTE"]["precision"], pc["LTE"]["recall"],
                 pc["NR"]["precision"], pc["NR"]["recall"]]
        lines.append(f"| {r.name} | " + " | ".join(_pct(v) for v in cells) + f" | {s['truth']} |")
    lines += ["", "Edges of the found carriers wholly in view: the larger of a carrier's two edge "
              "errors as a share of its bandwidth, as painted and as fitted to the nominal 3GPP "
              "channel of its class (what the monitor logs).", "",
              "| model | carriers | within 5 % painted | within 5 % fitted | median painted | "
              "median fitted |", "|---|" + "---:|" * 5]
    for r in results:
        e = r.carriers.summary()["edges"]
        cells = [e["painted"]["within_5pct"], e["fitted"]["within_5pct"],
                 e["painted"]["median"], e["fitted"]["median"]]
        lines.append(f"| {r.name} | {e['carriers']} | " + " | ".join(_pct(v) for v in cells)
                     + " |")
    return [*lines, ""]


def _snr_table(results: Sequence[EvalResult]) -> list[str]:
    bins = [b for b in (*SNR_BINS, NOISE_ONLY, UNKNOWN) if any(b in r.by_snr for r in results)]
    lines = ["## Mean IoU by SNR (%)", "",
             "A frame's SNR is the highest of its carriers'; on frames without a carrier the "
             "figure is the false-alarm share (noise pixels called LTE or NR).", "",
             "| SNR | frames | " + " | ".join(r.name for r in results) + " |",
             "|---|---:|" + "---:|" * len(results)]
    lines += _group_rows(results, bins, lambda r: (r.by_snr, r.frames_by_snr),
                         lambda s: _pct(s["miou"]))
    lines += ["", "LTE called NR / NR called LTE by SNR (%):", "",
              "| SNR | frames | " + " | ".join(r.name for r in results) + " |",
              "|---|---:|" + "---:|" * len(results)]
    lines += _group_rows(results, [b for b in bins if b != NOISE_ONLY],
                         lambda r: (r.by_snr, r.frames_by_snr),
                         lambda s: f"{_pct(s['lte_as_nr'])} / {_pct(s['nr_as_lte'])}")
    return [*lines, ""]


def _reach_table(results: Sequence[EvalResult]) -> list[str]:
    """The mean IoU of the labels themselves with the carriers that sent least made noise."""
    widest = max(results, key=lambda r: r.frames)
    if not widest.signal_pixels:
        return []
    lines = ["## What a receiver can reach (%)", "",
             "The labels with every carrier that sent in at most a share of its channel (while "
             "on) made noise, scored against the labels: what a receiver that found every other "
             "carrier exactly, its whole channel, would score. Share 0: the carriers that sent "
             "nothing in view, which no receiver can see; an idle NR cell whose SSB is in view "
             "sends in about 1 % of its channel, and from its SSB alone no receiver can tell "
             f"where its channel ends. Over the {widest.frames:,} frames {widest.name} was "
             "evaluated on.", "",
             "| carrier sent in at most | mean IoU reachable |", "|---:|---:|"]
    lines += [f"| {100 * share:g} % | {_pct(m.summary()['miou'])} |"
              for share, m in widest.reachable.items()]
    lines += ["", "A receiver that painted exactly the pixels where each carrier sent (the energy "
              "mask) would score "
              f"{_pct(widest.energy_painted.summary()['miou'])} %: the labels ask for whole "
              "channels, not for what is seen of them."]
    return [*lines, ""]


def _missed_table(results: Sequence[EvalResult]) -> list[str]:
    """The carriers each model misses whole, and what finding them would be worth."""
    measured = [r for r in results if r.signal_pixels]
    if not measured:
        return []
    lines = ["## Carriers missed (%)", "",
             f"A carrier is missed when under {100 * MISSED_SHARE:g} % of its labelled pixels "
             f"are called signal; idle when it sent in at most {100 * IDLE_SHARE:g} % of them "
             "(silent, or an idle NR cell's SSBs), so that no receiver can find its channel. "
             "Then the mean IoU with the missed carriers that sent more painted their class, "
             "as a receiver that found them whole would paint them, and with every missed "
             "carrier painted.", "",
             "| model | carriers missed | their share of signal | of which idle | their share "
             "| mean IoU | missed that sent painted | every missed painted |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in measured:
        (total, _), (missed, missed_px), (idle, idle_px) = (
            r.missed[k] for k in ("all", "missed", "idle"))
        lines.append(
            f"| {r.name} | {missed} of {total} | {_pct(missed_px / r.signal_pixels)} | {idle} | "
            f"{_pct(idle_px / r.signal_pixels)} | "
            f"{_pct(r.missed_painted['none'].summary()['miou'])} | "
            f"{_pct(r.missed_painted['sent'].summary()['miou'])} | "
            f"{_pct(r.missed_painted['all'].summary()['miou'])} |")
    return [*lines, ""]


def _carrier_snr_table(results: Sequence[EvalResult]) -> list[str]:
    """Each carrier's labelled pixels by its own SNR: found as signal, and in its class."""
    bins = [b for b in SNR_BINS if any(b in r.carrier_pixels for r in results)]
    if not bins:
        return []
    widest = max(results, key=lambda r: r.frames)  # the shares: of the most frames evaluated
    total = sum(counts[0] for counts in widest.carrier_pixels.values())
    lines = ["## Carrier pixels by the carrier's SNR (%)", "",
             "Each carrier's labelled pixels in the bin of its own SNR (above, a frame is binned "
             "by its strongest carrier): their share of all labelled signal pixels, then per "
             "model the share called signal / called the carrier's class. Silent carriers are "
             "counted.", "",
             "| carrier SNR | share of signal | " + " | ".join(r.name for r in results) + " |",
             "|---|---:|" + "---:|" * len(results)]
    for name in bins:
        share = _pct(widest.carrier_pixels[name][0] / total) if name in widest.carrier_pixels \
            else "n/a"
        cells = []
        for r in results:
            n, signal, right = r.carrier_pixels.get(name, (0, 0, 0))
            cells.append(f"{_pct(signal / n)} / {_pct(right / n)}" if n else "n/a")
        lines.append(f"| {name} | {share} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _view_table(results: Sequence[EvalResult]) -> list[str]:
    kinds = [k for k in VIEW_KINDS if any(k in r.by_view for r in results)]
    lines = ["## By kind of view (%)", "",
             "Inside a carrier: no noise pixel in the frame; with the scale tied to the frame's "
             "own floor, a view inside an evenly loaded carrier looks like noise. Each cell: mean "
             "IoU / pixel accuracy (inside a carrier, the noise IoU is 0 wherever any noise is "
             "called, so the accuracy says more); on noise-only frames, the false-alarm share.",
             "",
             "| view | frames | " + " | ".join(r.name for r in results) + " |",
             "|---|---:|" + "---:|" * len(results)]
    lines += _group_rows(results, kinds, lambda r: (r.by_view, r.frames_by_view),
                         lambda s: f"{_pct(s['miou'])} / {_pct(s['pixel_accuracy'])}")
    return [*lines, ""]


def _rate_table(results: Sequence[EvalResult]) -> list[str]:
    rates = _by_rate({k: None for r in results for k in r.by_rate})
    lines = ["## By sample rate (%)", "",
             "Each cell: mean IoU, LTE called NR / NR called LTE, and the false-alarm share "
             "(noise pixels called LTE or NR). At the low rates a view is narrower than most "
             "carriers and often lies inside one.", "",
             "| rate | frames | " + " | ".join(r.name for r in results) + " |",
             "|---|---:|" + "---:|" * len(results)]
    lines += _group_rows(
        results, rates, lambda r: (r.by_rate, r.frames_by_rate),
        lambda s: (f"{_pct(s['miou'])}, {_pct(s['lte_as_nr'])} / {_pct(s['nr_as_lte'])}, "
                   f"{_pct(s['false_alarm'])}"))
    return [*lines, ""]


def _error_table(results: Sequence[EvalResult]) -> list[str]:
    """Where the wrong pixels lie (ERROR_PLACES), on the frames with an energy mask."""
    if not results:
        return []
    lines = ["## Where the errors lie (%)", "",
             "Signal pixels called noise or the other class, as a share of the labelled signal "
             "pixels, apart by whether the carrier sent at least a tenth of a fully loaded "
             "carrier's energy in the pixel (the energy mask, as sent) or little or nothing: the "
             "labels mark a carrier's whole channel while it is on, sent or not, and an idle LTE "
             "carrier's reference signals are under a tenth. The first column is the share of "
             "signal pixels where a tenth or more was sent. Noise pixels called signal, as a "
             f"share of the noise pixels: within {EDGE_PIXELS} pixels of a carrier in the same "
             "row (its edge), elsewhere in a column that is a carrier's in another row (its band "
             "while it is off), or apart from any carrier.", "",
             "| model | signal sent | called noise: sent | little or none | other class: sent | "
             "little or none | noise called signal: edge | band while off | apart |",
             "|---|" + "---:|" * 8]
    lines += [_row(r.name, list(r.error_shares().values())) for r in results]
    return [*lines, ""]


def _by_rate(groups: dict[str, Any]) -> list[str]:
    """The keys of per-rate groups from the lowest rate up, "unknown" last."""
    return sorted(groups, key=lambda k: (k == UNKNOWN, float(k.split()[0]) if k != UNKNOWN
                                         else 0.0))


def _group_rows(
    results: Sequence[EvalResult],
    keys: Sequence[str],
    groups: Callable[[EvalResult], tuple[dict[str, ConfusionMatrix], dict[str, int]]],
    figure: Callable[[dict[str, Any]], str],
) -> list[str]:
    """A table row per group of frames: the frames, and each model's figure (on noise-only
    frames, the false-alarm share)."""
    rows = []
    for key in keys:
        frames = max(groups(r)[1].get(key, 0) for r in results)
        cells = []
        for r in results:
            matrices = groups(r)[0]
            if key not in matrices:
                cells.append("")
            elif key == NOISE_ONLY:
                cells.append(f"{_pct(false_alarm(matrices[key].matrix))} false alarm")
            else:
                m = matrices[key]
                cells.append(figure({**m.summary(), "false_alarm": false_alarm(m.matrix)}))
        rows.append(f"| {key} | {frames} | " + " | ".join(cells) + " |")
    return rows


def _confusion_tables(results: Sequence[EvalResult]) -> list[str]:
    lines = ["## Confusion (% of each true class)", ""]
    for r in results:
        m = r.confusion.matrix.to(torch.float64)
        rows = m / m.sum(dim=1, keepdim=True).clamp(min=1)
        lines += [f"{r.name}:", "", "| true \\ called | " + " | ".join(CLASS_NAMES) + " |",
                  "|---|" + "---:|" * len(CLASS_NAMES)]
        lines += [f"| {CLASS_NAMES[i]} | " + " | ".join(f"{100 * v:.1f}" for v in row.tolist())
                  + " |" for i, row in enumerate(rows)]
        lines.append("")
    return lines


def _captures_table(name: str, recs: Sequence[CaptureResult]) -> list[str]:
    served = [r for r in recs if r.served]
    others = [r for r in recs if not r.served]
    count = f"{_passed(served)} of {len(served)}"
    if others:
        count += f" at the rates it serves pass; {_passed(others)} of {len(others)} others"
    else:
        count += " pass"
    count += f"; as shown, {_passed(served, shown=True)} of {len(served)}"
    if others:
        count += f" and {_passed(others, shown=True)} of {len(others)}"
    lines = [f"## Real recordings: {name} ({count})", "",
             "| recording | MS/s | present | rows | noise % | LTE % | NR % | LTE % of signal | "
             "NR % of signal | verdict | as shown (carrier classes) | "
             "cells (PCI; LTE MIB; NR GSCN, MIB) |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for r in recs:
        ok, reason = r.verdict()
        shown_ok, shown_reason = r.as_shown().verdict()
        sh, sig = r.shares, r.signal_shares
        rate = f"{r.sample_rate / 1e6:g}" + ("" if r.served else " (not served)")
        lines.append(
            f"| {r.recording} | {rate} | {', '.join(r.present) or 'none'} | {r.rows} | "
            f"{_pct(sh['noise'])} | {_pct(sh['LTE'])} | {_pct(sh['NR'])} | {_pct(sig['LTE'])} | "
            f"{_pct(sig['NR'])} | {'pass' if ok else 'FAIL'}: {reason} | "
            f"{'pass' if shown_ok else 'FAIL'}: {shown_reason} | {', '.join(r.cells) or '-'} |"
        )
    return [*lines, ""]


def _passed(recs: Sequence[CaptureResult], shown: bool = False) -> int:
    """How many recordings pass, on the network's classes or as the monitor shows them."""
    return sum((r.as_shown() if shown else r).verdict()[0] for r in recs)


def _plot_snr(results: Sequence[EvalResult], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    centres = [(lo + hi) / 2 for lo, hi in itertools.pairwise(SNR_EDGES)]
    for r in results:
        points = [(c, r.by_snr[b].summary()["miou"]) for c, b in zip(centres, SNR_BINS,
                                                                      strict=True)
                  if b in r.by_snr]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, [100 * y for y in ys], marker="o", label=r.name)
    ax.set_xlabel("frame SNR (highest carrier), dB")
    ax.set_ylabel("mean IoU, %")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)


def _plot_error_places(results: Sequence[EvalResult], path: Path) -> None:
    """Stacked bars per model: the signal's wrong pixels by place (share of the signal pixels),
    the noise's (share of the noise pixels)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.0, 1.8 + 0.35 * len(results)), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    names = [r.name for r in results]
    for ax, kind in zip(axes, ("signal", "noise"), strict=True):
        places = [p for p in ERROR_PLACES if p.startswith(kind)]
        left = np.zeros(len(results))
        for place in places:
            shares = 100 * np.array([r.error_shares()[place] for r in results])
            ax.barh(names, shares, left=left, label=place.removeprefix(f"{kind} called "))
            left += shares
        ax.set_title(("signal called noise or the other class" if kind == "signal"
                      else "noise called signal") + f", % of the {kind} pixels")
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2)
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()
    fig.savefig(path, dpi=120)


def _plot_confusion(results: Sequence[EvalResult], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.6 * len(results), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(results)))
    for ax, r in zip(axes, results, strict=True):
        m = r.confusion.matrix.to(torch.float64)
        rows = (m / m.sum(dim=1, keepdim=True).clamp(min=1)).numpy()
        ax.imshow(rows, vmin=0, vmax=1, cmap="Blues")
        for i in range(rows.shape[0]):
            for j in range(rows.shape[1]):
                ax.text(j, i, f"{100 * rows[i, j]:.1f}", ha="center", va="center",
                        color="white" if rows[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES)
        ax.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
        ax.set_xlabel("called")
        ax.set_ylabel("true")
        ax.set_title(r.name)
    fig.savefig(path, dpi=120)

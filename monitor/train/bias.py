"""``prmnet tune-bias``: per-class logit offsets chosen on a run's validation frames.

A segmentation network can find the signal well and still lean towards one class where it
hesitates between two: the class weights of the loss, and class shares in training that differ
from the ones it meets, move its decision boundaries. Adding an offset to each class's logit
moves the boundaries without touching the features. The offsets (noise's fixed at 0) are chosen
on the run's validation frames, never the test set, as those with the best macro mean IoU on a
grid among the offsets whose false-alarm share (pixels of the noise-only validation frames
called LTE or NR) is at most ``max_false_alarm``, and then folded into the bias of the network's
last convolution: the tuned checkpoint is an ordinary one, so the export, the engines and the
monitor need nothing new. Its card records the offsets and the validation figures before and
after.

Why the false-alarm bound: mean IoU barely moves with a common offset on both signal logits
over a range of them (on the shipped model's test set, 64.3-64.5 % from 0 to -0.5), while the
share of empty spectrum painted as signal falls four-fold over the same range; a monitor that
logs carriers where there are none is worse than the mean IoU says. The default bound,
``MAX_FALSE_ALARM``, leaves a margin under the 2 % a noise recording may show (the share
measured on noise-only generator frames follows the one on a real noise recording closely:
5.3 and 5.2 % for the shipped model before the bound).

The search is exact up to a binning of logit differences: each validation pixel's
``(LTE - noise, NR - noise)`` logit differences go into a 2-D histogram per true class, and the
pixel counts each offset pair gives every class are sums over half-planes of those histograms.
The figures written to the card are measured again, exactly, with the tuned network.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engines.prmnet import CLASS_NAMES
from monitor.errors import InputError
from monitor.train.cards import load_checkpoint, round_to_half, save_checkpoint
from monitor.train.data import collate, open_frames
from monitor.train.loop import BEST, TrainConfig, split_data, validate
from monitor.train.metrics import false_alarm, summarize_confusion

__all__ = ["GRID", "MAX_FALSE_ALARM", "BiasResult", "classifier", "tune_bias", "tune_run"]

GRID = np.round(np.arange(-3.0, 3.0001, 0.1), 2)
"""Offsets tried for LTE and for NR, each (noise's is 0)."""
SPAN = 12.0
BIN = 0.05
TUNED = "tuned"
MAX_FALSE_ALARM = 0.015
"""Default bound on the validation false-alarm share."""


@dataclass(frozen=True)
class BiasResult:
    """What tuning found.

    Attributes:
        offsets: added to the logits of noise, LTE and NR (noise's is 0).
        before: validation figures of the network as trained.
        after: those of the tuned network.
        path: the tuned checkpoint, where written.
    """

    offsets: tuple[float, float, float]
    before: dict[str, Any]
    after: dict[str, Any]
    path: Path | None = None


def classifier(model: nn.Module) -> nn.Conv2d:
    """The network's last convolution, whose bias holds the class offsets."""
    found = [m for name, m in model.named_modules() if name.split(".")[-1] == "classifier"]
    if len(found) != 1 or not isinstance(found[0], nn.Conv2d) or found[0].bias is None:
        raise InputError(f"{type(model).__name__} has no single biased classifier convolution")
    return found[0]


def tune_bias(model: nn.Module, frames: Any, indices: list[int], device: torch.device,
              batch_size: int = 8, max_false_alarm: float | None = MAX_FALSE_ALARM,
              ) -> tuple[tuple[float, float, float], np.ndarray]:
    """The offsets with the best validation mean IoU whose false alarm on the noise-only
    validation frames is at most ``max_false_alarm`` (None: unbounded; where no offsets meet
    the bound, those with the least false alarm), and the estimated confusion they give.

    Args:
        model: the trained network (left unchanged).
        frames: the frame set, and ``indices``: the validation frames in it.
        device: where the network runs.
    """
    bins = round(2 * SPAN / BIN)
    # per true class, and a last one: the pixels of frames without any signal
    hist = np.zeros((len(CLASS_NAMES) + 1, bins, bins), dtype=np.int64)
    model.eval()
    with torch.inference_mode():
        for first in range(0, len(indices), batch_size):
            inputs, labels, _ = collate([frames[i] for i in indices[first : first + batch_size]])
            logits = model(inputs.to(device)).float().cpu().numpy()
            diffs = logits[:, 1:] - logits[:, :1]  # (N, 2, H, W): LTE - noise, NR - noise
            cells = np.clip(((diffs + SPAN) / BIN).astype(np.int64), 0, bins - 1)
            truth = labels.numpy().astype(np.int64)
            empty = truth.reshape(len(truth), -1).max(axis=1) == 0
            truth[empty] = len(CLASS_NAMES)
            flat = (truth * bins + cells[:, 0]) * bins + cells[:, 1]
            hist += np.bincount(flat.ravel(), minlength=hist.size).reshape(hist.shape)
    centres = -SPAN + (np.arange(bins) + 0.5) * BIN
    a, b = np.meshgrid(centres, centres, indexing="ij")
    pixels = np.concatenate([hist[:1] + hist[-1:], hist[1:-1]])  # noise-only frames are noise
    candidates = []
    for lte in GRID:
        for nr in GRID:
            cm = _confusion(pixels, a + lte, b + nr)
            alarm = _confusion(hist[-1:], a + lte, b + nr)  # the noise row alone
            candidates.append((false_alarm(alarm), summarize_confusion(cm)["miou"],
                               (0.0, float(lte), float(nr)), cm))
    bound = math.inf if max_false_alarm is None or not hist[-1].any() else max_false_alarm
    allowed = [c for c in candidates if c[0] <= bound] or [min(candidates, key=lambda c: c[0])]
    best = max(allowed, key=lambda c: c[1])  # the first of equals: GRID order
    return best[2], best[3]


def _confusion(hist: np.ndarray, lte: np.ndarray, nr: np.ndarray) -> np.ndarray:
    """Pixel counts [truth, prediction] when the LTE and NR logits exceed noise's by ``lte``
    and ``nr`` in each histogram cell (ties go to the lower class, as argmax does)."""
    predicted = np.where((lte <= 0) & (nr <= 0), 0, np.where(lte >= nr, 1, 2))
    return np.stack([[h[predicted == c].sum() for c in range(len(CLASS_NAMES))] for h in hist])


def tune_run(run_dir: str | Path, command: str = "", device: str = "cpu",
             max_false_alarm: float | None = MAX_FALSE_ALARM, half: bool = False) -> BiasResult:
    """Tune the best checkpoint of a training run on that run's validation frames (see
    :func:`tune_bias`); write ``RUN_DIR/tuned.safetensors`` with its card.

    ``half``: store the tuned weights in float16 (about half the size, for the paper-size
    network; a tensor float16 cannot hold stays float32, and the card names it); the figures
    after tuning are measured with the weights so rounded.

    Raises:
        InputError: for a folder that is not a finished-enough run.
    """
    run = Path(run_dir)
    config_path = run / "config.json"
    if not config_path.is_file() or not (run / f"{BEST}.safetensors").is_file():
        raise InputError(f"{run} is not a training run with a best checkpoint "
                         f"(config.json and {BEST}.safetensors)")
    config = TrainConfig.from_dict(json.loads(config_path.read_text()), str(config_path))
    frames = open_frames(config.data.train, config.data.truth)
    _, val_frames, val_idx = split_data(config.data, frames)
    dev = torch.device(device)
    model, card = load_checkpoint(run / f"{BEST}.safetensors", dev)
    empty_idx = [i for i in val_idx if val_frames.raw(i)[1].max() == 0]
    before = _validate(model, val_frames, val_idx, empty_idx, dev)
    offsets, _ = tune_bias(model, val_frames, val_idx, dev, max_false_alarm=max_false_alarm)
    with torch.no_grad():
        classifier(model).bias += torch.tensor(offsets, dtype=torch.float32, device=dev)
    kept = round_to_half(model) if half else []
    after = _validate(model, val_frames, val_idx, empty_idx, dev)
    card.metrics = {**card.metrics, "validation": after, "validation_before_bias": before}
    card.training = {**card.training, "class_bias": {
        "offsets": list(offsets), "chosen_on": "validation frames of the run",
        "max_false_alarm": max_false_alarm, "noise_only_frames": len(empty_idx),
        "command": command},
        **({"stored_as": "float16", "stored_as_float32": kept} if half else {})}
    path = save_checkpoint(model, card, run / f"{TUNED}.safetensors", half=half)
    return BiasResult(offsets, before, after, path)


def _validate(model: nn.Module, frames: Any, indices: list[int], empty: list[int],
              device: torch.device) -> dict[str, Any]:
    """The validation figures, with the false alarm on the noise-only frames ``empty``."""
    figures = validate(model, frames, indices, device)
    if not empty:
        return {**figures, "false_alarm": math.nan}
    noise_only = np.asarray(validate(model, frames, empty, device)["confusion"])
    return {**figures, "false_alarm": false_alarm(noise_only)}

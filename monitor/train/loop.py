"""``prmnet train``: train a segmentation network from a TOML configuration.

A run lives in a run folder::

    config.json         the configuration as resolved (checked when the run resumes)
    ckpt-last.pt        model, optimizer, schedule, step, RNG and best-so-far: the run's state
    best.safetensors    the weights with the best validation mean IoU so far
    best.json           their model card
    log.jsonl           one line per validation: step, training loss, validation metrics

Running the same command again resumes from ``ckpt-last.pt`` and gives the weights an
uninterrupted run would have given: the model is initialised from the seed, the batch of every
step is a fixed function of the seed and the step (:class:`monitor.train.data.StepBatches`), and
the checkpoint holds everything else. ``max_minutes`` (``--max-minutes``), SIGTERM or a first
Ctrl-C end a run cleanly after the current step, with a checkpoint, so a long run can go in the
background a few hours at a time. Checkpoints are written to a temporary file and renamed. A
run stopped before its first validation validates then, so that it leaves weights to use.

``fit_minutes`` (``--fit-minutes``) sizes a new run to a wall time, for a machine lent for a
fixed time: it times ``FIT_PROBE_STEPS`` training steps (on a copy of the model, with the run's
own batches and loader) and a validation, and replaces ``optim.steps`` with as many steps as fit,
validations included, so the learning-rate schedule ends when the time does. The fitted step
count is the run's from then on (``config.json``); a resumed run keeps it.

Configuration (TOML; relative paths are relative to the working directory)::

    model = "prmnet_w8"          # a name of engines.prmnet.MODEL_CONFIGS
    seed = 1
    init = ""                    # optional: start from these weights (a checkpoint whose
                                 # network has the same tensors, e.g. another time_pool)
    [overrides]                  # optional constructor arguments, e.g. base_width = 12
    [data]
    train = ["data/train"]       # prmnet synth dataset folders (or the authors' PNG layout)
    val = ["data/val"]           # validation folders, or instead:
    val_fraction = 0.02          # hold this share of the training frames out (by frame identity)
    val_frames = 256             # validate on at most this many (full-size) frames
    rates = [1.92e6, 2.4e6]      # optional: only the frames at these sample rates (a model for
                                 # some rates, which its card then serves alone)
    truth = "channel"            # the labels: "channel" (the reference convention: a carrier's
                                 # channel while it is on) or "sent" (carriers that sent nothing
                                 # in the frame are noise), monitor.train.data
    [optim]
    steps = 20000                # or epochs = 10
    batch_size = 8
    lr = 2e-3                    # AdamW, linear warm-up then cosine down to lr * min_lr_ratio
    weight_decay = 1e-4          # not applied to biases and norm weights
    warmup_steps = 200
    min_lr_ratio = 0.01
    [loss]
    class_weights = "auto"       # "auto" (inverse square root of the pixel shares), "none" or
                                 # [noise, LTE, NR]
    dice = 0.5                   # weight of a soft Dice term added to the cross-entropy, 0 = none
    lovasz = 0.0                 # weight of a Lovasz-softmax term (a convex surrogate of the
                                 # Jaccard loss, which mean IoU measures), 0 = none
    [augment]                    # monitor.train.augment.AugmentConfig; crop = 0: whole frames
    crop = [128, 128]
    [run]
    val_every = 500
    checkpoint_every = 250
    threads = 2                  # torch threads, 0 = torch's default
    workers = 0                  # data loader processes
    device = "auto"              # "cpu", "cuda", "cuda:1", "auto"
    precision = "fp32"           # "fp32", or "bf16": the forward pass and the loss under
                                 # bfloat16 autocast (weights, optimizer and validation in fp32)
    deterministic = true         # cuDNN's deterministic algorithms on CUDA; false lets cuDNN
                                 # time and pick the fastest (the result varies in the last bits)
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import signal
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from engines.context import StripContext
from engines.prmnet import CLASS_NAMES, MODEL_CONFIGS, create_model, probabilities
from engines.selection import resolve_device
from engines.time_pool import fold_weights
from engines.unet import UNet
from engines.widen import widen_unet
from monitor.errors import InputError
from monitor.train import CONFIG_DIR
from monitor.train.augment import AugmentConfig
from monitor.train.cards import (
    geometry_fields,
    json_safe,
    load_checkpoint,
    make_card,
    save_checkpoint,
)
from monitor.train.data import (
    TRUTHS,
    AugmentedFrames,
    FrameSet,
    ShardFrames,
    StepBatches,
    collate,
    holdout_split,
    open_frames,
)
from monitor.train.metrics import ConfusionMatrix

__all__ = [
    "CONFIG_DIR",
    "DataConfig",
    "LossConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "lovasz_softmax",
    "pick_device",
    "resolve_config",
    "segment",
    "split_data",
    "train",
    "validate",
]

log = logging.getLogger(__name__)

CHECKPOINT = "ckpt-last.pt"
BEST = "best"
CHECKPOINT_FORMAT = "prmnet-train/1"
CLASS_WEIGHT_FRAMES = 256
UNCOMPARED = {"run": ("threads", "workers", "device", "deterministic")}
"""Settings a run may change when it resumes: they do not change what it computes (beyond the
last bits, for ``deterministic``)."""
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
"""``run.precision``: the type of the forward pass and the loss (autocast but for fp32)."""
FIT_PROBE_STEPS = 30
"""Training steps a run fitted to a wall time is timed on; the first ``FIT_WARM_STEPS`` are left
out of the figure (loader start-up, cuDNN's search for its algorithms)."""
FIT_WARM_STEPS = 10
FIT_MARGIN = 0.05
"""Share of a fitted run's time left unplanned, for checkpoints and the odd slow step."""


@dataclass(frozen=True)
class DataConfig:
    """Training and validation data (see the module docstring)."""

    train: tuple[str, ...]
    val: tuple[str, ...] = ()
    val_fraction: float = 0.0
    val_frames: int = 256
    rates: tuple[float, ...] = ()
    truth: str = "channel"

    def __post_init__(self) -> None:
        if not all(isinstance(d, str) for d in (*self.train, *self.val)) or isinstance(
            self.train, str
        ):
            raise ValueError("data.train and data.val are lists of folders")
        if not self.train:
            raise ValueError("data.train names no folder")
        if bool(self.val) == (self.val_fraction > 0):
            raise ValueError("give either data.val (folders) or data.val_fraction (> 0)")
        if not 0 <= self.val_fraction < 1 or self.val_frames <= 0:
            raise ValueError("data.val_fraction must lie in [0, 1), data.val_frames be positive")
        if not all(isinstance(r, int | float) and r > 0 for r in self.rates):
            raise ValueError("data.rates is a list of sample rates in samples per second")
        if self.truth not in TRUTHS:
            raise ValueError(f"data.truth is one of {', '.join(TRUTHS)}, got {self.truth!r}")


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and schedule: AdamW, linear warm-up, cosine decay; ``steps`` or ``epochs``."""

    steps: int = 0
    epochs: float = 0.0
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    min_lr_ratio: float = 0.01

    def __post_init__(self) -> None:
        if (self.steps > 0) == (self.epochs > 0):
            raise ValueError("give either optim.steps or optim.epochs (> 0)")
        if self.batch_size <= 0 or self.lr <= 0 or self.warmup_steps < 0:
            raise ValueError("optim.batch_size and optim.lr must be positive")

    def total_steps(self, train_frames: int) -> int:
        """Steps of the run for a training set of ``train_frames`` frames."""
        return self.steps or math.ceil(self.epochs * train_frames / self.batch_size)


@dataclass(frozen=True)
class LossConfig:
    """Cross-entropy on logits, optionally class-weighted, plus optional soft Dice and
    Lovasz-softmax terms."""

    class_weights: str | tuple[float, ...] = "auto"
    dice: float = 0.0
    lovasz: float = 0.0

    def __post_init__(self) -> None:
        weights = self.class_weights
        if isinstance(weights, str) and weights not in ("auto", "none"):
            raise ValueError(f'loss.class_weights is "auto", "none" or a list, not {weights!r}')
        if not isinstance(weights, str) and (
            len(weights) != len(CLASS_NAMES) or any(w <= 0 for w in weights)
        ):
            raise ValueError(f"loss.class_weights needs {len(CLASS_NAMES)} positive weights")
        if self.dice < 0 or self.lovasz < 0:
            raise ValueError("loss.dice and loss.lovasz must not be negative")


@dataclass(frozen=True)
class RunConfig:
    """How the run is carried out; nothing here changes the result but ``val_every``."""

    val_every: int = 500
    checkpoint_every: int = 250
    threads: int = 0
    workers: int = 0
    device: str = "auto"
    precision: str = "fp32"
    deterministic: bool = True

    def __post_init__(self) -> None:
        if self.val_every <= 0 or self.checkpoint_every <= 0:
            raise ValueError("run.val_every and run.checkpoint_every must be positive")
        if self.threads < 0 or self.workers < 0:
            raise ValueError("run.threads and run.workers must not be negative")
        if self.precision not in PRECISIONS:
            raise ValueError(f"run.precision is one of {', '.join(PRECISIONS)}, "
                             f"got {self.precision!r}")


@dataclass(frozen=True)
class TrainConfig:
    """A training run: model, data, optimisation, loss, augmentation, run settings, seed."""

    model: str
    data: DataConfig
    seed: int = 0
    init: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        if self.model not in MODEL_CONFIGS:
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join(MODEL_CONFIGS)}")

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        """Read a configuration file.

        Raises:
            InputError: for a missing or malformed file, an unknown key or a bad value.
        """
        p = Path(path)
        try:
            table = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise InputError(f"no such configuration: {p}") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"cannot read configuration {p}: {exc}") from None
        return cls.from_dict(table, str(p))

    @classmethod
    def from_dict(cls, table: dict[str, Any], where: str = "configuration") -> TrainConfig:
        """A configuration from its TOML tables (as :meth:`to_dict` writes them).

        Raises:
            InputError: for an unknown key or a bad value, naming it.
        """
        sections: dict[str, type] = {
            "data": DataConfig,
            "optim": OptimConfig,
            "loss": LossConfig,
            "augment": AugmentConfig,
            "run": RunConfig,
        }
        top = dict(table)
        overrides = top.pop("overrides", {})
        if not isinstance(overrides, dict):
            raise InputError(f"{where}: overrides must be a table")
        if "crop" in top.get("augment", {}):
            top["augment"] = {**top["augment"], "crop": _crop(top["augment"]["crop"], where)}
        parts = {
            name: _build(section, top.pop(name, {}), f"[{name}] of {where}")
            for name, section in sections.items()
            if name != "data" or "data" in top
        }
        if "data" not in parts:
            raise InputError(f"{where} has no [data] table (data.train names the frames)")
        return _build(cls, {**top, **parts, "overrides": overrides}, where)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-ready tables."""
        return json.loads(json.dumps(asdict(self)))


@dataclass
class TrainResult:
    """What a call of :func:`train` did.

    Attributes:
        run_dir: the run folder.
        step: steps done so far, this call and earlier ones.
        total_steps: steps of the whole run.
        best_miou: best validation mean IoU so far (NaN before the first validation).
        best_path: the best weights so far, if any.
        losses: training loss of every step this call ran.
    """

    run_dir: Path
    step: int
    total_steps: int
    best_miou: float
    best_path: Path | None
    losses: list[float]

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps


def resolve_config(name: str | Path) -> Path:
    """A configuration file by path, or by the name of a shipped one (``prmnet_w8``).

    Raises:
        InputError: if neither exists.
    """
    p = Path(name)
    if p.is_file():
        return p
    shipped = CONFIG_DIR / f"{p.stem}.toml"
    if p.suffix in ("", ".toml") and len(p.parts) == 1 and shipped.is_file():
        return shipped
    known = ", ".join(sorted(c.stem for c in CONFIG_DIR.glob("*.toml")))
    raise InputError(f"no such configuration: {p} (shipped ones: {known})")


def train(
    config: TrainConfig,
    run_dir: str | Path,
    command: str = "",
    max_minutes: float | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    fit_minutes: float | None = None,
) -> TrainResult:
    """Train, or resume training, in ``run_dir``.

    Args:
        config: the run's configuration (a resumed run must have been started with the same,
            but for ``run.threads``, ``run.workers`` and ``run.device``).
        run_dir: the run folder; made if missing.
        command: the command line, recorded in the model card.
        max_minutes: stop after the step that passes this many minutes of this call.
        max_steps: stop after this many steps of this call.
        progress: show a progress bar.
        fit_minutes: size a new run's steps to end this many minutes after this call began,
            and stop it then (unless ``max_minutes`` says otherwise); a resumed run keeps the
            steps it was fitted to.

    Returns:
        Where the run stands.

    Raises:
        InputError: for data that cannot be used, a run folder holding another run, or a wall
            time too short for the run's warm-up.
    """
    called = time.monotonic()
    run = Path(run_dir)
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    device = pick_device(config.run.device, config.run.deterministic)
    frames = open_frames(config.data.train, config.data.truth)
    _require_complete(frames)
    train_idx, val_frames, val_idx = split_data(config.data, frames)
    torch.manual_seed(config.seed)
    model = create_model(config.model, **config.overrides)
    if config.init:
        _initialise(model, config.init)
    model = model.to(device=device, memory_format=torch.channels_last)
    if model.in_chans != frames.in_chans:
        raise InputError(
            f"{config.model} takes {model.in_chans} input channels, the data gives "
            f"{frames.in_chans}; set in_chans = {frames.in_chans} under [overrides]"
        )
    samples = AugmentedFrames(frames, train_idx, config.augment, config.seed)
    if fit_minutes is not None:
        max_minutes = fit_minutes if max_minutes is None else max_minutes
        if (run / CHECKPOINT).is_file():
            config = _with_stored_length(config, run)
        else:
            with torch.random.fork_rng(devices=[]):  # the loader draws a seed
                step_s, val_s = _time_run(config, model, samples, val_frames, val_idx, device)
            left = 60 * fit_minutes - (time.monotonic() - called)
            config = _with_steps(config, _fitted_steps(config, left, step_s, val_s))
    total = config.optim.total_steps(len(train_idx))
    optimizer = _optimizer(model, config.optim)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config.optim, total))
    run.mkdir(parents=True, exist_ok=True)
    state = _resume(run, config, model, optimizer, scheduler, len(train_idx), device)
    if state is None:
        weights = _class_weights(config.loss, frames, train_idx)
        state = _State(class_weights=weights.tolist())
        (run / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    stop = total if max_steps is None else min(total, state.step + max_steps)
    loader = _loader(samples, config, state.step, stop, device)
    dtype = PRECISIONS[config.run.precision]
    weights = torch.tensor(state.class_weights, dtype=torch.float32, device=device)
    card_base = {
        "model_name": config.model,
        "overrides": config.overrides,
        "sample_rates": _rates(frames, config.data),
        "data": {
            "train": frames.describe(),
            "val": (val_frames.describe() if config.data.val
                    else {"held_out_fraction": config.data.val_fraction}),
            "train_frames": len(train_idx),
            "val_frames": len(val_idx),
            "truth": config.data.truth,
        },
    }
    losses: list[float] = []
    started, earlier = time.monotonic(), state.elapsed
    running = math.nan
    bar = tqdm(total=total, initial=state.step, desc="train", unit="step", disable=not progress,
               dynamic_ncols=True)
    with _stop_requests() as stop_requested:
        for inputs, labels, _ in loader:
            losses.append(_step(model, optimizer, inputs, labels, weights, config.loss, dtype))
            scheduler.step()
            state.step += 1
            running = losses[-1] if math.isnan(running) else 0.95 * running + 0.05 * losses[-1]
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}", val_miou=f"{state.last_miou:.4f}",
                            lr=f"{scheduler.get_last_lr()[0]:.2e}")
            state.elapsed = earlier + time.monotonic() - started
            out_of_time = max_minutes is not None and (
                time.monotonic() - called >= 60 * max_minutes
            )
            ending = out_of_time or stop_requested() or state.step >= stop
            # a run stopped before its first validation validates once, to leave weights
            if (state.step % config.run.val_every == 0 or state.step == total
                    or (ending and math.isnan(state.best_miou))):
                summary = validate(model, val_frames, val_idx, device, config.optim.batch_size)
                state.last_miou = summary["miou"]
                _log(run, state.step, losses[-config.run.val_every:], scheduler, summary,
                     state.elapsed)
                if summary["miou"] > state.best_miou or math.isnan(state.best_miou):
                    state.best_miou, state.best_step = summary["miou"], state.step
                    _save_best(model, run, config, card_base, command, state, total, summary)
            if ending or state.step % config.run.checkpoint_every == 0:
                _save_state(run, config, model, optimizer, scheduler, state, len(train_idx))
            if ending:
                break
    bar.close()
    best = run / f"{BEST}.safetensors"
    return TrainResult(run, state.step, total, state.best_miou,
                       best if best.is_file() else None, losses)


def _loader(samples: AugmentedFrames, config: TrainConfig, start: int, stop: int,
            device: torch.device) -> DataLoader:
    """The batches of steps ``start`` to ``stop - 1``."""
    return DataLoader(
        samples,
        batch_sampler=StepBatches(len(samples), config.optim.batch_size, config.seed, start,
                                  stop),
        collate_fn=collate,
        num_workers=config.run.workers,
        pin_memory=device.type == "cuda",
    )


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
          labels: torch.Tensor, weights: torch.Tensor, terms: LossConfig,
          dtype: torch.dtype) -> float:
    """One optimisation step on a batch; its loss."""
    model.train()
    device = weights.device
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        logits = model(inputs.to(device, non_blocking=True))
        loss = _loss(logits, labels.to(device, non_blocking=True), weights, terms)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _time_run(config: TrainConfig, model: nn.Module, samples: AugmentedFrames,
              val_frames: FrameSet, val_idx: list[int],
              device: torch.device) -> tuple[float, float]:
    """Seconds a training step and a validation take: steps of a copy of ``model`` (which is
    left as it was) on the run's first batches, through its own loader."""
    probe = copy.deepcopy(model)
    optimizer = _optimizer(probe, config.optim)
    weights = torch.ones(len(CLASS_NAMES), device=device)
    dtype = PRECISIONS[config.run.precision]
    marks = []
    for inputs, labels, _ in _loader(samples, config, 0, FIT_PROBE_STEPS, device):
        _step(probe, optimizer, inputs, labels, weights, config.loss, dtype)
        marks.append(time.monotonic())
    step_s = (marks[-1] - marks[FIT_WARM_STEPS - 1]) / (FIT_PROBE_STEPS - FIT_WARM_STEPS)
    few = val_idx[: 2 * config.optim.batch_size]
    if not few:
        return step_s, 0.0
    started = time.monotonic()
    validate(probe, val_frames, few, device, config.optim.batch_size)
    return step_s, (time.monotonic() - started) * len(val_idx) / len(few)


def _fitted_steps(config: TrainConfig, seconds: float, step_s: float, val_s: float) -> int:
    """Steps that fit ``seconds`` at ``step_s`` a step, with a validation of ``val_s`` every
    ``run.val_every`` steps and one at the end.

    Raises:
        InputError: when they do not cover the warm-up.
    """
    planned = seconds * (1 - FIT_MARGIN) - val_s
    steps = int(planned / (step_s + val_s / config.run.val_every)) if planned > 0 else 0
    if steps <= config.optim.warmup_steps:
        raise InputError(
            f"the {seconds:.0f} s left fit {steps} steps ({step_s:.3f} s a step, "
            f"{val_s:.1f} s a validation), not more than the {config.optim.warmup_steps} of the "
            "warm-up: give more minutes, or fewer optim.warmup_steps")
    log.info("%d steps fit the %.0f s left (%.3f s a step, %.1f s a validation)",
             steps, seconds, step_s, val_s)
    return steps


def _with_steps(config: TrainConfig, steps: int) -> TrainConfig:
    return replace(config, optim=replace(config.optim, steps=steps, epochs=0))


def _with_stored_length(config: TrainConfig, run: Path) -> TrainConfig:
    """``config`` with the length (steps or epochs) of the run its checkpoint in ``run`` holds."""
    try:
        stored = json.loads((run / "config.json").read_text())["optim"]
        optim = replace(config.optim, steps=int(stored["steps"]), epochs=float(stored["epochs"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read the step count of the run in {run} from its "
                         f"config.json: {exc}") from None
    return replace(config, optim=optim)


def _initialise(model: nn.Module, path: str) -> None:
    """Start from the weights of another checkpoint with the same tensors, or of the averaging
    twin of a network that folds rows into channels (its first convolutions' weights shared out
    over the folded rows, :func:`engines.time_pool.fold_weights`: the same function to start),
    or of the same network without strip context (the context's convolutions start at zero,
    :mod:`engines.context`: the same function too), or of a narrower U-Net (widened,
    :func:`engines.widen.widen_unet`: the same function again).

    Raises:
        InputError: for weights that cannot be read or do not fit the model.
    """
    source, _ = load_checkpoint(path)
    if isinstance(source, UNet) and isinstance(model, UNet) and source.widths != model.widths:
        try:
            widen_unet(source, model)
        except ValueError as exc:
            raise InputError(f"init weights {path} do not fit the model: {exc}") from None
        return
    weights = source.state_dict()
    if getattr(model, "time_fold", False) and not getattr(source, "time_fold", False):
        target = model.state_dict()
        first = {k for k, v in weights.items()
                 if k in target and v.ndim == 4 and target[k].shape[1] != v.shape[1]}
        weights = {k: fold_weights(v, model.time_pool) if k in first else v
                   for k, v in weights.items()}
    if not any(isinstance(m, StripContext) for m in source.modules()):
        fresh = model.state_dict()
        weights = {**{f"{name}.{key}": fresh[f"{name}.{key}"]
                      for name, module in model.named_modules()
                      if isinstance(module, StripContext) for key in module.state_dict()},
                   **weights}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise InputError(f"init weights {path} do not fit {type(model).__name__}: "
                         f"{str(exc).splitlines()[0]}") from None


def segment(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Class of every pixel (N, H, W) of a batch of network inputs, in eval mode, no grad."""
    model.eval()
    with torch.inference_mode():
        return model(inputs).max(dim=1).indices  # argmax(dim=1) is far slower on the CPU


def validate(
    model: nn.Module,
    frames: FrameSet,
    indices: list[int],
    device: torch.device,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Pixel metrics of ``model`` on whole frames ``indices`` of ``frames`` (see metrics)."""
    matrix = ConfusionMatrix(device=device)
    for first in range(0, len(indices), batch_size):
        inputs, labels, _ = collate([frames[i] for i in indices[first : first + batch_size]])
        matrix.update(segment(model, inputs.to(device)), labels.to(device))
    return matrix.summary()


@dataclass
class _State:
    """What a run carries from step to step besides the model, optimizer and schedule."""

    class_weights: list[float]
    step: int = 0
    best_miou: float = math.nan
    best_step: int = 0
    last_miou: float = math.nan
    elapsed: float = 0.0


def _build(cls: type, table: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a TOML table, checking keys and value types."""
    if not isinstance(table, dict):
        raise InputError(f"{where} must be a table")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise InputError(f"unknown key {unknown[0]!r} in {where}; known: {', '.join(known)}")
    values = {}
    for key, value in table.items():
        if isinstance(value, list):
            value = tuple(value)
        default = known[key].default
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif _mistyped(default, value):
            raise InputError(f"{key} in {where} must be like {default!r}, got {value!r}")
        values[key] = value
    try:
        return cls(**values)
    except TypeError as exc:
        raise InputError(f"{where}: {exc}") from None
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None


def _mistyped(default: Any, value: Any) -> bool:
    """Whether ``value`` cannot stand where ``default`` stands.

    Required fields and fields made by a factory (the sections) are checked by the dataclasses
    themselves.
    """
    if default is MISSING or default is None or value is None or isinstance(value, dict):
        return False
    if isinstance(default, str) and isinstance(value, tuple):
        return False  # class_weights: a name or a list
    if isinstance(default, tuple):  # of numbers, or empty (a list of folders)
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        return not isinstance(value, tuple) or (bool(default) and not numbers)
    if isinstance(default, bool) or isinstance(value, bool):
        return type(default) is not type(value)
    return not isinstance(value, type(default))


def _crop(value: Any, where: str) -> tuple[int, int] | None:
    """``crop`` as written: 0 (whole frames), a side, or [height, width]."""
    if value == 0 or value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (value[0], value[1])
    raise InputError(f"augment.crop in {where} must be 0, a side or [height, width], got {value!r}")


def pick_device(name: str, deterministic: bool = True) -> torch.device:
    """The torch device for ``cpu``, ``cuda[:N]`` or ``auto`` (CUDA where there is one).

    On CUDA, cuDNN is set to its deterministic algorithms, or (``deterministic`` False) to time
    the candidates for each convolution shape and keep the fastest.

    Raises:
        InputError: for a name torch does not know, or CUDA where there is none.
    """
    device = resolve_device(name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
    return device


def _require_complete(frames: FrameSet) -> None:
    """Refuse a data set still being written: its frame positions would move under the run."""
    if not isinstance(frames, ShardFrames):
        return
    for entry in frames.describe():
        asked = entry["request"]["frames"]
        if entry["frames_present"] < asked:
            raise InputError(
                f"{entry['path']} holds {entry['frames_present']} of its {asked} frames; let "
                f"prmnet synth dataset finish it (run it again to resume) before training"
            )


def split_data(data: DataConfig, frames: FrameSet) -> tuple[list[int], FrameSet, list[int]]:
    """Training positions, validation frame set and validation positions (at most val_frames)."""
    if data.val:
        val_frames = open_frames(data.val, data.truth)
        train_idx = list(range(len(frames)))
        val_idx = list(range(len(val_frames)))
        shared = set(frames.keys()) & set(val_frames.keys())
        if shared:
            raise InputError(
                f"{len(shared)} validation frames are also training frames (same data set seed "
                f"and index); draw the validation set with another --seed"
            )
    else:
        val_frames = frames
        train_idx, val_idx = holdout_split(frames, data.val_fraction)
    if data.rates:
        train_idx = _at_rates(frames, train_idx, data.rates)
        val_idx = _at_rates(val_frames, val_idx, data.rates)
    if not train_idx or not val_idx:
        raise InputError(
            f"{len(train_idx)} training and {len(val_idx)} validation frames: need some of each"
        )
    if len(val_idx) > data.val_frames:
        picks = np.linspace(0, len(val_idx) - 1, data.val_frames).round().astype(int)
        val_idx = [val_idx[i] for i in picks]
    return train_idx, val_frames, val_idx


def _at_rates(frames: FrameSet, positions: list[int], rates: tuple[float, ...]) -> list[int]:
    """The positions of the frames drawn at one of ``rates``.

    Raises:
        InputError: for frames that do not say their rate (the authors' pictures).
    """
    if positions and frames.rate(positions[0]) is None:
        raise InputError("data.rates picks frames of prmnet synth data sets by sample rate; "
                         "the authors' pictures have one rate (61.44 MS/s)")
    wanted = {round(r) for r in rates}
    return [i for i in positions if round(frames.rate(i)) in wanted]


def _rates(frames: FrameSet, data: DataConfig) -> list[float]:
    """Sample rates the training data covers (the authors' pictures: 61.44 MS/s)."""
    if data.rates:
        return sorted(float(r) for r in data.rates)
    return frames.sample_rates() if isinstance(frames, ShardFrames) else [61.44e6]


def _optimizer(model: nn.Module, optim: OptimConfig) -> torch.optim.Optimizer:
    """AdamW, without weight decay on biases and norm parameters (every 1-D tensor)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": optim.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=optim.lr,
    )


def _schedule(optim: OptimConfig, total: int) -> Callable[[int], float]:
    """Learning-rate factor by step: linear warm-up, then cosine down to ``min_lr_ratio``."""

    def factor(step: int) -> float:
        if step < optim.warmup_steps:
            return (step + 1) / optim.warmup_steps
        span = max(1, total - optim.warmup_steps)
        progress = min(1.0, (step - optim.warmup_steps) / span)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return optim.min_lr_ratio + (1.0 - optim.min_lr_ratio) * cosine

    return factor


def _class_weights(loss: LossConfig, frames: FrameSet, indices: list[int]) -> torch.Tensor:
    """Cross-entropy class weights: given, none (ones), or from the training pixel shares.

    "auto": ``share ** -0.5`` over up to ``CLASS_WEIGHT_FRAMES`` training frames spread evenly,
    scaled so that the mean weight per pixel is 1 (a rarer class weighs more, but only as the
    square root of its rarity, so it does not drown the common ones).
    """
    n = len(CLASS_NAMES)
    if loss.class_weights == "none":
        return torch.ones(n)
    if not isinstance(loss.class_weights, str):
        return torch.tensor(loss.class_weights, dtype=torch.float32)
    picks = np.unique(np.linspace(0, len(indices) - 1, CLASS_WEIGHT_FRAMES).round().astype(int))
    counts = np.zeros(n)
    for i in picks:
        counts += np.bincount(frames.raw(indices[i])[1].ravel(), minlength=n)[:n]
    share = np.maximum(counts / counts.sum(), 1e-4)
    weights = share**-0.5
    return torch.tensor(weights / (weights * share).sum(), dtype=torch.float32)


def _loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, terms: LossConfig
) -> torch.Tensor:
    """Cross-entropy on logits (weighted), plus ``terms.dice`` times the soft Dice loss and
    ``terms.lovasz`` times the Lovasz-softmax loss."""
    loss = F.cross_entropy(logits, labels, weight=weights)
    if terms.dice > 0:
        probs = probabilities(logits)
        onehot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
        inter = (probs * onehot).sum(dim=(0, 2, 3))
        total = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
        loss = loss + terms.dice * (1.0 - ((2.0 * inter + 1.0) / (total + 1.0)).mean())
    if terms.lovasz > 0:
        loss = loss + terms.lovasz * lovasz_softmax(probabilities(logits.float()), labels)
    return loss


def lovasz_softmax(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The Lovasz-softmax loss (Berman, Rannen Triki and Blaschko, CVPR 2018), averaged over the
    classes present in the batch: for each, the Lovasz extension (the convex closure) of its
    Jaccard loss over the batch's pixels, taken at their errors ``|[label = c] - p_c|``. At
    errors of 0 or 1 it is that class's Jaccard loss, 1 - IoU, so it optimises what mean IoU
    measures. ``probs`` (N, C, H, W), ``labels`` (N, H, W).
    """
    flat = probs.permute(0, 2, 3, 1).reshape(-1, probs.shape[1])
    truth = labels.reshape(-1)
    losses = []
    for c in range(flat.shape[1]):
        fg = (truth == c).to(flat.dtype)
        if not fg.any():
            continue
        errors, order = (fg - flat[:, c]).abs().sort(descending=True)
        fg = fg[order]
        present = fg.sum()
        jaccard = 1.0 - (present - fg.cumsum(0)) / (present + (1.0 - fg).cumsum(0))
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
        losses.append(torch.dot(errors, jaccard))
    return torch.stack(losses).mean() if losses else probs.sum() * 0.0


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration without the settings a resumed run may change."""
    out = json.loads(json.dumps(config))
    for section, keys in UNCOMPARED.items():
        for key in keys:
            out.get(section, {}).pop(key, None)
    return out


def _with_defaults(stored: dict[str, Any], path: Path) -> dict[str, Any]:
    """A checkpoint's configuration with every key it lacks at its default: a run begun before a
    key existed computed what that key's default computes."""
    try:
        return TrainConfig.from_dict(stored, str(path)).to_dict()
    except (InputError, TypeError, ValueError):
        return stored


def _save_state(
    run: Path,
    config: TrainConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: _State,
    train_frames: int,
) -> None:
    """Write ``ckpt-last.pt`` atomically."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "train_frames": train_frames,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "state": asdict(state),
    }
    tmp = run / f".{CHECKPOINT}.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, run / CHECKPOINT)


def _resume(
    run: Path,
    config: TrainConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    train_frames: int,
    device: torch.device,
) -> _State | None:
    """Load the run's checkpoint into the model, optimizer and schedule, if there is one."""
    path = run / CHECKPOINT
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        raise InputError(f"cannot read checkpoint {path}: {exc}; delete it to start over") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path} is not a prmnet training checkpoint")
    stored = _comparable(_with_defaults(payload["config"], path))
    given = _comparable(config.to_dict())
    if stored != given:
        if {**stored, "optim": {**stored["optim"], "steps": 0, "epochs": 0}} == {
                **given, "optim": {**given["optim"], "steps": 0, "epochs": 0}}:
            raise InputError(
                f"{run} holds a run of {stored['optim']['steps']} steps, fitted to its wall "
                f"time by --fit-minutes; resume it with --fit-minutes (it keeps its steps)")
        raise InputError(
            f"{run} holds a run started with another configuration; resume it with that one "
            f"({run / 'config.json'}) or choose another --run-dir"
        )
    if payload["train_frames"] != train_frames:
        raise InputError(
            f"{run} was trained on {payload['train_frames']} frames, the data now holds "
            f"{train_frames}; resume with the same data or choose another --run-dir"
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["torch_rng"].cpu())
    return _State(**payload["state"])


def _save_best(
    model: nn.Module,
    run: Path,
    config: TrainConfig,
    card_base: dict[str, Any],
    command: str,
    state: _State,
    total: int,
    summary: dict[str, Any],
) -> None:
    """Write the current weights as the run's best, with their card."""
    card = make_card(
        card_base["model_name"],
        card_base["overrides"],
        card_base["sample_rates"],
        geometry=geometry_fields(),
        training={
            "command": command,
            "seed": config.seed,
            "config": config.to_dict(),
            "total_steps": total,
            "step": state.step,
            "seconds": round(state.elapsed),
            "class_weights": state.class_weights,
        },
        data=card_base["data"],
        metrics={"validation": {"step": state.step, **summary}},
    )
    save_checkpoint(model, card, run / f"{BEST}.safetensors")


def _log(
    run: Path,
    step: int,
    losses: list[float],
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    summary: dict[str, Any],
    elapsed: float,
) -> None:
    """Append one validation line to ``log.jsonl``."""
    line = {
        "step": step,
        "train_loss": float(np.mean(losses)) if losses else None,
        "lr": scheduler.get_last_lr()[0],
        "elapsed_s": round(elapsed, 1),
        "val": {k: summary[k] for k in ("miou", "iou", "pixel_accuracy", "lte_as_nr",
                                        "nr_as_lte")},
    }
    with open(run / "log.jsonl", "a") as fh:
        fh.write(json.dumps(json_safe(line)) + "\n")


@contextmanager
def _stop_requests() -> Iterator[Callable[[], bool]]:
    """While active, SIGTERM and a first Ctrl-C ask the run to stop after its step.

    A second Ctrl-C interrupts at once. Outside the main thread, signals are left alone.
    """
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested.is_set
        return

    def handler(signum: int, frame: Any) -> None:
        if requested.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested.is_set
    finally:
        for s, h in previous.items():
            signal.signal(s, h)

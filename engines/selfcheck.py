"""The self-check: a runner must compute what the torch fp32 reference computes, or not run.

Every runner that :func:`engines.selection.select_runner` makes is checked when it activates:
its probabilities on a fixed input are compared with those of the model itself in float32 on
the same device (TF32 off, so the reference is full float32 on a GPU too), within the tolerance
of the runner's precision (:data:`TOLERANCES`):

==========  ====================================  ==========================================
precision   largest probability difference        pixels whose winning class agrees
==========  ====================================  ==========================================
fp32        1e-4                                  (implied)
fp16        2e-2                                  at least 99 %
bf16        5e-2 (8 bits of mantissa)             at least 98 %
int8, fp8   (not bounded: quantization moves it)  at least 98 %
==========  ====================================  ==========================================

The fixed input (:func:`check_input`) is a seeded synthetic spectrogram: a noise floor with
fading texture and carriers at several SNRs, some on in every row (FDD-like), some switching
(TDD-like), through :func:`~monitor.dsp.spectrogram.network_input`; the same bytes on every
machine, built in milliseconds at any size.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from engines.prmnet import probabilities
from monitor.dsp.spectrogram import INPUT_RANGE, network_input
from monitor.errors import DeviceError

if TYPE_CHECKING:
    from engines.backends.base import Runner

__all__ = ["CHECK_SEED", "TOLERANCES", "CheckResult", "SelfCheck", "Tolerance", "check_frame",
           "check_input", "full_float32", "reference_probabilities"]

CHECK_SEED = 5318
"""Seed of the fixed input."""


@dataclass(frozen=True)
class Tolerance:
    """How far a runner may stray from the reference.

    Attributes:
        max_abs: the largest absolute difference of any probability, or None for no bound.
        min_agreement: the least share of pixels whose winning class must agree, or None.
    """

    max_abs: float | None
    min_agreement: float | None

    def describe(self) -> str:
        parts = []
        if self.max_abs is not None:
            parts.append(f"max |dp| <= {self.max_abs:g}")
        if self.min_agreement is not None:
            parts.append(f"class agreement >= {self.min_agreement:.0%}")
        return " and ".join(parts)


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs=1e-4, min_agreement=None),
    "fp16": Tolerance(max_abs=2e-2, min_agreement=0.99),
    "bf16": Tolerance(max_abs=5e-2, min_agreement=0.98),
    "int8": Tolerance(max_abs=None, min_agreement=0.98),
    "fp8": Tolerance(max_abs=None, min_agreement=0.98),
}


@dataclass(frozen=True)
class CheckResult:
    """One runner against the reference.

    Attributes:
        backend: the runner's name.
        precision: its precision.
        device: where it ran.
        max_abs_diff: the largest absolute difference of any probability.
        agreement: the share of pixels whose winning class agrees.
        tolerance: what its precision allows.
    """

    backend: str
    precision: str
    device: str
    max_abs_diff: float
    agreement: float
    tolerance: Tolerance

    @property
    def passed(self) -> bool:
        t = self.tolerance
        return ((t.max_abs is None or self.max_abs_diff <= t.max_abs)
                and (t.min_agreement is None or self.agreement >= t.min_agreement))

    def describe(self) -> str:
        return (f"{self.backend} {self.precision} on {self.device}: max |dp| "
                f"{self.max_abs_diff:.2g}, class agreement {self.agreement:.2%} "
                f"(allowed: {self.tolerance.describe()})")

    def to_dict(self) -> dict[str, float | str | bool]:
        return {"backend": self.backend, "precision": self.precision, "device": self.device,
                "max_abs_diff": self.max_abs_diff, "agreement": self.agreement,
                "passed": self.passed}


def check_frame(height: int, width: int, seed: int = CHECK_SEED) -> torch.Tensor:
    """A deterministic synthetic spectrogram frame, dBFS, shape (height, width)."""
    rng = np.random.default_rng(seed)
    floor_db = -90.0
    noise = floor_db + 10 * np.log10(rng.exponential(size=(height, width)))
    power = 10 ** (noise / 10)
    for _ in range(3):
        span = int(rng.integers(max(2, width // 16), max(3, width // 4)))
        low = int(rng.integers(0, width - span))
        snr_db = float(rng.uniform(3.0, 25.0))
        rows_on = np.ones(height, dtype=bool)
        if rng.random() < 0.5:  # TDD-like: on and off in blocks of rows
            period = int(rng.integers(4, max(5, height // 4)))
            rows_on = (np.arange(height) // period) % 2 == 0
        texture = rng.exponential(size=(height, span))
        power[rows_on, low:low + span] += (10 ** ((floor_db + snr_db) / 10)
                                           * texture[rows_on])
    return torch.from_numpy(10 * np.log10(power)).float()


def check_input(in_chans: int, height: int, width: int, batch: int = 1) -> torch.Tensor:
    """The fixed input: ``batch`` frames of :func:`check_frame` (seeds ``CHECK_SEED + i``) as
    the network takes them, shape (batch, in_chans, height, width), on the CPU.

    One channel: :func:`~monitor.dsp.spectrogram.network_input`; three (the published RGB
    model): that input mapped to [0, 1] on every channel.
    """
    frames = torch.stack([check_frame(height, width, CHECK_SEED + i) for i in range(batch)])
    x = network_input(frames)
    if in_chans != 1:
        low, high = INPUT_RANGE
        x = ((x - low) / (high - low)).expand(-1, in_chans, -1, -1).contiguous()
    return x


class SelfCheck:
    """The reference a runner is checked against: the model itself, float32, on the runner's
    device. References are computed once per input shape and device.

    Args:
        module: the network (returning logits), its weights loaded, in eval mode.
        in_chans: its input channels.
        height: rows of the check input where the runner takes any shape.
        width: pixels per row of the check input where the runner takes any shape.
    """

    def __init__(self, module: nn.Module, in_chans: int, height: int, width: int) -> None:
        self.module = module
        self.in_chans = in_chans
        self.height = height
        self.width = width
        self._expected: dict[tuple[tuple[int, ...], str], tuple[torch.Tensor, torch.Tensor]] = {}

    def expected(self, shape: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor,
                                                                               torch.Tensor]:
        """The check input of ``shape`` on ``device`` and the reference probabilities."""
        key = (tuple(shape), str(device))
        if key not in self._expected:
            n, c, h, w = shape
            x = check_input(c, h, w, n).to(device)
            self._expected[key] = (x, reference_probabilities(self.module, x))
        return self._expected[key]

    def measure(self, runner: Runner) -> CheckResult:
        """Run ``runner`` (active) on the check input and compare."""
        shape = runner.input_shape or (1, self.in_chans, self.height, self.width)
        x, expected = self.expected(shape, runner.device)
        got = runner.infer(x).float()
        return CheckResult(
            backend=runner.name,
            precision=runner.precision,
            device=str(runner.device),
            max_abs_diff=float((got - expected).abs().max()),
            agreement=float((got.max(dim=1).indices == expected.max(dim=1).indices).float().mean()),
            tolerance=TOLERANCES[runner.precision],
        )

    def verify(self, runner: Runner) -> CheckResult:
        """:meth:`measure`, raising where the runner fails its tolerance.

        Raises:
            DeviceError: the runner disagrees with the reference.
        """
        result = self.measure(runner)
        if not result.passed:
            raise DeviceError(f"self-check failed, refusing to run {result.describe()}")
        return result


def reference_probabilities(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``probabilities(module(x))`` in float32 on ``x``'s device, TF32 off (the module is
    copied there where it lives elsewhere; it is not changed)."""
    param = next(module.parameters(), None)
    if module.training or (param is not None and param.device != x.device):
        module = copy.deepcopy(module).to(x.device).eval()
    with torch.inference_mode(), full_float32():
        return probabilities(module(x).float())


@contextmanager
def full_float32() -> Iterator[None]:
    """No TF32 in convolutions and matrix products within (CUDA's default allows it)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved

"""Choosing the runner for a model: the engine, the compute device and the precision.

``auto`` picks the fastest backend this installation has for the device (the order TensorRT,
ONNX Runtime on CUDA, torch is the plan; this build has the torch backend) and logs why it
passed each one over.
"""

from __future__ import annotations

import logging

import torch

from engines.backends.base import Runner
from engines.backends.torch_runner import TorchRunner
from engines.models import LoadedModel
from monitor.errors import InputError

__all__ = ["ENGINES", "resolve_device", "select_runner"]

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def resolve_device(name: str) -> torch.device:
    """``auto``: the first CUDA device where there is one, else the CPU.

    Raises:
        InputError: for a device name that does not parse or that this machine lacks.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise InputError(f"unknown compute device {name!r}: use auto, cpu or cuda[:N]")
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise InputError(f"--compute {name}: this machine has no CUDA device; use cpu")
        if (device.index or 0) >= count:
            raise InputError(f"--compute {name}: this machine has {count} CUDA device(s)")
    return device


def select_runner(model: LoadedModel, engine: str = "auto", precision: str = "auto",
                  compute: str = "auto") -> Runner:
    """A runner (not yet active) for ``model``.

    Raises:
        InputError: for an engine, precision or device that cannot serve.
    """
    if engine not in ENGINES:
        raise InputError(f"engine {engine!r} is not available in this build; use "
                         f"{' or '.join(ENGINES)}")
    device = resolve_device(compute)
    if precision not in PRECISIONS:
        raise InputError(f"the torch engine runs {', '.join(PRECISIONS[1:])}, not {precision}")
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision != "fp32" and device.type != "cuda":
        raise InputError(f"{precision} needs a CUDA device with the torch engine; use fp32")
    if engine == "auto":
        log.info("engine: torch on %s, %s (the only backend of this build)", device, precision)
    return TorchRunner(model.module, device, precision)

"""Choosing the runner for a model: the engine, the compute device and the precision.

``auto`` tries TensorRT, then ONNX Runtime on CUDA, then torch, and takes the first that can
run here and passes its self-check (:mod:`engines.selfcheck`), logging why it passed each one
over. On the CPU, TensorRT cannot run, and for fp32 torch and ONNX Runtime are raced: each that
passes its self-check is timed on a few frames and the faster is kept (which one wins depends on
the CPU and on its load, by up to a third either way; see the README); int8 and fp8 go to ONNX
Runtime, as torch does not run them. An engine named explicitly runs or refuses in one line.

On the CPU, torch runs the model's AOTInductor package where ``prmnet engine build MODEL
--compute cpu`` has put one for this CPU in the engine cache (:mod:`engines.backends.aot_package`),
and the network eagerly otherwise.

Precision ``auto`` is ``fp32`` on the CPU. On CUDA it is the first of ``fp16``, ``bf16`` (torch
only) and ``fp32`` whose runner passes its self-check: a network whose activations overflow
float16's range (65504; the shipped ``prmnet_cpu`` does, at its head) fails the check with
NaNs in float16, and bfloat16, with float32's range, serves it. ``bf16`` is torch's (on CUDA);
``int8`` and ``fp8`` run the Q/DQ graph ``prmnet calib`` installed for the model's weights
(ONNX Runtime: int8 on the CPU or CUDA; TensorRT: int8 and fp8).
"""

from __future__ import annotations

import hashlib
import logging
import statistics
import time
from collections.abc import Callable
from functools import cache
from typing import Any

import torch

from engines.backends.aot_package import package_key
from engines.backends.base import Runner
from engines.backends.onnxruntime_runner import OnnxRuntimeRunner, onnxruntime_unavailable
from engines.backends.tensorrt_runner import (
    TENSORRT_PRECISIONS,
    TensorRTRunner,
    tensorrt_unavailable,
)
from engines.backends.torch_runner import TORCH_PRECISIONS, TorchRunner
from engines.cache import EngineCache
from engines.export import (
    DEFAULT_OPSET,
    ONNX_FORMAT,
    export_onnx_bytes,
    read_onnx_info,
    weights_sha256,
)
from engines.models import LoadedModel
from engines.selfcheck import SelfCheck
from monitor.errors import DeviceError, InputError, MonitorError

__all__ = ["AUTO_ORDER", "ENGINES", "PRECISIONS", "make_runner", "resolve_device",
           "select_runner"]

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "onnxruntime", "tensorrt")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8", "fp8")
AUTO_ORDER = ("tensorrt", "onnxruntime", "torch")
QUANTIZED = ("int8", "fp8")
AUTO_CUDA_PRECISIONS = ("fp16", "bf16", "fp32")
"""Precision ``auto`` on CUDA, in the order tried (``bf16`` by torch alone)."""
#: Frames each CPU engine is timed on (after one to warm up) when ``auto`` races them.
RACE_FRAMES = 3


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
    """An active runner for ``model`` that has passed its self-check; ``with runner:``
    releases it (see :class:`~engines.backends.base.Runner`).

    Raises:
        InputError: for an engine, precision or device that cannot serve (an explicit engine
            this machine lacks, a precision it does not run, no quantized graph), or when no
            engine can serve under ``auto``.
        DeviceError: an explicit engine that failed to build or failed its self-check.
    """
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}: use {', '.join(ENGINES)}")
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    device = resolve_device(compute)
    geometry = model.card.geometry
    check = SelfCheck(model.module, model.card.in_chans, int(geometry["height"]),
                      int(geometry["width"]))
    hashes = cache(lambda: weights_sha256(model.module))
    if engine == "auto" and device.type == "cpu" and precision not in QUANTIZED:
        return _fastest_cpu_runner(model, device, precision, check, hashes)
    reasons = []
    for name in AUTO_ORDER if engine == "auto" else (engine,):
        tries = _precisions(name, precision, device)
        for i, tried in enumerate(tries):
            try:
                runner = make_runner(name, model, device, tried, check, hashes)
                runner.activate()
            except Exception as exc:  # a backend's own errors (CUDA, ONNX Runtime, TensorRT)
                error = _one_line(exc)
                # another precision helps a runner that ran but failed, not a missing engine
                if isinstance(error, DeviceError) and i + 1 < len(tries):
                    log.info("engine: %s %s failed (%s); trying %s", name, tried, error,
                             tries[i + 1])
                    continue
                if engine != "auto":
                    raise type(error)(f"--engine {name}: {error}") from exc
                log.info("engine: passing over %s: %s", name, error)
                reasons.append(f"{name}: {error}")
                break
            log.info("engine: %s (self-check passed)", _describe(runner))
            return runner
    raise _no_engine(model, reasons)


def _precisions(engine: str, precision: str, device: torch.device) -> tuple[str, ...]:
    """The precisions to try, in order, for ``engine`` asked for ``precision`` on ``device``."""
    if precision != "auto" or device.type != "cuda":
        return (precision,)
    return tuple(p for p in AUTO_CUDA_PRECISIONS if p != "bf16" or engine == "torch")


def _fastest_cpu_runner(model: LoadedModel, device: torch.device, precision: str,
                        check: SelfCheck, hashes: Callable[[], str]) -> Runner:
    """Torch and ONNX Runtime on the CPU, each self-checked and timed on a frame; the faster
    one, active (the other released).

    Raises:
        InputError: neither can run here.
    """
    geometry = model.card.geometry
    x = torch.randn(1, model.card.in_chans, int(geometry["height"]), int(geometry["width"]))
    timed: list[tuple[float, Runner]] = []
    reasons = []
    for name in ("torch", "onnxruntime"):
        runner = None
        try:
            runner = make_runner(name, model, device, precision, check, hashes).activate()
            timed.append((_seconds_per_frame(runner, x), runner))
        except Exception as exc:  # a backend's own errors too: the other engine may serve
            if runner is not None:
                runner.deactivate()
            error = _one_line(exc)
            log.info("engine: passing over %s: %s", name, error)
            reasons.append(f"{name}: {error}")
    if not timed:
        raise _no_engine(model, reasons)
    timed.sort(key=lambda t: t[0])
    best = timed[0][1]
    for _, other in timed[1:]:
        other.deactivate()
    log.info("engine: %s (self-check passed); %s", _describe(best),
             ", ".join(f"{r.name} {s * 1e3:.1f} ms" for s, r in timed) + " a frame on the CPU")
    return best


def _one_line(exc: Exception) -> MonitorError:
    """An engine's failure as the project's error, in one line (a backend's own exceptions
    carry pages of context)."""
    if isinstance(exc, MonitorError):
        return exc
    text = str(exc).strip()
    return DeviceError(f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}")


def _describe(runner: Runner) -> str:
    """What runs, and how its self-check went."""
    text = (runner.check_result.describe() if runner.check_result
            else f"{runner.name} {runner.precision} on {runner.device}")
    if runner.compiled:
        text += "; compiled for this CPU (AOTInductor)"
    return text


def _no_engine(model: LoadedModel, reasons: list[str]) -> InputError:
    return InputError(f"no engine can run {model.name} here ({'; '.join(reasons)})")


def _seconds_per_frame(runner: Runner, x: torch.Tensor) -> float:
    """Median seconds of ``RACE_FRAMES`` inferences of ``x``, after one to warm up."""
    runner.infer(x)
    times = []
    for _ in range(RACE_FRAMES):
        start = time.perf_counter()
        runner.infer(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_runner(name: str, model: LoadedModel, device: torch.device, precision: str = "auto",
                check: SelfCheck | None = None,
                weights: Callable[[], str] | None = None) -> Runner:
    """The runner (not yet active) of engine ``name`` for ``model`` on ``device``.

    Args:
        name: ``torch``, ``onnxruntime`` or ``tensorrt``.
        model: the model.
        device: where it runs.
        precision: as :data:`PRECISIONS`.
        check: the self-check the runner runs on activation.
        weights: returns the model's weights hash (computed on demand where not given).

    Raises:
        InputError: the engine cannot run here, or not at that precision.
    """
    precision = precision if precision != "auto" else (
        "fp16" if device.type == "cuda" else "fp32")
    weights = weights or (lambda: weights_sha256(model.module))
    geometry = model.card.geometry
    shape = (1, model.card.in_chans, int(geometry["height"]), int(geometry["width"]))
    if name == "torch":
        if precision not in TORCH_PRECISIONS:
            raise InputError(f"torch runs {', '.join(TORCH_PRECISIONS)}, not {precision}")
        if precision != "fp32" and device.type != "cuda":
            raise InputError(f"torch runs {precision} on CUDA only; use fp32 on the CPU")
        package = None
        if device.type == "cpu" and precision == "fp32":
            data = EngineCache().lookup(package_key(weights(), shape))
            if data is not None:
                package = (data, shape)
            else:
                _hint_package(model.name)
        return TorchRunner(model.module, device, precision, check=check, package=package)
    if name == "onnxruntime":
        reason = onnxruntime_unavailable(device)
        if reason is not None:
            raise InputError(reason)
        if precision not in ("fp32", "fp16", *QUANTIZED):
            raise InputError(f"onnxruntime runs fp32, fp16, int8 or fp8, not {precision}")
        if precision == "fp16" and device.type != "cuda":
            raise InputError("onnxruntime runs fp16 on CUDA only; use fp32 or int8 on the CPU")
        source, _ = _graph(model, precision, weights, device)
        threads = torch.get_num_threads() if device.type == "cpu" else None
        return OnnxRuntimeRunner(source, device, precision, threads=threads, check=check)
    if name == "tensorrt":
        reason = tensorrt_unavailable(device)
        if reason is not None:
            raise InputError(reason)
        if precision not in TENSORRT_PRECISIONS:
            raise InputError(f"TensorRT runs {', '.join(TENSORRT_PRECISIONS)}, not {precision}")
        source, export = _graph(model, precision, weights, device)
        return TensorRTRunner(source, export, weights(), device, precision, shape,
                              len(model.card.classes), check=check)
    raise InputError(f"unknown engine {name!r}: use {', '.join(ENGINES[1:])}")


@cache
def _hint_package(name: str) -> None:
    """Say once per model that it could run compiled."""
    log.info("engine: torch runs %s eagerly on the CPU; `prmnet engine build %s --compute cpu` "
             "compiles it for this CPU (once, about a minute), and it then runs faster",
             name, name)


def export_settings() -> dict[str, Any]:
    """How :func:`~engines.export.export_onnx_bytes` makes graphs (part of an engine's key)."""
    return {"source": "export", "format": ONNX_FORMAT, "exporter": "torchscript",
            "opset": DEFAULT_OPSET, "torch": torch.__version__}


def _graph(model: LoadedModel, precision: str, weights: Callable[[], str],
           device: torch.device) -> tuple[Callable[[], bytes], dict[str, Any]]:
    """The graph for ``precision``: an export on demand (traced on ``device``), or the
    installed quantized graph.

    Raises:
        InputError: no quantized graph of these weights is installed, or it is not theirs.
    """
    if precision not in QUANTIZED:
        return (lambda: export_onnx_bytes(model.module, model.card, precision=precision,
                                          device=device), export_settings())
    path = EngineCache().quantized_path(weights(), precision)
    if not path.is_file():
        raise InputError(f"no {precision} graph of {model.name}'s weights is installed: make one "
                         f"with prmnet calib {model.name} --precision {precision}")
    info = read_onnx_info(path)
    if info.weights_sha256 != weights() or info.precision != precision:
        raise InputError(f"{path} is not the {precision} graph of {model.name}'s weights")
    data = path.read_bytes()
    return (lambda: data), {"source": "calib", "graph_sha256": hashlib.sha256(data).hexdigest()}

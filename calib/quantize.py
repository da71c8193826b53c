"""``prmnet calib``: the Q/DQ graph of a checkpoint, accepted only if it keeps its accuracy.

:func:`quantize_graph` turns the float32 export into an INT8 (or FP8) Q/DQ graph with
``onnxruntime.quantization.quantize_static``: QDQ format, symmetric scales (zero point 0, what
TensorRT's explicit quantization takes), per-channel weight scales where the recipe says so, the
recipe's ``keep`` nodes left in float. This is the form TensorRT 11 requires (no INT8 builder
flag, no calibrator: precision is in the graph) and TensorRT 10 builds strongly typed.

:func:`calibrate` then measures the macro mean IoU (noise, LTE, NR) of the float32 graph and of
the quantized one, both through ONNX Runtime on the CPU, on a synthetic test set, and writes the
quantized graph only if it loses at most ``max_drop_points`` (1 point by default); accepted, it is
also installed in the engine cache's ``quantized/`` folder, where ``--precision int8`` finds it.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from calib.dataset import calibration_feeds
from calib.recipe import Recipe
from engines.backends.onnxruntime_runner import OnnxRuntimeRunner
from engines.export import export_onnx_bytes, onnx_info_from_bytes, set_metadata, write_atomic
from monitor.errors import InputError
from monitor.train.cards import ModelCard
from monitor.train.data import FrameSet
from monitor.train.metrics import ConfusionMatrix

__all__ = ["QUANTIZED_PRECISIONS", "CalibResult", "accept", "calibrate", "evaluate_graph",
           "quantize_graph"]

log = logging.getLogger(__name__)

QUANTIZED_PRECISIONS = ("int8", "fp8")


@dataclass
class CalibResult:
    """The outcome of ``prmnet calib``.

    Attributes:
        precision: ``int8`` or ``fp8``.
        fp32_miou: macro mean IoU of the float32 graph on the test frames (0-1).
        quantized_miou: that of the quantized graph.
        max_drop_points: the most it may lose, in points (1 point = 0.01).
        frames: test frames measured.
        kept: the nodes kept in float.
        path: where the accepted graph was written (None when refused).
        installed: where it was installed for ``--precision``, if it was.
    """

    precision: str
    fp32_miou: float
    quantized_miou: float
    max_drop_points: float
    frames: int
    kept: list[str] = field(default_factory=list)
    path: Path | None = None
    installed: Path | None = None

    @property
    def drop_points(self) -> float:
        return 100.0 * (self.fp32_miou - self.quantized_miou)

    @property
    def accepted(self) -> bool:
        return accept(self.fp32_miou, self.quantized_miou, self.max_drop_points)

    def describe(self) -> str:
        verdict = "accepted" if self.accepted else "refused"
        return (f"{self.precision} graph {verdict}: mean IoU {100 * self.quantized_miou:.2f} % "
                f"vs {100 * self.fp32_miou:.2f} % in fp32 on {self.frames} test frames "
                f"({self.drop_points:+.2f} points lost; at most {self.max_drop_points:g} "
                "allowed)")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path) if self.path else None,
                "installed": str(self.installed) if self.installed else None,
                "drop_points": self.drop_points, "accepted": self.accepted}


def accept(fp32_miou: float, quantized_miou: float, max_drop_points: float) -> bool:
    """Whether a quantized graph keeps its accuracy: it loses at most ``max_drop_points``
    points of mean IoU (a gain is always accepted)."""
    return 100.0 * (fp32_miou - quantized_miou) <= max_drop_points + 1e-9


def quantize_graph(fp32_onnx: bytes, inputs: np.ndarray, recipe: Recipe,
                   precision: str = "int8") -> tuple[bytes, list[str]]:
    """The Q/DQ graph of a float32 export, calibrated on ``inputs`` (n, C, H, W).

    Returns:
        The quantized graph (its metadata: the export's, with the precision and the
        calibration added) and the names of the nodes kept in float.

    Raises:
        InputError: for a graph that is not a prmnet float32 export, or an unknown precision.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if precision not in QUANTIZED_PRECISIONS:
        raise InputError(f"calibration makes {' or '.join(QUANTIZED_PRECISIONS)} graphs, not "
                         f"{precision!r}")
    info = onnx_info_from_bytes(fp32_onnx, "the graph to quantize")
    if info.precision != "fp32":
        raise InputError(f"quantization starts from a float32 graph, not {info.precision}")
    fp32 = onnx.load_from_string(fp32_onnx)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = calibration_feeds(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    qtype = QuantType.QInt8 if precision == "int8" else QuantType.QFLOAT8E4M3FN
    method = (CalibrationMethod.Distribution if precision == "fp8" else
              {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}[recipe.method])
    work = Path(tempfile.mkdtemp(prefix="prmnet-calib-"))
    try:
        (work / "fp32.onnx").write_bytes(fp32_onnx)
        quant_pre_process(str(work / "fp32.onnx"), str(work / "prepared.onnx"),
                          skip_symbolic_shape=True)
        names = [n.name for n in onnx.load(str(work / "prepared.onnx")).graph.node]
        kept = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in recipe.keep)]
        quantize_static(
            str(work / "prepared.onnx"), str(work / "quantized.onnx"), Reader(),
            quant_format=QuantFormat.QDQ, per_channel=recipe.per_channel,
            activation_type=qtype, weight_type=qtype, calibrate_method=method,
            nodes_to_exclude=kept,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
        )
        quantized = onnx.load(str(work / "quantized.onnx"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    props = {p.key: p.value for p in fp32.metadata_props}
    props["prmnet.onnx.precision"] = precision
    props["prmnet.onnx.exporter"] += (f"; onnxruntime quantize_static QDQ {precision}, "
                                      f"{method.name} calibration")
    props["prmnet.onnx.calibration"] = json.dumps({
        "recipe_sha256": recipe.sha256, "recipe": recipe.text, "frames": len(inputs),
        "kept": kept,
    })
    set_metadata(quantized, props)
    onnx.checker.check_model(quantized)
    return quantized.SerializeToString(), kept


def evaluate_graph(onnx: bytes, frames: FrameSet, limit: int | None = None,
                   threads: int | None = None) -> float:
    """Macro mean IoU (noise, LTE, NR) of a graph through ONNX Runtime on the CPU.

    Raises:
        InputError: for frames that do not fit the graph.
    """
    info = onnx_info_from_bytes(onnx, "the graph")
    if frames.in_chans != info.input_shape[1]:
        raise InputError(f"the graph takes {info.input_shape[1]} channels, the test frames "
                         f"have {frames.in_chans}")
    confusion = ConfusionMatrix()
    count = len(frames) if limit is None else min(limit, len(frames))
    with OnnxRuntimeRunner(lambda: onnx, "cpu", info.precision, threads=threads) as runner:
        for i in range(count):
            x, truth, _ = frames[i]
            if tuple(truth.shape) != tuple(info.input_shape[2:]):
                raise InputError(f"the test frames are {tuple(truth.shape)}, the graph takes "
                                 f"{tuple(info.input_shape[2:])}")
            probs = runner.infer(x[None])
            confusion.update(probs.max(dim=1).indices[0], truth)
    return float(confusion.summary()["miou"])


def calibrate(model: nn.Module, card: ModelCard, inputs: np.ndarray, recipe: Recipe,
              frames: FrameSet, out: str | Path, precision: str = "int8",
              install: Path | None = None, limit: int | None = None,
              threads: int | None = None) -> CalibResult:
    """Quantize, measure against float32, and write the graph to ``out`` only if accepted.

    Args:
        model: the checkpoint's network.
        card: its card.
        inputs: the calibration frames (see :mod:`calib.dataset`).
        recipe: the recipe.
        frames: the test frames.
        out: where the accepted graph goes.
        precision: ``int8`` or ``fp8``.
        install: where the accepted graph is also copied (the engine cache's quantized path).
        limit: measure on the first ``limit`` test frames only.
        threads: ONNX Runtime threads.

    Raises:
        InputError: for a model or frames that do not fit.
    """
    with torch.inference_mode():
        fp32 = export_onnx_bytes(model, card)
    quantized, kept = quantize_graph(fp32, inputs, recipe, precision)
    log.info("quantized %s to %s, %d nodes kept in float; measuring on the test frames",
             card.model, precision, len(kept))
    result = CalibResult(
        precision=precision,
        fp32_miou=evaluate_graph(fp32, frames, limit, threads),
        quantized_miou=evaluate_graph(quantized, frames, limit, threads),
        max_drop_points=recipe.max_drop_points,
        frames=len(frames) if limit is None else min(limit, len(frames)),
        kept=kept,
    )
    if result.accepted:
        result.path = Path(out)
        write_atomic(result.path, quantized)
        if install is not None:
            write_atomic(install, quantized)
            result.installed = install
    return result

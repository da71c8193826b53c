"""ONNX export: a checkpoint's network as a graph every backend can run, with its card inside.

The graph (contract for ONNX Runtime, TensorRT and anyone else who runs it):

* input ``spectrogram``: float32, shape ``(N, C, H, W)``, every dimension fixed at export (by
  default N = 1 and the card's ``height`` x ``width``, 256 x 256). With C = 1 it is
  :func:`monitor.dsp.spectrogram.network_input` of a dBFS frame: ``(dB - floor) / 10`` with the
  floor the frame's 20th percentile, clipped to [-2, 8]; rows are time (oldest first), columns
  frequency (lowest first). With C = 3 (the published ``prmnet``) it is the authors' RGB
  picture in [0, 1].
* output ``probabilities``: float32, shape ``(N, classes, H, W)``, the per-pixel class
  probabilities (channel 0 noise, 1 LTE, 2 NR), summing to 1 over the classes.

The softmax is in the graph: the exported graph is ``probabilities(model(x))``
(:func:`engines.prmnet.probabilities`), so every backend returns what the torch runner returns,
and reduced-precision graphs keep their float32 softmax. ``precision="fp16"`` exports the network
in float16 behind float32 input and output (casts in the graph), the form TensorRT builds as a
strongly typed network; INT8 and FP8 graphs come from :mod:`calib` (Q/DQ nodes in the graph).

The card travels in the file's ``metadata_props``: ``prmnet.card.<field>`` holds each field of
the :class:`~monitor.train.cards.ModelCard` as JSON, and ``prmnet.onnx.*`` the format, the
SHA-256 of the checkpoint's safetensors file (:func:`weights_sha256`), the precision, the input
and output description and the exporter, so an ONNX file can be matched to its checkpoint
(:func:`read_onnx_info`).

The TorchScript-based exporter (``dynamo=False``) is used: on torch 2.13 it gives a clean graph
in a fraction of a second, with nodes named after the modules (``/model/msfe/branches.0/Conv``),
which is what the calibration recipe names when it keeps layers in higher precision.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from engines.prmnet import probabilities
from monitor.errors import InputError
from monitor.train.cards import CARD_FORMAT, ModelCard, json_safe

__all__ = [
    "DEFAULT_OPSET",
    "EXPORT_PRECISIONS",
    "INPUT_NAME",
    "ONNX_FORMAT",
    "OUTPUT_NAME",
    "OnnxInfo",
    "export_onnx",
    "export_onnx_bytes",
    "onnx_info_from_bytes",
    "read_onnx_info",
    "set_metadata",
    "weights_sha256",
    "write_atomic",
]

INPUT_NAME = "spectrogram"
OUTPUT_NAME = "probabilities"
ONNX_FORMAT = "prmnet-onnx/1"
DEFAULT_OPSET = 19
"""Opset 19: the first with float8 QuantizeLinear/DequantizeLinear (FP8 Q/DQ graphs)."""
EXPORT_PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}
"""Precisions the exporter writes itself; ``int8`` and ``fp8`` graphs come from ``calib``."""

_CARD_PREFIX = "prmnet.card."
_ONNX_PREFIX = "prmnet.onnx."


@dataclass(frozen=True)
class OnnxInfo:
    """What a prmnet-monitor ONNX file says about itself.

    Attributes:
        card: the checkpoint's model card.
        weights_sha256: SHA-256 of the checkpoint's safetensors file.
        precision: ``fp32``, ``fp16``, ``int8`` or ``fp8``.
        input_shape: ``(N, C, H, W)`` of ``spectrogram``.
        output_shape: ``(N, classes, H, W)`` of ``probabilities``.
        exporter: what wrote the graph (and what quantized it, where something did).
    """

    card: ModelCard
    weights_sha256: str
    precision: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    exporter: str


class _Probabilities(nn.Module):
    """The exported graph: ``probabilities(model(x))``, the network in ``dtype``."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return probabilities(self.model(x.to(self.dtype)).float())


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of the safetensors file :func:`~monitor.train.cards.save_checkpoint` writes for
    ``model``: the identity of its weights, whether or not they were ever saved."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = safetensors.torch.save(state, metadata={"format": CARD_FORMAT})
    return hashlib.sha256(data).hexdigest()


def export_onnx_bytes(
    model: nn.Module,
    card: ModelCard,
    batch: int = 1,
    height: int | None = None,
    width: int | None = None,
    opset: int = DEFAULT_OPSET,
    precision: str = "fp32",
    device: torch.device | str = "cpu",
) -> bytes:
    """The serialized ONNX model (see the module docstring), checked by ``onnx.checker``.

    Args:
        model: the network, returning logits (left as it was: device, mode, dtype).
        card: its model card.
        batch: frames per inference (fixed).
        height: rows (default the card's); a multiple of 8 (of 16 for models that pool rows in
            pairs).
        width: frequency pixels (default the card's); a multiple of 8.
        opset: ONNX opset.
        precision: ``fp32`` or ``fp16`` (the network in float16, input and output float32).
        device: where the network is traced (one forward pass): a GPU where the engine will run
            on one (a float16 pass of the published network on a CPU takes minutes).

    Raises:
        InputError: for a size the network cannot take or a precision the exporter does not
            write.
    """
    import onnx

    if precision not in EXPORT_PRECISIONS:
        raise InputError(f"the exporter writes {' or '.join(EXPORT_PRECISIONS)} graphs, not "
                         f"{precision!r} (int8 and fp8 graphs come from prmnet calib)")
    height = height or int(card.geometry["height"])
    width = width or int(card.geometry["width"])
    if batch < 1:
        raise InputError(f"batch must be at least 1, got {batch}")
    dtype = EXPORT_PRECISIONS[precision]
    network = copy.deepcopy(model).to(device, dtype).eval()
    graph = _Probabilities(network, dtype).eval()
    x = torch.zeros(batch, card.in_chans, height, width, device=device)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation, and the tracer notes that the
        # network's shape checks are Python conditions: both expected, the shapes are fixed.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        try:
            torch.onnx.export(graph, (x,), buffer, dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              do_constant_folding=True)
        except ValueError as exc:  # the network's own shape checks
            raise InputError(f"cannot export {card.model} at {height}x{width}: {exc}") from None
    proto = onnx.load_from_string(buffer.getvalue())
    output_shape = (batch, len(card.classes), height, width)
    props = {
        **{f"{_CARD_PREFIX}{k}": json.dumps(json_safe(v))
           for k, v in json.loads(card.to_json()).items()},
        f"{_ONNX_PREFIX}format": ONNX_FORMAT,
        f"{_ONNX_PREFIX}weights_sha256": weights_sha256(model),
        f"{_ONNX_PREFIX}precision": precision,
        f"{_ONNX_PREFIX}input": json.dumps(_describe_input(card, (batch, card.in_chans, height,
                                                                   width))),
        f"{_ONNX_PREFIX}output": json.dumps({
            "name": OUTPUT_NAME, "shape": list(output_shape), "dtype": "float32",
            "meaning": "per-pixel class probabilities (softmax in the graph), channel i = "
                       f"class {card.classes}[i]",
        }),
        f"{_ONNX_PREFIX}exporter": f"torch {torch.__version__} TorchScript exporter, opset "
                                   f"{opset}",
    }
    set_metadata(proto, props)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def export_onnx(
    model: nn.Module,
    card: ModelCard,
    path: str | Path,
    batch: int = 1,
    height: int | None = None,
    width: int | None = None,
    opset: int = DEFAULT_OPSET,
    precision: str = "fp32",
    device: torch.device | str = "cpu",
) -> Path:
    """Write the ONNX model (see :func:`export_onnx_bytes`) to ``path``, atomically.

    Returns:
        ``path``.

    Raises:
        InputError: as :func:`export_onnx_bytes`, or for a path that cannot be written.
    """
    data = export_onnx_bytes(model, card, batch, height, width, opset, precision, device)
    target = Path(path)
    write_atomic(target, data)
    return target


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name beside ``path``, then rename it into place.

    Raises:
        InputError: for a path that cannot be written.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None


def set_metadata(proto: Any, props: dict[str, str]) -> None:
    """Set (replace or add) ``metadata_props`` entries of an ``onnx.ModelProto``."""
    kept = [p for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    for p in kept:
        proto.metadata_props.add(key=p.key, value=p.value)
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)


def read_onnx_info(path: str | Path) -> OnnxInfo:
    """What a prmnet-monitor ONNX file says about itself.

    Raises:
        InputError: for a file that is missing, not ONNX, or not written by prmnet-monitor.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror or exc}") from None
    return onnx_info_from_bytes(data, str(p))


def onnx_info_from_bytes(data: bytes, where: str = "ONNX model") -> OnnxInfo:
    """:func:`read_onnx_info` of a serialized model.

    Raises:
        InputError: for bytes that are not ONNX, or not written by prmnet-monitor.
    """
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load_from_string(data)
    except (DecodeError, ValueError) as exc:
        raise InputError(f"{where} is not an ONNX model: {exc}") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if props.get(f"{_ONNX_PREFIX}format") != ONNX_FORMAT:
        raise InputError(f"{where} was not exported by prmnet-monitor (no {ONNX_FORMAT} "
                         "metadata); export it with prmnet export")
    try:
        card = ModelCard.from_dict(
            {k[len(_CARD_PREFIX):]: json.loads(v) for k, v in props.items()
             if k.startswith(_CARD_PREFIX)}, where)
        io_shapes = [json.loads(props[f"{_ONNX_PREFIX}{k}"])["shape"] for k in ("input",
                                                                                "output")]
        return OnnxInfo(
            card=card,
            weights_sha256=props[f"{_ONNX_PREFIX}weights_sha256"],
            precision=props[f"{_ONNX_PREFIX}precision"],
            input_shape=tuple(io_shapes[0]),
            output_shape=tuple(io_shapes[1]),
            exporter=props[f"{_ONNX_PREFIX}exporter"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where} has broken prmnet metadata: {exc}") from None


def _describe_input(card: ModelCard, shape: tuple[int, ...]) -> dict[str, Any]:
    if card.in_chans == 1:
        meaning = ("network_input of a dBFS spectrogram frame: (dB - floor) / db_per_unit, "
                   "floor = the frame's floor_quantile, clipped to input_range; rows = time "
                   "(oldest first), columns = frequency (lowest first)")
    else:
        meaning = "the authors' RGB spectrogram picture, values in [0, 1]"
    return {"name": INPUT_NAME, "shape": list(shape), "dtype": "float32", "meaning": meaning,
            "geometry": card.geometry}

"""Shipped checkpoints: weights as safetensors, described by a model card (JSON).

A checkpoint is two files of the same stem: ``NAME.safetensors`` (the state dict, never a
pickle) and ``NAME.json`` (its :class:`ModelCard`). The card holds what it takes to rebuild the
network (``create_model(card.model, **card.overrides)``), to feed it what it was trained on (the
spectrogram geometry and the input scaling), to know which sample rates it serves, and how it
was made and how well it does (training command, seed, data, metrics).

Geometry: every frame is ``Geometry.for_rate(rate, width, height, frame_seconds)`` for the
stream's rate; ``samples_per_row``, ``nfft`` and ``segments`` follow from the rate, so the card
stores only what is fixed: the image size, the frame duration and the input scaling
(``floor_quantile``, ``db_per_unit`` and ``input_range`` of :mod:`monitor.dsp.spectrogram`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import nn

from engines.complexity import conv_flops, param_count
from engines.prmnet import CLASS_NAMES, MODEL_CONFIGS, create_model
from monitor import __version__
from monitor.dsp.geometry import FRAME_SECONDS, IMAGE_SIZE, Geometry
from monitor.dsp.spectrogram import DB_PER_UNIT, FLOOR_QUANTILE, INPUT_RANGE
from monitor.errors import InputError

__all__ = [
    "CARD_FORMAT",
    "ModelCard",
    "card_path",
    "geometry_fields",
    "json_safe",
    "load_checkpoint",
    "make_card",
    "read_card",
    "save_checkpoint",
    "weights_path",
    "write_card",
]

CARD_FORMAT = "prmnet-card/1"


def geometry_fields(
    width: int = IMAGE_SIZE, height: int = IMAGE_SIZE, frame_seconds: float = FRAME_SECONDS
) -> dict[str, Any]:
    """The card's geometry: image size, frame duration and the network input's scaling."""
    return {
        "width": width,
        "height": height,
        "frame_seconds": frame_seconds,
        "floor_quantile": FLOOR_QUANTILE,
        "db_per_unit": DB_PER_UNIT,
        "input_range": list(INPUT_RANGE),
    }


@dataclass
class ModelCard:
    """What a checkpoint is, what it serves, how it was made and how well it does.

    Attributes:
        model: a name of ``engines.prmnet.MODEL_CONFIGS``.
        overrides: constructor arguments replacing the config's (JSON values only).
        in_chans: input channels (1: a dBFS spectrogram through ``network_input``; 3: the
            authors' RGB pictures).
        parameters: parameter count.
        gflops: convolution GFLOPs (multiply-add = 2) of one frame at the geometry.
        geometry: see :func:`geometry_fields`.
        sample_rates: ``[lowest, highest]`` sample rate served, samples per second.
        classes: class of each output channel.
        training: command, seed, configuration, steps and the step of these weights.
        data: the data the network was trained and validated on.
        metrics: measured figures by data set (``validation``, ``test``, ``captures``).
        software: the prmnet-monitor version that wrote the card.
        format: the card format.
    """

    model: str
    overrides: dict[str, Any]
    in_chans: int
    parameters: int
    gflops: float
    geometry: dict[str, Any]
    sample_rates: list[float]
    classes: list[str] = field(default_factory=lambda: list(CLASS_NAMES))
    training: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    software: str = f"prmnet-monitor {__version__}"
    format: str = CARD_FORMAT

    def serves(self, sample_rate: float) -> bool:
        """Whether ``sample_rate`` lies within the rates the model was trained for."""
        low, high = self.sample_rates
        return low * (1 - 1e-9) <= sample_rate <= high * (1 + 1e-9)

    def geometry_for(self, sample_rate: float) -> Geometry:
        """The spectrogram geometry of a stream at ``sample_rate`` for this model."""
        g = self.geometry
        return Geometry.for_rate(sample_rate, g["width"], g["height"], g["frame_seconds"])

    def build(self) -> nn.Module:
        """The network the card describes, freshly initialised."""
        return create_model(self.model, **self.overrides)

    def to_json(self) -> str:
        return json.dumps(json_safe(asdict(self)), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: Path | str = "model card") -> ModelCard:
        """A card from its JSON object.

        Raises:
            InputError: for another format, a missing field or an unknown model.
        """
        if data.get("format") != CARD_FORMAT:
            raise InputError(f"{where} is not a {CARD_FORMAT} model card")
        try:
            card = cls(**data)
        except TypeError as exc:
            raise InputError(f"{where} is not a valid model card: {exc}") from None
        if card.model not in MODEL_CONFIGS:
            raise InputError(f"{where} names an unknown model {card.model!r}")
        return card


def make_card(
    model_name: str,
    overrides: dict[str, Any],
    sample_rates: list[float],
    geometry: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> ModelCard:
    """A card for ``create_model(model_name, **overrides)``, counting parameters and FLOPs.

    Raises:
        ValueError: for overrides that are not JSON values (norm or activation layers).
    """
    try:
        json.dumps(overrides)
    except TypeError:
        raise ValueError(f"model overrides must be JSON values, got {overrides}") from None
    geometry = geometry or geometry_fields()
    with torch.device("meta"):
        model = create_model(model_name, **overrides)
    in_chans = int(model.in_chans)
    flops = conv_flops(model, (1, in_chans, geometry["height"], geometry["width"]))
    return ModelCard(
        model=model_name,
        overrides=dict(overrides),
        in_chans=in_chans,
        parameters=param_count(model),
        gflops=round(flops / 1e9, 3),
        geometry=geometry,
        sample_rates=[float(min(sample_rates)), float(max(sample_rates))],
        training=training or {},
        data=data or {},
        metrics=metrics or {},
    )


def card_path(path: str | Path) -> Path:
    """The card's path for a checkpoint named by its weights, its card or its stem."""
    p = Path(path)
    return p.with_suffix(".json") if p.suffix in (".safetensors", ".json") else Path(f"{p}.json")


def weights_path(path: str | Path) -> Path:
    """The weights' path for a checkpoint named by its weights, its card or its stem."""
    p = Path(path)
    return p.with_suffix(".safetensors") if p.suffix in (".safetensors", ".json") else Path(
        f"{p}.safetensors"
    )


def save_checkpoint(model: nn.Module, card: ModelCard, path: str | Path,
                    half: bool = False) -> Path:
    """Write ``model``'s weights (safetensors) and ``card`` (JSON) beside them.

    Both files are written to temporary names and renamed, so a reader never sees half a
    checkpoint. ``half``: floating-point tensors are stored in float16 where float16 holds them,
    for about half the size (the loader casts them back to the model's float32); round the
    model first with :func:`round_to_half` so that what was measured is what is stored.

    Returns:
        The path of the weights.
    """
    weights = weights_path(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half and v.is_floating_point() and _fits_half(v) else v)
             .detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = weights.with_name(f".{weights.name}.tmp")
    safetensors.torch.save_file(state, str(tmp), metadata={"format": CARD_FORMAT})
    os.replace(tmp, weights)
    write_card(card, card_path(weights))
    return weights


def round_to_half(model: nn.Module) -> list[str]:
    """Round every floating-point tensor of ``model`` that float16 can hold to the nearest
    float16, in place; those with a value beyond its range (65504; batch-norm running means can
    be) stay as they are.

    Returns:
        The names of the tensors left in float32.
    """
    kept = []
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if _fits_half(tensor):
                tensor.copy_(tensor.half())
            else:
                kept.append(name)
    return kept


def _fits_half(tensor: torch.Tensor) -> bool:
    return bool(tensor.abs().max() <= torch.finfo(torch.float16).max)


def write_card(card: ModelCard, path: str | Path) -> None:
    """Write a card atomically (temporary file, then rename)."""
    target = card_path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(card.to_json())
    os.replace(tmp, target)


def read_card(path: str | Path) -> ModelCard:
    """The card of a checkpoint.

    Raises:
        InputError: if it is missing or not a valid card.
    """
    target = card_path(path)
    try:
        data = json.loads(target.read_text())
    except FileNotFoundError:
        raise InputError(f"model card {target} not found (it sits beside the weights)") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read model card {target}: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{target} is not a model card")
    return ModelCard.from_dict(data, target)


def load_checkpoint(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[nn.Module, ModelCard]:
    """Rebuild a checkpoint's network from its card and load its weights (in eval mode).

    Args:
        path: ``NAME.safetensors``, ``NAME.json`` or ``NAME``.
        device: where the weights go.

    Raises:
        InputError: for a missing or corrupt file, or a card that does not match the weights.
    """
    card = read_card(path)
    weights = weights_path(path)
    if not weights.is_file():
        raise InputError(f"weights {weights} not found")
    try:
        state = safetensors.torch.load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"{weights} is not a valid safetensors file: {exc}") from None
    try:
        model = card.build()
    except (TypeError, ValueError) as exc:
        raise InputError(f"{card_path(path)}: cannot build {card.model}: {exc}") from None
    if card.geometry["height"] % model.row_multiple:
        raise InputError(f"{card_path(path)}: {card.model} {card.overrides} takes input rows in "
                         f"multiples of {model.row_multiple}, and its frames have "
                         f"{card.geometry['height']}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise InputError(
            f"{weights} does not match its card ({card.model} {card.overrides}): {first}"
        ) from None
    if param_count(model) != card.parameters:
        raise InputError(
            f"{card_path(path)} says {card.parameters} parameters, the weights hold "
            f"{param_count(model)}"
        )
    return model.to(device).eval(), card


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinite floats replaced by None (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value

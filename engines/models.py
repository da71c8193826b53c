"""The models the monitor can run: shipped checkpoints in ``engines/weights``, or a user's.

``load_model(None, rate)`` picks the shipped checkpoint that serves the stream's sample rate.
Where several do, on the CPU it takes the cheapest, in FLOPs, as the CPU's time is what limits
the monitor there (and of those the one trained for the narrowest range of rates: a model made
for a few rates before one made for all); on a GPU, where any shipped model takes a small part
of a frame's duration, it takes the one whose card records the best test mean IoU (a card
without a test figure after every one with).

``load_model(NAME, rate)`` a shipped one by name; ``load_model(PATH, rate)`` a checkpoint file
with its card beside it. A model that does not serve the rate is refused with the rates it does
serve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from monitor.dsp.geometry import Geometry
from monitor.errors import InputError
from monitor.train.cards import ModelCard, load_checkpoint, read_card

__all__ = ["WEIGHTS_DIR", "LoadedModel", "load_model", "shipped_models"]

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass
class LoadedModel:
    """A network with its weights and its card."""

    name: str
    module: nn.Module
    card: ModelCard

    def geometry(self, sample_rate: float) -> Geometry:
        return self.card.geometry_for(sample_rate)


def shipped_models() -> dict[str, Path]:
    """Name to weights path of every checkpoint shipped with the package."""
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))
            if p.with_suffix(".json").is_file()}


def load_model(name: str | None, sample_rate: float | None, gpu: bool = False) -> LoadedModel:
    """The model to run on a stream at ``sample_rate`` (on the CPU; runners move it);
    ``sample_rate`` None: the named model, whatever rates it serves; ``gpu``: choose for a GPU
    (the best tested rather than the cheapest; see the module's docstring).

    Raises:
        InputError: no such model, a broken checkpoint, or a model that does not serve the rate.
    """
    shipped = shipped_models()
    if name is None and sample_rate is None:
        raise InputError("name a model: a shipped one or a checkpoint path")
    if name is None:
        serving = [(_rank(card, gpu), stem)
                   for stem, card in ((s, read_card(p)) for s, p in shipped.items())
                   if card.serves(sample_rate)]
        if not serving:
            rates = "; ".join(f"{stem}: {_rates(read_card(p))}" for stem, p in shipped.items())
            raise InputError(
                f"no shipped model serves {sample_rate / 1e6:g} MS/s"
                + (f" ({rates})" if rates else " (none is installed)")
                + "; choose a --rate it serves or give --model PATH"
            )
        name = min(serving)[-1]
    path = shipped.get(name, Path(name))
    if not (path.is_file() or path.with_suffix(".json").is_file()):
        known = ", ".join(shipped) or "none installed"
        raise InputError(f"no model {name!r}: give a shipped name ({known}) or a checkpoint path")
    module, card = load_checkpoint(path)
    if sample_rate is not None and not card.serves(sample_rate):
        raise InputError(f"model {path.stem} serves {_rates(card)}, not "
                         f"{sample_rate / 1e6:g} MS/s; choose a --rate it serves")
    return LoadedModel(path.stem, module, card)


def _rank(card: ModelCard, gpu: bool) -> tuple[float, ...]:
    """The order of preference among models that serve a rate: lowest first."""
    cost = (card.gflops, card.sample_rates[1] / card.sample_rates[0])
    if not gpu:
        return cost
    miou = card.metrics.get("test", {}).get("pixels", {}).get("miou")
    return (-miou if isinstance(miou, (int, float)) else math.inf, *cost)


def _rates(card: ModelCard) -> str:
    low, high = card.sample_rates
    return f"{low / 1e6:g}-{high / 1e6:g} MS/s"

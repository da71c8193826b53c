"""Function-preserving widening of a trained U-Net (Net2WiderNet).

Chen, Goodfellow and Shlens, "Net2Net: Accelerating Learning via Knowledge Transfer", ICLR 2016.
A wider U-Net starts from a narrower one's weights and computes exactly what it computed: each
channel of the wide network is a copy of a channel of the narrow one (channel ``c'`` of a level
``W`` wide copies channel ``c' * w // W`` of the level ``w`` wide), and the next layer shares
each narrow input weight out over that channel's copies. Copies of a channel see the same
inputs and carry the same values, batch norms included, so any shares that sum to one keep the
function; they are drawn at random (:data:`SHARE_RANGE` before they are normalised) so that the
copies get different gradients and part ways as training goes on. Without that, two copies
would stay equal forever and the width would buy nothing.

This answers, at the cost of training only the wider network, whether a network has the
capacity its data asks for: it starts where the narrow one ended.
"""

from __future__ import annotations

import torch

from engines.unet import UNet

__all__ = ["SHARE_RANGE", "widen_unet"]

SHARE_RANGE = (0.5, 1.5)
"""Range of the random weights that share an input weight out over its channel's copies."""


def widen_unet(source: UNet, target: UNet, generator: torch.Generator | None = None) -> None:
    """Load into ``target`` the weights that make it compute what ``source`` computes.

    Args:
        source: the trained network.
        target: a U-Net of the same depth, classes, input, time pooling and folding, at least as
            wide at every level; its parameters and buffers are overwritten.
        generator: source of the random shares (torch's default generator when None).

    Raises:
        ValueError: if ``target`` is not a wider twin of ``source`` (a strip context included:
            its convolutions are not widened here).
    """
    _check_twins(source, target)
    narrow = source.widths
    wide = target.widths
    maps = [_channel_map(n, w) for n, w in zip(narrow, wide, strict=True)]
    stem_in = torch.arange(source.stem.block[0].in_channels)
    weights = source.state_dict()
    out: dict[str, torch.Tensor] = {}

    def double_conv(prefix: str, in_map: torch.Tensor, level: int) -> None:
        _conv(out, weights, f"{prefix}.block.0", maps[level], in_map, generator)
        _norm(out, weights, f"{prefix}.block.1", maps[level])
        _conv(out, weights, f"{prefix}.block.3", maps[level], maps[level], generator)
        _norm(out, weights, f"{prefix}.block.4", maps[level])

    double_conv("stem", stem_in, 0)
    for i in range(source.depth):
        double_conv(f"down.{i}", maps[i], i + 1)
    for j, level in enumerate(reversed(range(source.depth))):
        # Each up block takes cat([skip, upsampled]): the skip's channels come first.
        joined = torch.cat([maps[level], narrow[level] + maps[level + 1]])
        double_conv(f"up.{j}", joined, level)
    _conv(out, weights, "classifier", torch.arange(source.num_classes), maps[0], generator)
    out["classifier.bias"] = weights["classifier.bias"].clone()
    target.load_state_dict(out, strict=True)


def _check_twins(source: UNet, target: UNet) -> None:
    """Raise ValueError unless ``target`` is ``source`` at least as wide at every level."""
    same = ("depth", "num_classes", "in_chans", "time_pool", "time_fold")
    differ = [a for a in same if getattr(source, a) != getattr(target, a)]
    if differ:
        raise ValueError(f"a U-Net widens only into one of the same {', '.join(differ)}")
    if source.contexts or target.contexts:
        raise ValueError("a U-Net with strip context cannot be widened")
    narrow, wide = source.widths, target.widths
    if any(w < n for n, w in zip(narrow, wide, strict=True)):
        raise ValueError(f"a U-Net of widths {narrow} cannot widen into one of widths {wide}")


def _channel_map(narrow: int, wide: int) -> torch.Tensor:
    """For each of ``wide`` channels, the narrow channel it copies (every one copied at least
    once, the copies of one channel side by side)."""
    return torch.arange(wide) * narrow // wide


def _conv(out: dict[str, torch.Tensor], weights: dict[str, torch.Tensor], name: str,
          out_map: torch.Tensor, in_map: torch.Tensor, generator: torch.Generator | None) -> None:
    """The widened ``name.weight``: rows copied along ``out_map``; each narrow input weight
    shared out over the copies of its input channel, in random shares that sum to one."""
    weight = weights[f"{name}.weight"][out_map][:, in_map]
    low, high = SHARE_RANGE
    draws = low + (high - low) * torch.rand(weight.shape[:2], generator=generator)
    sums = torch.zeros(weight.shape[0], int(in_map.max()) + 1).index_add_(1, in_map, draws)
    shares = draws / sums[:, in_map]
    out[f"{name}.weight"] = weight * shares[:, :, None, None].to(weight.dtype)


def _norm(out: dict[str, torch.Tensor], weights: dict[str, torch.Tensor], name: str,
          channel_map: torch.Tensor) -> None:
    """The widened batch norm ``name``: every channel's affine and statistics copied."""
    for key in ("weight", "bias", "running_mean", "running_var"):
        out[f"{name}.{key}"] = weights[f"{name}.{key}"][channel_map].clone()
    out[f"{name}.num_batches_tracked"] = weights[f"{name}.num_batches_tracked"].clone()

"""U-Net baseline for the PRMNet comparison.

Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
MICCAI 2015; here in its common padded form: every level two 3x3 convs (no bias) with
BatchNorm and ReLU, 2x2 max-pool down, bilinear x2 up, concatenation with the skip, a 1x1
classifier. Same convention as :class:`engines.prmnet.PRMNet`: ``(N, in_chans, H, W)`` in,
``(N, num_classes, H, W)`` logits out, classes in ``engines.prmnet.CLASS_NAMES`` order.

``time_pool`` (:mod:`engines.time_pool`) runs it on input rows averaged in groups, as
``prmnet_cpu`` does, at a fraction of the cost; ``time_fold`` gives it each group's rows as
channels instead of their mean; ``strip_context`` (:mod:`engines.context`) gives the bottleneck
and the last features each column's and row's context over the whole frame.

``unet_s`` is sized to cost about as much as ``prmnet_w16`` (convolution FLOPs at 256x256, one
input channel): :func:`unet_matching_flops` finds the base width for any other target.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engines.complexity import conv_flops
from engines.context import StripContext
from engines.time_pool import check_time_pool, pooled_forward

__all__ = ["UNET_CONFIGS", "UNet", "unet_matching_flops", "unet_s"]

UNET_CONFIGS: dict[str, dict[str, Any]] = dict(
    unet_s=dict(in_chans=1, base_width=25, depth=4),
)
"""U-Net variants; ``unet_s``: 17.0 GFLOP at 1x1x256x256, 2.7 % above ``prmnet_w16``."""


class DoubleConv(nn.Module):
    """Two 3x3 convs, each followed by norm and activation."""

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: Callable[..., nn.Module] = nn.ReLU,
    ) -> None:
        """Build the block.

        Args:
            in_chans: Input channels.
            out_chans: Output channels of both convs.
            norm_layer: Norm after each conv.
            act_layer: Activation after each norm.
        """
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(in_chans, out_chans, 3, padding=1, bias=False),
            norm_layer(out_chans),
            act_layer(inplace=True),
            nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False),
            norm_layer(out_chans),
            act_layer(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply both convs."""
        return self.block(x)


class UNet(nn.Module):
    """U-Net with ``depth`` poolings; level ``i`` has ``base_width * 2**i`` channels.

    Input width must be a multiple of ``2**depth``, height of ``2**depth * time_pool``.
    """

    def __init__(
        self,
        in_chans: int = 1,
        num_classes: int = 3,
        base_width: int = 16,
        depth: int = 4,
        time_pool: int = 1,
        time_fold: bool = False,
        strip_context: bool = False,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: Callable[..., nn.Module] = nn.ReLU,
    ) -> None:
        """Build the network.

        Args:
            in_chans: Input channels.
            num_classes: Output classes.
            base_width: Channels at full resolution; doubled at each level down.
            depth: Number of 2x2 poolings (levels below full resolution).
            time_pool: Average this many input rows (time) into one before the network and
                stretch the logits back after it.
            time_fold: Give the first convolution each group's ``time_pool`` rows as channels
                instead of their mean.
            strip_context: Add each column's and row's context (over the whole frame) to the
                bottleneck's features and to the last ones.
            norm_layer: Norm after every 3x3 conv.
            act_layer: Activation after every norm.
        """
        super().__init__()
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.depth = depth
        self.time_pool = check_time_pool(time_pool)
        self.time_fold = time_fold
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.stem = DoubleConv(in_chans * time_pool if time_fold else in_chans, widths[0],
                               norm_layer, act_layer)
        self.down = nn.ModuleList(
            DoubleConv(widths[i], widths[i + 1], norm_layer, act_layer) for i in range(depth)
        )
        self.up = nn.ModuleList(
            DoubleConv(widths[i + 1] + widths[i], widths[i], norm_layer, act_layer)
            for i in reversed(range(depth))
        )
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)
        self.contexts = nn.ModuleList(
            [StripContext(widths[-1]), StripContext(widths[0])] if strip_context else []
        )

    @property
    def widths(self) -> list[int]:
        """Channels at each level, full resolution first."""
        return [self.stem.block[0].out_channels,
                *(block.block[0].out_channels for block in self.down)]

    @property
    def row_multiple(self) -> int:
        """The input heights it takes are multiples of this."""
        return 2**self.depth * self.time_pool

    def _check_input(self, x: torch.Tensor, time_pool: int = 1, chans: int | None = None) -> None:
        """Raise ValueError unless ``x`` is ``(N, chans, H, W)`` (``chans`` default in_chans),
        W a multiple of ``2**depth`` and H of ``2**depth * time_pool``."""
        multiple = 2**self.depth
        chans = self.in_chans if chans is None else chans
        if x.ndim != 4 or x.shape[1] != chans:
            raise ValueError(
                f"UNet expects input of shape (N, {chans}, H, W), got {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        if height % (multiple * time_pool) or width % multiple:
            raise ValueError(
                f"UNet input height must be a multiple of {multiple * time_pool} and width of "
                f"{multiple} ({self.depth} poolings"
                + (f", after {time_pool} rows are pooled" if time_pool > 1 else "")
                + f"), got {height}x{width}; pad or crop the spectrogram frame"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Run encoder and decoder.

        Args:
            x: Input of shape ``(N, C, H, W)``, H and W multiples of ``2**depth``; C is
                ``in_chans``, or ``in_chans * time_pool`` where ``time_fold`` folds rows into
                channels.

        Returns:
            Decoder output, ``base_width`` channels at full resolution.

        Raises:
            ValueError: If the input's shape is not one the network accepts.
        """
        self._check_input(x, chans=self.stem.block[0].in_channels)
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        if self.contexts:
            x = self.contexts[0](x)
        for block in self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = block(torch.cat([skips.pop(), x], dim=1))
        return self.contexts[1](x) if self.contexts else x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Map decoder features to logits of shape ``(N, num_classes, H, W)``."""
        return self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment a batch of spectrograms.

        Args:
            x: Input of shape ``(N, in_chans, H, W)``, W a multiple of ``2**depth``, H of
                ``2**depth * time_pool``.

        Returns:
            Logits of shape ``(N, num_classes, H, W)``.

        Raises:
            ValueError: If the input's shape is not one the network accepts.
        """
        self._check_input(x, self.time_pool)
        return pooled_forward(lambda p: self.forward_head(self.forward_features(p)), x,
                              self.time_pool, self.time_fold)


def unet_matching_flops(
    target_flops: int,
    in_chans: int,
    input_hw: tuple[int, int],
    num_classes: int = 3,
    depth: int = 4,
    max_base_width: int = 256,
) -> UNet:
    """Build the U-Net whose convolution FLOPs come closest to a target.

    Only the base width varies. FLOPs grow with it, so a bisection finds the narrowest width
    that reaches the target, and the closer of it and the next narrower one wins. FLOPs are
    counted by :func:`engines.complexity.conv_flops` on the ``meta`` device, which allocates
    nothing.

    Args:
        target_flops: FLOPs (multiply-add = 2) of one ``(1, in_chans, *input_hw)`` forward.
        in_chans: Input channels.
        input_hw: Input height and width, multiples of ``2**depth``.
        num_classes: Output classes.
        depth: Number of poolings.
        max_base_width: Widest base width considered.

    Returns:
        The U-Net, freshly initialised on the CPU.
    """

    def flops(base_width: int) -> int:
        with torch.device("meta"):
            model = UNet(in_chans, num_classes, base_width, depth)
        return conv_flops(model, (1, in_chans, *input_hw))

    low, high = 1, max_base_width
    while low < high:
        mid = (low + high) // 2
        if flops(mid) < target_flops:
            low = mid + 1
        else:
            high = mid
    candidates = [w for w in (low - 1, low) if w >= 1]
    best = min(candidates, key=lambda w: abs(flops(w) - target_flops))
    return UNet(in_chans, num_classes, best, depth)


def unet_s(**kwargs: Any) -> UNet:
    """U-Net sized to ``prmnet_w16``'s FLOPs at 256x256, one input channel."""
    return UNet(**{**UNET_CONFIGS["unet_s"], **kwargs})

"""PRMNet: Resolution-Preserving Multi-Scale Network.

Paper: Nguyen, Dang, Pham, Huynh-The, "Resolution-Preserving Multi-Scale Network for 5G-LTE
Spectrogram-Based Spectrum Sensing", IEEE Wireless Communications Letters 14(6), 2025,
doi 10.1109/LWC.2025.3552193.

The network segments every pixel of a spectrogram into one of ``CLASS_NAMES`` (0 = noise,
1 = LTE, 2 = NR). This implementation follows the authors' training script layer for layer; one
class, :class:`PRMNet`, serves the published width and the narrower CPU widths.

Structure (``w`` = ``width``, every body conv 5x5 with bias and followed by ReLU, no norm):

* **MSFE**: four parallel convs of the input (1x1, 3x3, 5x5, 7x7, ``ms_width`` channels each),
  concatenated (``X_ms``, ``4 * ms_width`` channels), BatchNorm, ReLU.
* **Stage 1**: two convs at full resolution (``4 * ms_width -> w``, ``w -> w``).
* **Stages 2, 3, 4**: an *exchange* that gives birth to a new stream at half the resolution of
  the coarsest one, then two convs on every stream. **Stage 5**: an exchange without a birth,
  then one conv on every stream. **Fusion**: an exchange into the full-resolution stream only,
  then a 1x1 conv (``w -> w``, no activation) gives ``X_out``.
* **Exchange**: every existing stream ``i`` becomes ``relu(conv_i(x_i))`` plus every other
  stream resampled to its resolution: max-pooled (x2, x4, x8) when finer, bilinearly upsampled
  (x2, x4, x8) when coarser. A newborn stream is the sum of all existing streams max-pooled to
  its resolution, with no conv of its own. Every exchange reads the streams as they were before
  it. This reproduces the authors' per-stage conv counts: stage 1: 2; stage ``k`` = 2, 3, 4:
  ``(k - 1)`` exchange convs + ``2k`` stream convs = 5, 8, 11; stage 5: 4 + 4 = 8; fusion: 1.
  That is the 35 body convs, all 5x5; the 1x1 projection to ``X_out`` comes on top.
* **Head**: 1x1 conv of ``X_ms`` (``4 * ms_width`` channels in and out), concatenated with
  ``X_out``, BatchNorm, ReLU, 5x5 conv to ``head_width``, ReLU, 5x5 conv to
  ``head_mid_width``, ReLU, 5x5 conv to ``num_classes``.

Parameter count of the published model (``prmnet``: 3 input channels, ``w`` = 128,
``ms_width`` = 16, head 64/16, 3 classes), 14,495,203 in all, the number the authors' script
prints:

=================================================  ===========
MSFE convs (64 + 448 + 1,216 + 2,368)                   4,096
MSFE BatchNorm(64)                                        128
body conv 64 -> 128, 5x5                              204,928
34 body convs 128 -> 128, 5x5 (34 x 409,728)       13,930,752
1x1 projection 128 -> 128                              16,512
head 1x1 conv 64 -> 64                                  4,160
head BatchNorm(192)                                       384
head convs 192 -> 64, 64 -> 16, 16 -> 3 (5x5)         334,083
spare BatchNorm(64) + BatchNorm(16), unused               160
total                                              14,495,203
=================================================  ===========

The last line: the authors' script declares a ``BatchNorm2d(64)`` and a ``BatchNorm2d(16)`` for
the head but never calls them, so they count as parameters without touching the output. The
published network registers them too (``spare_head_norms=True``, the default, as
``head.spare_norms``), so that its parameter count is the authors' and every tensor of their
state dict has a counterpart here (under other names); they take no part in the forward pass
and get no gradient (a ``DistributedDataParallel`` wrapper needs
``find_unused_parameters=True`` with them). The CPU variants leave them out.

Variants (conv FLOPs count a multiply-add as 2, one 256x256 frame; see
:mod:`engines.complexity`):

==============  ========  =====  ========  ==========  ===========  ==========  ========
variant         in_chans  width  ms_width  head_width  head_mid     parameters  GFLOP
==============  ========  =====  ========  ==========  ===========  ==========  ========
``prmnet``      3         128    16        64          16           14,495,203  932.8
``prmnet_w32``  1         32     8         32          8               958,371   65.0
``prmnet_w16``  1         16     4         16          8               242,179   16.5
``prmnet_w8``   1         8      2         8           4                60,963    4.2
``prmnet_cpu``  1         8      2         8           4                60,963    1.0
==============  ========  =====  ========  ==========  ===========  ==========  ========

``prmnet_cpu`` is ``prmnet_w8`` on input rows averaged in fours (``time_pool=4``, 625 us a row
at 40 ms a frame), its logits stretched back to every row: a quarter of the cost, every
frequency pixel kept. Body cost grows with
``width**2``; the CPU variants also narrow the MSFE and the head, whose
first 5x5 conv alone costs 40 GFLOP per frame at the published widths.

Differences from the authors' script, none of which changes a weight: ``forward`` returns
logits, not softmax probabilities (the script applied cross-entropy to its softmax output,
softmaxing twice); :func:`probabilities` is the one place in the project where softmax
happens, so that training uses the logits with cross-entropy and the monitor, the exported
engines and evaluation turn logits into probabilities through this one function. The x4 and x8
max-pools are single pooling windows, identical to the script's repeated 2x2 pools on inputs
whose sides are multiples of 8, which every input must be.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from engines.context import StripContext
from engines.time_pool import check_time_pool, pooled_forward
from engines.unet import UNET_CONFIGS, unet_s

__all__ = [
    "CLASS_NAMES",
    "MODEL_CONFIGS",
    "NUM_STREAMS",
    "PRMNET_CONFIGS",
    "PRMNet",
    "create_model",
    "fuse_for_inference",
    "prmnet",
    "prmnet_cpu",
    "prmnet_w8",
    "prmnet_w16",
    "prmnet_w32",
    "probabilities",
]

CLASS_NAMES: tuple[str, ...] = ("noise", "LTE", "NR")
"""Class of each output channel: 0 = noise, 1 = LTE, 2 = NR."""

NUM_STREAMS = 4
"""Parallel resolutions: 1, 1/2, 1/4 and 1/8 of the input."""

_STAGE_DEPTHS = (2, 2, 2, 1)
"""Convs per stream after the exchange of stages 2, 3, 4 and 5."""

_KERNEL_SIZE = 5
"""Kernel size of every body and head conv but the 1x1 ones."""

PRMNET_CONFIGS: dict[str, dict[str, Any]] = dict(
    prmnet=dict(
        in_chans=3,
        width=128,
        ms_width=16,
        head_width=64,
        head_mid_width=16,
        spare_head_norms=True,
    ),
    prmnet_w32=dict(
        in_chans=1,
        width=32,
        ms_width=8,
        head_width=32,
        head_mid_width=8,
        spare_head_norms=False,
    ),
    prmnet_w16=dict(
        in_chans=1,
        width=16,
        ms_width=4,
        head_width=16,
        head_mid_width=8,
        spare_head_norms=False,
    ),
    prmnet_w8=dict(
        in_chans=1,
        width=8,
        ms_width=2,
        head_width=8,
        head_mid_width=4,
        spare_head_norms=False,
    ),
)
"""PRMNet variants: ``prmnet`` as published (RGB input), the others one-channel CPU widths."""
PRMNET_CONFIGS["prmnet_cpu"] = dict(PRMNET_CONFIGS["prmnet_w8"], time_pool=4)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Turn logits into per-pixel class probabilities.

    The one place in the project where softmax happens: models (and the engines exported from
    them) output logits, training applies cross-entropy to the logits, and everything that needs
    probabilities (the segmenter, evaluation) calls this function.

    Args:
        logits: Model output of shape ``(N, num_classes, H, W)``.

    Returns:
        Probabilities of the same shape, summing to 1 over the class dimension (dim 1).
    """
    return torch.softmax(logits, dim=1)


def _resample(x: torch.Tensor, scale_log2: int) -> torch.Tensor:
    """Move a stream ``scale_log2`` octaves down (max-pool) or up (bilinear) in resolution."""
    if scale_log2 > 0:
        return F.max_pool2d(x, kernel_size=2**scale_log2)
    return F.interpolate(x, scale_factor=2.0**-scale_log2, mode="bilinear", align_corners=False)


class MultiScaleStem(nn.Module):
    """MSFE: parallel 1x1, 3x3, 5x5 and 7x7 convs of the input, concatenated, norm, act."""

    def __init__(
        self,
        in_chans: int,
        ms_width: int,
        kernel_sizes: tuple[int, ...] = (1, 3, 5, 7),
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: Callable[..., nn.Module] = nn.ReLU,
    ) -> None:
        """Build the stem.

        Args:
            in_chans: Input channels.
            ms_width: Output channels of each parallel conv.
            kernel_sizes: Kernel size of each parallel conv (odd, "same" padding).
            norm_layer: Norm applied to the concatenation.
            act_layer: Activation after the norm.
        """
        super().__init__()
        self.in_chans = in_chans
        self.branches = nn.ModuleList(
            nn.Conv2d(in_chans, ms_width, k, padding=k // 2) for k in kernel_sizes
        )
        self.out_chans = ms_width * len(kernel_sizes)
        self.norm = norm_layer(self.out_chans)
        self.act = act_layer(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``X_ms``, ``out_chans`` channels at the input resolution."""
        return self.act(self.norm(torch.cat([branch(x) for branch in self.branches], dim=1)))


class ConvAct(nn.Module):
    """A "same"-padded conv with bias followed by an activation."""

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        kernel_size: int = _KERNEL_SIZE,
        act_layer: Callable[..., nn.Module] = nn.ReLU,
    ) -> None:
        """Build the block.

        Args:
            in_chans: Input channels.
            out_chans: Output channels.
            kernel_size: Odd kernel size.
            act_layer: Activation after the conv.
        """
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size, padding=kernel_size // 2)
        self.act = act_layer(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply conv then activation."""
        return self.act(self.conv(x))


class Exchange(nn.Module):
    """Exchange between parallel streams; stream ``i`` has resolution ``2**-i``.

    Output stream ``i`` that exists in the input is ``act(conv_i(x_i))`` plus every other input
    stream resampled to resolution ``2**-i``; an output stream that does not exist in the input
    (a birth) is the sum of every input stream max-pooled to its resolution.
    """

    def __init__(
        self,
        width: int,
        num_in: int,
        num_out: int,
        act_layer: Callable[..., nn.Module] = nn.ReLU,
    ) -> None:
        """Build the exchange.

        Args:
            width: Channels of every stream.
            num_in: Streams coming in.
            num_out: Streams going out: ``num_in + 1`` (a birth), ``num_in``, or fewer (a
                fusion into the finest ones).
            act_layer: Activation after each stream's conv.
        """
        super().__init__()
        if not 1 <= num_out <= num_in + 1:
            raise ValueError(f"an exchange maps {num_in} streams to 1..{num_in + 1}, not {num_out}")
        self.num_out = num_out
        self.convs = nn.ModuleList(
            ConvAct(width, width, act_layer=act_layer) for _ in range(min(num_in, num_out))
        )

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Map the input streams (finest first) to the output streams (finest first)."""
        out = []
        for i in range(self.num_out):
            terms = [_resample(x, i - j) for j, x in enumerate(xs) if j != i]
            if i < len(self.convs):
                terms.insert(0, self.convs[i](xs[i]))
            y = terms[0]
            for term in terms[1:]:
                y = y + term
            out.append(y)
        return out


class PRMStage(nn.Module):
    """An exchange followed by a stack of convs on every output stream."""

    def __init__(
        self,
        width: int,
        num_in: int,
        num_out: int,
        depth: int,
        act_layer: Callable[..., nn.Module] = nn.ReLU,
    ) -> None:
        """Build the stage.

        Args:
            width: Channels of every stream.
            num_in: Streams coming in.
            num_out: Streams going out (``num_in + 1`` gives birth to a new coarsest stream).
            depth: Convs on each stream after the exchange.
            act_layer: Activation after every conv.
        """
        super().__init__()
        self.exchange = Exchange(width, num_in, num_out, act_layer)
        self.streams = nn.ModuleList(
            nn.Sequential(*(ConvAct(width, width, act_layer=act_layer) for _ in range(depth)))
            for _ in range(num_out)
        )

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Exchange, then run each stream's convs."""
        return [stream(x) for stream, x in zip(self.streams, self.exchange(xs), strict=True)]


class PRMBody(nn.Module):
    """Resolution-preserving body: ``X_ms`` in, ``X_out`` (``width`` channels, full res) out."""

    def __init__(
        self,
        in_chans: int,
        width: int,
        act_layer: Callable[..., nn.Module] = nn.ReLU,
        strip_context: bool = False,
    ) -> None:
        """Build the body.

        Args:
            in_chans: Channels of ``X_ms``.
            width: Channels of every stream.
            act_layer: Activation after every 5x5 conv.
            strip_context: Add each column's and row's context over the whole frame
                (:mod:`engines.context`) to the fused stream before the projection.
        """
        super().__init__()
        self.stem = nn.Sequential(
            ConvAct(in_chans, width, act_layer=act_layer),
            ConvAct(width, width, act_layer=act_layer),
        )
        self.stages = nn.ModuleList(
            PRMStage(width, min(k + 1, NUM_STREAMS), min(k + 2, NUM_STREAMS), depth, act_layer)
            for k, depth in enumerate(_STAGE_DEPTHS)
        )
        self.fuse = Exchange(width, NUM_STREAMS, 1, act_layer)
        self.context = StripContext(width) if strip_context else nn.Identity()
        self.proj = nn.Conv2d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``X_out``."""
        xs = [self.stem(x)]
        for stage in self.stages:
            xs = stage(xs)
        return self.proj(self.context(self.fuse(xs)[0]))


class PRMHead(nn.Module):
    """Head: skip conv of ``X_ms``, concat with ``X_out``, norm, act, three convs to logits."""

    def __init__(
        self,
        ms_chans: int,
        width: int,
        head_width: int,
        head_mid_width: int,
        num_classes: int,
        spare_norms: bool = False,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: Callable[..., nn.Module] = nn.ReLU,
    ) -> None:
        """Build the head.

        Args:
            ms_chans: Channels of ``X_ms``.
            width: Channels of ``X_out``.
            head_width: Output channels of the first 5x5 conv.
            head_mid_width: Output channels of the second 5x5 conv.
            num_classes: Output channels (logits).
            spare_norms: Register the two norms (``head_width``, ``head_mid_width`` channels)
                that the authors' script declares and never calls; they are not used here
                either (see the module docstring).
            norm_layer: Norm applied to the concatenation.
            act_layer: Activation after the norm and after the first two 5x5 convs.
        """
        super().__init__()
        self.skip = nn.Conv2d(ms_chans, ms_chans, 1)
        self.norm = norm_layer(ms_chans + width)
        self.act = act_layer(inplace=True)
        self.conv1 = ConvAct(ms_chans + width, head_width, act_layer=act_layer)
        self.conv2 = ConvAct(head_width, head_mid_width, act_layer=act_layer)
        self.classifier = nn.Conv2d(
            head_mid_width, num_classes, _KERNEL_SIZE, padding=_KERNEL_SIZE // 2
        )
        if spare_norms:
            self.spare_norms = nn.ModuleList([norm_layer(head_width), norm_layer(head_mid_width)])

    def forward(self, x_ms: torch.Tensor, x_out: torch.Tensor) -> torch.Tensor:
        """Return logits, ``num_classes`` channels at the input resolution."""
        x = self.act(self.norm(torch.cat([self.skip(x_ms), x_out], dim=1)))
        return self.classifier(self.conv2(self.conv1(x)))


class PRMNet(nn.Module):
    """PRMNet, any width; the defaults build the published network, 14,495,203 parameters.

    Input sides must be multiples of 8 (three octaves below full resolution). The output has
    the input's resolution and ``num_classes`` channels of logits, in ``CLASS_NAMES`` order.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 3,
        width: int = 128,
        ms_width: int = 16,
        head_width: int = 64,
        head_mid_width: int = 16,
        spare_head_norms: bool = True,
        time_pool: int = 1,
        time_fold: bool = False,
        strip_context: bool = False,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: Callable[..., nn.Module] = nn.ReLU,
    ) -> None:
        """Build the network.

        Args:
            in_chans: Input channels (3 for the published RGB images, 1 for a spectrogram).
            num_classes: Output classes.
            width: Channels of every body stream (128 published).
            ms_width: Channels of each of the four MSFE convs (16 published).
            head_width: Output channels of the head's first 5x5 conv (64 published).
            head_mid_width: Output channels of the head's second 5x5 conv (16 published).
            spare_head_norms: Register the authors' two unused head norms (published: True),
                for their parameter count; the output does not depend on it.
            time_pool: Average this many input rows (time) into one before the network and
                stretch the logits back after it (published: 1); see
                :mod:`engines.time_pool`.
            time_fold: Give the MSFE each group's ``time_pool`` rows as channels instead of
                their mean (published: False); see :mod:`engines.time_pool`.
            strip_context: Give the body's output each column's and row's context over the
                whole frame (published: False); see :mod:`engines.context`.
            norm_layer: Norm of the MSFE and of the head (BatchNorm published).
            act_layer: Activation everywhere (ReLU published); called with ``inplace=True``.
        """
        super().__init__()
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.time_pool = check_time_pool(time_pool)
        self.time_fold = time_fold
        self.msfe = MultiScaleStem(in_chans * time_pool if time_fold else in_chans, ms_width,
                                   norm_layer=norm_layer, act_layer=act_layer)
        self.body = PRMBody(self.msfe.out_chans, width, act_layer=act_layer,
                            strip_context=strip_context)
        self.head = PRMHead(
            self.msfe.out_chans,
            width,
            head_width,
            head_mid_width,
            num_classes,
            spare_norms=spare_head_norms,
            norm_layer=norm_layer,
            act_layer=act_layer,
        )

    @property
    def row_multiple(self) -> int:
        """The input heights it takes are multiples of this."""
        return 2 ** (NUM_STREAMS - 1) * self.time_pool

    def _check_input(self, x: torch.Tensor, time_pool: int = 1, chans: int | None = None) -> None:
        """Raise ValueError unless ``x`` is ``(N, chans, H, W)`` (``chans`` default in_chans)
        with W a multiple of 8 and H of 8 * ``time_pool``."""
        multiple = 2 ** (NUM_STREAMS - 1)
        chans = self.in_chans if chans is None else chans
        if x.ndim != 4 or x.shape[1] != chans:
            raise ValueError(
                f"PRMNet expects input of shape (N, {chans}, H, W), got {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        if height % (multiple * time_pool) or width % multiple:
            raise ValueError(
                f"PRMNet input height must be a multiple of {multiple * time_pool} and width of "
                f"{multiple} (its coarsest stream is 1/{multiple} of the input"
                + (f", after {time_pool} rows are pooled" if time_pool > 1 else "")
                + f"), got {height}x{width}; pad or crop the spectrogram frame"
            )

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the MSFE and the body.

        Args:
            x: Input of shape ``(N, C, H, W)``, H and W multiples of 8; C is ``in_chans``, or
                ``in_chans * time_pool`` where ``time_fold`` folds rows into channels.

        Returns:
            ``(X_ms, X_out)``: the MSFE output and the body output, both at full resolution.

        Raises:
            ValueError: If the input's shape is not one the network accepts.
        """
        self._check_input(x, chans=self.msfe.in_chans)
        x_ms = self.msfe(x)
        return x_ms, self.body(x_ms)

    def forward_head(self, x_ms: torch.Tensor, x_out: torch.Tensor) -> torch.Tensor:
        """Run the head.

        Args:
            x_ms: MSFE output.
            x_out: Body output.

        Returns:
            Logits of shape ``(N, num_classes, H, W)``.
        """
        return self.head(x_ms, x_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment a batch of spectrograms.

        Args:
            x: Input of shape ``(N, in_chans, H, W)``, W a multiple of 8, H of 8 *
                ``time_pool``.

        Returns:
            Logits of shape ``(N, num_classes, H, W)``; :func:`probabilities` turns them into
            class probabilities.

        Raises:
            ValueError: If the input's shape is not one the network accepts.
        """
        self._check_input(x, self.time_pool)
        return pooled_forward(lambda p: self.forward_head(*self.forward_features(p)), x,
                              self.time_pool, self.time_fold)


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for inference: the same logits from fewer, larger operations.

    For a :class:`PRMNet` with BatchNorm (as published): the four MSFE convs become one conv
    (each kernel zero-padded to the largest, centred) with the stem's BatchNorm folded in, and
    the head's BatchNorm is folded into the two convs whose outputs it normalises (the head's
    skip conv and the body's 1x1 projection). On the CPU this saved 7 % of ``prmnet_cpu``'s
    time (48.0 against 51.5 ms a frame, one thread, same run). Any other model comes back as
    it is. The copy is for inference only: its norms use the running statistics and are gone.
    """
    if not isinstance(model, PRMNet) or not (
        isinstance(model.msfe.norm, nn.BatchNorm2d) and isinstance(model.head.norm, nn.BatchNorm2d)
    ):
        return model
    fused = copy.deepcopy(model).eval()
    stem = fused.msfe
    size = max(branch.kernel_size[0] for branch in stem.branches)
    first = stem.branches[0]
    weight = first.weight.new_zeros(stem.out_chans, first.in_channels, size, size)
    for i, branch in enumerate(stem.branches):
        k, n = branch.kernel_size[0], branch.out_channels
        at = (size - k) // 2
        weight[i * n : (i + 1) * n, :, at : at + k, at : at + k] = branch.weight
    bias = torch.cat([branch.bias for branch in stem.branches])
    merged = nn.Conv2d(first.in_channels, stem.out_chans, size, padding=size // 2)
    merged.weight, merged.bias = _fold(weight, bias, stem.norm, slice(None))
    stem.branches = nn.ModuleList([merged])
    stem.norm = nn.Identity()
    head, proj = fused.head, fused.body.proj
    split = head.skip.out_channels
    head.skip.weight, head.skip.bias = _fold(
        head.skip.weight, head.skip.bias, head.norm, slice(0, split))
    proj.weight, proj.bias = _fold(proj.weight, proj.bias, head.norm, slice(split, None))
    head.norm = nn.Identity()
    return fused


def _fold(
    weight: torch.Tensor, bias: torch.Tensor, norm: nn.BatchNorm2d, channels: slice
) -> tuple[nn.Parameter, nn.Parameter]:
    """A conv's weight and bias with ``channels`` of an eval-mode BatchNorm folded in."""
    return fuse_conv_bn_weights(
        weight, bias, norm.running_mean[channels], norm.running_var[channels], norm.eps,
        norm.weight[channels], norm.bias[channels],
    )


def _create_prmnet(variant: str, **kwargs: Any) -> PRMNet:
    """Build a PRMNet variant, ``kwargs`` overriding its config."""
    return PRMNet(**{**PRMNET_CONFIGS[variant], **kwargs})


def prmnet(**kwargs: Any) -> PRMNet:
    """PRMNet as published: RGB input, width 128, 14,495,203 parameters."""
    return _create_prmnet("prmnet", **kwargs)


def prmnet_w32(**kwargs: Any) -> PRMNet:
    """PRMNet at width 32, one input channel."""
    return _create_prmnet("prmnet_w32", **kwargs)


def prmnet_w16(**kwargs: Any) -> PRMNet:
    """PRMNet at width 16, one input channel."""
    return _create_prmnet("prmnet_w16", **kwargs)


def prmnet_w8(**kwargs: Any) -> PRMNet:
    """PRMNet at width 8, one input channel."""
    return _create_prmnet("prmnet_w8", **kwargs)


def prmnet_cpu(**kwargs: Any) -> PRMNet:
    """PRMNet at width 8 on rows pooled in fours: the model that keeps up on two CPU cores."""
    return _create_prmnet("prmnet_cpu", **kwargs)


MODEL_CONFIGS: dict[str, dict[str, Any]] = {**PRMNET_CONFIGS, **UNET_CONFIGS}
"""Every model a model card can name, with its constructor arguments."""

_ENTRY_POINTS: dict[str, Callable[..., nn.Module]] = {
    "prmnet": prmnet,
    "prmnet_w32": prmnet_w32,
    "prmnet_w16": prmnet_w16,
    "prmnet_w8": prmnet_w8,
    "prmnet_cpu": prmnet_cpu,
    "unet_s": unet_s,
}


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a model by name, as a model card names it.

    Args:
        name: A key of :data:`MODEL_CONFIGS`.
        **overrides: Constructor arguments replacing the config's (e.g. ``in_chans=3``).

    Returns:
        The model, freshly initialised.

    Raises:
        ValueError: If ``name`` is not a known model.
    """
    if name not in _ENTRY_POINTS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(_ENTRY_POINTS)}")
    return _ENTRY_POINTS[name](**overrides)

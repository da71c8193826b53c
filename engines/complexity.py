"""Model complexity: parameter counts and convolution/linear FLOPs.

Used by ``prmnet bench model`` and by the model tests. FLOPs here count a multiply-add as two
operations and cover only convolutions (plain and transposed) and linear layers, which is where
essentially all the arithmetic of PRMNet and the U-Net baseline is; biases, normalisation,
activations, pooling, interpolation and additions are not counted.

The counter runs one forward pass with hooks, so it is exact for whatever the model does with
the given input shape. Build the model on the ``meta`` device (``with torch.device("meta"):``)
to count a large model at a large input in milliseconds without allocating any memory.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["conv_flops", "param_count"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED_CONVS = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def param_count(model: nn.Module, trainable_only: bool = False) -> int:
    """Count the parameters of a model.

    Args:
        model: The model.
        trainable_only: Count only parameters with ``requires_grad`` set.

    Returns:
        The number of scalar parameters (buffers such as BatchNorm running statistics are not
        parameters and are not counted).
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _layer_flops(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    """FLOPs (multiply-add = 2) of one call of a convolution or linear layer."""
    if isinstance(module, _CONVS):
        macs_per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        return 2 * output.numel() * macs_per_output
    if isinstance(module, _TRANSPOSED_CONVS):
        macs_per_input = module.out_channels // module.groups * math.prod(module.kernel_size)
        return 2 * inputs[0].numel() * macs_per_input
    if isinstance(module, nn.Linear):
        return 2 * output.numel() * module.in_features
    raise TypeError(f"no FLOP rule for {type(module).__name__}")


def conv_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Count the convolution and linear-layer FLOPs of one forward pass.

    A multiply-add counts as 2 FLOPs; biases and every other kind of layer are not counted. The
    model runs once, in eval mode and under ``torch.inference_mode``, on zeros of
    ``input_shape`` on the device and dtype of its first parameter (a model on the ``meta``
    device is counted without computing anything); its training mode is restored afterwards.

    Args:
        model: The model to count.
        input_shape: The full input shape, batch included, e.g. ``(1, 1, 256, 256)``.

    Returns:
        FLOPs for the whole input (all of its batch).
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_flops(module, inputs, output)

    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None else torch.float32
    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (*_CONVS, *_TRANSPOSED_CONVS, nn.Linear))
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model(torch.zeros(input_shape, device=device, dtype=dtype))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total

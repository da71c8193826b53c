"""Time pooling, a CPU economy the networks share.

The input's rows (time) are averaged in groups of ``time_pool`` before the network runs, and its
logits are stretched back to every row after it (bilinear): the cost falls by the factor, and
every frequency pixel, where the carrier edges are, stays. Carriers switch on and off over
milliseconds, many rows at the monitor's row times, so the time edges lose little.

Averaging also blurs what happens inside a group: at 40 ms a frame a row lasts 156 us, so LTE's
1 ms subframe spans 6.4 rows and NR's 0.5 ms slot (30 kHz) 3.2, and a group of four rows holds
less than one of either. Folding (``fold=True``) gives the network the group's rows as channels
instead of their mean (space-to-depth in time): only the first convolutions grow, and the time
structure inside a group stays for the network to use. A folded network whose first convolutions
share each weight of its averaging twin equally over the folded rows computes exactly what the
twin computes (:func:`fold_weights`), so it can start from the twin's training.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["check_time_pool", "fold_weights", "pooled_forward"]


def check_time_pool(time_pool: int) -> int:
    """``time_pool`` itself.

    Raises:
        ValueError: it is not a positive integer.
    """
    if time_pool < 1:
        raise ValueError(f"time_pool must be at least 1, got {time_pool}")
    return time_pool


def pooled_forward(
    segment: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    time_pool: int,
    fold: bool = False,
) -> torch.Tensor:
    """``segment`` (input to logits) run on ``x`` with its rows averaged in ``time_pool``s (or,
    with ``fold``, each group's rows as channels: channel ``c * time_pool + k`` is row k of a
    group of input channel c), the logits stretched back to ``x``'s rows. ``x``'s height must be
    a multiple of ``time_pool``."""
    if time_pool == 1:
        return segment(x)
    groups = x.unflatten(-2, (-1, time_pool))  # (N, C, H / time_pool, time_pool, W)
    if fold:
        pooled = groups.transpose(-3, -2).flatten(1, 2)
    else:
        # a mean over a reshape: avg_pool2d with a (k, 1) window takes a slow path on the CPU
        pooled = groups.mean(dim=-2)
    logits = segment(pooled)
    return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def fold_weights(weight: torch.Tensor, time_pool: int) -> torch.Tensor:
    """The weight of a first convolution ``(out, in, kh, kw)`` of an averaging network shared
    out over the rows of a folded one, ``(out, in * time_pool, kh, kw)``: the two compute the
    same."""
    return weight.repeat_interleave(time_pool, dim=1) / time_pool

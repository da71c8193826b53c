"""Time pooling, a CPU economy the networks share.

The input's rows (time) are averaged in groups of ``time_pool`` before the network runs, and its
logits are stretched back to every row after it (bilinear): the cost falls by the factor, and
every frequency pixel, where the carrier edges are, stays. Carriers switch on and off over
milliseconds, many rows at the monitor's row times, so the time edges lose little.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["check_time_pool", "pooled_forward"]


def check_time_pool(time_pool: int) -> int:
    """``time_pool`` itself.

    Raises:
        ValueError: it is not a positive integer.
    """
    if time_pool < 1:
        raise ValueError(f"time_pool must be at least 1, got {time_pool}")
    return time_pool


def pooled_forward(
    segment: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, time_pool: int
) -> torch.Tensor:
    """``segment`` (input to logits) run on ``x`` with its rows averaged in ``time_pool``s, the
    logits stretched back to ``x``'s rows. ``x``'s height must be a multiple of ``time_pool``."""
    if time_pool == 1:
        return segment(x)
    # a mean over a reshape: avg_pool2d with a (k, 1) window takes a slow path on the CPU
    pooled = x.unflatten(-2, (-1, time_pool)).mean(dim=-2)
    logits = segment(pooled)
    return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

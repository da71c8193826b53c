"""Strip context: what a pixel's column holds over the whole frame, and its row over the view.

A carrier's label covers its whole channel for as long as it is on, sent or not, and most of
those pixels carry little: a lightly loaded carrier sends in scattered blocks, an idle LTE
carrier only its reference signals (``prmnet eval``'s "Where the errors lie" measures it). What
places such a pixel in a carrier is far away in time: the bursts in the same column at other
moments, which set the channel's edges, and the rest of its row, which says whether the
carrier is on. A 3x3 network sees them only at its coarsest level, blurred.

:class:`StripContext` adds to every pixel's features a 1x1 convolution of its column's mean
and maximum over all rows and one of its row's mean and maximum over all columns (strip pooling:
Hou et al., "Strip Pooling: Rethinking Spatial Pooling for Scene Parsing", CVPR 2020, here
additive). Both convolutions start at zero, so a network that gains the module computes what
it computed without it and can go on from its weights (``init`` in a training configuration).
The cost is a few reductions and two 1x1 convolutions on strips; the frame is whole in every
path (training, evaluation, the monitor), so the context is the same everywhere.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["StripContext"]


class StripContext(nn.Module):
    """``x`` plus its columns' and rows' context, ``(N, C, H, W)`` in and out.

    Args:
        chans: channels of ``x``.
    """

    def __init__(self, chans: int) -> None:
        super().__init__()
        self.column = nn.Conv2d(2 * chans, chans, 1)
        self.row = nn.Conv2d(2 * chans, chans, 1)
        for conv in (self.column, self.row):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add each column's context (over rows, dim -2) and each row's (over columns)."""
        column = torch.cat([x.mean(dim=-2, keepdim=True), x.amax(dim=-2, keepdim=True)], dim=1)
        row = torch.cat([x.mean(dim=-1, keepdim=True), x.amax(dim=-1, keepdim=True)], dim=1)
        return x + self.column(column) + self.row(row)

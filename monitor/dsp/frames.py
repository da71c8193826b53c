"""Rows in, frames out: the newest ``height`` rows, kept on the compute device.

A preallocated ring of rows with a write index (no per-row allocation, no roll of the whole
history); :meth:`RollingFrames.frame` returns the newest rows oldest-first, a full frame once
``height`` rows have arrived, fewer before that.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["RollingFrames", "pad_rows"]


class RollingFrames:
    """The last ``height`` rows of a stretch of stream.

    Args:
        height: rows per frame.
        width: pixels per row.
        device: where the ring lives.
    """

    def __init__(self, height: int, width: int, device: torch.device | str = "cpu") -> None:
        self.height = height
        self._ring = torch.zeros(height, width, device=device)
        self._next = 0
        self.rows_total = 0

    def reset(self) -> None:
        """Forget every row (a break in the stream)."""
        self._next = 0
        self.rows_total = 0

    def push(self, rows: torch.Tensor) -> None:
        """Append rows (n, width); only the newest ``height`` of them can matter."""
        n = rows.shape[0]
        self.rows_total += n
        if n >= self.height:
            self._ring.copy_(rows[-self.height :])
            self._next = 0
            return
        first = min(n, self.height - self._next)
        self._ring[self._next : self._next + first] = rows[:first]
        self._ring[: n - first] = rows[first:]
        self._next = (self._next + n) % self.height

    @property
    def rows_held(self) -> int:
        return min(self.rows_total, self.height)

    def frame(self) -> torch.Tensor:
        """A copy of the newest rows held, oldest first: (rows_held, width)."""
        if self.rows_total < self.height:
            return self._ring[: self.rows_total].clone()
        return torch.cat((self._ring[self._next :], self._ring[: self._next]))


def pad_rows(frame: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad a frame (..., rows, width) at the bottom to a multiple of ``multiple`` rows (at least
    ``multiple``) by mirroring its last rows, so a network can take a frame shorter than usual;
    only the first ``rows`` of its output belong to real rows. The monitor, its engines and the
    evaluation pad to the frame height: the shape the engines are built for and the network
    trained on (a 6-row recording padded to 32 rows and to 16 rows gave the U-Net different
    classes)."""
    rows = frame.shape[-2]
    target = max(multiple, -(-rows // multiple) * multiple)
    if target == rows:
        return frame
    x = frame.reshape(1, -1, rows, frame.shape[-1])
    if rows == 1:
        x = F.pad(x, (0, 0, 0, target - 1), mode="replicate")
    while x.shape[-2] < target:  # reflection pads at most rows - 1 at a time
        step = min(target - x.shape[-2], x.shape[-2] - 1)
        x = F.pad(x, (0, 0, 0, step), mode="reflect")
    return x.reshape(*frame.shape[:-2], target, frame.shape[-1])

"""IQ blocks from the host onto the compute device.

On the CPU a block is used where it lies (a tensor over the block's array, no copy). On CUDA it
goes through a ring of page-locked (pinned) host buffers: the block is copied into the next
buffer and from there to the device asynchronously, on the caller's current stream, so the
copy overlaps the previous frame's work and the host thread goes on at once. A buffer is
written again only after the copy that last read it has finished (a CUDA event per buffer);
with ``slots`` buffers the host waits only when it laps the device. Not yet run on a GPU (see
the README).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["HostToDevice"]

SLOTS = 4
"""Pinned buffers in the ring: blocks in flight before the host waits for a copy."""


class HostToDevice:
    """Moves complex64 sample blocks to ``device``.

    Args:
        device: where the samples are wanted.
        slots: pinned buffers in the ring (CUDA only).
    """

    def __init__(self, device: torch.device | str, slots: int = SLOTS) -> None:
        self.device = torch.device(device)
        self._pinned = self.device.type == "cuda"
        self._buffers: list[torch.Tensor | None] = [None] * slots
        self._events = ([torch.cuda.Event() for _ in range(slots)] if self._pinned else [])
        self._next = 0

    def __call__(self, samples: np.ndarray) -> torch.Tensor:
        """The block on the device: complex64, 1-D.

        On CUDA the returned tensor is valid for work queued on the caller's current stream.
        """
        block = np.asarray(samples, dtype=np.complex64)
        if not self._pinned:
            return torch.from_numpy(block)
        i = self._next
        self._next = (i + 1) % len(self._buffers)
        self._events[i].synchronize()  # the copy that last read this buffer is done
        buffer = self._buffers[i]
        if buffer is None or buffer.numel() < block.size:
            buffer = self._buffers[i] = torch.empty(block.size, dtype=torch.complex64,
                                                    pin_memory=True)
        staged = buffer[: block.size]
        staged.numpy()[:] = block
        on_device = staged.to(self.device, non_blocking=True)
        self._events[i].record(torch.cuda.current_stream(self.device))
        return on_device

"""Samples onto the compute device: no copy on the CPU, pinned buffers on CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monitor.dsp.staging import HostToDevice


def test_on_the_cpu_the_block_is_used_where_it_lies() -> None:
    block = (np.arange(1000) * (1 + 1j)).astype(np.complex64)
    out = HostToDevice("cpu")(block)
    assert out.dtype == torch.complex64 and out.data_ptr() == block.ctypes.data


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_blocks_arrive_whole_through_the_ring_however_long() -> None:
    feed = HostToDevice("cuda", slots=2)
    rng = np.random.default_rng(0)
    blocks = [(rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
              for n in (1000, 5000, 300, 5000, 7000, 10)]
    outs = [feed(b) for b in blocks]  # later blocks reuse earlier buffers
    torch.cuda.current_stream().synchronize()
    for block, out in zip(blocks, outs, strict=True):
        assert out.is_cuda and torch.equal(out.cpu(), torch.from_numpy(block))

"""The torch backend: eager PyTorch on the CPU or a CUDA device, the reference of the others.

It runs the network with its BatchNorms folded into the convs (:func:`fuse_for_inference`), or,
on the CPU, the network compiled ahead of time for this CPU where it is given one
(:mod:`engines.backends.aot_package`).

On CUDA it also runs in float16 or bfloat16 (autocast; the softmax in float32), and can replay
the network as a CUDA graph: the first frame of each input shape is captured (after a warm-up on
a side stream) into a graph with static input and output buffers, and every later frame of that
shape is copied in and replayed, which removes the per-layer launch cost of eager mode.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING

import torch
from torch import nn

from engines.backends.aot_package import load_package
from engines.backends.base import Runner, first_line, fit_rows
from engines.prmnet import fuse_for_inference, probabilities
from engines.selfcheck import full_float32

if TYPE_CHECKING:
    from engines.selfcheck import SelfCheck

__all__ = ["TORCH_PRECISIONS", "TorchRunner"]

log = logging.getLogger(__name__)

TORCH_PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_WARMUP = 3


class TorchRunner(Runner):
    """Torch in inference mode.

    Args:
        model: the network (its weights loaded), returning logits.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``; on CUDA also ``fp16`` or ``bf16`` (autocast, probabilities in
            float32).
        channels_last: keep weights and input in channels-last memory (faster convolutions on
            most devices).
        cuda_graph: replay captured CUDA graphs (CUDA only).
        check: the self-check run on activation.
        package: an AOTInductor package of ``model`` (:func:`~engines.backends.aot_package.
            build_package`) and its input shape, run instead of ``model`` (CPU, fp32 only).
    """

    name = "torch"

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu",
                 precision: str = "fp32", channels_last: bool = True, cuda_graph: bool = False,
                 check: SelfCheck | None = None,
                 package: tuple[bytes, tuple[int, ...]] | None = None) -> None:
        super().__init__(device, precision, check)
        self._model = model
        if precision not in TORCH_PRECISIONS:
            raise ValueError(f"torch runs {', '.join(TORCH_PRECISIONS)}, not {precision!r}")
        if precision != "fp32" and self._device.type != "cuda":
            raise ValueError(f"{precision} needs a CUDA device with the torch backend")
        if cuda_graph and self._device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        if package is not None and (self._device.type != "cpu" or precision != "fp32"):
            raise ValueError("an AOTInductor package runs fp32 on the CPU")
        self._package = package
        self._compiled: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._format = torch.channels_last if channels_last else torch.contiguous_format
        self._cuda_graph = cuda_graph
        self._graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor,
                                                  torch.Tensor]] = {}

    @property
    def compiled(self) -> bool:
        return self._package is not None

    def activate_impl(self) -> None:
        if self._package is not None:
            data, shape = self._package
            try:
                self._compiled = load_package(data)
            except Exception as exc:  # torch's loader raises whatever its C++ side met
                log.warning("torch: the compiled package would not load (%s); running the "
                            "network eagerly (prmnet engine clear, then build it again)",
                            first_line(exc))
                self._package = None
            else:
                self._shape = shape
                return
        model = fuse_for_inference(self._model.eval())
        if model is self._model:
            # nothing to fuse: a copy all the same, as .to() moves a module in place, and the
            # caller's module (shared by other runners and the self-check) must stay put
            model = copy.deepcopy(model)
        self._model = model.to(self._device, memory_format=self._format)

    def infer_impl(self, x: torch.Tensor) -> torch.Tensor:
        if not self._cuda_graph:
            return self._forward(x)
        key = tuple(x.shape)
        if key not in self._graphs:
            self._graphs[key] = self._capture(x)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()  # the next replay overwrites static_out

    def deactivate_impl(self) -> None:
        self._compiled = None
        if self._package is not None:
            return
        self._graphs.clear()
        self._model = self._model.cpu()
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._compiled is not None:
            assert self._shape is not None
            x, rows = fit_rows(x, self._shape)
            with torch.inference_mode():
                logits = self._compiled(x.to(memory_format=torch.channels_last))
            return probabilities(logits)[:, :, :rows].contiguous()
        x = x.to(self._device, memory_format=self._format)
        # No autocast weight cache: it is cleared after every forward anyway, and a CUDA graph
        # capture must not depend on it. fp32 is float32 on CUDA too, not cuDNN's default TF32
        # (10 bits of mantissa), which would need fp16's tolerance.
        full = self._precision == "fp32"
        with torch.inference_mode(), torch.autocast(
            self._device.type, dtype=TORCH_PRECISIONS[self._precision],
            enabled=not full, cache_enabled=False,
        ), full_float32() if full else nullcontext():
            logits = self._model(x)
        # back to (N, C, H, W) order, as every runner returns it: reductions over the class
        # dimension of a channels-last tensor take a slow strided path (12 ms a frame on the
        # CPU for an argmax over three classes)
        return probabilities(logits.float()).contiguous()

    def _capture(self, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor,
                                                 torch.Tensor]:
        """Warm up on a side stream, then capture one forward pass on static buffers."""
        static_in = torch.empty_like(x, device=self._device, memory_format=self._format)
        static_in.copy_(x)
        current = torch.cuda.current_stream(self._device)
        side = torch.cuda.Stream(self._device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            for _ in range(_WARMUP):
                self._forward(static_in)
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._forward(static_in)
        return graph, static_in, static_out

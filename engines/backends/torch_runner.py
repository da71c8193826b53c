"""The torch backend: eager PyTorch on the CPU or a CUDA device, the reference of the others."""

from __future__ import annotations

import torch
from torch import nn

from engines.backends.base import Runner
from engines.prmnet import probabilities

__all__ = ["TorchRunner"]

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchRunner(Runner):
    """Eager torch in inference mode; channels-last memory on every device.

    Args:
        model: the network (its weights loaded), returning logits.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``; on CUDA also ``fp16`` or ``bf16`` (autocast, probabilities in
            float32).
    """

    name = "torch"

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu",
                 precision: str = "fp32") -> None:
        super().__init__()
        self._model = model
        self._device = torch.device(device)
        if precision not in _DTYPES:
            raise ValueError(f"torch runs fp32, fp16 or bf16, not {precision!r}")
        if precision != "fp32" and self._device.type != "cuda":
            raise ValueError(f"{precision} needs a CUDA device with the torch backend")
        self._precision = precision

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def precision(self) -> str:
        return self._precision

    def activate_impl(self) -> None:
        self._model = self._model.to(self._device, memory_format=torch.channels_last).eval()

    def infer_impl(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self._device, memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(
            self._device.type, dtype=_DTYPES[self._precision],
            enabled=self._precision != "fp32",
        ):
            logits = self._model(x)
        return probabilities(logits.float())

    def deactivate_impl(self) -> None:
        self._model = self._model.cpu()
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

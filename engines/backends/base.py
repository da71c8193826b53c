"""One interface for every way of running the network (after Polygraphy's runners).

A runner is cheap to construct: it holds what it needs to build its engine (a model and its
card, or a path). :meth:`Runner.activate` does the heavy work (moving weights to a device,
building or loading an engine); :meth:`Runner.infer` takes a batch of network inputs on the
runner's device and returns class probabilities on the same device, so nothing crosses to the
host unless the caller asks; :meth:`Runner.deactivate` releases it all. Runners are context
managers. Backends import their third-party libraries only inside ``activate_impl``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType

import torch

__all__ = ["Runner"]


class Runner(ABC):
    """Runs the segmentation network.

    Attributes:
        name: the backend (``torch``, ``onnxruntime``, ``tensorrt``).
    """

    name: str = "runner"

    def __init__(self) -> None:
        self._active = False

    @property
    def is_active(self) -> bool:
        return self._active

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """Where :meth:`infer` wants its input and leaves its output."""

    @property
    @abstractmethod
    def precision(self) -> str:
        """``fp32``, ``fp16``, ``bf16``, ``int8`` or ``fp8``."""

    def activate(self) -> Runner:
        """Make the runner ready to infer; returns itself."""
        if self._active:
            raise RuntimeError(f"{self.name} runner is already active")
        self.activate_impl()
        self._active = True
        return self

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities for a batch of network inputs.

        Args:
            x: float32, shape (N, C, H, W), on :attr:`device`; H and W multiples of 8.

        Returns:
            float32, shape (N, classes, H, W), on :attr:`device`, summing to 1 over classes.
        """
        if not self._active:
            raise RuntimeError(f"{self.name} runner is not active: call activate() first")
        return self.infer_impl(x)

    def deactivate(self) -> None:
        """Release the engine; safe to call twice."""
        if self._active:
            self.deactivate_impl()
            self._active = False

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.deactivate()

    @abstractmethod
    def activate_impl(self) -> None: ...

    @abstractmethod
    def infer_impl(self, x: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def deactivate_impl(self) -> None: ...

"""One interface for every way of running the network (after Polygraphy's runners).

A runner is cheap to construct: it holds what it needs to build its engine (a model and its
card, or a path). :meth:`Runner.activate` does the heavy work (moving weights to a device,
building or loading an engine); :meth:`Runner.infer` takes a batch of network inputs on the
runner's device and returns class probabilities on the same device, so nothing crosses to the
host unless the caller asks; :meth:`Runner.deactivate` releases it all. Runners are context
managers. Backends import their third-party libraries only inside ``activate_impl``.

A runner given a :class:`~engines.selfcheck.SelfCheck` checks itself when it activates: its
probabilities on a fixed input against the torch fp32 reference's, within the tolerance of its
precision; one that disagrees deactivates and raises :class:`~monitor.errors.DeviceError`, so a
runner that is active has passed. Backends whose engines have a fixed input shape (ONNX Runtime,
TensorRT) take shorter frames through :func:`fit_rows`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING

import torch

from monitor.dsp.frames import pad_rows

if TYPE_CHECKING:
    from engines.selfcheck import CheckResult, SelfCheck

__all__ = ["Runner", "first_line", "fit_rows", "on_side_stream"]


class Runner(ABC):
    """Runs the segmentation network.

    Args:
        device: where :meth:`infer` wants its input and leaves its output.
        precision: ``fp32``, ``fp16``, ``bf16``, ``int8`` or ``fp8``.
        check: checked on activation where given (see the module docstring).

    Attributes:
        name: the backend (``torch``, ``onnxruntime``, ``tensorrt``).
        check_result: the outcome of the self-check of the last activation, if there was one.
    """

    name: str = "runner"

    def __init__(self, device: str | torch.device, precision: str,
                 check: SelfCheck | None = None) -> None:
        self._device = torch.device(device)
        self._precision = precision
        self._shape: tuple[int, ...] | None = None  # a fixed-shape engine's, once known
        self._active = False
        self._check = check
        self.check_result: CheckResult | None = None

    @property
    def is_active(self) -> bool:
        return self._active

    @property
    def device(self) -> torch.device:
        """Where :meth:`infer` wants its input and leaves its output."""
        return self._device

    @property
    def precision(self) -> str:
        """``fp32``, ``fp16``, ``bf16``, ``int8`` or ``fp8``."""
        return self._precision

    @property
    def compiled(self) -> bool:
        """Whether it runs the network compiled ahead of time for this CPU (torch's AOTInductor
        package), not as its backend runs a graph or module otherwise."""
        return False

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The engine's fixed input shape (N, C, H, W) once active, or None where any shape
        goes (H and W multiples of 8)."""
        return self._shape

    def activate(self) -> Runner:
        """Make the runner ready to infer, and check it where it has a check; returns itself.

        Raises:
            RuntimeError: if it is already active.
            DeviceError: if it disagrees with the reference (it is left inactive).
        """
        if self._active:
            raise RuntimeError(f"{self.name} runner is already active")
        self.activate_impl()
        self._active = True
        if self._check is not None:
            try:
                self.check_result = self._check.verify(self)
            except BaseException:
                self.deactivate()
                raise
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
        """Activate, unless already active (``select_runner`` returns active runners)."""
        return self if self._active else self.activate()

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


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name where it has none (a
    backend's own exceptions carry pages of context)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def fit_rows(x: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor, int]:
    """A batch for an engine of fixed input ``shape``: ``x`` (N, C, rows, W) with ``rows`` up
    to the engine's H is padded at the bottom to H rows by mirroring its last rows
    (:func:`~monitor.dsp.frames.pad_rows`), as the monitor pads a frame shorter than usual.

    Returns:
        The batch, contiguous float32 of ``shape``, and ``rows``: only the first ``rows`` rows
        of the engine's output belong to real rows.

    Raises:
        ValueError: for a batch, channel count or width other than the engine's, or more rows.
    """
    n, c, h, w = shape
    if x.ndim != 4 or (x.shape[0], x.shape[1], x.shape[3]) != (n, c, w) or x.shape[2] > h:
        raise ValueError(f"this engine takes input of shape {tuple(shape)} (up to {h} rows), "
                         f"got {tuple(x.shape)}")
    rows = x.shape[2]
    if rows < h:
        x = pad_rows(x, h)
    return x.to(torch.float32).contiguous(), rows


@contextmanager
def on_side_stream(stream: torch.cuda.Stream, *tensors: torch.Tensor) -> Iterator[None]:
    """Order work queued on ``stream`` within after the caller's current stream's work, and the
    caller's later work after it, by stream waits (no host synchronisation); ``tensors``
    (allocated on the caller's stream) are kept from reuse until ``stream`` is done with them.
    """
    current = torch.cuda.current_stream(stream.device)
    stream.wait_stream(current)
    for t in tensors:
        t.record_stream(stream)
    yield
    current.wait_stream(stream)

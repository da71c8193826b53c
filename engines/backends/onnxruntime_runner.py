"""The ONNX Runtime backend: the exported graph (:mod:`engines.export`) on the CPU or on CUDA.

On the CPU the input tensor's memory is handed to ONNX Runtime as a numpy view and the output
comes back as a tensor over ONNX Runtime's array, without copies. On CUDA (where
``onnxruntime-gpu`` provides the ``CUDAExecutionProvider``) input and output are bound to torch
CUDA tensors by address (I/O binding), and ONNX Runtime computes on the runner's own CUDA stream
(``user_compute_stream``), ordered after the caller's queued work (the spectrogram) by a stream
wait, so the frame never leaves the device. (Not the caller's stream itself: torch's default
stream has the handle 0, which ONNX Runtime takes for "none".) The CUDA path has not yet run on
a GPU (see the README).

The graph has a fixed input shape; frames with fewer rows are padded to it by
:func:`~engines.backends.base.fit_rows`. ``onnxruntime`` is imported in :meth:`activate_impl`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from engines.backends.base import Runner, fit_rows, on_side_stream
from engines.export import INPUT_NAME, OUTPUT_NAME, onnx_info_from_bytes
from monitor.errors import DeviceError, InputError

if TYPE_CHECKING:
    from engines.selfcheck import SelfCheck

__all__ = ["OnnxRuntimeRunner", "onnxruntime_unavailable"]

OnnxSource = str | Path | Callable[[], bytes]
"""An ONNX file, or a callable that exports one (called on activation)."""


def onnxruntime_unavailable(device: torch.device) -> str | None:
    """Why ONNX Runtime cannot run on ``device`` here, or None where it can."""
    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime is not installed (pip install 'prmnet-monitor[onnx]')"
    if device.type == "cuda" and "CUDAExecutionProvider" not in (
            onnxruntime.get_available_providers()):
        return ("this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu for "
                "CUDA)")
    return None


class OnnxRuntimeRunner(Runner):
    """An ONNX Runtime inference session.

    Args:
        onnx: an ONNX file written by prmnet-monitor, or a callable returning one's bytes.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        precision: what the graph must be: ``fp32``, ``fp16``, ``int8`` or ``fp8`` (checked
            against its metadata on activation).
        threads: intra-op threads on the CPU (default: ONNX Runtime's choice, one per core).
        check: the self-check run on activation.
    """

    name = "onnxruntime"

    def __init__(self, onnx: OnnxSource, device: str | torch.device = "cpu",
                 precision: str = "fp32", threads: int | None = None,
                 check: SelfCheck | None = None) -> None:
        super().__init__(device, precision, check)
        self._onnx = onnx
        self._threads = threads
        self._session: Any = None
        self._stream: torch.cuda.Stream | None = None
        self._out_shape: tuple[int, ...] = ()

    def activate_impl(self) -> None:
        reason = onnxruntime_unavailable(self._device)
        if reason is not None:
            raise DeviceError(reason)
        import onnxruntime as ort

        data = self._onnx() if callable(self._onnx) else _read(Path(self._onnx))
        where = "the exported graph" if callable(self._onnx) else str(self._onnx)
        info = onnx_info_from_bytes(data, where)
        if info.precision != self._precision:
            raise InputError(f"{where} is a {info.precision} graph, not {self._precision}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if self._threads:
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
        # idle pool threads sleep instead of spinning: between frames the monitor's reader and
        # spectrogram need the cores the spinning would hold
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers: list[Any] = ["CPUExecutionProvider"]
        if self._device.type == "cuda":
            self._stream = torch.cuda.Stream(self._device)
            providers.insert(0, ("CUDAExecutionProvider", {
                "device_id": self._device.index or 0,
                "user_compute_stream": str(self._stream.cuda_stream),
            }))
        try:
            session = ort.InferenceSession(data, options, providers=providers)
        except Exception as exc:  # ONNX Runtime raises its own untyped errors
            raise DeviceError(f"onnxruntime cannot load {where}: {exc}") from None
        if self._device.type == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
            raise DeviceError("onnxruntime fell back to the CPU: its CUDA libraries did not load")
        self._session = session
        self._shape = info.input_shape
        self._out_shape = info.output_shape

    def infer_impl(self, x: torch.Tensor) -> torch.Tensor:
        assert self._shape is not None
        x, rows = fit_rows(x, self._shape)
        if self._device.type == "cpu":
            out = self._session.run([OUTPUT_NAME], {INPUT_NAME: x.detach().numpy()})[0]
            return torch.from_numpy(out)[:, :, :rows]
        return self._infer_cuda(x)[:, :, :rows]

    def deactivate_impl(self) -> None:
        self._session = None
        self._stream = None
        self._shape = None

    def _infer_cuda(self, x: torch.Tensor) -> torch.Tensor:
        """I/O binding on torch CUDA tensors: ONNX Runtime reads and writes them in place."""
        index = self._device.index or 0
        out = torch.empty(self._out_shape, dtype=torch.float32, device=self._device)
        binding = self._session.io_binding()
        binding.bind_input(name=INPUT_NAME, device_type="cuda", device_id=index,
                           element_type=np.float32, shape=tuple(x.shape),
                           buffer_ptr=x.data_ptr())
        binding.bind_output(name=OUTPUT_NAME, device_type="cuda", device_id=index,
                            element_type=np.float32, shape=tuple(out.shape),
                            buffer_ptr=out.data_ptr())
        assert self._stream is not None
        with on_side_stream(self._stream, x, out):
            self._session.run_with_iobinding(binding)
        return out


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None

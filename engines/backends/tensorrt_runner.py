"""The TensorRT backend: an engine built from the ONNX export, strongly typed, run on torch
tensors on the spectrogram's CUDA stream. Not yet run on a GPU (see the README).

Written against the TensorRT 10 and 11 Python API. TensorRT 11 removed the precision builder
flags (``BuilderFlag.FP16``, ``INT8``, ``FP8``, ``BF16``) and the INT8 calibrators: precision is
carried by the graph. So the network is always created strongly typed
(``NetworkDefinitionCreationFlag.STRONGLY_TYPED``: required to get 11's behaviour on 10.x,
accepted on 11), and:

* ``fp32``: the float32 export, with TF32 cleared (``BuilderFlag.TF32``, where the flag exists)
  so that the engine passes the fp32 self-check;
* ``fp16``: the export with the network in float16 behind float32 input and output
  (:func:`engines.export.export_onnx_bytes` with ``precision="fp16"``), what ModelOpt's
  AutoCast makes with ``keep_io_types``;
* ``int8`` and ``fp8``: the Q/DQ graph ``prmnet calib`` made and installed in the cache
  (explicit quantization).

Build: ``Builder`` -> ``create_network(flags)`` -> ``OnnxParser.parse`` -> ``BuilderConfig``
with the timing cache of this TensorRT and GPU (``create_timing_cache`` / ``set_timing_cache``,
saved back after the build) -> ``build_serialized_network``; the engine goes to the
:class:`~engines.cache.EngineCache` under its :class:`~engines.cache.EngineKey` and is only ever
loaded from there (``Runtime.deserialize_cuda_engine``). Inference: the I/O tensors are checked
by name, shape and type (``get_tensor_shape``, ``get_tensor_dtype``, ``get_tensor_mode``),
bound by address to torch tensors (``set_tensor_address``: zero copy), and the engine is
enqueued with ``execute_async_v3`` on the runner's own CUDA stream, ordered after the work
already queued on the caller's stream (the spectrogram) and before what the caller queues next,
by stream waits: nothing waits on the host. (Not the caller's stream itself: torch's default
stream is the legacy stream 0, on which TensorRT adds synchronisations.)

``tensorrt`` is imported only in :meth:`TensorRTRunner.activate_impl` and the build; the rest
(keys, the cache, the I/O check) needs neither TensorRT nor a GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from engines.backends.base import Runner, fit_rows, on_side_stream
from engines.cache import EngineCache, EngineKey
from engines.export import INPUT_NAME, OUTPUT_NAME, onnx_info_from_bytes
from monitor.errors import DeviceError, InputError

if TYPE_CHECKING:
    from engines.selfcheck import SelfCheck

__all__ = ["TENSORRT_PRECISIONS", "EngineIO", "TensorRTRunner", "build_engine", "check_engine_io",
           "engine_key", "tensorrt_unavailable"]

log = logging.getLogger(__name__)

TENSORRT_PRECISIONS = ("fp32", "fp16", "int8", "fp8")
_WORKSPACE_BYTES = 4 << 30

EngineIO = dict[str, tuple[str, tuple[int, ...], str]]
"""An engine's I/O tensors: name -> (``input`` or ``output``, shape, dtype name)."""


def tensorrt_unavailable(device: torch.device) -> str | None:
    """Why TensorRT cannot run on ``device`` here (one line), or None where it can."""
    if device.type != "cuda":
        return "TensorRT needs a CUDA device (the compute device is the CPU)"
    if not torch.cuda.is_available():
        return "TensorRT needs CUDA, and torch sees no CUDA device here"
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "tensorrt is not installed (pip install tensorrt)"
    return None


def engine_key(weights_sha256: str, precision: str, tensorrt_version: str, device: torch.device,
               input_shape: tuple[int, ...], export: dict[str, Any]) -> EngineKey:
    """The cache key of an engine for ``device`` (a CUDA device torch can see)."""
    major, minor = torch.cuda.get_device_capability(device)
    return EngineKey(weights_sha256, precision, f"TensorRT {tensorrt_version}",
                     torch.cuda.get_device_name(device), f"{major}.{minor}",
                     tuple(input_shape), dict(export))


def check_engine_io(io: EngineIO, input_shape: tuple[int, ...],
                    output_shape: tuple[int, ...]) -> None:
    """Refuse an engine whose I/O is not one float32 ``spectrogram`` input of ``input_shape``
    and one float32 ``probabilities`` output of ``output_shape``.

    Raises:
        DeviceError: naming what differs.
    """
    expected = {INPUT_NAME: ("input", tuple(input_shape), "float32"),
                OUTPUT_NAME: ("output", tuple(output_shape), "float32")}
    if io != expected:
        raise DeviceError(f"the TensorRT engine's I/O {io} is not the graph's {expected}")


def build_engine(onnx: bytes, precision: str, timing_cache: Path) -> bytes:
    """Build a serialized engine from an ONNX graph, strongly typed; the timing cache at
    ``timing_cache`` is used and written back.

    Raises:
        DeviceError: TensorRT cannot parse the graph or build it.
    """
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None:
        flags |= 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise DeviceError(f"TensorRT cannot parse the ONNX graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, _WORKSPACE_BYTES)
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if precision == "fp32" and tf32 is not None:
        config.clear_flag(tf32)
    blob = timing_cache.read_bytes() if timing_cache.is_file() else b""
    cache = config.create_timing_cache(blob)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        log.warning("TensorRT refused the timing cache %s; starting a new one", timing_cache)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise DeviceError("TensorRT could not build the engine (its log above says why)")
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = timing_cache.with_name(f".{timing_cache.name}.tmp")
    tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    tmp.replace(timing_cache)
    return bytes(serialized)


class TensorRTRunner(Runner):
    """A TensorRT engine, from the cache or built into it on activation.

    Args:
        onnx: a callable returning the graph's bytes (an export, or a quantized graph's file).
        export: how the graph was made (part of the cache key: see :class:`EngineKey`).
        weights_sha256: the model's weights hash (part of the cache key).
        device: ``cuda`` or ``cuda:N``.
        precision: one of :data:`TENSORRT_PRECISIONS`; the graph's metadata must say the same.
        input_shape: the graph's input shape (N, C, H, W).
        num_classes: output channels.
        cache: where engines live (default: the user's cache directory).
        check: the self-check run on activation.
    """

    name = "tensorrt"

    def __init__(self, onnx: Callable[[], bytes], export: dict[str, Any], weights_sha256: str,
                 device: str | torch.device = "cuda", precision: str = "fp16",
                 input_shape: tuple[int, ...] = (1, 1, 256, 256), num_classes: int = 3,
                 cache: EngineCache | None = None, check: SelfCheck | None = None) -> None:
        super().__init__(device, precision, check)
        if precision not in TENSORRT_PRECISIONS:
            raise ValueError(f"TensorRT runs {', '.join(TENSORRT_PRECISIONS)}, not {precision!r}")
        self._onnx = onnx
        self._export = export
        self._weights = weights_sha256
        self._shape = tuple(input_shape)
        n, _, h, w = self._shape
        self._out_shape = (n, num_classes, h, w)
        self._cache = cache or EngineCache()
        self._engine: Any = None
        self._context: Any = None
        self._stream: torch.cuda.Stream | None = None

    def activate_impl(self) -> None:
        reason = tensorrt_unavailable(self._device)
        if reason is not None:
            raise DeviceError(reason)
        import tensorrt as trt

        key = engine_key(self._weights, self._precision, trt.__version__, self._device,
                         self._shape, self._export)
        with torch.cuda.device(self._device):
            data = self._cache.lookup(key)
            if data is None:
                onnx = self._onnx()
                info = onnx_info_from_bytes(onnx, "the graph")
                if info.precision != self._precision or info.input_shape != self._shape:
                    raise InputError(f"the graph is {info.precision} {info.input_shape}, not "
                                     f"{self._precision} {self._shape}")
                log.info("building a TensorRT %s engine for %s (once; it is cached)",
                         self._precision, key.device_name)
                data = build_engine(onnx, self._precision, self._cache.timing_cache_path(
                    key.runtime, key.device_name, key.capability))
                self._cache.store(key, data)
            runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            engine = runtime.deserialize_cuda_engine(data)
            if engine is None:
                raise DeviceError("TensorRT could not load the cached engine")
            io = {}
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                mode = ("input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                        else "output")
                io[name] = (mode, tuple(engine.get_tensor_shape(name)),
                            _dtype_name(trt, engine.get_tensor_dtype(name)))
            check_engine_io(io, self._shape, self._out_shape)
            self._engine = engine
            self._context = engine.create_execution_context()
            self._stream = torch.cuda.Stream(self._device)

    def infer_impl(self, x: torch.Tensor) -> torch.Tensor:
        x, rows = fit_rows(x.to(self._device), self._shape)
        out = torch.empty(self._out_shape, dtype=torch.float32, device=self._device)
        self._context.set_tensor_address(INPUT_NAME, x.data_ptr())
        self._context.set_tensor_address(OUTPUT_NAME, out.data_ptr())
        assert self._stream is not None
        with on_side_stream(self._stream, x, out):
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise DeviceError("TensorRT failed to enqueue the engine")
        return out[:, :, :rows]

    def deactivate_impl(self) -> None:
        self._context = None
        self._engine = None
        self._stream = None


def _dtype_name(trt: Any, dtype: Any) -> str:
    names = {trt.float32: "float32", trt.float16: "float16", trt.int8: "int8"}
    return names.get(dtype, str(dtype))

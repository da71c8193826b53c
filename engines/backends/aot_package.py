"""AOTInductor packages: the network compiled ahead of time for this CPU.

TorchInductor turns the network (channels-last, its weights frozen in as constants, so that it
folds the batch norms and pre-packs the weights for the CPU's convolution kernels) into C++ for
the CPU's vector instruction set, and the system's C++ compiler builds that into a package that
loads in milliseconds. Building takes tens of seconds, so it is done once, by
``prmnet engine build MODEL --compute cpu``, and the package is kept in the engine cache
(:mod:`engines.cache`) under a key naming the weights, torch's version, the CPU and its
instruction set, and the input shape. The torch engine runs a model's package where the cache
holds one for this machine, and runs it eagerly otherwise (:func:`engines.selection.make_runner`).

A package has one input shape, as a TensorRT engine has: shorter frames are padded to it
(:func:`~engines.backends.base.fit_rows`).
"""

from __future__ import annotations

import copy
import io
import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import torch
from torch import nn

from engines.cache import EngineCache, EngineKey
from engines.export import write_atomic
from engines.prmnet import fuse_for_inference
from monitor.errors import InputError

__all__ = ["build_package", "compiler_unavailable", "cpu_name", "ensure_package", "load_package",
           "package_key"]

log = logging.getLogger(__name__)

#: How the packages are made (part of their key): a change here makes every package stale.
PACKAGE_SETTINGS = {"source": "aotinductor", "freezing": True, "memory_format": "channels_last",
                    "prepared_by": "fuse_for_inference"}


def package_key(weights_sha256: str, input_shape: tuple[int, ...]) -> EngineKey:
    """The cache key of the fp32 package of these weights for this CPU and this torch."""
    return EngineKey(weights_sha256, "fp32", f"torch {torch.__version__} AOTInductor",
                     cpu_name(), torch.backends.cpu.get_cpu_capability(), tuple(input_shape),
                     dict(PACKAGE_SETTINGS))


@cache
def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), or what the platform calls it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def compiler_unavailable() -> str | None:
    """Why TorchInductor cannot build a package here (one line), or None where it can: it
    needs a C++ compiler (``$CXX``, else ``g++`` or ``clang++``)."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "clang++"]
    if any(shutil.which(name) for name in names):
        return None
    return (f"compiling for the CPU needs a C++ compiler, and there is no {' or '.join(names)} "
            "here (apt-get install g++)")


def build_package(module: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """Compile ``module`` (logits out, fp32) for this CPU at ``input_shape``; the package's
    bytes. The module itself is not changed.

    Raises:
        RuntimeError: TorchInductor or the compiler failed (the message says which).
    """
    model = fuse_for_inference(copy.deepcopy(module).eval()).to(memory_format=torch.channels_last)
    example = torch.zeros(input_shape).to(memory_format=torch.channels_last)
    with (tempfile.TemporaryDirectory(prefix="prmnet-aoti-") as tmp,
          _inductor_cache(Path(tmp) / "inductor"), torch.inference_mode()):
        program = torch.export.export(model, (example,))
        path = torch._inductor.aoti_compile_and_package(
            program, package_path=str(Path(tmp) / "model.pt2"),
            # no precompiled headers: a 280 MB cache in the system's temporary folder that
            # only later builds would use (a build took as long without it)
            inductor_configs={"freezing": True, "aot_inductor.precompile_headers": False,
                              "cpp_cache_precompile_headers": False})
        return Path(path).read_bytes()


@contextmanager
def _inductor_cache(folder: Path) -> Iterator[None]:
    """TorchInductor's working files (generated sources and objects) in ``folder`` for the
    duration, rather than left in the system's temporary folder: the package holds all that is
    needed of them."""
    saved = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TORCHINDUCTOR_CACHE_DIR"]
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = saved


def load_package(data: bytes) -> Callable[[torch.Tensor], torch.Tensor]:
    """The compiled network of a package's bytes (as :func:`build_package` made them)."""
    return torch._inductor.aoti_load_package(io.BytesIO(data))


def ensure_package(module: nn.Module, weights_sha256: str, input_shape: tuple[int, ...],
                   cache: EngineCache | None = None) -> bool:
    """Put the package of ``module`` (whose weights hash to ``weights_sha256``) for this CPU in
    the engine cache, unless it is there; whether it had to be built.

    Raises:
        InputError: there is no C++ compiler here, or the cache cannot be written.
        RuntimeError: TorchInductor or the compiler failed.
    """
    cache = cache or EngineCache()
    key = package_key(weights_sha256, input_shape)
    if cache.lookup(key) is not None:
        return False
    reason = compiler_unavailable()
    if reason is not None:
        raise InputError(reason)
    # found before the build, not after it: a cache that cannot be written would waste it
    probe = cache.engines_dir / ".writable"
    write_atomic(probe, b"")
    probe.unlink()
    log.info("compiling the network for %s (%s) with TorchInductor (once; it is cached)",
             key.device_name, key.capability)
    cache.store(key, build_package(module, input_shape))
    return True

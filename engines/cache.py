"""The engine cache: the engines this program built (TensorRT engines for a GPU, AOTInductor
packages for a CPU), and the graphs they were built from.

An engine is specific to the runtime that built it and its version, to the device model and its
capability (a GPU's compute capability, a CPU's vector instruction set), and to everything about
the graph; one built for another of any of these must not be loaded. So every engine is stored
under the SHA-256 of its :class:`EngineKey` (the model's weights hash, the precision, the runtime
and its version, the device's name and capability, the input shape and the export settings),
beside a JSON sidecar holding the key's parts and the SHA-256 of the
engine's bytes. :meth:`EngineCache.lookup` returns an engine only when its sidecar holds exactly
the key asked for and its bytes hash to what the sidecar says; anything else under that name
(a stale engine, a foreign or truncated file, a sidecar edited by hand) is deleted, and the
caller builds the engine again. Engines are only ever loaded from this cache, which only this
program writes.

Layout, under ``$XDG_CACHE_HOME/prmnet-monitor`` (``~/.cache/prmnet-monitor`` by default)::

    engines/<key sha256>.engine      serialized TensorRT engine, or AOTInductor package (.pt2)
    engines/<key sha256>.json        its sidecar (format prmnet-engine/2)
    engines/timing-<sha256>.cache    TensorRT timing cache, one per (TensorRT version, GPU)
    quantized/<weights sha256>.<precision>.onnx   INT8/FP8 Q/DQ graphs from prmnet calib
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engines.export import write_atomic

__all__ = ["ENGINE_FORMAT", "CacheEntry", "EngineCache", "EngineKey", "cache_root"]

log = logging.getLogger(__name__)

ENGINE_FORMAT = "prmnet-engine/2"


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/prmnet-monitor``, or ``~/.cache/prmnet-monitor``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "prmnet-monitor"


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on.

    Attributes:
        weights_sha256: SHA-256 of the checkpoint's safetensors (see
            :func:`engines.export.weights_sha256`).
        precision: ``fp32``, ``fp16``, ``int8`` or ``fp8``.
        runtime: what builds and runs it, with its version (``TensorRT 10.13.0``,
            ``torch 2.13.0 AOTInductor``).
        device_name: the CUDA device's name, or the CPU's model.
        capability: a GPU's compute capability (``major.minor``), or the vector instruction
            set torch uses on the CPU (``AVX2``, ``AVX512``).
        input_shape: (N, C, H, W).
        export: how the graph was made: exporter, opset and torch version for an exported
            graph, the graph's SHA-256 for a quantized one.
    """

    weights_sha256: str
    precision: str
    runtime: str
    device_name: str
    capability: str
    input_shape: tuple[int, ...]
    export: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "input_shape": list(self.input_shape)}

    def digest(self) -> str:
        """SHA-256 of the key's parts (canonical JSON)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """An engine in the cache, as ``prmnet engine list`` shows it.

    Attributes:
        path: the engine file.
        key: its key's parts, as its sidecar holds them (empty where the sidecar is unreadable).
        size: bytes.
        created: when it was stored (Unix time), or None.
        valid: whether its sidecar is readable and its bytes hash as the sidecar says.
    """

    path: Path
    key: dict[str, Any]
    size: int
    created: float | None
    valid: bool


class EngineCache:
    """The engines and timing caches under ``root`` (default :func:`cache_root`)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()

    @property
    def engines_dir(self) -> Path:
        return self.root / "engines"

    def engine_path(self, key: EngineKey) -> Path:
        return self.engines_dir / f"{key.digest()}.engine"

    def lookup(self, key: EngineKey) -> bytes | None:
        """The engine stored for exactly ``key``, or None (after deleting whatever stale or
        foreign file sat under its name)."""
        path = self.engine_path(key)
        sidecar = path.with_suffix(".json")
        if not path.exists() and not sidecar.exists():
            return None
        problem = None
        try:
            meta = json.loads(sidecar.read_text())
            data = path.read_bytes()
        except (OSError, ValueError) as exc:
            problem = f"unreadable ({exc})"
        else:
            if not isinstance(meta, dict) or meta.get("format") != ENGINE_FORMAT:
                problem = "not a prmnet engine sidecar"
            elif meta.get("key") != key.to_dict():
                problem = "its sidecar describes another engine"
            elif meta.get("engine_sha256") != hashlib.sha256(data).hexdigest():
                problem = "its bytes do not match its sidecar"
        if problem is None:
            return data
        log.warning("engine cache: deleting %s: %s; it will be rebuilt", path.name, problem)
        self._remove(path)
        return None

    def store(self, key: EngineKey, engine: bytes) -> Path:
        """Store ``engine`` for ``key`` (the engine first, then its sidecar, each atomically);
        returns the engine's path."""
        path = self.engine_path(key)
        write_atomic(path, engine)
        meta = {"format": ENGINE_FORMAT, "key": key.to_dict(),
                "engine_sha256": hashlib.sha256(engine).hexdigest(), "created": time.time()}
        write_atomic(path.with_suffix(".json"), (json.dumps(meta, indent=2) + "\n").encode())
        return path

    def timing_cache_path(self, runtime: str, gpu_name: str,
                          compute_capability: str) -> Path:
        """Where the timing cache for this TensorRT and this GPU lives."""
        text = json.dumps([runtime, gpu_name, compute_capability])
        return self.engines_dir / f"timing-{hashlib.sha256(text.encode()).hexdigest()[:16]}.cache"

    def quantized_path(self, weights_sha256: str, precision: str) -> Path:
        """Where ``prmnet calib`` installs the Q/DQ graph of these weights at ``precision``."""
        return self.root / "quantized" / f"{weights_sha256}.{precision}.onnx"

    def entries(self) -> list[CacheEntry]:
        """Every engine in the cache, oldest first."""
        found = []
        for path in sorted(self.engines_dir.glob("*.engine")):
            try:
                meta = json.loads(path.with_suffix(".json").read_text())
                valid = (isinstance(meta, dict) and meta.get("format") == ENGINE_FORMAT
                         and meta.get("engine_sha256")
                         == hashlib.sha256(path.read_bytes()).hexdigest())
            except (OSError, ValueError):
                meta, valid = {}, False
            found.append(CacheEntry(path, meta.get("key", {}) if valid else {},
                                    path.stat().st_size, meta.get("created") if valid else None,
                                    valid))
        return sorted(found, key=lambda e: e.created or 0.0)

    def clear(self) -> int:
        """Delete every engine, sidecar and timing cache; returns how many files went."""
        removed = 0
        for pattern in ("*.engine", "*.json", "timing-*.cache", ".*.tmp"):
            for path in self.engines_dir.glob(pattern):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    @staticmethod
    def _remove(engine: Path) -> None:
        for path in (engine, engine.with_suffix(".json")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

"""The engine cache: keys, lookups that trust nothing, and ``prmnet engine``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from engines.cache import EngineCache, EngineKey, cache_root
from engines.models import LoadedModel
from monitor.errors import InputError
from monitor.train.cards import save_checkpoint
from tests.conftest import prmnet_engine_command

KEY = EngineKey(
    weights_sha256="a" * 64,
    precision="fp16",
    runtime="TensorRT 10.13.0",
    device_name="NVIDIA H200",
    capability="9.0",
    input_shape=(1, 1, 256, 256),
    export={"source": "export", "opset": 19, "torch": "2.13.0"},
)

CHANGES = {
    "weights_sha256": "b" * 64,
    "precision": "int8",
    "runtime": "TensorRT 11.0.0",
    "device_name": "NVIDIA L4",
    "capability": "8.9",
    "input_shape": (8, 1, 256, 256),
    "export": {"source": "export", "opset": 20, "torch": "2.13.0"},
}


@pytest.mark.parametrize("part", list(CHANGES))
def test_every_part_changes_the_key(part: str) -> None:
    assert set(CHANGES) == {f.name for f in dataclasses.fields(EngineKey)}
    other = dataclasses.replace(KEY, **{part: CHANGES[part]})
    assert other.digest() != KEY.digest()
    assert dataclasses.replace(KEY).digest() == KEY.digest()


def test_store_then_lookup(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    assert cache.lookup(KEY) is None
    path = cache.store(KEY, b"engine bytes")
    assert path.parent == tmp_path / "engines" and path.name == f"{KEY.digest()}.engine"
    assert cache.lookup(KEY) == b"engine bytes"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["key"] == KEY.to_dict() and sidecar["format"] == "prmnet-engine/2"
    assert [e.key["device_name"] for e in cache.entries()] == ["NVIDIA H200"]


def _sidecar(path: Path, **changes: object) -> None:
    meta = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**meta, **changes}))


@pytest.mark.parametrize("damage", ["foreign key", "tampered engine", "no sidecar",
                                    "garbage sidecar", "foreign format", "no engine"])
def test_a_stale_or_foreign_engine_is_deleted_not_loaded(tmp_path: Path, damage: str) -> None:
    cache = EngineCache(tmp_path)
    path = cache.store(KEY, b"engine bytes")
    sidecar = path.with_suffix(".json")
    if damage == "foreign key":  # an engine for another GPU copied under this key's name
        _sidecar(path, key=dataclasses.replace(KEY, device_name="NVIDIA L4").to_dict())
    elif damage == "tampered engine":
        path.write_bytes(b"other bytes")
    elif damage == "no sidecar":
        sidecar.unlink()
    elif damage == "garbage sidecar":
        sidecar.write_text("{not json")
    elif damage == "foreign format":
        _sidecar(path, format="someone-else/1")
    else:
        path.unlink()
    assert cache.lookup(KEY) is None
    assert not path.exists() and not sidecar.exists()
    cache.store(KEY, b"rebuilt")
    assert cache.lookup(KEY) == b"rebuilt"


def test_timing_cache_per_tensorrt_and_gpu(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    a = cache.timing_cache_path("10.13.0", "NVIDIA H200", "9.0")
    assert a == cache.timing_cache_path("10.13.0", "NVIDIA H200", "9.0")
    assert a != cache.timing_cache_path("11.0.0", "NVIDIA H200", "9.0")
    assert a != cache.timing_cache_path("10.13.0", "NVIDIA L4", "8.9")


def test_entries_and_clear(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    cache.store(KEY, b"one")
    cache.store(dataclasses.replace(KEY, precision="int8"), b"two")
    cache.timing_cache_path("10.13.0", "NVIDIA H200", "9.0").write_bytes(b"timing")
    (cache.engines_dir / "stray.engine").write_bytes(b"?")
    entries = cache.entries()
    assert [e.valid for e in entries] == [False, True, True]
    assert cache.clear() == 6
    assert cache.entries() == []


def test_cache_root_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root() == tmp_path / "prmnet-monitor"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path.home() / ".cache" / "prmnet-monitor"


def test_prmnet_engine_list_and_clear(cache_home: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert prmnet_engine_command("engine", "list") == 0
    assert "no engines" in capsys.readouterr().out
    EngineCache().store(KEY, b"engine")
    assert prmnet_engine_command("engine", "list") == 0
    out = capsys.readouterr().out
    assert "NVIDIA H200 (9.0)" in out and "1x1x256x256" in out and "fp16" in out
    assert prmnet_engine_command("engine", "clear") == 0
    assert "removed 2 files" in capsys.readouterr().out


def test_prmnet_engine_build_refuses_in_one_line_without_tensorrt(
        cache_home: Path, tmp_path: Path, tiny_model: LoadedModel) -> None:
    weights = save_checkpoint(tiny_model.module, tiny_model.card, tmp_path / "tiny")
    with pytest.raises(InputError) as err:
        prmnet_engine_command("engine", "build", str(weights))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("cannot build a TensorRT engine here: ")
    if not torch.cuda.is_available():
        assert message.endswith("TensorRT needs CUDA, and torch sees no CUDA device here")

"""The network compiled ahead of time for the CPU: the same probabilities as eager torch, kept
in the engine cache, run by the torch engine where it is there, built by ``prmnet engine``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from engines.backends import aot_package
from engines.backends.aot_package import ensure_package, package_key
from engines.backends.torch_runner import TorchRunner
from engines.cache import EngineCache
from engines.export import weights_sha256
from engines.models import LoadedModel
from engines.selection import make_runner, select_runner
from engines.selfcheck import SelfCheck, check_input
from monitor.dsp.frames import pad_rows
from monitor.errors import InputError
from monitor.train.cards import save_checkpoint
from tests.conftest import make_tiny_model, prmnet_engine_command

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 1, 32, 32)


def _check(model: LoadedModel) -> SelfCheck:
    return SelfCheck(model.module, model.card.in_chans, 32, 32)


def test_a_package_gives_eager_torchs_probabilities(tiny_model: LoadedModel,
                                                    tiny_package: bytes) -> None:
    compiled = TorchRunner(tiny_model.module, "cpu", check=_check(tiny_model),
                           package=(tiny_package, SHAPE))
    eager = TorchRunner(tiny_model.module, "cpu")
    x = check_input(1, 32, 32, batch=2)[1:]  # not the self-check's frame
    with compiled, eager:
        assert compiled.compiled and not eager.compiled
        assert compiled.check_result is not None and compiled.check_result.passed
        assert compiled.input_shape == SHAPE
        torch.testing.assert_close(compiled.infer(x), eager.infer(x), atol=1e-5, rtol=0)
        # a frame shorter than usual is padded to the package's rows, as the monitor pads it
        short = compiled.infer(x[:, :, :16])
        assert short.shape == (1, 3, 16, 32)
        torch.testing.assert_close(short, eager.infer(pad_rows(x[:, :, :16], 32))[:, :, :16],
                                   atol=1e-5, rtol=0)
        with pytest.raises(ValueError, match="takes input of shape"):
            compiled.infer(torch.zeros(1, 1, 32, 16))


def test_a_package_that_will_not_load_leaves_the_network_eager(
        tiny_model: LoadedModel, tiny_package: bytes, caplog: pytest.LogCaptureFixture) -> None:
    runner = TorchRunner(tiny_model.module, "cpu", check=_check(tiny_model),
                         package=(tiny_package[: len(tiny_package) // 2], SHAPE))
    with caplog.at_level(logging.WARNING), runner:
        assert not runner.compiled and runner.check_result.passed
        assert runner.infer(check_input(1, 32, 32)[:, :, :16]).shape == (1, 3, 16, 32)
    assert "the compiled package would not load" in caplog.text
    assert "running the network eagerly" in caplog.text


def test_a_package_runs_fp32_on_the_cpu_only(tiny_model: LoadedModel) -> None:
    with pytest.raises(ValueError, match="fp32 on the CPU"):
        TorchRunner(tiny_model.module, "cuda", package=(b"", SHAPE))


def test_the_torch_engine_runs_the_cached_package_and_says_so_otherwise(
        cache_home: Path, tiny_package: bytes, caplog: pytest.LogCaptureFixture) -> None:
    model = make_tiny_model()
    model.name = "tiny-hint"  # the hint is logged once per model name and process
    cpu = torch.device("cpu")
    with caplog.at_level(logging.INFO, logger="engines.selection"):
        runner = make_runner("torch", model, cpu, "fp32", _check(model))
    assert not runner.compiled
    assert "prmnet engine build tiny-hint --compute cpu" in caplog.text
    EngineCache().store(package_key(weights_sha256(model.module), SHAPE), tiny_package)
    assert make_runner("torch", model, cpu, "fp32").compiled
    with caplog.at_level(logging.INFO, logger="engines.selection"):
        runner = select_runner(model, engine="torch", compute="cpu")
    with runner:
        assert runner.compiled and runner.check_result.passed
    assert "compiled for this CPU (AOTInductor)" in caplog.text
    # weights that differ are another key: their eager run, not this package
    other = make_tiny_model()
    with torch.no_grad():
        next(other.module.parameters()).add_(1.0)
    assert not make_runner("torch", other, cpu, "fp32").compiled


def test_ensure_package_builds_once(cache_home: Path, tiny_package: bytes,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[tuple[int, ...]] = []

    def build(module: torch.nn.Module, shape: tuple[int, ...]) -> bytes:
        builds.append(shape)
        return tiny_package

    monkeypatch.setattr(aot_package, "build_package", build)
    module = make_tiny_model().module
    weights = weights_sha256(module)
    assert ensure_package(module, weights, SHAPE) is True
    assert ensure_package(module, weights, SHAPE) is False
    assert builds == [SHAPE]
    assert EngineCache().lookup(package_key(weights, SHAPE)) == tiny_package


def test_prmnet_engine_build_for_the_cpu(cache_home: Path, tmp_path: Path, tiny_package: bytes,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    model = make_tiny_model()
    weights = save_checkpoint(model.module, model.card, tmp_path / "tiny")
    same = save_checkpoint(model.module, model.card, tmp_path / "same")  # the same weights
    monkeypatch.setattr(aot_package, "build_package", lambda module, shape: tiny_package)
    assert prmnet_engine_command("engine", "build", str(weights), str(same),
                                 "--compute", "cpu") == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("CPU package of tiny for ") and " built in " in first
    assert "torch fp32 on cpu: max |dp|" in first
    assert second.startswith("CPU package of same for ") and "found in the cache" in second
    assert prmnet_engine_command("engine", "build", str(weights), "--compute", "cpu") == 0
    assert "found in the cache" in capsys.readouterr().out
    assert prmnet_engine_command("engine", "list") == 0
    listing = capsys.readouterr().out
    assert "AOTInductor" in listing and "1x1x32x32" in listing and "fp32" in listing
    assert torch.backends.cpu.get_cpu_capability() in listing
    with pytest.raises(InputError, match="the CPU package is fp32, not fp16"):
        prmnet_engine_command("engine", "build", str(weights), "--compute", "cpu",
                              "--precision", "fp16")


def test_an_unwritable_cache_is_refused_before_the_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aot_package, "build_package", pytest.fail)  # never reached
    blocked = tmp_path / "file"
    blocked.write_text("")
    module = make_tiny_model().module
    with pytest.raises(InputError, match="cannot write"):
        ensure_package(module, weights_sha256(module), SHAPE, EngineCache(blocked / "cache"))


def test_without_a_compiler_the_build_refuses_in_one_line(
        cache_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_tiny_model()
    weights = save_checkpoint(model.module, model.card, tmp_path / "tiny")
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
    with pytest.raises(InputError) as err:
        prmnet_engine_command("engine", "build", str(weights), "--compute", "cpu")
    assert "\n" not in str(err.value) and "needs a C++ compiler" in str(err.value)

"""The runners behind one interface, their self-check, and the choice among them."""

from __future__ import annotations

import copy
import json
import logging
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from engines.backends.base import Runner, fit_rows
from engines.backends.onnxruntime_runner import OnnxRuntimeRunner
from engines.backends.tensorrt_runner import (
    TensorRTRunner,
    check_engine_io,
    tensorrt_unavailable,
)
from engines.backends.torch_runner import TorchRunner
from engines.export import export_onnx_bytes
from engines.models import LoadedModel
from engines.prmnet import create_model
from engines.selection import ENGINES, PRECISIONS, make_runner, select_runner
from engines.selfcheck import TOLERANCES, CheckResult, SelfCheck, check_input
from monitor.errors import DeviceError, InputError

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).parents[1]


def _check(model: LoadedModel) -> SelfCheck:
    return SelfCheck(model.module, model.card.in_chans, 32, 32)


def _int8_graph(model: LoadedModel) -> bytes:
    from calib.quantize import quantize_graph
    from calib.recipe import load_recipe

    inputs = check_input(1, 32, 32, batch=4).numpy()
    return quantize_graph(export_onnx_bytes(model.module, model.card), inputs, load_recipe())[0]


RUNNERS: dict[str, Callable[[LoadedModel], Runner]] = {
    "torch-cpu": lambda m: TorchRunner(m.module, "cpu", check=_check(m)),
    "onnxruntime-cpu": lambda m: OnnxRuntimeRunner(
        lambda: export_onnx_bytes(m.module, m.card), "cpu", threads=1, check=_check(m)),
    "onnxruntime-cpu-int8": lambda m: OnnxRuntimeRunner(
        lambda: _int8_graph(m), "cpu", "int8", threads=1, check=_check(m)),
}
"""Every runner this machine can run (TensorRT and the CUDA paths need a GPU)."""


@pytest.mark.parametrize("kind", RUNNERS)
def test_runner_contract(kind: str, tiny_model: LoadedModel) -> None:
    runner = RUNNERS[kind](tiny_model)
    x = check_input(1, 32, 32)
    assert not runner.is_active
    with pytest.raises(RuntimeError, match="not active"):
        runner.infer(x)
    assert runner.activate() is runner and runner.is_active
    with pytest.raises(RuntimeError, match="already active"):
        runner.activate()
    assert isinstance(runner.check_result, CheckResult) and runner.check_result.passed
    for rows in (32, 16):  # a whole frame, and a frame shorter than usual (start of a stream)
        probs = runner.infer(x[:, :, :rows])
        assert probs.shape == (1, 3, rows, 32)
        assert probs.dtype == torch.float32 and probs.device == runner.device
        assert torch.allclose(probs.sum(dim=1), torch.ones(1, rows, 32), atol=1e-5)
    with runner as same:  # entering an active runner keeps it, leaving releases it
        assert same is runner and runner.is_active
    assert not runner.is_active
    runner.deactivate()  # twice is fine
    with runner:
        assert runner.is_active and runner.check_result.passed


def test_fit_rows_pads_short_frames_and_refuses_other_shapes() -> None:
    x = torch.arange(2 * 32, dtype=torch.float32).reshape(1, 1, 2, 32)
    padded, rows = fit_rows(x, (1, 1, 16, 32))
    assert rows == 2 and padded.shape == (1, 1, 16, 32)
    assert torch.equal(padded[:, :, :2], x)
    for shape in ((1, 1, 16, 64), (2, 1, 16, 32), (1, 1, 1, 32)):
        with pytest.raises(ValueError, match="takes input of shape"):
            fit_rows(x, shape)


def test_torch_runner_refuses_cuda_only_settings_on_the_cpu(tiny_model: LoadedModel) -> None:
    with pytest.raises(ValueError, match="CUDA"):
        TorchRunner(tiny_model.module, "cpu", "fp16")
    with pytest.raises(ValueError, match="CUDA graphs"):
        TorchRunner(tiny_model.module, "cpu", cuda_graph=True)


def test_a_torch_runner_leaves_the_callers_module_as_it_was() -> None:
    """Two runners on one module (a benchmark's reference beside the engine it times): neither
    moves nor reformats the module the other starts from. A network with nothing to fuse (the
    U-Net) is copied too; .to() would move it in place, to CUDA and back, under the other."""
    torch.manual_seed(0)
    module = create_model("unet_s", base_width=4).eval()
    weight = module.stem.block[0].weight
    where = weight.data_ptr()
    first, second = TorchRunner(module, "cpu"), TorchRunner(module, "cpu")
    x = torch.rand(1, 1, 32, 32)
    with first, second:
        assert torch.equal(first.infer(x), second.infer(x))
    assert weight.is_contiguous() and weight.data_ptr() == where


class _Perturbed(TorchRunner):
    """A torch runner whose network differs from the reference: a wrong engine."""

    name = "perturbed"

    def __init__(self, model: LoadedModel, check: SelfCheck | None) -> None:
        wrong = copy.deepcopy(model.module)
        with torch.no_grad():
            wrong.head.classifier.bias += torch.tensor([3.0, -3.0, 0.0])
        super().__init__(wrong, "cpu", check=check)


def test_a_runner_that_disagrees_refuses_to_run(tiny_model: LoadedModel) -> None:
    runner = _Perturbed(tiny_model, _check(tiny_model))
    with pytest.raises(DeviceError, match="self-check failed"):
        runner.activate()
    assert not runner.is_active


def test_check_result_tolerances() -> None:
    def result(precision: str, diff: float, agreement: float) -> bool:
        return CheckResult("x", precision, "cpu", diff, agreement, TOLERANCES[precision]).passed

    assert result("fp32", 5e-5, 1.0) and not result("fp32", 2e-4, 1.0)
    assert result("fp16", 1e-2, 0.995) and not result("fp16", 1e-2, 0.95)
    assert result("int8", 0.3, 0.985) and not result("int8", 0.01, 0.97)


def test_check_input_is_deterministic_and_scaled() -> None:
    a, b = check_input(1, 64, 48, batch=2), check_input(1, 64, 48, batch=2)
    assert torch.equal(a, b) and a.shape == (2, 1, 64, 48)
    assert not torch.equal(a[0], a[1])
    assert a.min() >= -2 and a.max() <= 8
    rgb = check_input(3, 32, 32)
    assert rgb.shape == (1, 3, 32, 32) and 0 <= rgb.min() and rgb.max() <= 1


def test_select_runner_auto_on_the_cpu_races_torch_and_onnxruntime(
        tiny_model: LoadedModel, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="engines.selection")
    with select_runner(tiny_model, "auto", "auto", "cpu") as runner:
        assert runner.is_active and runner.name in ("torch", "onnxruntime")
        assert runner.precision == "fp32"
    assert re.search(r"(torch|onnxruntime) [0-9.]+ ms, (torch|onnxruntime) [0-9.]+ ms a frame "
                     r"on the CPU", caplog.text)


@pytest.mark.parametrize("faster", ["torch", "onnxruntime"])
def test_auto_on_the_cpu_keeps_the_faster_engine_and_releases_the_other(
        tiny_model: LoadedModel, monkeypatch: pytest.MonkeyPatch, faster: str) -> None:
    made: list[Runner] = []

    def recording_make_runner(*args: object, **kwargs: object) -> Runner:
        made.append(make_runner(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    monkeypatch.setattr("engines.selection.make_runner", recording_make_runner)
    monkeypatch.setattr("engines.selection._seconds_per_frame",
                        lambda runner, x: 0.01 if runner.name == faster else 0.02)
    with select_runner(tiny_model, "auto", "auto", "cpu") as runner:
        assert runner.name == faster and runner.is_active
        (other,) = [r for r in made if r is not runner]
        assert not other.is_active


def test_auto_passes_over_a_backend_that_fails_or_disagrees(
        tiny_model: LoadedModel, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def fake_make_runner(name: str, model: LoadedModel, device: torch.device, precision: str,
                         check: SelfCheck, weights: Callable[[], str]) -> Runner:
        if name == "tensorrt":
            raise RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be ...")
        if name == "onnxruntime":
            return _Perturbed(model, check)
        return TorchRunner(model.module, device, check=check)

    monkeypatch.setattr("engines.selection.make_runner", fake_make_runner)
    caplog.set_level(logging.INFO, logger="engines.selection")
    # int8: on the CPU, auto does not pass over ONNX Runtime for it
    with select_runner(tiny_model, "auto", "int8", "cpu") as runner:
        assert runner.name == "torch"
    assert "passing over tensorrt: RuntimeError: CUDA error: out of memory\n" in caplog.text
    assert "passing over onnxruntime: self-check failed" in caplog.text


def test_auto_precision_on_cuda_falls_back_from_fp16_that_overflows(
        tiny_model: LoadedModel, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """On CUDA, precision auto tries fp16, then bf16 (torch), then fp32, per engine: a network
    whose activations overflow float16 fails its self-check there and runs in bfloat16. The
    runners are stand-ins on the CPU; only the order of the tries is under test."""
    asked: list[tuple[str, str]] = []

    def fake_make_runner(name: str, model: LoadedModel, device: torch.device, precision: str,
                         check: SelfCheck, weights: Callable[[], str]) -> Runner:
        asked.append((name, precision))
        if name != "torch":
            raise InputError(f"{name} is not installed")
        if precision == "fp16":
            return _Perturbed(model, check)  # as NaNs from an overflow would
        return TorchRunner(model.module, "cpu", check=check)

    monkeypatch.setattr("engines.selection.resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr("engines.selection.make_runner", fake_make_runner)
    caplog.set_level(logging.INFO, logger="engines.selection")
    with select_runner(tiny_model, "auto", "auto", "cuda") as runner:
        assert runner.name == "torch"
    assert asked == [("tensorrt", "fp16"), ("onnxruntime", "fp16"), ("torch", "fp16"),
                     ("torch", "bf16")]
    assert "torch fp16 failed (self-check failed" in caplog.text and "trying bf16" in caplog.text
    asked.clear()
    with pytest.raises(InputError, match=r"^--engine onnxruntime: onnxruntime is not installed"):
        select_runner(tiny_model, "onnxruntime", "auto", "cuda")
    assert asked == [("onnxruntime", "fp16")]  # a missing engine is not tried again
    asked.clear()
    with pytest.raises(DeviceError, match=r"^--engine torch: self-check failed"):
        select_runner(tiny_model, "torch", "fp16", "cuda")  # a precision asked for is kept
    assert asked == [("torch", "fp16")]


def test_an_explicit_engine_refuses_in_one_line(tiny_model: LoadedModel,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match=r"^--engine tensorrt: TensorRT needs a CUDA device"):
        select_runner(tiny_model, "tensorrt", "auto", "cpu")
    with pytest.raises(InputError, match="torch runs fp16 on CUDA only"):
        select_runner(tiny_model, "torch", "fp16", "cpu")
    with pytest.raises(InputError, match="unknown engine"):
        select_runner(tiny_model, "openvino", "auto", "cpu")
    with pytest.raises(InputError, match="unknown precision"):
        select_runner(tiny_model, "auto", "int4", "cpu")
    monkeypatch.setattr("engines.selection.make_runner",
                        lambda name, model, device, precision, check, weights:
                        _Perturbed(model, check))
    with pytest.raises(DeviceError, match=r"^--engine torch: self-check failed"):
        select_runner(tiny_model, "torch", "auto", "cpu")

    def broken(*args: object) -> Runner:
        raise RuntimeError("CUDA error: an illegal memory access\nmore lines")

    monkeypatch.setattr("engines.selection.make_runner", broken)
    with pytest.raises(DeviceError) as err:
        select_runner(tiny_model, "onnxruntime", "auto", "cpu")
    assert str(err.value) == ("--engine onnxruntime: RuntimeError: CUDA error: an illegal "
                              "memory access")


def test_int8_needs_a_calibrated_graph_then_runs_on_onnxruntime(
        tiny_model: LoadedModel, cache_home: Path) -> None:
    from engines.cache import EngineCache
    from engines.export import weights_sha256

    with pytest.raises(InputError, match="prmnet calib tiny --precision int8"):
        select_runner(tiny_model, "auto", "int8", "cpu")
    path = EngineCache().quantized_path(weights_sha256(tiny_model.module), "int8")
    path.parent.mkdir(parents=True)
    path.write_bytes(_int8_graph(tiny_model))
    with select_runner(tiny_model, "auto", "int8", "cpu") as runner:
        assert (runner.name, runner.precision) == ("onnxruntime", "int8")
        assert runner.check_result.agreement >= 0.98


def test_engine_and_precision_choices() -> None:
    assert ENGINES == ("auto", "torch", "onnxruntime", "tensorrt")
    assert PRECISIONS == ("auto", "fp32", "fp16", "bf16", "int8", "fp8")


def test_tensorrt_refuses_cleanly_without_a_gpu(tiny_model: LoadedModel) -> None:
    assert "CUDA device" in tensorrt_unavailable(torch.device("cpu"))
    runner = TensorRTRunner(lambda: b"", {}, "0" * 64, "cpu", "fp16", (1, 1, 32, 32))
    with pytest.raises(DeviceError, match="TensorRT needs a CUDA device"):
        runner.activate()
    assert not runner.is_active
    with pytest.raises(ValueError, match="TensorRT runs"):
        TensorRTRunner(lambda: b"", {}, "0" * 64, "cuda", "bf16")


def test_check_engine_io() -> None:
    good = {"spectrogram": ("input", (1, 1, 32, 32), "float32"),
            "probabilities": ("output", (1, 3, 32, 32), "float32")}
    check_engine_io(good, (1, 1, 32, 32), (1, 3, 32, 32))
    for bad in ({**good, "spectrogram": ("input", (1, 1, 32, 32), "float16")},
                {**good, "probabilities": ("output", (1, 3, 16, 32), "float32")},
                {"input": good["spectrogram"], "probabilities": good["probabilities"]}):
        with pytest.raises(DeviceError, match="I/O"):
            check_engine_io(bad, (1, 1, 32, 32), (1, 3, 32, 32))


def test_backends_import_their_libraries_lazily() -> None:
    code = ("import sys, engines.selection, engines.commands, engines.device_check, "
            "engines.cache, engines.export, engines.selfcheck, calib.dataset, calib.quantize; "
            "print([m for m in ('onnxruntime', 'onnx', 'tensorrt') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_device_check_quick_runs_end_to_end(tmp_path: Path) -> None:
    from engines.device_check import main

    assert main(["--out", str(tmp_path), "--quick", "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert set(report) >= {"environment", "plan", "published", "shipped", "stft",
                           "end_to_end", "skipped", "wall_seconds"}
    published = report["published"]
    assert {(r["backend"], r["overrides"].get("in_chans", 1)) for r in published} >= {
        ("torch", 3), ("torch", 1), ("onnxruntime", 1)}
    for row in published:
        assert row["frames_per_s"] > 0 and row["self_check"]["passed"], row
    assert report["stft"][0]["x_realtime"] > 0
    for run in report["end_to_end"]:
        assert run["frames_segmented"] == run["frames"] > 0 and run["samples_dropped"] == 0

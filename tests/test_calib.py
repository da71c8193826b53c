"""Calibration: the recipe, the calibration set, the Q/DQ graph and its acceptance."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from calib.dataset import make_test_set, read_calibration_set, write_calibration_set
from calib.quantize import accept, calibrate
from calib.recipe import DEFAULT_RECIPE, Recipe, load_recipe
from engines.export import read_onnx_info
from engines.models import LoadedModel
from engines.prmnet import create_model
from monitor.errors import InputError
from monitor.train.cards import make_card, save_checkpoint
from monitor.train.data import open_frames

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_recipe() -> Recipe:
    """Two calibration frames and two test frames at the cheapest training rate."""
    return dataclasses.replace(load_recipe(), rates=(1.92e6,), count=2, test_count=2)


@pytest.fixture(scope="module")
def calib_model() -> LoadedModel:
    """An untrained CPU model at the generator's geometry (256x256)."""
    torch.manual_seed(3)
    card = make_card("prmnet_cpu", {}, [1.92e6, 61.44e6])
    return LoadedModel("calib", create_model("prmnet_cpu").eval(), card)


@pytest.fixture(scope="module")
def calib_data(tmp_path_factory: pytest.TempPathFactory,
               calib_model: LoadedModel) -> tuple[Path, Path]:
    """A calibration set and a test set, both tiny."""
    root = tmp_path_factory.mktemp("calib")
    recipe = _tiny_recipe()
    return (write_calibration_set(recipe, calib_model.card, root / "set"),
            make_test_set(recipe, root / "test", workers=1))


def test_the_shipped_recipe_reads() -> None:
    recipe = load_recipe()
    assert recipe.rates == (1.92e6, 19.2e6, 61.44e6) and recipe.snr_db == (-10.0, 30.0)
    assert recipe.max_drop_points == 1.0 and recipe.per_channel
    assert "/model/head/*" in recipe.keep
    assert recipe.sha256 == load_recipe(DEFAULT_RECIPE).sha256


def test_a_bad_recipe_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT_RECIPE.read_text().replace('method = "percentile"', 'method = "magic"'))
    with pytest.raises(InputError, match="method"):
        load_recipe(bad)
    bad.write_text("format = 'prmnet-calib-recipe/1'\n")
    with pytest.raises(InputError, match="missing or bad key"):
        load_recipe(bad)
    with pytest.raises(InputError, match="cannot read"):
        load_recipe(tmp_path / "none.toml")


@pytest.mark.parametrize(("fp32", "quantized", "allowed", "verdict"), [
    (0.80, 0.795, 1.0, True), (0.80, 0.79, 1.0, True), (0.80, 0.789, 1.0, False),
    (0.50, 0.60, 0.0, True), (0.80, 0.80, -0.5, False)])
def test_accept(fp32: float, quantized: float, allowed: float, verdict: bool) -> None:
    assert accept(fp32, quantized, allowed) is verdict


def test_calibration_set_is_network_inputs_and_reused(calib_data: tuple[Path, Path],
                                                      calib_model: LoadedModel) -> None:
    folder, _ = calib_data
    inputs = read_calibration_set(folder)
    assert inputs.shape == (2, 1, 256, 256) and inputs.dtype == np.float32
    assert inputs.min() >= -2 and inputs.max() <= 8
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["recipe_sha256"] == _tiny_recipe().sha256
    stamp = (folder / "inputs.npy").stat().st_mtime_ns
    write_calibration_set(_tiny_recipe(), calib_model.card, folder)
    assert (folder / "inputs.npy").stat().st_mtime_ns == stamp


def test_calibration_needs_a_one_channel_model_of_the_generator_geometry() -> None:
    with pytest.raises(InputError, match="one-channel"):
        write_calibration_set(_tiny_recipe(), make_card("prmnet", {}, [61.44e6, 61.44e6]),
                              "unused")
    small = make_card("prmnet_w8", {}, [1.92e6, 1.92e6],
                      geometry={**make_card("prmnet_w8", {}, [1.92e6, 1.92e6]).geometry,
                                "width": 128})
    with pytest.raises(InputError, match="geometry"):
        write_calibration_set(_tiny_recipe(), small, "unused")


@pytest.mark.parametrize("allowed", [100.0, -100.0])
def test_calibrate_writes_the_graph_only_when_accepted(
        tmp_path: Path, calib_data: tuple[Path, Path], calib_model: LoadedModel,
        allowed: float) -> None:
    folder, test = calib_data
    recipe = dataclasses.replace(_tiny_recipe(), max_drop_points=allowed)
    out, install = tmp_path / "q.onnx", tmp_path / "installed" / "q.onnx"
    result = calibrate(calib_model.module, calib_model.card, read_calibration_set(folder),
                       recipe, open_frames([test]), out, install=install, threads=1)
    print(result.describe())
    assert result.frames == 2 and 0 <= result.quantized_miou <= 1
    assert result.accepted is (allowed > 0)
    assert out.exists() is result.accepted and install.exists() is result.accepted
    assert any(k.startswith("/model/msfe/branches.") for k in result.kept)
    assert "/model/head/classifier/Conv" in result.kept
    if result.accepted:
        info = read_onnx_info(out)
        assert info.precision == "int8" and info.card == calib_model.card
        ops = {n.op_type for n in onnx.load(str(out)).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear", "Softmax"} <= ops


def test_prmnet_calib_command(tmp_path: Path, calib_data: tuple[Path, Path],
                              calib_model: LoadedModel, cache_home: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    from engines.commands import add_commands
    from engines.export import weights_sha256

    weights = save_checkpoint(calib_model.module, calib_model.card, tmp_path / "calib")
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(DEFAULT_RECIPE.read_text().replace("count = 256", "count = 2")
                      .replace("rates = [1.92e6, 19.2e6, 61.44e6]", "rates = [1.92e6]"))
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    _, test = calib_data
    common = [str(weights), "--recipe", str(recipe), "--test", str(test), "--threads", "1"]
    args = parser.parse_args(["calib", *common, "--out", str(tmp_path / "no.onnx"),
                              "--max-drop", "-100"])
    assert args.func(args) == 1
    captured = capsys.readouterr()
    assert "refused" in captured.out and "nothing written" in captured.err
    assert not (tmp_path / "no.onnx").exists()
    args = parser.parse_args(["calib", *common, "--out", str(tmp_path / "yes.onnx"),
                              "--max-drop", "100"])
    assert args.func(args) == 0
    assert "accepted" in capsys.readouterr().out
    installed = cache_home / "quantized" / f"{weights_sha256(calib_model.module)}.int8.onnx"
    assert installed.read_bytes() == (tmp_path / "yes.onnx").read_bytes()


@pytest.mark.slow
def test_the_shipped_cpu_model_quantized_to_int8_keeps_its_accuracy(tmp_path: Path) -> None:
    """The acceptance of issue-level weight: the shipped model's INT8 graph, calibrated and
    measured as `prmnet calib` does with the shipped recipe (fewer frames: 64 to calibrate, 64
    to test), loses at most the recipe's 1 point of mean IoU against float32."""
    from engines.models import load_model

    shipped = load_model("prmnet_cpu", None)
    recipe = dataclasses.replace(load_recipe(), count=64, test_count=64)
    inputs = read_calibration_set(write_calibration_set(recipe, shipped.card, tmp_path / "set"))
    test = open_frames([make_test_set(recipe, tmp_path / "test", workers=2)])
    result = calibrate(shipped.module, shipped.card, inputs, recipe, test,
                       tmp_path / "prmnet_cpu.int8.onnx", threads=2)
    print(result.describe())
    assert result.fp32_miou > 0.5  # a trained model, not noise
    assert result.accepted, result.describe()

"""ONNX export: the graph matches torch through ONNX Runtime and carries its card."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

import pytest
import torch

from engines.context import StripContext
from engines.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    export_onnx,
    export_onnx_bytes,
    read_onnx_info,
    weights_sha256,
)
from engines.models import LoadedModel
from engines.prmnet import create_model, probabilities
from engines.selfcheck import check_input
from monitor.errors import InputError
from monitor.train.cards import make_card, save_checkpoint

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(data: bytes | Path, x: torch.Tensor) -> torch.Tensor:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    source = str(data) if isinstance(data, Path) else data
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])


@pytest.mark.parametrize(("name", "size", "overrides"), [
    ("prmnet_w8", 32, {}),
    ("prmnet_cpu", 64, {}),
    ("prmnet_cpu", 256, {}),
    ("prmnet_cpu", 64, {"time_fold": True, "strip_context": True}),
    ("unet_s", 64, {"base_width": 4, "time_pool": 2, "time_fold": True, "strip_context": True}),
])
def test_exported_graph_matches_torch_through_onnxruntime(
    name: str, size: int, overrides: dict[str, Any]
) -> None:
    torch.manual_seed(1)
    model = create_model(name, **overrides).eval()
    for module in model.modules():
        if isinstance(module, StripContext):  # it starts at zero: give it something to add
            for weight in module.parameters():
                torch.nn.init.normal_(weight, std=0.1)
    card = make_card(name, overrides, [1.92e6, 61.44e6])
    x = check_input(1, size, size)
    graph = export_onnx_bytes(model, card, height=size, width=size)
    onnx.checker.check_model(onnx.load_from_string(graph), full_check=True)
    with torch.inference_mode():
        expected = probabilities(model(x))
    diff = float((_run(graph, x) - expected).abs().max())
    print(f"{name} {overrides} {size}x{size}: ONNX Runtime vs torch, max |dp| = {diff:.2e}")
    assert diff < 1e-4


def test_metadata_matches_the_checkpoint(tmp_path: Path, tiny_model: LoadedModel) -> None:
    weights = save_checkpoint(tiny_model.module, tiny_model.card, tmp_path / "tiny")
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert weights_sha256(tiny_model.module) == sha
    path = export_onnx(tiny_model.module, tiny_model.card, tmp_path / "tiny.onnx", batch=2)
    info = read_onnx_info(path)
    assert info.card == tiny_model.card
    assert info.weights_sha256 == sha
    assert (info.precision, info.input_shape, info.output_shape) == (
        "fp32", (2, 1, 32, 32), (2, 3, 32, 32))
    proto = onnx.load(str(path))
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == INPUT_NAME and out.name == OUTPUT_NAME
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [2, 1, 32, 32]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.node[-1].op_type == "Softmax"  # probabilities, in the graph
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary left


def test_export_leaves_the_model_as_it_was(tiny_model: LoadedModel) -> None:
    tiny_model.module.train()
    before = {k: v.clone() for k, v in tiny_model.module.state_dict().items()}
    export_onnx_bytes(tiny_model.module, tiny_model.card)
    assert tiny_model.module.training
    after = tiny_model.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_fp16_graph_keeps_float32_input_and_output(tiny_model: LoadedModel) -> None:
    graph = export_onnx_bytes(tiny_model.module, tiny_model.card, precision="fp16")
    proto = onnx.load_from_string(graph)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in proto.graph.initializer)
    x = check_input(1, 32, 32)
    with torch.inference_mode():
        expected = probabilities(tiny_model.module(x))
    assert float((_run(graph, x) - expected).abs().max()) < 1e-2


def test_export_refuses_what_it_cannot_write(tiny_model: LoadedModel, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="multiple of 8"):
        export_onnx_bytes(tiny_model.module, tiny_model.card, height=30)
    with pytest.raises(InputError, match="prmnet calib"):
        export_onnx_bytes(tiny_model.module, tiny_model.card, precision="int8")
    foreign = tmp_path / "foreign.onnx"
    h = onnx.helper
    tensor = h.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, [1, 1, 8, 8])
    graph = h.make_graph([h.make_node("Identity", [INPUT_NAME], [OUTPUT_NAME])], "foreign",
                         [tensor], [h.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT,
                                                             [1, 1, 8, 8])])
    onnx.save(h.make_model(graph), str(foreign))
    with pytest.raises(InputError, match="not exported by prmnet-monitor"):
        read_onnx_info(foreign)
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk")
    with pytest.raises(InputError):
        read_onnx_info(tmp_path / "junk.onnx")


def test_prmnet_export_command(tmp_path: Path, tiny_model: LoadedModel,
                               capsys: pytest.CaptureFixture[str]) -> None:
    from engines.commands import add_commands

    weights = save_checkpoint(tiny_model.module, tiny_model.card, tmp_path / "tiny")
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    out = tmp_path / "out.onnx"
    args = parser.parse_args(["export", str(weights), "-o", str(out), "--batch", "2",
                              "--height", "16"])
    assert args.func(args) == 0
    assert read_onnx_info(out).input_shape == (2, 1, 16, 32)
    assert "spectrogram (2, 1, 16, 32) float32" in capsys.readouterr().out

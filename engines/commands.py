"""The ``prmnet export``, ``prmnet engine`` and ``prmnet calib`` subcommands (wired in by
``monitor.cli`` through :func:`add_commands`)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from engines.models import LoadedModel, load_model
from monitor.arguments import positive_int
from monitor.errors import DeviceError, InputError

if TYPE_CHECKING:
    from engines.selfcheck import SelfCheck

__all__ = ["CALIB_EXAMPLES", "ENGINE_EXAMPLES", "EXPORT_EXAMPLES", "add_commands"]

log = logging.getLogger("prmnet.engines")

EXPORT_EXAMPLES = """\
examples:
  # a shipped model as ONNX, its card in the file's metadata
  prmnet export prmnet_cpu -o prmnet_cpu.onnx
  # a checkpoint, eight frames per inference, network in float16 (float32 input and output)
  prmnet export runs/prmnet_w8/best.safetensors --batch 8 --precision fp16
The graph: input "spectrogram" float32 (N, C, H, W), all fixed (default 1 x C x the card's
height x width); output "probabilities" float32 (N, 3, H, W), softmax in the graph, channels
noise, LTE, NR. Every backend runs this graph.
"""

ENGINE_EXAMPLES = """\
examples:
  # build (or find) the TensorRT engine the monitor will use, ahead of the first run
  prmnet engine build prmnet_w32 --precision fp16
  prmnet engine build prmnet_w32 --precision int8     # after prmnet calib prmnet_w32
  # compile a model for this CPU (AOTInductor; needs a C++ compiler): the torch engine then
  # runs the compiled network, 1.3-1.6x as fast as eager torch on this project's CI machine
  prmnet engine build prmnet_cpu unet_cpu --compute cpu
  prmnet engine list
  prmnet engine clear
Engines live in $XDG_CACHE_HOME/prmnet-monitor/engines (~/.cache/...), keyed by the weights,
precision, runtime and its version, the GPU or CPU and its capability, and the input shape; a
stale or foreign engine is rebuilt.
"""

CALIB_EXAMPLES = """\
examples:
  # INT8 Q/DQ graph from the default recipe (calib/recipe.toml), accepted only within 1 point
  # of float32 mean IoU on a synthetic test set
  prmnet calib prmnet_w32 --out prmnet_w32.int8.onnx
  # measured on your own test set, with frames of your own recordings in the calibration
  prmnet calib runs/prmnet_w8/best.safetensors --out w8.int8.onnx --test data/test \\
      --recordings ../shared/captures
An accepted graph is written to --out and installed for --precision int8 (or fp8).
"""


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export``, ``engine`` and ``calib`` to a ``prmnet`` subparser set; each sets
    ``func``."""
    ex = subparsers.add_parser(
        "export", help="write a model as ONNX with fixed, documented input geometry",
        description="Export a checkpoint as ONNX: the network with its softmax, its card in "
        "the file's metadata.", epilog=EXPORT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ex.add_argument("model", metavar="MODEL", help="a shipped model's name or a checkpoint")
    ex.add_argument("-o", "--out", type=Path, metavar="OUT.onnx",
                    help="output (default MODEL.onnx, MODEL.fp16.onnx in fp16)")
    ex.add_argument("--height", type=positive_int, metavar="ROWS",
                    help="rows (default the card's)")
    ex.add_argument("--width", type=positive_int, metavar="PIXELS",
                    help="frequency pixels (default the card's)")
    ex.add_argument("--batch", type=positive_int, default=1, help="frames per inference (1)")
    ex.add_argument("--precision", default="fp32", choices=["fp32", "fp16"],
                    help="the network's arithmetic (fp32)")
    ex.set_defaults(func=_export)

    eng = subparsers.add_parser(
        "engine", help="build, list and clear cached engines (TensorRT, compiled CPU)",
        epilog=ENGINE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = eng.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="build (or find) a model's TensorRT engine, or "
                               "its compiled CPU package",
                               epilog=ENGINE_EXAMPLES,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_argument("models", nargs="+", metavar="MODEL",
                       help="shipped models' names or checkpoints, one engine each")
    build.add_argument("--precision", default=None, choices=["fp32", "fp16", "int8", "fp8"],
                       help="TensorRT: fp16 (default); int8 and fp8 need prmnet calib first. "
                       "The CPU package is fp32")
    build.add_argument("--compute", default="cuda", metavar="cuda[:N]|cpu",
                       help="the GPU to build a TensorRT engine for (cuda, the default), or cpu "
                       "to compile an AOTInductor package for this CPU")
    build.set_defaults(func=_engine_build)
    lst = actions.add_parser("list", help="list the cached engines")
    lst.set_defaults(func=_engine_list)
    clear = actions.add_parser("clear", help="delete every cached engine and timing cache")
    clear.set_defaults(func=_engine_clear)

    cal = subparsers.add_parser(
        "calib", help="make an INT8/FP8 Q/DQ graph, accepted only if it keeps its accuracy",
        description="Calibrate and quantize a one-channel model on generator scenes (and your "
        "recordings), then measure float32 and quantized mean IoU through ONNX Runtime on the "
        "CPU: the quantized graph is written only within the recipe's max_drop_points.",
        epilog=CALIB_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    cal.add_argument("model", metavar="MODEL", help="a shipped model's name or a checkpoint")
    cal.add_argument("--out", type=Path, required=True, metavar="OUT.onnx",
                     help="where the accepted graph goes")
    cal.add_argument("--precision", default="int8", choices=["int8", "fp8"],
                     help="int8 (default) or fp8")
    cal.add_argument("--recipe", type=Path, default=None, metavar="TOML",
                     help="a calibration recipe (default calib/recipe.toml)")
    cal.add_argument("--test", type=Path, action="append", default=[], metavar="DIR",
                     help="test data (prmnet synth dataset folders; default: the recipe's "
                     "synthetic test set, made on first use)")
    cal.add_argument("--recordings", type=Path, default=None, metavar="DIR",
                     help="add frames of every SigMF recording in DIR to the calibration set")
    cal.add_argument("--limit", type=positive_int, default=None, metavar="N",
                     help="measure on the first N test frames only")
    cal.add_argument("--max-drop", type=float, default=None, metavar="POINTS",
                     help="mean IoU the graph may lose (default: the recipe's, 1 point)")
    cal.add_argument("--threads", type=positive_int, default=None, metavar="N",
                     help="ONNX Runtime threads (default: one per core)")
    cal.add_argument("--workers", type=positive_int, default=None, metavar="N",
                     help="processes making the test set (default: every core)")
    cal.set_defaults(func=_calib)


def _export(args: argparse.Namespace) -> int:
    from engines.export import export_onnx, read_onnx_info

    model = load_model(args.model, None)
    suffix = ".fp16.onnx" if args.precision == "fp16" else ".onnx"
    out = args.out or Path(f"{model.name}{suffix}")
    path = export_onnx(model.module, model.card, out, batch=args.batch, height=args.height,
                       width=args.width, precision=args.precision)
    info = read_onnx_info(path)
    print(f"wrote {path}: spectrogram {info.input_shape} float32 -> probabilities "
          f"{info.output_shape} float32 ({info.precision} network, softmax in the graph; "
          f"weights sha256 {info.weights_sha256[:16]}...)")
    return 0


def _engine_build(args: argparse.Namespace) -> int:
    import torch

    from engines.backends.tensorrt_runner import tensorrt_unavailable
    from engines.selection import make_runner, resolve_device
    from engines.selfcheck import SelfCheck

    on_cpu = args.compute == "cpu"
    reason = None if on_cpu else tensorrt_unavailable(torch.device("cuda"))
    if reason is not None:
        raise InputError(f"cannot build a TensorRT engine here: {reason}")
    device = resolve_device(args.compute)
    for name in args.models:
        model = load_model(name, None)
        g = model.card.geometry
        check = SelfCheck(model.module, model.card.in_chans, int(g["height"]), int(g["width"]))
        if on_cpu:
            _package_build(model, args.precision or "fp32", check)
            continue
        precision = args.precision or "fp16"
        started = time.perf_counter()
        try:
            runner = make_runner("tensorrt", model, device, precision, check)
        except InputError as exc:
            raise InputError(f"cannot build a TensorRT engine here: {exc}") from None
        with runner:
            result = runner.check_result
        print(f"TensorRT {precision} engine for {model.name} on {device} ready in "
              f"{time.perf_counter() - started:.1f} s"
              + (f"; {result.describe()}" if result else ""))
    return 0


def _package_build(model: LoadedModel, precision: str, check: SelfCheck) -> None:
    """``prmnet engine build MODEL --compute cpu``: compile (or find) the AOTInductor package,
    and run it through its self-check as the torch engine will."""
    import torch

    from engines.backends.aot_package import cpu_name, ensure_package
    from engines.backends.base import first_line
    from engines.export import weights_sha256
    from engines.selection import make_runner

    if precision != "fp32":
        raise InputError(f"the CPU package is fp32, not {precision}: int8 runs on the CPU "
                         "through ONNX Runtime (prmnet calib, then --engine onnxruntime)")
    g = model.card.geometry
    shape = (1, model.card.in_chans, int(g["height"]), int(g["width"]))
    started = time.perf_counter()
    try:
        built = ensure_package(model.module, weights_sha256(model.module), shape)
    except RuntimeError as exc:
        raise DeviceError(f"compiling {model.name} for the CPU failed: {first_line(exc)}") from None
    with make_runner("torch", model, torch.device("cpu"), "fp32", check) as runner:
        result = runner.check_result
    what = f"built in {time.perf_counter() - started:.1f} s" if built else "found in the cache"
    print(f"CPU package of {model.name} for {cpu_name()} "
          f"({torch.backends.cpu.get_cpu_capability()}) {what}"
          + (f"; {result.describe()}" if result else ""))


def _engine_list(args: argparse.Namespace) -> int:
    from engines.cache import EngineCache
    from monitor.bench import format_table

    cache = EngineCache()
    entries = cache.entries()
    if not entries:
        print(f"{cache.engines_dir}: no engines")
        return 0
    rows = [{
        "engine": e.path.stem[:12],
        "weights": str(e.key.get("weights_sha256", "?"))[:12],
        "precision": e.key.get("precision", "?"),
        "runtime": e.key.get("runtime", "?"),
        "device": f"{e.key.get('device_name', '?')} ({e.key.get('capability', '?')})",
        "input": "x".join(str(d) for d in e.key.get("input_shape", [])) or "?",
        "MB": f"{e.size / 1e6:.1f}",
        "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(e.created)) if e.created
        else "?",
        "state": "ok" if e.valid else "broken (deleted on next use)",
    } for e in entries]
    print(f"{cache.engines_dir}:")
    print(format_table(rows))
    return 0


def _engine_clear(args: argparse.Namespace) -> int:
    from engines.cache import EngineCache

    cache = EngineCache()
    print(f"{cache.engines_dir}: removed {cache.clear()} files")
    return 0


def _calib(args: argparse.Namespace) -> int:
    import sys
    from dataclasses import replace

    from calib.dataset import make_test_set, read_calibration_set, write_calibration_set
    from calib.quantize import calibrate
    from calib.recipe import load_recipe
    from engines.cache import EngineCache, cache_root
    from engines.export import weights_sha256
    from monitor.train.data import open_frames

    model = load_model(args.model, None)
    recipe = load_recipe(args.recipe)
    if args.max_drop is not None:
        recipe = replace(recipe, max_drop_points=args.max_drop)
    recordings = sorted(args.recordings.glob("*.sigmf-meta")) if args.recordings else []
    if args.recordings and not recordings:
        raise InputError(f"no SigMF recordings (*.sigmf-meta) in {args.recordings}")
    work = cache_root() / "calib"
    calib_dir = write_calibration_set(recipe, model.card, work / f"set-{recipe.sha256[:16]}",
                                      recordings, progress=True)
    test_dirs = args.test or [make_test_set(recipe, work / f"test-{recipe.sha256[:16]}",
                                            args.workers, progress=True)]
    result = calibrate(
        model.module, model.card, read_calibration_set(calib_dir), recipe, open_frames(test_dirs),
        args.out, args.precision,
        install=EngineCache().quantized_path(weights_sha256(model.module), args.precision),
        limit=args.limit, threads=args.threads,
    )
    print(result.describe())
    if not result.accepted:
        print(f"prmnet calib: refused: nothing written to {args.out}", file=sys.stderr)
        return 1
    print(f"wrote {result.path}; installed for --precision {args.precision} "
          f"({result.installed})")
    return 0

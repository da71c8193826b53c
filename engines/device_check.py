"""Everything that needs a GPU, in one go, written as JSON: ``python -m engines.device_check``.

Sections of ``OUT/device_check.json``:

* ``environment``: torch, CUDA, cuDNN, the GPU, ONNX Runtime and its providers, TensorRT (or
  why it is absent).
* ``published``: PRMNet at the published width (``prmnet``: 3 input channels, as the authors
  trained it) and its one-channel variant (what the monitor would run), 256 x 256, random
  weights (speed does not depend on them), through every backend and precision this machine
  has: torch fp32 (channels-last and not), fp16 and bf16, each also as a CUDA graph; ONNX Runtime
  on CUDA (fp32, fp16); TensorRT (fp32, fp16). Each at batch 1 and some at batch 8: frames per
  second and latency p50/p95 of a synchronised call, and the self-check against torch fp32.
* ``shipped``: the shipped checkpoints at their own geometry, torch fp32/fp16 and CUDA graphs.
* ``stft``: the spectrogram at 61.44 MS/s on the GPU and on the CPU, from host samples
  (pageable and pinned) and from samples already on the device, as multiples of real time.
* ``end_to_end``: the monitor (``monitor.app.run_monitor``, ``--compute cuda``, engine auto)
  replaying a generated 61.44 MS/s recording in a loop: as fast as it goes (real-time factor),
  and paced at real time (frames segmented, samples dropped, latency, queue high water). A
  replay never drops (its reader waits), so "real time" is the unpaced run's
  ``processed_realtime_factor`` (the stream seconds processed, ``--duration``, per wall second)
  above 1 with every frame segmented; it does not depend on how the run statistics count
  samples read ahead of the processing when ``--duration`` ends the run.

``--quick`` runs the same code at toy sizes on whatever device there is (a CPU in CI), to show
the script works end to end. The full run keeps within ``--budget`` seconds (default 330): what
does not fit is listed under ``skipped``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engines.backends.base import Runner
from engines.backends.onnxruntime_runner import OnnxRuntimeRunner, onnxruntime_unavailable
from engines.backends.tensorrt_runner import TensorRTRunner, tensorrt_unavailable
from engines.backends.torch_runner import TorchRunner
from engines.export import export_onnx_bytes, weights_sha256
from engines.models import shipped_models
from engines.prmnet import create_model
from engines.selection import export_settings
from engines.selfcheck import SelfCheck, check_input
from monitor.dsp.geometry import Geometry
from monitor.dsp.spectrogram import Spectrogram
from monitor.train.cards import ModelCard, geometry_fields, load_checkpoint, make_card, read_card

__all__ = ["Plan", "main", "run_checks"]

log = logging.getLogger("prmnet.device_check")

RATE = 61.44e6


@dataclass(frozen=True)
class Plan:
    """What a run measures, and how long it may take.

    Attributes:
        device: where the engines run.
        models: (model name, overrides) of the published-width networks.
        size: image height and width.
        batches: batch sizes measured for the fastest configurations.
        seconds: timing window of one measurement.
        rate: sample rate of the STFT and the end-to-end replay.
        recording_seconds: length of the generated recording (replayed in a loop).
        replay_seconds: stream seconds of each end-to-end run.
        budget: the most seconds the whole run may take.
    """

    device: torch.device
    models: tuple[tuple[str, dict[str, Any]], ...]
    size: int
    batches: tuple[int, ...]
    seconds: float
    rate: float
    recording_seconds: float
    replay_seconds: float
    budget: float

    @classmethod
    def full(cls, device: torch.device, budget: float) -> Plan:
        return cls(device, (("prmnet", {}), ("prmnet", {"in_chans": 1})), 256, (1, 8), 1.5,
                   RATE, 0.4, 4.0, budget)

    @classmethod
    def quick(cls, device: torch.device, budget: float) -> Plan:
        return cls(device, (("prmnet_w8", {"in_chans": 3}), ("prmnet_w8", {})), 32, (1, 2), 0.05,
                   1.92e6, 0.1, 0.2, budget)


@dataclass(frozen=True)
class _Config:
    """One runner to measure."""

    backend: str
    precision: str
    batch: int
    channels_last: bool = True
    cuda_graph: bool = False

    def label(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision, "batch": self.batch,
                "channels_last": self.channels_last, "cuda_graph": self.cuda_graph}


def main(argv: list[str] | None = None) -> int:
    """``python -m engines.device_check --out DIR [--quick]``."""
    parser = argparse.ArgumentParser(prog="python -m engines.device_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for device_check.json")
    parser.add_argument("--quick", action="store_true", help="toy sizes, any device (CI)")
    parser.add_argument("--device", default=None,
                        help="cuda[:N] or cpu (default: cuda where there is one)")
    parser.add_argument("--budget", type=float, default=330.0,
                        help="seconds the whole run may take (default 330)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    plan = (Plan.quick if args.quick else Plan.full)(device, args.budget)
    report = run_checks(plan)
    report["quick"] = args.quick
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "device_check.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    log.info("wrote %s", path)
    return 0


def run_checks(plan: Plan) -> dict[str, Any]:
    """Run every check of ``plan``; the report as a JSON-ready dict."""
    started = time.perf_counter()
    skipped: list[str] = []

    def time_left() -> bool:
        return time.perf_counter() - started < plan.budget

    if plan.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    report: dict[str, Any] = {"environment": _environment(plan.device), "plan": {
        "device": str(plan.device), "size": plan.size, "batches": list(plan.batches),
        "seconds_per_measurement": plan.seconds, "rate": plan.rate,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32": torch.backends.cudnn.allow_tf32,
    }}
    report["published"] = []
    for name, overrides in plan.models:
        card = make_card(name, overrides, [plan.rate, plan.rate],
                         geometry=geometry_fields(plan.size, plan.size))
        module = create_model(name, **overrides).eval()
        primary = name == plan.models[0][0] and overrides == plan.models[0][1]
        for config in _configs(plan, primary):
            if not time_left():
                skipped.append(f"{name} {overrides} {config.label()}")
                continue
            row = {"model": name, "overrides": overrides, **config.label(),
                   **_measure(module, card, config, plan)}
            report["published"].append(row)
    report["shipped"] = []
    for stem, path in shipped_models().items():
        module, card = load_checkpoint(path)
        for config in _configs(plan, False)[:4]:
            if time_left():
                report["shipped"].append({"model": stem, **config.label(),
                                          **_measure(module, card, config, plan)})
            else:
                skipped.append(f"shipped {stem} {config.label()}")
    report["stft"] = _stft(plan) if time_left() else []
    if time_left():
        report["end_to_end"] = _end_to_end(plan)
    else:
        report["end_to_end"] = []
        skipped.append("end_to_end")
    report["skipped"] = skipped
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    return report


def _configs(plan: Plan, primary: bool) -> list[_Config]:
    """What to measure: everything at batch 1 for the primary model, the main ones for others,
    and the fastest kinds at the larger batch."""
    first, *more = plan.batches
    if plan.device.type != "cuda":
        configs = [_Config("torch", "fp32", first), _Config("onnxruntime", "fp32", first)]
        return configs + [_Config("torch", "fp32", b) for b in more]
    configs = [_Config("torch", "fp32", first), _Config("torch", "fp16", first),
               _Config("torch", "fp16", first, cuda_graph=True),
               _Config("onnxruntime", "fp16", first), _Config("tensorrt", "fp16", first)]
    if primary:
        configs += [_Config("torch", "fp32", first, channels_last=False),
                    _Config("torch", "fp32", first, cuda_graph=True),
                    _Config("torch", "bf16", first), _Config("torch", "bf16", first,
                                                             cuda_graph=True),
                    _Config("onnxruntime", "fp32", first), _Config("tensorrt", "fp32", first)]
        for b in more:
            configs += [_Config("torch", "fp16", b), _Config("torch", "fp16", b, cuda_graph=True),
                        _Config("onnxruntime", "fp16", b), _Config("tensorrt", "fp16", b)]
    return configs


def _runner(module: nn.Module, card: ModelCard, config: _Config, device: torch.device,
            check: SelfCheck) -> Runner:
    shape = (config.batch, card.in_chans, card.geometry["height"], card.geometry["width"])
    if config.backend == "torch":
        return TorchRunner(module, device, config.precision, config.channels_last,
                           config.cuda_graph, check=check)

    def export() -> bytes:
        return export_onnx_bytes(module, card, batch=config.batch, precision=config.precision,
                                 device=device)

    if config.backend == "onnxruntime":
        reason = onnxruntime_unavailable(device)
        if reason:
            raise RuntimeError(reason)
        return OnnxRuntimeRunner(export, device, config.precision, check=check)
    reason = tensorrt_unavailable(device)
    if reason:
        raise RuntimeError(reason)
    return TensorRTRunner(export, export_settings(), weights_sha256(module), device,
                          config.precision, shape, len(card.classes), check=check)


def _measure(module: nn.Module, card: ModelCard, config: _Config, plan: Plan) -> dict[str, Any]:
    """Activate (self-check included), warm up, then time synchronised calls."""
    log.info("measuring %s %s", card.model, config.label())
    g = card.geometry
    check = SelfCheck(module, card.in_chans, int(g["height"]), int(g["width"]))
    started = time.perf_counter()
    try:
        runner = _runner(module, card, config, plan.device, check)
        runner.activate()
    except Exception as exc:  # the report says what failed; the run goes on
        return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    setup = time.perf_counter() - started
    try:
        x = check_input(card.in_chans, int(g["height"]), int(g["width"]),
                        config.batch).to(plan.device)
        timings = _time_calls(lambda: runner.infer(x), plan.device, plan.seconds)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    finally:
        runner.deactivate()
    result = runner.check_result
    return {
        "frames_per_s": round(config.batch * len(timings) / sum(timings), 2),
        "latency_ms_p50": round(1e3 * float(np.percentile(timings, 50)), 3),
        "latency_ms_p95": round(1e3 * float(np.percentile(timings, 95)), 3),
        "calls": len(timings),
        "setup_s": round(setup, 2),
        "self_check": {k: (round(v, 6) if isinstance(v, float) else v)
                       for k, v in result.to_dict().items()} if result else None,
    }


def _time_calls(call: Callable[[], Any], device: torch.device, seconds: float,
                warmup: int = 3, max_calls: int = 500) -> list[float]:
    """Seconds of each synchronised call, for about ``seconds`` after ``warmup`` calls."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        call()
    sync()
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(timings) < max_calls and (len(timings) < 3 or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        call()
        sync()
        timings.append(time.perf_counter() - t0)
    return timings


def _stft(plan: Plan) -> list[dict[str, Any]]:
    """Spectrogram rows per second at ``plan.rate``, as multiples of real time."""
    geometry = Geometry.for_rate(plan.rate)
    rng = np.random.default_rng(0)
    rows = []
    devices = [torch.device("cpu")] + ([plan.device] if plan.device.type == "cuda" else [])
    for device in devices:
        frames = 1 if device.type == "cpu" or plan.size < 256 else 10
        n = geometry.frame_samples * frames
        host = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64) * 0.1
        spectrogram = Spectrogram(geometry, device)
        sources: dict[str, Callable[[], torch.Tensor]] = {
            "host": lambda h=host: torch.from_numpy(h)}
        if device.type == "cuda":
            pinned = torch.from_numpy(host).pin_memory()
            on_device = pinned.to(device)
            sources["host_pinned"] = lambda p=pinned, d=device: p.to(d, non_blocking=True)
            sources["device"] = lambda t=on_device: t
        for source, samples in sources.items():
            log.info("stft on %s from %s", device, source)
            timings = _time_calls(lambda s=samples, sp=spectrogram, d=device: sp.rows(
                s().to(d)), device, plan.seconds)
            per_call = float(np.median(timings))
            rows.append({"device": str(device), "samples_from": source, "sample_rate": plan.rate,
                         "samples_per_call": n, "ms_per_call": round(1e3 * per_call, 3),
                         "x_realtime": round(n / plan.rate / per_call, 2)})
    return rows


def _end_to_end(plan: Plan) -> list[dict[str, Any]]:
    """``run_monitor`` on a generated recording at ``plan.rate``, unpaced and paced."""
    from monitor.app import MonitorSettings, run_monitor
    from monitor.recordings import write_recording
    from monitor.synth.random_scene import draw_scene
    from monitor.synth.scene import render
    from monitor.train.cards import save_checkpoint

    results = []
    with tempfile.TemporaryDirectory(prefix="prmnet-device-check-") as tmp:
        work = Path(tmp)
        log.info("generating a %g s recording at %g MS/s", plan.recording_seconds,
                 plan.rate / 1e6)
        rng = np.random.default_rng(61)
        scene = render(draw_scene(rng, plan.rate, plan.recording_seconds), rng)
        recording = write_recording(work / "scene.sigmf-meta", scene.iq, plan.rate, 3.5e9,
                                    "ci16_le", description="prmnet device check")
        name, overrides = plan.models[-1]
        card = make_card(name, overrides, [plan.rate, plan.rate],
                         geometry=geometry_fields(plan.size, plan.size))
        weights = save_checkpoint(create_model(name, **overrides).eval(), card,
                                  work / "published-1ch")
        models = [("published width, 1 channel (random weights)", str(weights))]
        models += [(f"shipped {stem}", stem) for stem, path in shipped_models().items()
                   if read_card(path).serves(plan.rate)]
        for label, model in models:
            for speed in (None, 1.0):
                log.info("end to end: %s, speed %s", label, speed or "max")
                settings = MonitorSettings(replay=recording, speed=speed, loop=True,
                                           duration=plan.replay_seconds, model=model,
                                           compute=str(plan.device), headless=True)
                try:
                    stats = run_monitor(settings).to_dict()
                except Exception as exc:
                    results.append({"model": label, "speed": speed or "max",
                                    "error": f"{type(exc).__name__}: {exc}"[:300]})
                    continue
                results.append({
                    "model": label, "speed": speed or "max",
                    **{k: stats[k] for k in ("engine", "precision", "compute_device",
                                             "realtime_factor", "stream_seconds",
                                             "wall_seconds", "frames", "frames_segmented",
                                             "samples_in", "samples_dropped",
                                             "queue_high_water", "latency_ms")},
                    "processed_realtime_factor": round(
                        plan.replay_seconds / stats["wall_seconds"], 3),
                    "frame_seconds": card.geometry_for(plan.rate).frame_seconds,
                })
    return results


def _environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["gpu"] = {"name": props.name, "compute_capability": f"{props.major}.{props.minor}",
                      "memory_gib": round(props.total_memory / 2**30, 1)}
    try:
        import onnxruntime

        env["onnxruntime"] = {"version": onnxruntime.__version__,
                              "providers": onnxruntime.get_available_providers()}
    except ImportError:
        env["onnxruntime"] = None
    reason = tensorrt_unavailable(device)
    if reason is None:
        import tensorrt

        env["tensorrt"] = tensorrt.__version__
    else:
        env["tensorrt"] = f"unavailable: {reason}"
    return env


if __name__ == "__main__":
    sys.exit(main())

"""``prmnet bench``: speed measured in one run, as rates and ratios, never as pass/fail timings.

Every figure comes with what it is relative to (the frame's own duration, a reference
implementation measured in the same run), so the numbers mean the same on any machine.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import scipy.signal
import torch

from engines.complexity import conv_flops, param_count
from engines.prmnet import MODEL_CONFIGS, create_model, fuse_for_inference
from monitor.dsp.geometry import Geometry
from monitor.dsp.spectrogram import Spectrogram
from monitor.occupancy.stats import engine_text
from monitor.synth.dataset import DatasetRequest, render_frame

__all__ = [
    "bench_engines",
    "bench_model",
    "bench_replay",
    "bench_stft",
    "bench_synth",
    "format_table",
]


def bench_synth(rates: Sequence[float], frames: int = 6) -> list[dict]:
    """Time data-set frames (random scene, render, spectrogram, both masks) at each rate.

    One process, one thread, as each ``prmnet synth dataset`` worker runs; the first frame of each
    rate is a warm-up and is not counted.
    """
    torch.set_num_threads(1)
    rows = []
    for rate in rates:
        request = DatasetRequest(frames=frames + 1, rates=(rate,), seed=12345)
        render_frame(0, request)
        start = time.perf_counter()
        for i in range(1, frames + 1):
            render_frame(i, request)
        seconds = (time.perf_counter() - start) / frames
        frame_seconds = Geometry.for_rate(rate).frame_seconds
        rows.append({
            "what": "synth frame",
            "sample_rate": rate,
            "frame_ms": round(frame_seconds * 1e3, 3),
            "frames_per_s": round(1.0 / seconds, 3),
            "ms_per_frame": round(seconds * 1e3, 1),
            "x_realtime": round(frame_seconds / seconds, 3),
            "cores": os.cpu_count(),
        })
    return rows


def bench_model(models: Sequence[str], rates: Sequence[float] = (1.92e6, 2.4e6),
                threads: int = 2, repeats: int = 10, compiled: bool = False) -> list[dict]:
    """Parameters and GFLOP of each model, and the CPU time of one 256x256 frame against the
    time the frame lasts at each rate (``x_realtime`` above 1: it keeps up).

    ``models``: names of ``engines.prmnet.MODEL_CONFIGS`` (fresh weights: the speed is the
    same) or checkpoint paths. Eager torch in inference mode, channels-last, norms folded as
    the torch engine runs them (:func:`engines.prmnet.fuse_for_inference`), ``threads``
    threads, median of ``repeats`` after two warm-up runs. With ``compiled``, also the
    model's AOTInductor package for this CPU, as the torch engine runs it once
    ``prmnet engine build`` made it (built here where the engine cache lacks it), with its
    speed-up over eager in the same run.
    """
    from engines.backends.aot_package import ensure_package, load_package, package_key
    from engines.cache import EngineCache
    from engines.export import weights_sha256
    from monitor.train.cards import load_checkpoint

    torch.set_num_threads(threads)
    rows = []
    for spec in models:
        if spec in MODEL_CONFIGS:
            name, model = spec, create_model(spec).eval()
        else:
            model, card = load_checkpoint(spec)
            name = f"{card.model} ({Path(spec).stem})"
        chans = int(getattr(model, "in_chans", 1))
        shape = (1, chans, 256, 256)
        flops = conv_flops(model, shape)
        parameters = param_count(model)
        x = torch.randn(shape).to(memory_format=torch.channels_last)
        timed = {"eager": fuse_for_inference(model).to(memory_format=torch.channels_last)}
        if compiled:
            weights, cache = weights_sha256(model), EngineCache()
            ensure_package(model, weights, shape, cache)
            timed["compiled"] = load_package(cache.lookup(package_key(weights, shape)))
        seconds = {how: _median_seconds(lambda m=m, x=x: m(x), repeats)
                   for how, m in timed.items()}
        for how, t in seconds.items():
            for rate in rates:
                frame = Geometry.for_rate(rate).frame_seconds
                rows.append({
                    "what": "model frame",
                    "model": name,
                    **({"torch": how} if compiled else {}),
                    "parameters": parameters,
                    "gflop": round(flops / 1e9, 2),
                    "sample_rate": rate,
                    "frame_ms": round(frame * 1e3, 2),
                    "ms_per_frame": round(t * 1e3, 1),
                    "x_realtime": round(frame / t, 2),
                    **({"vs_eager": round(seconds["eager"] / t, 2)} if compiled else {}),
                    "threads": threads,
                })
    return rows


def bench_stft(rates: Sequence[float] = (2.4e6, 19.2e6, 61.44e6), threads: int = 2,
               repeats: int = 5) -> list[dict]:
    """The spectrogram of one frame against scipy.signal's on the same samples.

    The reference: ``scipy.signal.spectrogram`` with the same window, FFT length and segments
    per row (``noverlap`` giving the same count), two-sided, averaged per row with numpy. Both
    on the CPU with the same data; ``speedup`` is scipy's time over ours.
    """
    torch.set_num_threads(threads)
    rows = []
    rng = np.random.default_rng(0)
    for rate in rates:
        g = Geometry.for_rate(rate)
        x = (rng.standard_normal(g.frame_samples)
             + 1j * rng.standard_normal(g.frame_samples)).astype(np.complex64)
        spectrogram = Spectrogram(g)
        tensor = torch.from_numpy(x)
        ours = _median_seconds(lambda s=spectrogram, t=tensor: s.rows(t), repeats)
        hop = max(1, (g.samples_per_row - g.nfft) // max(g.segments - 1, 1))

        def reference(g: Geometry = g, hop: int = hop, x: np.ndarray = x) -> np.ndarray:
            _, _, sxx = scipy.signal.spectrogram(
                x, fs=g.sample_rate, window="hann", nperseg=g.nfft, noverlap=g.nfft - hop,
                return_onesided=False, mode="psd")
            per_row = sxx.shape[-1] // g.height
            rows_ = sxx[:, : per_row * g.height].reshape(g.nfft, g.height, per_row).mean(-1)
            return 10 * np.log10(np.fft.fftshift(rows_, axes=0) + 1e-20)

        theirs = _median_seconds(reference, repeats)
        rows.append({
            "what": "spectrogram frame",
            "sample_rate": rate,
            "frame_ms": round(g.frame_seconds * 1e3, 2),
            "ms_ours": round(ours * 1e3, 2),
            "ms_scipy": round(theirs * 1e3, 2),
            "speedup": round(theirs / ours, 2),
            "x_realtime": round(g.frame_seconds / ours, 2),
            "threads": threads,
        })
    return rows


def bench_engines(model_path: str, engines: Sequence[str] = ("torch", "onnxruntime"),
                  compute: str = "auto", rate: float = 2.4e6, repeats: int = 10) -> list[dict]:
    """Frames per second of each engine on one model, against eager torch fp32 on the same
    device in the same run (the first row).

    Each engine is selected as ``prmnet-monitor --engine`` would (self-check included; torch on
    the CPU runs the model's compiled package where ``prmnet engine build --compute cpu`` made
    one); one the machine cannot run is listed with the reason.
    """
    from engines.backends.base import Runner
    from engines.backends.torch_runner import TorchRunner
    from engines.models import load_model
    from engines.selection import resolve_device, select_runner
    from monitor.errors import MonitorError

    loaded = load_model(model_path, rate)
    g = loaded.card.geometry
    x = torch.randn(1, loaded.card.in_chans, int(g["height"]), int(g["width"]))
    reference = TorchRunner(loaded.module, resolve_device(compute))
    runners: list[tuple[str, Runner | str]] = [("torch eager (reference)", reference)]
    for engine in engines:
        try:
            runners.append((engine, select_runner(loaded, engine=engine, compute=compute)))
        except MonitorError as exc:
            runners.append((engine, str(exc)))
    rows, first = [], None
    for label, runner in runners:
        if isinstance(runner, str):
            rows.append({"what": "engine", "engine": label, "note": runner})
            continue
        with runner:
            xd = x.to(runner.device)
            seconds = _median_seconds(lambda r=runner, xd=xd: _synchronized(r.infer(xd)),
                                      repeats)
        first = first or seconds
        compiled = " compiled" if runner.compiled else ""
        rows.append({
            "what": "engine",
            "engine": label if runner is reference else
            f"{runner.name}{compiled} {runner.precision} {runner.device}",
            "ms_per_frame": round(seconds * 1e3, 2),
            "frames_per_s": round(1 / seconds, 1),
            "vs_reference": round(first / seconds, 2),
        })
    return rows


#: Longest recording :func:`bench_replay` generates; longer runs loop it.
MAX_RECORDING_SECONDS = 2.0


def bench_replay(rate: float, seconds: float, model: Path, hop: int | None = None,
                 speed: float | None = None, live: bool = False) -> list[dict]:
    """End to end: a generated recording of ``seconds`` at ``rate`` replayed headless through
    the monitor (``speed`` None: as fast as it goes; 1: paced in real time), with its stats.
    Past ``MAX_RECORDING_SECONDS`` the recording is that long and replayed in a loop (each
    loop a break in the stream, as a looped replay is), which keeps a long run at 61.44 MS/s
    within memory and a minute of generating.
    ``live``: the replay stands for a radio, which cannot wait: processing that falls behind
    skips frames and drops the oldest samples, as with a radio (pace it with ``speed`` 1)."""
    from monitor.app import MonitorSettings, prepare_run
    from monitor.recordings import write_recording
    from monitor.synth.random_scene import draw_scene
    from monitor.synth.scene import render

    rng = np.random.default_rng(7)
    recorded = min(seconds, MAX_RECORDING_SECONDS)
    with tempfile.TemporaryDirectory() as tmp:
        scene = render(draw_scene(rng, rate, recorded), rng)
        path = write_recording(Path(tmp) / "bench.sigmf-meta", scene.iq, rate, 1.8e9)
        settings = MonitorSettings(replay=path, model=str(model), hop=hop, speed=speed,
                                   loop=seconds > recorded)
        with prepare_run(settings) as run:
            run.source.live = live
            run.pipeline.run(seconds)
            stats = run.finish().to_dict()
    return [{
        "what": "live replay" if live else "replay",
        "sample_rate": rate,
        "recording_s": recorded,
        "stream_s": stats["stream_seconds"],
        "wall_s": stats["wall_seconds"],
        "x_realtime": stats["realtime_factor"],
        "frames": stats["frames"],
        "segmented": stats["frames_segmented"],
        "dropped": stats["samples_dropped"],
        "engine": engine_text(stats),
    }]


def _synchronized(out: torch.Tensor) -> torch.Tensor:
    """``out`` once the device has computed it: CUDA work is queued, and a timer that does not
    wait for it times the queueing."""
    if out.is_cuda:
        torch.cuda.synchronize(out.device)
    return out


def _median_seconds(call: Callable[[], object], repeats: int) -> float:
    with torch.inference_mode():
        call()
        call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def format_table(rows: Sequence[dict]) -> str:
    """A plain text table of benchmark rows (columns: every key, in order of appearance)."""
    if not rows:
        return "(no results)"
    keys = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[str(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    line = "  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([line, "-" * len(line), *body])

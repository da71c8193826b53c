"""Training data sets of random scenes, written as memory-mappable shards.

Layout of ``OUT_DIR``::

    dataset.json            what was asked for: frames, rates, SNR range, seed, geometry per rate,
                            the scene distribution, the shard size, the software version
    shard-00000/
        images.npy          float16 (n, height, width): spectrogram rows in dBFS
        labels.npy          uint8 (n, height, width): class mask (reference convention)
        energy.npy          uint8 (n, height, width): where energy was actually sent
        frames.jsonl        one line per frame: index, sample rate, receiver, carriers' truth
    shard-00001/ ...

Why this format: plain ``.npy`` files open with ``np.load(mmap_mode="r")``, so a training loader
reads any frame without decoding or loading a shard, and torch takes them without a copy; images
are kept in dBFS (not normalised) so the network's input scaling can change without generating
again; a shard is written to a temporary folder and renamed when complete, so an interrupted run
resumes where it stopped and never leaves a half shard. Frame i is drawn from
``SeedSequence([seed, i])`` alone, so the bytes do not depend on the number of workers or on
which shards already existed.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import shlex
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from monitor import __version__
from monitor.dsp.geometry import Geometry
from monitor.dsp.spectrogram import Spectrogram
from monitor.synth.random_scene import (
    REFERENCE_MIN_RATE,
    SCENES,
    SceneDistribution,
    draw_reference_scene,
    draw_scene,
)
from monitor.synth.scene import Scene, SceneSpec, render
from monitor.synth.truth import class_mask, energy_mask, ssbs_in_view

__all__ = ["DatasetRequest", "FrameIq", "frame_iq", "generate_dataset", "read_request",
           "render_frame"]

SHARD_SIZE = 64

#: A rendered frame: dB image, class mask, energy mask, metadata (with its ``index``).
Frame = tuple[np.ndarray, np.ndarray, np.ndarray, dict]


@dataclass(frozen=True)
class DatasetRequest:
    """What a data set holds; written to ``dataset.json``."""

    frames: int
    rates: tuple[float, ...]
    snr_db: tuple[float, float] = (-10.0, 30.0)
    seed: int = 0
    shard_size: int = SHARD_SIZE
    scenes: str = "monitor"

    def __post_init__(self) -> None:
        if self.scenes not in SCENES:
            raise ValueError(f"unknown scenes {self.scenes!r}: use {' or '.join(SCENES)}")
        if self.scenes == "reference" and min(self.rates) < REFERENCE_MIN_RATE:
            raise ValueError(f"reference scenes need rates of {REFERENCE_MIN_RATE / 1e6:.1f} MS/s "
                             "or more: an NR and an LTE carrier side by side")

    def rate_of(self, index: int) -> float:
        return self.rates[index % len(self.rates)]

    def command(self, out_dir: str | Path) -> str:
        """The ``prmnet synth dataset`` command line that makes this data set in ``out_dir``."""
        rates = ",".join(f"{r / 1e6:g}e6" for r in self.rates)
        snr = ("" if self.snr_db == DatasetRequest.snr_db
               else f" --snr={self.snr_db[0]:g}:{self.snr_db[1]:g}")
        scenes = "" if self.scenes == DatasetRequest.scenes else f" --scenes {self.scenes}"
        return (f"prmnet synth dataset {shlex.quote(str(out_dir))} --frames {self.frames} "
                f"--rates {rates}{snr} --seed {self.seed}{scenes}")


def read_request(folder: str | Path) -> DatasetRequest | None:
    """The request a ``prmnet synth dataset`` folder was made from, or None where the folder
    holds no readable ``dataset.json`` (another layout, or none)."""
    try:
        request = json.loads((Path(folder) / "dataset.json").read_text())["request"]
        return DatasetRequest(int(request["frames"]), tuple(map(float, request["rates"])),
                              (float(request["snr_db"][0]), float(request["snr_db"][1])),
                              int(request["seed"]), int(request["shard_size"]),
                              str(request.get("scenes", DatasetRequest.scenes)))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def render_frame(index: int, request: DatasetRequest) -> Frame:
    """Frame ``index`` of a data set: dB image, class mask, energy mask and its metadata."""
    spec, scene, geometry = _render_scene(index, request)
    spectrogram = Spectrogram(geometry)
    image = spectrogram.frame(scene.iq[: geometry.frame_samples]).numpy()
    meta = {
        "index": index,
        "sample_rate": request.rate_of(index),
        "receiver": spec.receiver,
        "carriers": [asdict(c) for c in scene.carriers],
    }
    return (
        image.astype(np.float16),
        class_mask(scene, geometry),
        energy_mask(scene, geometry),
        meta,
    )


class FrameIq(NamedTuple):
    """A frame's IQ rendered again, with what a cell search of it should find."""

    samples: np.ndarray
    #: Per carrier, in the order of the frame's metadata: the SSBs it sent whole in view
    #: (:func:`monitor.synth.truth.ssbs_in_view`; 0 for LTE).
    ssbs_in_view: list[int]


def frame_iq(index: int, request: DatasetRequest) -> FrameIq:
    """Frame ``index`` of a data set rendered again (the same request and index give the same
    samples)."""
    _, scene, geometry = _render_scene(index, request)
    return FrameIq(scene.iq[: geometry.frame_samples],
                   [ssbs_in_view(placed, geometry) for placed in scene.sent])


def _render_scene(index: int, request: DatasetRequest) -> tuple[SceneSpec, Scene, Geometry]:
    """Frame ``index``'s scene, drawn and rendered from its own seed."""
    rng = np.random.default_rng(np.random.SeedSequence([request.seed, index]))
    rate = request.rate_of(index)
    geometry = Geometry.for_rate(rate)
    if request.scenes == "reference":
        spec = draw_reference_scene(rng, rate, geometry.frame_seconds, request.snr_db)
    else:
        spec = draw_scene(rng, rate, geometry.frame_seconds,
                          SceneDistribution(snr_db=request.snr_db))
    return spec, render(spec, rng), geometry


def generate_dataset(
    out_dir: str | Path, request: DatasetRequest, workers: int | None = None, progress: bool = True
) -> Path:
    """Write (or finish writing) a data set; return its folder.

    An existing folder must hold the same request, but for the number of frames (frame i does
    not depend on it): shards already complete are kept, so a data set can also be grown or cut
    short at a shard boundary.

    Raises:
        ValueError: if ``out_dir`` holds a data set made from another request.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "dataset.json"
    description = _describe(request)
    if manifest.exists():
        existing = json.loads(manifest.read_text())
        if _identity(existing.get("request", {})) != _identity(description["request"]):
            raise ValueError(f"{out} holds a different data set; choose another folder")
    manifest.write_text(json.dumps(description, indent=2) + "\n")
    n_shards = math.ceil(request.frames / request.shard_size)
    todo = [k for k in range(n_shards) if not _shard_complete(out, k, request)]
    done_frames = sum(_shard_frames(k, request) for k in range(n_shards) if k not in todo)
    jobs = [(i, request) for k in todo for i in _shard_indices(k, request)]
    workers = min(workers or os.cpu_count() or 1, max(len(jobs), 1))
    bar = tqdm(total=request.frames, initial=done_frames, unit="frame", disable=not progress,
               desc="synth dataset")
    with contextlib.ExitStack() as stack:
        if workers == 1:
            rendered: Iterable[Frame] = map(_render, jobs)
        else:
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(
                workers, initializer=_init_worker))
            rendered = pool.imap_unordered(_render, jobs)
        _write_shards(out, request, rendered, bar)
    bar.close()
    return out


def _write_shards(out: Path, request: DatasetRequest, rendered: Iterable[Frame],
                  bar: tqdm) -> None:
    """Gather frames, in whatever order they come, into their shards; write each shard as its
    last frame arrives. A job is one frame, not a shard, so every worker stays busy to the end
    also where the shards are few beside the workers (1,024 frames are 16 shards, which 15
    workers would make in two rounds); a shard stays in memory only while one of its frames is
    still being rendered."""
    open_shards: dict[int, dict[int, Frame]] = {}
    for frame in rendered:
        index = frame[3]["index"]
        k = index // request.shard_size
        shard = open_shards.setdefault(k, {})
        shard[index] = frame
        bar.update(1)
        if len(shard) == _shard_frames(k, request):
            _write_shard(out, k, [shard[i] for i in sorted(shard)])
            del open_shards[k]


def _describe(request: DatasetRequest) -> dict:
    return {
        "format": "prmnet-shards/1",
        "software": f"prmnet-monitor {__version__}",
        "request": {**asdict(request), "rates": list(request.rates),
                    "snr_db": list(request.snr_db)},
        "classes": ["noise", "LTE", "NR"],
        "distribution": (asdict(SceneDistribution(snr_db=request.snr_db))
                         if request.scenes == "monitor" else {"recipe": request.scenes}),
        "geometry": {str(r): Geometry.for_rate(r).to_dict() for r in request.rates},
    }


def _identity(request: dict) -> dict:
    """What makes frame i what it is: the request less its length (a request written before
    there was a choice of scenes drew the monitor's)."""
    return {"scenes": DatasetRequest.scenes,
            **{k: v for k, v in request.items() if k != "frames"}}


def _shard_name(k: int) -> str:
    return f"shard-{k:05d}"


def _shard_complete(out: Path, k: int, request: DatasetRequest) -> bool:
    """Shard k exists with every frame the request gives it (a data set cut short at a
    partial shard and grown again rewrites that shard)."""
    images = out / _shard_name(k) / "images.npy"
    if not images.is_file():
        return False
    return np.load(images, mmap_mode="r").shape[0] == _shard_frames(k, request)


def _shard_frames(k: int, request: DatasetRequest) -> int:
    return min(request.shard_size, request.frames - k * request.shard_size)


def _shard_indices(k: int, request: DatasetRequest) -> range:
    first = k * request.shard_size
    return range(first, first + _shard_frames(k, request))


def _init_worker() -> None:
    torch.set_num_threads(1)


def _render(job: tuple[int, DatasetRequest]) -> Frame:
    return render_frame(*job)


def _write_shard(out: Path, k: int, frames: list[Frame]) -> None:
    tmp = out / f".{_shard_name(k)}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for j, name in enumerate(("images", "labels", "energy")):
        np.save(tmp / f"{name}.npy", np.stack([f[j] for f in frames]))
    with open(tmp / "frames.jsonl", "w") as fh:
        for f in frames:
            fh.write(json.dumps(f[3]) + "\n")
    final = out / _shard_name(k)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)

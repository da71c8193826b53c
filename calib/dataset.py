"""Calibration frames: generator scenes (and optionally a user's recordings) as network inputs.

A calibration set is a folder::

    inputs.npy      float32 (n, 1, height, width): network inputs, exactly what the network
                    sees live (monitor.dsp.spectrogram.network_input of dBFS frames)
    manifest.json   format prmnet-calib-set/1, the recipe's SHA-256, the frames' sources

One array of network inputs is what ONNX Runtime's ``CalibrationDataReader`` hands the
quantizer, one ``{"spectrogram": inputs[i:i+1]}`` at a time (:func:`calibration_feeds`). The
generator frames are those of :func:`monitor.synth.dataset.render_frame` with the recipe's rates,
SNR range and seed; the folder is reused when its manifest matches what is asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from calib.recipe import Recipe
from engines.export import INPUT_NAME, write_atomic
from monitor import __version__
from monitor.dsp.geometry import Geometry
from monitor.dsp.spectrogram import Spectrogram, network_input
from monitor.errors import InputError
from monitor.sources.files import open_recording
from monitor.synth.dataset import DatasetRequest, generate_dataset, render_frame
from monitor.train.cards import ModelCard

__all__ = ["CALIB_FORMAT", "calibration_feeds", "make_test_set", "read_calibration_set",
           "write_calibration_set"]

CALIB_FORMAT = "prmnet-calib-set/1"


def write_calibration_set(recipe: Recipe, card: ModelCard, out_dir: str | Path,
                          recordings: Sequence[Path] = (), progress: bool = False) -> Path:
    """Make (or reuse) the calibration set the recipe asks for, for ``card``'s model.

    Args:
        recipe: what to make.
        card: the model's card (one input channel, the generator's 256 x 256 geometry).
        out_dir: the folder.
        recordings: SigMF recordings (``.sigmf-meta``) to add frames from.
        progress: show a progress bar.

    Returns:
        ``out_dir``.

    Raises:
        InputError: for a model the generator's frames do not fit, or a recording that cannot
            be read.
    """
    out = Path(out_dir)
    _check_card(card, recipe)
    manifest = {
        "format": CALIB_FORMAT,
        "software": f"prmnet-monitor {__version__}",
        "recipe_sha256": recipe.sha256,
        "generator_frames": recipe.count,
        "recordings": [str(p) for p in recordings],
        "frames_per_recording": recipe.frames_per_recording if recordings else 0,
    }
    existing = out / "manifest.json"
    if existing.is_file() and (out / "inputs.npy").is_file():
        try:
            written = json.loads(existing.read_text())
            if {k: v for k, v in written.items() if k != "shape"} == manifest:
                return out
        except ValueError:
            pass
    request = DatasetRequest(frames=recipe.count, rates=recipe.rates, snr_db=recipe.snr_db,
                             seed=recipe.seed)
    frames = [network_input(torch.from_numpy(render_frame(i, request)[0].astype(np.float32)))
              for i in tqdm(range(recipe.count), desc="calibration frames", unit="frame",
                            disable=not progress)]
    for path in recordings:
        frames += _recording_frames(path, card, recipe.frames_per_recording)
    inputs = torch.stack(frames).numpy().astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".inputs.npy.tmp"
    with open(tmp, "wb") as fh:
        np.save(fh, inputs)
    tmp.replace(out / "inputs.npy")
    write_atomic(existing, (json.dumps({**manifest, "shape": list(inputs.shape)}, indent=2)
                            + "\n").encode())
    return out


def read_calibration_set(folder: str | Path) -> np.ndarray:
    """The network inputs of a calibration set, (n, 1, height, width) float32.

    Raises:
        InputError: for a folder that is not a calibration set.
    """
    path = Path(folder) / "inputs.npy"
    try:
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
        inputs = np.load(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder} is not a calibration set: {exc}") from None
    if manifest.get("format") != CALIB_FORMAT or inputs.ndim != 4 or inputs.dtype != np.float32:
        raise InputError(f"{folder} is not a {CALIB_FORMAT} calibration set")
    return inputs


def calibration_feeds(inputs: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    """The quantizer's feeds: one frame at a time, as the graph's input."""
    for i in range(len(inputs)):
        yield {INPUT_NAME: np.ascontiguousarray(inputs[i:i + 1])}


def make_test_set(recipe: Recipe, out_dir: str | Path, workers: int | None = None,
                  progress: bool = False) -> Path:
    """The recipe's synthetic test set (a ``prmnet synth dataset`` folder, resumable)."""
    request = DatasetRequest(frames=recipe.test_count, rates=recipe.rates,
                             snr_db=recipe.snr_db, seed=recipe.test_seed)
    return generate_dataset(out_dir, request, workers=workers, progress=progress)


def _check_card(card: ModelCard, recipe: Recipe) -> None:
    if card.in_chans != 1:
        raise InputError(f"{card.model} takes {card.in_chans}-channel pictures; calibration "
                         "serves one-channel spectrogram models")
    for rate in recipe.rates:
        if card.geometry_for(rate) != Geometry.for_rate(rate):
            raise InputError(f"{card.model}'s geometry at {rate / 1e6:g} MS/s is not the "
                             "generator's (256x256, 40 ms frames), which calibration needs")


def _recording_frames(path: Path, card: ModelCard, count: int) -> list[torch.Tensor]:
    """Up to ``count`` consecutive whole frames of a recording, as network inputs."""
    rec = open_recording(path)
    geometry = card.geometry_for(rec.sample_rate)
    spectrogram = Spectrogram(geometry)
    n = min(count, len(rec) // geometry.frame_samples)
    if n == 0:
        raise InputError(f"{path} is shorter than one frame ({geometry.frame_samples} samples)")
    return [network_input(spectrogram.frame(rec.read(k * geometry.frame_samples,
                                                     geometry.frame_samples)))
            for k in range(n)]

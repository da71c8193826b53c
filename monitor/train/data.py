"""Frames for training and evaluation: shard folders and the authors' PNG layout.

Two kinds of frame set, opened by :func:`open_frames` from the folders a user names:

- :class:`ShardFrames`: folders written by ``prmnet synth dataset`` (a ``dataset.json`` and
  ``shard-NNNNN/`` folders). The arrays are memory-mapped, so opening 20,000 frames reads only
  their metadata; an item is the network input made by
  :func:`monitor.dsp.spectrogram.network_input` from the dBFS frame, the class mask and the
  frame's metadata (sample rate, receiver, the carriers' truth). Frames still being generated
  (temporary shard folders) are not seen. The class mask is the reference convention
  (``truth="channel"``: a carrier's whole channel while it is on) or what was sent
  (``truth="sent"``: the same with every carrier that sent nothing in the frame made noise,
  :func:`monitor.synth.truth.silent_as_noise`).
- :class:`PngFrames`: the PRMNet authors' layout (``input/`` and ``label/`` folders of RGB PNGs
  with the same names, e.g. ``trainSet`` or ``testSet``). Labels are decoded by nearest colour
  (LTE (2, 0, 0), NR (127, 0, 0), Noise (200, 161, 159)) into our class order; both images are
  resized (nearest) to 256x256; the input is the RGB picture in [0, 1], 3 channels.

For training, :class:`AugmentedFrames` draws augmentations (:mod:`monitor.train.augment`) from a
generator seeded by ``(seed, draw)``, and :class:`StepBatches` makes the batch of every step a
fixed function of the seed and the step, so a resumed run sees exactly the batches an
uninterrupted one would, whatever the number of loader workers.
"""

from __future__ import annotations

import json
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from monitor.dsp.geometry import Geometry
from monitor.dsp.spectrogram import network_input
from monitor.errors import InputError
from monitor.synth.dataset import FrameIq, frame_iq, read_request
from monitor.synth.truth import silent_as_noise
from monitor.train.augment import AugmentConfig, augment_frame

__all__ = [
    "PNG_COLOURS",
    "TRUTHS",
    "AugmentedFrames",
    "FrameSet",
    "PngFrames",
    "ShardFrames",
    "StepBatches",
    "collate",
    "holdout_split",
    "open_frames",
]

SHARD_FORMAT = "prmnet-shards/1"
TRUTHS = ("channel", "sent")
PNG_SIZE = 256
PNG_COLOURS: dict[int, tuple[int, int, int]] = {
    0: (200, 161, 159),
    1: (2, 0, 0),
    2: (127, 0, 0),
}
"""Colour of each class (0 noise, 1 LTE, 2 NR) in the authors' label PNGs."""

Sample = tuple[torch.Tensor, torch.Tensor, dict[str, Any]]


class FrameSet(Dataset, ABC):
    """Frames as stored (:meth:`raw`) and as the network takes them (items).

    An item is ``(input, label, meta)``: input float32 (in_chans, H, W), label int64 (H, W) with
    the class of every pixel, meta a dict describing the frame.
    """

    in_chans: int
    radio: bool
    """Whether :meth:`raw` gives dBFS spectrograms (so radio augmentations apply)."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of frames."""

    @abstractmethod
    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Frame ``index`` as stored: image, class mask (uint8) and metadata."""

    @abstractmethod
    def to_input(self, image: np.ndarray) -> torch.Tensor:
        """The network input (in_chans, H, W) from an image as :meth:`raw` gives it."""

    @abstractmethod
    def describe(self) -> list[dict[str, Any]]:
        """What the frames are, for a model card: one entry per folder."""

    @abstractmethod
    def keys(self) -> list[tuple[int, int]]:
        """An identity per frame that does not depend on its position (see holdout_split)."""

    def energy(self, index: int) -> np.ndarray | None:
        """Frame ``index``'s energy mask (where each carrier sent something), None where the
        data set has none."""
        return None

    def rate(self, index: int) -> float | None:
        """Frame ``index``'s sample rate, None where the data set does not say."""
        return None

    def samples(self, index: int) -> np.ndarray | None:
        """Frame ``index``'s IQ samples, None where the data set cannot give them."""
        return None

    def ssbs_in_view(self, index: int) -> list[int] | None:
        """Per carrier of frame ``index`` (in the order of its metadata), how many SSBs it sent
        whole in view (0 for LTE); None where the data set cannot say."""
        return None

    def __getitem__(self, index: int) -> Sample:
        image, mask, meta = self.raw(index)
        return self.to_input(image), torch.from_numpy(mask.astype(np.int64)), meta


class ShardFrames(FrameSet):
    """The frames of one or more ``prmnet synth dataset`` folders, memory-mapped.

    Args:
        dirs: data set folders; their frames are concatenated in the order given.
        truth: the class masks :meth:`raw` gives, one of TRUTHS (see the module docstring).

    Raises:
        InputError: if a folder is not a data set, holds no complete shard, or a shard is
            inconsistent.
    """

    in_chans = 1
    radio = True

    def __init__(self, dirs: Sequence[str | Path], truth: str = "channel") -> None:
        if truth not in TRUTHS:
            raise InputError(f"truth must be one of {', '.join(TRUTHS)}, got {truth!r}")
        self.truth = truth
        self.dirs = [Path(d) for d in dirs]
        self.manifests = [_read_manifest(d) for d in self.dirs]
        self._shards: list[Path] = []
        self.metas: list[dict[str, Any]] = []
        self._folder_frames = [0] * len(self.dirs)
        starts = [0]
        for i, d in enumerate(self.dirs):
            for shard in sorted(p for p in d.glob("shard-*") if p.is_dir()):
                metas = _read_metas(shard)
                self._shards.append(shard)
                self.metas.extend(metas)
                starts.append(starts[-1] + len(metas))
                self._folder_frames[i] += len(metas)
        if not self._shards:
            raise InputError(f"no complete shard in {', '.join(map(str, self.dirs))} yet")
        self._starts = np.asarray(starts)
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
        self._rendered: tuple[int, FrameIq | None] | None = None

    def __len__(self) -> int:
        return int(self._starts[-1])

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} of {len(self)}")
        k, j = self._locate(index)
        images, labels, _ = self._open(k)
        mask, meta = np.asarray(labels[j]), self.metas[index]
        if self.truth == "sent":
            energy = self.energy(index)
            if energy is None:
                raise InputError(f"shard {self._shards[k]} has no energy.npy, which truth "
                                 f"'sent' needs; generate it again")
            geometry = Geometry.for_rate(meta["sample_rate"], mask.shape[1], mask.shape[0])
            mask = silent_as_noise(mask, energy, meta["carriers"], geometry)
        return np.asarray(images[j], dtype=np.float32), mask, meta

    def to_input(self, image: np.ndarray) -> torch.Tensor:
        return network_input(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)))

    def rate(self, index: int) -> float | None:
        return float(self.metas[index]["sample_rate"])

    def samples(self, index: int) -> np.ndarray | None:
        """Frame ``index``'s IQ, rendered again from its folder's request (a few tenths of a
        second a frame); None for a folder without one."""
        rendered = self._render(index)
        return None if rendered is None else rendered.samples

    def ssbs_in_view(self, index: int) -> list[int] | None:
        rendered = self._render(index)
        return None if rendered is None else rendered.ssbs_in_view

    def _render(self, index: int) -> FrameIq | None:
        """Frame ``index`` rendered again from its folder's request, None for a folder without
        one; the last one is kept, as the evaluation asks for its samples and its SSBs in turn."""
        if self._rendered is None or self._rendered[0] != index:
            folder = int(np.searchsorted(np.cumsum(self._folder_frames), index, side="right"))
            request = read_request(self.dirs[folder])
            self._rendered = (index, None if request is None else
                              frame_iq(int(self.metas[index]["index"]), request))
        return self._rendered[1]

    def energy(self, index: int) -> np.ndarray | None:
        k, j = self._locate(index)
        energy = self._open(k)[2]
        return None if energy is None else np.asarray(energy[j])

    def sample_rates(self) -> list[float]:
        """The sample rates the data sets were drawn at."""
        return sorted({float(r) for m in self.manifests for r in m["request"]["rates"]})

    def seeds(self) -> list[int]:
        """The seeds the data sets were drawn with."""
        return [int(m["request"]["seed"]) for m in self.manifests]

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "path": str(d),
                "format": m["format"],
                "frames_present": count,
                "request": m["request"],
                "software": m.get("software"),
            }
            for d, m, count in zip(self.dirs, self.manifests, self._folder_frames, strict=True)
        ]

    def keys(self) -> list[tuple[int, int]]:
        """(data set seed, frame index): frame i of a data set is drawn from exactly these."""
        seeds = self.seeds()
        folders = np.repeat(np.arange(len(self.dirs)), self._folder_frames)
        return [(seeds[f], int(m["index"])) for f, m in zip(folders, self.metas, strict=True)]

    def _locate(self, index: int) -> tuple[int, int]:
        """(shard, frame within it) of frame ``index``."""
        k = int(np.searchsorted(self._starts, index, side="right")) - 1
        return k, index - int(self._starts[k])

    def _open(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Shard ``k``'s images, labels and energy masks (None where it has none),
        memory-mapped once."""
        if k not in self._arrays:
            shard = self._shards[k]
            energy_path = shard / "energy.npy"
            try:
                images = np.load(shard / "images.npy", mmap_mode="r")
                labels = np.load(shard / "labels.npy", mmap_mode="r")
                energy = (np.load(energy_path, mmap_mode="r") if energy_path.is_file()
                          else None)
            except (OSError, ValueError) as exc:
                raise InputError(f"cannot read shard {shard}: {exc}") from None
            count = int(self._starts[k + 1] - self._starts[k])
            if images.ndim != 3 or images.shape != labels.shape or images.shape[0] != count:
                raise InputError(
                    f"shard {shard} is inconsistent: images {images.shape}, labels "
                    f"{labels.shape}, {count} lines in frames.jsonl; generate it again"
                )
            self._arrays[k] = (images, labels, energy)
        return self._arrays[k]

    def __getstate__(self) -> dict[str, Any]:
        # Memory maps are reopened in each loader worker rather than copied into it.
        return {**self.__dict__, "_arrays": {}, "_rendered": None}


class PngFrames(FrameSet):
    """The authors' PNG layout: ``ROOT/input/NAME.png`` with ``ROOT/label/NAME.png``.

    Args:
        dirs: one or more such roots (e.g. ``.../trainSet``).

    Raises:
        InputError: if a root lacks the two folders, or an input has no label.
    """

    in_chans = 3
    radio = False

    def __init__(self, dirs: Sequence[str | Path]) -> None:
        self.dirs = [Path(d) for d in dirs]
        self.pairs: list[tuple[Path, Path]] = []
        for root in self.dirs:
            inputs = sorted((root / "input").glob("*.png"))
            if not inputs:
                raise InputError(f"no PNG in {root / 'input'}")
            for path in inputs:
                label = root / "label" / path.name
                if not label.is_file():
                    raise InputError(f"{path} has no label {label}")
                self.pairs.append((path, label))

    def __len__(self) -> int:
        return len(self.pairs)

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        image_path, label_path = self.pairs[index]
        image = _resize_nearest(_read_rgb(image_path), PNG_SIZE)
        label = _resize_nearest(_read_rgb(label_path), PNG_SIZE)
        return (
            np.moveaxis(image, -1, 0).astype(np.float32) / 255.0,
            decode_label(label),
            {"index": index, "file": image_path.name},
        )

    def to_input(self, image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"path": str(d), "format": "authors-png",
             "frames_present": sum(1 for p, _ in self.pairs if p.parents[1] == d)}
            for d in self.dirs
        ]

    def keys(self) -> list[tuple[int, int]]:
        """(0, CRC-32 of the file name)."""
        return [(0, zlib.crc32(p.name.encode())) for p, _ in self.pairs]


def decode_label(rgb: np.ndarray) -> np.ndarray:
    """Class mask (uint8) of an authors' label picture (H, W, 3) of 0-255 values, nearest colour."""
    colours = np.asarray([PNG_COLOURS[c] for c in sorted(PNG_COLOURS)], dtype=np.float32)
    distance = ((rgb[..., None, :].astype(np.float32) - colours) ** 2).sum(axis=-1)
    return distance.argmin(axis=-1).astype(np.uint8)


def open_frames(dirs: Sequence[str | Path], truth: str = "channel") -> FrameSet:
    """The frames of the folders named, shards or the authors' PNG layout (not a mix), with
    the class masks of ``truth`` (see the module docstring; the authors' have only "channel").

    Raises:
        InputError: for a folder that is neither, a mix of the two, or a truth they lack.
    """
    if not dirs:
        raise InputError("no data folder given")
    kinds = {_kind(Path(d)) for d in dirs}
    if len(kinds) > 1:
        raise InputError("data folders mix prmnet shards and the authors' PNG layout")
    if kinds == {"shards"}:
        return ShardFrames(dirs, truth)
    if truth != "channel":
        raise InputError(f"the authors' pictures have channel labels only, not truth {truth!r}")
    return PngFrames(dirs)


def holdout_split(frames: FrameSet, fraction: float) -> tuple[list[int], list[int]]:
    """Split frame positions into (training, held out) by a hash of each frame's identity.

    A frame is held out by its identity (:meth:`FrameSet.keys`: for shards, its data set's seed
    and its index within that set), not by its position, so the split does not depend on which
    shards exist yet or on the order of the folders.
    """
    train: list[int] = []
    held: list[int] = []
    for position, key in enumerate(frames.keys()):
        (held if _unit_hash(*key) < fraction else train).append(position)
    return train, held


class AugmentedFrames(Dataset):
    """Training items: frames of a set, augmented reproducibly.

    An item key is ``(position, draw)``: the frame ``indices[position]``, augmented with a
    generator seeded by ``(seed, draw)``.

    Args:
        frames: the frame set.
        indices: the frames of ``frames`` to train on.
        augment: the augmentations; None for none.
        seed: the run's seed.
    """

    def __init__(
        self,
        frames: FrameSet,
        indices: Sequence[int],
        augment: AugmentConfig | None,
        seed: int,
    ) -> None:
        self.frames = frames
        self.indices = list(indices)
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: tuple[int, int]) -> Sample:
        position, draw = key
        image, mask, meta = self.frames.raw(self.indices[position])
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, draw])
            image, mask = augment_frame(image, mask, rng, self.augment, self.frames.radio)
        label = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.int64))
        return self.frames.to_input(image), label, meta


class StepBatches(Sampler[list[tuple[int, int]]]):
    """Batches of ``AugmentedFrames`` keys for steps ``start`` to ``stop - 1``.

    The items form one stream: item ``k`` (of step ``k // batch_size``) is position
    ``perm_e[k % n]`` of epoch ``e = k // n``, where ``perm_e`` is a permutation drawn from
    ``(seed, e)``, and its augmentation draw is ``k``. So the batch of a step depends on nothing
    but the seed and the step.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int) -> None:
        if n <= 0 or batch_size <= 0:
            raise ValueError(f"need frames and a positive batch size, got {n}, {batch_size}")
        self.n = n
        self.batch_size = batch_size
        self.seed = seed
        self.start = start
        self.stop = stop
        self._perm: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            first = step * self.batch_size
            yield [(self._position(k), k) for k in range(first, first + self.batch_size)]

    def _position(self, k: int) -> int:
        epoch = k // self.n
        if self._perm is None or self._perm[0] != epoch:
            generator = torch.Generator().manual_seed(_unit_seed(self.seed, epoch))
            self._perm = (epoch, torch.randperm(self.n, generator=generator))
        return int(self._perm[1][k % self.n])


def collate(items: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
    """Stack inputs and labels; keep the metadata as a list."""
    inputs, labels, metas = zip(*items, strict=True)
    return torch.stack(inputs), torch.stack(labels), list(metas)


def _kind(path: Path) -> str:
    if (path / "dataset.json").is_file():
        return "shards"
    if (path / "input").is_dir() and (path / "label").is_dir():
        return "png"
    if (path / "trainSet").is_dir() or (path / "testSet").is_dir():
        raise InputError(f"{path} holds trainSet/testSet: name one of them, e.g. {path}/testSet")
    if not path.exists():
        raise InputError(f"no such data folder: {path}")
    raise InputError(
        f"{path} is not a data set: expected a dataset.json (prmnet synth dataset) or input/ and "
        f"label/ folders of PNGs (the authors' layout)"
    )


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((folder / "dataset.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {folder / 'dataset.json'}: {exc}") from None
    if manifest.get("format") != SHARD_FORMAT:
        raise InputError(f"{folder} holds {manifest.get('format')!r}, not {SHARD_FORMAT!r} data")
    return manifest


def _read_metas(shard: Path) -> list[dict[str, Any]]:
    try:
        with open(shard / "frames.jsonl") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {shard / 'frames.jsonl'}: {exc}") from None


def _read_rgb(path: Path) -> np.ndarray:
    """An RGB(A) PNG as (H, W, 3) 0-255 values."""
    from matplotlib import image as mpimg

    try:
        pixels = mpimg.imread(path, format="png")
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"cannot read PNG {path}: {exc}") from None
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    rgb = pixels[..., :3]
    if rgb.dtype.kind == "f":
        rgb = np.rint(rgb * 255.0)
    return rgb.astype(np.uint8)


def _resize_nearest(image: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of (H, W, ...) to (size, size, ...)."""
    rows = np.minimum((np.arange(size) + 0.5) * image.shape[0] / size, image.shape[0] - 1)
    cols = np.minimum((np.arange(size) + 0.5) * image.shape[1] / size, image.shape[1] - 1)
    return image[rows.astype(np.int64)][:, cols.astype(np.int64)]


def _unit_hash(a: int, b: int) -> float:
    """A number in [0, 1) that looks random but depends only on ``(a, b)`` (splitmix64)."""
    return _splitmix(_splitmix(a) ^ b) / 2.0**64


def _unit_seed(a: int, b: int) -> int:
    """A 63-bit seed from two integers."""
    return _splitmix(_splitmix(a) ^ b) >> 1


def _splitmix(x: int) -> int:
    mask = (1 << 64) - 1
    x = (x + 0x9E3779B97F4A7C15) & mask
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
    return x ^ (x >> 31)


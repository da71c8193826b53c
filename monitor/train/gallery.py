"""The report's gallery: the test frames the first model gets most wrong where SNR is no excuse.

Tables say how much is wrong; a reader also wants to see what. :func:`frame_miou` scores every
test frame whose strongest carrier is at least ``MIN_SNR_DB`` above the floor (the evaluation
keeps these scores, :attr:`monitor.train.evaluate.EvalResult.frame_scores`); :func:`pick_frames`
takes the first model's lowest; every model segments those same frames
(:meth:`Gallery.add`), and :func:`plot_gallery` draws one row per frame: the network input, the
labels, then each model's classes. The same frames for every model show whether a better
model gets them right or whether no model does (a carrier the labels mark that sent nothing a
receiver could see).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engines.prmnet import CLASS_NAMES
from monitor.train.cards import ModelCard
from monitor.train.data import FrameSet
from monitor.train.loop import segment
from monitor.train.metrics import ConfusionMatrix

__all__ = ["MIN_SNR_DB", "Gallery", "frame_miou", "pick_frames", "plot_gallery"]

#: Frames whose strongest carrier is at least this far above the floor are scored.
MIN_SNR_DB = 20.0

#: Class colours: noise dark grey, LTE and NR in the waterfall's overlay colours
#: (:data:`monitor.gui.waterfall.CLASS_COLORS`, Okabe-Ito orange and sky blue).
COLOURS = ("#303030", "#e69f00", "#56b4e9")


def frame_miou(prediction: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean IoU of one frame over the classes in its labels or its prediction."""
    matrix = ConfusionMatrix()
    matrix.update(prediction, truth)
    return matrix.summary()["miou"]


def pick_frames(scores: dict[int, float], count: int) -> list[int]:
    """The ``count`` frames with the lowest scores (ties: the earlier frame first)."""
    return sorted(scores, key=lambda i: (scores[i], i))[:count]


@dataclass
class Gallery:
    """Frames of a test set and every model's classes on them.

    Attributes:
        indices: the frames' indices in the test set.
        inputs: each frame's network input, (height, width).
        labels: each frame's class mask.
        rates: each frame's sample rate (None where the test set does not say).
        captions: a line about each frame (sample rate, strongest carrier's SNR).
        predictions: model name -> each frame's classes (None: a rate the model does not
            serve).
    """

    indices: list[int]
    inputs: list[np.ndarray]
    labels: list[np.ndarray]
    rates: list[float | None]
    captions: list[str]
    predictions: dict[str, list[np.ndarray | None]] = field(default_factory=dict)

    @classmethod
    def of(cls, frames: FrameSet, indices: list[int], snrs: dict[int, float]) -> Gallery:
        """The frames ``indices`` of ``frames``; ``snrs``: their strongest carriers' SNR."""
        inputs, labels, rates, captions = [], [], [], []
        for i in indices:
            x, y, _ = frames[i]
            rate = frames.rate(i)
            inputs.append(x[0].numpy())
            labels.append(y.numpy())
            rates.append(rate)
            captions.append(f"frame {i}\n" + (f"{rate / 1e6:g} MS/s, " if rate else "")
                            + f"SNR {snrs[i]:.0f} dB")
        return cls(indices, inputs, labels, rates, captions)

    def add(self, name: str, model: nn.Module, card: ModelCard,
            device: torch.device | str = "cpu") -> None:
        """Segment the gallery's frames with ``model`` (those at rates its card serves)."""
        out: list[np.ndarray | None] = []
        for x, rate in zip(self.inputs, self.rates, strict=True):
            if rate is not None and not card.serves(rate):
                out.append(None)
                continue
            inputs = torch.from_numpy(x)[None, None].to(device)
            out.append(segment(model, inputs)[0].cpu().numpy())
        self.predictions[name] = out


def plot_gallery(gallery: Gallery, path: Path) -> None:
    """One row per frame: network input, labels, each model's classes (with its frame mean
    IoU)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    names = list(gallery.predictions)
    columns = 2 + len(names)
    fig = Figure(figsize=(1.7 * columns, 1.9 * len(gallery.indices) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(gallery.indices), columns, squeeze=False))
    classes = ListedColormap(COLOURS)
    for row, (x, y, caption) in enumerate(zip(gallery.inputs, gallery.labels,
                                              gallery.captions, strict=True)):
        axes[row, 0].imshow(x, cmap="viridis", interpolation="nearest", aspect="auto")
        axes[row, 0].set_title(caption, fontsize=7)
        panels = [(y, "labels")]
        for n in names:
            pred = gallery.predictions[n][row]
            score = ("rate not served" if pred is None else
                     f"{100 * frame_miou(torch.from_numpy(pred), torch.from_numpy(y)):.0f} %")
            panels.append((pred, f"{n}\n{score}"))
        for ax, (image, title) in zip(axes[row, 1:], panels, strict=True):
            if image is not None:
                ax.imshow(image, cmap=classes, vmin=0, vmax=len(COLOURS) - 1,
                          interpolation="nearest", aspect="auto")
            ax.set_title(title, fontsize=7)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.legend(handles=[Patch(color=c, label=n) for c, n in zip(COLOURS, CLASS_NAMES,
                                                                 strict=True)],
               loc="outside lower center", ncols=len(COLOURS), fontsize="small")
    fig.savefig(path, dpi=90)

"""Figures that show the generator against the real world.

:func:`compare_with_captures` puts spectrograms of real recordings beside generated scenes made to
resemble them, at the recordings' own rates, through the one spectrogram code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from monitor.dsp.geometry import Geometry
from monitor.dsp.spectrogram import Spectrogram
from monitor.sources.files import open_recording
from monitor.synth.scene import CarrierSpec, SceneSpec, render

__all__ = ["COMPARISONS", "compare_with_captures"]


@dataclass(frozen=True)
class Comparison:
    """A real recording and the generated scene set beside it."""

    recording: str
    scene: SceneSpec
    caption: str


def _scene(rate: float, receiver: str, *carriers: CarrierSpec) -> SceneSpec:
    return SceneSpec(rate, Geometry.for_rate(rate).frame_seconds, carriers, receiver=receiver)


COMPARISONS = (
    Comparison(
        "lte-fdd-1860-rtlsdr",
        _scene(1.92e6, "rtlsdr", CarrierSpec("LTE", 20e6, 2.3e6, 12.0,
                                             options={"load": 0.9, "n_ports": 2,
                                                      "load_steadiness": 40.0},
                                             channel="eva5")),
        "1.92 MS/s, RTL-SDR inside a 20 MHz FDD LTE carrier",
    ),
    Comparison(
        "lte-tdd-2585-rtlsdr",
        _scene(1.92e6, "rtlsdr", CarrierSpec("LTE", 20e6, -4.1e6, 18.0,
                                             options={"load": 0.3, "duplex": "tdd",
                                                      "tdd_config": 2}, channel="epa5")),
        "1.92 MS/s, RTL-SDR inside a 20 MHz TDD LTE carrier",
    ),
    Comparison(
        "lte-1815-hackrf",
        _scene(19.2e6, "hackrf", CarrierSpec("LTE", 20e6, 0.0, 14.0,
                                             options={"load": 0.1, "load_steadiness": 3.0},
                                             channel="etu70")),
        "19.2 MS/s, HackRF on a 20 MHz FDD LTE carrier",
    ),
    Comparison(
        "lte-2585-hackrf",
        _scene(19.2e6, "hackrf", CarrierSpec("LTE", 20e6, 0.0, 16.0,
                                             options={"load": 0.2, "duplex": "tdd",
                                                      "tdd_config": 2}, channel="eva5")),
        "19.2 MS/s, HackRF on a 20 MHz TDD LTE carrier",
    ),
    Comparison(
        "nr-n78-3502-usrp",
        _scene(46.08e6, "usrp", CarrierSpec("NR", 40e6, 2e6, 3.0, 30e3,
                                            options={"load": 0.05, "ssb_period_s": 0.005},
                                            channel="tdla30-10")),
        "46.08 MS/s, USRP on a weak 40 MHz n78 NR cell",
    ),
    Comparison(
        "nr-n1-2157-starhub",
        _scene(46.08e6, "usrp", CarrierSpec("NR", 25e6, 0.0, 20.0, 15e3,
                                            options={"load": 0.5}, channel="tdlc300-100")),
        "46.08 MS/s, a 25 MHz 15 kHz NR cell (1 ms recording)",
    ),
)


def _image(iq: np.ndarray, rate: float) -> np.ndarray:
    g = Geometry.for_rate(rate)
    rows = len(iq) // g.samples_per_row
    x = torch.from_numpy(np.ascontiguousarray(iq[: rows * g.samples_per_row]))
    return Spectrogram(g).rows(x).numpy()


def compare_with_captures(captures: Path, out: Path, seed: int = 0) -> Path:
    """Write a PNG: for each comparison, the real recording's spectrogram (as much of a 40 ms
    frame as it holds) beside a generated scene's, each on a colour scale from its own 2nd to
    99.5th percentile; absolute frequency across, time down."""
    fig, axes = plt.subplots(2, len(COMPARISONS), figsize=(3.1 * len(COMPARISONS), 7.2),
                             constrained_layout=True)
    rng = np.random.default_rng(seed)
    for col, comp in enumerate(COMPARISONS):
        rec = open_recording(captures / f"{comp.recording}.sigmf-meta")
        rate = rec.sample_rate
        g = Geometry.for_rate(rate)
        real = _image(rec.read(0, g.frame_samples), rate)
        made = _image(render(comp.scene, rng).iq, rate)[: len(real)]
        half = rate / 2e6
        extent_mhz = (rec.center_freq / 1e6 - half, rec.center_freq / 1e6 + half)
        for row, (image, title) in enumerate(((real, comp.recording), (made, "generated"))):
            ax = axes[row, col]
            lo, hi = np.percentile(image, [2, 99.5])
            ax.imshow(image, aspect="auto", cmap="viridis", vmin=lo, vmax=hi,
                      extent=(*extent_mhz, len(image) * g.row_seconds * 1e3, 0),
                      interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("MHz", fontsize=8)
            ax.tick_params(labelsize=7)
            if col == 0:
                ax.set_ylabel("ms", fontsize=8)
        axes[0, col].text(0.5, -0.16, comp.caption, transform=axes[0, col].transAxes,
                          ha="center", va="top", fontsize=7, wrap=True)
    fig.suptitle("Real recordings (top) and generated scenes made to resemble them (bottom)",
                 fontsize=11)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out

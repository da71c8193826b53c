"""Per-pixel truth of a scene at a spectrogram geometry.

Two masks per frame, both (height, width) uint8 with the class of every pixel (0 noise, 1 LTE,
2 NR, the order of ``engines.prmnet.CLASS_NAMES``):

- the class mask, in the reference convention: a carrier owns every pixel whose centre lies
  within its nominal channel bandwidth (centre +- BW/2), in every row whose centre time lies
  within its on-time, whether or not a resource element was sent there;
- the energy mask: a carrier owns the pixels where what it actually sent (before channel and
  receiver) has at least a tenth of the power of a fully loaded carrier (-10 dB), i.e. where
  resource elements were sent over at least about a tenth of the pixel.
"""

from __future__ import annotations

import numpy as np
import torch

from monitor.dsp.geometry import Geometry
from monitor.dsp.spectrogram import Spectrogram
from monitor.synth.scene import LABELS, Scene

__all__ = ["CLASS_INDEX", "ENERGY_FRACTION", "class_mask", "energy_mask"]

CLASS_INDEX = {label: i + 1 for i, label in enumerate(LABELS)}
ENERGY_FRACTION = 0.1


def class_mask(scene: Scene, geometry: Geometry, start_sample: int = 0) -> np.ndarray:
    """The reference-convention class mask of the frame starting at ``start_sample``."""
    mask = np.zeros((geometry.height, geometry.width), dtype=np.uint8)
    freqs = geometry.pixel_centres()
    row_samples = start_sample + (np.arange(geometry.height) + 0.5) * geometry.samples_per_row
    for carrier in scene.carriers:
        cols = (freqs >= carrier.freq_low_hz) & (freqs <= carrier.freq_high_hz)
        on_end = carrier.start_sample + carrier.sample_count
        rows = (row_samples >= carrier.start_sample) & (row_samples < on_end)
        mask[np.ix_(rows, cols)] = CLASS_INDEX[carrier.label]
    return mask


def energy_mask(
    scene: Scene, spectrogram: Spectrogram, start_sample: int = 0
) -> np.ndarray:
    """Where each carrier actually sent energy in the frame starting at ``start_sample``.

    Needs the scene rendered with ``keep_clean=True``.
    """
    g = spectrogram.geometry
    mask = np.zeros((g.height, g.width), dtype=np.uint8)
    stop = start_sample + g.frame_samples
    for carrier, sent in zip(scene.carriers, scene.clean, strict=True):
        power = spectrogram.power(torch.from_numpy(np.ascontiguousarray(sent[start_sample:stop])))
        # A fully loaded carrier's pixel holds snr * (noise power per pixel) = snr / width.
        full = 10 ** (carrier.snr_db / 10) / g.width
        mask[(power >= ENERGY_FRACTION * full).numpy()] = CLASS_INDEX[carrier.label]
    return mask

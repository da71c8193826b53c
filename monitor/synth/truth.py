"""Per-pixel truth of a scene at a spectrogram geometry.

Two masks per frame, both (height, width) uint8 with the class of every pixel (0 noise, 1 LTE,
2 NR, the order of ``engines.prmnet.CLASS_NAMES``):

- the class mask, in the reference convention: a carrier owns every pixel whose centre lies
  within its nominal channel bandwidth (centre +- BW/2), in every row whose centre time lies
  within its on-time, whether or not a resource element was sent there;
- the energy mask: a carrier owns the pixels where it sent resource elements over at least a
  tenth of the pixel's time-frequency area (energy-weighted: the pixel's share of a fully loaded
  carrier's energy is at least 0.1). It is computed from the grids as sent, before channel and
  receiver, so it says what the transmitter did, free of leakage, fading and noise.

:func:`silent_as_noise` joins the two: the class mask with every carrier that sent nothing in the
view during the frame (an idle NR cell between its SSBs, or whose SSB lies outside the view)
turned to noise, as no receiver can tell it from an empty channel.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np

from monitor.dsp.geometry import Geometry
from monitor.dsp.nr_sync import PSS_FIRST, PSS_LENGTH
from monitor.synth.ofdm import symbol_starts
from monitor.synth.scene import LABELS, PlacedGrid, Scene

__all__ = [
    "CLASS_INDEX",
    "ENERGY_FRACTION",
    "carrier_region",
    "class_mask",
    "energy_mask",
    "sent_fraction",
    "silent_as_noise",
    "ssbs_in_view",
]

CLASS_INDEX = {label: i + 1 for i, label in enumerate(LABELS)}
ENERGY_FRACTION = 0.1


def class_mask(scene: Scene, geometry: Geometry, start_sample: int = 0) -> np.ndarray:
    """The reference-convention class mask of the frame starting at ``start_sample``."""
    mask = np.zeros((geometry.height, geometry.width), dtype=np.uint8)
    for carrier in scene.carriers:
        mask[carrier_region(asdict(carrier), geometry, start_sample)] = CLASS_INDEX[carrier.label]
    return mask


def silent_as_noise(
    mask: np.ndarray, energy: np.ndarray, carriers: list[dict[str, Any]], geometry: Geometry,
    max_share: float = 0.0,
) -> np.ndarray:
    """The class mask of a frame with the pixels of every carrier that sent nothing in them
    (no pixel of its region in the energy mask) made noise.

    Args:
        mask: the frame's class mask.
        energy: its energy mask.
        carriers: its carriers' truth, as a data set's metadata holds it
            (:class:`monitor.synth.scene.CarrierTruth` fields).
        geometry: the frame's geometry.
        max_share: make noise also the carriers that sent in at most this share of their
            region's pixels (an idle NR cell whose SSB is in view sends in about 1 %).
    """
    seen = mask.copy()
    for carrier in carriers:
        region = carrier_region(carrier, geometry)
        sent = energy[region] != 0
        if sent.size and sent.mean() <= max_share:
            seen[region] = 0
    return seen


def carrier_region(
    carrier: dict[str, Any], geometry: Geometry, start_sample: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The pixels a carrier owns in the reference convention: the columns whose centre lies in
    its nominal channel by the rows whose centre time lies in its on-time (an np.ix_ index)."""
    freqs = geometry.pixel_centres()
    row_samples = start_sample + (np.arange(geometry.height) + 0.5) * geometry.samples_per_row
    cols = (freqs >= carrier["freq_low_hz"]) & (freqs <= carrier["freq_high_hz"])
    on_end = carrier["start_sample"] + carrier["sample_count"]
    rows = (row_samples >= carrier["start_sample"]) & (row_samples < on_end)
    return np.ix_(rows, cols)


def ssbs_in_view(placed: PlacedGrid, geometry: Geometry, start_sample: int = 0) -> int:
    """How many SS/PBCH blocks the carrier sent whose PSS lies whole in the frame starting at
    ``start_sample``: its symbol within the frame's samples, its 127 subcarriers within the
    view. 0 for a carrier without SSBs (LTE)."""
    grid = placed.grid
    if not len(grid.ssb_rows):
        return 0
    first = grid.ssb_column + PSS_FIRST
    rows = grid.ssb_rows[np.abs(grid.values[grid.ssb_rows, first]) > 0]  # sent, not gated off
    starts = (symbol_starts(grid) - placed.start_time) * geometry.sample_rate - start_sample
    low = placed.offset_hz + (grid.first_subcarrier + first) * grid.scs
    high = low + (PSS_LENGTH - 1) * grid.scs
    if low < -geometry.sample_rate / 2 or high > geometry.sample_rate / 2:
        return 0
    return int(np.sum((starts[rows] >= 0) & (starts[rows + 1] <= geometry.frame_samples)))


def energy_mask(scene: Scene, geometry: Geometry, start_sample: int = 0) -> np.ndarray:
    """Where each carrier actually sent energy in the frame starting at ``start_sample``."""
    mask = np.zeros((geometry.height, geometry.width), dtype=np.uint8)
    for carrier, placed in zip(scene.carriers, scene.sent, strict=True):
        fraction = sent_fraction(placed, geometry, start_sample)
        mask[fraction >= ENERGY_FRACTION] = CLASS_INDEX[carrier.label]
    return mask


def sent_fraction(placed: PlacedGrid, geometry: Geometry, start_sample: int = 0) -> np.ndarray:
    """Per pixel, the energy the carrier sent over what a fully loaded carrier would send there.

    Each symbol goes to the row holding its centre time; each subcarrier's band is spread evenly
    over the pixels it covers. Pixels no resource element reaches read 0.
    """
    g = geometry
    grid = placed.grid
    starts = symbol_starts(grid)
    centres = 0.5 * (starts[:-1] + starts[1:]) - placed.start_time  # scene seconds
    rows = np.floor((centres * g.sample_rate - start_sample) / g.samples_per_row).astype(np.int64)
    in_frame = (rows >= 0) & (rows < g.height)
    if not in_frame.any():
        return np.zeros((g.height, g.width))
    # Points spread evenly across each subcarrier's band, at most half a pixel apart.
    points = max(1, math.ceil(2 * grid.scs / g.pixel_hz))
    spread = (np.arange(points) + 0.5) / points - 0.5
    sc = grid.first_subcarrier + np.arange(grid.values.shape[1])
    # only the subcarriers that reach into the view (a wide carrier seen by a narrow view)
    near = np.abs(placed.offset_hz + sc * grid.scs) < g.sample_rate / 2 + grid.scs
    sc = sc[near]
    freqs = placed.offset_hz + (sc[:, None] + spread[None, :]) * grid.scs
    cols = np.floor(freqs / g.pixel_hz + 0.5).astype(np.int64) + g.width // 2
    in_view = (cols >= 0) & (cols < g.width)
    energy = np.abs(grid.values[in_frame][:, near]) ** 2  # (symbols, subcarriers)
    r = np.broadcast_to(rows[in_frame][:, None, None], (*energy.shape, points))
    c = np.broadcast_to(cols[None, :, :], r.shape)
    e = np.broadcast_to(energy[:, :, None], r.shape)
    keep = np.broadcast_to(in_view[None, :, :], r.shape)
    flat = r[keep] * g.width + c[keep]
    sent = np.bincount(flat, weights=e[keep], minlength=g.height * g.width)
    slots = np.bincount(flat, minlength=g.height * g.width)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(slots > 0, sent / np.maximum(slots, 1), 0.0)
    return fraction.reshape(g.height, g.width)

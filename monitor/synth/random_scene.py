"""Random scenes: the distribution the training data and the synthetic radio are drawn from.

What a monitor meets, at every sample rate: nothing but noise; one carrier; LTE and NR side by
side, adjacent or apart; carriers cut by the edges of the view; carriers wider than the whole view
(an RTL-SDR inside a 20 MHz carrier); carriers switching on and off inside a frame; idle and
loaded cells; FDD and TDD; every fading profile; and the receivers that record it (8-bit
RTL-SDR and HackRF at their rates, USRP-class radios above). The shares are set here, in one
place, and written into every data set's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.bandwidths import LTE_BANDWIDTHS, NR_RB_TABLE
from monitor.synth.scene import CarrierSpec, SceneSpec

__all__ = ["REFERENCE_MIN_RATE", "SCENES", "SceneDistribution", "draw_reference_scene",
           "draw_scene"]

#: The kinds of random scene a data set can be drawn from: the monitor's own distribution, or
#: the test frames of the reference recipe (``draw_reference_scene``).
SCENES = ("monitor", "reference")

CHANNELS = (None, "epa5", "eva5", "eva70", "etu70", "etu300", "tdla30-10", "tdlb100-400",
            "tdlc300-100", "tdld30-10", "tdle30-10", "rayleigh70")
NR_TDD_PATTERNS = (None, None, "DDDSU", "DDDDDDDSUU", "DDDSUDDSUU")
SSB_PERIODS = (0.005, 0.01, 0.02, 0.02, 0.02, 0.04, 0.08, 0.16)


@dataclass(frozen=True)
class SceneDistribution:
    """Shares and ranges of the random scenes (all probabilities per scene or per carrier)."""

    snr_db: tuple[float, float] = (-10.0, 30.0)
    p_empty: float = 0.15
    carrier_counts: tuple[int, ...] = (1, 1, 1, 2, 2, 2, 3, 4)
    p_nr: float = 0.5
    p_switching: float = 0.15
    p_idle: float = 0.15
    p_inside: float = 0.35
    p_edge: float = 0.5
    max_cfo_hz: float = 3e3
    # A receiver's sample-rate offset (tens of ppm) moves a 40 ms frame by under a microsecond,
    # far below a row: invisible in the image and costly to render, so off by default.
    max_sro_ppm: float = 0.0


def draw_scene(
    rng: np.random.Generator,
    sample_rate: float,
    duration: float,
    dist: SceneDistribution = SceneDistribution(),
    center_freq: float = 0.0,
) -> SceneSpec:
    """Draw one random scene at ``sample_rate`` lasting ``duration`` seconds."""
    carriers: list[CarrierSpec] = []
    if rng.random() >= dist.p_empty:
        count = int(rng.choice(dist.carrier_counts))
        kinds = [_draw_kind(rng, dist) for _ in range(count)]
        widths = [_draw_bandwidth(rng, kind) for kind in kinds]
        offsets = _place(rng, sample_rate, widths, inside=rng.random() < dist.p_inside,
                         p_edge=dist.p_edge)
        for (label, scs), bw, offset in zip(kinds, widths, offsets, strict=True):
            if offset is None:
                continue
            carriers.append(_draw_carrier(rng, dist, label, scs, bw, offset, duration))
    return SceneSpec(
        sample_rate=sample_rate,
        duration=duration,
        carriers=tuple(carriers),
        center_freq=center_freq,
        receiver=_draw_receiver(rng, sample_rate),
        sro_ppm=_draw_symmetric(rng, dist.max_sro_ppm),
    )


# The reference recipe (MathWorks, "Spectrum Sensing with Deep Learning to Identify 5G and LTE
# Signals"): NR 10-50 MHz at 15 or 30 kHz, LTE FDD 5-20 MHz, one Rayleigh path.
REFERENCE_NR_BANDWIDTHS = (10e6, 15e6, 20e6, 25e6, 30e6, 40e6, 50e6)
REFERENCE_LTE_BANDWIDTHS = (5e6, 10e6, 15e6, 20e6)
REFERENCE_DOPPLERS_HZ = (0, 10, 500)
#: Share of the view the two carriers of a reference scene and their gap may take.
_REFERENCE_FILL = 0.95
#: The lowest sample rate whose view holds the narrowest NR and LTE channels side by side.
REFERENCE_MIN_RATE = (REFERENCE_NR_BANDWIDTHS[0] + REFERENCE_LTE_BANDWIDTHS[0]) / _REFERENCE_FILL


def draw_reference_scene(
    rng: np.random.Generator, sample_rate: float, duration: float,
    snr_db: tuple[float, float] = (-10.0, 30.0),
) -> SceneSpec:
    """Draw a test frame of the reference recipe: an NR and an LTE carrier side by side, in
    random order with a random gap, both wholly in view; NR with SSBs every 20 ms (case A at
    15 kHz, B at 30 kHz) and traffic in 10-80 % of its slots over 20-70 % of its RBs, LTE FDD
    with traffic in 20-100 % of its RBs; each through one Rayleigh path of 0, 10 or 500 Hz
    Doppler, and no receiver impairments. The recipe's own frames are 61.44 MS/s; a narrower
    view takes the channels that fit it.

    Raises:
        ValueError: for a sample rate under ``REFERENCE_MIN_RATE``.
    """
    if sample_rate < REFERENCE_MIN_RATE:
        raise ValueError(f"reference scenes need {REFERENCE_MIN_RATE / 1e6:.1f} MS/s or more "
                         "for an NR and an LTE carrier side by side")
    room = _REFERENCE_FILL * sample_rate
    lte_bw = float(rng.choice([bw for bw in REFERENCE_LTE_BANDWIDTHS
                               if bw + REFERENCE_NR_BANDWIDTHS[0] <= room]))
    nr_bw = float(rng.choice([bw for bw in REFERENCE_NR_BANDWIDTHS if bw + lte_bw <= room]))
    scs = float(rng.choice([15e3, 30e3]))
    gap = rng.uniform(0.0, room - nr_bw - lte_bw)
    kinds = [("NR", nr_bw), ("LTE", lte_bw)]
    if rng.random() < 0.5:
        kinds.reverse()
    edge = rng.uniform(-room / 2, room / 2 - nr_bw - lte_bw - gap)
    carriers = []
    for label, width in kinds:
        if label == "NR":
            carrier_scs = scs
            options: dict[str, Any] = {"ssb_period_s": 0.02, "coreset_symbols": 2,
                                       "ssb_case": "A" if scs == 15e3 else "B"}
        else:
            carrier_scs = 15e3
            options = {"load": float(rng.uniform(0.2, 1.0)), "cell_id": int(rng.integers(504))}
        doppler = int(rng.choice(REFERENCE_DOPPLERS_HZ))
        carriers.append(CarrierSpec(
            label=label, bandwidth_hz=width, offset_hz=float(edge + width / 2),
            snr_db=float(rng.uniform(*snr_db)), scs=carrier_scs, options=options,
            channel=f"rayleigh{doppler}"))
        edge += width + gap
    return SceneSpec(sample_rate=sample_rate, duration=duration, carriers=tuple(carriers),
                     receiver="ideal")


def _draw_symmetric(rng: np.random.Generator, limit: float) -> float:
    """Uniform in [-limit, limit]; 0 (drawing nothing) where limit is 0."""
    return float(rng.uniform(-limit, limit)) if limit else 0.0


def _draw_kind(rng: np.random.Generator, dist: SceneDistribution) -> tuple[str, float]:
    if rng.random() < dist.p_nr:
        return "NR", float(rng.choice([15e3, 30e3, 30e3, 30e3]))
    return "LTE", 15e3


def _draw_bandwidth(rng: np.random.Generator, kind: tuple[str, float]) -> float:
    label, scs = kind
    if label == "LTE":
        return float(rng.choice(sorted(LTE_BANDWIDTHS)))
    # an SSB spans 20 RB: narrower carriers at this SCS could not carry one
    allowed = sorted(bw for (bw, s), n_rb in NR_RB_TABLE.items() if s == scs and n_rb >= 20)
    return float(rng.choice(allowed))


def _place(
    rng: np.random.Generator,
    sample_rate: float,
    widths: list[float],
    inside: bool,
    p_edge: float,
) -> list[float | None]:
    """Centres for carriers laid side by side along frequency, the run of them placed at random
    over the view so that some are cut by its edges; None for those that miss the view.

    ``inside``: put the view within the first carrier where it is wider than the view.
    ``p_edge``: where the run is wider than the view (and not ``inside``), the probability that
    one of its two ends lies within the view; otherwise the run is centred within half a view of
    the view's centre, which at low sample rates covers the whole view. Without it a narrow view
    would almost never see where a wide carrier ends and the noise begins."""
    half_view = sample_rate / 2
    gaps = [float(rng.choice([0.0, rng.uniform(0.0, 0.5) * w])) for w in widths]
    span = sum(widths) + sum(gaps[1:])
    if inside and widths[0] > sample_rate:
        left = -widths[0] / 2 + rng.uniform(-1, 1) * (widths[0] - sample_rate) / 2
    elif span > sample_rate and rng.random() < p_edge:
        end = rng.uniform(-0.9, 0.9) * half_view
        left = end if rng.random() < 0.5 else end - span
    else:
        left = rng.uniform(-half_view - 0.5 * span, half_view - 0.5 * span)
        left = float(np.clip(left, -half_view - span + 0.1 * widths[0], half_view))
    centres: list[float | None] = []
    edge = left
    for i, (w, g) in enumerate(zip(widths, gaps, strict=True)):
        low = edge + (g if i else 0.0)
        high = low + w
        edge = high
        hits = high > -half_view * 0.98 and low < half_view * 0.98
        centres.append(0.5 * (low + high) if hits else None)
    return centres


def _draw_carrier(
    rng: np.random.Generator,
    dist: SceneDistribution,
    label: str,
    scs: float,
    bandwidth: float,
    offset: float,
    duration: float,
) -> CarrierSpec:
    load = 0.0 if rng.random() < dist.p_idle else float(rng.uniform(0.05, 1.0))
    options: dict[str, Any] = {"load": load}
    if label == "LTE":
        options["cell_id"] = int(rng.integers(504))
        options["load_steadiness"] = float(np.exp(rng.uniform(np.log(1.5), np.log(60.0))))
        options["n_ports"] = int(rng.choice([1, 2]))
        # TS 36.211 table 6.7-1: 1-3 control symbols, 2-4 for 10 RB or fewer
        options["cfi"] = int(rng.integers(1, 4)) + (1 if bandwidth < 3e6 else 0)
        if rng.random() < 0.3:
            options["duplex"] = "tdd"
            options["tdd_config"] = int(rng.integers(7))
            options["special_subframe_config"] = int(rng.integers(10))
    else:
        options["cell_id"] = int(rng.integers(1008))
        options["ssb_period_s"] = float(rng.choice(SSB_PERIODS))
        options["l_max"] = int(rng.choice([4, 8]))
        options["ssb_case"] = "A" if scs == 15e3 else str(rng.choice(["B", "C"]))
        options["coreset_symbols"] = int(rng.integers(1, 4))
        # TS 38.211 7.4.1.1.2: the first DMRS symbol (2 or 3) follows a CORESET of up to 3
        options["dmrs_type_a_position"] = max(2, options["coreset_symbols"])
        pattern = NR_TDD_PATTERNS[int(rng.integers(len(NR_TDD_PATTERNS)))]
        if pattern is not None:
            options["tdd_pattern"] = pattern
    on = None
    if rng.random() < dist.p_switching:
        a, b = sorted(rng.uniform(-0.5, 1.5, size=2) * duration)
        on = (max(0.0, float(a)), min(duration, float(b)))
        if on[1] - on[0] < 0.1 * duration:
            on = None
    return CarrierSpec(
        label=label,
        bandwidth_hz=bandwidth,
        offset_hz=float(offset),
        snr_db=float(rng.uniform(*dist.snr_db)),
        scs=scs,
        on=on,
        options=options,
        channel=CHANNELS[int(rng.integers(len(CHANNELS)))],
        cfo_hz=_draw_symmetric(rng, dist.max_cfo_hz),
    )


def _draw_receiver(rng: np.random.Generator, sample_rate: float) -> str:
    if sample_rate <= 3.2e6:
        choices, weights = ("rtlsdr", "hackrf", "ideal"), (0.6, 0.25, 0.15)
    elif sample_rate <= 20e6:
        choices, weights = ("hackrf", "usrp", "ideal"), (0.6, 0.25, 0.15)
    else:
        choices, weights = ("usrp", "ideal"), (0.7, 0.3)
    return str(rng.choice(choices, p=weights))

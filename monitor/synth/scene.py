"""Scenes: LTE and NR carriers, through their channels, into one receiver, at any sample rate.

A :class:`SceneSpec` says what is on the air (carriers with their class, bandwidth, position,
SNR, on-times and generator options), through which channel and into which receiver; rendering it
gives the IQ a radio would record and the truth of every carrier.

SNR, as used throughout: the ratio of a carrier's power spectral density in the resource
elements it sends to the noise power spectral density, both at the receiver input. It is the SNR
per resource element (the one RS-SINR measures); for a fully loaded carrier it equals the usual
in-band SNR (carrier power over noise power in the occupied bandwidth). Fading changes it per
instant, not on average (channel gains have unit mean power).

Render order: each carrier's grid is OFDM-modulated at the synthesis rate (the scene rate, or the
next multiple of 1.92 MS/s where a subcarrier spacing does not divide the scene rate), scaled for
its SNR, faded through its own channel and frequency-offset; the carriers are summed, resampled to
the scene rate, white Gaussian noise of unit power is added, and the receiver (band-edge roll-off,
IQ imbalance, DC offset, AGC, ADC) turns the result into full-scale IQ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np
import scipy.signal

from monitor.errors import InputError
from monitor.synth import channel, lte, nr, receiver
from monitor.synth.ofdm import CarrierGrid, modulate, symbol_starts

__all__ = [
    "CarrierSpec",
    "CarrierTruth",
    "PlacedGrid",
    "Scene",
    "SceneSpec",
    "carrier_signal",
    "nominal_edges",
    "parse_carrier",
    "render",
]

LABELS = ("LTE", "NR")
#: Symbols the scene lets pass before its first sample, so no carrier starts cold at sample 0.
_LEAD_SECONDS = 0.5e-3


@dataclass(frozen=True)
class CarrierSpec:
    """One carrier of a scene.

    Attributes:
        label: ``"LTE"`` or ``"NR"``.
        bandwidth_hz: nominal channel bandwidth (1.4-20 MHz LTE, 5-100 MHz NR).
        offset_hz: carrier centre relative to the scene's centre frequency.
        snr_db: SNR per resource element (module docstring).
        scs: subcarrier spacing (LTE: 15 kHz).
        on: (start, stop) seconds from the scene's first sample while the carrier transmits;
            None: the whole scene.
        options: generator options (``LteConfig`` / ``NrConfig`` fields, e.g. ``load``,
            ``duplex``, ``tdd_config``, ``ssb_period_s``, ``cell_id``).
        channel: fading profile name (``channel.parse_channel``), None for none.
        cfo_hz: carrier frequency offset.
    """

    label: str
    bandwidth_hz: float
    offset_hz: float
    snr_db: float
    scs: float = 15e3
    on: tuple[float, float] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    channel: str | None = None
    cfo_hz: float = 0.0


@dataclass(frozen=True)
class SceneSpec:
    """A whole scene: what is on the air and how it is received."""

    sample_rate: float
    duration: float
    carriers: Sequence[CarrierSpec] = ()
    center_freq: float = 0.0
    receiver: str = "ideal"
    sro_ppm: float = 0.0


@dataclass(frozen=True)
class CarrierTruth:
    """What was sent by one carrier, in the scene's terms.

    ``freq_low_hz``/``freq_high_hz`` are the nominal channel edges (centre +- bandwidth / 2, the
    reference labelling convention), relative to the centre frequency; ``occupied_low_hz`` and
    ``occupied_high_hz`` the edges of the subcarriers actually used.
    """

    label: str
    freq_low_hz: float
    freq_high_hz: float
    occupied_low_hz: float
    occupied_high_hz: float
    scs: float
    snr_db: float
    cell_id: int
    start_sample: int
    sample_count: int
    channel: str | None

    @property
    def center_hz(self) -> float:
        return 0.5 * (self.freq_low_hz + self.freq_high_hz)

    @property
    def bandwidth_hz(self) -> float:
        return self.freq_high_hz - self.freq_low_hz


@dataclass(frozen=True)
class PlacedGrid:
    """A carrier's resource grid as it was sent: grid time ``start_time`` is the scene's first
    sample, and the carrier centre sits ``offset_hz`` from the scene's centre frequency."""

    grid: CarrierGrid
    start_time: float
    offset_hz: float


@dataclass
class Scene:
    """A rendered scene: received IQ, truth, and each carrier's grid as sent (``sent``, in the
    order of ``carriers``), from which the masks of where energy was sent are made."""

    iq: np.ndarray
    spec: SceneSpec
    carriers: list[CarrierTruth]
    sent: list[PlacedGrid]


def nominal_edges(spec: CarrierSpec) -> tuple[float, float]:
    """Nominal channel edges of a carrier relative to the centre frequency."""
    return spec.offset_hz - spec.bandwidth_hz / 2, spec.offset_hz + spec.bandwidth_hz / 2


def synthesis_rate(sample_rate: float, spacings: Sequence[float]) -> float:
    """The rate carriers are modulated at: the scene rate where every SCS divides it, else the
    next multiple of 1.92 MS/s (which every SCS of 15-60 kHz divides)."""
    if all(_is_multiple(sample_rate, s) for s in spacings):
        return sample_rate
    return math.ceil(sample_rate / 1.92e6 - 1e-9) * 1.92e6


def render(spec: SceneSpec, rng: np.random.Generator) -> Scene:
    """Render a scene into received IQ and truth.

    Args:
        spec: the scene.
        rng: the only source of randomness (same seed, same bytes).

    Raises:
        InputError: for a carrier the generators cannot make.
    """
    fs = spec.sample_rate
    n_out = _sample_count(spec.duration, fs)
    fs_syn = synthesis_rate(fs, [c.scs for c in spec.carriers])
    ratio = Fraction(fs / fs_syn).limit_denominator(1000)
    n_syn = math.ceil(n_out / ratio) + 64
    total = np.zeros(n_syn, dtype=np.complex64)
    truths: list[CarrierTruth] = []
    sent_grids: list[PlacedGrid] = []
    for carrier in spec.carriers:
        received, placed, truth = _transmit(carrier, spec.duration, fs, fs_syn, n_syn, rng)
        total += received
        sent_grids.append(placed)
        truths.append(truth)
    scene = _resample(total, ratio)[:n_out]
    if spec.sro_ppm:
        scene = channel.apply_offsets(scene, fs, sro_ppm=spec.sro_ppm)
    noise = rng.standard_normal((n_out, 2), dtype=np.float32).view(np.complex64)[:, 0]
    noise *= np.float32(math.sqrt(0.5))
    noise += scene
    scene = noise
    iq = receiver.apply_receiver(scene, fs, receiver.RECEIVERS[spec.receiver], rng)
    return Scene(iq=iq.astype(np.complex64), spec=spec, carriers=truths, sent=sent_grids)


def carrier_signal(
    carrier: CarrierSpec, sample_rate: float, duration: float, rng: np.random.Generator
) -> np.ndarray:
    """One carrier as received, without noise or receiver: ``duration`` seconds at
    ``sample_rate``, in the units of :func:`render` (noise of unit power reads SNR 0 dB)."""
    n_out = _sample_count(duration, sample_rate)
    fs_syn = synthesis_rate(sample_rate, [carrier.scs])
    ratio = Fraction(sample_rate / fs_syn).limit_denominator(1000)
    n_syn = math.ceil(n_out / ratio) + 64
    received, _, _ = _transmit(carrier, duration, sample_rate, fs_syn, n_syn, rng)
    return _resample(received, ratio)[:n_out]


def _sample_count(duration: float, sample_rate: float) -> int:
    n = round(duration * sample_rate)
    if n <= 0:
        raise InputError(f"scene duration {duration} s gives no samples at {sample_rate} S/s")
    return n


def _transmit(
    carrier: CarrierSpec,
    duration: float,
    fs: float,
    fs_syn: float,
    n_syn: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, PlacedGrid, CarrierTruth]:
    """One carrier through its channel at the synthesis rate, with its grid and its truth."""
    grid, occupied, cell_id = _carrier_grid(carrier, duration, rng)
    start_time = _LEAD_SECONDS + rng.uniform(0.0, 1e-3)  # grid time of the first sample
    on_start, on_stop = carrier.on if carrier.on is not None else (0.0, duration)
    grid = _gate(grid, start_time, on_start, on_stop)
    amplitude = math.sqrt(10 ** (carrier.snr_db / 10) * carrier.scs / fs)
    received = amplitude * modulate(grid, fs_syn, n_syn, start_time, carrier.offset_hz)
    profile = channel.parse_channel(carrier.channel) if carrier.channel else None
    if profile is not None:
        received = channel.apply_fading(received, fs_syn, profile, rng)
    if carrier.cfo_hz:
        received = channel.apply_offsets(received, fs_syn, cfo_hz=carrier.cfo_hz)
    low, high = nominal_edges(carrier)
    first = max(0, round(on_start * fs))
    stop = min(round(duration * fs), round(on_stop * fs))
    truth = CarrierTruth(
        label=carrier.label,
        freq_low_hz=low,
        freq_high_hz=high,
        occupied_low_hz=carrier.offset_hz + occupied[0],
        occupied_high_hz=carrier.offset_hz + occupied[1],
        scs=carrier.scs,
        snr_db=carrier.snr_db,
        cell_id=cell_id,
        start_sample=first,
        sample_count=max(0, stop - first),
        channel=carrier.channel,
    )
    return received, PlacedGrid(grid, start_time, carrier.offset_hz), truth


def parse_carrier(text: str) -> CarrierSpec:
    """A carrier from the command line's ``KIND:key=value,...`` form.

    ``lte:bw=20e6,offset=-10e6,snr=15,duplex=tdd,config=2,load=0.5`` or
    ``nr:bw=40e6,scs=30e3,offset=15e6,snr=10,ssb_period=20e-3,load=0.3``; also ``on=START:STOP``
    (seconds), ``channel=eva70``, ``cfo=HZ``, ``cell=ID``; other keys go to the generator.

    Raises:
        InputError: for anything that does not parse, naming the form.
    """
    usage = (
        "expected lte:bw=HZ,offset=HZ,snr=DB[,key=value...] or "
        "nr:bw=HZ,scs=HZ,offset=HZ,snr=DB[,key=value...]"
    )
    kind, _, rest = text.partition(":")
    label = {"lte": "LTE", "nr": "NR"}.get(kind.strip().lower())
    if label is None or not rest:
        raise InputError(f"bad --carrier {text!r}: {usage}")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"bad --carrier {text!r}: {item!r} is not key=value; {usage}")
        fields[key.strip().lower()] = value.strip()
    try:
        bandwidth = float(fields.pop("bw"))
        offset = float(fields.pop("offset", "0"))
        snr = float(fields.pop("snr", "20"))
        scs = float(fields.pop("scs", "15e3"))
        cfo = float(fields.pop("cfo", "0"))
        on = None
        if "on" in fields:
            start, _, stop = fields.pop("on").partition(":")
            on = (float(start), float(stop))
        options: dict[str, Any] = {}
        aliases = {"config": "tdd_config", "ssb_period": "ssb_period_s", "cell": "cell_id"}
        for key, value in fields.items():
            if key == "channel":
                continue
            options[aliases.get(key, key)] = _option_value(value)
    except (KeyError, ValueError) as exc:
        raise InputError(f"bad --carrier {text!r}: {exc}; {usage}") from None
    if label == "LTE" and scs != 15e3:
        raise InputError(f"bad --carrier {text!r}: LTE uses a 15 kHz subcarrier spacing")
    spec = CarrierSpec(label, bandwidth, offset, snr, scs, on, options, fields.get("channel"), cfo)
    _carrier_grid(spec, 1e-3, np.random.default_rng(0))  # validates the bandwidth and options
    return spec


def _option_value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _carrier_grid(
    spec: CarrierSpec, duration: float, rng: np.random.Generator
) -> tuple[CarrierGrid, tuple[float, float], int]:
    """The carrier's grid covering ``duration`` after the lead-in, its occupied edges relative to
    its centre, and its cell ID."""
    span = duration + _LEAD_SECONDS + 2e-3
    options = dict(spec.options)
    try:
        if spec.label == "LTE":
            options.setdefault("cell_id", int(rng.integers(504)))
            config = lte.LteConfig.from_bandwidth(spec.bandwidth_hz, **options)
            subframes = math.ceil(span / 1e-3)
            grid = lte_grid_at_random_phase(config, subframes, rng)
            half = 6 * config.n_rb * spec.scs
            return grid, (-half - spec.scs / 2, half + spec.scs / 2), config.cell_id
        config = nr.NrConfig.from_bandwidth(spec.bandwidth_hz, spec.scs, rng=rng, **options)
        slots = math.ceil(span / (1e-3 * 15e3 / spec.scs))
        grid = nr_grid_at_random_phase(config, slots, rng)
        half = 6 * config.n_rb * spec.scs
        return grid, (-half - spec.scs / 2, half - spec.scs / 2), config.cell_id
    except (TypeError, ValueError) as exc:
        raise InputError(f"{spec.label} carrier of {spec.bandwidth_hz:g} Hz: {exc}") from None


def lte_grid_at_random_phase(
    config: lte.LteConfig, subframes: int, rng: np.random.Generator
) -> CarrierGrid:
    """An LTE grid starting at a random subframe of the radio frame."""
    return lte.lte_grid(config, subframes, rng, first_subframe=int(rng.integers(10)))


def nr_grid_at_random_phase(
    config: nr.NrConfig, slots: int, rng: np.random.Generator
) -> CarrierGrid:
    """An NR grid starting at a random slot within the SSB period (or the frame)."""
    slot_seconds = 1e-3 * 15e3 / config.scs
    period_slots = max(1, round(max(config.ssb_period_s, 0.01) / slot_seconds))
    return nr.nr_grid(config, slots, rng, first_slot=int(rng.integers(period_slots)))


def _gate(grid: CarrierGrid, start_time: float, on_start: float, on_stop: float) -> CarrierGrid:
    """Silence the symbols that start outside the carrier's on-time (scene seconds)."""
    starts = symbol_starts(grid)[:-1] - start_time
    off = (starts < on_start - 1e-9) | (starts >= on_stop)
    if not off.any():
        return grid
    values = grid.values.copy()
    values[off] = 0
    return replace(grid, values=values)


def _resample(x: np.ndarray, ratio: Fraction) -> np.ndarray:
    if ratio == 1:
        return x
    y = scipy.signal.resample_poly(x, ratio.numerator, ratio.denominator)
    return y.astype(np.complex64)


def _is_multiple(value: float, step: float) -> bool:
    q = value / step
    return abs(q - round(q)) < 1e-9 * max(q, 1.0)

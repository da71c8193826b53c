"""The propagation channel: multipath fading, and the offsets between transmitter and receiver.

Fading profiles are tapped delay lines whose taps fade independently with the classical (Jakes,
Clarke) Doppler spectrum:

- EPA, EVA, ETU: TS 36.104 annex B.2 (the same tables as TS 36.101 B.2.1), named with their
  maximum Doppler in Hz: ``epa5``, ``eva5``, ``eva70``, ``etu70``, ``etu300``.
- TDL-A to TDL-E: TR 38.901 tables 7.7.2-1 to 7.7.2-5, whose delays are normalised to an RMS delay
  spread of 1 and are scaled by the delay spread, named ``tdl{a-e}{DS in ns}-{Doppler in Hz}``
  after the conformance names: ``tdla30-10``, ``tdlb100-400``, ``tdlc300-100``, ``tdld30-10``,
  ``tdle30-10``. TDL-D and TDL-E start with a line-of-sight tap: Rician, K = 13.3 and 22 dB. (TS
  38.101-4 annex B.2.1 also defines fixed-delay conformance tables TDLA30, TDLB100 and TDLC300
  with fewer taps; these names here mean the scalable TR 38.901 tables.)
- ``rayleigh{Doppler}``: one Rayleigh-fading path.
- ``none`` or ``awgn``: no fading (:func:`parse_channel` returns None).

Each tap's fading is a sum of sinusoids with random angles of arrival and phases (the model of
Zheng and Xiao, as Sionna's TDL uses), whose ensemble autocorrelation is J0(2 pi fd tau). It is
evaluated on a coarse time grid (32 points per Doppler period at least) and the channel's
impulse response is interpolated linearly between grid points. Taps at fractional delays are
Kaiser-windowed sincs, flat within 0.3 dB up to 0.9 fs/2. The same time-varying filter applies
sample-rate offsets and fractional delays in :func:`apply_offsets`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import scipy.fft

from monitor.errors import InputError
from monitor.synth.ofdm import tone

__all__ = ["PROFILES", "FadingProfile", "apply_fading", "apply_offsets", "parse_channel"]

# TS 36.104 annex B.2, tables B.2-2 to B.2-4: excess tap delays (ns) and relative powers (dB).
_LTE_TABLES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "epa": ((0, 30, 70, 90, 110, 190, 410), (0.0, -1.0, -2.0, -3.0, -8.0, -17.2, -20.8)),
    "eva": (
        (0, 30, 150, 310, 370, 710, 1090, 1730, 2510),
        (0.0, -1.5, -1.4, -3.6, -0.6, -9.1, -7.0, -12.0, -16.9),
    ),
    "etu": (
        (0, 50, 120, 200, 230, 500, 1600, 2300, 5000),
        (-1.0, -1.0, -1.0, 0.0, 0.0, 0.0, -3.0, -5.0, -7.0),
    ),
}

# TR 38.901 tables 7.7.2-1 to 7.7.2-5: normalised delays and powers (dB). TDL-D and TDL-E list
# their first tap twice, as the spec does: its LOS (specular) part, then its Rayleigh part.
_TDL_TABLES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "a": (
        (0.0000, 0.3819, 0.4025, 0.5868, 0.4610, 0.5375, 0.6708, 0.5750, 0.7618, 1.5375, 1.8978,
         2.2242, 2.1718, 2.4942, 2.5119, 3.0582, 4.0810, 4.4579, 4.5695, 4.7966, 5.0066, 5.3043,
         9.6586),
        (-13.4, 0.0, -2.2, -4.0, -6.0, -8.2, -9.9, -10.5, -7.5, -15.9, -6.6, -16.7, -12.4, -15.2,
         -10.8, -11.3, -12.7, -16.2, -18.3, -18.9, -16.6, -19.9, -29.7),
    ),
    "b": (
        (0.0000, 0.1072, 0.2155, 0.2095, 0.2870, 0.2986, 0.3752, 0.5055, 0.3681, 0.3697, 0.5700,
         0.5283, 1.1021, 1.2756, 1.5474, 1.7842, 2.0169, 2.8294, 3.0219, 3.6187, 4.1067, 4.2790,
         4.7834),
        (0.0, -2.2, -4.0, -3.2, -9.8, -1.2, -3.4, -5.2, -7.6, -3.0, -8.9, -9.0, -4.8, -5.7, -7.5,
         -1.9, -7.6, -12.2, -9.8, -11.4, -14.9, -9.2, -11.3),
    ),
    "c": (
        (0.0000, 0.2099, 0.2219, 0.2329, 0.2176, 0.6366, 0.6448, 0.6560, 0.6584, 0.7935, 0.8213,
         0.9336, 1.2285, 1.3083, 2.1704, 2.7105, 4.2589, 4.6003, 5.4902, 5.6077, 6.3065, 6.6374,
         7.0427, 8.6523),
        (-4.4, -1.2, -3.5, -5.2, -2.5, 0.0, -2.2, -3.9, -7.4, -7.1, -10.7, -11.1, -5.1, -6.8, -8.7,
         -13.2, -13.9, -13.9, -15.8, -17.1, -16.0, -15.7, -21.6, -22.8),
    ),
    "d": (
        (0.0, 0.0, 0.035, 0.612, 1.363, 1.405, 1.804, 2.596, 1.775, 4.042, 7.937, 9.424, 9.708,
         12.525),
        (-0.2, -13.5, -18.8, -21.0, -22.8, -17.9, -20.1, -21.9, -22.9, -27.8, -23.6, -24.8, -30.0,
         -27.7),
    ),
    "e": (
        (0.0, 0.0, 0.5133, 0.5440, 0.5630, 0.5440, 0.7112, 1.9092, 1.9293, 1.9589, 2.6426, 3.7136,
         5.4524, 12.0034, 20.6519),
        (-0.03, -22.03, -15.8, -18.1, -19.8, -22.9, -22.4, -18.6, -20.8, -22.6, -22.3, -25.6,
         -20.2, -29.8, -29.2),
    ),
}
_TDL_LOS = frozenset("de")

_N_SINUSOIDS = 32  # per tap
_LOS_ARRIVAL = math.pi / 4  # LOS angle of arrival against the motion: its Doppler is fd cos(pi/4)
_GRID_PER_DOPPLER = 32  # coarse-grid points per period of the maximum Doppler frequency
_MAX_SEGMENT = 8192  # samples between coarse-grid points
_HALF_WIDTH = 12  # fractional-delay kernel: 2 * _HALF_WIDTH taps
_KAISER_BETA = 4.0
_MAX_DOPPLER_HZ = 2000.0
_MAX_DELAY_SPREAD_NS = 5000.0

_NUMBER = r"(\d+(?:\.\d+)?)"
_LTE_RE = re.compile(rf"(epa|eva|etu){_NUMBER}")
_TDL_RE = re.compile(rf"tdl-?([a-e]){_NUMBER}-{_NUMBER}")
_RAYLEIGH_RE = re.compile(rf"rayleigh{_NUMBER}")
_FORMS = (
    "none, awgn, epaN, evaN, etuN, rayleighN (N: maximum Doppler in Hz) or tdlXD-N (X: a to e, "
    "D: delay spread in ns, N: maximum Doppler in Hz), e.g. etu70, tdlc300-100"
)


@dataclass(frozen=True)
class FadingProfile:
    """A tapped-delay-line fading channel.

    Attributes
    ----------
    name : str
        Its name, as :func:`parse_channel` accepts it.
    delays_s : tuple of float
        Excess delay of each tap, seconds.
    powers_db : tuple of float
        Mean power of each tap, dB relative to one another (normalised when applied). For a
        Rician first tap it is the tap's total power, its LOS and diffuse parts together.
    doppler_hz : float
        Maximum Doppler frequency of the diffuse parts, Hz.
    k_factor_db : float or None
        Rician K-factor of the first tap (LOS to diffuse power), dB; None: every tap Rayleigh.
    """

    name: str
    delays_s: tuple[float, ...]
    powers_db: tuple[float, ...]
    doppler_hz: float
    k_factor_db: float | None = None

    def __post_init__(self) -> None:
        if not self.delays_s or len(self.delays_s) != len(self.powers_db):
            raise InputError(f"fading profile {self.name}: one power per tap delay, at least one")
        if min(self.delays_s) < 0 or not 0 <= self.doppler_hz <= _MAX_DOPPLER_HZ:
            raise InputError(
                f"fading profile {self.name}: delays must be >= 0 and the Doppler within "
                f"0-{_MAX_DOPPLER_HZ:g} Hz"
            )

    def tap_powers(self) -> np.ndarray:
        """Linear tap powers, normalised to sum to 1 (unit mean power gain)."""
        linear = 10.0 ** (np.asarray(self.powers_db, dtype=np.float64) / 10.0)
        return linear / linear.sum()


def _lte_profile(kind: str, doppler_hz: float) -> FadingProfile:
    delays_ns, powers = _LTE_TABLES[kind]
    delays = tuple(d * 1e-9 for d in delays_ns)
    return FadingProfile(f"{kind}{doppler_hz:g}", delays, powers, doppler_hz)


def _tdl_profile(model: str, delay_spread_ns: float, doppler_hz: float) -> FadingProfile:
    if not 0 < delay_spread_ns <= _MAX_DELAY_SPREAD_NS:
        raise InputError(
            f"TDL delay spread {delay_spread_ns:g} ns is outside 0-{_MAX_DELAY_SPREAD_NS:g} ns"
        )
    norm_delays, powers = _TDL_TABLES[model]
    k_factor = None
    if model in _TDL_LOS:
        # Merge the LOS row and the Rayleigh row of the first tap into one Rician tap.
        k_factor = powers[0] - powers[1]
        first = 10 * math.log10(10 ** (powers[0] / 10) + 10 ** (powers[1] / 10))
        norm_delays, powers = norm_delays[1:], (first, *powers[2:])
    delays = tuple(d * delay_spread_ns * 1e-9 for d in norm_delays)
    name = f"tdl{model}{delay_spread_ns:g}-{doppler_hz:g}"
    return FadingProfile(name, delays, powers, doppler_hz, k_factor)


def _rayleigh_profile(doppler_hz: float) -> FadingProfile:
    return FadingProfile(f"rayleigh{doppler_hz:g}", (0.0,), (0.0,), doppler_hz)


PROFILES: dict[str, FadingProfile] = {
    p.name: p
    for p in (
        _lte_profile("epa", 5.0),
        _lte_profile("eva", 5.0),
        _lte_profile("eva", 70.0),
        _lte_profile("etu", 70.0),
        _lte_profile("etu", 300.0),
        _tdl_profile("a", 30.0, 10.0),
        _tdl_profile("b", 100.0, 400.0),
        _tdl_profile("c", 300.0, 100.0),
        _tdl_profile("d", 30.0, 10.0),
        _tdl_profile("e", 30.0, 10.0),
        _rayleigh_profile(5.0),
        _rayleigh_profile(70.0),
    )
}


def parse_channel(spec: str) -> FadingProfile | None:
    """The fading profile a channel name stands for.

    Parameters
    ----------
    spec : str
        ``none`` or ``awgn`` (no fading), ``epaN``, ``evaN``, ``etuN``, ``rayleighN``, or
        ``tdlXD-N`` (X one of a-e, D the delay spread in ns, N the maximum Doppler in Hz); case
        and surrounding blanks are ignored.

    Returns
    -------
    FadingProfile or None
        None for no fading.

    Raises
    ------
    InputError
        If ``spec`` is none of these forms, or its numbers are out of range.
    """
    text = spec.strip().lower()
    if text in ("none", "awgn"):
        return None
    if text in PROFILES:
        return PROFILES[text]
    if match := _LTE_RE.fullmatch(text):
        return _lte_profile(match[1], float(match[2]))
    if match := _TDL_RE.fullmatch(text):
        return _tdl_profile(match[1], float(match[2]), float(match[3]))
    if match := _RAYLEIGH_RE.fullmatch(text):
        return _rayleigh_profile(float(match[1]))
    raise InputError(f"unknown channel {spec!r}: use {_FORMS}")


def apply_fading(
    x: np.ndarray, sample_rate: float, profile: FadingProfile, rng: np.random.Generator
) -> np.ndarray:
    """Pass ``x`` through one realisation of a time-varying multipath channel.

    Output sample n is the channel's output at time n / ``sample_rate``; tap delays count from
    the first tap, which is not delayed (the band-limited kernels of fractional taps reach a few
    samples ahead of their delay). Input before the first sample is taken as zero.

    Parameters
    ----------
    x : np.ndarray
        Complex baseband samples, 1-D.
    sample_rate : float
        Samples per second.
    profile : FadingProfile
        The channel.
    rng : np.random.Generator
        Source of the realisation.

    Returns
    -------
    np.ndarray
        complex64, the same length as ``x``. Its mean power gain over realisations is 1 for
        signals within 0.9 fs/2.
    """
    x = np.asarray(x, dtype=np.complex64)
    if x.size == 0:
        return x.copy()
    delays = np.asarray(profile.delays_s) * sample_rate
    lag0 = math.floor(delays.min()) - _HALF_WIDTH + 1
    n_lags = math.floor(delays.max()) + _HALF_WIDTH - lag0 + 1
    kernels = _delay_kernel(lag0 + np.arange(n_lags)[None, :] - delays[:, None])
    if profile.doppler_hz > 0:
        segment = int(sample_rate / (_GRID_PER_DOPPLER * profile.doppler_hz))
        segment = min(max(segment, 1), _MAX_SEGMENT)
    else:
        segment = _MAX_SEGMENT
    n_segments = -(-x.size // segment)
    times = np.arange(n_segments + 1) * (segment / sample_rate)
    coeffs = (_tap_gains(times, profile, rng) @ kernels).astype(np.complex64)
    lags = np.full(n_segments, lag0)
    return _time_varying_fir(x, coeffs[:-1], coeffs[1:], lags, segment)


def apply_offsets(
    x: np.ndarray,
    sample_rate: float,
    *,
    cfo_hz: float = 0.0,
    sro_ppm: float = 0.0,
    delay_s: float = 0.0,
) -> np.ndarray:
    """Apply a carrier frequency offset, a sample-rate offset and a timing delay.

    Output sample n is the input signal at input time n / (1 + ``sro_ppm`` 1e-6) - ``delay_s`` *
    fs (band-limited interpolation; zero outside the input), times exp(2j pi ``cfo_hz`` n / fs).
    A positive ``sro_ppm`` is a receiver clock running fast: the signal is stretched by
    1 + ``sro_ppm`` 1e-6 and its frequencies scaled by the inverse.

    Parameters
    ----------
    x : np.ndarray
        Complex baseband samples, 1-D.
    sample_rate : float
        Samples per second.
    cfo_hz : float
        Frequency shift, Hz.
    sro_ppm : float
        Sample-rate offset of the receiver, parts per million; within +-1000.
    delay_s : float
        Delay, seconds; any sign.

    Returns
    -------
    np.ndarray
        complex64, the same length as ``x``.

    Raises
    ------
    InputError
        If ``sro_ppm`` is outside +-1000.
    """
    x = np.asarray(x, dtype=np.complex64)
    if abs(sro_ppm) > 1000:
        raise InputError(f"sample-rate offset {sro_ppm} ppm is outside +-1000 ppm")
    if (sro_ppm or delay_s) and x.size:
        x = _resample(x, 1.0 + sro_ppm * 1e-6, delay_s * sample_rate)
    if cfo_hz:
        x = x * tone(cfo_hz / sample_rate, x.size)
    return x


def _delay_kernel(u: np.ndarray) -> np.ndarray:
    """Kaiser-windowed sincs, one per row of ``u`` (offsets in samples from the delay it
    applies), scaled to a DC gain of exactly 1."""
    inside = np.clip(1.0 - (u / _HALF_WIDTH) ** 2, 0.0, None)
    window = np.i0(_KAISER_BETA * np.sqrt(inside))
    kernel = np.where(np.abs(u) < _HALF_WIDTH, np.sinc(u) * window, 0.0)
    return kernel / kernel.sum(axis=-1, keepdims=True)


def _tap_gains(
    times: np.ndarray, profile: FadingProfile, rng: np.random.Generator
) -> np.ndarray:
    """Complex gain of every tap at ``times``: shape (len(times), n_taps), unit total power."""
    powers = profile.tap_powers()
    n = np.arange(1, _N_SINUSOIDS + 1)
    gains = np.empty((times.size, powers.size), dtype=np.complex128)
    for tap in range(powers.size):
        # Angles of arrival spread evenly with one random rotation, phases independent.
        alpha = (2 * np.pi * n - np.pi + rng.uniform(-np.pi, np.pi)) / _N_SINUSOIDS
        phase = rng.uniform(-np.pi, np.pi, _N_SINUSOIDS)
        doppler = profile.doppler_hz * np.cos(alpha)
        arg = 2 * np.pi * np.outer(times, doppler) + phase
        gains[:, tap] = np.exp(1j * arg).sum(axis=1) / math.sqrt(_N_SINUSOIDS)
    if profile.k_factor_db is not None:
        k = 10 ** (profile.k_factor_db / 10)
        los_doppler = profile.doppler_hz * math.cos(_LOS_ARRIVAL)
        los = np.exp(1j * (2 * np.pi * los_doppler * times + rng.uniform(-np.pi, np.pi)))
        gains[:, 0] = (gains[:, 0] + math.sqrt(k) * los) / math.sqrt(k + 1)
    return gains * np.sqrt(powers)


def _resample(x: np.ndarray, stretch: float, delay: float) -> np.ndarray:
    """``x`` at positions n / ``stretch`` - ``delay`` (samples), by a time-varying sinc FIR."""
    rate = 1.0 - 1.0 / stretch  # growth of the delay per output sample
    # Grid points close enough that the delay moves by at most 1/32 sample between them.
    segment = _MAX_SEGMENT if rate == 0 else int(1.0 / (32 * abs(rate)))
    segment = min(max(segment, 1), _MAX_SEGMENT)
    n_segments = -(-x.size // segment)
    shift = delay + rate * segment * np.arange(n_segments + 1)
    lags = np.floor(np.minimum(shift[:-1], shift[1:])).astype(np.int64) - _HALF_WIDTH + 1
    n_lags = 2 * _HALF_WIDTH + math.ceil(abs(rate) * segment) + 1
    offsets = lags[:, None] + np.arange(n_lags)[None, :]
    start = _delay_kernel(offsets - shift[:-1, None]).astype(np.float32)
    end = _delay_kernel(offsets - shift[1:, None]).astype(np.float32)
    return _time_varying_fir(x, start, end, lags, segment)


def _time_varying_fir(
    x: np.ndarray, start: np.ndarray, end: np.ndarray, lags: np.ndarray, segment: int
) -> np.ndarray:
    """Filter ``x`` with coefficients that move linearly within each segment.

    Output sample m * segment + r is sum_j c_j x[m * segment + r - lags[m] - j], with c moving
    from ``start[m]`` (r = 0) towards ``end[m]`` (r = segment). Each segment is convolved with
    both coefficient sets by FFT and the two results are cross-faded.
    """
    n_segments, n_lags = start.shape
    frame = segment + n_lags - 1
    n_fft = scipy.fft.next_fast_len(frame)
    # Frame m starts at input sample m * segment - lags[m] - (n_lags - 1); pad so all fit.
    first = np.arange(n_segments) * segment - lags - (n_lags - 1)
    pad = max(0, -int(first.min()))
    total = max(int(first.max()) + frame + pad, pad + x.size)
    padded = np.zeros(total, dtype=np.complex64)
    padded[pad : pad + x.size] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame)[first + pad]
    spectra = scipy.fft.fft(frames, n_fft, axis=1)
    head = scipy.fft.fft(start, n_fft, axis=1)
    tail = scipy.fft.fft(end, n_fft, axis=1) - head
    valid = slice(n_lags - 1, n_lags - 1 + segment)
    y = scipy.fft.ifft(spectra * head, axis=1, overwrite_x=True)[:, valid]
    slope = scipy.fft.ifft(spectra * tail, axis=1, overwrite_x=True)[:, valid]
    y += slope * (np.arange(segment, dtype=np.float32) / segment)
    return y.reshape(-1)[: x.size].astype(np.complex64, copy=False)

"""What a receiver adds to the IQ it records.

:func:`apply_receiver` takes the scene at the antenna (signal plus white noise of unit power, so
a noise floor of PSD 1/fs) and returns what the radio would record, in full-scale units. In the
order a radio applies them: the band-edge roll-off of its analogue filter and decimator (the
noise is shaped with the signal), IQ imbalance (an image of the spectrum mirrored about 0 Hz),
LO leakage (a line at 0 Hz) and low-frequency flicker noise (a hump around it), a gain that puts
the RMS at the level the radio records at, then the ADC grid with clipping at full scale. Each
impairment's strength is drawn per call from the profile's range.

The ADC grid is that of the profile's SigMF datatype (``monitor.iq_formats``).

Where the numbers come from: the real recordings in ``shared/captures``, measured with averaged
periodograms and moments of the raw codes. A DC height is the power in the 0 Hz bin of an
fs/1024-bin periodogram over the local floor (the median of the bins 1.3-4 % of fs either side,
signal and noise); an image level is the power of the mirror image relative to the signal, from
the coherence of the spectrum at f and -f; a roll-off is relative to the band between 0.1 and
0.4 fs/2.

- RTL-SDR (cu8, 1.92 MS/s; the views lie inside flat 20 MHz LTE carriers): RMS -38.6, -6.6 and
  -4.4 dBFS with 0.004 %, 2.4 % and 4.0 % of codes at 0 or 255 (the quietest uses 11 codes per
  rail). No DC line: lte-2645 and lte-tdd-2585 are within 0.8 dB of the floor at 0 Hz;
  lte-fdd-1860 has a flicker hump, +17 dB at 0 Hz, falling to +10 dB at 7.5 kHz and +7 dB at
  15 kHz (a one-pole spectrum with an 18 dB peak and a 4 kHz corner fits; with the receiver this
  quiet, the hump holds 44 % of the recorded power). Roll-off, mean of the three: -1 dB at
  0.6 fs/2, -2 dB at 0.74, -3 dB at 0.82, -5 dB at 0.91 and -6 dB at 0.99 fs/2. Image -34 dB in
  lte-fdd-1860, below -54 dB (not measurable) in lte-tdd-2585: the RTL2832U mixes its IF to
  baseband digitally, so its IQ imbalance is small. The R820T's LO is off DC (low IF).
- HackRF (ci8, 19.2 MS/s): RMS -19.4 and -14.2 dBFS, 0 and 0.002 % clipped; a DC line +17.6 and
  +15.6 dB (-14.6 dBc of the total power in both); image -46 and -48 dB. The LTE carriers fill
  +-0.94 fs/2 with no roll-off visible inside; the floor beyond them falls 1.2 dB from 0.95 to
  0.99 fs/2. (noise-2646-hackrf is saturated, 32 % of codes clipped, and is not used.)
- USRP X300 (nr-n78-3502, cf32, 46.08 MS/s): RMS -30.2 dBFS, peak 0.067; an LO line 300 Hz
  from DC holding 91 % of the power, +65 dB over the floor; floor flat to 0.85 fs/2, -1.0 dB at
  0.92, -1.2 dB at 0.97 fs/2; image -33 dB. The other cf32 recordings (radio not stated): RMS
  -21.8 and -23.1 dBFS, DC +1.8 dB and none, image -38 dB (nr-n1-2157).

The profiles' ranges span these measurements and their roll-offs are fitted to them; the USRP
records on the 16-bit grid of UHD's sc16 wire format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.signal

from monitor.errors import InputError
from monitor.iq_formats import from_raw, parse_datatype, to_raw

__all__ = ["RECEIVERS", "ReceiverProfile", "apply_receiver"]

_DC_BINS = 1024  # the DC line's height is over the noise in a bin of fs / _DC_BINS
_ROLLOFF_TAPS = 127


@dataclass(frozen=True)
class ReceiverProfile:
    """What one kind of radio adds to what it records.

    Ranges are (low, high) and drawn uniformly, in dB, on every call of :func:`apply_receiver`;
    None leaves that impairment out.

    Attributes
    ----------
    name : str
        Its key in :data:`RECEIVERS`.
    datatype : str
        SigMF datatype it records, whose grid the ADC output lies on (``cf32_le``: none).
    rms_dbfs : tuple of float or None
        RMS level of the recording, dB relative to full scale (1.0); None: no gain applied.
    dc_db : tuple of float or None
        LO-leakage line at 0 Hz, dB over the noise floor in a bin of fs/1024.
    flicker_db : tuple of float or None
        Peak of the low-frequency noise hump at 0 Hz, dB over the noise floor's PSD.
    flicker_hz : float
        Corner (half-power) frequency of that hump, Hz.
    image_db : tuple of float or None
        Power of the IQ-imbalance image relative to the signal, dB.
    rolloff_start : float
        Frequency, as a fraction of fs/2, where the band-edge roll-off begins.
    rolloff_edge_db : float
        Attenuation at fs/2, dB; 0 for a flat response.
    rolloff_power : float
        Shape: the attenuation in dB grows as ((|f| - start) / (1 - start)) ** power.
    """

    name: str
    datatype: str = "cf32_le"
    rms_dbfs: tuple[float, float] | None = None
    dc_db: tuple[float, float] | None = None
    flicker_db: tuple[float, float] | None = None
    flicker_hz: float = 0.0
    image_db: tuple[float, float] | None = None
    rolloff_start: float = 1.0
    rolloff_edge_db: float = 0.0
    rolloff_power: float = 1.0

    def __post_init__(self) -> None:
        parse_datatype(self.datatype)
        if not 0.0 <= self.rolloff_start <= 1.0:
            raise InputError(f"receiver {self.name}: roll-off start must be within 0-1")
        if self.flicker_db is not None and self.flicker_hz <= 0.0:
            raise InputError(f"receiver {self.name}: flicker noise needs a corner frequency")

    def rolloff_db(self, freq: np.ndarray) -> np.ndarray:
        """Gain (dB, <= 0) of the band-edge roll-off at ``freq``, in fractions of fs/2."""
        if self.rolloff_edge_db == 0.0 or self.rolloff_start >= 1.0:
            return np.zeros(np.shape(freq))
        depth = (np.abs(freq) - self.rolloff_start) / (1.0 - self.rolloff_start)
        return -self.rolloff_edge_db * np.clip(depth, 0.0, 1.0) ** self.rolloff_power


RECEIVERS: dict[str, ReceiverProfile] = {
    r.name: r
    for r in (
        ReceiverProfile("ideal"),
        ReceiverProfile(
            "rtlsdr",
            datatype="cu8",
            rms_dbfs=(-39.0, -4.0),
            flicker_db=(-10.0, 18.0),
            flicker_hz=4000.0,
            image_db=(-60.0, -34.0),
            rolloff_start=0.3,
            rolloff_edge_db=6.5,
            rolloff_power=2.3,
        ),
        ReceiverProfile(
            "hackrf",
            datatype="ci8",
            rms_dbfs=(-20.0, -14.0),
            dc_db=(15.0, 18.0),
            image_db=(-50.0, -44.0),
            rolloff_start=0.9,
            rolloff_edge_db=2.0,
            rolloff_power=1.5,
        ),
        ReceiverProfile(
            "usrp",
            datatype="ci16_le",
            rms_dbfs=(-31.0, -21.0),
            dc_db=(0.0, 65.0),
            image_db=(-40.0, -30.0),
            rolloff_start=0.85,
            rolloff_edge_db=1.3,
            rolloff_power=1.0,
        ),
    )
}


def apply_receiver(
    x: np.ndarray, sample_rate: float, profile: ReceiverProfile, rng: np.random.Generator
) -> np.ndarray:
    """Record ``x`` through a receiver.

    Parameters
    ----------
    x : np.ndarray
        Complex baseband at the antenna, 1-D: signal plus white noise of unit power.
    sample_rate : float
        Samples per second.
    profile : ReceiverProfile
        The receiver.
    rng : np.random.Generator
        Source of the drawn levels, phases and flicker noise.

    Returns
    -------
    np.ndarray
        complex64, the same length, in full-scale units; on the ADC grid of the profile's
        datatype (so within +-1 per rail) unless that is ``cf32_le``.
    """
    y = np.asarray(x, dtype=np.complex64)
    if y.size == 0:
        return y.copy()
    if profile.rolloff_edge_db > 0.0:
        y = scipy.signal.oaconvolve(y, _rolloff_taps(profile), mode="same")
    if profile.image_db is not None:
        image = _draw_db(rng, profile.image_db, amplitude=True) * _unit_phasor(rng)
        y = y + np.complex64(image) * np.conj(y)
    if profile.dc_db is not None:
        line = math.sqrt(_draw_db(rng, profile.dc_db) / _DC_BINS) * _unit_phasor(rng)
        y = y + np.complex64(line)
    if profile.flicker_db is not None:
        peak = _draw_db(rng, profile.flicker_db)
        y = y + _flicker(y.size, profile.flicker_hz / sample_rate, peak, rng)
    if profile.rms_dbfs is not None:
        rms = math.sqrt(float(np.mean(np.abs(y) ** 2)))
        if rms > 0.0:
            y = y * np.float32(_draw_db(rng, profile.rms_dbfs, amplitude=True) / rms)
    if profile.datatype != "cf32_le":
        fmt = parse_datatype(profile.datatype)
        y = from_raw(to_raw(y, fmt), fmt)
    return y.astype(np.complex64, copy=False)


def _draw_db(
    rng: np.random.Generator, bounds: tuple[float, float], amplitude: bool = False
) -> float:
    """A level drawn uniformly in dB from ``bounds``, as a linear power (or amplitude) ratio."""
    level = float(rng.uniform(*bounds))
    return 10.0 ** (level / (20.0 if amplitude else 10.0))


def _unit_phasor(rng: np.random.Generator) -> complex:
    """exp(j phi) with phi uniform."""
    return complex(np.exp(2j * np.pi * rng.uniform()))


@lru_cache(maxsize=16)
def _rolloff_taps(profile: ReceiverProfile) -> np.ndarray:
    """Linear-phase FIR with the profile's roll-off (firwin2); centred, it adds no delay."""
    grid = np.linspace(0.0, 1.0, 513)
    gain = 10.0 ** (profile.rolloff_db(grid) / 20.0)
    taps = scipy.signal.firwin2(_ROLLOFF_TAPS, grid, gain).astype(np.float32)
    taps.flags.writeable = False
    return taps


def _flicker(n: int, corner: float, peak: float, rng: np.random.Generator) -> np.ndarray:
    """Complex noise of PSD ``peak`` / fs at 0 Hz, halved at ``corner`` (cycles per sample).

    White noise of unit power through a one-pole low-pass, started in its steady state.
    """
    pole = math.exp(-2.0 * math.pi * corner)
    gain = math.sqrt(peak) * (1.0 - pole)
    white = rng.standard_normal((n, 2), dtype=np.float32).view(np.complex64)[:, 0]
    white *= np.float32(math.sqrt(0.5))
    previous = complex(rng.standard_normal(2) @ (1.0, 1j)) * gain / math.sqrt(2 - 2 * pole**2)
    coeffs = np.float32([gain]), np.float32([1.0, -pole])
    hump, _ = scipy.signal.lfilter(*coeffs, white, zi=np.complex64([pole * previous]))
    return hump.astype(np.complex64, copy=False)

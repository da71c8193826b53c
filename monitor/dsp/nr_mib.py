"""An NR cell's MIB, decoded from the PBCH of an SSB the search found: the cell confirmed by a
CRC, its system frame number, SSB index and access settings.

The SSB search (:mod:`monitor.dsp.nr_sync`) gives the PSS's window, the SSB's centre to half a
subcarrier and the PCI. Decoding the PBCH (:func:`decode_nr_mib`):

1. The SSB's band is shifted to 0 Hz and resampled to 256 samples a symbol (3.84 MS/s at
   15 kHz, 7.68 MS/s at 30 kHz), so that its 240 subcarriers are bins of one FFT.
2. The PSS's replica, correlated within two cyclic prefixes of the search's window, places the
   symbols to the sample; the frequency error left (up to a quarter of a subcarrier) is
   measured from the four symbols' cyclic prefixes and taken out.
3. The PBCH DMRS (38.211 7.4.1.4) depends on i_SSB, the SSB index's 3 low bits (with L_max 4,
   its 2 low bits and the half-frame bit): the sequence that correlates best names it. The
   three symbols' pilots, each symbol's common phase taken out, estimate the channel.
4. The 432 QPSK symbols, equalised, are soft bits; subcarriers outside the view, or within
   ``DC_NOTCH_HZ`` of its centre (a receiver's LO line, taken out first as the samples' mean),
   are erasures (at least ``MIN_SEEN`` of them must be left).
   They are descrambled (38.211 7.3.3.1) for i_SSB modulo 4, and where that fails for i_SSB
   itself (L_max 8; the receiver does not know L_max), folded onto the polar code's 512 bits
   and list-decoded (:mod:`monitor.dsp.polar`); the CRC-24C must check (one in 16.7 million
   for noise, per path), and the payload is descrambled and read
   (:mod:`monitor.synth.nr_bch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import numpy as np
import scipy.signal

from monitor.dsp.lte_mib import smoothed
from monitor.dsp.lte_sync import DC_NOTCH_HZ
from monitor.dsp.polar import decode_list
from monitor.synth.nr import pbch_dmrs, pbch_layout, pss_sequence
from monitor.synth.nr_bch import (
    INFO_BITS,
    PAYLOAD_BITS,
    POLAR_N,
    UNSCRAMBLED,
    NrMib,
    crc24c,
    info_positions,
    input_interleaver,
    payload_order,
    payload_scrambling,
    pbch_scrambling,
    rate_match_indices,
)

__all__ = ["SYMBOL", "NrPbch", "decode_nr_mib"]

#: Samples of a useful symbol after resampling; its normal cyclic prefix is 18.
SYMBOL = 256
PREFIX = 18
#: The FFT window starts this many samples into the cyclic prefix, so that a timing a sample
#: late does not take in the next symbol; the channel estimate takes up the phase ramp.
BACKOFF = 3
#: Pilots (4 subcarriers apart) a channel estimate is averaged over.
PILOT_SMOOTHING = 3
#: Share of the view's half-width a subcarrier must lie within to be used (the receiver's
#: anti-alias filter rolls off beyond).
VIEW_SHARE = 0.9
#: The least share of the PBCH's subcarriers in view for a decode (a 2.4 MS/s view of a 15 kHz
#: SSB holds two thirds of them).
MIN_SEEN = 0.5
_SSB_CENTRE = 120


@dataclass(frozen=True)
class NrPbch:
    """A decoded PBCH.

    Attributes:
        mib: the MIB, its ``sfn`` the frame the SSB was sent in.
        half_frame: 0 or 1, the half of that frame.
        ssb_index: the SSB's index within its burst as far as the PBCH tells it: its 2 low bits
            where L_max is 4, its 3 where 8 (FR1).
    """

    mib: NrMib
    half_frame: int
    ssb_index: int


def decode_nr_mib(samples: np.ndarray, sample_rate: float, ssb_hz: float, scs: float,
                  cell_id: int, seconds: float) -> NrPbch | None:
    """The MIB of the SSB that the NR search found, or None where no CRC checked.

    Args:
        samples: complex baseband IQ at ``sample_rate``, the view's centre at 0 Hz.
        sample_rate: Hz.
        ssb_hz: the SSB's centre, Hz from the view's centre (:class:`NrCell`).
        scs: its subcarrier spacing, Hz.
        cell_id: its PCI.
        seconds: its PSS's window, from the first sample.
    """
    k = np.arange(240)
    at = np.abs((k - _SSB_CENTRE) * scs + ssb_hz)  # each subcarrier's distance from 0 Hz
    seen = (at < VIEW_SHARE * sample_rate / 2) & (at > DC_NOTCH_HZ)
    if seen.mean() < MIN_SEEN:
        return None
    grid = _ssb_grid(samples, sample_rate, ssb_hz, scs, cell_id, seconds)
    if grid is None:
        return None
    i_ssb = _dmrs_index(grid, cell_id, seen)
    soft = _soft_bits(grid, cell_id, i_ssb, seen)
    # L_max 4: i_SSB holds the index's 2 low bits and the half-frame bit, and the PBCH is
    # scrambled by the 2; L_max 8: i_SSB is the index's 3 low bits and scrambles it. Under 4
    # the two scramble alike (and with L_max 8 the half-frame bit is the payload's alone).
    decoded = _decoded(soft, cell_id, i_ssb & 3)
    if decoded is not None and (i_ssb < 4 or decoded[1] == 1):
        return NrPbch(decoded[0], decoded[1], i_ssb & 3)
    decoded = _decoded(soft, cell_id, i_ssb) if i_ssb >= 4 else None
    return None if decoded is None else NrPbch(decoded[0], decoded[1], i_ssb)


def _ssb_grid(samples: np.ndarray, sample_rate: float, ssb_hz: float, scs: float,
              cell_id: int, seconds: float) -> np.ndarray | None:
    """The SSB's four symbols as 240 subcarriers each, timing and frequency error taken out:
    (4, 240); None where the samples do not hold the whole block."""
    rate = SYMBOL * scs
    ratio = Fraction(rate / sample_rate).limit_denominator(1000)
    step = (SYMBOL + PREFIX) / ratio  # samples of one symbol at sample_rate
    window = round(seconds * sample_rate)
    first = max(0, round(window - 3 * step))
    last = min(len(samples), round(window + 7 * step))
    n = np.arange(first, last)
    x = np.asarray(samples[first:last], np.complex64)
    # a receiver's LO line, constant, would turn every cyclic prefix's product once the SSB is
    # shifted to 0 Hz, and bias the frequency error measured from them
    x = (x - x.mean()) * np.exp(-2j * np.pi * ssb_hz / sample_rate * n).astype(np.complex64)
    y = scipy.signal.resample_poly(x, ratio.numerator, ratio.denominator)
    start = _pss_start(y, round(float((window - first) * ratio)), cell_id % 3)
    if start < PREFIX:
        return None
    starts = start + np.arange(4) * (SYMBOL + PREFIX)
    if starts[-1] + SYMBOL > len(y):
        return None
    prefix = (starts[:, None] - PREFIX + np.arange(PREFIX)[None]).ravel()
    turn = np.angle(np.sum(y[prefix + SYMBOL] * np.conj(y[prefix]))) / SYMBOL
    y = y * np.exp(-1j * turn * np.arange(len(y)))
    rows = (starts - BACKOFF)[:, None] + np.arange(SYMBOL)[None]
    spectra = np.fft.fft(y[rows], axis=1) / np.sqrt(SYMBOL)
    return spectra[:, (np.arange(240) - _SSB_CENTRE) % SYMBOL]


def _pss_start(y: np.ndarray, near: int, n_id2: int) -> int:
    """Where the PSS's useful part starts in ``y`` (256 samples a symbol), within two cyclic
    prefixes of ``near``: the best correlation with its replica."""
    lags = np.arange(max(0, near - 2 * PREFIX), min(len(y) - SYMBOL, near + 2 * PREFIX) + 1)
    windows = y[lags[:, None] + np.arange(SYMBOL)[None]]
    return int(lags[np.abs(windows @ np.conj(_pss_replica(n_id2))).argmax()])


@cache
def _pss_replica(n_id2: int) -> np.ndarray:
    """The PSS symbol in time, 256 samples."""
    grid = np.zeros(SYMBOL, np.complex128)
    grid[(np.arange(56, 183) - _SSB_CENTRE) % SYMBOL] = pss_sequence(n_id2)
    return np.fft.ifft(grid)


def _dmrs_index(grid: np.ndarray, cell_id: int, seen: np.ndarray) -> int:
    """The i_SSB whose DMRS fits best: the products of neighbouring pilots, stripped of each
    hypothesis's sequence, add up coherently for the right one whatever the channel's slow
    turn across subcarriers."""
    _, dmrs = pbch_layout(cell_id)
    scores = []
    for i_ssb in range(8):
        pilots = np.zeros((4, 240), np.complex128)
        pilots[dmrs] = pbch_dmrs(cell_id, i_ssb)
        z = (grid * np.conj(pilots))[:, dmrs[1] & seen]
        scores.append(abs(np.sum(z[:, 1:] * np.conj(z[:, :-1]))))
    return int(np.argmax(scores))


def _soft_bits(grid: np.ndarray, cell_id: int, i_ssb: int, seen: np.ndarray) -> np.ndarray:
    """The PBCH's 864 soft bits (positive: 0), equalised on the DMRS's channel estimate, 0
    where the subcarrier lies outside the view."""
    data, dmrs = pbch_layout(cell_id)
    pilots = np.zeros((4, 240), np.complex128)
    pilots[dmrs] = pbch_dmrs(cell_id, i_ssb)
    estimate = grid * np.conj(pilots)
    where = np.flatnonzero(dmrs[1] & seen)
    if len(where) < 2:
        return np.zeros(2 * int(data.sum()))
    grid = grid.copy()
    for symbol in (2, 3):  # each symbol's common phase against the first PBCH symbol's
        shared = where[dmrs[symbol, where]]
        turn = np.sum(estimate[symbol, shared] * np.conj(estimate[1, shared]))
        rotation = np.exp(-1j * np.angle(turn)) if abs(turn) > 0 else 1.0
        grid[symbol] *= rotation
        estimate[symbol] *= rotation
    counts = dmrs[1:, where].sum(axis=0)
    mean = smoothed(estimate[1:, where].sum(axis=0) / counts, PILOT_SMOOTHING)
    k = np.arange(240)
    channel = np.interp(k, where, mean.real) + 1j * np.interp(k, where, mean.imag)
    z = (grid * np.conj(channel)[None])[data]
    z[~np.broadcast_to(seen, data.shape)[data]] = 0
    soft = np.empty(2 * len(z))
    soft[0::2], soft[1::2] = z.real, z.imag  # QPSK, 38.211 5.1.3
    return soft


def _decoded(soft: np.ndarray, cell_id: int, offset: int) -> tuple[NrMib, int] | None:
    """The MIB and half-frame bit of the soft bits descrambled for the SSB offset, where a
    list path's CRC checks."""
    descrambled = soft * (1 - 2 * pbch_scrambling(cell_id, offset).astype(np.float64))
    folded = np.bincount(rate_match_indices(), descrambled, POLAR_N)
    info = np.zeros(POLAR_N, dtype=bool)
    info[info_positions()] = True
    for path in decode_list(folded, info):
        c = np.empty(INFO_BITS, np.uint8)
        c[input_interleaver()] = path
        scrambled, parity = c[:PAYLOAD_BITS], c[PAYLOAD_BITS:]
        # all zeros checks (the CRC has no initial value) and is what soft bits that say
        # nothing decode to; a payload scrambled to all zeros is a chance of one in 2^32
        if not c.any() or not np.array_equal(crc24c(scrambled), parity):
            continue
        v = 2 * int(scrambled[UNSCRAMBLED[0]]) + int(scrambled[UNSCRAMBLED[1]])
        payload = (scrambled ^ payload_scrambling(cell_id, v))[payload_order()]
        try:
            return NrMib.from_payload(payload)
        except ValueError:
            continue
    return None

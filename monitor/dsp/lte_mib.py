"""An LTE cell's master information block, decoded from its PBCH: the carrier's bandwidth.

The PSS and SSS (:mod:`monitor.dsp.lte_sync`) give a cell's centre, identity and frame timing,
not its width. The PBCH, in slot 1 of subframe 0 on the central 72 subcarriers, carries the MIB,
whose dl-Bandwidth is the carrier's number of resource blocks. Decoding it
(:func:`decode_mib`), at the cell-search rate of 1.92 MS/s:

1. The frequency error left after the search (up to a quarter of a subcarrier) is measured from
   the cyclic prefixes and taken out.
2. The channel of each CRS antenna port is estimated on its reference signals in subframe 0
   and interpolated across the 72 subcarriers.
3. For each number of antenna ports (1, 2 or 4; the receiver does not know it), the PBCH's 240
   REs are combined as their transmit diversity asks (36.211 6.3.4.3, Alamouti pairs) into
   soft bits; for each place of the frame in the PBCH's 40 ms, they are descrambled, the
   repetitions of the 120 coded bits summed, and the tail-biting convolutional code decoded
   (Viterbi over every starting state).
4. The CRC, masked by the number of ports, must check: one in 65,536 for noise, per
   hypothesis.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

import numpy as np

from monitor.synth.bch import (
    CODED_BITS,
    CRC_MASKS,
    FRAME_BITS,
    GENERATORS,
    MIB_BITS,
    Mib,
    crc16,
    rate_match_indices,
    scrambling,
)
from monitor.synth.lte import crs_sequence

__all__ = ["PORTS", "decode_mib"]

RATE_HZ = 1.92e6
SYMBOL = 128
FRAME = 19200  # samples of a radio frame at RATE_HZ
SLOT = 960
#: The FFT window starts this many samples into the cyclic prefix, so that a timing a sample
#: late does not take in the next symbol; the channel estimate takes up the phase ramp.
BACKOFF = 2
#: The numbers of CRS antenna ports an eNodeB may have (36.211 6.10.1).
PORTS = (1, 2, 4)
_CENTRAL = np.r_[-36:0, 1:37]  # the PBCH's subcarriers (k' = 0..71), DC unused
_STATES = 64  # the convolutional code's memory of 6 bits
#: Pilots (3 subcarriers apart once the subframe's symbols are merged) a channel estimate is
#: averaged over: 135 kHz, as the sync search's.
PILOT_SMOOTHING = 3


@dataclass(frozen=True)
class DecodedMib:
    """A MIB whose CRC checked, with the number of antenna ports its mask gave."""

    mib: Mib
    ports: int


def decode_mib(x: np.ndarray, frame_start: int, cell_id: int) -> DecodedMib | None:
    """The MIB of the cell ``cell_id`` from the radio frames in ``x``.

    The frames of one 40 ms PBCH period carry the same coded block: their soft bits are summed
    before decoding (four frames gain 6 dB over one), for each place the first frame may have
    in its period.

    Args:
        x: complex baseband at 1.92 MS/s with the carrier's centre at 0 Hz (its central
            1.1 MHz at least).
        frame_start: the sample of ``x`` at which a radio frame starts (any frame).
        cell_id: the cell's physical identity (from its PSS and SSS).

    Returns:
        The MIB, its system frame number that of the first whole frame in ``x``; or None
        where no CRC checked.
    """
    x = _without_frequency_error(x, frame_start % FRAME)
    grids = [_subframe0(x, start)
             for start in range(frame_start % FRAME, len(x) - 2 * SLOT + 1, FRAME)]
    channels = [_channels(grid, cell_id, max(PORTS)) for grid in grids]  # every port's, once
    for ports in PORTS:
        soft = [_soft_bits(grid, h[:ports], cell_id, ports)
                for grid, h in zip(grids, channels, strict=True)]
        for first in range(4):  # the first frame's place in its 40 ms period
            places = [(first + i) % 4 for i in range(len(soft))]
            periods = [(first + i) // 4 for i in range(len(soft))]
            for period in sorted(set(periods)):
                frames = [i for i, p in enumerate(periods) if p == period]
                coded = sum(_coded(soft[i], places[i], cell_id) for i in frames)
                mib = _checked(coded, ports, places[frames[0]])
                if mib is not None:
                    return DecodedMib(replace(mib, sfn=(mib.sfn - frames[0]) % 1024), ports)
    return None


def smoothed(channel: np.ndarray, width: int) -> np.ndarray:
    """A channel estimate on evenly spaced subcarriers averaged over ``width`` neighbours.

    One symbol's estimate is as noisy as the symbol. The channel changes little over a few
    subcarriers once the phase slope that the timing's fraction of a sample puts across them
    is taken out, so the slope is measured (from neighbours' phase differences), removed, the
    estimate averaged, and the slope put back.
    """
    slope = np.angle(np.sum(channel[1:] * np.conj(channel[:-1])))
    ramp = np.exp(1j * slope * np.arange(len(channel)))
    kernel = np.ones(width)
    flat = channel * np.conj(ramp)
    averaged = np.convolve(flat, kernel, "same") / np.convolve(np.ones(len(flat)), kernel, "same")
    return averaged * ramp


def _symbol_starts() -> np.ndarray:
    """Where each of a subframe's 14 symbols starts its useful part (normal CP), samples."""
    symbol = np.arange(14)
    first_in_slot = symbol % 7 == 0
    cp_start = (symbol // 7) * SLOT + np.where(first_in_slot, 0, 138 + (symbol % 7 - 1) * 137)
    return cp_start + np.where(first_in_slot, 10, 9)


_STARTS = _symbol_starts()


def _without_frequency_error(x: np.ndarray, frame_start: int) -> np.ndarray:
    """``x`` with its frequency error, measured from every cyclic prefix, taken out.

    A cyclic prefix repeats the end of its symbol 128 samples later, so their product's phase
    is the error's over 128 samples: unambiguous for errors up to half a subcarrier.
    """
    prefix = np.arange(-9, 0)  # the last nine samples of every prefix (9 or 10 long)
    starts = np.concatenate([_STARTS + s for s in range(frame_start % 1920 - 1920, len(x), 1920)])
    starts = starts[(starts - 9 >= 0) & (starts + SYMBOL < len(x))]
    index = (starts[:, None] + prefix[None, :]).ravel()
    error = np.angle(np.sum(x[index + SYMBOL] * np.conj(x[index])))
    n = np.arange(len(x))
    return x * np.exp(-1j * error / SYMBOL * n).astype(np.complex64)


def _subframe0(x: np.ndarray, start: int) -> np.ndarray:
    """The 72 central subcarriers of a subframe's 14 symbols: (14, 72)."""
    rows = (start + _STARTS - BACKOFF)[:, None] + np.arange(SYMBOL)[None, :]
    return np.fft.fft(x[rows], axis=-1)[:, _CENTRAL] / np.sqrt(SYMBOL)


@cache
def _pilots(cell_id: int) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each port's reference signals in subframe 0 on the central 72 subcarriers: (subframe
    symbol, subcarrier k', value) for every pilot (36.211 6.10.1.2)."""
    v_shift = cell_id % 6
    seq = crs_sequence(cell_id, (0, 1, 4))  # (slot, l, m), l indexing 0, 1, 4
    m = np.arange(12)  # the central 6 RB's pilots of a symbol, m' = m + N_RB_max - 6
    out = {}
    for port in range(4):
        rows, cols, values = [], [], []
        for slot in (0, 1):
            for symbol, index in ((0, 0), (4, 2)) if port < 2 else ((1, 1),):
                if port < 2:
                    v = (0 if symbol == 0 else 3) if port == 0 else (3 if symbol == 0 else 0)
                else:
                    v = 3 * (slot % 2) + 3 * (port - 2)
                rows.append(np.full(12, 7 * slot + symbol))
                cols.append(6 * m + (v + v_shift) % 6)
                values.append(seq[slot, index, m + 110 - 6])
        out[port] = (np.concatenate(rows), np.concatenate(cols) % 72, np.concatenate(values))
    return out


def _channels(grid: np.ndarray, cell_id: int, ports: int) -> np.ndarray:
    """Each port's channel on the 72 subcarriers, from its pilots averaged over the subframe and
    over ``PILOT_SMOOTHING`` neighbours, and interpolated linearly across frequency:
    (ports, 72)."""
    k = np.arange(72)
    out = np.empty((ports, 72), dtype=np.complex64)
    for port in range(ports):
        rows, cols, values = _pilots(cell_id)[port]
        estimate = grid[rows, cols] * np.conj(values)
        sums = np.bincount(cols, estimate.real, 72) + 1j * np.bincount(cols, estimate.imag, 72)
        counts = np.bincount(cols, minlength=72)
        where = np.flatnonzero(counts)
        mean = smoothed(sums[where] / counts[where], PILOT_SMOOTHING)
        out[port] = np.interp(k, where, mean.real) + 1j * np.interp(k, where, mean.imag)
    return out


@cache
def _pbch_res(cell_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The PBCH's 240 REs in the order they are sent (k' first, then l; 36.211 6.6.4): the
    subframe symbols and subcarriers, leaving out every CRS port's REs in symbols 7 and 8."""
    rows, cols = [], []
    for symbol in range(7, 11):
        k = np.arange(72)
        if symbol <= 8:
            k = k[k % 3 != cell_id % 3]
        rows.append(np.full(len(k), symbol))
        cols.append(k)
    return np.concatenate(rows), np.concatenate(cols)


def _soft_bits(grid: np.ndarray, channels: np.ndarray, cell_id: int, ports: int) -> np.ndarray:
    """The PBCH's 480 soft bits of one frame (positive: 0), scrambled, for ``ports`` ports
    whose ``channels`` (:func:`_channels`) are given."""
    rows, cols = _pbch_res(cell_id)
    d = _combined(grid[rows, cols], channels[:, cols], ports)
    soft = np.empty(2 * len(d), dtype=np.float32)
    soft[0::2], soft[1::2] = d.real, d.imag  # QPSK, 36.211 7.1.2
    return soft


def _coded(soft: np.ndarray, place: int, cell_id: int) -> np.ndarray:
    """A frame's soft bits, descrambled for its place in the 40 ms, summed onto the 120 coded
    bits they repeat."""
    part = slice(FRAME_BITS * place, FRAME_BITS * (place + 1))
    descrambled = soft * (1 - 2 * scrambling(cell_id)[part].astype(np.float32))
    return np.bincount(rate_match_indices()[part], descrambled, CODED_BITS)


def _checked(coded: np.ndarray, ports: int, place: int) -> Mib | None:
    """The MIB the coded bits decode to, where its CRC checks with the mask of ``ports``."""
    bits = _viterbi(coded.reshape(3, -1))
    if not np.array_equal(crc16(bits[:MIB_BITS]) ^ bits[MIB_BITS:], CRC_MASKS[ports]):
        return None
    try:
        return Mib.from_bits(bits[:MIB_BITS], place)
    except ValueError:
        return None


def _combined(y: np.ndarray, h: np.ndarray, ports: int) -> np.ndarray:
    """The PBCH's symbols d, scaled by the channel's gain, from the received REs ``y`` and each
    port's channel there ``h`` (36.211 6.3.4.3 undone)."""
    if ports == 1:
        return np.conj(h[0]) * y
    d = np.empty_like(y)
    # Alamouti pairs: RE a carries h_p d0 - h_q d1*, RE b carries h_p d1 + h_q d0*; with two
    # ports (p, q) = (0, 1) on every pair, with four (0, 2) and (1, 3) in turn.
    pairs = [(0, 1)] if ports == 2 else [(0, 2), (1, 3)]
    step = 2 * len(pairs)
    for n, (p, q) in enumerate(pairs):
        a, b = slice(2 * n, None, step), slice(2 * n + 1, None, step)
        hp = (h[p, a] + h[p, b]) / 2
        hq = (h[q, a] + h[q, b]) / 2
        d[a] = np.conj(hp) * y[a] + hq * np.conj(y[b])
        d[b] = np.conj(hp) * y[b] - hq * np.conj(y[a])
    return d


@cache
def _trellis() -> tuple[np.ndarray, np.ndarray]:
    """The code's trellis: each state's two predecessors (64, 2), and the signs (1 - 2 bit) of
    the three outputs on each of those branches (3, 64, 2).

    A state holds the last six inputs, the newest in bit 5; input u from state s leads to
    (u << 5) | (s >> 1), and the 7-bit register (u << 6) | s gives the outputs.
    """
    state = np.arange(_STATES)
    previous = ((state & 31) << 1)[:, None] | np.arange(2)[None, :]
    register = ((state >> 5) << 6)[:, None] | previous
    masks = [int("".join(map(str, g)), 2) for g in GENERATORS]
    bits = np.array([[[bin(r & mask).count("1") % 2 for r in row] for row in register]
                     for mask in masks])
    return previous, (1 - 2 * bits).astype(np.float32)


def _viterbi(soft: np.ndarray) -> np.ndarray:
    """The most likely input of the tail-biting code for soft values (3, K) (positive: 0).

    Every starting state is tried, each path held to end where it began.
    """
    previous, signs = _trellis()
    n = soft.shape[1]
    metric = np.full((_STATES, _STATES), -np.inf, dtype=np.float32)  # (start, state)
    np.fill_diagonal(metric, 0)
    choices = np.empty((n, _STATES, _STATES), dtype=np.int8)
    for k in range(n):
        branch = np.einsum("j,jsb->sb", soft[:, k], signs)
        candidates = metric[:, previous] + branch[None]
        choices[k] = candidates.argmax(axis=-1)
        metric = candidates.max(axis=-1)
    start = int(np.diagonal(metric).argmax())
    bits = np.empty(n, dtype=np.uint8)
    state = start
    for k in range(n - 1, -1, -1):
        bits[k] = state >> 5
        state = previous[state, choices[k, start, state]]
    return bits


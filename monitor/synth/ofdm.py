"""OFDM modulation of a resource grid at any sample rate that is a multiple of the SCS.

A carrier generator (LTE, NR) fills a :class:`CarrierGrid`: one row per OFDM symbol, one column
per subcarrier, with the exact cyclic-prefix length of every symbol in seconds. :func:`modulate`
turns it into baseband samples at the scene's rate, at any frequency offset and time offset.

Each symbol is placed at its exact continuous-time position (TS 36.211 6.12, TS 38.211 5.3.1):
where a cyclic prefix is not a whole number of samples at the scene rate (30 kHz NR at 1.92 MS/s,
say), the symbol is phase-rotated per subcarrier so that the output is the continuous-time OFDM
signal sampled at n/fs, not a rounded approximation. Symbol edges are cross-faded over a short
raised-cosine taper inside the cyclic prefix (weighted overlap-add), as transmitters do to keep
their out-of-band emissions down; the receiver's FFT window never sees the taper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft

__all__ = ["CarrierGrid", "modulate", "symbol_starts", "tone"]


@dataclass(frozen=True)
class CarrierGrid:
    """The resource grid of one carrier, ready to modulate.

    Attributes
    ----------
    values : np.ndarray
        complex64, shape (n_symbols, n_subcarriers); column 0 is the lowest frequency. Each sent
        resource element has unit mean energy; unused ones are 0.
    scs : float
        Subcarrier spacing in Hz.
    first_subcarrier : int
        Frequency of column 0 relative to the carrier centre, in subcarriers (LTE: -6 N_RB, the
        DC subcarrier is column 6 N_RB; NR: -6 N_RB).
    cp_seconds : np.ndarray
        float64, shape (n_symbols,): the cyclic-prefix length of each symbol.
    continuous_phase : bool
        How the carrier is brought to its frequency. True (LTE, 36.211 7.4): by a mixer whose
        phase runs on from symbol to symbol, so that a receiver tuned anywhere sees every
        subcarrier's phase advance continuously, and can carry a channel estimate from one
        symbol to the next. False (NR, 38.211 5.4): each symbol's upconversion restarts its
        phase at the symbol's useful part; here at the frequency of the scene's centre, as the
        carrier's absolute frequency is not known.
    ssb_rows : np.ndarray
        int, the rows (symbols) where an NR SS/PBCH block starts, its PSS; empty for LTE. Where
        a carrier is off, a row's block was not sent (its values are 0).
    ssb_column : int
        The column of the SS/PBCH blocks' first subcarrier (the PSS is on 56-182 from it).
    """

    values: np.ndarray
    scs: float
    first_subcarrier: int
    cp_seconds: np.ndarray
    continuous_phase: bool = False
    ssb_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ssb_column: int = 0

    @property
    def n_symbols(self) -> int:
        return self.values.shape[0]

    @property
    def duration(self) -> float:
        """Seconds from the first symbol's CP start to the last symbol's end."""
        return float(self.cp_seconds.sum() + self.n_symbols / self.scs)


def symbol_starts(grid: CarrierGrid) -> np.ndarray:
    """Start time (CP start) of every symbol and the grid's end: shape (n_symbols + 1,)."""
    lengths = grid.cp_seconds + 1.0 / grid.scs
    return np.concatenate(([0.0], np.cumsum(lengths)))


def modulate(
    grid: CarrierGrid,
    sample_rate: float,
    n_samples: int,
    start_time: float = 0.0,
    freq_offset: float = 0.0,
    taper_seconds: float = 1.0e-6,
) -> np.ndarray:
    """OFDM-modulate ``grid`` into ``n_samples`` complex baseband samples.

    Output sample n is the carrier's waveform at grid time ``start_time + n / sample_rate``
    (grid time 0 is the first symbol's CP start), shifted by ``freq_offset`` Hz. Samples outside
    the grid's duration are zero; subcarriers outside (-fs/2, fs/2) are left out, as a receiver's
    anti-alias filter would. A sent resource element of unit energy gives a power spectral density
    of ``1 / scs`` per Hz against white noise of variance 1 at ``sample_rate`` (PSD ``1 / fs``):
    the scene scales carriers for their SNR from that.

    Args:
        grid: the resource grid.
        sample_rate: output rate; ``sample_rate / grid.scs`` must be an integer.
        n_samples: how many samples to return.
        start_time: grid time of output sample 0, seconds (negative: the grid starts later).
        freq_offset: carrier centre relative to the output's centre, Hz.
        taper_seconds: length of the raised-cosine cross-fade between symbols.

    Returns:
        complex64 array of shape (n_samples,).
    """
    n_fft_f = sample_rate / grid.scs
    n_fft = round(n_fft_f)
    if abs(n_fft_f - n_fft) > 1e-9 * n_fft_f:
        raise ValueError(f"sample rate {sample_rate} is not a multiple of the SCS {grid.scs}")
    out = np.zeros(n_samples, dtype=np.complex64)

    # Absolute subcarrier positions, in bins, after the whole-bin part of the frequency offset.
    shift_bins = round(freq_offset / grid.scs)
    residual_hz = freq_offset - shift_bins * grid.scs
    bins = grid.first_subcarrier + shift_bins + np.arange(grid.values.shape[1])
    keep = np.abs(bins * grid.scs + residual_hz) < sample_rate / 2
    if not keep.any():
        return out

    # Symbol boundaries in output samples (real-valued), and the symbols that overlap the output.
    bounds = _snap((symbol_starts(grid) - start_time) * sample_rate)
    # One symbol more at the front, so the first visible symbol can cross-fade from it.
    first = max(int(np.searchsorted(bounds, 0.0, side="right")) - 2, 0)
    last = min(int(np.searchsorted(bounds, n_samples, side="left")), grid.n_symbols)
    if last <= first:
        return out
    symbols = np.arange(first, last)

    # Phase of each symbol's useful part relative to the output sample grid: the useful part of
    # symbol s starts at u_s = bounds[s] + cp_s * fs (in samples); output sample n is at
    # n - u_s = n + a_s + f_s with a_s integer and 0 <= f_s < 1.
    useful = _snap(bounds[symbols] + grid.cp_seconds[symbols] * sample_rate)
    a = np.floor(-useful)
    frac = -useful - a
    cols = bins[keep]
    phase = np.outer(frac, cols).astype(np.float32) * np.float32(2 * np.pi / n_fft)
    if grid.continuous_phase:  # the whole-bin shift as a mixer running since output sample 0
        turns = np.mod(shift_bins * useful, n_fft)[:, None].astype(np.float32)
        phase += turns * np.float32(2 * np.pi / n_fft)
    rotation = np.cos(phase) + 1j * np.sin(phase)  # complex64 (float32 phase), faster than exp
    spectra = np.zeros((len(symbols), n_fft), dtype=np.complex64)
    spectra[:, np.mod(cols, n_fft)] = grid.values[first:last][:, keep] * rotation
    waves = scipy.fft.ifft(spectra, axis=1, norm="forward", overwrite_x=True)
    flat = waves.reshape(-1)

    # Output samples [edge_s, edge_s+1) belong to symbol s; sample n of symbol s is its periodic
    # waveform at (n + a_s) mod n_fft. A symbol (CP included) is shorter than 2 n_fft, so one
    # wrap at most: gather from the waveform repeated twice.
    edges = np.clip(np.ceil(bounds[first : last + 1]).astype(np.int64), 0, n_samples)
    counts = np.diff(edges)
    offsets = a.astype(np.int64)
    twice = np.concatenate((waves, waves), axis=1).reshape(-1)
    # 32-bit indices where they fit: half the memory traffic of the gather
    itype = np.int32 if twice.size + n_samples < 2**31 else np.int64
    row_base = np.arange(len(symbols), dtype=np.int64) * (2 * n_fft)
    phase0 = np.mod(edges[:-1] + offsets, n_fft)
    index = np.arange(edges[0], edges[-1], dtype=itype)
    index += np.repeat((row_base + phase0 - edges[:-1]).astype(itype), counts)
    out[edges[0] : edges[-1]] = twice[index]

    # Cross-fade the first taper samples of every symbol with the cyclic continuation of the one
    # before it; at the grid's first symbol the "one before" is silence, so it ramps up. A grid
    # should outlast the output: its last symbol ends abruptly.
    taper = taper_seconds * sample_rate
    if taper >= 1.0:
        n = edges[:-1, None] + np.arange(int(np.ceil(taper)) + 1)
        since = n - bounds[first:last, None]
        fading = (since < taper) & (n < edges[1:, None])
        s_idx = np.broadcast_to(np.arange(len(symbols))[:, None], n.shape)[fading]
        n = n[fading]
        weight = (0.5 - 0.5 * np.cos(np.pi * since[fading] / taper)).astype(np.float32)
        previous = np.zeros(len(n), dtype=np.complex64)
        has_prev = s_idx > 0
        sp = s_idx[has_prev] - 1
        previous[has_prev] = flat[sp * n_fft + np.mod(n[has_prev] + offsets[sp], n_fft)]
        out[n] = weight * out[n] + (1.0 - weight) * previous

    if residual_hz:
        out *= tone(residual_hz / sample_rate, n_samples)
    return out


def _snap(samples: np.ndarray) -> np.ndarray:
    """Positions within 1e-6 of a whole sample are that sample: the cumulative sums of symbol
    lengths carry float rounding that would otherwise move a boundary by one sample."""
    whole = np.round(samples)
    return np.where(np.abs(samples - whole) < 1e-6, whole, samples)


def tone(cycles_per_sample: float, n_samples: int, block: int = 4096) -> np.ndarray:
    """``exp(2j pi f n)`` for n < n_samples as complex64, from one block of phasors and one
    phasor per block (two small ``exp`` calls instead of one per sample)."""
    n_blocks = -(-n_samples // block)
    inner = np.exp(2j * np.pi * cycles_per_sample * np.arange(block))
    outer = np.exp(2j * np.pi * cycles_per_sample * block * np.arange(n_blocks))
    return (outer[:, None] * inner[None, :]).astype(np.complex64).reshape(-1)[:n_samples]

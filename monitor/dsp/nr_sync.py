"""NR cells found by their SS/PBCH blocks: NR beyond doubt, which cell, and where its SSB lies.

Every NR cell, idle or loaded, sends SS/PBCH blocks (SSBs; 38.211 7.4.3) in bursts every 5-160
ms (20 ms unless configured otherwise): four OFDM symbols of 240 subcarriers at 15 or 30 kHz in
FR1, the PSS (an m-sequence of 127 BPSK values, one of three) on subcarriers 56-182 of the first
and the SSS (one of 336 per PSS) on the same subcarriers of the third. Nothing else on the air
sends them. A spectrogram can leave the class of a carrier in doubt, a lightly loaded NR
carrier can look like an LTE one; its SSB names it, and gives the cell's identity (PCI).

The search (:func:`find_nr_cells`), at each FR1 SSB spacing whose PSS fits in the view:

1. Windows one useful symbol long (``round(sample_rate / scs)`` samples, so that their bins are
   the subcarriers) every two cyclic prefixes (``HOP_PREFIXES``): each symbol has one that
   starts in its prefix, and sees that symbol alone, or at most a prefix after it, and takes in
   7 % of the next. Their spectra, and again with the samples shifted half a bin (a PSS between
   two bins loses most of its correlation).
2. A window that starts anywhere in the cyclic prefix sees the symbol's subcarriers turned by a
   phase that grows linearly across them, as a multipath channel's delay turns them. The
   products of neighbouring bins, ``Y(k) Y*(k + 1)``, keep only a constant turn: their
   correlation with the PSS's neighbouring products, at every first bin at once (one FFT along
   frequency), normalised (1 for the PSS alone, about 1/126 for noise), finds the PSS's window,
   its first bin and N_ID2, whatever the timing within the prefix and the channel's delay.
3. The SSS, in the window two symbols on (no SSB pattern of 38.213 4.1 puts a longer cyclic
   prefix between them) to the nearest sample, its bins phased by the PSS's (the channel, and
   the window's timing) and turned back by the fraction of a sample the window is early, is
   correlated with the 336 SSS of the N_ID2: the best names the cell.

A cell is declared where both correlations exceed the thresholds at which noise alone would
cross them once in ``1 / FALSE_ALARM`` searches (:func:`threshold`; the normalised correlation
of noise is close to exponential), and its SSS correlates at least ``SSS_SHARE`` as well as its
PSS. Beside a strong PSS, windows and bins a little off it correlate too (the m-sequence's
partial correlations): a candidate that overlaps a declared cell's PSS in time and band is not
tried.

A cell's PBCH, in the same SSB, gives its MIB (:mod:`monitor.dsp.nr_mib`): the CRC confirms the
cell, and the MIB says whether it is barred and whether it has a SIB1 (one without serves only
beside another cell, as in EN-DC).

The SSB's place in the carrier is the operator's choice (38.101-1 5.4.3: on the synchronisation
raster, anywhere in the channel), so an SSB names the carrier that holds it, not the carrier's
width.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import scipy.fft

from monitor.dsp.lte_sync import DC_NOTCH_HZ
from monitor.dsp.nr_mib import NrPbch, decode_nr_mib
from monitor.synth.nr import pss_sequence, sss_sequence

__all__ = ["FALSE_ALARM", "MIN_SAMPLE_RATE", "MIN_SECONDS", "PSS_FIRST", "PSS_LENGTH",
           "SSB_SCS_HZ", "NrCell", "find_nr_cells", "threshold"]

#: The SSB subcarrier spacings of FR1 (38.101-1 table 5.4.3.3-1).
SSB_SCS_HZ = (15e3, 30e3)
PSS_LENGTH = 127
#: The narrowest view a PSS at 15 kHz fits in.
MIN_SAMPLE_RATE = PSS_LENGTH * SSB_SCS_HZ[0]
#: The PSS's first subcarrier in the SSB; SSref, the SSB's centre, is its subcarrier 120.
PSS_FIRST = 56
SSB_CENTRE = 120
#: A normal cyclic prefix, as a share of the useful symbol (144 of 2048).
CP_SHARE = 144 / 2048
#: The fewest seconds that hold an SSB (four symbols) at 15 kHz.
MIN_SECONDS = 4 * (1 + CP_SHARE) / SSB_SCS_HZ[0]
#: Cyclic prefixes from one window to the next. Every window starting in a symbol's prefix sees
#: it alone; one starting a prefix later takes in 7 % of the next symbol, which costs a PSS at
#: most 0.6 dB and halves the search's cost.
HOP_PREFIXES = 2
#: Windows transformed at a time (memory: a few MB per hundred windows at 61.44 MS/s).
CHUNK = 128
#: The strongest first bins kept per window and N_ID2: cells whose SSBs share a moment.
PEAKS_PER_WINDOW = 4
#: PSS candidates (distinct N_ID2 and SSB centre) whose SSS is tried, strongest first.
SSS_CANDIDATES = 16
#: A cell's SSS correlates about as well as its PSS (the same channel, two symbols apart); a
#: PSS candidate off a strong PSS can meet an SSS clearing its threshold by chance.
SSS_SHARE = 0.3
#: The chance that noise alone yields a PSS candidate in one search, and the same for an SSS.
FALSE_ALARM = 1e-3
#: The SSBs (distinct moments of a cell's PSS) whose PBCH is tried, strongest first.
PBCH_TRIES = 4
#: The least energy, as a share of the whole window's, by which a run of products is normalised.
#: The FFT's single-precision rounding leaves a little of the window's energy in every bin, and
#: a run of (nearly) empty bins, such as a band a recording's filter took away, would turn it
#: into peaks: hundreds beside a carrier 50 dB up, none from 1e-13 on. A floor tied to the
#: window's mean energy instead hid a PSS 10 dB under a strong carrier elsewhere in the view: the
#: products are fourth powers of the samples, so 10 dB of power are 20 dB of their energy.
ROUNDING_FLOOR = 1e-10


@dataclass(frozen=True)
class NrCell:
    """An NR cell found in the samples by its SSB.

    Attributes:
        ssb_hz: the SSB's centre (SSref), Hz from the view's centre (within a quarter of
            ``scs`` and the receiver's frequency error).
        cell_id: the physical cell identity, 0-1007.
        scs: the SSB's subcarrier spacing, Hz.
        pss, sss: their normalised correlations, 0-1.
        seconds: when (the PSS's window), from the first sample searched.
        pbch: its PBCH decoded (the MIB, :mod:`monitor.dsp.nr_mib`); None where no CRC
            checked.
    """

    ssb_hz: float
    cell_id: int
    scs: float
    pss: float
    sss: float
    seconds: float
    pbch: NrPbch | None = None


@dataclass(frozen=True)
class _Peak:
    strength: float
    start: int  # the window's first sample
    n_id2: int
    first_bin: float  # the PSS's first subcarrier, in bins of the window from the view's centre
    scs: float
    shift: float  # the half-bin shift of the window's samples


def threshold(trials: float, dof: int, false_alarm: float = FALSE_ALARM) -> float:
    """The normalised correlation over ``dof`` terms that noise alone exceeds, in any of
    ``trials`` places, with probability ``false_alarm`` (its tail taken as exponential with
    mean ``1 / dof``)."""
    return float(np.log(trials / false_alarm) / dof)


def find_nr_cells(samples: np.ndarray, sample_rate: float,
                  seconds: float | None = None) -> list[NrCell]:
    """The NR cells whose SSB the samples hold, strongest first, one per PCI and SSB.

    Args:
        samples: complex baseband IQ at ``sample_rate``, the view's centre at 0 Hz.
        sample_rate: Hz.
        seconds: how much of the samples to search; all by default.

    Raises:
        ValueError: for fewer samples than one SSB, or a view narrower than a PSS at 15 kHz.
    """
    spacings = [scs for scs in SSB_SCS_HZ if PSS_LENGTH * scs <= sample_rate]
    if not spacings:
        raise ValueError(f"a {sample_rate / 1e6:g} MS/s view is narrower than an NR PSS")
    count = len(samples) if seconds is None else min(len(samples), round(seconds * sample_rate))
    x = np.asarray(samples[:count], dtype=np.complex64)
    if count < MIN_SECONDS * sample_rate:
        raise ValueError(f"an NR cell search needs {MIN_SECONDS * 1e3:.2f} ms of samples, got "
                         f"{count / sample_rate * 1e3:.2f} ms")
    windows = {scs: _Windows(x, sample_rate, scs) for scs in spacings}
    peaks = [peak for w in windows.values() for peak in w.peaks()]
    cells: list[NrCell] = []
    taken: list[tuple[_Peak, list[int]]] = []
    sss_limit = threshold(SSS_CANDIDATES * 336, PSS_LENGTH)
    for group in _candidates(peaks)[:SSS_CANDIDATES]:
        best = group[0]
        if any(_overlaps(best, p, times, sample_rate) for p, times in taken):
            continue
        n_id1, sss = windows[best.scs].sss(best)
        if sss > max(sss_limit, SSS_SHARE * best.strength):
            taken.append((best, [p.start for p in group]))
            ssb_hz = (best.first_bin * windows[best.scs].bin_hz
                      + (SSB_CENTRE - PSS_FIRST) * best.scs)
            cell_id, seconds = 3 * n_id1 + best.n_id2, best.start / sample_rate
            cells.append(NrCell(ssb_hz, cell_id, best.scs, best.strength, sss, seconds,
                                _pbch(x, sample_rate, ssb_hz, cell_id, group)))
    return cells


def _pbch(x: np.ndarray, sample_rate: float, ssb_hz: float, cell_id: int, group: list[_Peak]
          ) -> NrPbch | None:
    """The MIB of the first of the cell's strongest ``PBCH_TRIES`` SSBs (its PSS peaks at
    distinct moments, strongest first) whose PBCH decodes: one may be cut by the samples' end,
    or faded."""
    symbol = sample_rate / group[0].scs  # windows of one PSS lie within a symbol
    starts: list[int] = []
    for peak in group:
        if len(starts) < PBCH_TRIES and all(abs(peak.start - t) >= symbol for t in starts):
            starts.append(peak.start)
    for start in starts:
        pbch = decode_nr_mib(x, sample_rate, ssb_hz, group[0].scs, cell_id, start / sample_rate)
        if pbch is not None:
            return pbch
    return None


class _Windows:
    """Symbol-long windows of the samples at one subcarrier spacing, and their PSS and SSS
    correlations."""

    def __init__(self, x: np.ndarray, sample_rate: float, scs: float) -> None:
        self.x = x
        self.scs = scs
        self.size = round(sample_rate / scs)
        self.cp = max(1, round(self.size * CP_SHARE))
        self.bin_hz = sample_rate / self.size
        self.lead = 2 * (1 + CP_SHARE) * sample_rate / scs  # samples from a PSS to its SSS
        # room for the SSS two symbols after the last PSS window
        room = len(x) - round(self.lead) - self.size
        self.count = room // (HOP_PREFIXES * self.cp) + 1 if room >= 0 else 0
        self.notch = int(DC_NOTCH_HZ / self.bin_hz)

    def spectra(self, starts: np.ndarray, shift: float) -> np.ndarray:
        """The windows at ``starts``, their samples shifted down ``shift`` bins, as spectra with
        0 Hz at bin ``size // 2 - shift``, the bins within ``DC_NOTCH_HZ`` of it cleared (a
        receiver's LO line; both neighbours where it falls between two)."""
        idx = starts[:, None] + np.arange(self.size)[None]
        windows = self.x[idx]
        if shift:  # each window turned from its own first sample: a phase per window, harmless
            windows *= _turn(self.size, shift)
        y = scipy.fft.fftshift(scipy.fft.fft(windows, axis=1), axes=1)
        centre = self.size // 2  # 0 Hz, unshifted
        y[:, centre - self.notch - (1 if shift else 0) : centre + self.notch + 1] = 0
        return y

    def peaks(self) -> list[_Peak]:
        """The PSS candidates over the threshold: the ``PEAKS_PER_WINDOW`` strongest first bins
        of each window and N_ID2, in both half-bin shifts."""
        bins = self.size - PSS_LENGTH + 1
        limit = threshold(self.count * 3 * bins * 2, PSS_LENGTH - 1)
        replicas = _differential_spectra(self.size)
        out = []
        keep = min(PEAKS_PER_WINDOW, bins)
        hop = HOP_PREFIXES * self.cp
        for shift in (0.0, 0.5):
            for first in range(0, self.count, CHUNK):
                starts = np.arange(first, min(self.count, first + CHUNK)) * hop
                y = self.spectra(starts, shift)
                d = y[:, :-1] * np.conj(y[:, 1:])  # d[k] = Y(k) Y*(k + 1)
                c = scipy.fft.ifft(scipy.fft.fft(d, n=self.size, axis=1)[:, None]
                                   * replicas[None], axis=2)[..., :bins]
                power = _power(d)
                energy = _window_sums(power, PSS_LENGTH - 1)[:, None, :bins]
                floor = ROUNDING_FLOOR * power.sum(axis=1)[:, None, None] + 1e-30
                norm = _power(c) / ((PSS_LENGTH - 1) * np.maximum(energy, floor))
                for w, n_id2 in zip(*np.nonzero(norm.max(axis=2) > limit), strict=True):
                    row = norm[w, n_id2]
                    for j in np.argpartition(row, -keep)[-keep:]:
                        if row[j] > limit:
                            out.append(_Peak(float(row[j]), int(starts[w]), int(n_id2),
                                             float(j - self.size // 2 + shift), self.scs, shift))
        return out

    def sss(self, peak: _Peak) -> tuple[int, float]:
        """The N_ID1 whose SSS best fits a PSS peak, and its normalised correlation."""
        k = round(peak.first_bin - peak.shift) + self.size // 2
        # two symbols on, to the nearest sample; the rest, a fraction of a sample, would turn
        # the SSS's subcarriers against the PSS's by a phase growing across them
        starts = np.array([peak.start, peak.start + round(self.lead)])
        y = self.spectra(starts, peak.shift)[:, k : k + PSS_LENGTH]
        channel = y[0] * pss_sequence(peak.n_id2)
        late = self.lead - round(self.lead)
        bins = np.arange(k, k + PSS_LENGTH) - self.size // 2 + peak.shift
        z = y[1] * np.exp(2j * np.pi * bins * late / self.size) * np.conj(channel)
        scores = np.abs(_sss_table(peak.n_id2) @ z) ** 2 / max(float(np.sum(np.abs(z) ** 2)),
                                                              1e-30)
        return int(scores.argmax()), float(scores.max())


def _candidates(peaks: list[_Peak]) -> list[list[_Peak]]:
    """The peaks grouped by SSB (the same N_ID2, spacing and SSB centre within a bin), each
    group strongest first, the groups in order of their strongest."""
    groups: list[list[_Peak]] = []
    for peak in sorted(peaks, key=lambda p: -p.strength):
        group = next((g for g in groups if g[0].n_id2 == peak.n_id2 and g[0].scs == peak.scs
                      and abs(g[0].first_bin - peak.first_bin) <= 0.75), None)
        if group is None:
            groups.append([peak])
        else:
            group.append(peak)
    return groups


def _overlaps(peak: _Peak, cell: _Peak, times: list[int], sample_rate: float) -> bool:
    """Whether ``peak`` lies within the band of a declared cell's PSS (its strongest peak
    ``cell``) at one of the moments its PSS was seen (``times``)."""
    def band(p: _Peak) -> tuple[float, float]:
        bin_hz = sample_rate / round(sample_rate / p.scs)
        return p.first_bin * bin_hz, (p.first_bin + PSS_LENGTH) * bin_hz

    (a, b), (c, d) = band(peak), band(cell)
    symbol = round(sample_rate / min(peak.scs, cell.scs))
    return a < d and c < b and any(abs(peak.start - t) < symbol for t in times)


@cache
def _turn(size: int, shift: float) -> np.ndarray:
    """The samples of a window turned down ``shift`` of its bins."""
    return np.exp(-2j * np.pi * shift * np.arange(size) / size).astype(np.complex64)


@cache
def _differential_spectra(size: int) -> np.ndarray:
    """The conjugate spectra of the three PSS's neighbouring products, d(n) d(n + 1), for
    correlation along ``size`` bins: (3, size)."""
    out = np.zeros((3, size), dtype=np.complex64)
    for n_id2 in range(3):
        d = pss_sequence(n_id2)
        out[n_id2, : PSS_LENGTH - 1] = d[:-1] * d[1:]
    return np.conj(scipy.fft.fft(out, axis=1)).astype(np.complex64)


@cache
def _sss_table(n_id2: int) -> np.ndarray:
    """The 336 SSS of an N_ID2, unit energy: (336, 127)."""
    table = np.array([sss_sequence(3 * n_id1 + n_id2) for n_id1 in range(336)])
    return (table / np.sqrt(PSS_LENGTH)).astype(np.complex64)


def _power(z: np.ndarray) -> np.ndarray:
    """|z|^2, without the square root of np.abs."""
    return z.real * z.real + z.imag * z.imag


def _window_sums(values: np.ndarray, length: int) -> np.ndarray:
    """sum values[..., k + n] for n < length, for every k with room (the last axis)."""
    cumulative = np.cumsum(values, axis=-1, dtype=np.float64)
    zero = np.zeros((*values.shape[:-1], 1))
    cumulative = np.concatenate([zero, cumulative], axis=-1)
    return (cumulative[..., length:] - cumulative[..., :-length]).astype(np.float32)

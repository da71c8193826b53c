"""LTE cells found by their synchronisation signals: LTE beyond doubt, and which cell.

Every LTE downlink carrier sends its PSS and SSS (36.211 6.11) twice in each 10 ms frame, idle
or loaded, FDD or TDD, on the 62 subcarriers around the carrier's centre. Nothing else on the
air sends them (NR's PSS is an m-sequence of 127). A spectrogram can leave the class of a
carrier in doubt: a loaded LTE carrier that fills the view looks like flat noise, or like an NR
carrier. Its PSS, correlated over a few half-frames, names it; its SSS confirms it and gives the
cell's identity (PCI) and duplex mode.

The search (:func:`find_lte_cells`), at the cell-search rate of 1.92 MS/s (128-sample symbols):

1. One FFT of the samples, the bins within ``DC_NOTCH_HZ`` of the view's 0 Hz cleared. The PSS
   band (+-480 kHz) around a candidate centre is a window of its bins: the band shifted to 0 Hz
   and resampled in one step.
2. PSS: the window times each of the three PSS's conjugate spectra, transformed back, is the
   correlation at every lag. The normalised correlation (1 for the PSS alone, about 1/62 for
   noise) is averaged over the half-frames (5 ms) at each lag within one.
3. A Zadoff-Chu sequence shifted in frequency by whole subcarriers is nearly itself shifted in
   time, so a PSS correlates well at centres some whole subcarriers off its own (up to a dozen
   and more), and badly at centres half a subcarrier off. The first pass therefore tries centres
   2.5 subcarriers apart (``FIRST_STEP_HZ``): one of any two neighbours lies within a quarter
   subcarrier of a whole number of subcarriers from the carrier's centre, and a carrier is seen
   at a fifth of the cost of trying every half subcarrier. The second pass tries every half
   subcarrier (``STEP_HZ``; a PSS between two loses at most 0.9 dB) around the strongest
   first-pass centres of each carrier (``REFINE_PEAKS``, ``REFINE_STEPS``).
4. The PSS alone places a carrier only up to some whole numbers of subcarriers. The SSS
   (m-sequences, without that property) settles it: for the strongest PSS candidates of a
   carrier, the SSS symbol (one symbol before the PSS for FDD, three for TDD), its subcarriers
   phased by the PSS's, is correlated with the 168 SSS of the PSS's group in both half-frame
   orders. The best names the cell, and its half-frame order and PSS place its radio frames.
5. The cell's PBCH, where its radio frames are, gives its MIB (:mod:`monitor.dsp.lte_mib`):
   the carrier's bandwidth.

A cell is declared where both averages exceed the thresholds at which noise alone would cross
them once in ``1 / FALSE_ALARM`` searches (each average over ``K`` half-frames is a gamma
variable of ``K`` times 62 degrees of freedom; :func:`threshold`), its SSS correlates at least
``SSS_SHARE`` as well as its PSS, and, where its MIB did not decode, it lies in no other cell's
decoded channel (:func:`outside_channels`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

import numpy as np
import scipy.fft
from scipy.stats import gamma

from monitor.bandwidths import lte_bandwidth_hz
from monitor.dsp.lte_mib import decode_mib, smoothed
from monitor.synth.bch import Mib
from monitor.synth.lte import lte_occupied_hz, pss_sequence, sss_sequence

__all__ = ["FALSE_ALARM", "FIRST_STEP_HZ", "MIN_SPACING_HZ", "PSS_HALF_BAND_HZ", "STEP_HZ",
           "LteCell", "find_lte_cells", "outside_channels", "threshold"]

SCS_HZ = 15e3
RATE_HZ = 1.92e6
SYMBOL = 128
#: Half the band a PSS occupies, with its reserved subcarriers: a candidate centre needs this
#: much of the view on each side.
PSS_HALF_BAND_HZ = 32 * SCS_HZ
#: Half the band of the PBCH (72 subcarriers) and its reference signals, with a subcarrier to
#: spare.
PBCH_HALF_BAND_HZ = 37 * SCS_HZ
HALF_FRAME = 9600  # samples at RATE_HZ
#: Samples from the SSS's useful part to the PSS's (36.211 6.11.1.2, 6.11.2.2, normal CP):
#: FDD, the symbol before (CP 9); TDD, symbol 13 of the subframe before against symbol 2.
SSS_LEAD = {"FDD": SYMBOL + 9, "TDD": 3 * SYMBOL + 10 + 9 + 9}
#: Samples from a radio frame's start to its first PSS's useful part: FDD, symbol 6 of
#: subframe 0; TDD, symbol 2 of subframe 1.
PSS_AT = {"FDD": 138 + 5 * 137 + 9, "TDD": 1920 + 138 + 137 + 9}
#: The second pass's candidate centres: every half subcarrier.
STEP_HZ = SCS_HZ / 2
#: The first pass's: every 2.5 subcarriers, on the same lattice.
FIRST_STEP_HZ = 5 * STEP_HZ
#: The strongest first-pass centres of a carrier around which the second pass looks, those with
#: at least ``REFINE_SHARE`` of the strongest's correlation, and how many ``STEP_HZ`` each side.
#: Measured on the first 150 test-set frames with LTE carriers (190 carriers, the labels as the
#: network's classes; a prototype of the two passes): 4 centres 8 steps each side found 134, 2
#: centres 12 steps 130, every half subcarrier of the same budget 105.
REFINE_PEAKS = 4
REFINE_SHARE = 0.5
REFINE_STEPS = 8
#: Half the band around the view's 0 Hz that the search leaves out: a receiver's LO leakage
#: and flicker noise there (17 dB over the LTE carrier at 0 Hz and 10 dB at 7.5 kHz in
#: lte-fdd-1860-rtlsdr, a line 65 dB over the floor in a USRP's) swamp the PSS and the PBCH of
#: a carrier whose centre is near, as a radio tuned to the carrier puts it. A carrier loses
#: less than one of its PBCH's 72 subcarriers. Measured on lte-fdd-1860-rtlsdr's 25 stretches
#: of 40 ms: cell 86's MIB decodes in 11 with it (1 without; 13 with 12 kHz, 6 with 16 kHz).
DC_NOTCH_HZ = 10e3
#: The narrowest LTE channel: two carriers' centres are at least this far apart.
MIN_SPACING_HZ = 1.4e6
#: Subcarriers a channel estimate is averaged over (135 kHz, within the coherence bandwidth of
#: all but the most dispersive channels).
SMOOTHING = 9
#: PSS candidates of one carrier whose SSS is tried.
SSS_CANDIDATES = 8
#: A cell's SSS correlates about as well as its PSS (the SSS's channel is the PSS's): at least
#: 0.49 as well in all 144 test-set cells of one measurement (150 frames; `docs/training.md`,
#: "LTE cells"). At a centre some whole subcarriers off a strong carrier's, its PSS still
#: correlates (point 3) and an SSS there can clear the threshold by chance (0.13-0.16 of the PSS
#: in the two such false cells of the same measurement): a cell needs this share.
SSS_SHARE = 0.3
#: The chance that noise alone yields a PSS candidate in one search, and the same for an SSS.
FALSE_ALARM = 1e-3
#: Degrees of freedom of one normalised correlation of noise (the subcarriers of a PSS or SSS).
NOISE_DOF = 62
_SUBCARRIERS = np.r_[-31:0, 1:32]  # the PSS's and SSS's, DC unused


@dataclass(frozen=True)
class LteCell:
    """An LTE cell found in the samples.

    Attributes:
        centre_hz: the carrier's centre, Hz from the view's centre (within ``STEP_HZ / 2`` and
            the receiver's frequency error).
        cell_id: the physical cell identity, 0-503.
        duplex: ``"FDD"`` or ``"TDD"``.
        pss, sss: their normalised correlations averaged over the half-frames, 0-1.
        mib: the cell's master information block, where its PBCH decoded
            (:mod:`monitor.dsp.lte_mib`): the carrier's bandwidth.
        ports: the cell's number of antenna ports, where its PBCH decoded.
    """

    centre_hz: float
    cell_id: int
    duplex: str
    pss: float
    sss: float
    mib: Mib | None = None
    ports: int | None = None

    @property
    def occupied_hz(self) -> float | None:
        """The carrier's resource blocks and DC subcarrier, Hz, where its MIB is known."""
        return None if self.mib is None else lte_occupied_hz(self.mib.n_rb)

    @property
    def channel_hz(self) -> float | None:
        """The carrier's channel bandwidth (TS 36.101 table 5.6-1), where its MIB is known."""
        return None if self.mib is None else lte_bandwidth_hz(self.mib.n_rb)


@dataclass(frozen=True)
class _Peak:
    centre_hz: float
    n_id2: int
    lag: int
    strength: float


def threshold(half_frames: int, trials: int, false_alarm: float = FALSE_ALARM) -> float:
    """The average normalised correlation that noise alone exceeds, in any of ``trials``
    places, with probability ``false_alarm``."""
    return float(gamma.isf(false_alarm / trials, half_frames, scale=1.0 / NOISE_DOF)
                 / half_frames)


def find_lte_cells(samples: np.ndarray, sample_rate: float, seconds: float = 0.02,
                   low_hz: float | None = None, high_hz: float | None = None,
                   centres_hz: np.ndarray | None = None) -> list[LteCell]:
    """The LTE cells whose PSS and SSS the samples hold, strongest first, one per carrier.

    Args:
        samples: complex baseband IQ at ``sample_rate``, the view's centre at 0 Hz.
        sample_rate: Hz.
        seconds: how much of the samples to search (whole half-frames of it; at least 5 ms).
        low_hz, high_hz: first-pass centres in this range only (Hz from the view's centre); by
            default every centre whose PSS band lies within the view.
        centres_hz: the first pass's centres (those in the range), instead of every
            ``FIRST_STEP_HZ`` of it; the second pass looks around them.

    Raises:
        ValueError: for fewer samples than one half-frame, or a view narrower than a PSS.
    """
    half_frames = int(min(seconds, len(samples) / sample_rate) * RATE_HZ / HALF_FRAME + 1e-9)
    if half_frames < 1:
        raise ValueError(f"an LTE cell search needs 5 ms of samples, got "
                         f"{len(samples) / sample_rate * 1e3:.2f} ms")
    edge = sample_rate / 2 - PSS_HALF_BAND_HZ
    if edge < 0:
        raise ValueError(f"a {sample_rate / 1e6:g} MS/s view is narrower than an LTE PSS")
    low = -edge if low_hz is None else max(low_hz, -edge)
    high = edge if high_hz is None else min(high_hz, edge)
    if high < low:
        return []
    if centres_hz is None:
        first = np.arange(np.ceil(low / FIRST_STEP_HZ), np.floor(high / FIRST_STEP_HZ) + 1)
        centres_hz = first * FIRST_STEP_HZ if len(first) else np.array([(low + high) / 2])
    centres = np.asarray(centres_hz)
    centres = centres[(centres >= low) & (centres <= high)]
    if not len(centres):
        return []
    search = _Search(samples, sample_rate, half_frames)
    pss_limit = threshold(half_frames, len(centres) * HALF_FRAME * 3)
    tried = {round(c / STEP_HZ): search.pss(c) for c in centres}
    for group in _carriers([p for p in tried.values() if p.strength > pss_limit]):
        for peak in group[:REFINE_PEAKS]:
            if peak.strength < REFINE_SHARE * group[0].strength:
                break
            middle = round(peak.centre_hz / STEP_HZ)
            for k in range(middle - REFINE_STEPS, middle + REFINE_STEPS + 1):
                if k not in tried and abs(k * STEP_HZ) <= edge:
                    tried[k] = search.pss(k * STEP_HZ)
    peaks = [p for p in tried.values() if p.strength > pss_limit]
    cells = []
    for group in _carriers(peaks):
        sss_limit = threshold(half_frames, len(group) * 168 * 2 * len(SSS_LEAD))
        best, frame_start = max(map(search.sss, group), key=lambda c: c[0].sss)
        if best.sss > max(sss_limit, SSS_SHARE * best.pss):
            cells.append(search.with_mib(best, frame_start))
    return sorted(outside_channels(cells), key=lambda c: -c.pss)


def outside_channels(cells: list[LteCell]) -> list[LteCell]:
    """The cells less those without a MIB whose centre lies in another's decoded channel:
    carriers do not overlap. (A loaded LTE carrier's reference signals and control channels
    repeat every frame, so inside one the correlations' noise model, independent half-frames,
    holds less well: searches of 150 test-set frames crossed both thresholds there 5 times.)"""
    channels = [(c.centre_hz, c.occupied_hz / 2) for c in cells if c.occupied_hz is not None]
    return [c for c in cells if c.mib is not None or
            not any(abs(c.centre_hz - centre) < half for centre, half in channels)]


class _Search:
    """The samples' spectrum, and the PSS and SSS correlations at a candidate centre."""

    def __init__(self, samples: np.ndarray, sample_rate: float, half_frames: int) -> None:
        self.m = half_frames * HALF_FRAME
        n = round(self.m * sample_rate / RATE_HZ)  # bin spacing sample_rate / n
        self.half_frames = half_frames
        self.bin_hz = sample_rate / n
        self.spectrum = scipy.fft.fft(np.asarray(samples[:n], dtype=np.complex64))
        notch = int(DC_NOTCH_HZ / self.bin_hz)
        self.spectrum[: notch + 1] = 0
        self.spectrum[len(self.spectrum) - notch :] = 0
        self.offsets = np.fft.fftfreq(self.m, 1 / self.m).astype(np.int64)  # bins, FFT order
        self.replicas = _pss_spectra(self.m)

    def band(self, centre_hz: float, half_hz: float = PSS_HALF_BAND_HZ) -> np.ndarray:
        """The band of ``half_hz`` each side of ``centre_hz`` at 0 Hz, as a spectrum of ``m``
        bins; nothing beyond the view."""
        bins = round(centre_hz / self.bin_hz) + self.offsets
        keep = (np.abs(self.offsets) * self.bin_hz <= half_hz) & (
            np.abs(bins) < len(self.spectrum) // 2)
        return np.where(keep, self.spectrum[bins % len(self.spectrum)], 0)

    def pss(self, centre_hz: float) -> _Peak:
        """The strongest PSS at ``centre_hz``: its group, lag and averaged correlation."""
        band = self.band(centre_hz)
        x = scipy.fft.ifft(band)
        energy = np.maximum(_sliding_energy(x, SYMBOL), 1e-30)
        corr = np.abs(scipy.fft.ifft(band[None] * self.replicas, axis=-1)) ** 2 / energy
        mean = corr.reshape(3, self.half_frames, HALF_FRAME).mean(axis=1)
        n_id2, lag = np.unravel_index(int(mean.argmax()), mean.shape)
        return _Peak(float(centre_hz), int(n_id2), int(lag), float(mean[n_id2, lag]))

    def sss(self, peak: _Peak) -> tuple[LteCell, int]:
        """The cell whose SSS best fits a PSS peak, in either duplex mode and half-frame order,
        and the sample (at 1.92 MS/s) at which one of its radio frames starts."""
        x = scipy.fft.ifft(self.band(peak.centre_hz))
        pss = pss_sequence(peak.n_id2)
        best = (0.0, 0, "FDD", 0)
        for duplex, lead in SSS_LEAD.items():
            scores = np.zeros((2, 168))
            for h in range(self.half_frames):
                start = peak.lag + h * HALF_FRAME
                channel = smoothed(_subcarriers(x, start) * np.conj(pss), SMOOTHING)
                z = _subcarriers(x, start - lead) * np.conj(channel)
                power = max(float(np.sum(np.abs(z) ** 2)), 1e-30)
                for order in range(2):  # whether this half-frame holds subframe 0 or 5
                    table = _sss_table(peak.n_id2)[(h + order) % 2]
                    # elementwise, not a matrix product: BLAS threads beside the network's
                    # cost more than this small product
                    scores[order] += np.abs((table * z).sum(axis=-1)) ** 2 / power
            order, n_id1 = np.unravel_index(int(scores.argmax()), scores.shape)
            score = float(scores[order, n_id1]) / self.half_frames
            if score > best[0]:
                best = (score, int(n_id1), duplex, int(order))
        score, n_id1, duplex, order = best
        # order 0: the first half-frame searched holds subframe 0
        frame_start = (peak.lag - PSS_AT[duplex] + order * HALF_FRAME) % (2 * HALF_FRAME)
        return (LteCell(peak.centre_hz, 3 * n_id1 + peak.n_id2, duplex, peak.strength, score),
                frame_start)

    def with_mib(self, cell: LteCell, frame_start: int) -> LteCell:
        """The cell with its MIB, where its PBCH decodes."""
        x = scipy.fft.ifft(self.band(cell.centre_hz, PBCH_HALF_BAND_HZ)).astype(np.complex64)
        decoded = decode_mib(x, frame_start, cell.cell_id)
        if decoded is None:
            return cell
        return replace(cell, mib=decoded.mib, ports=decoded.ports)


def _carriers(peaks: list[_Peak]) -> list[list[_Peak]]:
    """The peaks grouped by carrier: the strongest with every other closer to it than two
    carriers' centres can be, in turn; the ``SSS_CANDIDATES`` strongest of each."""
    left = sorted(peaks, key=lambda p: -p.strength)
    groups = []
    while left:
        near = [p for p in left if abs(p.centre_hz - left[0].centre_hz) < MIN_SPACING_HZ]
        groups.append(near[:SSS_CANDIDATES])
        left = [p for p in left if p not in near]
    return groups


def _subcarriers(x: np.ndarray, start: int) -> np.ndarray:
    """The 62 PSS/SSS subcarriers of the 128-sample symbol starting at ``start`` (circular)."""
    symbol = np.take(x, np.arange(start, start + SYMBOL), mode="wrap")
    return np.fft.fft(symbol)[_SUBCARRIERS] / np.sqrt(SYMBOL)


@cache
def _pss_spectra(m: int) -> np.ndarray:
    """The three PSS's conjugate spectra for correlation over ``m`` samples: (3, m).

    Each replica is one useful OFDM symbol of unit energy.
    """
    out = np.zeros((3, m), dtype=np.complex64)
    for n_id2 in range(3):
        grid = np.zeros(SYMBOL, dtype=np.complex64)
        grid[_SUBCARRIERS] = pss_sequence(n_id2)
        symbol = np.fft.ifft(grid)
        padded = np.zeros(m, dtype=np.complex64)
        padded[:SYMBOL] = symbol / np.linalg.norm(symbol)
        out[n_id2] = np.conj(np.fft.fft(padded))
    return out


@cache
def _sss_table(n_id2: int) -> np.ndarray:
    """Conjugate SSS values of subframes 0 and 5 for every N_ID1 of a group: (2, 168, 62),
    unit energy."""
    table = np.array([[sss_sequence(n_id1, n_id2, sf) for n_id1 in range(168)]
                      for sf in (0, 5)])
    return (np.conj(table) / np.sqrt(62)).astype(np.complex64)


def _sliding_energy(x: np.ndarray, length: int) -> np.ndarray:
    """sum |x[i + k]|^2 for k < length, for every i (circular, as the correlation is)."""
    power = np.abs(x) ** 2
    wrapped = np.concatenate([power, power[: length - 1]])
    cumulative = np.concatenate([[0.0], np.cumsum(wrapped)])
    return cumulative[length : length + len(x)] - cumulative[: len(x)]

"""LTE and NR cells in a frame's carriers: where to look for them, and the columns they name.

The PSS search (:mod:`monitor.dsp.lte_sync`) costs a few milliseconds per candidate centre, so it
looks only where the network painted signal and an LTE carrier's centre can lie
(:func:`search_ranges`), likeliest first, in rounds of at most ``MAX_CENTRES`` first-pass
centres (every 2.5 subcarriers), each refining around those where a PSS correlates; where a
cell's MIB decodes, the next round looks beside its channel first (:func:`beside_channels`),
then on where the ranges left off, until ``MAX_SEARCHED`` centres have been tried. A cell found
names its carrier LTE (:func:`~monitor.occupancy.tracker.carrier_classes`); where its MIB
decoded, the signal in its channel. A carrier's bandwidth does not change, so a cell keeps the
MIB an earlier search decoded (:func:`with_known_mibs`) where a later one, at a worse moment,
could not.

The NR search (:mod:`monitor.dsp.nr_sync`) correlates every bin of every symbol-long window at
once, so it takes the whole view: an SSB found names the carrier that holds it NR. What the
cells say is handed on as :class:`~monitor.occupancy.tracker.CellMarks` (:func:`cell_marks`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from monitor.bandwidths import LTE_BANDWIDTHS
from monitor.dsp.geometry import Geometry
from monitor.dsp.lte_sync import (
    FIRST_STEP_HZ,
    MIN_SPACING_HZ,
    PSS_HALF_BAND_HZ,
    STEP_HZ,
    LteCell,
    find_lte_cells,
    outside_channels,
)
from monitor.dsp.nr_sync import MIN_SAMPLE_RATE, MIN_SECONDS, NrCell, find_nr_cells
from monitor.occupancy.tracker import CellMarks, occupied_spans

__all__ = ["LTE_REACH_HZ", "NO_CELLS", "SEARCH_EVERY", "SEARCH_SECONDS", "CellWatch", "FrameCells",
           "beside_channels", "cell_marks", "find_frame_cells", "search_cells", "search_ranges",
           "with_known_mibs"]

#: Half the widest LTE channel (20 MHz): no LTE carrier reaches further from its centre.
LTE_REACH_HZ = 10e6
#: Samples searched: a frame's 40 ms, eight half-frames.
SEARCH_SECONDS = 0.04
#: Seconds of stream between two searches of a live stream: a cell stays for minutes, and a
#: search costs about 6-11 ms a candidate centre on one core (1.4 s for every half subcarrier
#: of a 1.92 MS/s view on this 2-core machine, the other core busy), which a live stream at
#: 2.4 MS/s on that machine pays in skipped frames (8 % of them with a search every 10 s).
SEARCH_EVERY = 30.0
#: First-pass centres a round of a search tries at most (about 1.5 s on one core, and as much
#: again to refine around a few carriers), the likeliest places first (:func:`search_ranges`):
#: 9.6 MHz, all of a view up to 10 MS/s; wider views are searched where their spans' middles
#: and edges put a centre, and beyond that in part.
MAX_CENTRES = 256
#: First-pass centres after which a search starts no more rounds (its last round may take it
#: up to ``MAX_CENTRES - 1`` beyond): 38.4 MHz, all of a view up to 40 MS/s. On the test set's
#: 277 frames with an LTE carrier whose PSS lies in view, searching on past the first round
#: found 284 of their 347 carriers instead of 253, lost none, and took 3.0 s a frame on one
#: core (11.5 s at most, at 61.44 MS/s).
MAX_SEARCHED = 1024
#: The network's error at a span's edges, in columns and as a share of its width.
EDGE_COLUMNS = 3
EDGE_SHARE = 0.02
#: Half of each LTE channel bandwidth: where a carrier's centre lies from its edge.
HALF_WIDTHS_HZ = tuple(sorted(bw / 2 for bw in LTE_BANDWIDTHS))
#: How far a carrier touching another may have its centre from where the two channels' nominal
#: spacing puts it (TS 36.101 5.7.1: adjusted to the 100 kHz channel raster).
BESIDE_HZ = 100e3
#: Two searches' cells of one PCI are one cell where their centres are this close.
SAME_CELL_HZ = 2 * STEP_HZ


def search_ranges(classes: np.ndarray, geometry: Geometry) -> list[tuple[float, float]]:
    """Where an LTE carrier's centre may lie, Hz from the view's centre, likeliest first:

    1. the middle of each span the view shows whole, give or take the network's error at its
       edges (``EDGE_COLUMNS`` and ``EDGE_SHARE`` of the width each way);
    2. the spans the view cuts, near the view's centre: one tunes a radio to the carrier one
       wants to see, and a receiver's filter can make an edge of a span that is no carrier's;
    3. half an LTE channel (10-0.7 MHz, widest first) in from the edge a cut span shows, give
       or take the same error (a carrier whose centre lies beyond the view shows no PSS);
    4. the same from both edges of the spans the view shows whole: a carrier beside others in
       one span (an LTE carrier beside an NR one) has one of the span's edges;
    5. the rest of the cut spans, then of every span: a network that paints a carrier in
       pieces puts the middles of its pieces anywhere.
    """
    width = classes.shape[1]
    pixel = geometry.pixel_hz
    whole, one_edge, both_edges, cut, every = [], [], [], [], []
    for low, high in occupied_spans(classes != 0):
        low_hz, high_hz = _hz(low, geometry), _hz(high, geometry)
        every.append((low_hz, high_hz))
        shown = [(edge, inward) for edge, inward, seen in
                 ((low_hz, 1.0, low > 0), (high_hz, -1.0, high < width)) if seen]
        if len(shown) == 2:
            reach = EDGE_COLUMNS * pixel + EDGE_SHARE * (high_hz - low_hz)
            whole.append((0.5 * (low_hz + high_hz) - reach, 0.5 * (low_hz + high_hz) + reach))
        else:
            cut.append((low_hz, high_hz))
        for half in reversed(HALF_WIDTHS_HZ):
            reach = EDGE_COLUMNS * pixel + EDGE_SHARE * 2 * half
            if len(shown) == 2 and 2 * half > high_hz - low_hz + 2 * reach:
                continue  # a channel wider than the span it would lie in whole
            for edge, inward in shown:
                centre = edge + inward * half
                if low_hz <= centre <= high_hz:
                    (both_edges if len(shown) == 2 else one_edge).append(
                        (centre - reach, centre + reach))
    middle = MAX_CENTRES * FIRST_STEP_HZ / 2
    nearer = [(max(low, -middle), min(high, middle)) for low, high in cut
              if max(low, -middle) < min(high, middle)]
    return [*_merged(whole), *_merged(nearer), *one_edge, *both_edges, *_merged(cut),
            *_merged(every)]


def find_frame_cells(samples: np.ndarray, geometry: Geometry, classes: np.ndarray,
                     seconds: float = SEARCH_SECONDS) -> list[LteCell]:
    """The LTE cells in a frame's signal spans, one per carrier, strongest first.

    Each round tries at most ``MAX_CENTRES`` first-pass centres: the first, the likeliest of
    :func:`search_ranges`; each later one, first where a carrier touching the channel of a cell
    whose MIB the round before decoded would have its centre (:func:`beside_channels`: an
    operator's carriers side by side paint one span, whose middle and edges need not be any
    carrier's centre), then the ranges' centres not yet tried, until ``MAX_SEARCHED`` centres
    have been tried.

    Args:
        samples: the frame's IQ (at least 5 ms of it; the first ``seconds`` are searched).
        geometry: the frame's geometry.
        classes: (rows, width): the network's class of every pixel.
    """
    if len(samples) < 0.005 * geometry.sample_rate:
        return []
    spans = [(_hz(low, geometry), _hz(high, geometry)) for low, high in
             occupied_spans(classes != 0)]
    tried: set[int] = set()
    cells: list[LteCell] = []
    likely = search_ranges(classes, geometry)
    ranges = likely
    while len(tried) < MAX_SEARCHED and (centres := _first_centres(ranges, geometry, tried)):
        tried.update(centres)
        found = find_lte_cells(samples, geometry.sample_rate, seconds,
                               centres_hz=np.array(centres) * FIRST_STEP_HZ)
        cells = _one_per_carrier([*cells, *found])
        ranges = [*beside_channels([c for c in found if c in cells], spans), *likely]
    return sorted(outside_channels(cells), key=lambda c: -c.pss)


def _one_per_carrier(cells: list[LteCell]) -> list[LteCell]:
    """Of cells closer than ``MIN_SPACING_HZ``, the one whose MIB decoded, else the one whose
    PSS correlates best: a strong PSS correlates at centres some whole subcarriers off its own
    too (:mod:`monitor.dsp.lte_sync`), and a round that saw only such a centre can find a cell
    there before a later round tries the carrier's own."""
    kept: list[LteCell] = []
    for cell in sorted(cells, key=lambda c: (c.mib is None, -c.pss)):
        if all(abs(cell.centre_hz - k.centre_hz) >= MIN_SPACING_HZ for k in kept):
            kept.append(cell)
    return kept


@dataclass(frozen=True)
class FrameCells:
    """The cells found in a frame's IQ: LTE (:mod:`monitor.dsp.lte_sync`) and NR
    (:mod:`monitor.dsp.nr_sync`), strongest first."""

    lte: tuple[LteCell, ...] = ()
    nr: tuple[NrCell, ...] = ()


#: No cells found (yet).
NO_CELLS = FrameCells()


def search_cells(samples: np.ndarray, geometry: Geometry, classes: np.ndarray,
                 seconds: float = SEARCH_SECONDS) -> FrameCells:
    """The LTE cells in a frame's signal spans (:func:`find_frame_cells`) and the NR cells
    whose SSB it holds, in its first ``seconds``."""
    nr: list[NrCell] = []
    rate = geometry.sample_rate
    if rate >= MIN_SAMPLE_RATE and len(samples) >= MIN_SECONDS * rate:
        nr = find_nr_cells(samples, rate, seconds)
    return FrameCells(tuple(find_frame_cells(samples, geometry, classes, seconds)), tuple(nr))


def beside_channels(cells: list[LteCell], spans: list[tuple[float, float]]
                    ) -> list[tuple[float, float]]:
    """Where an LTE carrier touching a decoded cell's channel would have its centre, Hz from the
    view's centre: half of each channel bandwidth beyond each edge of the channel, give or take
    ``BESIDE_HZ``, where a signal span (``spans``, Hz) holds that centre."""
    ranges = []
    for cell in cells:
        if cell.channel_hz is None:
            continue
        for side in (-1.0, 1.0):
            edge = cell.centre_hz + side * cell.channel_hz / 2
            for half in HALF_WIDTHS_HZ:
                centre = edge + side * half
                if any(low <= centre <= high for low, high in spans):
                    ranges.append((centre - BESIDE_HZ, centre + BESIDE_HZ))
    return _merged(ranges)


def _first_centres(ranges: list[tuple[float, float]], geometry: Geometry, tried: set[int]
                   ) -> list[int]:
    """The first-pass centres (in ``FIRST_STEP_HZ`` from the view's centre) of ``ranges``, in
    their order, at most ``MAX_CENTRES``, none ``tried`` before, none whose PSS leaves the
    view; the middle of a range where it does not fit, the nearest centre where it is narrower
    than a step."""
    edge = geometry.sample_rate / 2 - PSS_HALF_BAND_HZ
    chosen: dict[int, None] = {}
    for low, high in ranges:
        low, high = max(low, -edge), min(high, edge)
        if high < low:
            continue
        steps = list(range(math.ceil(low / FIRST_STEP_HZ), math.floor(high / FIRST_STEP_HZ) + 1))
        steps = [k for k in steps or [round((low + high) / 2 / FIRST_STEP_HZ)]
                 if k not in chosen and k not in tried and abs(k * FIRST_STEP_HZ) <= edge]
        room = MAX_CENTRES - len(chosen)
        if len(steps) > room:
            first = (len(steps) - room) // 2
            steps = steps[first : first + room]
        chosen.update(dict.fromkeys(steps))
    return list(chosen)


class CellWatch:
    """The LTE and NR cells of a stream, searched every ``every`` seconds of it.

    It holds the newest frame's worth of samples (:meth:`push`); a search (:meth:`current`, due
    every ``every`` seconds of stream) looks in the signal spans of the frame segmented then
    (:func:`search_cells`), and its cells hold until the next search, or until a retune
    (:meth:`reset`) moves every carrier.

    A search takes up to a few seconds. A live stream cannot wait for it: with ``background``
    it runs on a thread of its own (one at a time; numpy's FFTs leave the interpreter to the
    network meanwhile), and its cells take effect at the first frame after it ends. Without,
    it runs in :meth:`current`, so a replay gives the same classes on every machine.

    Args:
        geometry: the stream's geometry.
        every: seconds of stream between searches.
        background: search on a thread of its own (settable: the pipeline sets it from its
            source when it runs).
    """

    def __init__(self, geometry: Geometry, every: float = SEARCH_EVERY,
                 background: bool = False) -> None:
        self.geometry = geometry
        self.every_samples = max(1, round(every * geometry.sample_rate))
        self.cells = NO_CELLS
        self.searches = 0
        self._blocks: deque[np.ndarray] = deque()
        self._held = 0
        self._since = self.every_samples  # the first frame is searched
        self.background = background
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[FrameCells] | None = None

    def push(self, samples: np.ndarray) -> None:
        """The stream's next samples (a block's, on the host)."""
        self._blocks.append(samples)
        self._held += len(samples)
        self._since += len(samples)
        while self._held - len(self._blocks[0]) >= self.geometry.frame_samples:
            self._held -= len(self._blocks.popleft())

    def reset(self, moved: bool = True) -> None:
        """A break in the stream: the samples held are of another stretch. Where the view
        ``moved`` (a retune), so are the cells and the result of a search still running,
        which are dropped, and the next frame is searched; a break at the same frequency (lost
        samples, a looped replay) keeps them, as the carriers are where they were."""
        self._blocks.clear()
        self._held = 0
        if moved:
            self._since = self.every_samples
            self.cells = NO_CELLS
            self._pending = None

    def current(self, classes: np.ndarray) -> FrameCells:
        """The cells in force for a frame of ``classes``, searching first where a search is
        due."""
        if self._pending is not None and self._pending.done():
            self._take(self._pending.result())
            self._pending = None
        if self._since >= self.every_samples and self._pending is None:
            held = np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.complex64)
            newest = held[-round(SEARCH_SECONDS * self.geometry.sample_rate):]
            self.searches += 1
            self._since = 0
            if not self.background:
                self._take(search_cells(newest, self.geometry, classes))
                return self.cells
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="cells")
            self._pending = self._pool.submit(search_cells, newest, self.geometry,
                                              classes.copy())
        return self.cells

    def _take(self, found: FrameCells) -> None:
        """A search's cells in force, the LTE cells with the MIBs known before."""
        self.cells = replace(found, lte=tuple(with_known_mibs(list(found.lte),
                                                              self.cells.lte)))


def with_known_mibs(cells: list[LteCell], known: Sequence[LteCell]) -> list[LteCell]:
    """The cells, each whose MIB did not decode given the MIB that ``known`` holds for it (the
    same PCI within ``SAME_CELL_HZ``), with that search's system frame number."""
    out = []
    for cell in cells:
        held = next((k for k in known if k.mib is not None and k.cell_id == cell.cell_id
                     and abs(k.centre_hz - cell.centre_hz) <= SAME_CELL_HZ), None)
        if cell.mib is None and held is not None:
            cell = replace(cell, mib=held.mib, ports=held.ports)
        out.append(cell)
    return out


def cell_marks(cells: FrameCells, geometry: Geometry) -> CellMarks:
    """What the cells say about a frame's carriers, in its columns: the centres of the LTE
    cells whose width is unknown (no MIB), the channels (resource blocks) of those whose MIB
    gave it, and the NR cells' SSB centres."""
    return CellMarks(
        lte_centres=[_column(c.centre_hz, geometry) for c in cells.lte if c.occupied_hz is None],
        lte_reach=LTE_REACH_HZ / geometry.pixel_hz,
        lte_channels=[(_column(c.centre_hz - c.occupied_hz / 2, geometry),
                       _column(c.centre_hz + c.occupied_hz / 2, geometry))
                      for c in cells.lte if c.occupied_hz is not None],
        nr_ssbs=[_column(c.ssb_hz, geometry) for c in cells.nr])


def _column(hz: float, geometry: Geometry) -> float:
    """Hz from the view's centre as a column position (column ``j`` spans ``[j, j+1)``)."""
    return hz / geometry.pixel_hz + geometry.width // 2 + 0.5


def _merged(ranges: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Ranges merged where they overlap, in order of frequency."""
    merged: list[tuple[float, float]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


def _hz(column: float, geometry: Geometry) -> float:
    """A column edge (``j`` is column ``j``'s low edge) in Hz from the view's centre."""
    return (column - geometry.width // 2 - 0.5) * geometry.pixel_hz

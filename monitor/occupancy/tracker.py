"""From segmented rows to emissions: carriers per chunk of rows, followed across chunks.

The tracker is a pure stage: it is fed chunks of consecutive spectrogram rows with their class
probabilities and powers, and returns the emissions that closed. A chunk is the rows segmented
since the last one (a hop, or more where frames were skipped).

A chunk's carriers are found on the signal first and classed second (:func:`carriers`): a column
is occupied when LTE or NR wins the pixel in at least ``MIN_COLUMN_SHARE`` of the rows where
either wins anything; the runs of occupied columns (gaps of one pixel bridged, runs shorter than
``MIN_PIXELS`` dropped) are the signal spans. Each column of a span takes the class that wins
more of its pixels, and a span splits where the column class changes, into runs at least
``MIN_SPLIT_SHARE`` of the span and ``MIN_SPLIT_PIXELS`` wide (narrower runs join the
neighbour they are voted closest to). So a carrier the network paints in patches of both classes
is one carrier of its majority class, and an LTE and an NR carrier side by side stay two. A
carrier is on in the rows where LTE or NR wins at least half of its columns.

Carriers join the open emission whose frequency span overlaps theirs most (intersection over
union at least ``MIN_OVERLAP``), whatever class they were given in this chunk; the rest open new
emissions. An emission's class is decided when it closes, by the LTE and NR probability summed
over all its pixels, and its confidence is the mean probability of that class: one carrier gives
one emission even where the network wavers between the classes from frame to frame, unless a
cell found in the IQ named one of its carriers (:class:`CellMarks`): an LTE cell's PSS
(:func:`lte_carriers`) makes it LTE, an NR cell's SSB (:func:`nr_carriers`) NR, its confidence
still the mean probability of that class (the log's definition), and it is logged whatever that
is, as the cell outweighs the network. (An SSB in a carrier that holds an LTE cell too names
only its part of it, a merger of two carriers by the network: such an emission keeps its class.)
Where an LTE cell's MIB gave its channel, the emission is logged with that channel's edges, in
view or not. An emission whose confidence is under ``min_confidence`` is not returned but
counted (:attr:`Tracker.unconfident`): where the network paints noise as signal it does so in
slivers of mean class probability well under a half, which would otherwise fill the log with
short emissions. An emission's power is the power within its band (pixel powers summed across,
averaged over its rows), in dBFS. An emission closes once it has not been seen for
``close_after`` seconds, at a break in the stream (lost samples, a retune), and at the end of
the run. With ``fit_channels``, an emission wholly in view (a pixel or more of the view beyond
each of its edges) is given the nominal channel of its class nearest to its painted span
(:func:`~monitor.occupancy.channels.fit_channel`); one that runs off the view keeps its pixels.
One wholly in view and narrower than a quarter of its class's narrowest channel is a sliver, not
a carrier: counted (:attr:`Tracker.narrow`), not returned. The rule is
:func:`~monitor.occupancy.channels.channel_edges`, which the waterfall's labels share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from monitor.dsp.geometry import Geometry
from monitor.occupancy.channels import channel_edges, fit_channel, wholly_in_view
from monitor.occupancy.emission import Emission

__all__ = ["DEFAULT_MIN_CONFIDENCE", "LABELS", "NO_MARKS", "CellMarks", "StreamClock", "Tracker",
           "carrier_classes", "carriers", "nr_carriers", "occupied_spans"]

LABELS = {1: "LTE", 2: "NR"}
LTE = 1  # the class an LTE cell gives the carriers it names
NR = 2  # and an NR cell's SSB
#: The monitor's default ``--min-confidence``: an emission is logged when its class is, on
#: average over its pixels, more likely than not.
DEFAULT_MIN_CONFIDENCE = 0.5
MIN_COLUMN_SHARE = 0.3
MIN_PIXELS = 2
MIN_OVERLAP = 0.3
MIN_SPLIT_SHARE = 0.15
MIN_SPLIT_PIXELS = 4
#: How far off a span's middle an LTE cell's centre may lie and the span still be its carrier
#: (:func:`_lte_shaped`): the network's error at the edges, in columns and as a share of the
#: span's width.
EDGE_COLUMNS = 3
CENTRE_TOLERANCE = 0.05


@dataclass(frozen=True)
class StreamClock:
    """Maps rows of the current stretch of stream to samples and times.

    Row r starts at sample ``first_sample + r * samples_per_row``; sample s was taken at
    ``time + (s - time_sample) / sample_rate`` (POSIX seconds).
    """

    first_sample: int
    samples_per_row: int
    sample_rate: float
    time: float
    time_sample: int

    def row_sample(self, row: int) -> int:
        return self.first_sample + row * self.samples_per_row

    def sample_time(self, sample: int) -> float:
        return self.time + (sample - self.time_sample) / self.sample_rate


@dataclass(frozen=True)
class CellMarks:
    """What the cells found in a frame's IQ (:mod:`monitor.occupancy.cells`) say about its
    carriers, in columns from the view's low edge (column ``j`` spans ``[j, j + 1)``).

    Attributes:
        lte_centres: where an LTE carrier's PSS was found (:mod:`monitor.dsp.lte_sync`), of the
            cells whose bandwidth is unknown.
        lte_reach: the widest LTE carrier's half-width (10 MHz).
        lte_channels: the channels ``[low, high)`` of the LTE cells whose MIB gave their
            bandwidth (:mod:`monitor.dsp.lte_mib`).
        nr_ssbs: the centres of the NR cells' SSBs (:mod:`monitor.dsp.nr_sync`).
    """

    lte_centres: Sequence[float] = ()
    lte_reach: float = np.inf
    lte_channels: Sequence[tuple[float, float]] = ()
    nr_ssbs: Sequence[float] = ()


#: No cells found.
NO_MARKS = CellMarks()


@dataclass
class _Open:
    first_row: int
    last_row: int
    low_px: float
    high_px: float
    rows_seen: int = 0
    class_sums: dict[int, float] = field(default_factory=lambda: dict.fromkeys(LABELS, 0.0))
    power_sum: float = 0.0
    pixels: int = 0
    edge_weight: float = 0.0
    edges_sum: list[float] = field(default_factory=lambda: [0.0, 0.0])
    lte_named: bool = False
    nr_named: bool = False
    lte_channel: tuple[float, float] | None = None  # columns, where a cell's MIB named it


class Tracker:
    """Emissions from chunks of segmented rows.

    Args:
        geometry: the spectrogram geometry (pixel width, row length).
        center_freq: RF centre of the view, Hz.
        close_after: seconds an emission may go unseen before it closes.
        min_confidence: emissions less confident than this are counted, not returned.
        fit_channels: give an emission wholly in view the nominal 3GPP channel nearest to it,
            and drop one too narrow to be a carrier.
    """

    def __init__(self, geometry: Geometry, center_freq: float, close_after: float = 0.25,
                 min_confidence: float = 0.0, fit_channels: bool = False) -> None:
        self.geometry = geometry
        self.center_freq = center_freq
        self.close_after_rows = max(1, round(close_after / geometry.row_seconds))
        self.min_confidence = min_confidence
        self.fit_channels = fit_channels
        self.unconfident = 0
        self.narrow = 0
        self._open: list[_Open] = []
        self._clock: StreamClock | None = None

    def start(self, clock: StreamClock, center_freq: float) -> list[Emission]:
        """Begin a new stretch of stream (after a break or a retune): closes what is open."""
        closed = self.close_all()
        self._clock = clock
        self.center_freq = center_freq
        return closed

    def update(self, first_row: int, probs: np.ndarray, power_db: np.ndarray,
               classes: np.ndarray | None = None, marks: CellMarks = NO_MARKS
               ) -> list[Emission]:
        """Feed a chunk of rows; return the emissions that closed.

        Args:
            first_row: index of the chunk's first row in the current stretch.
            probs: float, (rows, width, classes): class probabilities.
            power_db: float, (rows, width): pixel power, dBFS.
            classes: int, (rows, width): the class of every pixel, the argmax of ``probs``
                where the caller has it already.
            marks: what the cells found say (:func:`carrier_classes`): an emission an LTE
                cell names is LTE, one an NR cell's SSB names NR.
        """
        rows = probs.shape[0]
        winner = probs.argmax(axis=-1) if classes is None else classes
        signal = winner != 0
        seen: set[int] = set()
        found = carriers(winner)
        named = lte_carriers(winner, found, marks.lte_centres, marks.lte_reach,
                             marks.lte_channels)
        nr_named = {k for k, columns in nr_carriers(winner, found, marks).items()
                    if columns == (found[k][1], found[k][2])} - named
        for k, (_, low, high) in enumerate(found):
            on = signal[:, low:high].mean(axis=1) >= 0.5
            if not on.any():
                continue
            active = np.flatnonzero(on)
            block = np.s_[active[0] : active[-1] + 1, low:high]
            target = self._match(low, high, seen)
            if target is None:
                target = _Open(first_row + int(active[0]),
                               first_row + int(active[-1]), low, high)
                self._open.append(target)
            seen.add(id(target))
            target.lte_named |= k in named
            target.nr_named |= k in nr_named
            target.lte_channel = (_holding_channel(low, high, marks.lte_channels)
                                  or target.lte_channel)
            target.last_row = first_row + int(active[-1])
            n_rows = int(active[-1] - active[0]) + 1
            target.rows_seen += n_rows
            for cls in LABELS:
                target.class_sums[cls] += float(probs[block][..., cls].sum())
            target.power_sum += float((10 ** (power_db[block] / 10)).sum())
            target.pixels += n_rows * (high - low)
            target.edges_sum[0] += n_rows * low
            target.edges_sum[1] += n_rows * high
            target.edge_weight += n_rows
            target.low_px = target.edges_sum[0] / target.edge_weight
            target.high_px = target.edges_sum[1] / target.edge_weight
        now = first_row + rows
        stale = [e for e in self._open
                 if id(e) not in seen and now - e.last_row > self.close_after_rows]
        return self._close(stale)

    def close_all(self) -> list[Emission]:
        """Close every open emission (end of run, break in the stream)."""
        return self._close(list(self._open))

    @property
    def open_count(self) -> int:
        return len(self._open)

    def _match(self, low: int, high: int, taken: set[int]) -> _Open | None:
        best, best_iou = None, MIN_OVERLAP
        for e in self._open:
            if id(e) in taken:
                continue
            inter = min(high, e.high_px) - max(low, e.low_px)
            union = max(high, e.high_px) - min(low, e.low_px)
            iou = inter / union if union > 0 else 0.0
            if iou >= best_iou:
                best, best_iou = e, iou
        return best

    def _close(self, items: list[_Open]) -> list[Emission]:
        if not items or self._clock is None:
            self._open = [e for e in self._open if e not in items]
            return []
        g, clock = self.geometry, self._clock
        out = []
        for e in items:
            self._open.remove(e)
            start = clock.row_sample(e.first_row)
            stop = clock.row_sample(e.last_row + 1)
            centre_px = g.width // 2
            low = self.center_freq + (e.low_px - centre_px - 0.5) * g.pixel_hz
            high = self.center_freq + (e.high_px - centre_px - 0.5) * g.pixel_hz
            named = e.lte_named or e.nr_named
            cls = (LTE if e.lte_named else NR if e.nr_named
                   else max(e.class_sums, key=e.class_sums.__getitem__))
            confidence = e.class_sums[cls] / max(e.pixels, 1)
            if confidence < self.min_confidence and not named:
                self.unconfident += 1
                continue
            if e.lte_channel is not None:  # the cell's own channel, in view or not
                low, high = fit_channel("LTE", *(
                    self.center_freq + (px - centre_px - 0.5) * g.pixel_hz
                    for px in e.lte_channel))
            elif self.fit_channels:
                edges = channel_edges(LABELS[cls], low, high,
                                      wholly_in_view(e.low_px, e.high_px, g.width))
                if edges is None:
                    self.narrow += 1
                    continue
                low, high = edges
            out.append(Emission(
                start_time=clock.sample_time(start),
                end_time=clock.sample_time(stop - 1),
                start_sample=start,
                sample_count=stop - start,
                freq_low_hz=low,
                freq_high_hz=high,
                label=LABELS[cls],
                confidence=confidence,
                power_db=float(10 * np.log10(e.power_sum / max(e.rows_seen, 1) + 1e-30)),
            ))
        return sorted(out, key=lambda em: em.start_sample)


def carriers(classes: np.ndarray) -> list[tuple[int, int, int]]:
    """The carriers in a chunk of rows, as (class, low, high) with [low, high) columns.

    Args:
        classes: integer (rows, width): the winning class of every pixel (0 noise, 1 LTE,
            2 NR).

    Signal spans first, classes second; see the module docstring.
    """
    out = []
    for low, high in occupied_spans(classes != 0):
        block = classes[:, low:high]
        votes = np.stack([(block == cls).sum(axis=0) for cls in LABELS])  # (2, columns)
        column_class = np.asarray(list(LABELS))[votes.argmax(axis=0)]
        for cls, start, stop in _class_runs(column_class, votes):
            out.append((cls, low + start, low + stop))
    return sorted(out, key=lambda c: c[1])


def carrier_classes(classes: np.ndarray, marks: CellMarks = NO_MARKS) -> np.ndarray:
    """The classes with every signal pixel of a carrier given the carrier's class.

    Args:
        classes: integer (rows, width): the winning class of every pixel.
        marks: what the cells found in the frame's IQ say (:class:`CellMarks`).

    A carrier is one radio access technology, so where the network paints one in patches of LTE
    and NR, the minority patches are wrong: each carrier of :func:`carriers` (a span of signal
    columns, classed by its columns' votes) gives its class to all its signal pixels. Noise
    stays noise, and signal pixels outside every carrier (slivers too narrow or too rare to be
    one) keep their class. Then the carriers an LTE PSS names (:func:`lte_carriers`) are LTE,
    whatever their columns voted, and the columns an NR SSB names (:func:`nr_carriers`) NR; and
    every signal pixel within a channel an LTE MIB gave is LTE: there the cell says where its
    carrier is, pixel by pixel.
    """
    out = classes.copy()
    found = carriers(classes)
    lte = lte_carriers(classes, found, marks.lte_centres, marks.lte_reach)
    nr = {k: columns for k, columns in nr_carriers(classes, found, marks).items()
          if k not in lte}
    for k, (cls, low, high) in enumerate(found):
        block = out[:, low:high]
        block[block != 0] = LTE if k in lte else cls
    for columns in nr.values():
        _paint(out, columns, NR)
    for channel in marks.lte_channels:
        _paint(out, channel, LTE)
    return out


def _paint(classes: np.ndarray, columns: tuple[float, float], cls: int) -> None:
    """Give ``cls`` to the signal pixels whose centre lies in ``columns`` ``[low, high)``."""
    low, high = (max(0, int(np.ceil(edge - 0.5))) for edge in columns)
    block = classes[:, low:high]
    block[block != 0] = cls


def nr_carriers(classes: np.ndarray, found: Sequence[tuple[int, int, int]],
                marks: CellMarks) -> dict[int, tuple[float, float]]:
    """Which of the carriers ``found`` (:func:`carriers` of ``classes``) an NR cell's SSB
    centred at one of ``marks.nr_ssbs`` (columns) names, and its columns ``[low, high)`` that
    it names: the carrier that holds the SSB's centre, and, where the view cuts the signal span
    holding it on both sides (the view may lie inside the NR carrier, which the network, seeing
    no edge, can split into runs of both classes), every carrier of that span. (A span cut on
    both sides is the whole view, and holds every carrier.)

    An SSB may lie anywhere in its carrier, so it says nothing more of the carrier's extent;
    but an LTE cell there too (its channel, or its centre where its MIB did not decode) says
    that the network merged the NR carrier with an LTE one, or that the view is not inside the
    NR carrier alone: the SSB names the columns up to the LTE channel's edge, or halfway to the
    LTE centre, on each side. An SSB outside every carrier (a carrier the network missed) names
    nothing.
    """
    width = classes.shape[1]
    whole_view = occupied_spans(classes != 0) == [(0, width)]
    named: dict[int, tuple[float, float]] = {}
    for ssb in marks.nr_ssbs:
        holding = [(a, b) for _, a, b in found if a <= ssb < b]
        if whole_view and 0 <= ssb < width:
            holding = [(0, width)]
        for a, b in holding:
            low, high = _ssb_side(float(a), float(b), ssb, marks)
            for k, (_, c, d) in enumerate(found):
                if max(low, c) < min(high, d):
                    part = (max(low, float(c)), min(high, float(d)))
                    known = named.get(k, part)
                    named[k] = (min(part[0], known[0]), max(part[1], known[1]))
    return named


def _ssb_side(low: float, high: float, ssb: float, marks: CellMarks) -> tuple[float, float]:
    """Columns ``[low, high)`` cut to the side of an SSB at ``ssb`` of every LTE cell within
    them: at the edge of a channel its MIB gave, halfway to its centre where the MIB did not
    decode."""
    for centre in marks.lte_centres:
        if low <= centre < high:
            if centre > ssb:
                high = (ssb + centre) / 2
            else:
                low = (centre + ssb) / 2
    for lo, hi in marks.lte_channels:
        if low <= hi and lo < high:
            if (lo + hi) / 2 > ssb:
                high = min(high, lo)
            else:
                low = max(low, hi)
    return low, high


def lte_carriers(classes: np.ndarray, found: Sequence[tuple[int, int, int]],
                 centres: Sequence[float], reach: float,
                 channels: Sequence[tuple[float, float]] = ()) -> set[int]:
    """Which of the carriers ``found`` (:func:`carriers` of ``classes``) an LTE PSS at one of
    ``centres``, or an LTE cell's channel of ``channels`` (known from its MIB), names
    (indices). A channel names the carriers at least half within it.

    An LTE carrier is symmetric about its PSS and reaches at most ``reach`` (10 MHz) from it.
    Of the signal span that holds a centre:

    - where the view cuts the span on both sides, the view may lie inside the LTE carrier,
      which the network, seeing no edge, can split into runs of both classes: every carrier
      of the span at least half within ``reach`` of the centre is LTE;
    - where the span is LTE-shaped about the centre (:func:`_lte_shaped`: its edges that the
      view shows within ``reach``, the centre near its middle), it is the LTE carrier, split or
      not by the network: all its carriers are LTE;
    - otherwise the span holds the LTE carrier and others beside it, and the PSS gives the
      centre of one, not its width: the carrier that holds the centre is LTE where it is
      LTE-shaped itself, and a carrier of another shape (the network's merger of the LTE
      carrier with a neighbour) keeps its class.

    A centre outside every span (a carrier the network missed) names nothing: its width and
    its rows are unknown.
    """
    width = classes.shape[1]
    named = {k for k, (_, a, b) in enumerate(found) if _holding_channel(a, b, channels)}
    spans = occupied_spans(classes != 0) if len(centres) else []
    for centre in centres:
        for low, high in spans:
            if not low <= centre < high:
                continue
            within = [k for k, (_, a, b) in enumerate(found) if a >= low and b <= high]
            if low == 0 and high == width:
                named.update(k for k in within
                             if min(found[k][2], centre + reach) - max(found[k][1], centre - reach)
                             >= 0.5 * (found[k][2] - found[k][1]))
            elif _lte_shaped(low, high, width, centre, reach):
                named.update(within)
            else:
                named.update(k for k in within if found[k][1] <= centre < found[k][2]
                             and _lte_shaped(found[k][1], found[k][2], width, centre, reach))
    return named


def _holding_channel(low: int, high: int, channels: Sequence[tuple[float, float]]
                     ) -> tuple[float, float] | None:
    """The channel of ``channels`` that holds at least half of columns ``[low, high)``."""
    return next((c for c in channels if min(high, c[1]) - max(low, c[0]) >= 0.5 * (high - low)),
                None)


def _lte_shaped(low: int, high: int, width: int, centre: float, reach: float) -> bool:
    """Whether columns ``[low, high)`` can be one LTE carrier centred on ``centre``: each edge
    the view shows within ``reach`` of it, and the centre in the middle, give or take the
    network's error at the edges (``EDGE_COLUMNS`` and ``CENTRE_TOLERANCE`` of the width). An
    edge the view cuts may lie anywhere beyond the view, but not short of the other's mirror.
    """
    below, above = centre - low, high - centre
    tolerance = EDGE_COLUMNS + CENTRE_TOLERANCE * (high - low)
    if low > 0 and (below > reach or above > below + tolerance):
        return False
    return not (high < width and (above > reach or below > above + tolerance))


def _class_runs(column_class: np.ndarray, votes: np.ndarray) -> list[tuple[int, int, int]]:
    """Split a span into runs of one column class, merging the narrow runs into a neighbour.

    The narrowest run under the minimum width joins the neighbour whose class it gave more
    votes to, and the runs are counted again, until every run is wide enough (or one is left).
    """
    width = column_class.size
    min_width = max(MIN_SPLIT_PIXELS, MIN_SPLIT_SHARE * width)
    classes = list(LABELS)
    while True:
        edges = np.flatnonzero(np.diff(column_class)) + 1
        starts = np.concatenate(([0], edges))
        stops = np.concatenate((edges, [width]))
        runs = [(int(column_class[a]), int(a), int(b)) for a, b in zip(starts, stops, strict=True)]
        narrow = [i for i, (_, a, b) in enumerate(runs) if b - a < min_width]
        if len(runs) == 1 or not narrow:
            return runs
        i = min(narrow, key=lambda k: runs[k][2] - runs[k][1])
        _, a, b = runs[i]
        neighbours = [runs[k][0] for k in (i - 1, i + 1) if 0 <= k < len(runs)]
        tally = votes[:, a:b].sum(axis=1)
        column_class[a:b] = max(neighbours, key=lambda c: tally[classes.index(c)])


def occupied_spans(wins: np.ndarray) -> list[tuple[int, int]]:
    """The carriers of one class in a chunk of rows, as [low, high) column ranges.

    Args:
        wins: bool, (rows, width): where the class wins the pixel.

    A column is occupied when the class wins it in at least ``MIN_COLUMN_SHARE`` of the rows
    where the class wins at least ``MIN_PIXELS`` pixels; see :func:`_spans` for the runs.
    """
    present = wins.sum(axis=1) >= MIN_PIXELS
    if not present.any():
        return []
    return _spans(wins[present].mean(axis=0) >= MIN_COLUMN_SHARE)


def _spans(occupied: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True as [low, high) column ranges; one-column gaps bridged; short runs dropped."""
    closed = occupied.copy()
    closed[1:-1] |= occupied[:-2] & occupied[2:]
    edges = np.diff(np.concatenate(([0], closed.astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b - a >= MIN_PIXELS]

"""The nominal 3GPP channel a segmented carrier occupies.

The network is trained on masks that span each carrier's nominal channel (centre +- channel
bandwidth / 2, the reference labelling convention), not only its subcarriers, so the width it
paints is an estimate of the channel bandwidth, off by a few pixels at each edge. A carrier
wholly in view can only have one of a few bandwidths: 1.4, 3, 5, 10, 15 or 20 MHz for LTE
(TS 36.101 table 5.6-1), 5-100 MHz for NR FR1 (TS 38.101-1 table 5.3.2-1). Keeping the painted
centre and taking the nearest of those bandwidths places the edges better than the pixels do
(on the synthetic test set, see ``docs/training.md``), and it is what a radio engineer reads
off a spectrum analyser.
"""

from __future__ import annotations

import math

from monitor.bandwidths import LTE_BANDWIDTHS, NR_RB_TABLE

__all__ = ["CHANNEL_BANDWIDTHS", "MAX_FIT_RATIO", "MIN_CHANNEL_SHARE", "channel_edges",
           "fit_channel", "too_narrow", "wholly_in_view"]

#: The channel bandwidths of each class, Hz, ascending.
CHANNEL_BANDWIDTHS: dict[str, tuple[float, ...]] = {
    "LTE": tuple(sorted(LTE_BANDWIDTHS)),
    "NR": tuple(sorted({float(bw) for bw, _ in NR_RB_TABLE})),
}
#: A span wider or narrower than every channel bandwidth of its class by more than this ratio
#: is not one carrier (two carriers side by side, or a sliver) and keeps its edges.
MAX_FIT_RATIO = 1.3
#: A span wholly in view narrower than this share of its class's narrowest channel (LTE 350 kHz,
#: NR 1.25 MHz) is a sliver the network painted, not a carrier: the labels span whole channels.
MIN_CHANNEL_SHARE = 0.25


def fit_channel(label: str, low_hz: float, high_hz: float) -> tuple[float, float]:
    """The edges of the ``label`` channel centred on the span whose bandwidth is nearest to the
    span's width (nearest in ratio, so 12 MHz is a 10 MHz channel, not 15), or the span's own
    edges where no bandwidth is within ``MAX_FIT_RATIO`` of its width.

    Raises:
        ValueError: for a class without channels, or an empty span.
    """
    if label not in CHANNEL_BANDWIDTHS:
        raise ValueError(f"no channel bandwidths for {label!r}")
    width = high_hz - low_hz
    if not width > 0:
        raise ValueError(f"empty span {low_hz}-{high_hz} Hz")
    bandwidth = min(CHANNEL_BANDWIDTHS[label], key=lambda bw: abs(math.log(width / bw)))
    if abs(math.log(width / bandwidth)) > math.log(MAX_FIT_RATIO):
        return low_hz, high_hz
    centre = 0.5 * (low_hz + high_hz)
    return centre - 0.5 * bandwidth, centre + 0.5 * bandwidth


def channel_edges(label: str, low_hz: float, high_hz: float,
                  in_view: bool) -> tuple[float, float] | None:
    """The edges a ``label`` span is logged and labelled with, the rule the tracker and the
    waterfall share: a span cut by the view keeps its own; one wholly in view (``in_view``, see
    :func:`wholly_in_view`) gets its nominal channel (:func:`fit_channel`), or None where it is
    a sliver too narrow to be a carrier (:func:`too_narrow`)."""
    if not in_view:
        return low_hz, high_hz
    if too_narrow(label, low_hz, high_hz):
        return None
    return fit_channel(label, low_hz, high_hz)


def too_narrow(label: str, low_hz: float, high_hz: float) -> bool:
    """Whether a span wholly in view is too narrow to be a ``label`` carrier."""
    return high_hz - low_hz < MIN_CHANNEL_SHARE * CHANNEL_BANDWIDTHS[label][0]


def wholly_in_view(low_px: float, high_px: float, width: int) -> bool:
    """Whether a span of pixel columns ``[low_px, high_px)`` leaves a column of the view beyond
    each of its edges: only then are both of its edges seen, and only then is it fitted."""
    return low_px >= 1 and high_px <= width - 1

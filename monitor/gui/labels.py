"""The carriers of a segmented frame as the waterfall labels them: class, bandwidth, centre.

The carriers are found exactly as the tracker finds a chunk's carriers
(:func:`monitor.occupancy.tracker.carriers`) and given the channel the log gives them (the
nominal 3GPP channel nearest to a carrier wholly in view; no label for a sliver too narrow to be
a carrier; the painted pixels with ``--raw-edges``), so a label and the log agree on class and
edges. A carrier that holds an LTE cell's centre or an NR cell's SSB (:mod:`monitor.occupancy.
cells`) is labelled with the cell's identity too (and an SSB with its GSCN, where the view's
centre frequency is known, and with what its MIB says where it decoded), and where an LTE
cell's MIB gave its bandwidth, the label's edges are its channel's, in view or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.gui.ring import View
from monitor.occupancy.cells import NO_CELLS, FrameCells
from monitor.occupancy.channels import channel_edges, wholly_in_view
from monitor.occupancy.tracker import LABELS, carriers
from monitor.rasters import nearest_sync_raster

__all__ = ["CarrierLabel", "carrier_labels"]


@dataclass(frozen=True)
class CarrierLabel:
    """One carrier of a frame.

    Attributes:
        cls: 1 LTE, 2 NR.
        low_hz, high_hz: its edges, absolute RF frequency.
        cells: the physical cell identities of the LTE cells centred in it and of the NR cells
            whose SSB it holds.
        gscns: the synchronisation raster points (:mod:`monitor.rasters`) of those SSBs, where
            the view's centre frequency is known.
        mibs: what those NR cells' MIBs say, where they decoded (:meth:`NrMib.summary`).
    """

    cls: int
    low_hz: float
    high_hz: float
    cells: tuple[int, ...] = ()
    gscns: tuple[int, ...] = ()
    mibs: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return LABELS[self.cls]

    @property
    def center_hz(self) -> float:
        return (self.low_hz + self.high_hz) / 2

    @property
    def bandwidth_hz(self) -> float:
        return self.high_hz - self.low_hz

    def text(self, pixel_hz: float) -> str:
        """``NR 20.0 MHz @ 1860.0 MHz``, the centre to the precision of a pixel; ``, PCI 86``
        after it for a carrier with a cell, ``, GSCN 7855`` for one with an NR cell's SSB, and
        ``, barred, no SIB1`` where its MIB decoded."""
        decimals = max(1, math.ceil(-math.log10(pixel_hz / 1e6))) if pixel_hz > 0 else 1
        bandwidth = (f"{self.bandwidth_hz / 1e6:.1f} MHz" if self.bandwidth_hz >= 1e6
                     else f"{self.bandwidth_hz / 1e3:.0f} kHz")
        cells = f", PCI {', '.join(map(str, self.cells))}" if self.cells else ""
        gscns = f", GSCN {', '.join(map(str, self.gscns))}" if self.gscns else ""
        mibs = "".join(f", {m}" for m in self.mibs)
        return (f"{self.label} {bandwidth} @ {self.center_hz / 1e6:.{decimals}f} MHz"
                f"{cells}{gscns}{mibs}")


def carrier_labels(classes: np.ndarray, view: View, fit_channels: bool = True,
                   cells: FrameCells = NO_CELLS) -> list[CarrierLabel]:
    """The carriers in a class map, lowest frequency first.

    Args:
        classes: uint8 (rows, width), the winning class per pixel (0 noise, 1 LTE, 2 NR).
        view: the frequencies of the map's columns.
        fit_channels: as the tracker's: a carrier wholly in view gets its nominal channel, and
            a sliver no label.
        cells: the cells in force (centres relative to ``view``'s centre).
    """
    out = []
    for cls, low, high in carriers(classes):
        low_hz, high_hz = (view.low_edge_hz + low * view.pixel_hz,
                           view.low_edge_hz + high * view.pixel_hz)
        held = [c for c in cells.lte if low_hz <= view.center_freq + c.centre_hz < high_hz]
        nr = [c for c in cells.nr if low_hz <= view.center_freq + c.ssb_hz < high_hz]
        ids = tuple(c.cell_id for c in held) + tuple(c.cell_id for c in nr)
        points = ([nearest_sync_raster(view.center_freq + c.ssb_hz) for c in nr]
                  if view.center_freq > 0 else [])
        gscns = tuple(p.gscn for p in points if p is not None)
        mibs = tuple(c.pbch.mib.summary() for c in nr if c.pbch is not None)
        edges: tuple[float, float] | None = (low_hz, high_hz)
        known = [c for c in held if c.channel_hz is not None]
        if known:
            centre = view.center_freq + known[0].centre_hz
            edges = (centre - known[0].channel_hz / 2, centre + known[0].channel_hz / 2)
        elif fit_channels:
            edges = channel_edges(LABELS[cls], low_hz, high_hz,
                                  wholly_in_view(low, high, classes.shape[1]))
        if edges is not None:
            out.append(CarrierLabel(cls, *edges, ids, gscns, mibs))
    return out

"""Where the LTE cell search looks in a frame, and what it finds there."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from monitor.dsp.geometry import Geometry
from monitor.dsp.lte_sync import FIRST_STEP_HZ, STEP_HZ, LteCell
from monitor.occupancy.cells import (
    MAX_CENTRES,
    MAX_SEARCHED,
    _one_per_carrier,
    find_frame_cells,
    search_ranges,
)
from monitor.synth.bch import Mib
from monitor.synth.scene import SceneSpec, parse_carrier, render

G = Geometry.for_rate(19.2e6)


def classes_with(*spans_hz: tuple[float, float], geometry: Geometry = G,
                 label: int = 1) -> np.ndarray:
    """A frame's classes: ``label`` (LTE) in each span, noise elsewhere."""
    classes = np.zeros((geometry.height, geometry.width), np.int64)
    centres = (np.arange(geometry.width) - geometry.width // 2) * geometry.pixel_hz
    for low, high in spans_hz:
        classes[:, (centres >= low) & (centres < high)] = label
    return classes


def test_a_whole_spans_middle_comes_first_then_the_rest_of_it() -> None:
    ranges = search_ranges(classes_with((-1e6, 4e6)), G)
    low, high = ranges[0]
    assert low < 1.5e6 < high and high - low < 1e6
    assert ranges[-1][0] == pytest.approx(-1e6, abs=G.pixel_hz)
    assert ranges[-1][1] == pytest.approx(4e6, abs=G.pixel_hz)


def test_touching_carriers_in_one_span_are_each_found() -> None:
    """Two 5 MHz carriers side by side paint one 10 MHz span whose middle is neither's centre:
    the first pass's centres, 2.5 subcarriers apart, reach both within the budget (every half
    subcarrier of the same budget reaches 1.9 MHz of the span's middle)."""
    assert MAX_CENTRES * FIRST_STEP_HZ > 2 * (2.5e6 + 30e3) > MAX_CENTRES * STEP_HZ
    spec = SceneSpec(19.2e6, 0.04, [parse_carrier("lte:bw=5e6,offset=-2.5e6,snr=15,cell=11"),
                                    parse_carrier("lte:bw=5e6,offset=2.5e6,snr=15,cell=300")])
    iq = render(spec, np.random.default_rng(2)).iq
    cells = sorted(find_frame_cells(iq, G, classes_with((-5e6, 5e6))), key=lambda c: c.centre_hz)
    assert [c.cell_id for c in cells] == [11, 300]
    assert [c.centre_hz for c in cells] == pytest.approx([-2.5e6, 2.5e6], abs=STEP_HZ / 2)
    assert [c.mib.n_rb for c in cells if c.mib] == [25, 25]


def test_no_signal_no_search() -> None:
    iq = (np.random.default_rng(4).standard_normal((768000, 2)) @ [1, 1j]).astype(np.complex64)
    assert find_frame_cells(iq, G, classes_with()) == []
    assert find_frame_cells(iq[:1000], G, classes_with((-1e6, 1e6))) == []  # under 5 ms


def test_an_lte_carrier_beside_an_nr_one_in_a_whole_span_is_found_from_its_edge() -> None:
    """At 61.44 MS/s a 20 MHz LTE carrier beside a 40 MHz NR one paints one span of 60 MHz,
    shown whole: its middle is neither's centre, and 256 first-pass centres reach 9.6 MHz of
    it; half an LTE channel in from the span's low edge is the LTE carrier's centre."""
    geometry = Geometry.for_rate(61.44e6)
    spec = SceneSpec(61.44e6, 0.04, [parse_carrier("lte:bw=20e6,offset=-20e6,snr=10,cell=86"),
                                     parse_carrier("nr:bw=40e6,offset=10e6,snr=10,scs=30e3")])
    iq = render(spec, np.random.default_rng(2)).iq
    classes = classes_with((-30e6, 30e6), geometry=geometry, label=2)  # all of it called NR
    (cell,) = find_frame_cells(iq, geometry, classes)
    assert (cell.cell_id, cell.mib.n_rb) == (86, 100)
    assert cell.centre_hz == pytest.approx(-20e6, abs=STEP_HZ / 2)


def test_a_whole_span_is_not_searched_for_a_channel_wider_than_it() -> None:
    """Half a channel in from a whole span's edge is a carrier's centre only where the channel
    fits the span: from an 11 MHz span, the 1.4 to 10 MHz channels', not the 15 or 20 MHz
    ones' (between the span's middle, first, and all of it, last)."""
    geometry = Geometry.for_rate(30.72e6)
    ranges = search_ranges(classes_with((-1e6, 10e6), geometry=geometry), geometry)
    low, high = ranges[-1]
    assert (low, high) == pytest.approx((-1e6, 10e6), abs=geometry.pixel_hz)
    centres = sorted((a + b) / 2 for a, b in ranges[1:-1])
    halves = (0.7e6, 1.5e6, 2.5e6, 5e6)
    assert centres == pytest.approx(sorted([low + h for h in halves] + [high - h for h in halves]))


def test_a_carrier_beyond_the_first_rounds_centres_is_found_in_a_later_round() -> None:
    """A view at 61.44 MS/s painted signal from edge to edge: the first round's centres reach
    9.6 MHz around the middle, later rounds go on outwards, to a carrier 15 MHz off it."""
    geometry = Geometry.for_rate(61.44e6)
    assert MAX_CENTRES * FIRST_STEP_HZ < 2 * 15e6 < MAX_SEARCHED * FIRST_STEP_HZ
    spec = SceneSpec(61.44e6, 0.01, [parse_carrier("lte:bw=5e6,offset=15e6,snr=10,cell=123")])
    iq = render(spec, np.random.default_rng(3)).iq
    classes = classes_with((-31e6, 31e6), geometry=geometry)
    (cell,) = find_frame_cells(iq, geometry, classes, seconds=0.01)
    assert (cell.cell_id, cell.centre_hz) == (123, pytest.approx(15e6, abs=STEP_HZ / 2))


def test_of_cells_closer_than_two_carriers_the_decoded_then_the_strongest_is_kept() -> None:
    """A round that saw a strong carrier only from some whole subcarriers off its centre finds
    a weak cell there; the later round that tries the carrier's own centre, its cell."""
    image = LteCell(-23.093e6, 312, "FDD", pss=0.22, sss=0.1)
    own = LteCell(-23.617e6, 333, "FDD", pss=0.85, sss=0.8, mib=Mib(n_rb=75))
    apart = LteCell(2.385e6, 450, "TDD", pss=0.53, sss=0.5)
    assert _one_per_carrier([image, apart, own]) == [own, apart]
    strong = replace(own, mib=None, pss=0.9)
    assert _one_per_carrier([strong, replace(image, mib=Mib(n_rb=6))])[0].cell_id == 312
    assert _one_per_carrier([image, strong]) == [strong]

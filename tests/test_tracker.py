"""The tracker: carriers from segmented rows, emissions across chunks, closing rules."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.dsp.geometry import Geometry
from monitor.occupancy.tracker import CellMarks, StreamClock, Tracker, carrier_classes, carriers

G = Geometry.for_rate(19.2e6)  # 75 kHz pixels, 156.25 us rows
FC = 2.6e9


def _probs(rows: int, spans: list[tuple[int, int, int]], on: slice = slice(None)) -> np.ndarray:
    """(rows, width, 3) probabilities: noise everywhere but the (class, low, high) spans."""
    p = np.zeros((rows, G.width, 3), dtype=np.float32)
    p[..., 0] = 1.0
    for cls, low, high in spans:
        p[on, low:high, 0] = 0.1
        p[on, low:high, cls] = 0.9
    return p


def _tracker(close_after: float = 0.05) -> Tracker:
    t = Tracker(G, FC, close_after=close_after)
    t.start(StreamClock(1000, G.samples_per_row, G.sample_rate, 1.8e9, 1000), FC)
    return t


def test_one_carrier_becomes_one_emission_with_its_edges_and_times() -> None:
    t = _tracker()
    power = np.full((64, G.width), -60.0, dtype=np.float32)
    power[:, 100:140] = -40.0
    assert t.update(0, _probs(64, [(1, 100, 140)]), power) == []
    assert t.update(64, _probs(64, [(1, 100, 140)]), power) == []
    (e,) = t.close_all()
    assert e.label == "LTE"
    assert e.start_sample == 1000 and e.sample_count == 128 * G.samples_per_row
    assert e.freq_low_hz == pytest.approx(FC + (100 - 128.5) * G.pixel_hz)
    assert e.freq_high_hz == pytest.approx(FC + (139 - 128 + 0.5) * G.pixel_hz)
    assert e.bandwidth_hz == pytest.approx(40 * G.pixel_hz)
    assert e.confidence == pytest.approx(0.9)
    # in-band power: 40 pixels of -40 dBFS
    assert e.power_db == pytest.approx(-40 + 10 * np.log10(40), abs=1e-3)
    assert e.start_time == pytest.approx(1.8e9)
    assert e.end_time == pytest.approx(1.8e9 + (e.sample_count - 1) / G.sample_rate)


def test_two_classes_side_by_side_stay_apart() -> None:
    t = _tracker()
    power = np.full((64, G.width), -50.0, dtype=np.float32)
    t.update(0, _probs(64, [(1, 20, 90), (2, 90, 200)]), power)
    closed = sorted(t.close_all(), key=lambda e: e.freq_low_hz)
    assert [e.label for e in closed] == ["LTE", "NR"]
    assert closed[0].freq_high_hz == pytest.approx(closed[1].freq_low_hz)


def test_an_emission_closes_after_it_is_gone_for_close_after() -> None:
    t = _tracker(close_after=0.02)  # 128 rows
    power = np.zeros((64, G.width), dtype=np.float32)
    t.update(0, _probs(64, [(2, 50, 80)], on=slice(0, 10)), power)
    assert t.update(64, _probs(64, []), power) == []
    (e,) = t.update(128, _probs(64, []), power)
    assert e.label == "NR" and e.sample_count == 10 * G.samples_per_row
    assert t.open_count == 0


def test_one_pixel_gaps_are_bridged_and_slivers_dropped() -> None:
    t = _tracker()
    probs = _probs(64, [(1, 30, 60), (1, 61, 90), (2, 150, 151)])
    t.update(0, probs, np.zeros((64, G.width), dtype=np.float32))
    (e,) = t.close_all()
    assert e.bandwidth_hz == pytest.approx(60 * G.pixel_hz)


def test_restart_closes_what_was_open() -> None:
    t = _tracker()
    t.update(0, _probs(64, [(1, 30, 60)]), np.zeros((64, G.width), dtype=np.float32))
    closed = t.start(StreamClock(10**6, G.samples_per_row, G.sample_rate, 0.0, 10**6), FC + 1e6)
    assert len(closed) == 1 and t.open_count == 0


def test_a_carrier_painted_in_patches_of_both_classes_is_one_carrier_of_the_majority() -> None:
    rng = np.random.default_rng(0)
    probs = _probs(64, [(1, 60, 160)])
    patches = rng.random((64, 100)) < 0.3  # 30 % of the carrier's pixels called NR
    probs[:, 60:160][patches] = (0.1, 0.0, 0.9)
    probs[:, 150:160] = (0.1, 0.0, 0.9)  # and a sliver at its edge wholly NR
    assert carriers(probs.argmax(axis=-1)) == [(1, 60, 160)]
    t = _tracker()
    t.update(0, probs, np.zeros((64, G.width), dtype=np.float32))
    (e,) = t.close_all()
    assert e.label == "LTE" and e.bandwidth_hz == pytest.approx(100 * G.pixel_hz)


def test_an_lte_and_an_nr_carrier_touching_stay_two() -> None:
    classes = _probs(16, [(1, 40, 80), (2, 80, 200)]).argmax(axis=-1)
    assert carriers(classes) == [(1, 40, 80), (2, 80, 200)]


def test_carrier_classes_give_every_pixel_of_a_carrier_its_class() -> None:
    rng = np.random.default_rng(1)
    classes = _probs(64, [(1, 20, 60), (2, 60, 140), (2, 180, 240)]).argmax(axis=-1)
    classes[:, 180:240][rng.random((64, 60)) < 0.3] = 1  # an NR carrier painted partly LTE
    classes[:, 20:60][rng.random((64, 40)) < 0.2] = 0  # holes in the LTE one
    classes[5, 160] = 1  # a lone pixel, too small for a carrier
    shown = carrier_classes(classes)
    assert (shown[:, 180:240][classes[:, 180:240] != 0] == 2).all()
    assert (shown[:, 20:140] == classes[:, 20:140]).all()  # touching carriers keep their classes
    assert (shown[classes == 0] == 0).all()  # noise stays noise, holes stay holes
    assert shown[5, 160] == 1
    assert (carrier_classes(shown) == shown).all()


def test_an_emission_takes_the_class_of_most_of_its_probability_over_its_life() -> None:
    t = _tracker()
    power = np.zeros((64, G.width), dtype=np.float32)
    t.update(0, _probs(64, [(2, 50, 90)]), power)
    t.update(64, _probs(64, [(1, 50, 90)]), power)
    t.update(128, _probs(64, [(2, 50, 90)]), power)
    (e,) = t.close_all()
    assert e.label == "NR" and e.sample_count == 192 * G.samples_per_row
    assert e.confidence == pytest.approx(0.6)  # 0.9 on two chunks of three


def test_unconfident_emissions_are_counted_not_returned() -> None:
    t = Tracker(G, FC, close_after=0.05, min_confidence=0.5)
    t.start(StreamClock(0, G.samples_per_row, G.sample_rate, 1.8e9, 0), FC)
    p = _probs(64, [(1, 100, 140)])
    p[:, 10:20] = (0.35, 0.25, 0.40)  # NR wins a sliver, at 0.4
    closed = t.update(0, p, np.full((64, G.width), -50.0, dtype=np.float32)) + t.close_all()
    assert [(e.label, round(e.confidence, 2)) for e in closed] == [("LTE", 0.9)]
    assert t.unconfident == 1


def test_with_fit_channels_a_sliver_in_view_is_counted_not_returned() -> None:
    """At 75 kHz a pixel, 4 pixels (300 kHz) of LTE in view is no carrier; 5 (375 kHz) may be,
    and so may 4 that run off the view."""
    power = np.full((64, G.width), -50.0, dtype=np.float32)
    kept = []
    for spans in ([(1, 100, 104)], [(1, 100, 105)], [(1, 0, 4)]):
        t = Tracker(G, FC, close_after=0.05, fit_channels=True)
        t.start(StreamClock(0, G.samples_per_row, G.sample_rate, 1.8e9, 0), FC)
        kept.append((len(t.update(0, _probs(64, spans), power) + t.close_all()), t.narrow))
    assert kept == [(0, 1), (1, 0), (1, 0)]


def test_with_fit_channels_an_emission_in_view_is_logged_as_its_nominal_channel() -> None:
    t = Tracker(G, FC, close_after=0.05, fit_channels=True)
    t.start(StreamClock(0, G.samples_per_row, G.sample_rate, 1.8e9, 0), FC)
    power = np.full((64, G.width), -50.0, dtype=np.float32)
    # 64 pixels of 75 kHz: 4.8 MHz of LTE, a 5 MHz channel; NR from column 0 runs off the view
    t.update(0, _probs(64, [(1, 100, 164), (2, 0, 60)]), power)
    lte, nr = sorted(t.close_all(), key=lambda e: e.label)
    centre = FC + (132 - 128.5) * G.pixel_hz
    assert (lte.freq_low_hz, lte.freq_high_hz) == (pytest.approx(centre - 2.5e6),
                                                   pytest.approx(centre + 2.5e6))
    assert nr.freq_low_hz == pytest.approx(FC - 128.5 * G.pixel_hz)
    assert nr.bandwidth_hz == pytest.approx(60 * G.pixel_hz)


def _classes(runs: list[tuple[int, int, int]], rows: int = 32) -> np.ndarray:
    """(rows, width) classes: noise but the (class, low, high) runs."""
    c = np.zeros((rows, G.width), dtype=np.uint8)
    for cls, low, high in runs:
        c[:, low:high] = cls
    return c


REACH = 10e6 / G.pixel_hz  # the widest LTE carrier's half-width, in columns


def test_an_lte_cell_names_a_view_inside_its_carrier_split_by_the_network() -> None:
    """The view inside a carrier (signal edge to edge), painted NR | LTE | NR: its PSS makes
    all of it LTE; without one the network's split stands."""
    inside = _classes([(2, 0, 60), (1, 60, 200), (2, 200, G.width)])
    assert (carrier_classes(inside, CellMarks([130.0], REACH)) == 1).all()
    assert (carrier_classes(inside) == inside).all()


def test_an_lte_cell_names_a_carrier_symmetric_about_it_not_its_neighbour() -> None:
    # an LTE carrier in 40-100 (centre 70) painted NR, alone ...
    alone = carrier_classes(_classes([(2, 40, 100), (2, 120, 200)]), CellMarks([70.0], REACH))
    assert (alone[:, 40:100] == 1).all() and (alone[:, 120:200] == 2).all()
    # ... painted in both classes ...
    split = carrier_classes(_classes([(1, 40, 80), (2, 80, 100)]), CellMarks([70.0], REACH))
    assert (split[:, 40:100] == 1).all()
    # ... merged by the network with the NR carrier beside it (100-200), at either side of the
    # view: the PSS gives the centre of one carrier, not its width, so the merger keeps its class
    for merged in ([(2, 40, 200)], [(2, 0, 100)], [(2, 40, G.width)]):
        classes = _classes(merged)
        assert (carrier_classes(classes, CellMarks([70.0], REACH)) == classes).all()
    # ... or missed by the network: a centre in noise names nothing
    classes = _classes([(2, 120, 200)])
    assert (carrier_classes(classes, CellMarks([70.0], REACH)) == classes).all()


def test_a_cell_whose_mib_gave_its_channel_makes_the_signal_in_it_lte_and_nothing_else() -> None:
    """The MIB gives the carrier's width: the signal pixels in its channel are LTE, however the
    network merged or split it; signal beside it and noise in it keep their class."""
    classes = _classes([(2, 40, 200)])  # an LTE carrier in 40-100 merged with its NR neighbour
    classes[:10, 50:60] = 0
    shown = carrier_classes(classes, CellMarks(lte_channels=[(40.0, 100.0)]))
    assert (shown[:, 40:100][classes[:, 40:100] != 0] == 1).all()
    assert (shown[:10, 50:60] == 0).all() and (shown[:, 100:200] == 2).all()
    # a channel running off the view, and one wholly beyond it
    shown = carrier_classes(_classes([(2, 0, G.width)]), CellMarks(lte_channels=[(-500.0, 30.2)]))
    assert (shown[:, :30] == 1).all() and (shown[:, 30:] == 2).all()
    assert (carrier_classes(classes, CellMarks(lte_channels=[(-90.0, -10.0)])) == classes).all()
    # the tracker's emission: a carrier at least half in the channel is named
    t = _tracker()
    power = np.full((64, G.width), -60.0, dtype=np.float32)
    probs = _probs(64, [(2, 40, 100), (2, 130, 200)])
    t.update(0, probs, power, marks=CellMarks(lte_channels=[(40.0, 100.0)]))
    lte, nr = t.close_all()
    assert (lte.label, nr.label) == ("LTE", "NR")
    # logged as the cell's channel: 60 columns of 75 kHz, 4.5 MHz of resource blocks, are a
    # 5 MHz channel
    assert lte.bandwidth_hz == pytest.approx(5e6)
    assert (lte.freq_low_hz + lte.freq_high_hz) / 2 == pytest.approx(
        FC + (70 - G.width // 2 - 0.5) * G.pixel_hz)


def test_an_emission_an_lte_cell_names_is_lte_and_logged_however_unsure_the_network() -> None:
    t = _tracker()
    power = np.full((64, G.width), -60.0, dtype=np.float32)
    probs = _probs(64, [(2, 100, 140)])
    probs[:, 100:140] = [0.4, 0.15, 0.45]  # NR wins, under the confidence asked for
    t.min_confidence = 0.5
    t.update(0, probs, power, carrier_classes(probs.argmax(-1)), CellMarks([120.0], REACH))
    t.update(64, probs, power)  # the next chunk has no search: the naming holds
    (e,) = t.close_all()
    assert e.label == "LTE"
    assert e.confidence == pytest.approx(0.15)  # the mean LTE probability, as the log defines
    t = _tracker()
    t.min_confidence = 0.5
    t.update(0, probs, power, carrier_classes(probs.argmax(-1)))
    assert t.close_all() == [] and t.unconfident == 1


def test_an_nr_cells_ssb_names_the_carrier_that_holds_it() -> None:
    """An SSB lies anywhere in its carrier: the carrier that holds its centre is NR, its
    neighbours keep their class; a view inside a carrier (cut on both sides) is NR throughout;
    an SSB in noise names nothing; an LTE cell's PSS outweighs it."""
    pair = _classes([(1, 40, 100), (1, 120, 200)])
    shown = carrier_classes(pair, CellMarks(nr_ssbs=[60.0]))
    assert (shown[:, 40:100] == 2).all() and (shown[:, 120:200] == 1).all()
    inside = _classes([(1, 0, 60), (2, 60, 200), (1, 200, G.width)])
    assert (carrier_classes(inside, CellMarks(nr_ssbs=[130.0])) == 2).all()
    assert (carrier_classes(pair, CellMarks(nr_ssbs=[110.0])) == pair).all()
    both = carrier_classes(pair, CellMarks([70.0], REACH, nr_ssbs=[60.0]))
    assert (both[:, 40:100] == 1).all()
    # the tracker's emission is NR, and logged however unsure the network
    t = _tracker()
    t.min_confidence = 0.5
    power = np.full((64, G.width), -60.0, dtype=np.float32)
    probs = _probs(64, [(1, 100, 140)])
    probs[:, 100:140] = [0.4, 0.45, 0.15]
    t.update(0, probs, power, carrier_classes(probs.argmax(-1)), CellMarks(nr_ssbs=[110.0]))
    (e,) = t.close_all()
    assert e.label == "NR" and e.confidence == pytest.approx(0.15)


def test_an_ssb_names_only_its_part_of_a_carrier_merged_with_an_lte_one() -> None:
    """Where the network paints an NR carrier and an LTE one beside it as one carrier, an LTE
    cell found in it says so: the SSB names the columns up to the LTE cell's channel (its MIB),
    or halfway to its centre; beyond them the carrier keeps its class. The tracker cannot split
    the emission, so it keeps its class too."""
    merged = _classes([(1, 40, 200)])
    shown = carrier_classes(merged, CellMarks(nr_ssbs=[60.0], lte_channels=[(100.0, 180.0)]))
    assert (shown[:, 40:100] == 2).all() and (shown[:, 100:200] == 1).all()
    shown = carrier_classes(merged, CellMarks([140.0], REACH, nr_ssbs=[60.0]))
    assert (shown[:, 40:100] == 2).all() and (shown[:, 100:200] == 1).all()
    # LTE cells on both sides: the SSB names the columns between them
    shown = carrier_classes(merged, CellMarks([45.0, 140.0], REACH, nr_ssbs=[60.0]))
    # halfway, 52.5, is column 52's centre
    assert (shown[:, 40:52] == 1).all() and (shown[:, 52:100] == 2).all()
    # a view the network paints whole: the same, on both sides of the SSB
    whole = _classes([(1, 0, G.width)])
    shown = carrier_classes(whole, CellMarks(nr_ssbs=[60.0], lte_channels=[(100.0, 180.0)]))
    assert (shown[:, :100] == 2).all() and (shown[:, 100:] == 1).all()
    t = _tracker()
    power = np.full((64, G.width), -60.0, dtype=np.float32)
    probs = _probs(64, [(1, 40, 200)])
    t.update(0, probs, power, None, CellMarks([140.0], REACH, nr_ssbs=[60.0]))
    (e,) = t.close_all()
    assert e.label == "LTE"

"""The NR cell search: an SSB's PSS and SSS name the cell and place the SSB, on generator scenes
and on real recordings; noise, LTE and a receiver's LO line name none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.bandwidths import NR_RB_TABLE
from monitor.dsp.nr_sync import _Windows, find_nr_cells
from monitor.rasters import nearest_sync_raster
from monitor.sources.files import open_recording
from monitor.synth.scene import SceneSpec, parse_carrier, render

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures"


def scene_iq(rate: float, *carriers: str, seed: int = 1, seconds: float = 0.02) -> np.ndarray:
    spec = SceneSpec(rate, seconds, [parse_carrier(c) for c in carriers])
    return render(spec, np.random.default_rng(seed)).iq


def ssb_centre(offset: float, bandwidth: float, scs: float, ssb_offset_rb: int) -> float:
    """SSref, the SSB's subcarrier 120, from the carrier's centre (the grid's n_rb RBs about
    it, the SSB ``ssb_offset_rb`` RBs from the lowest)."""
    n_rb = NR_RB_TABLE[(bandwidth, scs)]
    return offset + (12 * ssb_offset_rb + 120 - 6 * n_rb) * scs


@pytest.mark.parametrize(("rate", "bw", "scs", "offset", "rb", "snr", "extra"), [
    (30.72e6, 20e6, 30e3, 1.5e6, 10, 5, "load=0.5"),
    (19.2e6, 10e6, 15e3, -2e6, 0, 3, "load=0.5,channel=eva70"),
    (10e6, 5e6, 15e3, 7.5e3, 5, 10, "load=0"),  # idle: its SSBs alone; half a subcarrier off
    (2.4e6, 40e6, 15e3, 0.0, 98, 15, "load=1"),  # a narrow view inside a wide carrier
    (61.44e6, 100e6, 30e3, 0.0, 132, 0, "load=0.8,channel=tdlc300-100"),
])
def test_finds_the_cell_and_places_its_ssb(rate: float, bw: float, scs: float, offset: float,
                                           rb: int, snr: float, extra: str) -> None:
    carrier = (f"nr:bw={bw},scs={scs},offset={offset},snr={snr},cell=777,ssb_period=10e-3,"
               f"ssb_offset_rb={rb},{extra}")
    (cell,) = find_nr_cells(scene_iq(rate, carrier), rate)
    assert (cell.cell_id, cell.scs) == (777, scs)
    assert cell.ssb_hz == pytest.approx(ssb_centre(offset, bw, scs, rb), abs=scs / 2)
    assert 0 < cell.sss <= 1 and 0 < cell.pss <= 1
    assert 0 <= cell.seconds < 0.02  # the PSS's window, within the 20 ms searched


def test_two_cells_at_the_same_moment_and_no_echo_between() -> None:
    """Two carriers' SSBs at the same moment, one with the N_ID2 the other's PSS correlates
    with 43 subcarriers off (the three PSS are shifts of one m-sequence): both, nothing else."""
    iq = scene_iq(30.72e6, "nr:bw=10e6,scs=15e3,offset=-7e6,snr=15,cell=300,ssb_offset_rb=16",
                  "nr:bw=10e6,scs=30e3,offset=6e6,snr=8,cell=301,ssb_offset_rb=2")
    found = sorted(find_nr_cells(iq, 30.72e6), key=lambda c: c.ssb_hz)
    assert [(c.cell_id, c.scs) for c in found] == [(300, 15e3), (301, 30e3)]


def test_a_cell_far_under_a_strong_carrier_elsewhere_in_view() -> None:
    """A PSS 25 dB under a fully loaded LTE carrier beside it: its run of products is normalised
    by its own energy, not held down by the strong carrier's share of the window."""
    iq = scene_iq(61.44e6, "lte:bw=20e6,offset=-15e6,snr=40,load=1,cell=3",
                  "nr:bw=20e6,scs=30e3,offset=12e6,snr=15,cell=777,ssb_period=10e-3,"
                  "ssb_offset_rb=20,load=0.3")
    (cell,) = find_nr_cells(iq, 61.44e6)
    assert cell.cell_id == 777 and cell.pss > 0.5


def test_no_pss_candidate_in_a_band_filtered_away() -> None:
    """Bins a recording's filter emptied hold only the FFT's rounding of the strong carrier
    beside them: no PSS candidate there (without a floor, hundreds)."""
    iq = scene_iq(19.2e6, "lte:bw=10e6,offset=-3e6,snr=50,load=1,cell=3", seconds=0.04)
    spectrum = np.fft.fft(iq)
    spectrum[np.abs(np.fft.fftfreq(len(iq), 1 / 19.2e6)) > 7e6] = 0
    filtered = np.fft.ifft(spectrum).astype(np.complex64)
    assert _Windows(filtered, 19.2e6, 15e3).peaks() == []


@pytest.mark.parametrize("carrier", [
    None,
    "lte:bw=20e6,offset=0,snr=25,load=1,cell=3",
    "lte:bw=5e6,offset=2e6,snr=20,load=0,duplex=tdd,config=2,cell=71",
])
def test_no_cell_in_noise_or_lte(carrier: str | None) -> None:
    for seed in range(3):
        iq = scene_iq(19.2e6, *([carrier] if carrier else []), seed=seed, seconds=0.04)
        assert find_nr_cells(iq, 19.2e6) == []


def test_a_receivers_lo_line_is_no_cell() -> None:
    rng = np.random.default_rng(0)
    n = 480_000
    noise = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
    iq = (noise + 300.0).astype(np.complex64)  # a line 50 dB over the floor at 0 Hz
    assert find_nr_cells(iq, 19.2e6) == []


def test_too_short_or_too_narrow() -> None:
    with pytest.raises(ValueError, match="needs"):
        find_nr_cells(np.zeros(100, np.complex64), 19.2e6)
    with pytest.raises(ValueError, match="narrower"):
        find_nr_cells(np.zeros(100_000, np.complex64), 1.8e6)


# The recordings' SSBs: the srsRAN capture's truth (PCI 500, SSB at 3512.64 MHz, 30 kHz); the
# two others' spacing from truth.json, their PCI and SSB as this search finds them.
RECORDED_SSBS = {
    "nr-n78-3502-usrp": (500, 30e3, 3512.64e6),
    "nr-n1-2157-starhub": (55, 15e3, 2155.25e6),
    "nr-n78-3426-cyberx": (1, 30e3, 3426.24e6),
}
RECORDED_GSCNS = {"nr-n78-3502-usrp": 7855, "nr-n1-2157-starhub": 5387, "nr-n78-3426-cyberx": 7795}


@pytest.mark.skipif(not CAPTURES.is_dir(), reason="../shared/captures is not here")
@pytest.mark.parametrize("name", sorted(RECORDED_SSBS))
def test_the_recorded_nr_cells(name: str) -> None:
    rec = open_recording(CAPTURES / f"{name}.sigmf-meta")
    (cell,) = find_nr_cells(rec.read(0, min(len(rec), round(0.04 * rec.sample_rate))),
                            rec.sample_rate)
    pci, scs, ssb = RECORDED_SSBS[name]
    assert (cell.cell_id, cell.scs) == (pci, scs)
    assert rec.center_freq + cell.ssb_hz == pytest.approx(ssb, abs=scs / 2)
    assert cell.sss > 0.7
    # on the synchronisation raster (38.104 5.4.3.1), as every SSB: GSCN 7855, 5387, 7795
    point = nearest_sync_raster(rec.center_freq + cell.ssb_hz)
    assert point.gscn == RECORDED_GSCNS[name]
    assert rec.center_freq + cell.ssb_hz == pytest.approx(point.freq_hz, abs=scs / 4)


@pytest.mark.skipif(not CAPTURES.is_dir(), reason="../shared/captures is not here")
@pytest.mark.parametrize("name", ["lte-1815-hackrf", "lte-2585-hackrf", "lte-fdd-1860-rtlsdr",
                                  "lte-tdd-2585-rtlsdr", "lte-2645-rtlsdr", "noise-2646-hackrf"])
def test_no_nr_cell_in_the_lte_and_noise_recordings(name: str) -> None:
    rec = open_recording(CAPTURES / f"{name}.sigmf-meta")
    assert find_nr_cells(rec.read(0, round(0.04 * rec.sample_rate)), rec.sample_rate) == []

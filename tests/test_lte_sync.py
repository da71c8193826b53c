"""The LTE PSS search on the generator's carriers, on noise, on NR, and on the recordings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.dsp.lte_sync import (
    FALSE_ALARM,
    MIN_SPACING_HZ,
    STEP_HZ,
    LteCell,
    find_lte_cells,
    outside_channels,
    threshold,
)
from monitor.synth.bch import Mib
from monitor.synth.scene import SceneSpec, parse_carrier, render

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures"


def scene_iq(rate: float, *carriers: str, seed: int = 1, seconds: float = 0.02) -> np.ndarray:
    spec = SceneSpec(rate, seconds, [parse_carrier(c) for c in carriers])
    return render(spec, np.random.default_rng(seed)).iq


@pytest.mark.parametrize(("rate", "carrier", "cell", "duplex"), [
    (1.92e6, "lte:bw=20e6,offset=120e3,snr=0,load=1,cell=142", 142, "FDD"),
    (1.92e6, "lte:bw=1.4e6,offset=-300e3,snr=10,load=0,duplex=tdd,config=1,cell=67", 67, "TDD"),
    (19.2e6, "lte:bw=5e6,offset=-4.1e6,snr=-3,load=0.5,cell=86", 86, "FDD"),
    (19.2e6, "lte:bw=10e6,offset=2e6,snr=5,load=0.8,channel=etu70,cell=503", 503, "FDD"),
])
def test_finds_the_cell_at_its_centre(rate: float, carrier: str, cell: int, duplex: str) -> None:
    offset = float(carrier.split("offset=")[1].split(",")[0])
    iq = scene_iq(rate, carrier)
    low, high = (offset - 1e6, offset + 1e6) if rate > 5e6 else (None, None)
    cells = find_lte_cells(iq, rate, low_hz=low, high_hz=high)
    assert [(c.cell_id, c.duplex) for c in cells] == [(cell, duplex)]
    assert abs(cells[0].centre_hz - offset) <= STEP_HZ / 2
    assert 0 < cells[0].sss <= 1 and 0 < cells[0].pss <= 1


def test_two_carriers_two_cells_and_no_echo_between() -> None:
    iq = scene_iq(19.2e6, "lte:bw=5e6,offset=-3e6,snr=10,cell=3",
                  "lte:bw=3e6,offset=2e6,snr=5,cell=7")
    cells = find_lte_cells(iq, 19.2e6, low_hz=-4e6, high_hz=3e6)
    found = sorted(cells, key=lambda c: c.centre_hz)
    assert [c.cell_id for c in found] == [3, 7]
    assert [c.centre_hz for c in found] == pytest.approx([-3e6, 2e6], abs=STEP_HZ / 2)
    assert abs(cells[0].centre_hz - cells[1].centre_hz) >= MIN_SPACING_HZ


@pytest.mark.parametrize("carrier", [
    None,
    "nr:bw=20e6,scs=30e3,offset=0,snr=20,load=1,ssb_period=5e-3",
    "nr:bw=5e6,scs=15e3,offset=200e3,snr=20,load=0.3,ssb_period=5e-3",
])
def test_noise_and_nr_hold_no_lte_cell(carrier: str | None) -> None:
    rate = 1.92e6 if carrier is None else 19.2e6
    iq = (scene_iq(rate, carrier) if carrier else
          (np.random.default_rng(3).standard_normal((38400, 2)) @ [1, 1j]).astype(np.complex64))
    assert find_lte_cells(iq, rate, low_hz=-1.5e6, high_hz=1.5e6) == []


def test_noise_alone_finds_nothing_and_the_threshold_follows_the_search() -> None:
    """Twelve searches of noise find no cell (each has a FALSE_ALARM chance of one); the
    threshold falls with more half-frames averaged and rises with more places searched."""
    rng = np.random.default_rng(5)
    for _ in range(12):
        iq = (rng.standard_normal((2, 19200)).T @ [1, 1j]).astype(np.complex64)
        assert find_lte_cells(iq, 1.92e6, 0.01) == []
    assert 0 < threshold(4, 10**6) < threshold(2, 10**6) < threshold(2, 10**7) < 1
    assert threshold(2, 10**6, FALSE_ALARM / 10) > threshold(2, 10**6)


def test_too_little_to_search() -> None:
    with pytest.raises(ValueError, match="needs 5 ms"):
        find_lte_cells(np.zeros(1000, np.complex64), 1.92e6)
    with pytest.raises(ValueError, match="narrower"):
        find_lte_cells(np.zeros(10000, np.complex64), 0.9e6)
    assert find_lte_cells(np.zeros(19200, np.complex64), 1.92e6, low_hz=1e6, high_hz=2e6) == []
    assert find_lte_cells(np.zeros(19200, np.complex64), 1.92e6,
                          centres_hz=np.array([0.9e6])) == []  # no centre in the view


#: The cells truth.json's notes say were decoded from each LTE recording.
DECODED = {"lte-fdd-1860-rtlsdr": {142, 86}, "lte-tdd-2585-rtlsdr": {66, 67, 68},
           "lte-2645-rtlsdr": {21, 22}}


@pytest.mark.skipif(not CAPTURES.is_dir(), reason="../shared/captures is absent")
def test_the_recordings_cells_are_the_decoded_ones_and_noise_and_nr_hold_none() -> None:
    from monitor.sources.files import open_recording

    for entry in json.loads((CAPTURES / "truth.json").read_text()):
        name = entry["recording"]
        rec = open_recording(CAPTURES / f"{name}.sigmf-meta")
        if len(rec) < 0.005 * rec.sample_rate:
            continue  # the 1 ms NR subframes: too short for a half-frame
        iq = rec.read(0, int(0.02 * rec.sample_rate))
        cells = find_lte_cells(iq, rec.sample_rate, low_hz=-1e6, high_hz=1e6)
        assert len(cells) == ("LTE" in entry["present"]), name
        if name in DECODED:
            assert cells[0].cell_id in DECODED[name], name


@pytest.mark.parametrize("notch", [True, False])
def test_a_receivers_line_and_flicker_at_0_hz_do_not_hide_a_cell_centred_there(
        notch: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A radio tuned to a carrier puts the carrier's PSS and PBCH on its own LO leakage and
    flicker noise (here a line 40 dB over the floor and a hump 25 dB over it at 0 Hz; in
    lte-fdd-1860-rtlsdr the hump is 17 dB over the carrier). The search leaves out the band
    around 0 Hz (``DC_NOTCH_HZ``); without that, the same cell is lost."""
    from monitor.synth.receiver import ReceiverProfile, apply_receiver

    if not notch:
        monkeypatch.setattr("monitor.dsp.lte_sync.DC_NOTCH_HZ", 0.0)
    iq = scene_iq(1.92e6, "lte:bw=5e6,offset=-45e3,snr=0,load=0.7,cell=86", seconds=0.04)
    radio = ReceiverProfile("tuned", dc_db=(40.0, 40.0), flicker_db=(25.0, 25.0),
                            flicker_hz=4e3)
    recorded = apply_receiver(iq, 1.92e6, radio, np.random.default_rng(7))
    cells = find_lte_cells(recorded, 1.92e6, 0.04)
    if notch:
        assert [(c.cell_id, c.mib and c.mib.n_rb) for c in cells] == [(86, 25)]
    else:
        assert cells == []


@pytest.mark.parametrize("share", [True, False])
def test_a_strong_carriers_pss_off_its_centre_names_no_cell(
        share: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Searched only 150-700 kHz from a strong carrier's centre, its PSS still correlates (about
    0.65, 13 subcarriers off) and an SSS there clears its threshold (about 0.08): a false cell.
    Its SSS is far weaker than its PSS, which a cell's is not (``SSS_SHARE``)."""
    if not share:
        monkeypatch.setattr("monitor.dsp.lte_sync.SSS_SHARE", 0.0)
    iq = scene_iq(19.2e6, "lte:bw=3e6,offset=0,snr=17,load=0.5,cell=167", seconds=0.04)
    cells = find_lte_cells(iq, 19.2e6, 0.04, 150e3, 700e3)
    assert (cells == []) == share


def test_a_cell_in_anothers_decoded_channel_is_none_unless_its_own_mib_decodes() -> None:
    wide = LteCell(0.0, 144, "TDD", 0.3, 0.2, Mib(100), 2)  # +-9.0075 MHz of resource blocks
    inside, beyond = LteCell(2e6, 355, "FDD", 0.1, 0.07), LteCell(9.5e6, 7, "FDD", 0.1, 0.07)
    assert outside_channels([wide, inside, beyond]) == [wide, beyond]
    decoded = LteCell(2e6, 355, "FDD", 0.1, 0.07, Mib(6), 1)
    assert outside_channels([wide, decoded]) == [wide, decoded]
    assert outside_channels([inside, beyond]) == [inside, beyond]

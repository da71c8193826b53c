"""The MIB: its coding (36.212 5.3.1) against known values, and its decoding from the generator's
carriers and from the recordings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.dsp.lte_mib import _viterbi, decode_mib
from monitor.dsp.lte_sync import find_lte_cells
from monitor.synth.bch import (
    BANDWIDTH_RB,
    CODED_BITS,
    Mib,
    crc16,
    pbch_bits,
    rate_match_indices,
    tbcc_encode,
)
from monitor.synth.scene import SceneSpec, parse_carrier, render

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures"


def scene_iq(rate: float, *carriers: str, seed: int = 1, seconds: float = 0.04) -> np.ndarray:
    spec = SceneSpec(rate, seconds, [parse_carrier(c) for c in carriers])
    return render(spec, np.random.default_rng(seed)).iq


def test_crc16_is_the_ccitt_polynomial() -> None:
    """gCRC16 with a zero register is CRC-16/XMODEM, whose check value is 0x31C3."""
    bits = np.unpackbits(np.frombuffer(b"123456789", np.uint8))
    assert int("".join(map(str, crc16(bits))), 2) == 0x31C3


def test_the_code_is_tail_biting_and_the_rate_matching_repeats_each_bit_16_times() -> None:
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, 40).astype(np.uint8)
    # no tail: turning the input turns every stream alike
    assert np.array_equal(tbcc_encode(np.roll(bits, 3)), np.roll(tbcc_encode(bits), 3, axis=1))
    # a single 1 gives each generator's taps (133, 171, 165 octal) from where it stands
    impulse = np.zeros(40, np.uint8)
    impulse[0] = 1
    assert [int("".join(map(str, s[:7])), 2) for s in tbcc_encode(impulse)] == [0o133, 0o171,
                                                                                  0o165]
    index = rate_match_indices()
    assert np.array_equal(np.bincount(index, minlength=CODED_BITS), np.full(CODED_BITS, 16))
    # column 1 of the interleaver is read first; its first row is a dummy bit, its second d(9)
    assert list(index[:4]) == [9, 25, 17, 1]


def test_viterbi_finds_the_sent_bits_through_noise() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        bits = rng.integers(0, 2, 40).astype(np.uint8)
        soft = 1 - 2 * tbcc_encode(bits).astype(np.float32) + rng.normal(0, 0.8, (3, 40))
        assert np.array_equal(_viterbi(soft), bits)


@pytest.mark.parametrize("n_rb", BANDWIDTH_RB)
def test_mib_fields_survive_their_bits(n_rb: int) -> None:
    mib = Mib(n_rb, sfn=4 * 171 + 2, phich_extended=True, phich_resource=1)
    assert Mib.from_bits(mib.bits(), 2) == mib
    assert len(pbch_bits(mib, 2, 86)) == 480


@pytest.mark.parametrize(("rate", "carrier", "n_rb", "ports"), [
    (1.92e6, "lte:bw=20e6,offset=120e3,snr=0,load=1,cell=142,n_ports=2", 100, 2),
    (1.92e6, "lte:bw=1.4e6,offset=-300e3,snr=5,load=0,duplex=tdd,config=1,cell=67", 6, 1),
    (19.2e6, "lte:bw=5e6,offset=-4.1e6,snr=0,load=0.5,cell=86,n_ports=2", 25, 2),
    (19.2e6, "lte:bw=10e6,offset=2e6,snr=5,load=0.8,channel=etu70,cell=503", 50, 1),
    (19.2e6, "lte:bw=15e6,offset=1e6,snr=10,load=0.3,cfo=2000,cell=12,n_ports=2", 75, 2),
])
def test_the_generator_carriers_bandwidth_is_read_from_its_mib(
        rate: float, carrier: str, n_rb: int, ports: int) -> None:
    offset = float(carrier.split("offset=")[1].split(",")[0])
    iq = scene_iq(rate, carrier)
    (cell,) = find_lte_cells(iq, rate, 0.04, offset - 1e6, offset + 1e6)
    assert cell.mib is not None and (cell.mib.n_rb, cell.ports) == (n_rb, ports)
    assert cell.occupied_hz == pytest.approx((12 * n_rb + 1) * 15e3)
    # the generator counts frames from 0: the first whole frame searched is frame 0 or 1
    assert cell.mib.sfn in (0, 1)


def test_no_mib_for_another_cell_or_for_noise() -> None:
    iq = scene_iq(1.92e6, "lte:bw=3e6,offset=0,snr=10,cell=20")
    (cell,) = find_lte_cells(iq, 1.92e6, 0.04)
    assert cell.cell_id == 20 and cell.mib is not None
    noise = (np.random.default_rng(4).standard_normal((2, 76800)).T @ [1, 1j])
    assert decode_mib(noise.astype(np.complex64), 1000, 20) is None
    x = iq.astype(np.complex64)
    assert all(decode_mib(x, start, cell_id) is None
               for start in (0, 5000) for cell_id in (21, 26))


RECORDED_MIBS = {  # recording: (PCI, resource blocks, antenna ports)
    "lte-tdd-2585-rtlsdr": (68, 100, 2),
    "lte-2645-rtlsdr": (22, 100, 2),
    "lte-1815-hackrf": (300, 100, 2),
    "lte-2585-hackrf": (144, 100, 2),
}


@pytest.mark.skipif(not CAPTURES.is_dir(), reason="../shared/captures is absent")
@pytest.mark.parametrize("name", sorted(RECORDED_MIBS))
def test_the_recordings_mibs(name: str) -> None:
    """Real eNodeBs' MIBs decode: 20 MHz carriers (truth.json), two ports; 20 ms later the
    system frame number is two frames on."""
    entry = next(e for e in json.loads((CAPTURES / "truth.json").read_text())
                 if e["recording"] == name)
    rate = entry["sample_rate"]
    dtype = {"cu8": np.uint8, "ci8": np.int8}[entry["datatype"]]
    raw = np.fromfile(CAPTURES / f"{name}.sigmf-data", dtype, count=int(0.06 * rate) * 2)
    iq = (raw[0::2].astype(np.float32) + 1j * raw[1::2].astype(np.float32))
    iq = (iq - (127.5 + 127.5j if dtype is np.uint8 else 0)).astype(np.complex64)
    pci, n_rb, ports = RECORDED_MIBS[name]
    sfns = []
    for start in (0, 0.02):
        part = iq[int(start * rate) : int((start + 0.04) * rate)]
        cell = next(c for c in find_lte_cells(part, rate, 0.04, -0.3e6, 0.3e6)
                    if c.cell_id == pci)
        assert cell.mib is not None and (cell.mib.n_rb, cell.ports) == (n_rb, ports)
        sfns.append(cell.mib.sfn)
    assert sfns[1] == (sfns[0] + 2) % 1024


@pytest.mark.skipif(not CAPTURES.is_dir(), reason="../shared/captures is absent")
def test_a_weak_cell_under_a_receivers_flicker_noise_decodes_in_many_stretches() -> None:
    """lte-fdd-1860-rtlsdr: cell 86 at about -6 dB beside co-channel cell 142, its centre 45 kHz
    from the RTL-SDR's flicker hump (17 dB over the carrier at 0 Hz). Of the second's 25
    stretches of 40 ms, 11 decode (measured; 1 without the search's notch at 0 Hz), each as the
    20 MHz carrier with two ports, and their system frame numbers count 4 frames a stretch."""
    from monitor.sources.files import open_recording

    recording = open_recording(CAPTURES / "lte-fdd-1860-rtlsdr.sigmf-meta")
    n = round(0.04 * recording.sample_rate)
    decoded = {}
    for k in range(len(recording) // n):
        cells = find_lte_cells(recording.read(k * n, n), recording.sample_rate, 0.04,
                               -0.15e6, 0.05e6)
        cell = next(c for c in cells if c.cell_id == 86)
        if cell.mib is not None:
            assert (cell.mib.n_rb, cell.ports) == (100, 2)
            decoded[k] = cell.mib.sfn
    assert len(decoded) >= 8
    first = min(decoded)
    assert all(sfn == (decoded[first] + 4 * (k - first)) % 1024 for k, sfn in decoded.items())


def test_the_generator_sends_the_mib_of_each_frame_on_its_pbch() -> None:
    from monitor.synth.bch import pbch_symbols
    from monitor.synth.lte import LteConfig, LteRe, lte_frame

    config = LteConfig(n_rb=25, cell_id=77, n_ports=2)
    frame = lte_frame(config, 30, np.random.default_rng(3), first_subframe=7)
    values, kinds = frame.grid.values, frame.re_type
    for sfn, subframe in ((1, 3), (2, 13)):  # subframe 0 of frames 1 and 2
        rows = slice(14 * subframe + 7, 14 * subframe + 11)
        sent = values[rows][kinds[rows] == LteRe.PBCH]
        assert np.allclose(sent, pbch_symbols(Mib(25, sfn), 2, 77))


def test_the_eval_counts_the_lte_carriers_found_and_sized() -> None:
    from monitor.dsp.geometry import Geometry
    from monitor.dsp.lte_sync import LteCell
    from monitor.train.evaluate import _cells_found

    geometry = Geometry.for_rate(19.2e6)
    meta = {"carriers": [
        {"label": "LTE", "freq_low_hz": -5e6, "freq_high_hz": 5e6, "cell_id": 7},
        {"label": "LTE", "freq_low_hz": 2e6, "freq_high_hz": 22e6, "cell_id": 8},  # PSS beyond
        {"label": "NR", "freq_low_hz": -9e6, "freq_high_hz": -6e6, "cell_id": 7}]}
    sized = LteCell(7.5e3, 7, "FDD", 0.5, 0.5, Mib(50), 1)
    assert _cells_found(meta, [sized], geometry) == (1, 1, 1)
    assert _cells_found(meta, [LteCell(0.0, 7, "FDD", 0.5, 0.5, Mib(25), 1)], geometry) == (
        1, 1, 0)
    assert _cells_found(meta, [LteCell(0.0, 7, "FDD", 0.5, 0.5)], geometry) == (1, 1, 0)
    assert _cells_found(meta, [LteCell(0.0, 6, "FDD", 0.5, 0.5)], geometry) == (1, 0, 0)
    assert _cells_found(meta, [LteCell(30e3, 7, "FDD", 0.5, 0.5)], geometry) == (1, 0, 0)


def test_the_eval_counts_the_nr_cells_of_a_carrier() -> None:
    from monitor.dsp.nr_sync import NrCell
    from monitor.train.evaluate import _nr_cells_right

    meta = {"carriers": [
        {"label": "NR", "occupied_low_hz": -9e6, "occupied_high_hz": -1e6, "cell_id": 7},
        {"label": "LTE", "occupied_low_hz": 1e6, "occupied_high_hz": 5e6, "cell_id": 8}]}
    cells = [NrCell(-2e6, 7, 30e3, 0.9, 0.9, 0.0),  # in its carrier's band
             NrCell(2e6, 8, 30e3, 0.9, 0.9, 0.0),  # an LTE carrier's PCI: not NR
             NrCell(-5e6, 6, 30e3, 0.9, 0.9, 0.0),  # another PCI
             NrCell(-0.5e6, 7, 30e3, 0.9, 0.9, 0.0)]  # beyond the band
    assert _nr_cells_right(meta, cells) == cells[:1]


def test_the_eval_counts_the_nr_carriers_whose_ssb_was_in_view() -> None:
    from monitor.dsp.nr_sync import NrCell
    from monitor.train.evaluate import _nr_carriers_found, _nr_cells_right

    meta = {"carriers": [
        {"label": "NR", "occupied_low_hz": -9e6, "occupied_high_hz": -1e6, "cell_id": 7},
        {"label": "NR", "occupied_low_hz": 1e6, "occupied_high_hz": 9e6, "cell_id": 9},
        {"label": "NR", "occupied_low_hz": 10e6, "occupied_high_hz": 12e6, "cell_id": 11},
        {"label": "LTE", "occupied_low_hz": -1e6, "occupied_high_hz": 1e6, "cell_id": 8}]}
    cells = _nr_cells_right(meta, [NrCell(-2e6, 7, 30e3, 0.9, 0.9, 0.0),
                                   NrCell(11e6, 11, 30e3, 0.9, 0.9, 0.0)])
    # the third sent no SSB in view (found from a block cut by the view's edge): not counted
    assert _nr_carriers_found(meta, [4, 2, 0, 0], cells) == (2, 1)
    assert _nr_carriers_found(meta, None, cells) == (0, 0)


def test_four_ports_transmit_diversity_decodes() -> None:
    """No generator carrier or recording has four CRS ports: a subframe 0 with four ports'
    reference signals and SFBC-FSTD PBCH (36.211 6.3.4.3: ports 0 and 2 on RE pairs 4i and
    4i+1, ports 1 and 3 on 4i+2 and 4i+3), each port through its own channel, built here from
    the specification's rules."""
    from monitor.dsp.lte_mib import _channels, _checked, _coded, _soft_bits
    from monitor.synth.lte import crs_sequence

    cell_id, mib = 301, Mib(75, sfn=4 * 33 + 1)
    rng = np.random.default_rng(6)
    h = (rng.standard_normal(4) + 1j * rng.standard_normal(4)) / np.sqrt(2)
    grid = np.zeros((14, 72), np.complex64)
    seq = crs_sequence(cell_id, (0, 1, 4))
    m = np.arange(12)
    for slot in (0, 1):  # 36.211 6.10.1.2: v per port and symbol, k = 6m + (v + v_shift) mod 6
        for port, symbol, index, v in ((0, 0, 0, 0), (0, 4, 2, 3), (1, 0, 0, 3), (1, 4, 2, 0),
                                       (2, 1, 1, 3 * slot), (3, 1, 1, 3 + 3 * slot)):
            k = 6 * m + (v + cell_id % 6) % 6
            grid[7 * slot + symbol, k] += h[port] * seq[slot, index, m + 104]
    bits = pbch_bits(mib, 4, cell_id).astype(np.float32)
    d = ((1 - 2 * bits[0::2]) + 1j * (1 - 2 * bits[1::2])) / np.sqrt(2)
    x = d.reshape(-1, 4).T  # layer k, symbol i: d(4i + k)
    sent = np.empty((60, 4), np.complex64)
    sent[:, 0] = h[0] * x[0] - h[2] * np.conj(x[1])
    sent[:, 1] = h[0] * x[1] + h[2] * np.conj(x[0])
    sent[:, 2] = h[1] * x[2] - h[3] * np.conj(x[3])
    sent[:, 3] = h[1] * x[3] + h[3] * np.conj(x[2])
    res = [(symbol, k) for symbol in range(7, 11) for k in range(72)
           if symbol > 8 or k % 3 != cell_id % 3]  # k first, then l; CRS REs of all 4 ports out
    rows, cols = np.array(res).T
    grid[rows, cols] = sent.ravel() / np.sqrt(2)
    grid += 0.05 * (rng.standard_normal(grid.shape) + 1j * rng.standard_normal(grid.shape))
    place = mib.sfn % 4
    channels = _channels(grid, cell_id, 4)
    decoded = _checked(_coded(_soft_bits(grid, channels, cell_id, 4), place, cell_id), 4, place)
    assert decoded == mib
    assert _checked(_coded(_soft_bits(grid, channels[:2], cell_id, 2), place, cell_id), 2,
                    place) is None

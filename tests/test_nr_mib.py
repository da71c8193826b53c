"""The NR PBCH: the MIB's coding as 38.212 7.1 has it, its list decoding through noise, the
generator's SSBs decoded wherever the search finds them, and the real recordings' MIBs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.dsp.nr_mib import decode_nr_mib
from monitor.dsp.nr_sync import _pbch, _Peak, find_nr_cells
from monitor.dsp.polar import decode_list
from monitor.sources.files import open_recording
from monitor.synth.nr import NrConfig, _ssb_blocks
from monitor.synth.nr_bch import (
    CODED_BITS,
    INFO_BITS,
    POLAR_N,
    UNSCRAMBLED,
    NrMib,
    crc24c,
    info_positions,
    input_interleaver,
    payload_order,
    payload_scrambling,
    pbch_bits,
    pbch_scrambling,
    polar_transform,
    rate_match_indices,
)
from monitor.synth.scene import SceneSpec, parse_carrier, render

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures"


def test_the_mib_bits_and_payload_as_specified() -> None:
    mib = NrMib(sfn=0b1011001110, scs_common_hz=30e3, k_ssb=0b10110, dmrs_type_a_position=3,
                coreset_zero=12, search_space_zero=4, cell_barred=True,
                intra_freq_reselection=False)
    # choice 0 | SFN's 6 high bits | scs30or120 | k_SSB's 4 low bits | pos3 | CORESET#0 |
    # search space 0 | barred (0) | notAllowed (1) | spare
    expected = "0" "101100" "1" "0110" "1" "1100" "0100" "0" "1" "0"
    assert "".join(map(str, mib.bits())) == expected
    # the SFN's 4 low bits, the half-frame bit, k_SSB's MSB, two reserved
    assert "".join(map(str, mib.payload(1)[24:])) == "1110" "1" "1" "00"
    assert NrMib.from_payload(mib.payload(1)) == (mib, 1)
    assert mib.has_sib1 and not NrMib(k_ssb=24).has_sib1


def test_the_coding_tables_hold_together() -> None:
    assert sorted(payload_order()) == list(range(32))
    # the SFN's 3rd and 2nd low bits and the half-frame bit, unscrambled: G(7), G(8), G(10)
    assert UNSCRAMBLED == (6, 24, 0)
    assert sorted(input_interleaver()) == list(range(INFO_BITS))
    assert len(set(info_positions())) == INFO_BITS and info_positions().max() < POLAR_N
    assert np.bincount(rate_match_indices(), minlength=POLAR_N).min() == 1  # 864 repeat 512
    # G_N's first row is one 1, its last all ones; G_N is its own inverse
    first, last = np.eye(POLAR_N, dtype=np.uint8)[[0, -1]]
    assert polar_transform(first).tolist() == first.tolist()
    assert polar_transform(last).all()
    u = np.random.default_rng(0).integers(0, 2, POLAR_N).astype(np.uint8)
    assert polar_transform(polar_transform(u)).tolist() == u.tolist()
    # a CRC's remainder over the message and its parity is zero
    bits = np.random.default_rng(1).integers(0, 2, 32).astype(np.uint8)
    assert not crc24c(np.concatenate([bits, crc24c(bits)])).any()


def _decoded(soft: np.ndarray, list_size: int) -> np.ndarray | None:
    """The 32 scrambled payload bits the first checking path gives, or None."""
    info = np.zeros(POLAR_N, bool)
    info[info_positions()] = True
    for path in decode_list(np.bincount(rate_match_indices(), soft, POLAR_N), info, list_size):
        c = np.empty(INFO_BITS, np.uint8)
        c[input_interleaver()] = path
        if np.array_equal(crc24c(c[:32]), c[32:]):
            return c[:32]
    return None


def test_list_decoding_through_noise_and_the_crc_against_noise() -> None:
    """At -8.3 dB a soft bit (the 864 bits repeat the code's 512: -6 dB after folding) the list
    of 8 finds the payload far more often than successive cancellation alone, and never a wrong
    one; noise never checks."""
    rng = np.random.default_rng(3)
    mib = NrMib(sfn=517)
    sent = pbch_bits(mib, 0, 321, 2) ^ pbch_scrambling(321, 2)
    scrambled = np.empty(32, np.uint8)
    scrambled[payload_order()] = mib.payload(0)
    scrambled ^= payload_scrambling(321, (517 >> 1) & 3)
    found = {1: 0, 8: 0}
    for _ in range(40):
        soft = 1 - 2.0 * sent + rng.normal(0, 2.6, CODED_BITS)
        for size in found:
            decoded = _decoded(soft, size)
            assert decoded is None or np.array_equal(decoded, scrambled)
            found[size] += decoded is not None
    assert found[8] >= 32 and found[8] >= found[1] + 5, found
    assert all(_decoded(rng.normal(0, 1, CODED_BITS), 8) is None for _ in range(20))


def scene_iq(rate: float, carrier: str, seed: int) -> np.ndarray:
    return render(SceneSpec(rate, 0.02, [parse_carrier(carrier)]), np.random.default_rng(seed)).iq


@pytest.mark.parametrize(("rate", "carrier"), [
    (30.72e6, "nr:bw=20e6,scs=30e3,offset=1.5e6,snr=5,load=0.5,ssb_offset_rb=10"),
    (10e6, "nr:bw=5e6,scs=15e3,offset=7.5e3,snr=10,load=0,ssb_offset_rb=5"),  # idle
    # a narrow view inside a wide carrier: a third of the PBCH's subcarriers beyond the view
    (2.4e6, "nr:bw=40e6,scs=15e3,offset=0,snr=15,load=1,ssb_offset_rb=98"),
    (61.44e6, "nr:bw=100e6,scs=30e3,offset=0,snr=0,load=0.8,channel=tdlc300-100,"
              "ssb_offset_rb=132"),
])
def test_the_generators_mib_is_decoded_where_the_search_finds_its_ssb(rate: float,
                                                                      carrier: str) -> None:
    scs = 30e3 if "scs=30e3" in carrier else 15e3
    (cell,) = find_nr_cells(scene_iq(rate, f"{carrier},cell=777,ssb_period=10e-3", 1), rate)
    assert cell.pbch is not None
    # the generator's MIB: its carrier's SCS, the SSB on a whole RB, DMRS at symbol 2; a scene
    # starts in the first SSB period of SFN 0
    assert cell.pbch.mib == NrMib(sfn=cell.pbch.mib.sfn, scs_common_hz=scs)
    assert cell.pbch.mib.sfn <= 2 and cell.pbch.half_frame in (0, 1)
    assert 0 <= cell.pbch.ssb_index < 8


def ssb_iq(l_max: int, half_frame: int, index: int, rng: np.random.Generator) -> np.ndarray:
    """One generator SSB of cell 777 at 30 kHz, alone, at 7.68 MS/s (256 samples a symbol),
    0.1 ms of noise at -10 dB before and after it."""
    config = NrConfig(20e6, 30e3, cell_id=777, l_max=l_max)
    i_ssb = index + 4 * half_frame * (l_max == 4)
    (block,) = _ssb_blocks(config, np.array([2 * 500 + half_frame]), np.array([index]),
                           np.array([i_ssb]))
    bins = np.zeros((4, 256), np.complex64)
    bins[:, (np.arange(240) - 120) % 256] = block
    symbols = np.fft.ifft(bins, axis=1) * 16
    sent = np.concatenate([np.concatenate([s[-18:], s]) for s in symbols])
    lead = np.zeros(768, np.complex64)
    x = np.concatenate([lead, sent, lead])
    return x + (rng.standard_normal(len(x)) + 1j * rng.standard_normal(len(x))) * np.sqrt(0.05)


@pytest.mark.parametrize(("l_max", "half_frame", "index"), [
    (4, 0, 3), (4, 1, 2), (8, 0, 6), (8, 1, 1), (8, 1, 5)])
def test_the_ssb_index_and_half_frame_with_either_l_max(l_max: int, half_frame: int,
                                                        index: int) -> None:
    """With L_max 4 the DMRS carries the half-frame bit and the scrambling the index's 2 bits;
    with 8 the DMRS and the scrambling carry the index's 3 bits: the receiver, not knowing
    which, reads both right."""
    x = ssb_iq(l_max, half_frame, index, np.random.default_rng(index))
    pbch = decode_nr_mib(x, 7.68e6, 0.0, 30e3, 777, (768 + 18) / 7.68e6)
    assert pbch is not None
    assert (pbch.mib.sfn, pbch.half_frame, pbch.ssb_index) == (500, half_frame, index)


def test_a_cells_next_ssb_is_tried_where_its_strongest_is_cut() -> None:
    """The search's strongest SSB of a cell may run past the samples' end: the next one (a PSS
    peak a symbol or more away) gives the MIB."""
    rng = np.random.default_rng(5)
    whole = ssb_iq(8, 0, 2, rng)
    x = np.concatenate([whole, ssb_iq(8, 0, 3, rng)[: 768 + 600]])  # the second cut short
    def peak(start: int) -> _Peak:
        return _Peak(0.9, start, 777 % 3, -56.0, 30e3, 0.0)
    cut, earlier = peak(len(whole) + 768 + 18), peak(768 + 18)
    assert _pbch(x, 7.68e6, 0.0, 777, [cut]) is None
    assert _pbch(x, 7.68e6, 0.0, 777, [cut, peak(cut.start + 30), earlier]).ssb_index == 2


def test_no_mib_where_no_ssb_is() -> None:
    rng = np.random.default_rng(0)
    noise = ((rng.standard_normal(200_000) + 1j * rng.standard_normal(200_000)) / np.sqrt(2))
    assert decode_nr_mib(noise.astype(np.complex64), 30.72e6, 1e6, 30e3, 777, 0.002) is None
    # silence decodes to the all-zero block, whose CRC checks: not a MIB
    assert decode_nr_mib(np.zeros(200_000, np.complex64), 30.72e6, 1e6, 30e3, 777, 0.002) is None
    # an SSB mostly beyond the view's edge
    assert decode_nr_mib(noise.astype(np.complex64), 30.72e6, 14e6, 30e3, 777, 0.002) is None


# What the PBCH of each recording's SSB says, its CRC checked: the srsRAN capture's cell is
# barred and has no CORESET#0 (k_SSB 31), a cell serving only beside another (EN-DC); the two
# others are stand-alone cells with a SIB1.
RECORDED_MIBS = {
    "nr-n78-3502-usrp": NrMib(sfn=978, k_ssb=31, cell_barred=True),
    "nr-n1-2157-starhub": NrMib(sfn=752, dmrs_type_a_position=3, coreset_zero=12,
                                search_space_zero=4),
    "nr-n78-3426-cyberx": NrMib(sfn=436, scs_common_hz=30e3, coreset_zero=12,
                                search_space_zero=4),
}


@pytest.mark.skipif(not CAPTURES.is_dir(), reason="../shared/captures is not here")
@pytest.mark.parametrize("name", sorted(RECORDED_MIBS))
def test_the_recorded_cells_mibs(name: str) -> None:
    rec = open_recording(CAPTURES / f"{name}.sigmf-meta")
    (cell,) = find_nr_cells(rec.read(0, min(len(rec), round(0.04 * rec.sample_rate))),
                            rec.sample_rate)
    assert cell.pbch is not None
    assert (cell.pbch.mib, cell.pbch.half_frame, cell.pbch.ssb_index) == (
        RECORDED_MIBS[name], 0, 0)

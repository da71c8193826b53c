"""The NR FR1 downlink generator against TS 38.101-1, 38.211 and 38.213, using tables and
formulas written out here rather than the module's own constants."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from monitor.synth.nr import NrConfig, nr_grid, nr_min_guard_hz, nr_occupied_hz
from monitor.synth.ofdm import modulate

# TS 38.101-1 table 5.3.2-1: N_RB per channel bandwidth (MHz) and SCS (kHz).
TABLE_5_3_2_1 = {
    15: {5: 25, 10: 52, 15: 79, 20: 106, 25: 133, 30: 160, 40: 216, 50: 270},
    30: {
        **{5: 11, 10: 24, 15: 38, 20: 51, 25: 65, 30: 78, 40: 106},
        **{50: 133, 60: 162, 70: 189, 80: 217, 90: 245, 100: 273},
    },
    60: {
        **{10: 11, 15: 18, 20: 24, 25: 31, 30: 38, 40: 51},
        **{50: 65, 60: 79, 70: 93, 80: 107, 90: 121, 100: 135},
    },
}
PAIRS = [(bw, scs, n_rb) for scs, row in TABLE_5_3_2_1.items() for bw, n_rb in row.items()]

# TS 38.213 4.1: first symbols of the candidate SSBs in a half-frame.
SSB_SYMBOLS = {
    ("A", 4): [2, 8, 16, 22],
    ("A", 8): [2, 8, 16, 22, 30, 36, 44, 50],
    ("B", 4): [4, 8, 16, 20],
    ("B", 8): [4, 8, 16, 20, 32, 36, 44, 48],
    ("C", 4): [2, 8, 16, 22],
    ("C", 8): [2, 8, 16, 22, 30, 36, 44, 50],
}
CASE_SCS = {"A": 15e3, "B": 30e3, "C": 30e3}


def _m_sequence(init: list[int], tap: int) -> np.ndarray:
    """x(i + 7) = x(i + tap) + x(i) mod 2 from x(0..6) = init: 127 bits."""
    x = list(init)
    while len(x) < 127:
        i = len(x) - 7
        x.append((x[i + tap] + x[i]) % 2)
    return np.array(x)


def _gold(c_init: int, length: int) -> np.ndarray:
    """TS 38.211 5.2.1, one bit at a time."""
    x1 = [1] + [0] * 30
    x2 = [(c_init >> i) & 1 for i in range(31)]
    for n in range(1600 + length - 31):
        x1.append((x1[n + 3] + x1[n]) % 2)
        x2.append((x2[n + 3] + x2[n + 2] + x2[n + 1] + x2[n]) % 2)
    return np.array([(x1[n + 1600] + x2[n + 1600]) % 2 for n in range(length)])


def _qpsk(c_init: int, count: int) -> np.ndarray:
    c = _gold(c_init, 2 * count)
    return ((1 - 2 * c[0::2]) + 1j * (1 - 2 * c[1::2])) / np.sqrt(2)


def _energy_rows(values: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.abs(values).sum(axis=1) > 0)


def _runs_of_four(rows: np.ndarray) -> list[int]:
    assert len(rows) % 4 == 0
    starts = rows[::4]
    assert np.array_equal(rows, (starts[:, None] + np.arange(4)).ravel())
    return starts.tolist()


# (a) bandwidths


@pytest.mark.parametrize(("bw", "scs", "n_rb"), PAIRS)
def test_occupied_bandwidth_of_the_modulated_carrier(bw: int, scs: int, n_rb: int) -> None:
    config = NrConfig(bw * 1e6, scs * 1e3, load=1.0, rb_share=1.0)
    assert config.n_rb == n_rb
    fs = 122.88e6
    grid = nr_grid(config, 2 * scs // 15, np.random.default_rng(1))  # 2 ms
    x = modulate(grid, fs, round(2e-3 * fs))
    f, psd = scipy.signal.welch(x, fs, nperseg=round(2 * fs / (scs * 1e3)), return_onesided=False)
    f, psd = np.fft.fftshift(f), np.fft.fftshift(psd)
    width = 12 * n_rb * scs * 1e3
    in_band = np.median(psd[np.abs(f) < 0.4 * width])
    above = np.flatnonzero(psd > in_band / 10)
    low, high, step = f[above[0]], f[above[-1]], f[1] - f[0]
    # Subcarriers k - 6 N_RB, k < 12 N_RB: edges at -6 N_RB SCS - SCS/2 and 6 N_RB SCS - SCS/2.
    assert abs(high - low - width) <= 2 * step
    assert abs((high + low) / 2 + scs * 1e3 / 2) <= step
    assert nr_occupied_hz(n_rb, scs * 1e3) == width


def test_minimum_guard_band() -> None:
    assert nr_min_guard_hz(50e6, 15e3) == pytest.approx(692.5e3)
    assert nr_min_guard_hz(100e6, 30e3) == pytest.approx(845e3)
    for bw, scs, n_rb in PAIRS:
        expected = (bw * 1e6 - n_rb * scs * 1e3 * 12) / 2 - scs * 1e3 / 2
        assert nr_min_guard_hz(bw * 1e6, scs * 1e3) == pytest.approx(expected)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bandwidth_hz": 5e6, "scs": 60e3},
        {"bandwidth_hz": 60e6, "scs": 15e3},
        {"bandwidth_hz": 20e6, "scs": 30e3, "cell_id": 1008},
        {"bandwidth_hz": 20e6, "scs": 30e3, "ssb_case": "A"},
        {"bandwidth_hz": 20e6, "scs": 30e3, "ssb_offset_rb": 32},
        {"bandwidth_hz": 5e6, "scs": 30e3, "ssb_case": "B"},
        {"bandwidth_hz": 20e6, "scs": 30e3, "coreset_rb": 10},
        {"bandwidth_hz": 20e6, "scs": 30e3, "ssb_period_s": 0.03},
        {"bandwidth_hz": 20e6, "scs": 30e3, "tdd_pattern": "DDDXU"},
        {"bandwidth_hz": 20e6, "scs": 30e3, "ssb_bitmap": (1, 0, 1)},
    ],
)
def test_invalid_configs_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        NrConfig(**kwargs)


def test_from_bandwidth_refuses_unknown_options() -> None:
    with pytest.raises(TypeError):
        NrConfig.from_bandwidth(20e6, 30e3, rng=np.random.default_rng(0), colour="red")


# (b) SSB bursts


@pytest.mark.parametrize(("case", "l_max"), list(SSB_SYMBOLS))
def test_ssb_candidate_symbols(case: str, l_max: int) -> None:
    scs = CASE_SCS[case]
    config = NrConfig(20e6, scs, ssb_case=case, l_max=l_max, load=0.0, ssb_period_s=5e-3)
    slots_per_half_frame = round(5 * scs / 15e3)
    grid = nr_grid(config, slots_per_half_frame, np.random.default_rng(0))
    assert _runs_of_four(_energy_rows(grid.values)) == SSB_SYMBOLS[case, l_max]


@pytest.mark.parametrize(("case", "l_max"), [("A", 8), ("B", 8), ("C", 4)])
def test_ssb_symbols_in_the_modulated_burst(case: str, l_max: int) -> None:
    scs = CASE_SCS[case]
    mu = round(np.log2(scs / 15e3))
    config = NrConfig(20e6, scs, ssb_case=case, l_max=l_max, load=0.0, ssb_period_s=5e-3)
    fs = 30.72e6
    grid = nr_grid(config, 5 << mu, np.random.default_rng(0))
    x = modulate(grid, fs, round(5e-3 * fs))
    # Symbol starts from 38.211 5.3.1: CP 144 * 2^-mu samples at 30.72 MS/s, 16 more at the
    # first symbol of each 0.5 ms; FFT 2048 * 2^-mu.
    n_fft = 2048 >> mu
    per_half_ms = 7 << mu
    cp = np.array([(144 >> mu) + 16 * (s % per_half_ms == 0) for s in range(70 << mu)])
    starts = np.concatenate(([0], np.cumsum(cp + n_fft)))
    useful = starts[:-1] + cp
    energy = np.array([np.sum(np.abs(x[u : u + n_fft]) ** 2) for u in useful])
    rows = np.flatnonzero(energy > 0.01 * energy.max())
    assert _runs_of_four(rows) == SSB_SYMBOLS[case, l_max]


def test_ssb_bitmap_period_and_position() -> None:
    config = NrConfig(
        40e6, 30e3, ssb_case="B", l_max=8, ssb_bitmap="10100001", ssb_period_s=0.02,
        ssb_offset_rb=7, load=0.0,
    )
    grid = nr_grid(config, 80, np.random.default_rng(0), first_slot=0)  # 40 ms
    values = grid.values
    burst = [4, 16, 48]  # candidates 0, 2 and 7 of case B
    half_frame = 5 * 2 * 14  # symbols
    expected = [hf * half_frame + s for hf in (0, 4) for s in burst]  # every 20 ms
    assert _runs_of_four(_energy_rows(values)) == expected
    columns = np.flatnonzero(np.abs(values).sum(axis=0) > 0)
    assert columns.min() >= 12 * 7 and columns.max() < 12 * 7 + 240
    assert columns.min() <= 12 * 7 + 4 and columns.max() >= 12 * 7 + 235


def test_ssb_follows_the_frame_from_first_slot() -> None:
    config = NrConfig(20e6, 15e3, l_max=4, load=0.0, ssb_period_s=0.01)
    grid = nr_grid(config, 10, np.random.default_rng(0), first_slot=7)  # slots 7-16
    # the burst of the frame starting at slot 10 falls on grid slots 3 and 4
    assert _runs_of_four(_energy_rows(grid.values)) == [3 * 14 + s for s in (2, 8, 16, 22)]


def test_grid_without_an_ssb_in_it() -> None:
    config = NrConfig(20e6, 30e3, load=0.0, ssb_period_s=0.02)
    grid = nr_grid(config, 4, np.random.default_rng(0), first_slot=10)
    assert grid.values.shape == (56, 612) and not grid.values.any()


# (c) PSS, SSS and PBCH DMRS


def _ssb_block(cell_id: int) -> np.ndarray:
    config = NrConfig(20e6, 15e3, cell_id=cell_id, ssb_case="A", load=0.0, ssb_offset_rb=3)
    grid = nr_grid(config, 1, np.random.default_rng(0))
    return grid.values[2:6, 36 : 36 + 240]


@pytest.mark.parametrize("n_id2", [0, 1, 2])
def test_pss(n_id2: int) -> None:
    # 38.211 7.4.2.2: [x(6) ... x(0)] = [1 1 1 0 1 1 0], x(i + 7) = x(i + 4) + x(i).
    x = _m_sequence([0, 1, 1, 0, 1, 1, 1], tap=4)
    n = np.arange(127)
    expected = 1 - 2 * x[(n + 43 * n_id2) % 127]
    block = _ssb_block(3 * 100 + n_id2)
    assert np.array_equal(block[0, 56:183], expected)
    assert not block[0, :56].any() and not block[0, 183:].any()


def test_sss() -> None:
    n_id1, n_id2 = 335, 2
    x0 = _m_sequence([1, 0, 0, 0, 0, 0, 0], tap=4)
    x1 = _m_sequence([1, 0, 0, 0, 0, 0, 0], tap=1)
    m0, m1 = 15 * (n_id1 // 112) + 5 * n_id2, n_id1 % 112
    n = np.arange(127)
    expected = (1 - 2 * x0[(n + m0) % 127]) * (1 - 2 * x1[(n + m1) % 127])
    block = _ssb_block(3 * n_id1 + n_id2)
    assert np.array_equal(block[2, 56:183], expected)
    assert not block[2, 48:56].any() and not block[2, 183:192].any()


@pytest.mark.parametrize(
    ("l_max", "half_frame", "index", "i_ssb"), [(4, 0, 0, 0), (4, 1, 1, 5), (8, 1, 6, 6)]
)
def test_pbch_dmrs(l_max: int, half_frame: int, index: int, i_ssb: int) -> None:
    # 38.211 7.4.1.4.1: i_SSB = SSB index + 4 n_hf for L_max 4, the SSB index for L_max 8.
    cell_id = 1007
    config = NrConfig(
        20e6, 30e3, cell_id=cell_id, ssb_case="B", l_max=l_max, load=0.0, ssb_offset_rb=3,
        ssb_period_s=5e-3,
    )
    grid = nr_grid(config, 20, np.random.default_rng(0))  # one frame, two bursts
    first = 140 * half_frame + SSB_SYMBOLS["B", l_max][index]
    block = grid.values[first : first + 4, 36 : 36 + 240]
    v = cell_id % 4
    k = np.arange(240)
    positions = [(1, k[v::4]), (2, k[v::4][(k[v::4] < 48) | (k[v::4] >= 192)]), (3, k[v::4])]
    got = np.concatenate([block[sym, ks] for sym, ks in positions])
    c_init = 2**11 * (i_ssb + 1) * (cell_id // 4 + 1) + 2**6 * (i_ssb + 1) + cell_id % 4
    assert np.allclose(got, _qpsk(c_init, 144), atol=1e-6)
    pbch = np.concatenate([block[1], block[2, :48], block[2, 192:], block[3]])
    assert np.allclose(np.abs(pbch), 1, atol=1e-6)


# (d) cyclic prefixes


def _cp_samples(mu: int, fs: float, symbols_in_subframe: np.ndarray) -> np.ndarray:
    """38.211 5.3.1 in Tc = 1 / (480 kHz * 4096), kappa = 64."""
    tc, kappa = 1 / (480e3 * 4096), 64
    long = (symbols_in_subframe == 0) | (symbols_in_subframe == 7 * 2**mu)
    n_cp = 144 * kappa * 2.0**-mu + 16 * kappa * long
    return n_cp * tc * fs


@pytest.mark.parametrize(
    ("scs", "n_fft", "long", "short"),
    [(15e3, 4096, 320, 288), (30e3, 2048, 176, 144), (60e3, 1024, 104, 72)],
)
def test_cyclic_prefix_lengths(scs: float, n_fft: int, long: int, short: int) -> None:
    fs = 61.44e6
    mu = round(np.log2(scs / 15e3))
    config = NrConfig(20e6, scs, load=1.0, rb_share=1.0)
    grid = nr_grid(config, 1 << mu, np.random.default_rng(0))  # one subframe
    expected = _cp_samples(mu, fs, np.arange(14 << mu))
    assert np.allclose(grid.cp_seconds * fs, expected, atol=1e-6)
    assert sorted(set(np.round(expected).astype(int))) == [short, long]
    assert np.round(grid.duration * fs) == 61440
    assert np.sum(expected + n_fft) == pytest.approx(61440)
    x = modulate(grid, fs, 61440, taper_seconds=0.0)
    cp = np.round(expected).astype(int)
    starts = np.concatenate(([0], np.cumsum(cp + n_fft)))[:-1]
    head = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, cp, strict=True)])
    assert np.allclose(x[head], x[head + n_fft], atol=1e-4 * np.abs(x).max())


def test_long_cyclic_prefix_follows_the_slot_number() -> None:
    config = NrConfig(20e6, 60e3, load=0.0)
    grid = nr_grid(config, 3, np.random.default_rng(0), first_slot=1)  # slots 1, 2, 3
    expected = _cp_samples(2, 61.44e6, np.arange(14, 56))
    assert np.allclose(grid.cp_seconds * 61.44e6, expected, atol=1e-6)
    assert np.flatnonzero(grid.cp_seconds > grid.cp_seconds.min()).tolist() == [14]


# (e) idle cell, load, PDSCH DMRS


def test_idle_cell_sends_only_ssbs() -> None:
    config = NrConfig(40e6, 30e3, l_max=8, load=0.0, ssb_offset_rb=50, ssb_period_s=0.01)
    grid = nr_grid(config, 80, np.random.default_rng(0))
    rows = _energy_rows(grid.values)
    expected = [hf * 140 + s for hf in (0, 2, 4, 6) for s in SSB_SYMBOLS["B", 8]]
    assert _runs_of_four(rows) == expected
    columns = np.flatnonzero(np.abs(grid.values).sum(axis=0) > 0)
    assert columns.min() >= 600 and columns.max() < 840


def test_load_and_rb_share() -> None:
    n_rb, load, share = 106, 0.4, 0.5
    config = NrConfig(40e6, 30e3, ssb_case=None, load=load, rb_share=share, pdcch_only_share=0.0)
    grid = nr_grid(config, 80, np.random.default_rng(3))
    last_symbols = grid.values[13::14].reshape(80, n_rb, 12)
    scheduled = np.abs(last_symbols).sum(axis=(1, 2)) > 0
    assert scheduled.sum() == round(load * 80)
    # 38.214 table 5.1.2.2.1-1, configuration 1: RBG of 8 RB for 73-144 RB.
    rbg, n_rbg = 8, -(-n_rb // 8)
    used = np.abs(last_symbols[scheduled]).sum(axis=2) > 0
    assert np.all(used.sum(axis=1) <= round(share * n_rbg) * rbg)
    assert np.all(used.sum(axis=1) >= (round(share * n_rbg) - 1) * rbg + n_rb % rbg)
    # PDCCH only in the CORESET of the scheduled slots; nothing in unscheduled slots.
    slots = grid.values.reshape(80, 14, -1)
    assert not slots[~scheduled].any()
    assert np.all(np.abs(slots[scheduled, :2]).sum(axis=2) > 0)


@pytest.mark.parametrize(
    ("additional", "l_d", "expected"),
    [
        (0, 14, [2]),
        (1, 14, [2, 11]),
        (2, 14, [2, 7, 11]),
        (3, 14, [2, 5, 8, 11]),
        (1, 12, [2, 9]),
        (2, 12, [2, 6, 9]),
        (3, 12, [2, 5, 8, 11]),
        (3, 10, [2, 6, 9]),
        (2, 9, [2, 7]),
        (3, 7, [2]),
    ],
)
def test_pdsch_dmrs(additional: int, l_d: int, expected: list[int]) -> None:
    # 38.211 table 7.4.1.1.2-3 (type A, single symbol, dmrs-TypeA-Position 2) and 7.4.1.1.1;
    # a PDSCH shorter than the slot is the downlink part of a special slot.
    cell_id = 501
    config = NrConfig(
        20e6, 30e3, cell_id=cell_id, ssb_case=None, load=1.0, rb_share=1.0,
        modulations=("256QAM",), dmrs_additional_position=additional,
        tdd_pattern=None if l_d == 14 else "S", special_dl_symbols=l_d,
    )
    slot = 13  # slot 13 of a frame
    grid = nr_grid(config, 1, np.random.default_rng(0), first_slot=20 + slot)
    found = []
    for sym in range(14):
        c_init = (2**17 * (14 * slot + sym + 1) * (2 * cell_id + 1) + 2 * cell_id) % 2**31
        if np.allclose(grid.values[sym, 0::2], _qpsk(c_init, 6 * 51), atol=1e-6):
            found.append(sym)
    assert found == expected
    assert np.all(np.abs(grid.values[2:l_d]) > 0)
    assert not grid.values[l_d:].any()


def test_pdcch_dmrs_and_cces() -> None:
    # 38.211 7.4.1.3: DMRS on subcarriers 1, 5, 9 of each used REG, r(3n + k') from CRB 0;
    # non-interleaved CCEs of 6 REGs time-first: 3 RB x 2 symbols for a 2-symbol CORESET.
    cell_id, slot = 77, 5
    config = NrConfig(20e6, 30e3, cell_id=cell_id, ssb_case=None, load=1.0, coreset_symbols=2)
    grid = nr_grid(config, 1, np.random.default_rng(2), first_slot=slot)
    used = np.abs(grid.values[:2].reshape(2, 51, 12)).sum(axis=2) > 0
    assert np.array_equal(used[0], used[1]) and used.any() and not used[0, 48:].any()
    assert np.all(np.abs(grid.values[:2].reshape(2, 51, 12)[used]) > 0)
    cces = used[0, :48].reshape(16, 3)
    assert np.all(cces.all(axis=1) | ~cces.any(axis=1))
    rbs = np.flatnonzero(used[0])
    for sym in range(2):
        c_init = (2**17 * (14 * slot + sym + 1) * (2 * cell_id + 1) + 2 * cell_id) % 2**31
        expected = _qpsk(c_init, 3 * 51).reshape(51, 3)[rbs]
        got = grid.values[sym].reshape(51, 12)[rbs][:, 1::4]
        assert np.allclose(got, expected, atol=1e-6)


# (f) TDD


@pytest.mark.parametrize("pattern", ["DDDSU", "DDDDDDDSUU"])
def test_tdd_uplink_is_silent(pattern: str) -> None:
    config = NrConfig.from_bandwidth(
        100e6, 30e3, rng=np.random.default_rng(5), tdd_pattern=pattern, special_dl_symbols=10,
        load=1.0, rb_share=1.0, l_max=8, ssb_case="C", ssb_bitmap="11111111",
    )
    grid = nr_grid(config, 80, np.random.default_rng(0))
    slots = np.abs(grid.values.reshape(80, 14, -1)).sum(axis=2)
    kinds = np.array(list(pattern * (80 // len(pattern))))
    assert not slots[kinds == "U"].any()
    assert not slots[kinds == "S", 10:].any()
    assert np.all(slots[kinds == "S", :10] > 0)
    assert np.all(slots[kinds == "D"] > 0)


# (g) reproducibility


def test_same_seed_same_bytes() -> None:
    def make(seed: int) -> bytes:
        rng = np.random.default_rng(seed)
        config = NrConfig.from_bandwidth(50e6, 30e3, rng=rng, modulations=("QPSK", "64QAM"))
        grid = nr_grid(config, 40, rng, first_slot=3)
        return grid.values.tobytes() + grid.cp_seconds.tobytes()

    assert make(7) == make(7)
    assert make(7) != make(8)


def test_resource_elements_have_unit_energy() -> None:
    config = NrConfig(20e6, 15e3, l_max=8, load=0.8, modulations=("QPSK", "16QAM", "256QAM"))
    values = nr_grid(config, 20, np.random.default_rng(0)).values
    assert values.dtype == np.complex64
    sent = values[values != 0]
    assert np.mean(np.abs(sent) ** 2) == pytest.approx(1.0, rel=0.01)

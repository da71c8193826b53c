"""LTE downlink grids against the 3GPP tables and sequences, written out here independently."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from monitor.bandwidths import LTE_BANDWIDTHS
from monitor.synth.lte import LteConfig, LteRe, lte_frame, lte_grid, lte_occupied_hz
from monitor.synth.ofdm import modulate

TS_RATE = 30.72e6  # 1 / T_s, TS 36.211 4
# TS 36.101 table 5.6-1: channel bandwidth (MHz) -> N_RB; occupied subcarriers incl. DC.
TABLE_5_6_1 = {1.4: 6, 3: 15, 5: 25, 10: 50, 15: 75, 20: 100}
OCCUPIED_SUBCARRIERS = {6: 73, 15: 181, 25: 301, 50: 601, 75: 901, 100: 1201}
# TS 36.211 table 4.2-2 (uplink-downlink configurations) and table 4.2-1 (DwPTS, normal CP, T_s).
TDD_CONFIGS = [
    "DSUUUDSUUU",
    "DSUUDDSUUD",
    "DSUDDDSUDD",
    "DSUUUDDDDD",
    "DSUUDDDDDD",
    "DSUDDDDDDD",
    "DSUUUDSUUD",
]
DWPTS_TS = [6592, 19760, 21952, 24144, 26336, 6592, 19760, 21952, 24144, 13168]
# TS 36.211 table 6.11.2.1-1, a few rows: N_ID1 -> (m0, m1).
SSS_M0_M1 = {0: (0, 1), 1: (1, 2), 29: (29, 30), 30: (0, 2), 31: (1, 3)}


def cp_samples(n_symbols: int, rate: float) -> list[int]:
    """Normal-CP lengths (36.211 table 6.12-1: 160 T_s, then 144 T_s six times per slot)."""
    scale = rate / TS_RATE
    return [round((160 if s % 7 == 0 else 144) * scale) for s in range(n_symbols)]


def column(k: int, n_rb: int) -> int:
    """Grid column of 36.211 subcarrier k (0 .. 12 N_RB - 1): the DC subcarrier is skipped."""
    return k if k < 6 * n_rb else k + 1


def gold(c_init: int, length: int) -> list[int]:
    """c(n) of 36.211 7.2, written straight from the recursions."""
    total = 1600 + length
    x1 = [1] + [0] * 30
    x2 = [(c_init >> i) & 1 for i in range(31)]
    for n in range(total - 31):
        x1.append((x1[n + 3] + x1[n]) % 2)
        x2.append((x2[n + 3] + x2[n + 2] + x2[n + 1] + x2[n]) % 2)
    return [(x1[n + 1600] + x2[n + 1600]) % 2 for n in range(length)]


def zadoff_chu(u: int) -> np.ndarray:
    """PSS d_u(n), 36.211 eq. 6.11.1.1-1."""
    d = []
    for n in range(62):
        if n <= 30:
            d.append(np.exp(-1j * np.pi * u * n * (n + 1) / 63))
        else:
            d.append(np.exp(-1j * np.pi * u * (n + 1) * (n + 2) / 63))
    return np.array(d)


def sss_reference(n_id1: int, n_id2: int, subframe: int) -> np.ndarray:
    """SSS d(0..61), 36.211 6.11.2.1, written straight from the text."""
    q_prime = n_id1 // 30
    q = (n_id1 + q_prime * (q_prime + 1) // 2) // 30
    m_prime = n_id1 + q * (q + 1) // 2
    m0 = m_prime % 31
    m1 = (m0 + m_prime // 31 + 1) % 31

    def tilde(recursion):
        x = [0, 0, 0, 0, 1]
        for i in range(26):
            x.append(recursion(x, i))
        return [1 - 2 * xi for xi in x]

    s = tilde(lambda x, i: (x[i + 2] + x[i]) % 2)
    c = tilde(lambda x, i: (x[i + 3] + x[i]) % 2)
    z = tilde(lambda x, i: (x[i + 4] + x[i + 2] + x[i + 1] + x[i]) % 2)
    d = [0] * 62
    for n in range(31):
        s0, s1 = s[(n + m0) % 31], s[(n + m1) % 31]
        c0, c1 = c[(n + n_id2) % 31], c[(n + n_id2 + 3) % 31]
        z_m0, z_m1 = z[(n + m0 % 8) % 31], z[(n + m1 % 8) % 31]
        if subframe == 0:
            d[2 * n], d[2 * n + 1] = s0 * c0, s1 * c1 * z_m0
        else:
            d[2 * n], d[2 * n + 1] = s1 * c0, s0 * c1 * z_m1
    return np.array(d)


def test_bandwidth_tables():
    for mhz, n_rb in TABLE_5_6_1.items():
        assert LTE_BANDWIDTHS[mhz * 1e6] == n_rb
        assert LteConfig.from_bandwidth(mhz * 1e6).n_rb == n_rb
        assert LteConfig(n_rb=n_rb, cfi=2).bandwidth_hz == mhz * 1e6
        assert lte_occupied_hz(n_rb) == OCCUPIED_SUBCARRIERS[n_rb] * 15e3
    with pytest.raises(ValueError):
        LteConfig.from_bandwidth(7e6)


@pytest.mark.parametrize(
    "fields",
    [
        {"n_rb": 30},
        {"cell_id": 504},
        {"n_ports": 4},
        {"duplex": "hdx"},
        {"tdd_config": 7},
        {"special_subframe_config": 10},
        {"cfi": 4},
        {"n_rb": 6, "cfi": 1},
        {"load": 1.5},
    ],
)
def test_config_rejects_what_the_spec_does_not_allow(fields):
    with pytest.raises(ValueError):
        LteConfig(**fields)


@pytest.mark.parametrize("mhz", list(TABLE_5_6_1))
def test_occupied_bandwidth_of_the_modulated_signal(mhz):
    """Half-power width of a fully loaded carrier = occupied subcarriers x 15 kHz, centred.

    The PSD of an OFDM carrier of flat, unit-energy subcarriers falls to half its in-band level
    exactly half a subcarrier beyond the outermost ones, so the -3 dB band is the nominal
    occupied band (further out the -20 dB or 99 % widths are set by the sinc skirts instead).
    """
    n_rb = TABLE_5_6_1[mhz]
    config = LteConfig.from_bandwidth(mhz * 1e6, load=1.0, cfi=2 if n_rb <= 10 else 1)
    rate = 30.72e6
    x = modulate(lte_grid(config, 11, np.random.default_rng(0)), rate, int(10e-3 * rate))
    f, psd = scipy.signal.welch(x, rate, nperseg=8192, return_onesided=False)
    f, psd = np.fft.fftshift(f), np.fft.fftshift(psd)
    level = np.median(psd[np.abs(f) < 0.4 * n_rb * 180e3])
    above = np.flatnonzero(psd > level / 2)
    bin_hz = f[1] - f[0]
    low, high = f[above[0]] - bin_hz / 2, f[above[-1]] + bin_hz / 2
    nominal = OCCUPIED_SUBCARRIERS[n_rb] * 15e3
    assert abs((high - low) - nominal) <= 2 * bin_hz
    assert abs(high + low) <= 2 * bin_hz


@pytest.mark.parametrize("duplex", ["fdd", "tdd"])
def test_pss_matches_zadoff_chu_in_time(duplex):
    n_rb, rate, n_fft = 25, 7.68e6, 512
    first_subframe = 3
    # PSS: last symbol of slots 0 and 10 (FDD) or symbol 2 of slots 2 and 12 (TDD), 36.211 6.11.1.2:
    # symbol 6 of subframes 0 and 5, or symbol 2 of subframes 1 and 6.
    symbol, pss_subframes = (6, (0, 5)) if duplex == "fdd" else (2, (1, 6))
    cps = cp_samples(14, rate)
    start = sum(cps[:symbol]) + symbol * n_fft + cps[symbol]
    n = np.arange(n_fft)
    references = []
    for u in (25, 29, 34):  # roots for N_ID2 = 0, 1, 2, 36.211 table 6.11.1.1-1
        d = zadoff_chu(u)
        # Sequence value i sits on k = i - 31 + 6 N_RB, i.e. i - 31 below DC and i - 30 above.
        ref = sum(d[i] * np.exp(2j * np.pi * (i - 31 + (i > 30)) * n / n_fft) for i in range(62))
        references.append(ref / np.linalg.norm(ref))
    for n_id2 in range(3):
        config = LteConfig(n_rb=n_rb, cell_id=3 * 57 + n_id2, duplex=duplex, load=0.0)
        grid = lte_grid(config, 8, np.random.default_rng(1), first_subframe=first_subframe)
        x = modulate(grid, rate, int(grid.duration * rate))
        for index in range(8):
            number = (first_subframe + index) % 10
            offset = index * int(1e-3 * rate)
            useful = x[offset + start : offset + start + n_fft]
            if number not in pss_subframes:
                # The same symbol elsewhere carries no PSS (and nothing else on an idle cell).
                assert np.allclose(useful, 0.0)
                continue
            corr = [abs(np.vdot(ref, useful)) / np.linalg.norm(useful) for ref in references]
            assert corr[n_id2] > 0.999
            assert max(np.delete(corr, n_id2)) < 0.5


def test_sss_m0_m1_table_rows_and_the_test_formula_agree():
    for n_id1, (m0, m1) in SSS_M0_M1.items():
        q_prime = n_id1 // 30
        q = (n_id1 + q_prime * (q_prime + 1) // 2) // 30
        m_prime = n_id1 + q * (q + 1) // 2
        assert (m_prime % 31, (m_prime % 31 + m_prime // 31 + 1) % 31) == (m0, m1)


@pytest.mark.parametrize("duplex", ["fdd", "tdd"])
@pytest.mark.parametrize("n_id1", [0, 30, 111, 167])
def test_sss_matches_the_spec(duplex, n_id1):
    n_rb = 15
    cols = [column(i - 31 + 6 * n_rb, n_rb) for i in range(62)]
    for n_id2 in range(3):
        config = LteConfig(n_rb=n_rb, cell_id=3 * n_id1 + n_id2, duplex=duplex)
        values = lte_grid(config, 10, np.random.default_rng(2)).values
        for subframe in (0, 5):
            # SSS: symbol 5 of slots 0/10 (FDD), symbol 6 of slots 1/11 (TDD), 36.211 6.11.2.2.
            row = 14 * subframe + (5 if duplex == "fdd" else 13)
            assert np.allclose(values[row, cols], sss_reference(n_id1, n_id2, subframe))
            reserved = [column(k + 6 * n_rb, n_rb) for k in [*range(-36, -31), *range(31, 36)]]
            assert np.all(values[row, reserved] == 0)
    # d(0..5) for N_ID1 = N_ID2 = 0 in subframe 0, worked by hand from 6.11.2.1 (m0 = 0, m1 = 1):
    # s~ = 1 1 1 1 -1 .., c~ = 1 1 1 1 -1 1 .., z~ = 1 1 1 1 -1 ..
    assert list(sss_reference(0, 0, 0)[:6]) == [1, 1, 1, -1, 1, 1]


@pytest.mark.parametrize("n_ports", [1, 2])
@pytest.mark.parametrize("cell_id", range(6))
def test_crs_positions(cell_id, n_ports):
    n_rb = 6
    config = LteConfig(n_rb=n_rb, cell_id=cell_id, n_ports=n_ports, cfi=2, load=0.0)
    values = lte_grid(config, 2, np.random.default_rng(3)).values
    # Subframe 1 carries no PSS/SSS/PBCH; on an idle cell symbols 4, 7 and 11 hold CRS only.
    for row, sym in ((14 + 4, 4), (14 + 7, 0), (14 + 11, 4)):
        expected = set()
        for port in range(n_ports):
            v = (0 if sym == 0 else 3) if port == 0 else (3 if sym == 0 else 0)
            expected |= {column(6 * m + (v + cell_id % 6) % 6, n_rb) for m in range(2 * n_rb)}
        assert set(np.flatnonzero(values[row])) == expected
    # Symbols without CRS, outside control and sync, are empty on an idle cell.
    assert np.all(values[14 + 2 : 14 + 4] == 0)


@pytest.mark.parametrize(("n_rb", "cell_id"), [(6, 0), (100, 123), (50, 503)])
def test_crs_values_match_an_independent_gold_sequence(n_rb, cell_id):
    config = LteConfig(n_rb=n_rb, cell_id=cell_id, cfi=2, n_ports=2)
    values = lte_grid(config, 6, np.random.default_rng(4)).values
    for subframe, slot, sym in ((1, 1, 0), (5, 0, 4), (3, 1, 4)):
        ns = 2 * subframe + slot
        c_init = 2**10 * (7 * (ns + 1) + sym + 1) * (2 * cell_id + 1) + 2 * cell_id + 1
        c = gold(c_init, 4 * 110)
        r = [((1 - 2 * c[2 * m]) + 1j * (1 - 2 * c[2 * m + 1])) / np.sqrt(2) for m in range(220)]
        row = 14 * subframe + 7 * slot + sym
        for port in range(2):
            v = (0 if sym == 0 else 3) if port == 0 else (3 if sym == 0 else 0)
            for m in range(2 * n_rb):
                k = 6 * m + (v + cell_id % 6) % 6
                assert values[row, column(k, n_rb)] == pytest.approx(r[m + 110 - n_rb], abs=1e-6)


def test_cyclic_prefix_lengths_and_slot_length():
    rate = 30.72e6
    grid = lte_grid(LteConfig(n_rb=100, load=1.0), 2, np.random.default_rng(5))
    assert 7 * 2048 + sum(cp_samples(7, rate)) == 15360
    assert round(grid.duration * rate) == 2 * 2 * 15360
    x = modulate(grid, rate, 2 * 2 * 15360, taper_seconds=0.0)
    tolerance = 1e-5 * np.abs(x).max()
    start = 0
    for cp in cp_samples(28, rate):
        assert cp in (160, 144)
        head, tail = x[start : start + cp], x[start + 2048 : start + 2048 + cp]
        assert np.allclose(head, tail, atol=tolerance)
        # ... and no longer: the sample after the prefix is not the one after the symbol.
        after = start + cp
        if after + 2048 < len(x):
            assert abs(x[after] - x[after + 2048]) > tolerance
        start += cp + 2048
    assert start == 4 * 15360


@pytest.mark.parametrize("tdd_config", range(7))
def test_tdd_uplink_silent_and_dwpts_lengths(tdd_config):
    # Symbol ends within a subframe, in T_s, to turn the DwPTS lengths of table 4.2-1 into symbols.
    ends = np.cumsum([(160 if s % 7 == 0 else 144) + 2048 for s in range(14)])
    first_subframe = 7
    for special in range(10):
        dwpts = int(np.sum(ends <= DWPTS_TS[special]))
        config = LteConfig(
            n_rb=6, duplex="tdd", tdd_config=tdd_config, special_subframe_config=special, load=1.0
        )
        grid = lte_grid(config, 10, np.random.default_rng(special), first_subframe=first_subframe)
        energy = (np.abs(grid.values) ** 2).sum(axis=1).reshape(10, 14)
        for index in range(10):
            kind = TDD_CONFIGS[tdd_config][(first_subframe + index) % 10]
            sent = {"D": 14, "S": dwpts, "U": 0}[kind]
            assert np.all(energy[index, :sent] > 0), (special, index)
            assert np.all(energy[index, sent:] == 0), (special, index)


def test_idle_cell_sends_crs_sync_pbch_and_control_only():
    n_rb = 25
    cell_id = 10
    config = LteConfig(n_rb=n_rb, cell_id=cell_id, n_ports=1, cfi=1, load=0.0)
    frame = lte_frame(config, 20, np.random.default_rng(6))
    values = frame.grid.values
    assert not frame.rb_alloc.any()
    # Energy in every subframe, and in every CRS symbol of it (36.211 6.10.1: CRS always sent).
    energy = (np.abs(values) ** 2).sum(axis=1).reshape(20, 14)
    assert np.all(energy[:, [0, 4, 7, 11]] > 0)
    # After the control symbol, away from the central 72 subcarriers, only port 0's CRS is sent.
    outer = np.r_[0 : 6 * n_rb - 36, 6 * n_rb + 37 : 12 * n_rb + 1]
    for row in range(20 * 14):
        if row % 14 == 0:
            continue
        crs = set()
        if row % 7 in (0, 4):
            v = 0 if row % 7 == 0 else 3
            crs = {column(6 * m + (v + cell_id % 6) % 6, n_rb) for m in range(2 * n_rb)}
        assert set(outer[np.abs(values[row, outer]) > 0]) == crs & set(outer)


def test_full_load_fills_every_pdsch_re():
    n_rb = 50
    config = LteConfig(n_rb=n_rb, cfi=3, load=1.0)
    frame = lte_frame(config, 10, np.random.default_rng(7))
    values = frame.grid.values
    assert frame.rb_alloc.all()
    dc = 6 * n_rb
    for subframe in (1, 2, 3, 4, 6, 7, 8, 9):  # no sync or PBCH
        block = values[14 * subframe + 3 : 14 * subframe + 14]
        assert np.all(np.delete(block, dc, axis=1) != 0)
        assert np.all(block[:, dc] == 0)
    sent = np.abs(values[values != 0]) ** 2
    assert sent.mean() == pytest.approx(1.0, rel=0.02)


def test_modulations_and_allocation_shapes():
    n_rb = 100
    frame = lte_frame(LteConfig(n_rb=n_rb, load=0.5), 200, np.random.default_rng(8))
    values, re_type = frame.grid.values, frame.re_type
    for bits in (2, 4, 6):
        rows = np.repeat(frame.pdsch_bits == bits, 14)
        points = np.unique(np.round(values[rows][re_type[rows] == LteRe.PDSCH], 5))
        assert len(points) == 2**bits
        assert np.mean(np.abs(points) ** 2) == pytest.approx(1.0, rel=1e-4)
    n_alloc = frame.rb_alloc.sum(axis=1)
    assert n_alloc.min() < 0.1 * n_rb and n_alloc.max() > 0.9 * n_rb
    runs = np.abs(np.diff(frame.rb_alloc.astype(int), axis=1)).sum(axis=1)
    busy = (n_alloc > 10) & (n_alloc < n_rb - 10)
    assert np.any(busy & (runs <= 2)) and np.any(busy & (runs > 6))


def test_same_seed_same_bytes():
    config = LteConfig(n_rb=50, cell_id=77, n_ports=2, duplex="tdd", load=0.4)
    a = lte_grid(config, 12, np.random.default_rng(9), first_subframe=4)
    b = lte_grid(config, 12, np.random.default_rng(9), first_subframe=4)
    c = lte_grid(config, 12, np.random.default_rng(10), first_subframe=4)
    assert a.values.tobytes() == b.values.tobytes()
    assert a.cp_seconds.tobytes() == b.cp_seconds.tobytes()
    assert a.values.tobytes() != c.values.tobytes()
    assert a.values.dtype == np.complex64
    assert a.values.shape == (12 * 14, 12 * 50 + 1)
    assert (a.scs, a.first_subcarrier) == (15e3, -300)


@pytest.mark.parametrize("cell_id", [0, 4, 11])
def test_pbch_resource_elements(cell_id):
    """36.211 6.6.4: slot 1 symbols 0-3 of subframe 0, central 72 subcarriers, around the REs of
    CRS ports 0-3 whatever is sent: 1920 bits per 40 ms with normal CP = 240 QPSK REs a frame."""
    n_rb = 50
    config = LteConfig(n_rb=n_rb, cell_id=cell_id, n_ports=1, load=0.0)
    frame = lte_frame(config, 1, np.random.default_rng(11))
    pbch = np.argwhere(frame.re_type == LteRe.PBCH)
    assert len(pbch) == 240
    expected = set()
    for sym in range(4):
        for k_prime in range(72):
            k = 6 * n_rb - 36 + k_prime
            if sym >= 2 or k % 3 != cell_id % 3:
                expected.add((7 + sym, column(k, n_rb)))
    assert {tuple(re) for re in pbch} == expected
    assert np.all(np.abs(frame.grid.values[tuple(pbch.T)]) ** 2 == pytest.approx(1.0))


def test_control_region():
    n_rb, cell_id = 25, 2
    shares = []
    for load in (0.0, 1.0):
        config = LteConfig(n_rb=n_rb, cell_id=cell_id, duplex="tdd", cfi=3, load=load)
        frame = lte_frame(config, 20, np.random.default_rng(12))
        rows, cols = np.nonzero(frame.re_type == LteRe.CONTROL)
        kinds = np.array(list(TDD_CONFIGS[1]))[frame.subframe[rows // 14]]
        # 36.211 table 6.7-1: up to 3 symbols, at most 2 in a special subframe (N_RB > 10).
        assert np.all(rows % 14 < np.where(kinds == "S", 2, 3))
        assert not np.any(kinds == "U")
        # REGs of symbol 0 leave out the REs of CRS ports 0 and 1 (36.211 6.2.4).
        k = np.where(cols > 6 * n_rb, cols - 1, cols)
        assert not np.any((rows % 14 == 0) & (k % 3 == cell_id % 3))
        shares.append(len(rows))
    assert shares[0] < shares[1]

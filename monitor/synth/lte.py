"""LTE downlink resource grids (TS 36.211, 36.101, 36.104) for :func:`monitor.synth.ofdm.modulate`.

:func:`lte_grid` fills the normal-CP downlink resource grid of one LTE carrier, subframe by
subframe, with everything a spectrum monitor can see of it:

- cell-specific reference signals (CRS) of antenna ports 0 and 1 in every downlink symbol 0 and
  4 of each slot (36.211 6.10.1), bit-exact, so an idle cell is never silent;
- PSS and SSS (36.211 6.11) in subframes 0 and 5 (FDD) or 0/1 and 5/6 (TDD), bit-exact;
- PBCH (36.211 6.6) in slot 1 of subframe 0, carrying the cell's MIB coded as 36.212 5.3.1
  codes it (:mod:`monitor.synth.bch`: its bandwidth and system frame number, counted from 0);
- the control region (PCFICH, PHICH and PDCCH, 36.211 6.7-6.9) in the first CFI symbols;
- PDSCH (36.211 6.4) on a random set of resource blocks per subframe, one modulation per
  subframe;
- TDD (frame structure type 2, 36.211 4.2): uplink subframes, the guard period and UpPTS are
  silent; special subframes carry their DwPTS symbols only.

Every sent resource element has unit mean energy. With two antenna ports both ports' REs are
summed into the one grid, as a single-antenna monitor receives them; each port leaves the other's
CRS REs empty (36.211 6.10.1.2), so a CRS RE carries one port's reference symbol at unit energy.

Simplifications (none changes where energy lies in time and frequency by more than an RE or the
statistics of what is sent):

- The control region is modelled at resource-element-group level: each REG (36.211 6.2.4) of the
  first CFI symbols is either sent (random QPSK) or left empty, with a per-subframe fraction that
  grows with the PDSCH load (10-30 % of REGs on an idle cell: PCFICH, PHICH and common search
  space; up to all of them at full load). PCFICH/PHICH placement, CCE interleaving and channel
  coding are not modelled.
- PDSCH carries random QPSK/QAM symbols, not coded transport blocks.
- PDSCH leaves out the whole central 72 subcarriers (the 62 sequence REs and the 10 reserved
  ones) of symbols that carry PSS, SSS or PBCH, also in the RBs of an odd N_RB that they only
  partly overlap.
- No MBSFN subframes, positioning or CSI reference signals, paging or system-information
  scheduling; the allocation of each subframe is random (see :func:`lte_frame`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from monitor.bandwidths import LTE_BANDWIDTHS, lte_bandwidth_hz
from monitor.synth.bch import Mib, pbch_symbols
from monitor.synth.ofdm import CarrierGrid
from monitor.synth.sequences import gold_sequence

__all__ = [
    "LteConfig",
    "LteFrame",
    "LteRe",
    "crs_sequence",
    "lte_frame",
    "lte_grid",
    "lte_occupied_hz",
    "pss_sequence",
    "sss_sequence",
]

SCS = 15e3  # subcarrier spacing, 36.211 table 6.2.3-1
_TS = 1.0 / 30.72e6  # basic time unit T_s, 36.211 4
_CP_FIRST, _CP_OTHER = 160, 144  # normal CP in T_s, 36.211 table 6.12-1
_SYMBOLS = 14  # per subframe, normal CP (7 per slot)
_N_RB_MAX = 110  # N_RB^max,DL, 36.211 6.10.1.1

# Uplink-downlink configurations 0-6, subframes 0-9 (36.211 table 4.2-2).
_TDD_PATTERNS = (
    "DSUUUDSUUU",
    "DSUUDDSUUD",
    "DSUDDDSUDD",
    "DSUUUDDDDD",
    "DSUUDDDDDD",
    "DSUDDDDDDD",
    "DSUUUDSUUD",
)
# DwPTS of special subframe configurations 0-9 in normal-CP symbols (36.211 table 4.2-1:
# 6592, 19760, 21952, 24144, 26336, 6592, 19760, 21952, 24144, 13168 T_s).
_DWPTS_SYMBOLS = (3, 9, 10, 11, 12, 3, 9, 10, 11, 6)
_PSS_ROOTS = (25, 29, 34)  # Zadoff-Chu root per N_ID2, 36.211 table 6.11.1.1-1
_CONTROL_IDLE = (0.1, 0.3)  # fraction of REGs sent on an idle cell (a modelling choice)


class LteRe(enum.IntEnum):
    """What a resource element of :attr:`LteFrame.re_type` carries."""

    EMPTY = 0
    CRS = 1
    PSS = 2
    SSS = 3
    PBCH = 4
    CONTROL = 5
    PDSCH = 6


@dataclass(frozen=True)
class LteConfig:
    """One LTE downlink carrier, normal cyclic prefix.

    Attributes
    ----------
    n_rb : int
        Downlink resource blocks N_RB: 6, 15, 25, 50, 75 or 100 (TS 36.101 table 5.6-1).
    cell_id : int
        Physical cell identity N_ID^cell = 3 N_ID1 + N_ID2, 0-503.
    n_ports : int
        Cell-specific reference signal antenna ports, 1 or 2.
    duplex : {'fdd', 'tdd'}
        Frame structure type 1 (FDD) or 2 (TDD).
    tdd_config : int
        Uplink-downlink configuration 0-6 (36.211 table 4.2-2); TDD only.
    special_subframe_config : int
        Special subframe configuration 0-9 (36.211 table 4.2-1); TDD only.
    cfi : int
        Control region length in symbols: 1-3, or 2-4 when N_RB <= 10 (36.211 table 6.7-1).
    load : float
        Mean fraction of resource blocks carrying PDSCH, 0-1; each subframe draws its own.
    load_steadiness : float
        How alike the subframes' loads are: they are Beta-distributed with mean ``load`` and
        concentration ``load_steadiness`` (2: bursty, near all-or-nothing; 50: steady traffic,
        every subframe close to ``load``).
    """

    n_rb: int = 50
    cell_id: int = 0
    n_ports: int = 1
    duplex: Literal["fdd", "tdd"] = "fdd"
    tdd_config: int = 1
    special_subframe_config: int = 7
    cfi: int = 2
    load: float = 0.5
    load_steadiness: float = 2.0

    def __post_init__(self) -> None:
        if self.n_rb not in LTE_BANDWIDTHS.values():
            raise ValueError(f"N_RB must be one of {sorted(LTE_BANDWIDTHS.values())}")
        if not 0 <= self.cell_id <= 503:
            raise ValueError(f"cell ID {self.cell_id} is not in 0-503")
        if self.n_ports not in (1, 2):
            raise ValueError(f"{self.n_ports} CRS ports: only 1 or 2 are supported")
        if self.duplex not in ("fdd", "tdd"):
            raise ValueError(f"duplex {self.duplex!r} is neither 'fdd' nor 'tdd'")
        if not 0 <= self.tdd_config <= 6:
            raise ValueError(f"TDD configuration {self.tdd_config} is not in 0-6")
        if not 0 <= self.special_subframe_config <= 9:
            raise ValueError(f"special subframe config {self.special_subframe_config} not in 0-9")
        low = 2 if self.n_rb <= 10 else 1
        if not low <= self.cfi <= low + 2:
            raise ValueError(f"CFI {self.cfi} is not in {low}-{low + 2} for {self.n_rb} RB")
        if not 0.0 <= self.load <= 1.0:
            raise ValueError(f"load {self.load} is not in 0-1")
        if not self.load_steadiness > 0:
            raise ValueError(f"load steadiness {self.load_steadiness} must be positive")

    @classmethod
    def from_bandwidth(cls, bandwidth_hz: float, **fields: Any) -> LteConfig:
        """The configuration of a 1.4, 3, 5, 10, 15 or 20 MHz channel; ``fields`` set the rest."""
        for bandwidth, n_rb in LTE_BANDWIDTHS.items():
            if abs(bandwidth_hz - bandwidth) < 1e3:
                return cls(n_rb=n_rb, **fields)
        raise ValueError(f"{bandwidth_hz / 1e6:g} MHz is not an LTE channel bandwidth")

    @property
    def bandwidth_hz(self) -> float:
        """The channel bandwidth (TS 36.101 table 5.6-1)."""
        return lte_bandwidth_hz(self.n_rb)

    @property
    def subframe_kinds(self) -> str:
        """'D' (downlink), 'S' (special) or 'U' (uplink) for subframes 0-9."""
        return "D" * 10 if self.duplex == "fdd" else _TDD_PATTERNS[self.tdd_config]


@dataclass(frozen=True)
class LteFrame:
    """A generated LTE grid and what it holds.

    Attributes
    ----------
    grid : CarrierGrid
        The resource grid: 14 symbols per subframe, 12 N_RB + 1 subcarriers (DC in the middle).
    re_type : np.ndarray
        uint8, the grid's shape: the :class:`LteRe` of every resource element.
    subframe : np.ndarray
        int64, (n_subframes,): subframe number 0-9 within its radio frame.
    downlink : np.ndarray
        bool, (n_symbols,): the symbol belongs to a downlink subframe or a DwPTS.
    rb_alloc : np.ndarray
        bool, (n_subframes, N_RB): resource blocks carrying PDSCH.
    pdsch_bits : np.ndarray
        uint8, (n_subframes,): bits per PDSCH symbol (2 QPSK, 4 16QAM, 6 64QAM; 0 no PDSCH).
    """

    grid: CarrierGrid
    re_type: np.ndarray
    subframe: np.ndarray
    downlink: np.ndarray
    rb_alloc: np.ndarray
    pdsch_bits: np.ndarray


def lte_occupied_hz(n_rb: int) -> float:
    """Occupied bandwidth of N_RB resource blocks plus the unused DC subcarrier, Hz."""
    return (12 * n_rb + 1) * SCS


def crs_sequence(cell_id: int, symbols: tuple[int, ...] = (0, 4)) -> np.ndarray:
    """r_{l,ns}(m) for ns = 0-19, the slot's symbols l, m = 0 .. 2 N_RB_max - 1:
    (20, len(symbols), 220) complex64.

    36.211 6.10.1.1, normal CP (N_CP = 1). Ports 0 and 1 send in symbols 0 and 4 of a slot,
    ports 2 and 3 in symbol 1.
    """
    ns = np.arange(20)[:, None]
    sym = np.array(symbols)[None, :]
    c_init = 2**10 * (7 * (ns + 1) + sym + 1) * (2 * cell_id + 1) + 2 * cell_id + 1
    c = gold_sequence(c_init, 4 * _N_RB_MAX).astype(np.float32)
    r = ((1 - 2 * c[..., 0::2]) + 1j * (1 - 2 * c[..., 1::2])) / np.sqrt(2)
    return r.astype(np.complex64)


def pss_sequence(n_id2: int) -> np.ndarray:
    """The 62 PSS values d(n) for N_ID2 = 0, 1, 2 (36.211 6.11.1.1): complex64."""
    u = _PSS_ROOTS[n_id2]
    n = np.arange(62)
    phase = np.where(n < 31, n * (n + 1), (n + 1) * (n + 2))
    return np.exp(-1j * np.pi * u * phase / 63).astype(np.complex64)


def _m_sequence(taps: tuple[int, ...]) -> np.ndarray:
    """1 - 2 x(i), i < 31, with x(0..4) = 0 0 0 0 1 and x(i + 5) = sum of x(i + t) mod 2."""
    x = [0, 0, 0, 0, 1]
    for i in range(26):
        x.append(sum(x[i + t] for t in taps) % 2)
    return 1 - 2 * np.array(x)


def sss_sequence(n_id1: int, n_id2: int, subframe: int) -> np.ndarray:
    """The 62 SSS values d(n) of subframe 0 or 5 (36.211 6.11.2.1): ±1 as complex64."""
    q_prime = n_id1 // 30
    q = (n_id1 + q_prime * (q_prime + 1) // 2) // 30
    m_prime = n_id1 + q * (q + 1) // 2
    m0 = m_prime % 31
    m1 = (m0 + m_prime // 31 + 1) % 31
    s, c, z = _m_sequence((2, 0)), _m_sequence((3, 0)), _m_sequence((4, 2, 1, 0))
    n = np.arange(31)
    s0, s1 = s[(n + m0) % 31], s[(n + m1) % 31]
    c0, c1 = c[(n + n_id2) % 31], c[(n + n_id2 + 3) % 31]
    z1_m0, z1_m1 = z[(n + m0 % 8) % 31], z[(n + m1 % 8) % 31]
    d = np.empty(62, dtype=np.complex64)
    if subframe == 0:
        d[0::2], d[1::2] = s0 * c0, s1 * c1 * z1_m0
    else:
        d[0::2], d[1::2] = s1 * c0, s0 * c1 * z1_m1
    return d


def _qam_table() -> np.ndarray:
    """Row b: the 2^b points of square QAM (b = 2, 4, 6) at unit mean energy, repeated to 64."""
    table = np.zeros((7, 64), dtype=np.complex64)
    for bits in (2, 4, 6):
        side = 1 << (bits // 2)  # points per axis
        level = 2 * np.arange(side) - (side - 1)
        points = (level[:, None] + 1j * level[None, :]).ravel()
        table[bits] = np.tile(points, 64 // side**2) / np.sqrt(2.0 / 3.0 * (side**2 - 1))
    return table


_QAM = _qam_table()  # QPSK, 16QAM and 64QAM of 36.211 7.1 (point order is immaterial here)


def _qam(rng: np.random.Generator, bits: np.ndarray) -> np.ndarray:
    """Random QAM symbols, ``bits`` (2, 4 or 6) bits each, unit mean energy."""
    return _QAM[bits, rng.integers(0, 64, size=bits.size, dtype=np.uint8)]


def _rank(keys: np.ndarray) -> np.ndarray:
    """Rank of every value along the last axis (0 = smallest)."""
    return keys.argsort(axis=-1).argsort(axis=-1)


def _allocate(rng: np.random.Generator, n_rb: int, loads: np.ndarray) -> np.ndarray:
    """Random PDSCH resource blocks of each subframe: (len(loads), n_rb) bool.

    Each subframe uses one of three shapes with about ``load * n_rb`` RBs: a contiguous run
    (resource allocation type 2, localized), whole random RBGs (type 0, RBG size per 36.213 table
    7.1.6.1-1), or single RBs scattered at random (distributed allocations).
    """
    n_sub = loads.size
    count = np.rint(loads * n_rb).astype(np.int64)[:, None]
    rb = np.arange(n_rb)
    shape = rng.integers(3, size=n_sub)[:, None]
    start = np.floor(rng.random((n_sub, 1)) * (n_rb - count + 1)).astype(np.int64)
    contiguous = (rb >= start) & (rb < start + count)
    rbg = 1 if n_rb <= 10 else 2 if n_rb <= 26 else 3 if n_rb <= 63 else 4
    n_rbg = -(-n_rb // rbg)
    chosen = _rank(rng.random((n_sub, n_rbg))) < -(-count // rbg)
    groups = chosen[:, rb // rbg]
    scattered = _rank(rng.random((n_sub, n_rb))) < count
    return np.select([shape == 0, shape == 1], [contiguous, groups], scattered)


def _subframe_loads(
    rng: np.random.Generator, load: float, steadiness: float, n_sub: int
) -> np.ndarray:
    """Per-subframe RB occupancy: Beta-distributed over 0-1 with mean ``load``."""
    if load <= 0.0 or load >= 1.0:
        return np.full(n_sub, float(load >= 1.0))
    return rng.beta(steadiness * load, steadiness * (1.0 - load), size=n_sub)


def lte_frame(
    config: LteConfig,
    n_subframes: int,
    rng: np.random.Generator,
    first_subframe: int = 0,
) -> LteFrame:
    """Generate ``n_subframes`` of an LTE downlink, with the truth of every resource element.

    Parameters
    ----------
    config : LteConfig
        The carrier.
    n_subframes : int
        Number of 1 ms subframes (14 symbols each).
    rng : np.random.Generator
        Source of the allocations and data; the same state gives the same grid.
    first_subframe : int
        Subframe number of the first subframe; numbering continues modulo 10. Its tens, and
        the frames after, are the system frame numbers the PBCH sends.

    Returns
    -------
    LteFrame
        The grid (``grid.values`` of shape (14 n_subframes, 12 N_RB + 1)) and its truth.
    """
    if n_subframes < 1:
        raise ValueError("n_subframes must be at least 1")
    n_rb = config.n_rb
    width = 12 * n_rb  # subcarriers k = 0 .. 12 N_RB - 1 of 36.211; DC is added at the end
    centre = 6 * n_rb
    v_shift = config.cell_id % 6
    n_id1, n_id2 = divmod(config.cell_id, 3)
    tdd = config.duplex == "tdd"

    subframe = (first_subframe + np.arange(n_subframes)) % 10
    kind = np.array(list(config.subframe_kinds))[subframe]
    dwpts = _DWPTS_SYMBOLS[config.special_subframe_config]
    n_dl = np.select([kind == "D", kind == "S"], [_SYMBOLS, dwpts], 0)
    # 36.211 table 6.7-1: at most 2 control symbols in a special subframe (exactly 2 if N_RB <= 10).
    special_cfi = 2 if n_rb <= 10 else min(config.cfi, 2)
    cfi = np.where(kind == "S", special_cfi, config.cfi)
    # 36.213 7.1: no PDSCH in a 3-symbol DwPTS (special subframe configurations 0 and 5).
    has_pdsch = n_dl > 3

    sf_row = np.repeat(np.arange(n_subframes), _SYMBOLS)
    l_sf = np.tile(np.arange(_SYMBOLS), n_subframes)  # symbol within the subframe
    sym = l_sf % 7  # symbol l within its slot
    ns = 2 * subframe[sf_row] + l_sf // 7  # slot number within the radio frame
    sf_of_row = subframe[sf_row]
    downlink = l_sf < n_dl[sf_row]

    n_sym = n_subframes * _SYMBOLS
    values = np.zeros((n_sym, width), dtype=np.complex64)
    re_type = np.zeros((n_sym, width), dtype=np.uint8)
    busy = np.zeros((n_sym, width), dtype=bool)  # REs PDSCH and control must not use
    k = np.arange(width)

    # CRS, 36.211 6.10.1.2: k = 6m + (v + v_shift) mod 6 in symbols 0 and 4 of each slot, with
    # v = 0 (l = 0) / 3 (l = 4) for port 0 and the other way round for port 1.
    rows = np.flatnonzero(downlink & ((sym == 0) | (sym == 4)))
    m_prime = np.arange(2 * n_rb) + _N_RB_MAX - n_rb
    seq = crs_sequence(config.cell_id)[ns[rows], (sym[rows] == 4).astype(np.int64)][:, m_prime]
    for port in range(config.n_ports):
        v = np.where(sym[rows] == 0, 3 * port, 3 - 3 * port)
        cols = 6 * np.arange(2 * n_rb) + ((v + v_shift) % 6)[:, None]
        values[rows[:, None], cols] = seq
        re_type[rows[:, None], cols] = LteRe.CRS
        busy[rows[:, None], cols] = True

    # PSS and SSS, 36.211 6.11.1.2 and 6.11.2.2: k = n - 31 + 6 N_RB on the central 62
    # subcarriers, 5 reserved (empty) subcarriers each side.
    sync_cols = centre - 31 + np.arange(62)
    central = centre - 36 + np.arange(72)
    if tdd:
        pss_rows = np.isin(sf_of_row, (1, 6)) & (l_sf == 2)
        sss_rows = np.isin(sf_of_row, (0, 5)) & (l_sf == 13)
    else:
        pss_rows = np.isin(sf_of_row, (0, 5)) & (l_sf == 6)
        sss_rows = np.isin(sf_of_row, (0, 5)) & (l_sf == 5)
    rows = np.flatnonzero(pss_rows)
    values[np.ix_(rows, sync_cols)] = pss_sequence(n_id2)
    re_type[np.ix_(rows, sync_cols)] = LteRe.PSS
    busy[np.ix_(rows, central)] = True
    for number in (0, 5):
        rows = np.flatnonzero(sss_rows & (sf_of_row == number))
        values[np.ix_(rows, sync_cols)] = sss_sequence(n_id1, n_id2, number)
        re_type[np.ix_(rows, sync_cols)] = LteRe.SSS
        busy[np.ix_(rows, central)] = True

    # PBCH, 36.211 6.6.4: symbols 0-3 of slot 1 of subframe 0 on the central 72 subcarriers,
    # leaving out the REs of CRS ports 0-3 whatever the number of ports (k = v_shift mod 3 in
    # symbols 0 and 1 of the slot).
    pbch = np.zeros((n_sym, width), dtype=bool)
    rows = np.flatnonzero((sf_of_row == 0) & (l_sf >= 7) & (l_sf <= 10))
    pbch[np.ix_(rows, central)] = True
    pbch[np.ix_(rows[l_sf[rows] <= 8], central[central % 3 == v_shift % 3])] = False
    busy[np.ix_(rows, central)] = True

    loads = _subframe_loads(rng, config.load, config.load_steadiness, n_subframes)
    rb_alloc = _allocate(rng, n_rb, loads) & has_pdsch[:, None]
    bits = rng.choice(np.array([2, 4, 6], dtype=np.uint8), size=n_subframes)
    pdsch_bits = np.where(rb_alloc.any(axis=1), bits, 0).astype(np.uint8)

    # Control region, first CFI symbols (36.211 6.7-6.9) as REGs of 36.211 6.2.4: in symbol 0, 6
    # subcarriers holding the REs of CRS ports 0 and 1 (always reserved); elsewhere 4 subcarriers.
    rows = np.flatnonzero(downlink & (l_sf < cfi[sf_row]))
    first = (l_sf[rows] == 0)[:, None]
    reg = np.where(first, k // 6, k // 4)
    low, high = _CONTROL_IDLE
    sent_fraction = low + (high - low) * rng.random(n_subframes) + (1.0 - high) * loads
    sent_reg = rng.random((rows.size, width // 4)) < sent_fraction[sf_row[rows], None]
    control = np.zeros((n_sym, width), dtype=bool)
    rs = first & (k % 3 == v_shift % 3)
    control[rows] = np.take_along_axis(sent_reg, reg, axis=1) & ~rs & ~busy[rows]

    # PDSCH, 36.211 6.4: after the control region, on the allocated RBs, around the CRS,
    # sync and PBCH.
    pdsch_rows = downlink & (l_sf >= cfi[sf_row])
    pdsch = pdsch_rows[:, None] & np.repeat(rb_alloc, 12, axis=1)[sf_row] & ~busy

    data_bits = np.where(pdsch, pdsch_bits[sf_row, None], 0).astype(np.uint8)
    data_bits[pbch | control] = 2
    data = data_bits > 0
    values[data] = _qam(rng, data_bits[data])
    # The PBCH's symbols replace the random ones drawn for its REs, which keeps the generator's
    # draws, and so every other RE, as they were. Its REs go in order of k, then l (36.211
    # 6.6.4); the system frame number counts the frames from subframe 0 of the first.
    for row in np.flatnonzero((sf_of_row == 0) & (l_sf == 7)):
        sfn = (first_subframe + sf_row[row]) // 10 % 1024
        block = pbch[row : row + 4]
        values[row : row + 4][block] = pbch_symbols(Mib(n_rb, sfn), config.n_ports,
                                                    config.cell_id)
    re_type[pbch] = LteRe.PBCH
    re_type[control] = LteRe.CONTROL
    re_type[pdsch] = LteRe.PDSCH

    # 36.211 6.12: subcarrier k < 6 N_RB sits at k - 6 N_RB, k >= 6 N_RB at k - 6 N_RB + 1.
    cp = np.where(sym == 0, _CP_FIRST, _CP_OTHER) * _TS
    grid = CarrierGrid(np.insert(values, centre, 0, axis=1), SCS, -centre, cp,
                      continuous_phase=True)
    return LteFrame(
        grid=grid,
        re_type=np.insert(re_type, centre, LteRe.EMPTY, axis=1),
        subframe=subframe,
        downlink=downlink,
        rb_alloc=rb_alloc,
        pdsch_bits=pdsch_bits,
    )


def lte_grid(
    config: LteConfig,
    n_subframes: int,
    rng: np.random.Generator,
    first_subframe: int = 0,
) -> CarrierGrid:
    """The resource grid of :func:`lte_frame`, without its truth."""
    return lte_frame(config, n_subframes, rng, first_subframe).grid

"""NR FR1 downlink resource grids (TS 38.211, TS 38.213, TS 38.214, TS 38.101-1).

:func:`nr_grid` fills a :class:`~monitor.synth.ofdm.CarrierGrid` with what a gNB sends on one
carrier: SS/PBCH blocks (PSS, SSS, PBCH and its DMRS) in bursts, a CORESET with PDCCH and its DMRS
at the start of scheduled slots, and PDSCH with type-1 DMRS over random slot groups and RB groups;
uplink slots and symbols of a TDD pattern stay silent. Reference signals and synchronisation
sequences are the specified ones, and so is the PBCH (the cell's MIB, coded: see
:mod:`monitor.synth.nr_bch`); the other coded payloads are random symbols of the right modulation.

Simplifications against the specifications:

- one numerology per carrier: the SSB uses the carrier's SCS (case A at 15 kHz, B or C at
  30 kHz). A 60 kHz carrier, or a 30 kHz one too narrow for the SSB's 20 RB (5 MHz), has no SSB,
  since its SSB would need a second, 15 or 30 kHz, grid.
- the SSB sits on a whole RB (no k_SSB subcarrier offset); point A is the carrier's first
  subcarrier, so DMRS sequences are indexed from the carrier's RB 0.
- one antenna port, no precoding; PDSCH DMRS with one CDM group without data (the odd
  subcarriers of a DMRS symbol carry data), so every sent resource element has unit energy.
- PDSCH mapping type A from the symbol after the CORESET to the slot's last downlink symbol;
  frequency allocation type 0 (38.214 5.1.2.2.1, RBG bitmap); no rate matching around CORESETs
  of other slots or CSI-RS; the SSB overwrites whatever else was scheduled on its resource
  elements (a real scheduler would avoid them).
- PDCCH: non-interleaved CCE-to-REG mapping, candidates at random aggregation levels aligned to
  their level (no search-space hashing); a slot's CCEs are not spread over several CORESETs.
- no CSI-RS, TRS, PTRS, or paging/SIB traffic: an idle cell (``load`` 0) sends its SSBs only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from monitor.bandwidths import NR_RB_TABLE
from monitor.synth.nr_bch import NrMib, pbch_bits
from monitor.synth.ofdm import CarrierGrid
from monitor.synth.sequences import gold_sequence

__all__ = [
    "NrConfig",
    "nr_grid",
    "nr_min_guard_hz",
    "nr_occupied_hz",
    "pbch_dmrs",
    "pbch_layout",
    "pss_sequence",
    "ssb_first_symbols",
    "sss_sequence",
]

SYMBOLS_PER_SLOT = 14
_SSB_RB = 20
_MODULATIONS = ("QPSK", "16QAM", "64QAM", "256QAM")  # 38.211 5.1.3-5.1.6
_SSB_PERIODS_MS = (5, 10, 20, 40, 80, 160)  # 38.331 ssb-periodicityServingCell
_AGGREGATION_LEVELS = np.array([1, 2, 4, 8, 16])  # 38.211 7.3.2.1


def nr_occupied_hz(n_rb: int, scs: float) -> float:
    """Width of the transmission bandwidth, 12 N_RB SCS, in Hz."""
    return 12 * n_rb * scs


def nr_min_guard_hz(bandwidth_hz: float, scs: float) -> float:
    """Minimum guard band of TS 38.101-1 table 5.3.3-1: (BW - 12 N_RB SCS) / 2 - SCS / 2.

    Raises
    ------
    ValueError
        For a (bandwidth, SCS) pair that table 5.3.2-1 does not list.
    """
    return (bandwidth_hz - nr_occupied_hz(_n_rb(bandwidth_hz, scs), scs)) / 2 - scs / 2


def ssb_first_symbols(case: str, l_max: int) -> np.ndarray:
    """First OFDM symbols of the candidate SS/PBCH blocks in a half-frame (TS 38.213 4.1).

    Case A and C: {2, 8} + 14 n; case B: {4, 8, 16, 20} + 28 n; n runs over as many values as
    give ``l_max`` candidates. Symbols count from the half-frame's first symbol at the SSB SCS.
    """
    base, step = ((4, 8, 16, 20), 28) if case == "B" else ((2, 8), 14)
    repeats = l_max // len(base)
    return (np.asarray(base)[None, :] + step * np.arange(repeats)[:, None]).ravel()


def _n_rb(bandwidth_hz: float, scs: float) -> int:
    key = (round(bandwidth_hz), round(scs))
    valid = sorted(bw // 10**6 for bw, s in NR_RB_TABLE if s == key[1])
    if not valid:
        raise ValueError(f"NR FR1 subcarrier spacing must be 15, 30 or 60 kHz, not {scs:g} Hz")
    if key not in NR_RB_TABLE:
        raise ValueError(
            f"no NR FR1 carrier of {bandwidth_hz / 1e6:g} MHz at {scs / 1e3:g} kHz; 38.101-1 "
            f"table 5.3.2-1 has {', '.join(map(str, valid))} MHz"
        )
    return NR_RB_TABLE[key]


@dataclass(frozen=True)
class NrConfig:
    """One NR FR1 downlink carrier.

    ``None`` and ``"auto"`` defaults are resolved when the config is made, so the fields of a
    config always hold what the generator uses.

    Attributes
    ----------
    bandwidth_hz, scs : float
        Channel bandwidth and subcarrier spacing (15, 30 or 60 kHz), a pair of 38.101-1 table
        5.3.2-1.
    cell_id : int
        Physical cell identity N_ID = 3 N_ID1 + N_ID2, 0-1007 (38.211 7.4.2.1).
    ssb_case : str or None
        SSB pattern of 38.213 4.1: ``"A"`` at 15 kHz, ``"B"`` or ``"C"`` at 30 kHz; None for no
        SSB; ``"auto"``: A at 15 kHz, B at 30 kHz, None where no SSB fits (module docstring).
    l_max : int
        Candidate SSBs per half-frame, 4 or 8.
    ssb_bitmap : tuple of bool
        Which candidates are sent (ssb-PositionsInBurst); a string of 0/1 is accepted. Default:
        all.
    ssb_period_s : float
        Burst period: 5, 10, 20, 40, 80 or 160 ms; bursts are in the first half-frame of each.
    ssb_offset_rb : int
        First RB of the SSB's 20 RB in the carrier. Default: centred.
    coreset_symbols : int
        CORESET duration, 1-3 symbols, at most ``dmrs_type_a_position``.
    coreset_start_rb, coreset_rb : int
        CORESET position and size in RB, a multiple of 6; default size: the whole carrier
        rounded down to a multiple of 6.
    load : float
        Fraction of the downlink slots with PDSCH, 0-1. 0 is an idle cell: SSBs and nothing else.
    rb_share : float
        Fraction of the RBs each group of scheduled slots uses, (0, 1].
    pdcch_only_share : float
        Fraction of the other downlink slots that carry a PDCCH alone (an uplink grant, say);
        ignored when ``load`` is 0.
    modulations : tuple of str
        PDSCH modulations to draw from per slot group: QPSK, 16QAM, 64QAM, 256QAM.
    dmrs_type_a_position : int
        First PDSCH DMRS symbol, 2 or 3 (dmrs-TypeA-Position).
    dmrs_additional_position : int
        dmrs-AdditionalPosition 0-3 (absent in RRC means 2); 3 needs type A position 2.
    tdd_pattern : str or None
        Slot types repeating from slot 0, e.g. ``"DDDSU"``: D downlink, S special, U uplink; its
        period must divide 20 ms. None: every slot downlink.
    special_dl_symbols : int
        Downlink symbols at the start of a special slot; the guard and uplink rest is silent.
    n_rb : int
        Transmission bandwidth in RB, from 38.101-1 table 5.3.2-1 (derived).
    """

    bandwidth_hz: float
    scs: float
    cell_id: int = 0
    ssb_case: str | None = "auto"
    l_max: int = 4
    ssb_bitmap: tuple[bool, ...] | str | None = None
    ssb_period_s: float = 0.02
    ssb_offset_rb: int | None = None
    coreset_symbols: int = 2
    coreset_start_rb: int = 0
    coreset_rb: int | None = None
    load: float = 0.5
    rb_share: float = 0.5
    pdcch_only_share: float = 0.2
    modulations: tuple[str, ...] | str = ("QPSK",)
    dmrs_type_a_position: int = 2
    dmrs_additional_position: int = 2
    tdd_pattern: str | None = None
    special_dl_symbols: int = 10
    n_rb: int = field(init=False)

    def __post_init__(self) -> None:
        n_rb = _n_rb(self.bandwidth_hz, self.scs)
        resolve = functools.partial(object.__setattr__, self)
        resolve("n_rb", n_rb)
        if not 0 <= self.cell_id <= 1007:
            raise ValueError(f"cell_id {self.cell_id} is outside 0-1007")
        case = self.ssb_case
        if case == "auto":
            case = {15e3: "A", 30e3: "B"}.get(self.scs)
            case = case if n_rb >= _SSB_RB else None
        resolve("ssb_case", case)
        if case is not None:
            if {"A": 15e3, "B": 30e3, "C": 30e3}.get(case) != self.scs:
                raise ValueError(f"SSB case {case!r} does not match a {self.scs:g} Hz SCS")
            if self.l_max not in (4, 8):
                raise ValueError(f"l_max must be 4 or 8, not {self.l_max}")
            offset = (n_rb - _SSB_RB) // 2 if self.ssb_offset_rb is None else self.ssb_offset_rb
            if not 0 <= offset <= n_rb - _SSB_RB:
                raise ValueError(f"an SSB at RB {offset} does not fit in {n_rb} RB")
            resolve("ssb_offset_rb", offset)
            bitmap = self.ssb_bitmap if self.ssb_bitmap is not None else (True,) * self.l_max
            if isinstance(bitmap, str):
                bitmap = tuple(c == "1" for c in bitmap if c in "01")
            if len(bitmap) != self.l_max:
                raise ValueError(f"ssb_bitmap needs {self.l_max} entries, not {len(bitmap)}")
            resolve("ssb_bitmap", tuple(bool(b) for b in bitmap))
        if round(self.ssb_period_s * 1e3, 6) not in _SSB_PERIODS_MS:
            raise ValueError(f"SSB period {self.ssb_period_s} s is not one of {_SSB_PERIODS_MS} ms")
        if not 1 <= self.coreset_symbols <= 3:
            raise ValueError(f"coreset_symbols must be 1-3, not {self.coreset_symbols}")
        size = self.coreset_rb
        if size is None:
            size = 6 * ((n_rb - self.coreset_start_rb) // 6)
        if size <= 0 or size % 6 or not 0 <= self.coreset_start_rb <= n_rb - size:
            raise ValueError(f"CORESET of {size} RB at RB {self.coreset_start_rb} in {n_rb} RB")
        resolve("coreset_rb", size)
        shares = (self.load, self.pdcch_only_share)
        if not (all(0 <= x <= 1 for x in shares) and 0 < self.rb_share <= 1):
            raise ValueError("load and pdcch_only_share must be in [0, 1], rb_share in (0, 1]")
        modulations = self.modulations
        resolve("modulations", (modulations,) if isinstance(modulations, str) else modulations)
        if not self.modulations or not set(self.modulations) <= set(_MODULATIONS):
            raise ValueError(f"modulations must be some of {list(_MODULATIONS)}")
        if self.dmrs_type_a_position not in (2, 3):
            raise ValueError("dmrs_type_a_position must be 2 or 3")
        if self.coreset_symbols > self.dmrs_type_a_position:
            raise ValueError("the CORESET must end before the first PDSCH DMRS symbol")
        if self.dmrs_additional_position not in (0, 1, 2, 3) or (
            self.dmrs_additional_position == 3 and self.dmrs_type_a_position != 2
        ):  # 38.211 7.4.1.1.2: pos3 only with dmrs-TypeA-Position pos2
            raise ValueError("dmrs_additional_position must be 0-3 (3 only with position 2)")
        if self.tdd_pattern is not None:
            period_ms = len(self.tdd_pattern) * 15e3 / self.scs
            if not self.tdd_pattern or set(self.tdd_pattern) - set("DSU"):
                raise ValueError(f"TDD pattern {self.tdd_pattern!r} is not a string of D, S, U")
            if abs(20 / period_ms - round(20 / period_ms)) > 1e-9:  # 38.213 11.1
                raise ValueError(f"TDD period {period_ms} ms does not divide 20 ms")
        if not 0 <= self.special_dl_symbols <= SYMBOLS_PER_SLOT:
            raise ValueError("special_dl_symbols must be 0-14")

    @property
    def mu(self) -> int:
        """Numerology: SCS = 15 kHz * 2^mu."""
        return round(self.scs / 15e3).bit_length() - 1

    @classmethod
    def from_bandwidth(
        cls,
        bandwidth_hz: float,
        scs: float,
        rng: np.random.Generator | None = None,
        **options: object,
    ) -> NrConfig:
        """A carrier drawn the reference recipe's way, ``options`` overriding any field.

        With ``rng``: random cell ID, L_max 4 or 8, SSB bitmap (at least one SSB), SSB position,
        ``load`` 0.1-0.8 and ``rb_share`` 0.2-0.7; without: the field defaults.

        Raises
        ------
        ValueError, TypeError
            For an invalid carrier or an unknown option.
        """
        if rng is None:
            return cls(bandwidth_hz, scs, **options)  # type: ignore[arg-type]
        n_rb = _n_rb(bandwidth_hz, scs)
        drawn: dict[str, object] = {
            "cell_id": int(rng.integers(1008)),
            "l_max": int(rng.choice([4, 8])),
            "load": float(rng.uniform(0.1, 0.8)),
            "rb_share": float(rng.uniform(0.2, 0.7)),
        }
        bits = rng.random(8) < 0.5
        bits[rng.integers(8)] = True
        offset = int(rng.integers(max(n_rb - _SSB_RB, 0) + 1))
        drawn.update(options)
        l_max = int(drawn["l_max"])  # type: ignore[call-overload]
        if not bits[:l_max].any():
            bits[rng.integers(l_max)] = True
        drawn.setdefault("ssb_bitmap", tuple(bool(b) for b in bits[:l_max]))
        if n_rb >= _SSB_RB:
            drawn.setdefault("ssb_offset_rb", offset)
        return cls(bandwidth_hz, scs, **drawn)  # type: ignore[arg-type]


def nr_grid(
    config: NrConfig, n_slots: int, rng: np.random.Generator, first_slot: int = 0
) -> CarrierGrid:
    """The resource grid of ``n_slots`` slots of an NR downlink carrier.

    Parameters
    ----------
    config : NrConfig
        The carrier.
    n_slots : int
        Slots to generate, 14 OFDM symbols each (normal CP).
    rng : np.random.Generator
        The only source of randomness: same state, same grid.
    first_slot : int
        Number of the first slot counted from slot 0 of a frame with SFN 0: it sets where the
        grid falls in the SSB period, the TDD pattern and the frame (slot numbers in DMRS
        sequences are taken modulo the frame's 10 * 2^mu slots).

    Raises
    ------
    ValueError
        For fewer than one slot.

    Returns
    -------
    CarrierGrid
        12 N_RB columns, lowest subcarrier first, ``first_subcarrier = -6 N_RB``: subcarrier k
        is at (k - 6 N_RB) SCS from the carrier centre (38.211 5.3.1; NR has no DC null).
    """
    if n_slots < 1:
        raise ValueError(f"an NR grid needs at least one slot, not {n_slots}")
    n_sc = 12 * config.n_rb
    slots = first_slot + np.arange(n_slots)
    n_dl = _downlink_symbols(config, slots)
    values = np.zeros((n_slots, SYMBOLS_PER_SLOT, n_sc), dtype=np.complex64)
    slot_in_frame = slots % (10 << config.mu)
    if config.load > 0:
        pdsch_slots, pdsch_rb, kinds = _pdsch_allocation(config, n_dl, rng)
        pdcch_slots = pdsch_slots | (
            (n_dl >= config.coreset_symbols) & (rng.random(n_slots) < config.pdcch_only_share)
        )
        _fill_pdsch(values, config, pdsch_slots, pdsch_rb, kinds, n_dl, slot_in_frame, rng)
        _fill_pdcch(values, config, pdcch_slots, slot_in_frame, rng)
    ssb_rows = _fill_ssb(values, config, slots, n_dl)
    return CarrierGrid(
        values=values.reshape(n_slots * SYMBOLS_PER_SLOT, n_sc),
        scs=config.scs,
        first_subcarrier=-6 * config.n_rb,
        cp_seconds=_cp_seconds(config.mu, slots),
        ssb_rows=ssb_rows,
        ssb_column=12 * (config.ssb_offset_rb or 0),
    )


def _cp_seconds(mu: int, slots: np.ndarray) -> np.ndarray:
    """38.211 5.3.1: N_CP = 144 kappa 2^-mu Tc, plus 16 kappa Tc at symbols l = 0 and 7 * 2^mu of
    a subframe (the first symbol of every 0.5 ms); kappa Tc = 1 / 30.72 MHz."""
    in_subframe = (slots % (1 << mu))[:, None] * SYMBOLS_PER_SLOT + np.arange(SYMBOLS_PER_SLOT)
    long = in_subframe % (7 << mu) == 0
    return ((144 >> mu) + 16 * long.ravel()) / 30.72e6


def _downlink_symbols(config: NrConfig, slots: np.ndarray) -> np.ndarray:
    """Downlink symbols at the start of each slot: 14, the special slot's share, or 0."""
    if config.tdd_pattern is None:
        return np.full(len(slots), SYMBOLS_PER_SLOT)
    per_type = {"D": SYMBOLS_PER_SLOT, "S": config.special_dl_symbols, "U": 0}
    pattern = np.array([per_type[t] for t in config.tdd_pattern])
    return pattern[slots % len(pattern)]


def _pdsch_allocation(
    config: NrConfig, n_dl: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scheduled slots, their RBs and modulations (indices into ``_MODULATIONS``).

    The slots that can hold a type-A PDSCH are cut into runs of 1-8 consecutive slots; whole
    runs, in random order, are scheduled until ``load`` of them is. Each run gets its own random
    RBGs (38.214 5.1.2.2.1, type 0, configuration 1: RBG size 2, 4, 8, 16 for up to 36, 72, 144,
    275 RB), ``rb_share`` of them, and its own modulation.
    """
    n_slots, n_rb = len(n_dl), config.n_rb
    # A type-A PDSCH starts after the CORESET, is 3 symbols or more and holds the DMRS at l0.
    capable = np.flatnonzero(
        (n_dl - config.coreset_symbols >= 3) & (n_dl > config.dmrs_type_a_position)
    )
    wanted = round(config.load * len(capable))
    cuts = np.cumsum(rng.integers(1, 9, size=len(capable)))
    runs = np.split(capable, cuts[cuts < len(capable)])
    rbg = 2 << int(np.searchsorted([36, 72, 144], n_rb))
    n_rbg = -(-n_rb // rbg)
    kinds = [_MODULATIONS.index(m) for m in config.modulations]
    scheduled = np.zeros(n_slots, dtype=bool)
    rb = np.zeros((n_slots, n_rb), dtype=bool)
    kind = np.zeros(n_slots, dtype=np.uint8)
    for run in (runs[i] for i in rng.permutation(len(runs))):
        take = run[: wanted - int(scheduled.sum())]
        if not len(take):
            break
        groups = rng.permutation(n_rbg)[: max(1, round(config.rb_share * n_rbg))]
        chosen = np.zeros(n_rbg, dtype=bool)
        chosen[groups] = True
        scheduled[take] = True
        rb[take] = np.repeat(chosen, rbg)[:n_rb]
        kind[take] = rng.choice(kinds)
    return scheduled, rb, kind


def _pdsch_dmrs_symbols(l0: int, additional: int, l_d: int) -> tuple[int, ...]:
    """38.211 table 7.4.1.1.2-3, PDSCH mapping type A, single-symbol DMRS: the DMRS symbols of a
    PDSCH that ends l_d symbols after the slot start."""
    if l_d < 8 or additional == 0:
        return (l0,)
    if l_d < 10:
        return (l0, 7)
    if additional == 1:
        return (l0, 9) if l_d < 13 else (l0, 11)
    if additional == 2:
        return (l0, 6, 9) if l_d < 13 else (l0, 7, 11)
    return (l0, 6, 9) if l_d < 12 else (l0, 5, 8, 11)


def _fill_pdsch(
    values: np.ndarray,
    config: NrConfig,
    scheduled: np.ndarray,
    rb: np.ndarray,
    kind: np.ndarray,
    n_dl: np.ndarray,
    slot_in_frame: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """PDSCH data and type-1 DMRS (38.211 7.3.1, 7.4.1.1) on port 1000: DMRS on the even
    subcarriers of each scheduled RB (k = 4n + 2k', delta 0), data everywhere else."""
    sym = np.arange(SYMBOLS_PER_SLOT)
    symbols = scheduled[:, None] & (sym >= config.coreset_symbols) & (sym < n_dl[:, None])
    dmrs_table = np.zeros((SYMBOLS_PER_SLOT + 1, SYMBOLS_PER_SLOT), dtype=bool)
    for l_d in range(3, SYMBOLS_PER_SLOT + 1):
        positions = _pdsch_dmrs_symbols(
            config.dmrs_type_a_position, config.dmrs_additional_position, l_d
        )
        dmrs_table[l_d, list(positions)] = True
    dmrs_symbols = symbols & dmrs_table[n_dl]
    subcarriers = np.repeat(rb, 12, axis=1)
    data = symbols[:, :, None] & subcarriers[:, None, :]
    data[:, :, 0::2] &= ~dmrs_symbols[:, :, None]
    per_slot = data.sum(axis=(1, 2))
    values[data] = _qam(rng, int(per_slot.sum()), np.repeat(kind, per_slot))
    # 38.211 7.4.1.1.1: c_init = 2^17 (14 n_s + l + 1)(2 N_ID + 1) + 2 N_ID (n_SCID = 0), mod 2^31.
    s, sym = np.nonzero(dmrs_symbols)
    sequence = _gold_qpsk(_dmrs_c_init(slot_in_frame[s], sym, config.cell_id), 6 * config.n_rb)
    values[s, sym, 0::2] = np.where(np.repeat(rb[s], 6, axis=1), sequence, 0)


def _fill_pdcch(
    values: np.ndarray,
    config: NrConfig,
    pdcch_slots: np.ndarray,
    slot_in_frame: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """PDCCH candidates and their DMRS in the CORESET (38.211 7.3.2, 7.4.1.3).

    A CCE is 6 REGs (1 RB x 1 symbol each) numbered time-first; with the non-interleaved mapping
    CCE j covers RBs 6j/D to 6(j+1)/D - 1 of the CORESET over all its D symbols. Each slot draws
    one aggregation level and uses a random share of the aligned candidates, at least one.
    DMRS: subcarriers 1, 5, 9 of each used REG.
    """
    n_slots, depth = len(pdcch_slots), config.coreset_symbols
    n_cce = config.coreset_rb * depth // 6
    levels = _AGGREGATION_LEVELS[_AGGREGATION_LEVELS <= n_cce]
    level = rng.choice(levels, size=n_slots)
    share = rng.uniform(0.1, 0.6, size=n_slots)
    n_candidates = n_cce // level
    candidate = np.arange(n_cce)[None, :] // level[:, None]
    used = rng.random((n_slots, n_cce)) < share[:, None]
    forced = (rng.random(n_slots) * n_candidates).astype(np.int64)
    used = np.take_along_axis(used, candidate, axis=1) | (candidate == forced[:, None])
    cce = used & (candidate < n_candidates[:, None]) & pdcch_slots[:, None]
    rb = np.zeros((n_slots, config.n_rb), dtype=bool)
    start = config.coreset_start_rb
    rb[:, start : start + config.coreset_rb] = np.repeat(cce, 6 // depth, axis=1)
    data = np.repeat(rb, 12, axis=1)
    data[:, 1::4] = False
    region = values[:, :depth]
    region[np.broadcast_to(data[:, None, :], region.shape)] = _qam(rng, int(data.sum()) * depth)
    # 38.211 7.4.1.3.1: c_init = 2^17 (14 n_s + l + 1)(2 N_ID + 1) + 2 N_ID, mod 2^31.
    s, sym = np.nonzero(pdcch_slots[:, None] & np.ones(depth, dtype=bool))
    sequence = _gold_qpsk(_dmrs_c_init(slot_in_frame[s], sym, config.cell_id), 3 * config.n_rb)
    values[s, sym, 1::4] = np.where(np.repeat(rb[s], 3, axis=1), sequence, 0)


def _dmrs_c_init(slot: np.ndarray, symbol: np.ndarray, n_id: int) -> np.ndarray:
    slot, symbol = slot.astype(np.int64), symbol.astype(np.int64)
    return ((SYMBOLS_PER_SLOT * slot + symbol + 1) * (2 * n_id + 1) * 2**17 + 2 * n_id) % 2**31


def _fill_ssb(values: np.ndarray, config: NrConfig, slots: np.ndarray, n_dl: np.ndarray
              ) -> np.ndarray:
    """SS/PBCH blocks (38.211 7.4.3, 38.213 4.1) in the first half-frame of every SSB period;
    returns the grid rows (slot and symbol) where each starts.

    A candidate is sent if its bit in ``ssb_bitmap`` is set and its four symbols are downlink.
    """
    if config.ssb_case is None:
        return np.zeros(0, dtype=np.int64)
    slots_per_half_frame = 5 << config.mu
    first = ssb_first_symbols(config.ssb_case, config.l_max)
    half_frames = np.arange(slots[0] // slots_per_half_frame, slots[-1] // slots_per_half_frame + 1)
    half_frames = half_frames[half_frames % round(config.ssb_period_s / 5e-3) == 0]
    hf = np.repeat(half_frames, config.l_max)
    index = np.tile(np.arange(config.l_max), len(half_frames))
    slot = hf * slots_per_half_frame + first[index] // SYMBOLS_PER_SLOT - slots[0]
    symbol = first[index] % SYMBOLS_PER_SLOT
    inside = (slot >= 0) & (slot < len(slots))
    keep = inside & np.asarray(config.ssb_bitmap)[index]
    keep[inside] &= symbol[inside] + 4 <= n_dl[slot[inside]]
    hf, index, slot, symbol = hf[keep], index[keep], slot[keep], symbol[keep]
    # 38.211 7.4.1.4.1: i_SSB is the SSB index's 2 LSBs plus 4 n_hf for L_max 4, its 3 LSBs for 8.
    i_ssb = index + 4 * (hf % 2) * (config.l_max == 4)
    blocks = _ssb_blocks(config, hf, index, i_ssb)
    k0 = 12 * config.ssb_offset_rb  # type: ignore[operator]
    for block, s, sym in zip(blocks, slot, symbol, strict=True):
        values[s, sym : sym + 4, k0 : k0 + 240] = block
    return (slot * SYMBOLS_PER_SLOT + symbol).astype(np.int64)


def _ssb_blocks(config: NrConfig, half_frame: np.ndarray, index: np.ndarray, i_ssb: np.ndarray
                ) -> np.ndarray:
    """SS/PBCH blocks, shape (len(i_ssb), 4, 240), by 38.211 table 7.4.3.1-1: PSS on subcarriers
    56-182 of symbol 0, SSS on the same of symbol 2, PBCH on symbols 1 and 3 and on 0-47 and
    192-239 of symbol 2, with its DMRS on every 4th of those from v = N_ID mod 4; the rest 0.

    The PBCH carries the cell's MIB (:mod:`monitor.synth.nr_bch`) for the SSB's frame (half-frames
    counted from SFN 0), its ``index`` in the burst and the DMRS's ``i_ssb``.
    """
    n_id = config.cell_id
    data, dmrs = pbch_layout(n_id)
    blocks = np.zeros((len(i_ssb), 4, 240), dtype=np.complex64)
    blocks[:, 0, 56:183] = pss_sequence(n_id % 3)
    blocks[:, 2, 56:183] = sss_sequence(n_id)
    blocks[:, dmrs] = pbch_dmrs(n_id, i_ssb)
    for block, hf, ssb in zip(blocks, half_frame, index, strict=True):
        mib = NrMib(sfn=int(hf // 2) % 1024, scs_common_hz=config.scs,
                    dmrs_type_a_position=config.dmrs_type_a_position)
        block[data] = _qpsk(pbch_bits(mib, int(hf % 2), n_id, int(ssb)))
    return blocks


@functools.cache
def pbch_layout(n_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The PBCH's data and DMRS resource elements in an SSB (38.211 table 7.4.3.1-1), both
    (4, 240) bool: symbols 1 and 3, and 0-47 and 192-239 of symbol 2; the DMRS on every 4th
    of those from v = N_ID mod 4. Each is mapped in increasing k, then l (7.4.3.1.3)."""
    k = np.arange(240)
    pbch = np.zeros((4, 240), dtype=bool)
    pbch[[1, 3]] = True
    pbch[2] = (k < 48) | (k >= 192)
    dmrs = pbch & (k % 4 == n_id % 4)
    return pbch & ~dmrs, dmrs


def pbch_dmrs(n_id: int, i_ssb: np.ndarray | int) -> np.ndarray:
    """The PBCH DMRS's 144 values for each i_SSB (38.211 7.4.1.4.1):
    c_init = 2^11 (i_SSB + 1)(N_ID // 4 + 1) + 2^6 (i_SSB + 1) + N_ID mod 4."""
    i_ssb = np.asarray(i_ssb, dtype=np.int64)
    c_init = 2**11 * (i_ssb + 1) * (n_id // 4 + 1) + 2**6 * (i_ssb + 1) + n_id % 4
    return _gold_qpsk(c_init, 144)


@functools.cache
def _m_sequence(taps: tuple[int, ...], init: tuple[int, ...]) -> np.ndarray:
    """127 bits of x(i + 7) = sum of x(i + t) over taps, mod 2, from x(0..6) = init."""
    x = list(init)
    for i in range(127 - 7):
        x.append(sum(x[i + t] for t in taps) % 2)
    return np.array(x)


def pss_sequence(n_id2: int) -> np.ndarray:
    """38.211 7.4.2.2.1: d(n) = 1 - 2 x((n + 43 N_ID2) mod 127), x(i+7) = x(i+4) + x(i),
    [x(6) ... x(0)] = [1 1 1 0 1 1 0]."""
    x = _m_sequence((4, 0), (0, 1, 1, 0, 1, 1, 1))
    return 1.0 - 2.0 * x[(np.arange(127) + 43 * n_id2) % 127]


def sss_sequence(n_id: int) -> np.ndarray:
    """38.211 7.4.2.3.1: d(n) = [1 - 2 x0((n + m0) mod 127)] [1 - 2 x1((n + m1) mod 127)],
    m0 = 15 (N_ID1 // 112) + 5 N_ID2, m1 = N_ID1 mod 112; x0(i+7) = x0(i+4) + x0(i),
    x1(i+7) = x1(i+1) + x1(i), both from [x(6) ... x(0)] = [0 0 0 0 0 0 1]."""
    n_id1, n_id2 = divmod(n_id, 3)
    n = np.arange(127)
    x0 = _m_sequence((4, 0), (1, 0, 0, 0, 0, 0, 0))
    x1 = _m_sequence((1, 0), (1, 0, 0, 0, 0, 0, 0))
    m0, m1 = 15 * (n_id1 // 112) + 5 * n_id2, n_id1 % 112
    return (1.0 - 2.0 * x0[(n + m0) % 127]) * (1.0 - 2.0 * x1[(n + m1) % 127])


def _gold_qpsk(c_init: np.ndarray, length: int) -> np.ndarray:
    """QPSK reference-signal sequences r(m) = ((1 - 2c(2m)) + j (1 - 2c(2m+1))) / sqrt(2),
    m < length, one row per c_init, from the Gold sequence c(n) of 38.211 5.2.1."""
    return _qpsk(gold_sequence(np.asarray(c_init, dtype=np.int64), 2 * length))


def _qpsk(bits: np.ndarray) -> np.ndarray:
    """QPSK symbols of bit pairs along the last axis (38.211 5.1.3): ((1 - 2b(2i)) + j (1 -
    2b(2i+1))) / sqrt(2)."""
    levels = (1.0 - 2.0 * bits.astype(np.float32)) * np.float32(np.sqrt(0.5))
    return levels.view(np.complex64)


def _qam_levels() -> np.ndarray:
    """Row r: the 2 << r amplitudes of one axis of QPSK, 16QAM, 64QAM, 256QAM (38.211 5.1), for
    unit mean symbol energy; unused entries 0."""
    levels = np.zeros((len(_MODULATIONS), 16), dtype=np.float32)
    for row in range(len(_MODULATIONS)):
        side = 2 << row
        levels[row, :side] = (2 * np.arange(side) - (side - 1)) / np.sqrt(2 * (side**2 - 1) / 3)
    return levels.ravel()


_QAM_LEVELS = _qam_levels()


def _qam(rng: np.random.Generator, n: int, kind: int | np.ndarray = 0) -> np.ndarray:
    """``n`` random symbols of the modulation ``_MODULATIONS[kind]`` (one kind, or one per
    symbol): uniform levels on each axis, as uniform random bits give through 38.211 5.1."""
    u = np.frombuffer(rng.bytes(2 * n), dtype=np.uint8).reshape(n, 2)
    kind = np.asarray(kind, dtype=np.uint8)[..., None]
    code = (u & ((2 << kind) - 1)) | (kind << 4)
    return _QAM_LEVELS[code].view(np.complex64)[:, 0]

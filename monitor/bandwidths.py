"""3GPP channel bandwidths: the generator builds its carriers from them, and the tracker fits
segmented spans to them (``monitor.occupancy.channels``).

A module of its own, free of the generator's imports, so that the monitor loads it at no cost.
"""

from __future__ import annotations

__all__ = ["LTE_BANDWIDTHS", "NR_RB_TABLE", "lte_bandwidth_hz"]

#: Channel bandwidth in Hz -> transmission bandwidth configuration N_RB (TS 36.101 table 5.6-1).
LTE_BANDWIDTHS: dict[float, int] = {
    1.4e6: 6,
    3e6: 15,
    5e6: 25,
    10e6: 50,
    15e6: 75,
    20e6: 100,
}


def lte_bandwidth_hz(n_rb: int) -> float:
    """The channel bandwidth of ``n_rb`` resource blocks (TS 36.101 table 5.6-1)."""
    return next(bw for bw, rb in LTE_BANDWIDTHS.items() if rb == n_rb)


#: Transmission bandwidth N_RB per (channel bandwidth, SCS), both in Hz: TS 38.101-1 table 5.3.2-1.
NR_RB_TABLE: dict[tuple[int, int], int] = {
    (int(bw * 1e6), int(scs * 1e3)): n_rb
    for scs, row in {
        15: {5: 25, 10: 52, 15: 79, 20: 106, 25: 133, 30: 160, 40: 216, 50: 270},
        30: {
            5: 11, 10: 24, 15: 38, 20: 51, 25: 65, 30: 78, 40: 106, 50: 133, 60: 162, 70: 189,
            80: 217, 90: 245, 100: 273,
        },
        60: {
            10: 11, 15: 18, 20: 24, 25: 31, 30: 38, 40: 51, 50: 65, 60: 79, 70: 93, 80: 107,
            90: 121, 100: 135,
        },
    }.items()
    for bw, n_rb in row.items()
}

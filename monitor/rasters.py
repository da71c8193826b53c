"""NR's frequency rasters (TS 38.104 5.4): what an NR cell found on the air is called.

An SSB's centre (SSref) lies on the synchronisation raster, numbered by its GSCN (table
5.4.3.1-1); every NR frequency has an NR-ARFCN on the global raster (table 5.4.2.1-1). Both
numberings are the same in every band, so a frequency alone gives them; which band a cell is
in can stay ambiguous (n77 holds n78), and is not guessed.

A module of its own, free of the DSP's imports, as :mod:`monitor.bandwidths`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SyncRasterPoint", "nearest_sync_raster", "nr_arfcn"]


@dataclass(frozen=True)
class _SyncRange:
    """SSref = base + N * step + M * m_step for N in [n_first, n_last] (and M in ``ms``);
    GSCN = gscn_base + 3 N + (M - 3) / 2 where M varies, gscn_base + N where it does not."""

    base_hz: float
    step_hz: float
    n_first: int
    n_last: int
    gscn_base: int
    m_step_hz: float = 0.0
    ms: tuple[int, ...] = (0,)

    def points(self, freq_hz: float) -> list[tuple[float, int]]:
        """The raster points of this range nearest ``freq_hz`` (one per M): (SSref, GSCN)."""
        out = []
        for m in self.ms:
            n = round((freq_hz - self.base_hz - m * self.m_step_hz) / self.step_hz)
            n = min(max(n, self.n_first), self.n_last)
            gscn = self.gscn_base + (3 * n + (m - 3) // 2 if self.m_step_hz else n)
            out.append((self.base_hz + n * self.step_hz + m * self.m_step_hz, gscn))
        return out


#: Table 5.4.3.1-1: 0-3000 MHz, 3000-24250 MHz, 24250-100000 MHz.
_SYNC_RANGES = (
    _SyncRange(0.0, 1.2e6, 1, 2499, 0, m_step_hz=50e3, ms=(1, 3, 5)),
    _SyncRange(3000e6, 1.44e6, 0, 14756, 7499),
    _SyncRange(24250.08e6, 17.28e6, 0, 4383, 22256),
)

#: Table 5.4.2.1-1: (lowest frequency, F_REF-Offs, delta F_Global, N_REF-Offs) per range.
_GLOBAL_RANGES = (
    (0.0, 0.0, 5e3, 0),
    (3000e6, 3000e6, 15e3, 600000),
    (24250e6, 24250.08e6, 60e3, 2016667),
)
_HIGHEST_HZ = 100e9


@dataclass(frozen=True)
class SyncRasterPoint:
    """A point of the synchronisation raster.

    Attributes:
        gscn: its global synchronisation channel number.
        freq_hz: its SSref, Hz.
    """

    gscn: int
    freq_hz: float


def nearest_sync_raster(freq_hz: float) -> SyncRasterPoint | None:
    """The synchronisation raster point nearest ``freq_hz`` (an SSB's centre, Hz); None outside
    0-100 GHz.

    A found SSB lies off its point by the search's error (a quarter of a subcarrier) and the
    receiver's frequency error. Above 3 GHz the points are 1.44 MHz apart; under 3 GHz those of
    the three M are 100 kHz apart, so there a receiver over 50 kHz off (an RTL-SDR at 28 ppm at
    1.8 GHz) names a neighbouring point: the SSB's offset from its point tells.
    """
    if not 0.0 < freq_hz <= _HIGHEST_HZ:
        return None
    points = [p for r in _SYNC_RANGES for p in r.points(freq_hz)]
    ssref, gscn = min(points, key=lambda p: abs(p[0] - freq_hz))
    return SyncRasterPoint(gscn, ssref)


def nr_arfcn(freq_hz: float) -> int | None:
    """The NR-ARFCN nearest ``freq_hz`` (Hz); None outside 0-100 GHz."""
    if not 0.0 <= freq_hz <= _HIGHEST_HZ:
        return None
    _, offset_hz, step_hz, n_offset = next(r for r in reversed(_GLOBAL_RANGES)
                                             if freq_hz >= r[0])
    return n_offset + round((freq_hz - offset_hz) / step_hz)

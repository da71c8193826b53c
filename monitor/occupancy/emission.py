"""What the monitor reports: emissions, one per carrier for as long as it is on the air.

The fields and their order are the occupancy log's (a contract: ``../shared/DESIGN.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime

__all__ = ["LOG_COLUMNS", "Emission"]


@dataclass(frozen=True)
class Emission:
    """One carrier seen from its first sample to its last.

    Attributes:
        start_time: UTC of the emission's first sample, POSIX seconds.
        end_time: UTC of its last sample, POSIX seconds.
        start_sample: absolute sample index of its first sample in the stream.
        sample_count: samples it spans.
        freq_low_hz: lower edge, absolute RF frequency.
        freq_high_hz: upper edge, absolute RF frequency.
        label: ``"LTE"`` or ``"NR"``.
        confidence: mean class probability over its pixels, 0 to 1.
        power_db: mean in-band power, dB relative to full scale.
    """

    start_time: float
    end_time: float
    start_sample: int
    sample_count: int
    freq_low_hz: float
    freq_high_hz: float
    label: str
    confidence: float
    power_db: float

    @property
    def bandwidth_hz(self) -> float:
        return self.freq_high_hz - self.freq_low_hz

    @property
    def center_hz(self) -> float:
        return 0.5 * (self.freq_low_hz + self.freq_high_hz)

    def row(self) -> dict[str, str | int | float]:
        """The log row: times as ISO 8601 UTC with microseconds, the rest as they are."""
        return {
            "start_time": iso_utc(self.start_time),
            "end_time": iso_utc(self.end_time),
            "start_sample": self.start_sample,
            "sample_count": self.sample_count,
            "freq_low_hz": round(self.freq_low_hz, 1),
            "freq_high_hz": round(self.freq_high_hz, 1),
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "power_db": round(self.power_db, 2),
        }


LOG_COLUMNS = tuple(f.name for f in fields(Emission))


def iso_utc(posix_seconds: float) -> str:
    """``2026-11-28T21:03:39.123456Z``: UTC, microseconds."""
    moment = datetime.fromtimestamp(posix_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

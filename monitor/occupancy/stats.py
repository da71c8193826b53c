"""What a run did, counted as it goes and written as JSON at the end (``--stats PATH``).

The JSON holds the contract's fields first (``../shared/DESIGN.md``): ``samples_in``,
``samples_dropped``, ``frames``, ``frames_segmented``, ``wall_seconds``, ``realtime_factor``,
``engine``, ``precision``, ``compute_device``, ``model``; then ``compiled``, ``source``,
``sample_rate``,
``center_freq``, ``stream_seconds``, ``samples_discarded``, ``frames_skipped``, ``emissions``,
``emissions_unconfident``, ``emissions_narrow``, ``gaps`` (``count`` and missing ``samples``),
``queue_high_water``, ``latency_ms`` (``p50``, ``p95`` and the number of ``frames`` measured;
``null`` when none was), ``lte_cells`` (every LTE cell found: ``pci``, ``duplex``, centre
``freq_hz``, and ``n_rb``, its bandwidth in resource blocks where its MIB decoded, else
``null``), ``nr_cells`` (every NR cell found by its SSB: ``pci``, the SSB's subcarrier spacing
``scs_hz`` and centre ``ssb_hz``; the synchronisation raster point nearest that centre, its
``gscn`` and the centre's ``raster_offset_hz`` from it, and the centre's NR-ARFCN,
``ssb_arfcn``: all three ``null`` where the centre frequency is unknown; and ``mib``, where its
PBCH decoded, else ``null``: ``sib1`` (whether the cell has a CORESET#0, so a SIB1: a cell without
one serves only beside another, as in EN-DC), ``cell_barred``, ``intra_freq_reselection``,
``scs_common_hz``, ``k_ssb``, ``coreset_zero``, ``search_space_zero`` and
``dmrs_type_a_position``) and ``monitor_version``.

Threads: the ``count_*`` and ``note_*`` methods take a lock, so the reader thread (blocks, drops,
queue depth) and the processing thread (frames, emissions) may count at once; set the descriptive
fields (``engine``, ``model``, ...) before the threads start. :meth:`RunStats.to_dict` reads a
consistent snapshot under the same lock.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor import __version__
from monitor.occupancy.logs import write_file_atomically
from monitor.rasters import nearest_sync_raster, nr_arfcn
from monitor.synth.nr_bch import NrMib

__all__ = ["RunStats", "engine_text"]

# Latencies are kept as a histogram of log-spaced bins 2 % wide from 0.01 ms to 100 s, so a run of
# any length takes constant memory and its percentiles are within 1 % of the exact ones.
_LATENCY_MIN_MS = 0.01
_LATENCY_RATIO = 1.02
_LATENCY_BINS = 1 + math.ceil(math.log(1e5 / _LATENCY_MIN_MS) / math.log(_LATENCY_RATIO))


@dataclass
class RunStats:
    """Counters and facts of one run.

    Attributes:
        source: what was read (``rtlsdr:0``, a recording's path, ``synthetic``).
        sample_rate: samples per second of the stream.
        center_freq: its centre frequency, Hz.
        engine: the engine that segmented (``torch``, ``tensorrt``, ``onnxruntime``).
        precision: ``fp32``, ``fp16`` or ``int8``.
        compute_device: ``cpu``, ``cuda:0``, ...
        model: the checkpoint's name.
        compiled: the engine ran the network compiled for this CPU (torch's AOTInductor
            package), not eagerly.
        samples_in: samples that reached the spectrogram (counted by :meth:`count_block`);
            with ``samples_dropped`` and ``samples_discarded`` they make the stream's length.
        samples_dropped: samples lost before the spectrogram: dropped by the monitor's queue
            (:meth:`count_dropped`) or lost by the source before a block.
        samples_discarded: samples the source threw away on purpose (the settle time after a
            retune or a reconnect): missing from the stream, but not lost.
        gaps: blocks that came after samples missing at the source (lost or discarded).
        gap_samples: samples missing at the source, in all.
        frames: spectrogram frames formed.
        frames_segmented: frames the engine segmented (the rest were skipped to keep up).
        emissions: emissions closed and logged.
        emissions_unconfident: emissions closed but not logged, less confident than
            ``--min-confidence``.
        emissions_narrow: emissions closed but not logged, wholly in view and too narrow to be a
            carrier of their class.
        queue_high_water: the most blocks ever waiting between reader and processing.
        lte_cells: the LTE cells found, by (PCI, centre to the nearest 10 kHz): (duplex,
            centre in Hz, resource blocks or None).
        nr_cells: the NR cells found, by (PCI, SSB centre to the nearest 10 kHz): (subcarrier
            spacing, SSB centre in Hz, MIB or None).
        wall_seconds: wall-clock seconds from :meth:`start` to :meth:`stop` (so far, before
            :meth:`stop`).
    """

    source: str = ""
    sample_rate: float = 0.0
    center_freq: float = 0.0
    engine: str = ""
    precision: str = ""
    compute_device: str = ""
    model: str = ""
    compiled: bool = False
    samples_in: int = 0
    samples_dropped: int = 0
    samples_discarded: int = 0
    gaps: int = 0
    gap_samples: int = 0
    frames: int = 0
    frames_segmented: int = 0
    emissions: int = 0
    emissions_unconfident: int = 0
    emissions_narrow: int = 0
    lte_cells: dict[tuple[int, int], tuple[str, float, int | None]] = field(
        default_factory=dict)
    nr_cells: dict[tuple[int, int], tuple[float, float, NrMib | None]] = field(
        default_factory=dict)
    queue_high_water: int = 0
    wall_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                  compare=False)
    _latency_counts: list[int] = field(default_factory=lambda: [0] * _LATENCY_BINS, init=False,
                                       repr=False, compare=False)
    _started: float | None = field(default=None, init=False, repr=False, compare=False)
    _stopped: bool = field(default=False, init=False, repr=False, compare=False)

    def start(self) -> None:
        """Start the wall clock."""
        with self._lock:
            self._started = time.monotonic()
            self._stopped = False

    def stop(self) -> None:
        """Stop the wall clock; ``wall_seconds`` keeps the run's length."""
        with self._lock:
            self._update_wall()
            self._stopped = True

    def count_block(self, samples: int, lost_before: int = 0, discarded_before: int = 0) -> None:
        """A block of ``samples`` from the source, after ``lost_before`` missing samples, of
        which the source discarded ``discarded_before`` on purpose and lost the rest."""
        with self._lock:
            self.samples_in += samples
            if lost_before > 0:
                self.gaps += 1
                self.gap_samples += lost_before
                self.samples_dropped += lost_before - discarded_before
                self.samples_discarded += discarded_before

    def count_dropped(self, samples: int) -> None:
        """A block of ``samples`` the monitor's queue dropped because processing fell behind."""
        with self._lock:
            self.samples_dropped += samples

    def count_frame(self, segmented: bool, latency_s: float | None = None) -> None:
        """A spectrogram frame, segmented or skipped; ``latency_s`` from the arrival of its
        newest sample to its segmented pixels, where measured."""
        with self._lock:
            self.frames += 1
            if segmented:
                self.frames_segmented += 1
            if latency_s is not None:
                self._latency_counts[_latency_bin(latency_s * 1e3)] += 1

    def count_emission(self) -> None:
        """An emission closed and logged."""
        with self._lock:
            self.emissions += 1

    def note_lte_cells(self, cells: list[tuple[int, str, float, int | None]]) -> None:
        """LTE cells found, as (PCI, duplex, centre in Hz (absolute), resource blocks where
        the MIB decoded). A cell keeps the resource blocks a search found, whatever a later
        one finds."""
        with self._lock:
            for pci, duplex, freq, n_rb in cells:
                key = (pci, round(freq / 1e4))
                known = self.lte_cells[key][2] if key in self.lte_cells else None
                self.lte_cells[key] = (duplex, freq, n_rb or known)

    def note_nr_cells(self, cells: list[tuple[int, float, float, NrMib | None]]) -> None:
        """NR cells found, as (PCI, SSB subcarrier spacing, SSB centre in Hz (absolute), MIB or
        None where it did not decode). A cell found again within a subcarrier of where it was (a
        search places an SSB to half a subcarrier) is the same cell, at its newest place; it
        keeps the MIB an earlier search decoded where a later one could not."""
        with self._lock:
            for pci, scs, freq, mib in cells:
                key = next((k for k, (s, f, _) in self.nr_cells.items()
                            if k[0] == pci and s == scs and abs(f - freq) <= scs),
                           (pci, round(freq / 1e4)))
                known = self.nr_cells[key][2] if key in self.nr_cells else None
                self.nr_cells[key] = (scs, freq, mib or known)

    def note_unlogged(self, unconfident: int, narrow: int) -> None:
        """The emissions closed so far that were too unconfident or too narrow to log."""
        with self._lock:
            self.emissions_unconfident, self.emissions_narrow = unconfident, narrow

    def note_queue_depth(self, depth: int) -> None:
        """The number of blocks waiting in the queue now."""
        with self._lock:
            self.queue_high_water = max(self.queue_high_water, depth)

    def to_dict(self) -> dict[str, Any]:
        """A snapshot: the contract's fields first, then the rest (see the module docstring)."""
        with self._lock:
            self._update_wall()
            stream_samples = self.samples_in + self.samples_dropped + self.samples_discarded
            stream_seconds = (stream_samples / self.sample_rate
                              if self.sample_rate > 0 else 0.0)
            measured = sum(self._latency_counts)
            latency = None if not measured else {
                "p50": _latency_quantile(self._latency_counts, 0.50),
                "p95": _latency_quantile(self._latency_counts, 0.95),
                "frames": measured,
            }
            return {
                "samples_in": self.samples_in,
                "samples_dropped": self.samples_dropped,
                "frames": self.frames,
                "frames_segmented": self.frames_segmented,
                "wall_seconds": round(self.wall_seconds, 3),
                "realtime_factor": (round(stream_seconds / self.wall_seconds, 3)
                                    if self.wall_seconds > 0 else None),
                "engine": self.engine,
                "precision": self.precision,
                "compute_device": self.compute_device,
                "model": self.model,
                "compiled": self.compiled,
                "source": self.source,
                "sample_rate": self.sample_rate,
                "center_freq": self.center_freq,
                "stream_seconds": round(stream_seconds, 6),
                "samples_discarded": self.samples_discarded,
                "frames_skipped": self.frames - self.frames_segmented,
                "emissions": self.emissions,
                "emissions_unconfident": self.emissions_unconfident,
                "emissions_narrow": self.emissions_narrow,
                "gaps": {"count": self.gaps, "samples": self.gap_samples},
                "queue_high_water": self.queue_high_water,
                "latency_ms": latency,
                "lte_cells": [{"pci": pci, "duplex": duplex, "freq_hz": round(freq),
                               "n_rb": n_rb}
                              for (pci, _), (duplex, freq, n_rb) in sorted(
                                  self.lte_cells.items())],
                "nr_cells": [{"pci": pci, "scs_hz": scs, "ssb_hz": round(freq),
                              **self._raster_fields(freq), "mib": _mib_fields(mib)}
                             for (pci, _), (scs, freq, mib) in sorted(self.nr_cells.items())],
                "monitor_version": __version__,
            }

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def write(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path`` atomically.

        Raises:
            DeviceError: if it cannot be written.
        """
        write_file_atomically(path, self.to_json().encode(), "stats file")

    def _raster_fields(self, ssb_hz: float) -> dict[str, int | None]:
        """An SSB's synchronisation raster point and NR-ARFCN (:mod:`monitor.rasters`); null
        where the stream's centre frequency, and so the SSB's, is unknown."""
        point = nearest_sync_raster(ssb_hz) if self.center_freq > 0 else None
        return {"gscn": point.gscn if point else None,
                "raster_offset_hz": round(ssb_hz - point.freq_hz) if point else None,
                "ssb_arfcn": nr_arfcn(ssb_hz) if point else None}

    def _update_wall(self) -> None:
        if self._started is not None and not self._stopped:
            self.wall_seconds = time.monotonic() - self._started


def _mib_fields(mib: NrMib | None) -> dict[str, Any] | None:
    """An NR cell's MIB for the JSON: the fields that stay while the cell does (not its SFN)."""
    if mib is None:
        return None
    return {"sib1": mib.has_sib1, "cell_barred": mib.cell_barred,
            "intra_freq_reselection": mib.intra_freq_reselection,
            "scs_common_hz": mib.scs_common_hz, "k_ssb": mib.k_ssb,
            "coreset_zero": mib.coreset_zero, "search_space_zero": mib.search_space_zero,
            "dmrs_type_a_position": mib.dmrs_type_a_position}


def _latency_bin(ms: float) -> int:
    """Bin 0 holds up to 0.01 ms; bin k holds (0.01 * 1.02**(k-1), 0.01 * 1.02**k] ms."""
    if ms <= _LATENCY_MIN_MS:
        return 0
    k = math.ceil(math.log(ms / _LATENCY_MIN_MS) / math.log(_LATENCY_RATIO))
    return min(k, _LATENCY_BINS - 1)


def _latency_quantile(counts: list[int], q: float) -> float:
    """The ``q`` quantile in ms: the geometric middle of the bin where it falls."""
    target = q * sum(counts)
    seen = 0
    for k, count in enumerate(counts):
        seen += count
        if count and seen >= target:
            middle = _LATENCY_MIN_MS * _LATENCY_RATIO ** (k - 0.5) if k else _LATENCY_MIN_MS
            return round(middle, 3)
    raise ValueError("no latencies counted")


def engine_text(stats: dict[str, Any]) -> str:
    """What segmented, from :meth:`RunStats.to_dict`: ``torch compiled fp32 cpu``."""
    compiled = " compiled" if stats["compiled"] else ""
    return f"{stats['engine']}{compiled} {stats['precision']} {stats['compute_device']}"

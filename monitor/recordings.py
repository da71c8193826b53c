"""SigMF recordings written by prmnet-monitor: IQ data, its metadata and carrier annotations.

The data file is written by numpy in the SigMF datatype asked for (``cf32_le``, ``ci16_le``,
``ci8``, ``cu8``); the metadata through sigmf-python, which validates it. Annotations carry
``core:label`` (``LTE`` or ``NR``), ``core:freq_lower_edge`` and ``core:freq_upper_edge``
(absolute Hz), ``core:sample_start`` and ``core:sample_count``, the fields inspectrum and IQEngine
draw.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sigmf
from sigmf import SigMFFile

from monitor import __version__
from monitor.errors import InputError
from monitor.iq_formats import parse_datatype, to_raw

__all__ = ["Annotation", "StreamingRecording", "meta_and_data_paths", "write_recording"]


@dataclass(frozen=True)
class Annotation:
    """One SigMF annotation: a labelled time-frequency box."""

    start_sample: int
    sample_count: int
    freq_low_hz: float
    freq_high_hz: float
    label: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_sigmf(self) -> dict[str, Any]:
        return {
            "core:label": self.label,
            "core:freq_lower_edge": float(self.freq_low_hz),
            "core:freq_upper_edge": float(self.freq_high_hz),
            **self.extra,
        }


def meta_and_data_paths(path: str | Path) -> tuple[Path, Path]:
    """The ``.sigmf-meta`` and ``.sigmf-data`` paths of a recording named by either (or by its
    base name)."""
    p = Path(path)
    if p.suffix in (".sigmf-meta", ".sigmf-data"):
        p = p.with_suffix("")
    return p.with_suffix(".sigmf-meta"), p.with_suffix(".sigmf-data")


def write_recording(
    path: str | Path,
    iq: np.ndarray,
    sample_rate: float,
    center_freq: float,
    datatype: str = "cf32_le",
    annotations: Iterable[Annotation] = (),
    description: str = "",
    extra_global: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``iq`` (complex, full scale +-1) as a SigMF recording; return the meta path.

    Annotation fields outside the ``core`` namespace (``prmnet:snr_db``, say) are declared as
    optional extensions, as SigMF asks.

    Raises:
        InputError: for an unknown datatype or a path that cannot be written.
    """
    meta_path, data_path = meta_and_data_paths(path)
    raw = to_raw(np.asarray(iq), parse_datatype(datatype))
    annotations = list(annotations)
    namespaces = sorted({key.split(":")[0] for a in annotations for key in a.extra} - {"core"})
    try:
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        raw.tofile(data_path)
        recording = SigMFFile(
            data_file=str(data_path),
            global_info={
                sigmf.DATATYPE_KEY: datatype,
                sigmf.SAMPLE_RATE_KEY: float(sample_rate),
                sigmf.VERSION_KEY: "1.2.0",
                sigmf.DESCRIPTION_KEY: description,
                sigmf.RECORDER_KEY: f"prmnet-monitor {__version__}",
                sigmf.EXTENSIONS_KEY: [
                    {"name": ns, "version": __version__, "optional": True} for ns in namespaces
                ],
                **(extra_global or {}),
            },
        )
        recording.add_capture(0, metadata={sigmf.FREQUENCY_KEY: float(center_freq)})
        for a in sorted(annotations, key=lambda a: a.start_sample):
            recording.add_annotation(a.start_sample, a.sample_count, metadata=a.to_sigmf())
        recording.tofile(str(meta_path), overwrite=True)
    except OSError as exc:
        raise InputError(f"cannot write recording {meta_path}: {exc.strerror or exc}") from None
    return meta_path


class StreamingRecording:
    """``--record``: the raw IQ of a run, written block by block as ``cf32_le``.

    The data file grows as blocks arrive (flushed with each one); the metadata is written when
    the recording closes, with a capture segment wherever the stream jumped (a gap or a retune),
    so the sample indices of the recording are those of the stream.
    """

    def __init__(self, path: str | Path, sample_rate: float, center_freq: float) -> None:
        self.meta_path, self.data_path = meta_and_data_paths(path)
        self.sample_rate = sample_rate
        self._fmt = parse_datatype("cf32_le")
        self._captures: list[dict[str, Any]] = []
        self._written = 0
        self._next: int | None = None
        try:
            self._file: Any = open(self.data_path, "wb")
        except OSError as exc:
            raise InputError(f"cannot write recording {self.data_path}: "
                             f"{exc.strerror or exc}") from None
        del center_freq  # each capture segment carries its own

    def write_block(self, block: Any) -> None:
        """Append an :class:`~monitor.sources.base.IQBlock`."""
        if self._file is None:
            return
        if self._next != block.first_sample or block.retuned:
            self._captures.append({
                sigmf.SAMPLE_START_KEY: self._written,
                sigmf.FREQUENCY_KEY: float(block.center_freq),
                "core:global_index": int(block.first_sample),
            })
        self._file.write(to_raw(block.samples, self._fmt).tobytes())
        self._file.flush()
        self._written += len(block.samples)
        self._next = block.end_sample

    def close(self) -> None:
        """Finish the data file and write the metadata; a second call does nothing."""
        if self._file is None:
            return
        self._file.close()
        self._file = None
        recording = SigMFFile(
            data_file=str(self.data_path),
            global_info={
                sigmf.DATATYPE_KEY: self._fmt.name,
                sigmf.SAMPLE_RATE_KEY: float(self.sample_rate),
                sigmf.VERSION_KEY: "1.2.0",
                sigmf.RECORDER_KEY: f"prmnet-monitor {__version__}",
            },
        )
        for capture in self._captures or [{sigmf.SAMPLE_START_KEY: 0}]:
            start = capture.pop(sigmf.SAMPLE_START_KEY)
            recording.add_capture(start, metadata=capture)
        recording.tofile(str(self.meta_path), overwrite=True)

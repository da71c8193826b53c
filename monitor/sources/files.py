"""Recorded IQ, opened without reading it: SigMF (pairs and archives), WAV IQ and raw files.

:func:`open_recording` validates what it can up front (the metadata, the datatype, the data file's
size against the sample format and the annotations) and memory-maps the samples, so a recording of
any size opens at once and is read piece by piece with :meth:`Recording.read`.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io.wavfile

from monitor.errors import InputError
from monitor.iq_formats import IqFormat, from_raw, parse_datatype

__all__ = ["Recording", "open_recording"]


@dataclass
class Recording:
    """A memory-mapped IQ recording.

    Attributes:
        path: what the user named.
        sample_rate: samples per second.
        center_freq: centre frequency of the first capture, Hz (0 where unknown).
        fmt: the sample format.
        samples: the raw interleaved values, memory-mapped, shape (2 * n_samples,).
        meta: the SigMF metadata (a minimal one for WAV and raw files).
    """

    path: Path
    sample_rate: float
    center_freq: float
    fmt: IqFormat
    samples: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.samples.shape[0] // 2

    @property
    def duration(self) -> float:
        return len(self) / self.sample_rate

    def read(self, start: int, count: int) -> np.ndarray:
        """Samples ``[start, start + count)`` (fewer at the end) as complex64, full scale +-1."""
        return from_raw(self.samples[2 * start : 2 * (start + count)], self.fmt)


def open_recording(
    path: str | Path,
    datatype: str | None = None,
    sample_rate: float | None = None,
    center_freq: float | None = None,
) -> Recording:
    """Open a SigMF recording, a WAV IQ file or a raw IQ file.

    SigMF: ``NAME.sigmf-meta``, ``NAME.sigmf-data``, ``NAME`` or a ``NAME.sigmf`` archive. WAV:
    2 channels (I, Q) of int16 or float32; ``center_freq`` from the argument. Anything else is
    raw interleaved IQ and needs ``datatype``, ``sample_rate`` and ``center_freq``.

    Raises:
        InputError: for anything that cannot be read as a recording, saying what and how to fix
            it.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p} is a directory; name a recording file")
    if p.suffix == ".sigmf":
        return _open_archive(p)
    if p.suffix in (".sigmf-meta", ".sigmf-data") or p.with_suffix(".sigmf-meta").is_file():
        return _open_sigmf(p)
    if not p.is_file():
        raise InputError(f"no such recording: {p}")
    if p.suffix.lower() == ".wav":
        return _open_wav(p, center_freq)
    if datatype is None or sample_rate is None:
        raise InputError(
            f"{p} is not SigMF or WAV: give its --format, --rate and --fc to read it as raw IQ"
        )
    if not sample_rate > 0:
        raise InputError(f"sample rate must be positive, got {sample_rate}")
    fmt = parse_datatype(datatype)
    samples = _map(p, fmt, 0, p.stat().st_size)
    meta = {"global": {"core:datatype": fmt.name, "core:sample_rate": sample_rate}}
    return Recording(p, float(sample_rate), float(center_freq or 0.0), fmt, samples, meta)


def _open_sigmf(p: Path) -> Recording:
    base = p.with_suffix("") if p.suffix in (".sigmf-meta", ".sigmf-data") else p
    meta_path, data_path = base.with_suffix(".sigmf-meta"), base.with_suffix(".sigmf-data")
    if not meta_path.is_file():
        raise InputError(f"SigMF metadata {meta_path} not found")
    if not data_path.is_file():
        raise InputError(f"SigMF data file {data_path} not found (it must sit beside the meta)")
    meta = _parse_meta(meta_path.read_bytes(), meta_path)
    fmt, rate, fc = _global_fields(meta, meta_path)
    samples = _map(data_path, fmt, 0, data_path.stat().st_size)
    rec = Recording(p, rate, fc, fmt, samples, meta)
    _check_extent(rec, meta_path)
    return rec


def _open_archive(p: Path) -> Recording:
    if not p.is_file():
        raise InputError(f"no such recording: {p}")
    try:
        with tarfile.open(p, "r:") as tar:
            members = tar.getmembers()
            meta_member = next((m for m in members if m.name.endswith(".sigmf-meta")), None)
            data_member = next((m for m in members if m.name.endswith(".sigmf-data")), None)
            if meta_member is None or data_member is None:
                raise InputError(f"{p} holds no .sigmf-meta and .sigmf-data pair")
            raw_meta = tar.extractfile(meta_member)
            meta = _parse_meta(raw_meta.read() if raw_meta else b"", p)
    except tarfile.TarError as exc:
        raise InputError(f"{p} is not an uncompressed SigMF archive: {exc}") from None
    fmt, rate, fc = _global_fields(meta, p)
    samples = _map(p, fmt, data_member.offset_data, data_member.size)
    rec = Recording(p, rate, fc, fmt, samples, meta)
    _check_extent(rec, p)
    return rec


def _open_wav(p: Path, center_freq: float | None) -> Recording:
    try:
        rate, data = scipy.io.wavfile.read(p, mmap=True)
    except (ValueError, OSError) as exc:
        raise InputError(f"cannot read WAV {p}: {exc}") from None
    if data.ndim != 2 or data.shape[1] != 2:
        raise InputError(f"WAV {p} must have 2 channels (I and Q), it has "
                         f"{1 if data.ndim == 1 else data.shape[1]}")
    kinds = {np.dtype("<i2"): "ci16_le", np.dtype("<f4"): "cf32_le"}
    if data.dtype not in kinds:
        raise InputError(f"WAV {p} holds {data.dtype} samples; IQ WAV must be int16 or float32")
    if not rate > 0:
        raise InputError(f"WAV {p} has sample rate {rate}")
    fmt = parse_datatype(kinds[data.dtype])
    meta = {"global": {"core:datatype": fmt.name, "core:sample_rate": float(rate)}}
    return Recording(p, float(rate), float(center_freq or 0.0), fmt, data.reshape(-1), meta)


def _parse_meta(raw: bytes, where: Path) -> dict[str, Any]:
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{where} is not valid SigMF JSON: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("global"), dict):
        raise InputError(f"{where} has no SigMF 'global' object")
    return meta


def _global_fields(meta: dict[str, Any], where: Path) -> tuple[IqFormat, float, float]:
    g = meta["global"]
    if "core:datatype" not in g:
        raise InputError(f"{where} names no core:datatype")
    fmt = parse_datatype(str(g["core:datatype"]))
    rate = g.get("core:sample_rate")
    if not isinstance(rate, (int, float)) or not rate > 0:
        raise InputError(f"{where}: core:sample_rate must be a positive number, got {rate!r}")
    captures = meta.get("captures") or [{}]
    fc = captures[0].get("core:frequency", 0.0) if isinstance(captures[0], dict) else 0.0
    if not isinstance(fc, (int, float)):
        raise InputError(f"{where}: core:frequency must be a number, got {fc!r}")
    return fmt, float(rate), float(fc)


def _map(path: Path, fmt: IqFormat, offset: int, size: int) -> np.ndarray:
    if size % fmt.sample_bytes:
        raise InputError(
            f"{path} is truncated: {size} bytes is not a whole number of {fmt.name} samples "
            f"({fmt.sample_bytes} bytes each)"
        )
    if size == 0:
        raise InputError(f"{path} holds no samples")
    try:
        return np.memmap(path, dtype=fmt.dtype, mode="r", offset=offset,
                         shape=(size // fmt.dtype.itemsize,))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot map {path}: {exc}") from None


def _check_extent(rec: Recording, where: Path) -> None:
    """Captures and annotations must lie within the data: otherwise the file was cut short."""
    starts = [c.get("core:sample_start", 0) for c in rec.meta.get("captures", [])]
    ends = [a.get("core:sample_start", 0) + a.get("core:sample_count", 0)
            for a in rec.meta.get("annotations", [])]
    last = max([*starts, *ends], default=0)
    if last > len(rec):
        raise InputError(
            f"{where}: the metadata reaches sample {last} but the data holds {len(rec)} samples; "
            "the data file is truncated"
        )

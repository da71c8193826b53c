"""IQ sample formats: SigMF datatype names, their numpy layout, and the full-scale convention.

Full scale is +-1.0 on each rail. Integer samples map by their type's magnitude: ``ci8`` by
1/128, ``ci16`` by 1/32768, ``ci32`` by 1/2^31; unsigned ones are centred first (``cu8`` as
``(v - 127.5) / 128``, the RTL-SDR convention, so 0 and 255 land on -0.996 and +0.996). Writing is
the inverse, rounded and clipped to the type's range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from monitor.errors import InputError

__all__ = ["SUPPORTED", "IqFormat", "from_raw", "parse_datatype", "to_raw"]

SUPPORTED = "cf32, cf64, ci8, ci16, ci32, cu8, cu16, cu32 (with _le or _be where multi-byte)"
_DATATYPE = re.compile(r"^c([fiu])(8|16|32|64)(?:_(le|be))?$")


@dataclass(frozen=True)
class IqFormat:
    """How one complex sample is stored."""

    name: str
    dtype: np.dtype
    scale: float
    offset: float

    @property
    def sample_bytes(self) -> int:
        """Bytes per complex sample (I and Q)."""
        return 2 * self.dtype.itemsize


def parse_datatype(name: str) -> IqFormat:
    """The layout of a SigMF complex datatype such as ``cf32_le``, ``ci16_be`` or ``cu8``.

    A missing endianness on a multi-byte type means little-endian (the common case of raw files
    and of ``--format``).

    Raises:
        InputError: for a real-valued, unknown or malformed datatype.
    """
    m = _DATATYPE.match(name.strip().lower())
    if m is None:
        raise InputError(f"unsupported IQ datatype {name!r}; supported: {SUPPORTED}")
    kind, bits, endian = m.group(1), int(m.group(2)), m.group(3) or "le"
    if (kind == "f" and bits not in (32, 64)) or (kind != "f" and bits == 64):
        raise InputError(f"unsupported IQ datatype {name!r}; supported: {SUPPORTED}")
    order = "<" if endian == "le" else ">"
    dtype = np.dtype(f"{order if bits > 8 else '|'}{kind}{bits // 8}")
    if kind == "f":
        return IqFormat(name, dtype, 1.0, 0.0)
    if kind == "i":
        return IqFormat(name, dtype, 2.0 ** -(bits - 1), 0.0)
    return IqFormat(name, dtype, 2.0 ** -(bits - 1), (2.0**bits - 1) / 2)


def from_raw(raw: np.ndarray, fmt: IqFormat) -> np.ndarray:
    """Interleaved I/Q values of ``fmt`` to complex64 in full-scale units."""
    values = raw.astype(np.float32)
    if fmt.offset:
        values -= np.float32(fmt.offset)
    if fmt.scale != 1.0:
        values *= np.float32(fmt.scale)
    return values.view(np.complex64)


def to_raw(iq: np.ndarray, fmt: IqFormat) -> np.ndarray:
    """Complex samples in full-scale units to interleaved values of ``fmt`` (rounded, clipped)."""
    pairs = np.ascontiguousarray(iq, dtype=np.complex64).view(np.float32)
    if fmt.dtype.kind == "f":
        return pairs.astype(fmt.dtype)
    info = np.iinfo(fmt.dtype)
    values = pairs * np.float32(1.0 / fmt.scale)
    if fmt.offset:
        values += np.float32(fmt.offset)
    np.rint(values, out=values)
    np.clip(values, info.min, info.max, out=values)
    return values.astype(fmt.dtype)

"""Emissions as SigMF annotations, the boxes inspectrum and IQEngine draw over a recording.

:func:`write_annotations` writes a ``.sigmf-meta``: a copy of the replayed recording's metadata
(everything kept, its own annotations included) with one annotation per emission added, or a new
minimal one for a recording the monitor made itself. Each annotation carries the fields viewers
draw (``core:sample_start``, ``core:sample_count``, ``core:freq_lower_edge``,
``core:freq_upper_edge``, ``core:label``), a ``core:comment`` a person reads, ``core:generator``
(so the monitor's boxes can be told from others), and ``prmnet:confidence`` and
``prmnet:power_db``; the ``prmnet`` namespace is declared as an optional extension.

Viewers pair ``NAME.sigmf-meta`` with ``NAME.sigmf-data``: to see the boxes over the samples,
write the annotations beside the recording's data under its name (replacing its metadata is safe:
the file is replaced in one rename, and every field of the old one is kept).
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import sigmf.validate

from monitor import __version__
from monitor.errors import InputError
from monitor.occupancy.emission import Emission
from monitor.occupancy.logs import validate_output_path, write_file_atomically
from monitor.recordings import Annotation, meta_and_data_paths

__all__ = ["validate_annotation_path", "write_annotations"]

log = logging.getLogger(__name__)

SIGMF_VERSION = "1.2.0"
GENERATOR = f"prmnet-monitor {__version__}"


def validate_annotation_path(path: str | Path) -> Path:
    """Check, before anything is processed, that annotations can be written at ``path``.

    Raises:
        InputError: for a name not ending in ``.sigmf-meta`` or a folder that cannot be written.
    """
    p = Path(path)
    if p.suffix != ".sigmf-meta":
        raise InputError(f"annotations go into a .sigmf-meta file, got {p}")
    return validate_output_path(p, "annotations")


def write_annotations(
    out_meta_path: str | Path,
    emissions: Iterable[Emission],
    *,
    sample_rate: float,
    center_freq: float,
    source_meta: Mapping[str, Any] | None = None,
    datatype: str = "cf32_le",
) -> Path:
    """Write ``emissions`` as SigMF annotations into ``out_meta_path``, atomically.

    Args:
        out_meta_path: the ``.sigmf-meta`` to write.
        emissions: what the monitor saw; their sample indices count from the recording's first
            sample.
        sample_rate: the stream's sample rate; with ``source_meta`` it must be the recording's.
        center_freq: the stream's centre frequency, for the capture of a new metadata file (or of
            a copy that has no capture).
        source_meta: the replayed recording's metadata (``Recording.meta``), copied and kept
            whole; ``None`` for a new minimal metadata file.
        datatype: the SigMF datatype of the data file, for a new metadata file.

    Returns:
        The path written.

    Raises:
        ValueError: if ``sample_rate`` is not the source recording's.
        InputError: if ``source_meta`` is not valid SigMF (said in one line).
        DeviceError: if the file cannot be written.
    """
    out = Path(out_meta_path)
    meta: dict[str, Any] = copy.deepcopy(dict(source_meta)) if source_meta else {}
    meta.setdefault("global", {})
    glob = meta["global"]
    glob.setdefault("core:datatype", datatype)
    glob.setdefault("core:sample_rate", float(sample_rate))
    glob.setdefault("core:version", SIGMF_VERSION)
    glob.setdefault("core:recorder", GENERATOR)
    if not math.isclose(float(glob["core:sample_rate"]), sample_rate, rel_tol=1e-9):
        raise ValueError(f"the emissions are at {sample_rate} S/s but the recording is at "
                         f"{glob['core:sample_rate']} S/s")
    extensions = glob.setdefault("core:extensions", [])
    if not any(ext.get("name") == "prmnet" for ext in extensions):
        extensions.append({"name": "prmnet", "version": __version__, "optional": True})
    if not meta.get("captures"):
        meta["captures"] = [{"core:sample_start": 0, "core:frequency": float(center_freq)}]
    added = [_annotation(e) for e in emissions]
    meta["annotations"] = sorted([*meta.get("annotations", []), *added],
                                 key=lambda a: a.get("core:sample_start", 0))
    try:
        sigmf.validate.validate(meta)
    except jsonschema.ValidationError as exc:
        raise InputError(f"cannot annotate: the recording's metadata is not valid SigMF "
                         f"({exc.message})") from None
    write_file_atomically(out, (json.dumps(meta, indent=4) + "\n").encode(), "annotations")
    if not meta_and_data_paths(out)[1].is_file():
        log.warning("wrote %d annotations to %s; viewers show them over the samples only with "
                    "the data beside it as %s", len(added), out, meta_and_data_paths(out)[1].name)
    else:
        log.info("wrote %d annotations to %s", len(added), out)
    return out


def _annotation(e: Emission) -> dict[str, Any]:
    row = e.row()
    box = Annotation(
        start_sample=e.start_sample,
        sample_count=e.sample_count,
        freq_low_hz=row["freq_low_hz"],
        freq_high_hz=row["freq_high_hz"],
        label=e.label,
        extra={
            "core:comment": f"{e.label}, confidence {e.confidence:.2f}, "
                            f"power {e.power_db:.1f} dBFS",
            "core:generator": GENERATOR,
            "prmnet:confidence": row["confidence"],
            "prmnet:power_db": row["power_db"],
        },
    )
    return {"core:sample_start": e.start_sample, "core:sample_count": e.sample_count,
            **box.to_sigmf()}

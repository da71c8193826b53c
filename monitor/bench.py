"""``prmnet bench``: speed measured in one run, as rates and ratios, never as pass/fail timings.

Every figure comes with what it is relative to (the frame's own duration, a reference
implementation measured in the same run), so the numbers mean the same on any machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import torch

from monitor.dsp.geometry import Geometry
from monitor.synth.dataset import DatasetRequest, render_frame

__all__ = ["bench_synth", "format_table"]


def bench_synth(rates: Sequence[float], frames: int = 6) -> list[dict]:
    """Time data-set frames (random scene, render, spectrogram, both masks) at each rate.

    One process, one thread, as each ``prmnet synth dataset`` worker runs; the first frame of each
    rate is a warm-up and is not counted.
    """
    torch.set_num_threads(1)
    rows = []
    for rate in rates:
        request = DatasetRequest(frames=frames + 1, rates=(rate,), seed=12345)
        render_frame(0, request)
        start = time.perf_counter()
        for i in range(1, frames + 1):
            render_frame(i, request)
        seconds = (time.perf_counter() - start) / frames
        frame_seconds = Geometry.for_rate(rate).frame_seconds
        rows.append({
            "what": "synth frame",
            "sample_rate": rate,
            "frame_ms": round(frame_seconds * 1e3, 3),
            "frames_per_s": round(1.0 / seconds, 3),
            "ms_per_frame": round(seconds * 1e3, 1),
            "x_realtime": round(frame_seconds / seconds, 3),
            "cores": os.cpu_count(),
        })
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """A plain text table of benchmark rows (all rows share their keys)."""
    if not rows:
        return "(no results)"
    keys = list(rows[0])
    cells = [[str(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    line = "  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([line, "-" * len(line), *body])

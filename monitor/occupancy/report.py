"""``prmnet report LOG``: an occupancy log as a picture and a table a person would rather read.

The chart puts time across and frequency up, one rectangle per emission, one panel per class
(LTE and NR in the Okabe-Ito orange and blue, which colour-blind readers tell apart), each
rectangle as opaque as the network was confident. Panels, rather than one overlay, keep a carrier
of one class from hiding another's where they share a band.

The table has one row per carrier: the emissions of one class whose frequency spans overlap (in
a chain) are one carrier. Its edges are the medians of its emissions' edges, its on-time the union
of their time spans, its duty cycle that on-time over the log's span (the first emission's start
to the last one's end: the log does not say when the run began or ended), its confidence and
power the plain means over its emissions.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from monitor.errors import InputError
from monitor.occupancy.emission import Emission
from monitor.occupancy.logs import read_emissions, validate_output_path, write_file_atomically

__all__ = ["Carrier", "add_report_command", "format_table", "group_carriers", "write_report"]

log = logging.getLogger(__name__)

# Okabe-Ito: orange and blue for the two classes, then colours for any other label.
CLASS_COLOURS = {"LTE": "#E69F00", "NR": "#0072B2"}
OTHER_COLOURS = ("#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

TABLE_HEADER = ("#", "class", "centre MHz", "bw MHz", "first seen (UTC)", "last seen (UTC)",
                "emissions", "on-time s", "duty %", "confidence", "power dBFS")


@dataclass(frozen=True)
class Carrier:
    """Emissions of one class on one stretch of spectrum.

    Attributes:
        label: the class.
        center_hz: middle of the median edges.
        bandwidth_hz: distance between the median edges.
        first_seen: start of its first emission, POSIX seconds.
        last_seen: end of its last emission, POSIX seconds.
        emissions: how many emissions it holds.
        on_seconds: union of its emissions' time spans, seconds.
        duty_cycle: ``on_seconds`` over the log's span, 0 to 1.
        mean_confidence: mean of its emissions' confidences.
        mean_power_db: mean of their powers, dBFS.
    """

    label: str
    center_hz: float
    bandwidth_hz: float
    first_seen: float
    last_seen: float
    emissions: int
    on_seconds: float
    duty_cycle: float
    mean_confidence: float
    mean_power_db: float


def group_carriers(emissions: Sequence[Emission]) -> list[Carrier]:
    """The carriers of ``emissions``, ordered by centre frequency (then class).

    Emissions of one class go into one carrier when their frequency spans overlap, directly or
    through others; spans that only touch stay apart.
    """
    if not emissions:
        return []
    span = max(e.end_time for e in emissions) - min(e.start_time for e in emissions)
    carriers = []
    for label in sorted({e.label for e in emissions}):
        group: list[Emission] = []
        high = float("-inf")
        for e in sorted((e for e in emissions if e.label == label), key=lambda e: e.freq_low_hz):
            if group and e.freq_low_hz >= high:
                carriers.append(_carrier(group, span))
                group = []
            group.append(e)
            high = max(high, e.freq_high_hz)
        carriers.append(_carrier(group, span))
    return sorted(carriers, key=lambda c: (c.center_hz, c.label))


def format_table(carriers: Sequence[Carrier]) -> str:
    """The per-carrier table as aligned text for a terminal."""
    rows = [TABLE_HEADER, *_table_rows(carriers)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    text_columns = {1, 4, 5}
    lines = [
        "  ".join(cell.ljust(w) if i in text_columns else cell.rjust(w)
                  for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def write_report(
    log_path: str | Path, out_prefix: str | Path | None = None
) -> tuple[Path, Path, list[Carrier]]:
    """Read an occupancy log and write ``PREFIX.png`` (the chart) and ``PREFIX.html`` (chart and
    table in one self-contained page).

    Args:
        log_path: a ``.csv``, ``.jsonl`` or ``.parquet`` occupancy log.
        out_prefix: where to write; by default the log's path without its extension.

    Returns:
        The PNG and HTML paths, and the carriers.

    Raises:
        InputError: for a log that is missing, unreadable or empty, or an output folder that
            cannot be written.
        DeviceError: if an output cannot be written after all.
    """
    log_path = Path(log_path)
    prefix = Path(out_prefix) if out_prefix is not None else log_path.with_suffix("")
    png_path = validate_output_path(prefix.with_name(prefix.name + ".png"), "report")
    html_path = validate_output_path(prefix.with_name(prefix.name + ".html"), "report")
    emissions = read_emissions(log_path)
    if not emissions:
        raise InputError(f"{log_path} holds no emissions; there is nothing to report")
    carriers = group_carriers(emissions)
    png = _chart(emissions, carriers)
    write_file_atomically(png_path, png, "report")
    write_file_atomically(html_path, _html(log_path, emissions, carriers, png).encode(), "report")
    log.debug("wrote %s and %s", png_path, html_path)
    return png_path, html_path, carriers


def add_report_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``report LOG [--out PREFIX]`` to ``prmnet``'s subcommands; its ``func`` runs it."""
    parser = subparsers.add_parser(
        "report",
        help="an occupancy log as a time-frequency chart and a per-carrier table (PNG, HTML)",
        description="Read an occupancy log (.csv, .jsonl or .parquet) and write PREFIX.png, a "
        "time-frequency occupancy chart per class, and PREFIX.html, the chart with a table of "
        "carriers; the table is printed too.",
    )
    parser.add_argument("log", type=Path, metavar="LOG", help="the occupancy log")
    parser.add_argument("--out", type=Path, default=None, metavar="PREFIX",
                        help="write PREFIX.png and PREFIX.html (default: LOG without its "
                        "extension)")
    parser.set_defaults(func=_report_command)
    return parser


def _report_command(args: argparse.Namespace) -> int:
    png_path, html_path, carriers = write_report(args.log, args.out)
    print(format_table(carriers))
    print(f"wrote {png_path} and {html_path}")
    return 0


def _carrier(group: list[Emission], span: float) -> Carrier:
    low = statistics.median(e.freq_low_hz for e in group)
    high = statistics.median(e.freq_high_hz for e in group)
    on = 0.0
    covered_to = float("-inf")
    for e in sorted(group, key=lambda e: e.start_time):
        start = max(e.start_time, covered_to)
        if e.end_time > start:
            on += e.end_time - start
        covered_to = max(covered_to, e.end_time)
    return Carrier(
        label=group[0].label,
        center_hz=0.5 * (low + high),
        bandwidth_hz=high - low,
        first_seen=min(e.start_time for e in group),
        last_seen=max(e.end_time for e in group),
        emissions=len(group),
        on_seconds=on,
        duty_cycle=on / span if span > 0 else 1.0,
        mean_confidence=statistics.fmean(e.confidence for e in group),
        mean_power_db=statistics.fmean(e.power_db for e in group),
    )


def _table_rows(carriers: Sequence[Carrier]) -> list[tuple[str, ...]]:
    return [
        (str(n), c.label, f"{c.center_hz / 1e6:.3f}", f"{c.bandwidth_hz / 1e6:.2f}",
         _clock(c.first_seen), _clock(c.last_seen), str(c.emissions), f"{c.on_seconds:.3f}",
         f"{100 * c.duty_cycle:.1f}", f"{c.mean_confidence:.2f}", f"{c.mean_power_db:.1f}")
        for n, c in enumerate(carriers, start=1)
    ]


def _clock(posix_seconds: float) -> str:
    moment = datetime.fromtimestamp(posix_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _colour(label: str, labels: Sequence[str]) -> str:
    others = [lb for lb in labels if lb not in CLASS_COLOURS]
    if label in CLASS_COLOURS:
        return CLASS_COLOURS[label]
    return OTHER_COLOURS[others.index(label) % len(OTHER_COLOURS)]


def _alpha(confidence: float) -> float:
    return 0.15 + 0.85 * min(max(confidence, 0.0), 1.0)


def _time_unit(span_seconds: float) -> tuple[str, float]:
    if span_seconds < 120:
        return "s", 1.0
    if span_seconds < 7200:
        return "min", 60.0
    return "h", 3600.0


def _chart(emissions: Sequence[Emission], carriers: Sequence[Carrier]) -> bytes:
    """The time-frequency chart as PNG bytes: one panel per class, shared axes."""
    # matplotlib is imported here, not above, so that building prmnet's parser stays quick.
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    labels = [lb for lb in CLASS_COLOURS if any(e.label == lb for e in emissions)]
    labels += sorted({e.label for e in emissions} - set(labels))
    t0 = min(e.start_time for e in emissions)
    duration = max(e.end_time for e in emissions) - t0
    unit, per_unit = _time_unit(duration)
    right = duration / per_unit or 1.0
    low = min(e.freq_low_hz for e in emissions) / 1e6
    high = max(e.freq_high_hz for e in emissions) / 1e6
    pad = max(0.05 * (high - low), 0.1)

    fig = Figure(figsize=(10, 1.0 + 2.4 * len(labels)), layout="constrained")
    axes = fig.subplots(len(labels), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    for ax, label in zip(axes, labels, strict=True):
        mine = [e for e in emissions if e.label == label]
        colour = _colour(label, labels)
        rgba = [(*_rgb(colour), _alpha(e.confidence)) for e in mine]
        boxes = [_box((e.start_time - t0) / per_unit, (e.end_time - t0) / per_unit,
                      e.freq_low_hz / 1e6, e.freq_high_hz / 1e6) for e in mine]
        ax.add_collection(PolyCollection(boxes, facecolors=rgba, edgecolors=rgba,
                                         linewidths=0.8))
        for n, c in enumerate(carriers, start=1):
            if c.label == label:
                ax.annotate(f"#{n}", xy=(1.005, c.center_hz / 1e6), xycoords=("axes fraction",
                            "data"), va="center", fontsize=8, color=colour)
        n_carriers = sum(c.label == label for c in carriers)
        ax.set_title(f"{label}: {n_carriers} carrier{'s' * (n_carriers != 1)}, "
                     f"{len(mine)} emission{'s' * (len(mine) != 1)}", loc="left", fontsize=10)
        ax.set_ylabel("frequency, MHz")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylim(low - pad, high + pad)
    axes[0].set_xlim(-0.02 * right, 1.02 * right)
    axes[-1].set_xlabel(f"time, {unit} since {_clock(t0)} UTC")
    handles = [Patch(color=_colour(lb, labels), label=lb) for lb in labels]
    handles += [Patch(color="0.3", alpha=_alpha(q), label=f"confidence {q:.1f}")
                for q in (0.5, 1.0)]
    fig.legend(handles=handles, loc="outside upper right", ncols=len(handles), fontsize=8,
               frameon=False)
    fig.suptitle("Occupancy", x=0.01, ha="left", fontsize=11)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _box(t0: float, t1: float, f0: float, f1: float) -> list[tuple[float, float]]:
    return [(t0, f0), (t1, f0), (t1, f1), (t0, f1)]


def _rgb(colour: str) -> tuple[float, float, float]:
    value = int(colour.lstrip("#"), 16)
    return ((value >> 16) / 255, ((value >> 8) & 0xFF) / 255, (value & 0xFF) / 255)


def _html(log_path: Path, emissions: Sequence[Emission], carriers: Sequence[Carrier],
          png: bytes) -> str:
    start = min(e.start_time for e in emissions)
    end = max(e.end_time for e in emissions)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in TABLE_HEADER)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in _table_rows(carriers)
    )
    title = f"Occupancy of {log_path.name}"
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
th, td {{ padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }}
th {{ background: #f4f4f4; }}
td:nth-child(2), td:nth-child(5), td:nth-child(6) {{ text-align: left; }}
img {{ max-width: 100%; }}
p.note {{ color: #555; font-size: 0.9em; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>{len(emissions)} emissions in {len(carriers)} carriers, from {_clock(start)} to {_clock(end)}
UTC ({end - start:.3f} s).</p>
<img alt="time-frequency occupancy chart" src="data:image/png;base64,{image}">
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<p class="note">A carrier is the emissions of one class whose frequency spans overlap; its edges
are the medians of theirs. On-time is the union of its emissions' spans; duty cycle is that over
the log's span (first emission's start to last emission's end). Confidence and power are means
over its emissions.</p>
</body>
</html>
"""

"""``prmnet report``: carriers grouped from a hand-made log, PNG and HTML written, bad input."""

from __future__ import annotations

import argparse
import base64
import re
from pathlib import Path

import pytest

from monitor.errors import InputError
from monitor.occupancy.emission import Emission
from monitor.occupancy.logs import open_log
from monitor.occupancy.report import add_report_command, group_carriers, write_report

T0 = 1_795_900_000.0
MHZ = 1e6


def emission(start: float, end: float, low_mhz: float, high_mhz: float, label: str,
             confidence: float = 0.9, power_db: float = -40.0) -> Emission:
    return Emission(T0 + start, T0 + end, int(start * 1e6), int((end - start) * 1e6),
                    low_mhz * MHZ, high_mhz * MHZ, label, confidence, power_db)


# Over 0 to 4 s: carrier A (LTE 1840-1860 MHz, three emissions, two overlapping in time),
# carrier C (LTE 1860-1865 MHz: touches A, stays apart), carrier B (LTE 1870-1875 MHz), and an
# NR carrier on A's span (another class, so another carrier).
HAND_MADE = [
    emission(0.0, 1.0, 1840.0, 1860.0, "LTE", 0.8, -40.0),
    emission(2.0, 3.0, 1840.1, 1859.9, "LTE", 0.9, -42.0),
    emission(2.5, 3.5, 1840.0, 1860.0, "LTE", 1.0, -44.0),
    emission(1.0, 1.5, 1870.0, 1875.0, "LTE", 0.6, -50.0),
    emission(3.0, 4.0, 1860.0, 1865.0, "LTE", 0.7, -55.0),
    emission(0.5, 4.0, 1840.0, 1860.0, "NR", 0.95, -38.0),
]


def test_grouping_of_a_hand_made_log() -> None:
    carriers = group_carriers(HAND_MADE)
    assert [(c.label, round(c.center_hz / MHZ, 3)) for c in carriers] == [
        ("LTE", 1850.0), ("NR", 1850.0), ("LTE", 1862.5), ("LTE", 1872.5)]
    a, nr, c, b = carriers
    assert a.emissions == 3
    assert a.bandwidth_hz == pytest.approx(20 * MHZ)
    assert a.on_seconds == pytest.approx(2.5)
    assert a.duty_cycle == pytest.approx(2.5 / 4)
    assert a.first_seen == pytest.approx(T0)
    assert a.last_seen == pytest.approx(T0 + 3.5)
    assert a.mean_confidence == pytest.approx(0.9)
    assert a.mean_power_db == pytest.approx(-42.0)
    assert nr.on_seconds == pytest.approx(3.5)
    assert nr.duty_cycle == pytest.approx(3.5 / 4)
    assert (c.emissions, c.bandwidth_hz) == (1, pytest.approx(5 * MHZ))
    assert c.duty_cycle == pytest.approx(0.25)
    assert b.on_seconds == pytest.approx(0.5)


def test_overlap_chains_into_one_carrier() -> None:
    chain = [emission(0, 1, 100, 110, "NR"), emission(0, 1, 108, 120, "NR"),
             emission(0, 1, 119, 125, "NR"), emission(0, 1, 125, 130, "NR")]
    assert [c.emissions for c in group_carriers(chain)] == [3, 1]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_png_and_html_written(tmp_path: Path, fmt: str) -> None:
    log_path = tmp_path / f"occ.{fmt}"
    with open_log(log_path) as log:
        for e in HAND_MADE:
            log.write(e)
    png, html, carriers = write_report(log_path)
    assert (png, html) == (tmp_path / "occ.png", tmp_path / "occ.html")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = html.read_text()
    embedded = re.search(r'src="data:image/png;base64,([^"]+)"', page)
    assert embedded and base64.b64decode(embedded.group(1)) == png.read_bytes()
    assert page.count("<tr>") == 1 + len(carriers) == 5
    assert "1872.500" in page and "62.5" in page
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_command_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_path = tmp_path / "occ.jsonl"
    with open_log(log_path) as log:
        for e in HAND_MADE:
            log.write(e)
    parser = argparse.ArgumentParser(prog="prmnet")
    add_report_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", str(log_path), "--out", str(tmp_path / "r")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["#", "class", "centre", "MHz"]
    assert lines[1].split()[:4] == ["1", "LTE", "1850.000", "20.00"]
    assert (tmp_path / "r.png").is_file() and (tmp_path / "r.html").is_file()


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    open_log(empty).close()
    plain = tmp_path / "plain"
    plain.write_text("")
    log_path = tmp_path / "occ.csv"
    with open_log(log_path) as log:
        log.write(HAND_MADE[0])
    cases = [(tmp_path / "missing.csv", None, "no such log"),
             (empty, None, "no emissions"),
             (tmp_path / "occ.txt", None, "extension"),
             (log_path, plain / "r", "not a folder")]
    for path, prefix, message in cases:
        with pytest.raises(InputError, match=message) as info:
            write_report(path, prefix)
        assert "\n" not in str(info.value)
    assert not any(p.suffix in (".png", ".html") for p in tmp_path.iterdir())

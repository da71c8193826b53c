"""Occupancy logs: round trips, rows on disk as emissions close, a SIGKILL survived, bad paths."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monitor.errors import InputError
from monitor.occupancy.emission import LOG_COLUMNS, Emission
from monitor.occupancy.logs import (
    journal_path,
    open_log,
    read_emissions,
    read_log,
    validate_log_path,
)

FORMATS = ("csv", "jsonl", "parquet")
T0 = 1_795_900_000.123456


def emission(i: int, label: str = "LTE") -> Emission:
    return Emission(
        start_time=T0 + 0.25 * i,
        end_time=T0 + 0.25 * i + 0.1000015,
        start_sample=61_440 * i,
        sample_count=6_144,
        freq_low_hz=1_842.5e6 - 10e6 + 15e3 * i,
        freq_high_hz=1_842.5e6 + 10e6,
        label=label,
        confidence=0.912345 - 0.01 * i,
        power_db=-41.237 - i,
    )


EMISSIONS = [emission(i, "LTE" if i % 2 else "NR") for i in range(7)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"occ.{fmt}"
    with open_log(path) as log:
        for e in EMISSIONS:
            log.write(e)
        assert log.rows == len(EMISSIONS)
    rows = read_log(path)
    assert rows == [e.row() for e in EMISSIONS]
    assert all(tuple(row) == LOG_COLUMNS for row in rows)
    back = read_emissions(path)
    assert [e.start_sample for e in back] == [e.start_sample for e in EMISSIONS]
    assert back[3].start_time == pytest.approx(EMISSIONS[3].start_time, abs=1e-6)
    assert not journal_path(path).exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_run_leaves_a_valid_empty_log(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"occ.{fmt}"
    open_log(path).close()
    assert read_log(path) == []


def test_text_columns_and_times(tmp_path: Path) -> None:
    path = tmp_path / "occ.csv"
    with open_log(path) as log:
        log.write(EMISSIONS[0])
    header, first = path.read_text().splitlines()
    assert header == ",".join(LOG_COLUMNS)
    assert first.startswith("2026-11-28T")
    assert first.split(",")[0].endswith("Z") and len(first.split(",")[0]) == 27


def test_parquet_types_and_file_readable_by_pyarrow(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "occ.parquet"
    with open_log(path) as log:
        for e in EMISSIONS:
            log.write(e)
    table = pq.read_table(path)
    assert tuple(table.column_names) == LOG_COLUMNS
    assert table.schema.field("start_time").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("start_sample").type == pa.int64()
    assert table.schema.field("label").type == pa.string()
    first = table["start_time"][0].as_py()
    assert first.timestamp() == pytest.approx(EMISSIONS[0].start_time, abs=1e-6)


@pytest.mark.parametrize("fmt", FORMATS)
def test_rows_readable_while_the_log_is_open(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"occ.{fmt}"
    with open_log(path) as log:
        for n, e in enumerate(EMISSIONS[:3], start=1):
            log.write(e)
            assert read_log(path) == [x.row() for x in EMISSIONS[:n]]
    if fmt == "parquet":
        assert not journal_path(path).exists()


def test_close_is_idempotent_and_write_after_close_fails(tmp_path: Path) -> None:
    log = open_log(tmp_path / "occ.parquet")
    log.write(EMISSIONS[0])
    log.close()
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.write(EMISSIONS[1])
    assert len(read_log(tmp_path / "occ.parquet")) == 1


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from monitor.occupancy.emission import Emission
    from monitor.occupancy.logs import open_log

    logs = [open_log(path) for path in sys.argv[2:]]
    for i in range(int(sys.argv[1])):
        e = Emission(1.8e9 + i, 1.8e9 + i + 0.5, 1000 * i, 500, 2.6e9, 2.62e9, "LTE", 0.9, -30.0)
        for log in logs:
            log.write(e)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_sigkill_loses_no_written_emission(tmp_path: Path) -> None:
    paths = [tmp_path / f"killed.{fmt}" for fmt in FORMATS]
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, "5", *map(str, paths)],
                          capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    for path in paths:
        rows = read_log(path)
        assert [r["start_sample"] for r in rows] == [0, 1000, 2000, 3000, 4000], path
    parquet = tmp_path / "killed.parquet"
    assert not parquet.exists(), "a killed run must leave no half-written Parquet file"
    assert journal_path(parquet).is_file()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_line_cut_short_by_a_kill_is_dropped(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"occ.{fmt}"
    with open_log(path) as log:
        log.write(EMISSIONS[0])
        log.write(EMISSIONS[1])
    text = path.read_text()
    path.write_text(text[: len(text) - 20])
    assert read_log(path) == [EMISSIONS[0].row()]


def test_a_new_parquet_run_removes_the_stale_log(tmp_path: Path) -> None:
    path = tmp_path / "occ.parquet"
    with open_log(path) as log:
        log.write(EMISSIONS[0])
    log = open_log(path)
    assert not path.exists()
    assert read_log(path) == []
    log.close()


@pytest.mark.parametrize("name", ["occ.txt", "occ", "occ.json", "occ.csv.gz"])
def test_unknown_extension(tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError, match=r"\.csv, \.jsonl or \.parquet"):
        open_log(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_unwritable_folder_is_bad_input_and_creates_nothing(tmp_path: Path, fmt: str) -> None:
    plain = tmp_path / "plain-file"
    plain.write_text("not a folder")
    for path, reason in [(plain / f"occ.{fmt}", "not a folder"),
                         (tmp_path / "missing" / f"occ.{fmt}", "does not exist"),
                         (Path("/proc") / f"prmnet-test.{fmt}", "not writable")]:
        with pytest.raises(InputError, match=reason) as info:
            validate_log_path(path)
        assert "\n" not in str(info.value)
        with pytest.raises(InputError):
            open_log(path)
        assert not path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain-file"]


def test_folder_as_log_path(tmp_path: Path) -> None:
    folder = tmp_path / "occ.csv"
    folder.mkdir()
    with pytest.raises(InputError, match="is a folder"):
        validate_log_path(folder)


def test_validation_creates_no_file(tmp_path: Path) -> None:
    assert validate_log_path(tmp_path / "occ.parquet") == tmp_path / "occ.parquet"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.csv", None, "no such log"),
    ("missing.parquet", None, "no such log"),
    ("empty.csv", "", "empty"),
    ("other.csv", "a,b,c\n1,2,3\n", "not an occupancy log"),
    ("short.csv", ",".join(LOG_COLUMNS) + "\n1,2\n", "2 fields"),
    ("bad.jsonl", "{not json}\n", "not JSON"),
    ("partial.jsonl", json.dumps({"start_time": "x"}) + "\n", "no end_time"),
    ("number.jsonl", json.dumps({**EMISSIONS[0].row(), "sample_count": "many"}) + "\n",
     "sample_count"),
    ("garbage.parquet", "PAR1 not really", "not a readable Parquet file"),
])
def test_bad_logs_are_bad_input(tmp_path: Path, name: str, content: str | None,
                                message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        read_log(path)
    assert "\n" not in str(info.value)


def test_bad_time_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "occ.jsonl"
    path.write_text(json.dumps({**EMISSIONS[0].row(), "start_time": "yesterday"}) + "\n")
    with pytest.raises(InputError, match="ISO 8601"):
        read_emissions(path)

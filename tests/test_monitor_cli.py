"""prmnet-monitor as a user runs it: replay, logs, stats, bad input, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from monitor.cli import monitor_main
from monitor.occupancy.logs import read_log
from monitor.recordings import write_recording


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    x = 0.05 * (rng.standard_normal(240_000) + 1j * rng.standard_normal(240_000))
    return write_recording(tmp_path_factory.mktemp("rec") / "noise.sigmf-meta", x, 2.4e6, 1.8e9,
                           "ci16_le")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    status = monitor_main(list(argv))
    return status, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("options", [[], ["--raw-classes"]])
def test_replay_writes_log_stats_and_annotations(
    tmp_path: Path, untrained_model: Path, recording: Path, capsys: pytest.CaptureFixture[str],
    options: list[str],
) -> None:
    log, stats, ann = tmp_path / "occ.jsonl", tmp_path / "stats.json", tmp_path / "a.sigmf-meta"
    status = monitor_main(["--replay", str(recording), "--headless", "--model",
                           str(untrained_model), "--log", str(log), "--stats", str(stats),
                           "--annotate", str(ann), *options])
    assert status == 0
    summary = json.loads(stats.read_text())
    assert summary["samples_in"] == 240_000 and summary["samples_dropped"] == 0
    # 0.1 s at 2.4 MS/s: two whole 40 ms frames and the rest in a last, shorter one
    assert summary["frames"] == summary["frames_segmented"] == 3
    assert summary["engine"] in ("torch", "onnxruntime") and summary["compute_device"] == "cpu"
    assert summary["model"] == "untrained_w8"
    assert summary["realtime_factor"] > 0
    rows = read_log(log)
    assert len(rows) == summary["emissions"]
    meta = json.loads(ann.read_text())
    assert len(meta["annotations"]) == len(rows)
    assert "replay noise.sigmf-meta" in capsys.readouterr().out


def test_a_recording_shorter_than_a_frame_is_segmented(
    tmp_path: Path, untrained_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = np.zeros(46_080, dtype=np.complex64)  # 1 ms at 46.08 MS/s: 6 rows of 40 ms frames
    rec = write_recording(tmp_path / "short.sigmf-meta", x + 1e-3, 46.08e6, 3.5e9)
    stats = tmp_path / "s.json"
    assert monitor_main(["--replay", str(rec), "--headless", "--model", str(untrained_model),
                         "--stats", str(stats)]) == 0
    summary = json.loads(stats.read_text())
    assert summary["frames"] == summary["frames_segmented"] == 1


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("truncated", "truncated"),
        ("datatype", "unsupported IQ datatype"),
        ("missing data", "data file"),
        ("rate 0", "sample_rate"),
        ("directory", "directory"),
        ("unwritable log", "cannot write log"),
        ("log extension", ".csv, .jsonl or .parquet"),
        ("format without rate", "--format needs --rate"),
        ("no such file", "not found"),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    tmp_path: Path, recording: Path, untrained_model: Path, capsys: pytest.CaptureFixture[str],
    problem: str, message: str,
) -> None:
    meta = tmp_path / "r.sigmf-meta"
    data = meta.with_suffix(".sigmf-data")
    meta.write_bytes(recording.read_bytes())
    data.write_bytes(recording.with_suffix(".sigmf-data").read_bytes())
    doc = json.loads(meta.read_text())
    replay = str(meta)
    log = tmp_path / "occ.csv"
    extra: list[str] = []
    if problem == "truncated":
        data.write_bytes(data.read_bytes()[:-3])
    elif problem == "datatype":
        doc["global"]["core:datatype"] = "ci12_le"
    elif problem == "missing data":
        data.unlink()
    elif problem == "rate 0":
        doc["global"]["core:sample_rate"] = 0
    elif problem == "directory":
        replay = str(tmp_path)
    elif problem == "unwritable log":
        log = tmp_path / "not-a-folder" / "occ.csv"
        (tmp_path / "not-a-folder").write_text("a file, not a folder")
    elif problem == "log extension":
        log = tmp_path / "occ.xlsx"
    elif problem == "format without rate":
        replay = str(data)
        extra = ["--format", "ci16"]
    elif problem == "no such file":
        replay = str(tmp_path / "nothing.sigmf-meta")
    meta.write_text(json.dumps(doc))
    status, err = _run(capsys, "--replay", replay, "--headless", "--model",
                       str(untrained_model), "--log", str(log), *extra)
    assert status == 2
    assert len(err) == 1 and message in err[0], err
    assert "Traceback" not in "".join(err)
    assert not log.exists()


def test_a_confidence_floor_over_1_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        monitor_main(["--headless", "--min-confidence", "1.5"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("argument --min-confidence: must be from 0 to 1, got 1.5")


def test_no_window_without_a_display_says_how(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    status, err = _run(capsys, "--duration", "1")
    assert status == 2 and "--headless" in err[0]


@pytest.mark.slow
def test_sigterm_leaves_a_complete_log_and_stats(tmp_path: Path, untrained_model: Path) -> None:
    log, stats = tmp_path / "occ.csv", tmp_path / "stats.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from monitor.cli import monitor_main; raise SystemExit("
         "monitor_main())", "--device", "synthetic", "--rate", "2.4e6", "--headless",
         "--model", str(untrained_model), "--log", str(log), "--stats", str(stats),
         "--hop", "256"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (log.exists() and log.stat().st_size > 0):
        time.sleep(0.2)
    time.sleep(3.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    summary = json.loads(stats.read_text())
    assert summary["frames_segmented"] > 0
    rows = read_log(log)
    assert len(rows) == summary["emissions"]
    for row in rows:
        assert row["label"] in ("LTE", "NR")

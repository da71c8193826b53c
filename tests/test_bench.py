"""prmnet bench: the figures come out, with what they are relative to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.bench import bench_model, bench_stft
from monitor.cli import prmnet_main


def test_stft_bench_compares_with_scipy() -> None:
    (row,) = bench_stft([2.4e6], threads=1, repeats=1)
    assert row["ms_ours"] > 0 and row["ms_scipy"] > 0
    assert row["speedup"] == pytest.approx(row["ms_scipy"] / row["ms_ours"], rel=0.05)
    assert row["x_realtime"] == pytest.approx(row["frame_ms"] / row["ms_ours"], rel=0.05)


def test_model_bench_reports_size_and_ratio_to_the_frame(tmp_path: Path) -> None:
    rows = bench_model(["prmnet_cpu"], rates=[1.92e6, 2.4e6], threads=1, repeats=1)
    assert [r["sample_rate"] for r in rows] == [1.92e6, 2.4e6]
    assert rows[0]["parameters"] == 60_963 and rows[0]["gflop"] == 1.04
    assert rows[0]["x_realtime"] == pytest.approx(40.0 / rows[0]["ms_per_frame"], rel=0.05)
    out = tmp_path / "bench.json"
    assert prmnet_main(["bench", "stft", "--rates", "1.92e6", "--threads", "1",
                        "--json", str(out)]) == 0
    assert json.loads(out.read_text())[0]["what"] == "spectrogram frame"


def test_live_replay_accounts_for_every_frame_and_sample(untrained_model: Path) -> None:
    from monitor.bench import bench_replay

    (row,) = bench_replay(1.92e6, 0.3, untrained_model, speed=1.0, live=True)
    assert row["what"] == "live replay" and row["stream_s"] == pytest.approx(0.3)
    assert row["frames"] == 8 and 1 <= row["segmented"] <= row["frames"]
    assert row["dropped"] == 0 or row["segmented"] < row["frames"]

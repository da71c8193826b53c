"""``.ci/gpu-run``, the run a GPU machine lent for a fixed time makes, at toy sizes on the CPU:
data, a training run fitted to the time left, bias tuning, evaluation, and the weights in parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.train.cards import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
END = 150


@pytest.mark.skipif(sys.platform != "linux", reason="a bash script for Linux machines")
def test_the_gpu_run_trains_tunes_and_evaluates_in_its_time(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "WORK": str(tmp_path / "work"), "DEV": "cpu",
           "PRECISION": "fp32", "MODEL": "prmnet_cpu", "WARMUP": "5", "GEN_FRAMES": "16",
           "TEST_FRAMES": "16", "GEN_SECONDS": "25", "POST": "60", "END": str(END),
           "CAPTURES": str(tmp_path / "none"), "PY": sys.executable}
    shipped = {p: p.read_bytes() for p in (ROOT / "engines" / "weights").iterdir()}
    started = time.monotonic()
    done = subprocess.run([str(ROOT / ".ci" / "gpu-run")], env=env, capture_output=True,
                          text=True, timeout=END + 60)
    took = time.monotonic() - started
    log = (out / "log.txt").read_text()
    assert done.returncode == 0 and "FAILED" not in log, log
    assert took < END + 15, log
    sets = [line for line in (out / "made.txt").read_text().splitlines() if line]
    assert sets and all(Path(s).is_dir() for s in sets)
    config = (out / "gpu-run.toml").read_text()
    assert all(f'"{s}"' in config for s in sets)
    # the steps were fitted to the time: far fewer than the configuration's 40,000, and done
    # but for the last few where the steps ran slower than the probe timed them (the test set
    # is made beside the run, on a machine shared with whatever else runs), when the run stops
    # at its time
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    card = json.loads((out / "tuned.json").read_text())
    total = card["training"]["total_steps"]
    assert 5 < total < 40_000 and 0.9 * total <= steps[-1] <= total, log  # past the warm-up
    assert ("finished" if steps[-1] == total else "stopped") in log, log
    assert "--fit-minutes" in card["training"]["command"]
    weights = tmp_path / "tuned.safetensors"
    weights.write_bytes(b"".join(p.read_bytes() for p in sorted(out.glob("weights.part-*"))))
    (tmp_path / "tuned.json").write_text(json.dumps(card))
    _, loaded = load_checkpoint(weights)
    assert loaded.model == "prmnet_cpu"
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert len(metrics["models"]) == 3, metrics.keys()
    assert (out / "eval" / "report.md").is_file()
    # the shipped cards keep their own test figures (the run's evaluation recorded into copies)
    assert {p: p.read_bytes() for p in (ROOT / "engines" / "weights").iterdir()} == shipped

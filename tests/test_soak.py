"""Soak: the monitor on an rtl_tcp stream at 2.4 MS/s for as long as ``--soak-minutes`` says.

Skipped unless asked for::

    .venv/bin/python -m pytest tests/test_soak.py --soak-minutes 10 --soak-report soak.json

A loopback rtl_tcp server loops a generator recording (an LTE carrier as an RTL-SDR records it)
at its pace; ``prmnet-monitor`` runs headless in its own process. Passes when no sample was
dropped on the monitor's side and its memory stayed flat: the resident set at the end within
``RSS_GROWTH_MB`` of what it was a quarter of the way in (after start-up and the first frames).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from monitor.cli import prmnet_main
from monitor.sources.files import open_recording
from tests.rtltcp_server import RtlTcpServer

RATE = 2.4e6
FC = 1.8e9
RSS_GROWTH_MB = 20.0
SAMPLE_EVERY_S = 5.0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@pytest.mark.timeout(0)  # as long as asked; the monitor is killed 5 minutes after its end is due
def test_rtl_tcp_soak(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    minutes = request.config.getoption("--soak-minutes")
    if minutes <= 0:
        pytest.skip("soak test: run with --soak-minutes N")
    meta = tmp_path / "lte.sigmf-meta"
    assert prmnet_main(["synth", "recording", str(meta), "--rate", str(RATE), "--duration", "2",
                        "--fc", str(FC), "--seed", "9", "--receiver", "rtlsdr", "--datatype",
                        "cu8", "--carrier", "lte:bw=1.4e6,offset=-0.3e6,snr=15,load=0.6"]) == 0
    data = np.asarray(open_recording(meta).samples).tobytes()
    server = RtlTcpServer(data, rate=RATE, loop=True)
    stats, log = tmp_path / "stats.json", tmp_path / "occ.csv"
    seconds = minutes * 60
    command = [str(Path(sys.executable).with_name("prmnet-monitor")),
               "--device", f"rtltcp:127.0.0.1:{server.port}", "--fc", str(FC),
               "--rate", str(RATE), "--headless", "--duration", str(seconds),
               "--log", str(log), "--stats", str(stats)]
    rss: list[tuple[float, float]] = []
    started = time.monotonic()
    try:
        process = subprocess.Popen(command, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        while process.poll() is None:
            time.sleep(SAMPLE_EVERY_S)
            if time.monotonic() - started > seconds + 300:
                process.kill()
                pytest.fail(f"the monitor was still running {seconds + 300:.0f} s after start")
            try:
                rss.append((time.monotonic() - started, _rss_mb(process.pid)))
            except (FileNotFoundError, RuntimeError):
                break
        status = process.wait(timeout=120)
    finally:
        server.stop()
    assert status == 0
    summary = json.loads(stats.read_text())
    settled = [mb for t, mb in rss if t >= seconds / 4]
    figures = {
        "minutes": minutes,
        "sample_rate": RATE,
        "samples_in": summary["samples_in"],
        "samples_dropped": summary["samples_dropped"],
        "frames": summary["frames"],
        "frames_segmented": summary["frames_segmented"],
        "realtime_factor": summary["realtime_factor"],
        "emissions": summary["emissions"],
        "emissions_unconfident": summary["emissions_unconfident"],
        "emissions_narrow": summary["emissions_narrow"],
        "engine": summary["engine"],
        "rss_mb_quarter": settled[0],
        "rss_mb_end": settled[-1],
        "rss_mb_max": max(mb for _, mb in rss),
        "rss_mb": [[round(t, 1), round(mb, 1)] for t, mb in rss],
    }
    report = request.config.getoption("--soak-report")
    if report:
        Path(report).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k != "rss_mb"}))
    assert summary["samples_dropped"] == 0
    assert summary["samples_in"] >= 0.95 * RATE * (seconds - 1)
    assert settled[-1] - settled[0] <= RSS_GROWTH_MB, figures

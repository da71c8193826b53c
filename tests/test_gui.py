"""The waterfall window, offscreen: replay, overlay against the log, retune, record, close,
screenshot."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("PyQt5")
pytest.importorskip("pyqtgraph")

from PyQt5 import QtGui
from PyQt5.QtCore import Qt
from pytestqt.qtbot import QtBot

from engines.backends.base import Runner
from monitor.app import MonitorSettings
from monitor.cli import monitor_main
from monitor.gui.app import open_window
from monitor.gui.waterfall import CLASS_COLORS
from monitor.gui.window import MonitorWindow
from monitor.occupancy.logs import read_log
from monitor.recordings import write_recording
from monitor.sources.files import open_recording

RATE = 2.4e6
FC = 1.8e9
#: Two bands of noise 30 dB over the floor: LTE left of the centre, NR right of it.
BANDS = {"LTE": (-800e3, -300e3), "NR": (200e3, 700e3)}
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def noise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    x = 0.05 * (rng.standard_normal(240_000) + 1j * rng.standard_normal(240_000))
    return write_recording(tmp_path_factory.mktemp("rec") / "noise.sigmf-meta", x, RATE, FC,
                           "ci16_le")


@pytest.fixture(scope="module")
def bands(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.2 s of a noise floor with the two :data:`BANDS` in it."""
    n = 480_000
    rng = np.random.default_rng(1)
    floor = 1e-3 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    spectrum = np.fft.fft(10 ** 1.5 * 1e-3 * (rng.standard_normal(n)
                                               + 1j * rng.standard_normal(n)))
    f = np.fft.fftfreq(n, 1 / RATE)
    inside = np.zeros(n, dtype=bool)
    for low, high in BANDS.values():
        inside |= (f > low) & (f < high)
    spectrum[~inside] = 0
    x = floor + np.fft.ifft(spectrum)
    return write_recording(tmp_path_factory.mktemp("rec") / "bands.sigmf-meta", x, RATE, FC)


class BandRunner(Runner):
    """Segments by rule: a column ``threshold`` or more over the floor (mean over the frame; 10
    dB per unit) is LTE left of the centre and NR right of it; the rest is noise."""

    name = "bands"

    def __init__(self, threshold: float = 1.85) -> None:
        super().__init__("cpu", "fp32")
        self.threshold = threshold

    def activate_impl(self) -> None:
        pass

    def deactivate_impl(self) -> None:
        pass

    def infer_impl(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        loud = x.mean(dim=2) > self.threshold  # (n, 1, w)
        side = torch.where(torch.arange(w) < w // 2, 1, 2)
        cls = torch.where(loud, side, 0).expand(n, h, w)
        return F.one_hot(cls, 3).permute(0, 3, 1, 2).float()


@pytest.fixture
def band_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run segments with :class:`BandRunner`."""
    monkeypatch.setattr("monitor.app.select_runner", lambda model, **kw: BandRunner())


def _open(qtbot: QtBot, **settings: object) -> MonitorWindow:
    window = open_window(MonitorSettings(**settings))  # type: ignore[arg-type]
    qtbot.addWidget(window)
    return window


def _overlay_argb(window: MonitorWindow) -> np.ndarray:
    """The overlay as it is rendered: (lines, bins) 0xAARRGGBB, oldest line first."""
    item = window.waterfall.overlay
    item.render()
    image = item.qimage.convertToFormat(QtGui.QImage.Format.Format_ARGB32)
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes())
    return np.frombuffer(ptr, np.uint32).reshape(image.height(), image.width()).copy()


def _argb(cls: int) -> int:
    r, g, b = CLASS_COLORS[cls]
    return 0xFF000000 | r << 16 | g << 8 | b


def test_the_window_opens_on_a_replay_and_draws_rows(
    qtbot: QtBot, untrained_model: Path, noise: Path, bands: Path
) -> None:
    window = _open(qtbot, replay=noise, model=str(untrained_model))
    qtbot.waitUntil(lambda: window.waterfall.ring.lines_total > 0, timeout=WAIT_MS)
    ring = window.waterfall.ring
    assert ring.view is not None and ring.view.center_freq == FC
    low, high = window.waterfall.waterfall.viewRange()[0]
    assert low == pytest.approx((FC - RATE / 2) / 1e6, abs=0.01)
    assert high == pytest.approx((FC + RATE / 2) / 1e6, abs=0.01)
    assert window.waterfall.image.image is not None and window.waterfall.image.image.any()
    # a recording can be neither retuned nor given a gain
    assert not window.center_spin.isEnabled() and not window.gain_spin.isEnabled()
    # O: overlay and labels off; L: levels fixed where they were, and editable
    qtbot.keyClick(window, Qt.Key.Key_O)
    assert not window.waterfall.overlay.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_L)
    assert not window.waterfall.auto_levels and window.level_spins[0].isEnabled()
    assert window.level_spins[0].value() == pytest.approx(ring.levels[0], abs=0.05)
    window.level_spins[1].setValue(ring.levels[0] + 10)
    assert ring.levels[1] == pytest.approx(ring.levels[0] + 10)
    # a file that is not a recording leaves the run as it was; a recording replaces it
    assert not window.open_recording(noise.parent / "missing.sigmf-meta")
    assert window.session.run is not None and window.session.run.source.describe().endswith(
        "noise.sigmf-meta")
    assert window.open_recording(bands)
    assert window.session.run.source.describe() == "replay bands.sigmf-meta"
    qtbot.waitUntil(lambda: window.session.ended, timeout=WAIT_MS)
    assert window.session.stats is not None and window.session.stats.frames_segmented == 5


def test_the_overlay_is_coloured_where_the_log_says_the_carriers_are(
    qtbot: QtBot, untrained_model: Path, bands: Path, band_runner: None, tmp_path: Path
) -> None:
    log = tmp_path / "occ.jsonl"
    # the bands are 500 kHz, no 3GPP channel (and NR's too narrow for one): the pixels, as
    # --raw-edges logs them
    window = _open(qtbot, replay=bands, model=str(untrained_model), log_path=log,
                   fit_channels=False)
    qtbot.waitUntil(lambda: window.session.ended, timeout=WAIT_MS)
    rows = read_log(log)
    assert sorted(r["label"] for r in rows) == ["LTE", "NR"]
    ring = window.waterfall.ring
    assert ring.view is not None and ring.filled > 0
    centres = ring.view.low_edge_hz + (np.arange(ring.bins) + 0.5) * ring.view.pixel_hz
    expected = np.zeros(ring.bins, dtype=np.uint32)
    for row in rows:
        inside = (centres > row["freq_low_hz"]) & (centres < row["freq_high_hz"])
        expected[inside] = _argb(1 if row["label"] == "LTE" else 2)
    argb = _overlay_argb(window)
    assert argb.shape == (ring.lines, ring.bins)
    # lines of rows the display did not see (it polls at 60 Hz; the replay runs flat out) are
    # blank, the rest show the carriers: coloured where the log has one, transparent elsewhere
    seen = np.isfinite(ring.newest_power(ring.filled)[:, 0])
    assert ring.lines_total > 0 and seen.sum() == min(ring.lines_total, ring.lines)
    shown = argb[-ring.filled:]
    assert (shown[seen] == expected).all()
    assert (shown[~seen] == 0).all() and (argb[: ring.lines - ring.filled] == 0).all()
    # the labels name the same carriers at the same edges
    labels = {c.label: c for c in window.waterfall.labels}
    for row in rows:
        label = labels[row["label"]]
        assert label.low_hz == pytest.approx(row["freq_low_hz"])
        assert label.high_hz == pytest.approx(row["freq_high_hz"])
    # and the bands are where the recording has them
    for row in rows:
        low, high = BANDS[row["label"]]
        assert row["freq_low_hz"] - FC == pytest.approx(low, abs=2 * ring.view.pixel_hz)
        assert row["freq_high_hz"] - FC == pytest.approx(high, abs=2 * ring.view.pixel_hz)


def test_retuning_from_the_window_retunes_the_synthetic_radio(
    qtbot: QtBot, untrained_model: Path, band_runner: None, tmp_path: Path
) -> None:
    window = _open(qtbot, device="synthetic", center_freq=1815e6, sample_rate=1.92e6,
                   model=str(untrained_model))
    session = window.session
    assert session.run is not None
    pipeline = session.run.pipeline
    qtbot.waitUntil(lambda: pipeline.latest is not None, timeout=WAIT_MS)
    assert window.center_spin.isEnabled()
    recording = window.session.recorder.start(tmp_path / "rec.sigmf-meta")  # type: ignore[union-attr]
    window.center_spin.setValue(1860.0)
    qtbot.waitUntil(lambda: pipeline.latest.center_freq == 1860e6, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.waterfall.ring.view.center_freq == 1860e6, timeout=WAIT_MS)
    assert window.waterfall.waterfall.viewRange()[0][0] == pytest.approx(1860 - 0.96, abs=0.01)
    # the shortcut steps by half the sample rate
    qtbot.keyClick(window, Qt.Key.Key_Plus)
    assert window.center_spin.value() == pytest.approx(1860.96)
    qtbot.waitUntil(lambda: pipeline.latest.center_freq == 1860.96e6, timeout=WAIT_MS)
    # the gain box sets the radio's gain: every level moves with it
    assert window.gain_spin.isEnabled()
    window.gain_spin.setValue(40.0)
    assert session.source._gain_db == 40.0  # type: ignore[attr-defined]
    window.gain_spin.setValue(window.gain_spin.minimum())  # "auto"
    assert session.source._gain_db == 20.0  # type: ignore[attr-defined]
    # pausing freezes the display while processing goes on
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.waterfall.paused
    lines, frames = window.waterfall.ring.lines_total, pipeline.stats.frames
    qtbot.waitUntil(lambda: pipeline.stats.frames > frames + 2, timeout=WAIT_MS)
    assert window.waterfall.ring.lines_total == lines
    window.close()
    # the recording spans the retunes: one capture segment per centre frequency
    meta = json.loads(recording.read_text())
    freqs = [c["core:frequency"] for c in meta["captures"]]
    assert freqs[0] == 1815e6 and 1860e6 in freqs and freqs[-1] == 1860.96e6
    assert len(open_recording(recording)) > 0


def test_closing_the_window_ends_the_run_with_a_complete_log(
    qtbot: QtBot, untrained_model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("monitor.app.select_runner", lambda model, **kw: BandRunner(0.6))
    log, stats = tmp_path / "occ.csv", tmp_path / "stats.json"
    # the upper edge of the 20 MHz LTE carrier at 1815 MHz (some 12 dB over the floor) in the
    # middle of the view
    window = _open(qtbot, device="synthetic", center_freq=1824e6, sample_rate=1.92e6,
                   model=str(untrained_model), log_path=log, stats=stats)
    run = window.session.run
    assert run is not None
    qtbot.waitUntil(lambda: run.stats.frames_segmented >= 3, timeout=WAIT_MS)
    window.close()
    assert window.session.ended and not window.session.running
    assert not run.runner.is_active
    summary = json.loads(stats.read_text())
    rows = read_log(log)
    assert summary["emissions"] == len(rows) > 0  # the open ones were closed and written
    assert all(r["label"] in ("LTE", "NR") for r in rows)
    assert summary["frames_segmented"] >= 3 and summary["engine"] == "bands"


def test_screenshot_saves_the_window_when_the_replay_ends(
    qapp: object, untrained_model: Path, bands: Path, band_runner: None, tmp_path: Path,
    capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "shot.png"
    status = monitor_main(["--replay", str(bands), "--speed", "max", "--model",
                           str(untrained_model), "--screenshot", str(png)])
    assert status == 0, capsys.readouterr().err
    image = QtGui.QImage(str(png))
    assert not image.isNull() and image.width() >= 640
    assert "replay bands.sigmf-meta" in capsys.readouterr().out


def test_a_screenshot_must_be_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert monitor_main(["--screenshot", str(tmp_path / "shot.jpg")]) == 2
    assert ".png" in capsys.readouterr().err

"""The monitor's main window: the waterfall, its controls, and a status bar.

Threads: the window lives in the GUI thread and never waits on processing. The waterfall polls
``pipeline.latest`` at display rate; a slower timer reads the run's statistics for the status bar
and notices when the worker has finished (end of a replay, ``--duration`` reached, the source
failed). Controls act on the source between its blocks (``retune``), on the recorder under its
lock, or on the display alone (pause, overlay, levels). Closing the window ends the run cleanly
(:meth:`~monitor.gui.session.Session.end`): open emissions closed and logged, outputs written,
radio released; with ``--screenshot`` the window is saved then, after its last frame is drawn.

Shortcuts: Space pause, O overlay, L auto levels, R record, P reset average and peak hold,
+ and - retune by half the sample rate, Ctrl+O open a recording, Ctrl+Q quit.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from PyQt5 import QtCore, QtGui, QtWidgets

from monitor.errors import DeviceError, MonitorError
from monitor.gui.session import Session
from monitor.gui.waterfall import WaterfallWidget
from monitor.occupancy.stats import engine_text

__all__ = ["MonitorWindow"]

log = logging.getLogger(__name__)

RECORDING_FILTER = "Recordings (*.sigmf-meta *.sigmf-data *.sigmf *.wav);;All files (*)"
STATUS_EVERY_S = 0.5


class MonitorWindow(QtWidgets.QMainWindow):
    """The waterfall of a session's runs.

    Args:
        session: a started session.
        screenshot: save the window here (PNG) when the run ends or the window closes; the
            window closes itself once the run has ended.
        lines: waterfall height in display lines.
        bins: waterfall width; None: the frames' width.

    Attributes:
        failure: what went wrong ending a run, raised again by :func:`monitor.gui.app.run_gui`.
    """

    closed = QtCore.pyqtSignal()

    def __init__(self, session: Session, screenshot: Path | None = None, lines: int = 512,
                 bins: int | None = None) -> None:
        super().__init__()
        self.session = session
        self.screenshot = screenshot
        self.failure: BaseException | None = None
        self._closing = False
        self._status_at = 0.0
        self._draws_at = (time.monotonic(), 0)
        self.waterfall = WaterfallWidget(lines, bins,
                                         fit_channels=session.settings.fit_channels)
        self.setCentralWidget(self.waterfall)
        self._build_controls()
        self._build_status()
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(200)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self.resize(1280, 800)
        self._attach()

    # -- building ------------------------------------------------------------------------------

    def _action(self, text: str, keys: tuple[str, ...], slot: Callable[..., object],
                checkable: bool = False, checked: bool = False) -> QtWidgets.QAction:
        action = QtWidgets.QAction(text, self)
        action.setShortcuts([QtGui.QKeySequence(k) for k in keys])
        action.setToolTip(f"{text} ({', '.join(keys)})")
        action.setCheckable(checkable)
        action.setChecked(checked)
        (action.toggled if checkable else action.triggered).connect(slot)
        self.addAction(action)
        return action

    def _build_controls(self) -> None:
        bar = self.addToolBar("controls")
        bar.setMovable(False)
        self.open_action = self._action("Open…", ("Ctrl+O",), self._choose_recording)
        bar.addAction(self.open_action)
        bar.addSeparator()
        self.center_spin = QtWidgets.QDoubleSpinBox()
        self.center_spin.setRange(0.0, 100_000.0)
        self.center_spin.setDecimals(3)
        self.center_spin.setSuffix(" MHz")
        self.center_spin.setKeyboardTracking(False)
        self.center_spin.setToolTip("centre frequency (+ and - step by half the sample rate)")
        self.center_spin.valueChanged.connect(self._retune)
        bar.addWidget(QtWidgets.QLabel(" Centre "))
        bar.addWidget(self.center_spin)
        self.tune_up_action = self._action("Tune up", ("+", "=", "Num++"),
                                           lambda: self.center_spin.stepBy(1))
        self.tune_down_action = self._action("Tune down", ("-", "Num+-"),
                                             lambda: self.center_spin.stepBy(-1))
        self.gain_spin = QtWidgets.QDoubleSpinBox()
        self.gain_spin.setRange(-1.0, 80.0)
        self.gain_spin.setSingleStep(1.0)
        self.gain_spin.setDecimals(1)
        self.gain_spin.setSpecialValueText("auto")
        self.gain_spin.setSuffix(" dB")
        self.gain_spin.setValue(self.gain_spin.minimum())
        self.gain_spin.setKeyboardTracking(False)
        self.gain_spin.valueChanged.connect(self._set_gain)
        bar.addWidget(QtWidgets.QLabel(" Gain "))
        bar.addWidget(self.gain_spin)
        bar.addSeparator()
        self.pause_action = self._action("Pause", ("Space",), self.waterfall.set_paused,
                                         checkable=True)
        bar.addAction(self.pause_action)
        self.overlay_action = self._action("Overlay", ("O",), self._show_overlay,
                                           checkable=True, checked=True)
        bar.addAction(self.overlay_action)
        self.opacity_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(round(self.waterfall.overlay.opacity() * 100))
        self.opacity_slider.setFixedWidth(100)
        self.opacity_slider.setToolTip("overlay opacity")
        self.opacity_slider.valueChanged.connect(
            lambda v: self.waterfall.set_overlay_opacity(v / 100))
        bar.addWidget(self.opacity_slider)
        bar.addSeparator()
        self.levels_action = self._action("Auto levels", ("L",), self._auto_levels,
                                          checkable=True, checked=True)
        bar.addAction(self.levels_action)
        self.level_spins = (QtWidgets.QDoubleSpinBox(), QtWidgets.QDoubleSpinBox())
        for spin, tip in zip(self.level_spins, ("black at", "white at"), strict=True):
            spin.setRange(-200.0, 50.0)
            spin.setDecimals(1)
            spin.setSuffix(" dB")
            spin.setKeyboardTracking(False)
            spin.setToolTip(f"colour levels: {tip} (fixed levels)")
            spin.setEnabled(False)
            spin.valueChanged.connect(self._fixed_levels)
            bar.addWidget(spin)
        self._action("Reset traces", ("P",), self.waterfall.reset_traces)
        bar.addSeparator()
        self.record_action = self._action("Record", ("R",), self._record, checkable=True)
        bar.addAction(self.record_action)
        self._action("Quit", ("Ctrl+Q",), self.close)

    def _build_status(self) -> None:
        names = ("state", "source", "center", "rate", "engine", "realtime", "dropped",
                 "segmented", "fps", "recording")
        self.status_fields = {name: QtWidgets.QLabel() for name in names}
        for label in self.status_fields.values():
            self.statusBar().addPermanentWidget(label)

    def _attach(self) -> None:
        """Show the session's current run: follow its pipeline, set the controls it allows."""
        run = self.session.run
        assert run is not None
        pipeline = run.pipeline
        self.waterfall.follow(lambda: pipeline.latest, run.geometry.samples_per_row)
        source = run.source
        self.setWindowTitle(f"prmnet-monitor: {source.describe()}")
        with QtCore.QSignalBlocker(self.center_spin):
            self.center_spin.setValue(source.center_freq / 1e6)
        self.center_spin.setSingleStep(source.sample_rate / 2e6)
        retune = self.session.can_retune
        self.center_spin.setEnabled(retune)
        self.center_spin.setToolTip("centre frequency (+ and - step by half the sample rate)"
                                    if retune else f"{source.describe()} cannot be retuned")
        gain = self.session.can_set_gain
        with QtCore.QSignalBlocker(self.gain_spin):
            self.gain_spin.setValue(_gain_value(run.settings.gain, self.gain_spin.minimum()))
        self.gain_spin.setEnabled(gain)
        self.gain_spin.setToolTip("tuner gain" if gain else
                                  f"{source.describe()} has no live gain control")
        recorder = self.session.recorder
        with QtCore.QSignalBlocker(self.record_action):
            self.record_action.setChecked(recorder is not None and recorder.path is not None)
        self.record_action.setEnabled(True)
        self._update_status()

    # -- controls ------------------------------------------------------------------------------

    def _retune(self, mhz: float) -> None:
        try:
            self.session.retune(mhz * 1e6)
        except MonitorError as exc:
            self.statusBar().showMessage(str(exc), 10_000)

    def _set_gain(self, value: float) -> None:
        gain: float | str = "auto" if value <= self.gain_spin.minimum() else value
        try:
            self.session.set_gain(gain)
        except MonitorError as exc:
            self.statusBar().showMessage(str(exc), 10_000)

    def _show_overlay(self, visible: bool) -> None:
        self.waterfall.set_overlay_visible(visible)
        self.opacity_slider.setEnabled(visible)

    def _auto_levels(self, auto: bool) -> None:
        self.waterfall.set_auto_levels(auto)
        self._show_levels()
        for spin in self.level_spins:
            spin.setEnabled(not auto)

    def _fixed_levels(self) -> None:
        low, high = (spin.value() for spin in self.level_spins)
        if high > low:
            self.waterfall.set_levels(low, high)

    def _show_levels(self) -> None:
        for spin, value in zip(self.level_spins, self.waterfall.ring.levels, strict=True):
            with QtCore.QSignalBlocker(spin):
                spin.setValue(value)

    def _record(self, on: bool) -> None:
        recorder = self.session.recorder
        if recorder is None or self.session.ended:
            return
        try:
            if on:
                path = recorder.start()
                self.statusBar().showMessage(f"recording to {path}", 5_000)
            else:
                path = recorder.stop()
                self.statusBar().showMessage(f"recorded {path}", 10_000)
        except MonitorError as exc:
            self.statusBar().showMessage(str(exc), 10_000)
            with QtCore.QSignalBlocker(self.record_action):
                self.record_action.setChecked(False)
        self._update_status()

    def _choose_recording(self) -> None:
        name, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open a recording", "",
                                                        RECORDING_FILTER)
        if name:
            self.open_recording(Path(name))

    def open_recording(self, path: Path) -> bool:
        """End the current run and replay ``path``; False (and a message) if it cannot be
        replayed, the current run going on."""
        try:
            self.session.open_recording(path)
        except MonitorError as exc:
            self.statusBar().showMessage(f"cannot open {path}: {exc}", 15_000)
            return False
        self._attach()
        return True

    # -- the run -------------------------------------------------------------------------------

    def _tick(self) -> None:
        if not self.session.ended and not self.session.running:
            self._run_ended()
        if time.monotonic() - self._status_at >= STATUS_EVERY_S:
            self._update_status()

    def _run_ended(self) -> None:
        """The worker finished by itself: draw the last frame, write the outputs."""
        self._end_run()
        for control in (self.record_action, self.center_spin, self.gain_spin):
            control.setEnabled(False)
        if self.screenshot is not None or self.failure is not None:
            self.close()

    def _end_run(self) -> None:
        try:
            self.session.end()
        except Exception as exc:  # raised again by run_gui once the window has closed
            log.error("run failed: %s", exc)
            self.failure = self.failure or exc
        if not self.waterfall.paused:
            self.waterfall.poll()
        self._update_status()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        """End the run cleanly, save the screenshot, then close."""
        if not self._closing:
            self._closing = True
            self._timer.stop()
            self._end_run()
            self.waterfall.stop_following()
            if self.screenshot is not None:
                self._save_screenshot(self.screenshot)
            self.closed.emit()
        event.accept()

    def _save_screenshot(self, path: Path) -> None:
        partial = path.with_name(f".{path.name}.partial")
        if self.grab().save(str(partial), "PNG"):
            os.replace(partial, path)
            log.info("saved the window to %s", path)
        else:
            partial.unlink(missing_ok=True)
            self.failure = self.failure or DeviceError(f"cannot write screenshot {path}")

    def _update_status(self) -> None:
        self._status_at = now = time.monotonic()
        run = self.session.run
        if run is None:
            return
        stats = run.stats.to_dict()
        fields = self.status_fields
        state = ("ended" if self.session.ended else
                 "paused" if self.waterfall.paused else "running")
        fields["state"].setText(state)
        fields["source"].setText(stats["source"])
        fields["center"].setText(f"{run.source.center_freq / 1e6:.3f} MHz")
        fields["rate"].setText(f"{run.source.sample_rate / 1e6:g} MS/s")
        fields["engine"].setText(engine_text(stats))
        rtf = stats["realtime_factor"]
        fields["realtime"].setText(f"{rtf:.2f}x real time" if rtf is not None else "")
        fields["dropped"].setText(f"{stats['samples_dropped']} dropped")
        share = stats["frames_segmented"] / stats["frames"] if stats["frames"] else 1.0
        fields["segmented"].setText(f"{share:.0%} segmented")
        then, draws = self._draws_at
        if now - then >= 1.0:
            fps = (self.waterfall.draws - draws) / (now - then)
            fields["fps"].setText(f"{fps:.0f} fps")
            self._draws_at = (now, self.waterfall.draws)
        recorder = self.session.recorder
        path = recorder.path if recorder is not None else None
        fields["recording"].setText(f"● REC {path.name}" if path is not None else "")
        if self.waterfall.auto_levels:
            self._show_levels()


def _gain_value(gain: str, auto: float) -> float:
    """The gain box's value for ``--gain``: its number of dB, or ``auto`` (the box's minimum)."""
    try:
        return float(gain)
    except ValueError:
        return auto

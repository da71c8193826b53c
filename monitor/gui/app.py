"""``prmnet-monitor`` with the window: the run assembled as headless, processed in a worker
thread, drawn by the GUI thread.

Qt is imported only once a display and the GUI packages are known to be there, so a machine
without them gets one line saying how to run headless (exit status 2), not a traceback.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.app import MonitorSettings, restore_signals, stop_on_signals
from monitor.errors import InputError
from monitor.occupancy.logs import validate_output_path
from monitor.occupancy.stats import RunStats

if TYPE_CHECKING:
    from monitor.gui.window import MonitorWindow

__all__ = ["check_gui", "open_window", "run_gui"]

GUI_PACKAGES = ("PyQt5", "pyqtgraph")


def check_gui(screenshot: Path | None = None) -> None:
    """Check, before anything is opened, that the window can be shown and saved.

    Raises:
        InputError: no display (Linux without DISPLAY, WAYLAND_DISPLAY or QT_QPA_PLATFORM), the
            GUI packages missing, or a screenshot path that is not a writable ``.png``.
    """
    missing = [name for name in GUI_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(f"the window needs {' and '.join(missing)}: install them with "
                         "pip install 'prmnet-monitor[gui]', or run with --headless")
    if sys.platform.startswith("linux") and not any(
            os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        raise InputError("no display to show the window on (DISPLAY is not set): run with "
                         "--headless, or draw off screen with QT_QPA_PLATFORM=offscreen "
                         "and --screenshot PNG")
    if screenshot is not None:
        if screenshot.suffix.lower() != ".png":
            raise InputError(f"--screenshot {screenshot}: the window is saved as PNG; name a "
                             ".png file")
        validate_output_path(screenshot, "screenshot")


def open_window(s: MonitorSettings, lines: int = 512, bins: int | None = None) -> MonitorWindow:
    """Start the run ``s`` describes and show its window (a QApplication must exist).

    Raises:
        InputError: bad settings, found before anything is written or shown.
        DeviceError: a radio or the machine failed.
    """
    from monitor.gui.session import Session
    from monitor.gui.window import MonitorWindow

    session = Session(s)
    session.start()
    try:
        window = MonitorWindow(session, s.screenshot, lines=lines, bins=bins)
    except BaseException:
        session.end()
        raise
    window.show()
    return window


def run_gui(s: MonitorSettings) -> RunStats:
    """Run the monitor with its window until the window closes; return the statistics of the
    last run.

    The window closes itself when the run ends if ``s.screenshot`` is set (after saving it);
    otherwise it stays open on the last frame until the user closes it. SIGINT and SIGTERM close
    it, ending the run cleanly.

    Raises:
        InputError: bad settings, no display, or no GUI packages; found before anything is
            written.
        DeviceError: a radio or the machine failed.
    """
    check_gui(s.screenshot)
    from PyQt5 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0]])
    app.setApplicationName("prmnet-monitor")
    window = open_window(s)
    previous = stop_on_signals(window.close)
    try:
        loop = QtCore.QEventLoop()
        window.closed.connect(loop.quit)
        loop.exec_()
    finally:
        restore_signals(previous)
        window.close()
    if window.failure is not None:
        raise window.failure
    stats = window.session.stats
    assert stats is not None
    return stats

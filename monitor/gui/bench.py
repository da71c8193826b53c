"""``prmnet bench gui``: how many frames per second the waterfall can draw on this machine.

The waterfall widget (the window's central widget: spectrum, waterfall, overlay, labels) is shown
offscreen in a window of the usual size and follows a feeder thread that publishes synthetic
frames far faster than any radio would (a new frame every millisecond, each one advancing the
stream by ``new_rows`` rows), with two carriers segmented in them and the overlay on. The widget
polls with a zero-interval timer, so every pass of the event loop draws: the draws per second
are the display frame rate this machine sustains, the ceiling under the 60 Hz the window asks
for. Qt, torch and the monitor are imported only when the benchmark runs, so adding the command
to ``prmnet bench`` costs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from PyQt5 import QtWidgets

    from monitor.gui.waterfall import WaterfallWidget
    from monitor.processing import FrameResult

__all__ = ["add_bench_gui_command", "bench_gui"]

SAMPLES_PER_ROW = 3000  # a row of the 40 ms, 256-row geometry at 19.2 MS/s
SAMPLE_RATE = 19.2e6
CENTER_FREQ = 1.84e9


def bench_gui(bins: int = 1024, lines: int = 512, seconds: float = 5.0, new_rows: int = 32,
              rows_per_line: int = 32, size: tuple[int, int] = (1280, 800)) -> list[dict]:
    """Draw ``bins`` x ``lines`` waterfalls with the overlay on for ``seconds``; one result row.

    Args:
        bins: waterfall width (the frames are made this wide).
        lines: waterfall height in display lines.
        seconds: how long to draw.
        new_rows: rows each published frame adds.
        rows_per_line: rows per display line.
        size: the window's size in pixels.
    """
    from monitor.gui.app import check_gui

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    check_gui()
    from PyQt5 import QtCore, QtWidgets

    from monitor.gui.waterfall import WaterfallWidget

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0]])
    widget = WaterfallWidget(lines, bins, rows_per_line, display_hz=0)
    window = QtWidgets.QMainWindow()
    window.setCentralWidget(widget)
    window.resize(*size)
    window.show()
    paints = _count_paints(widget.viewport())
    feeder = _Feeder(bins, new_rows)
    feeder.start()
    try:
        widget.follow(lambda: feeder.latest, SAMPLES_PER_ROW)
        start_draws = widget.draws
        started = time.perf_counter()
        loop = QtCore.QEventLoop()
        QtCore.QTimer.singleShot(round(seconds * 1000), loop.quit)
        loop.exec_()
        elapsed = time.perf_counter() - started
        draws, painted = widget.draws - start_draws, paints()
        widget.stop_following()
    finally:
        feeder.stop()
    update_s = _time_updates(widget, bins, new_rows)
    window.close()
    return [{
        "what": "waterfall draw",
        "bins": bins,
        "lines": lines,
        "overlay": widget.overlay.isVisible(),
        "window": f"{size[0]}x{size[1]}",
        "seconds": round(elapsed, 2),
        "draws": draws,
        "draws_per_s": round(draws / elapsed, 1),
        "ms_per_draw": round(elapsed / max(draws, 1) * 1e3, 2),
        "paints_per_s": round(painted / elapsed, 1),
        "update_ms": round(update_s * 1e3, 2),
        "platform": app.platformName(),
        "cores": os.cpu_count(),
    }]


def _frames(bins: int, count: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Frames of a noise floor with an LTE carrier and an NR carrier, segmented."""
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        db = rng.normal(-90.0, 3.0, (256, bins)).astype(np.float32)
        classes = np.zeros((256, bins), np.uint8)
        for cls, (low, high) in ((1, (0.15, 0.35)), (2, (0.55, 0.8))):
            span = slice(round(low * bins), round(high * bins))
            db[:, span] += 25.0
            classes[:, span] = cls
        out.append((torch.from_numpy(db), torch.from_numpy(classes)))
    return out


class _Feeder:
    """Publishes a new frame every millisecond in its own thread (as the pipeline would)."""

    def __init__(self, bins: int, new_rows: int) -> None:
        self.latest: FrameResult | None = None
        self._frames = _frames(bins)
        self._new_rows = new_rows
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-feeder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        from monitor.processing import FrameResult

        end = 256
        while not self._stop.wait(0.001):
            db, classes = self._frames[end % len(self._frames)]
            self.latest = FrameResult(db, classes, CENTER_FREQ, SAMPLE_RATE,
                                      end * SAMPLES_PER_ROW)
            end += self._new_rows


def _time_updates(widget: WaterfallWidget, bins: int, new_rows: int, count: int = 50) -> float:
    """Mean seconds the widget spends taking a frame and updating its items, without painting."""
    from monitor.processing import FrameResult

    frames = _frames(bins, 2)
    end = 10**9  # a new stream: the history starts again
    started = time.perf_counter()
    for i in range(count):
        db, classes = frames[i % 2]
        frame = FrameResult(db, classes, CENTER_FREQ, SAMPLE_RATE,
                            (end + i * new_rows) * SAMPLES_PER_ROW)
        widget.draw(frame, SAMPLES_PER_ROW)
    return (time.perf_counter() - started) / count


def _count_paints(target: QtWidgets.QWidget) -> Callable[[], int]:
    """Count the paint events ``target`` receives from now on; returns the count so far."""
    from PyQt5 import QtCore

    count = [0]

    class PaintCounter(QtCore.QObject):
        def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:
            if event.type() == QtCore.QEvent.Type.Paint:
                count[0] += 1
            return False

    counter = PaintCounter(target)
    target.installEventFilter(counter)
    return lambda: count[0]


def add_bench_gui_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``gui`` to ``prmnet bench``'s targets."""
    p = subparsers.add_parser("gui", help="the waterfall: display frames per second, offscreen")
    p.add_argument("--bins", type=int, default=1024, help="waterfall width (default 1024)")
    p.add_argument("--lines", type=int, default=512, help="waterfall height (default 512)")
    p.add_argument("--seconds", type=float, default=5.0, help="how long to draw (default 5)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.set_defaults(func=_bench_gui_command)


def _bench_gui_command(args: argparse.Namespace) -> int:
    from monitor.bench import format_table

    rows = bench_gui(args.bins, args.lines, args.seconds)
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0

"""The runs behind the window, one at a time, each processed in its own worker thread.

A run is assembled exactly as headless (:func:`monitor.app.prepare_run`); a worker thread calls
``pipeline.run`` and the window only reads what the pipeline publishes (``pipeline.latest``,
``stats``). :meth:`Session.end` stops the run, waits for the worker, writes the run's outputs
(log, annotations, statistics, recording) and releases the runner and the source.

Opening a recording from the window prepares the new run first (a file that cannot be replayed
leaves the current run going), then ends the current run and starts the new one. The outputs
named on the command line (``--log``, ``--annotate``, ``--stats``, ``--record``) belong to the
first run; a recording opened from the window is shown, not logged.
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from monitor.app import MonitorSettings, PreparedRun, prepare_run
from monitor.gui.recorder import Recorder
from monitor.occupancy.logs import validate_output_path
from monitor.occupancy.stats import RunStats
from monitor.sources.base import Source

__all__ = ["GainControl", "Session"]

log = logging.getLogger(__name__)


@runtime_checkable
class GainControl(Protocol):
    """A source whose gain can change while it streams."""

    def set_gain(self, gain: float | str) -> None:
        """``"auto"`` or dB."""


class Session:
    """The current run of the window and how to end it or replace it.

    Args:
        settings: the first run's settings (the command line).

    Attributes:
        run: the current run (after :meth:`end`, the last one); None before :meth:`start`.
        recorder: the current run's recorder.
        stats: the statistics of the last run ended; None while the first one goes.
    """

    def __init__(self, settings: MonitorSettings) -> None:
        self.settings = settings
        self.run: PreparedRun | None = None
        self.recorder: Recorder | None = None
        self.stats: RunStats | None = None
        self._stack: ExitStack | None = None
        self._worker: threading.Thread | None = None
        self._failure: BaseException | None = None

    def start(self) -> None:
        """Start the first run.

        Raises:
            InputError: bad settings, found before anything is written.
            DeviceError: a radio or the machine failed.
        """
        self._launch(*self._prepare(self.settings))

    @property
    def running(self) -> bool:
        """The worker is processing (False once the source ended or the run was stopped)."""
        return self._worker is not None and self._worker.is_alive()

    @property
    def ended(self) -> bool:
        """:meth:`end` has run for the current run (or nothing was started)."""
        return self._stack is None

    @property
    def source(self) -> Source:
        if self.run is None:
            raise RuntimeError("no run started")
        return self.run.source

    @property
    def can_retune(self) -> bool:
        """The source takes a new centre frequency while it streams (radios, synthetic)."""
        return self.run is not None and type(self.source).retune is not Source.retune

    @property
    def can_set_gain(self) -> bool:
        """The source's gain can change while it streams (see :class:`GainControl`)."""
        return self.run is not None and isinstance(self.source, GainControl)

    def retune(self, center_freq: float) -> None:
        """Ask the source for a new centre frequency (taken up between blocks).

        Raises:
            InputError: this source cannot be retuned, or not to there.
        """
        self.source.retune(center_freq)

    def set_gain(self, gain: float | str) -> None:
        """Set the source's gain.

        Raises:
            RuntimeError: the source has no live gain control (see :attr:`can_set_gain`).
        """
        source = self.source
        if not isinstance(source, GainControl):
            raise RuntimeError(f"{source.describe()} has no live gain control")
        source.set_gain(gain)

    def open_recording(self, path: Path) -> None:
        """End the current run and replay ``path`` instead (shown, not logged).

        Raises:
            InputError: ``path`` cannot be replayed; the current run goes on.
        """
        s = replace(self.settings, replay=path, device=None, datatype=None, sample_rate=None,
                    center_freq=None, duration=None, log_path=None, annotate=None, record=None,
                    stats=None)
        prepared = self._prepare(s)
        try:
            self.end()
        except BaseException:
            prepared[0].close()
            raise
        self._launch(*prepared)

    def end(self) -> RunStats | None:
        """Stop the current run if it goes, wait for its worker, write its outputs and release
        its source and runner; returns its statistics. Does nothing once the run has ended.

        Raises:
            DeviceError: the source failed during the run (its outputs are written first).
        """
        stack, run, worker = self._stack, self.run, self._worker
        if stack is None or run is None or worker is None:
            return self.stats
        self._stack = None
        try:
            run.pipeline.stop()
            worker.join()
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            self.stats = run.finish()
        finally:
            stack.close()
        return self.stats

    def _prepare(self, s: MonitorSettings) -> tuple[ExitStack, PreparedRun, Recorder]:
        """A run assembled (its recorder in the pipeline), with what releases it."""
        if s.record is not None:
            validate_output_path(s.record, "recording")
        stack = ExitStack()
        try:
            run = stack.enter_context(prepare_run(replace(s, record=None)))
            folder = s.record.parent if s.record is not None else Path.cwd()
            recorder = Recorder(run.source.sample_rate, run.source.center_freq, folder)
            if s.record is not None:
                recorder.start(s.record)
            run.pipeline.block_sinks.append(recorder)
        except BaseException:
            stack.close()
            raise
        return stack, run, recorder

    def _launch(self, stack: ExitStack, run: PreparedRun, recorder: Recorder) -> None:
        self._stack, self.run, self.recorder = stack, run, recorder
        duration = run.settings.duration
        self._worker = threading.Thread(target=self._work, args=(run, duration),
                                        name="pipeline", daemon=True)
        self._worker.start()

    def _work(self, run: PreparedRun, duration: float | None) -> None:
        """The worker thread: the whole run; what ends it early is raised again by :meth:`end`."""
        try:
            run.pipeline.run(duration)
        except BaseException as exc:
            log.error("processing failed: %s", exc)
            self._failure = exc

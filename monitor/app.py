"""A monitor run from its settings: the source, the engine, the sinks, and the run itself.

Everything a user can get wrong is checked before the first sample is read (the recording opens,
the model serves its rate, every output path is writable), so bad input ends in one line and no
output file; from then on every emission is written as it closes, and SIGINT or SIGTERM end the
run cleanly: open emissions closed and written, annotations and statistics saved.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from engines.backends.base import Runner
from engines.models import LoadedModel, load_model
from engines.selection import resolve_device, select_runner
from monitor.dsp.geometry import Geometry
from monitor.errors import DeviceError, InputError
from monitor.occupancy.annotations import validate_annotation_path, write_annotations
from monitor.occupancy.emission import Emission
from monitor.occupancy.logs import open_log, validate_log_path, validate_output_path
from monitor.occupancy.stats import RunStats
from monitor.occupancy.tracker import DEFAULT_MIN_CONFIDENCE
from monitor.pipeline import Pipeline
from monitor.processing import Processor
from monitor.recordings import StreamingRecording
from monitor.sources.base import Source
from monitor.sources.files import open_recording
from monitor.sources.replay import ReplaySource

__all__ = ["MonitorSettings", "PreparedRun", "open_source", "prepare_run", "restore_signals",
           "run_monitor", "stop_on_signals"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorSettings:
    """What a run was asked to do (the command line, parsed)."""

    device: str | None = None
    center_freq: float | None = None
    sample_rate: float | None = None
    gain: str = "auto"
    ppm: int = 0
    replay: Path | None = None
    datatype: str | None = None
    speed: float | None = None
    loop: bool = False
    model: str | None = None
    engine: str = "auto"
    precision: str = "auto"
    compute: str = "auto"
    headless: bool = True
    duration: float | None = None
    log_path: Path | None = None
    annotate: Path | None = None
    record: Path | None = None
    stats: Path | None = None
    screenshot: Path | None = None
    hop: int | None = None
    close_after: float = 0.25
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    fit_channels: bool = True
    raw_classes: bool = False
    seed: int = 0


class _Collector:
    """Keeps every emission, for the SigMF annotations written at the end."""

    def __init__(self) -> None:
        self.emissions: list[Emission] = []

    def write(self, emission: Emission) -> None:
        self.emissions.append(emission)

    def close(self) -> None:
        pass


def open_source(s: MonitorSettings) -> Source:
    """The source the settings name (not opened yet).

    Raises:
        InputError: for a recording or a device that cannot be used as given.
    """
    if s.replay is not None:
        if s.datatype is not None and s.sample_rate is None:
            raise InputError("--format needs --rate (and --fc) to read a raw recording")
        rec = open_recording(s.replay, s.datatype, s.sample_rate, s.center_freq)
        return ReplaySource(rec, speed=s.speed, loop=s.loop)
    device = s.device or "synthetic"
    if device == "synthetic":
        from monitor.sources.synthetic import SyntheticSource

        return SyntheticSource(center_freq=s.center_freq or 1.84e9,
                               sample_rate=s.sample_rate or 30.72e6, seed=s.seed)
    from monitor.sources.radio import open_radio

    return open_radio(device, center_freq=s.center_freq, sample_rate=s.sample_rate,
                      gain=s.gain, ppm=s.ppm)


def run_monitor(s: MonitorSettings) -> RunStats:
    """Run the monitor headless with the given settings; return its statistics.

    Raises:
        InputError: bad settings, found before anything is written.
        DeviceError: a radio or the machine failed.
    """
    with prepare_run(s) as run:
        previous = stop_on_signals(run.pipeline.stop)
        try:
            run.pipeline.run(s.duration)
        finally:
            restore_signals(previous)
        return run.finish()


@dataclass
class PreparedRun:
    """A run assembled and ready to start: call ``pipeline.run`` (in any one thread), then
    :meth:`finish`.

    Attributes:
        settings: what the run was asked to do.
        source: the opened source.
        runner: the active runner.
        model: the model it runs.
        geometry: the model's geometry at the source's rate.
        pipeline: source to sinks, not started.
    """

    settings: MonitorSettings
    source: Source
    runner: Runner
    model: LoadedModel
    geometry: Geometry
    pipeline: Pipeline
    _collector: _Collector

    @property
    def stats(self) -> RunStats:
        return self.pipeline.stats

    def finish(self) -> RunStats:
        """After ``pipeline.run`` returned: write the annotations and the statistics.

        Raises:
            DeviceError: the source failed during the run (what was seen is written first).
        """
        s, source = self.settings, self.source
        if s.annotate is not None:
            emissions = self._collector.emissions
            source_meta = None
            if isinstance(source, ReplaySource):
                # annotations index the recording's samples: with --loop, only the first pass
                source_meta = source.recording.meta
                within = [e for e in emissions
                          if e.start_sample + e.sample_count <= len(source.recording)]
                if len(within) < len(emissions):
                    log.info("annotating the first pass of the recording: %d of %d emissions",
                             len(within), len(emissions))
                emissions = within
            write_annotations(s.annotate, emissions, sample_rate=source.sample_rate,
                              center_freq=source.center_freq, source_meta=source_meta)
        if s.stats is not None:
            self.stats.write(s.stats)
        if self.pipeline.error:
            raise DeviceError(f"{source.describe()} failed: {self.pipeline.error}")
        return self.stats


@contextmanager
def prepare_run(s: MonitorSettings) -> Iterator[PreparedRun]:
    """Check the settings, open the source, load the model, activate the runner, and assemble
    the pipeline with its sinks; the runner and the source are released on leaving.

    Raises:
        InputError: bad settings, found before anything is written.
        DeviceError: a radio or the machine failed.
    """
    for path, check in ((s.log_path, validate_log_path), (s.annotate, validate_annotation_path),
                        (s.stats, lambda p: validate_output_path(p, "stats file")),
                        (s.record, lambda p: validate_output_path(p, "recording"))):
        if path is not None:
            check(path)
    source = open_source(s)
    source.open()  # a missing radio is reported before anything else about it
    try:
        gpu = resolve_device(s.compute).type == "cuda"
        model = load_model(s.model, source.sample_rate, gpu=gpu)
        geometry = model.geometry(source.sample_rate)
        runner = select_runner(model, engine=s.engine, precision=s.precision,
                               compute=s.compute)
        with runner:
            hop = s.hop or (geometry.height if runner.device.type == "cpu"
                            else geometry.height // 2)
            collector = _Collector()
            sinks: list = [collector]
            if s.log_path is not None:
                sinks.append(open_log(s.log_path))
            block_sinks = []
            if s.record is not None:
                block_sinks.append(StreamingRecording(s.record, source.sample_rate,
                                                      source.center_freq))
            processor = Processor(runner, geometry, hop, s.close_after, s.min_confidence,
                                  s.fit_channels, s.raw_classes)
            stats = RunStats(source=source.describe(), sample_rate=source.sample_rate,
                             center_freq=source.center_freq, engine=runner.name,
                             precision=runner.precision, compute_device=str(runner.device),
                             model=model.name, compiled=runner.compiled)
            pipeline = Pipeline(source, processor, stats, sinks, block_sinks)
            yield PreparedRun(s, source, runner, model, geometry, pipeline, collector)
    finally:
        source.close()


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals(stop: Callable[[], None]) -> dict[int, object]:
    """SIGINT and SIGTERM call ``stop`` (main thread only; elsewhere nothing changes); returns
    the handlers to give back to :func:`restore_signals`."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("%s: closing open emissions and stopping", signal.Signals(signum).name)
        stop()

    return {sig: signal.signal(sig, handler) for sig in _SIGNALS}


def restore_signals(previous: dict[int, object]) -> None:
    """Put back the handlers :func:`stop_on_signals` replaced."""
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]

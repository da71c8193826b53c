"""The processing chain without threads: IQ blocks in, spectrogram rows, segmented frames and
closed emissions out.

:class:`Processor` is fed one :class:`~monitor.sources.base.IQBlock` at a time. Each block's
samples become spectrogram rows on the compute device; every ``hop`` rows a frame (the newest
``height`` rows) is due. A due frame is segmented unless the caller says processing is behind:
then it is skipped and counted, and the next segmented frame covers the skipped rows (up to a
frame's worth), so skipping costs time resolution before it costs coverage. The rows segmented
since the last frame go to the tracker, which returns the emissions that closed.

On CUDA the samples reach the device through pinned host buffers
(:class:`~monitor.dsp.staging.HostToDevice`) and all the processor's device work (copy,
spectrogram, frame, network) is queued on one stream of its own, which the engines order
themselves after; only what the tracker reads, the new rows' probabilities and powers and the
frame's classes, comes back to the host.

The classes published and tracked are the carriers' (:func:`~monitor.occupancy.tracker.
carrier_classes`: every signal pixel of a carrier takes the class its columns vote for, a
carrier an LTE cell's PSS names is LTE, one an NR cell's SSB names NR), unless
``raw_classes`` asks for each pixel's own. The cells are searched in the host's copy of the
newest frame's samples every few seconds of stream (:class:`~monitor.occupancy.cells.
CellWatch`): live, on a thread of their own; in a replay, in the frame the search falls on,
which then takes longer.

A break in the stream (lost samples, seen as a jump in sample indices whatever lost them; a
retune) ends the current stretch: open emissions close,
partial rows and the frame history are dropped, and rows start again from the next block.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from engines.backends.base import Runner
from monitor.dsp.frames import RollingFrames, pad_rows
from monitor.dsp.geometry import Geometry
from monitor.dsp.spectrogram import Spectrogram, StreamingSpectrogram, network_input
from monitor.dsp.staging import HostToDevice
from monitor.occupancy.cells import NO_CELLS, SEARCH_EVERY, CellWatch, FrameCells, cell_marks
from monitor.occupancy.emission import Emission
from monitor.occupancy.tracker import NO_MARKS, StreamClock, Tracker, carrier_classes
from monitor.sources.base import IQBlock

__all__ = ["FrameResult", "Processor", "ProcessorCounts"]


@dataclass
class ProcessorCounts:
    """What the processor has done; read by the statistics."""

    samples: int = 0
    rows: int = 0
    frames: int = 0
    frames_segmented: int = 0
    frames_skipped: int = 0
    breaks: int = 0
    samples_lost: int = 0
    retunes: int = 0
    segment_seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class FrameResult:
    """The newest segmented frame, published for display.

    Attributes:
        rows_db: (rows, width) dBFS, on the compute device.
        classes: (rows, width) uint8 class per pixel, on the host (raw classes: the winning
            class of each pixel, on the compute device); None for a frame skipped to keep up
            (published for display only).
        center_freq: RF centre of the view.
        sample_rate: samples per second.
        end_sample: absolute index of the sample after the frame's last row.
        cells: the LTE and NR cells in force (:class:`~monitor.occupancy.cells.CellWatch`).
    """

    rows_db: torch.Tensor
    classes: torch.Tensor | None
    center_freq: float
    sample_rate: float
    end_sample: int
    cells: FrameCells = NO_CELLS


class Processor:
    """Blocks to emissions.

    Args:
        runner: an active runner.
        geometry: the model's geometry at the stream's sample rate.
        hop: rows between frames (``height`` for frames that do not overlap).
        close_after: seconds an emission may go unseen before it closes.
        min_confidence: emissions less confident than this are counted, not returned.
        fit_channels: log an emission wholly in view as the nominal 3GPP channel nearest to it.
        raw_classes: publish and track every pixel's own class; by default each carrier's
            pixels take the carrier's class (:func:`~monitor.occupancy.tracker.carrier_classes`).
        cell_search_every: seconds of stream between two searches for LTE and NR cells
            (:class:`~monitor.occupancy.cells.CellWatch`), whose PSS or SSB names their
            carriers; None: no search.
        cell_background: search on a thread of the search's own (a live stream), not in the
            frame the search falls on (a replay: the same classes on every machine); the
            pipeline sets it from its source when it runs.
    """

    def __init__(self, runner: Runner, geometry: Geometry, hop: int,
                 close_after: float = 0.25, min_confidence: float = 0.0,
                 fit_channels: bool = False, raw_classes: bool = False,
                 cell_search_every: float | None = SEARCH_EVERY,
                 cell_background: bool = False) -> None:
        if not 1 <= hop <= geometry.height:
            raise ValueError(f"hop must be 1-{geometry.height} rows, got {hop}")
        self.runner = runner
        self.geometry = geometry
        self.hop = hop
        self.raw_classes = raw_classes
        device = runner.device
        self._to_device = HostToDevice(device)
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._spectrogram = StreamingSpectrogram(Spectrogram(geometry, device))
        self._frames = RollingFrames(geometry.height, geometry.width, device)
        self.tracker = Tracker(geometry, 0.0, close_after, min_confidence, fit_channels)
        self.cells = (None if cell_search_every is None or raw_classes
                      else CellWatch(geometry, cell_search_every, cell_background))
        self.counts = ProcessorCounts()
        self.latest: FrameResult | None = None
        self._stretch_rows = 0      # rows in the current stretch
        self._tracked_rows = 0      # rows of the current stretch handed to the tracker
        self._next_frame_row = geometry.height  # stretch row count at which a frame is due
        self._next_sample: int | None = None  # first sample of the block expected next
        self._clock: StreamClock | None = None
        self._center_freq = 0.0

    @contextmanager
    def _on_stream(self) -> Iterator[None]:
        """The processor's CUDA stream as the current one (nothing on the CPU)."""
        if self._stream is None:
            yield
            return
        with torch.cuda.stream(self._stream):
            yield

    def feed(self, block: IQBlock, behind: bool = False) -> list[Emission]:
        """Process one block; ``behind``: skip the frames that fall due in it (the caller is
        falling behind)."""
        with self._on_stream():
            return self._feed(block, behind)

    def _feed(self, block: IQBlock, behind: bool) -> list[Emission]:
        closed: list[Emission] = []
        gap = 0 if self._next_sample is None else block.first_sample - self._next_sample
        if self._clock is None or gap or block.retuned:
            closed += self._start_stretch(block, gap)
        self._next_sample = block.end_sample
        self.counts.samples += len(block.samples)
        if self.cells is not None:
            self.cells.push(block.samples)
        rows = self._spectrogram.push(self._to_device(block.samples))
        self.counts.rows += rows.shape[0]
        done = 0
        while done < rows.shape[0]:
            take = min(rows.shape[0] - done, self._next_frame_row - self._stretch_rows)
            self._frames.push(rows[done : done + take])
            self._stretch_rows += take
            done += take
            if self._stretch_rows == self._next_frame_row:
                self._next_frame_row += self.hop
                self.counts.frames += 1
                if behind:
                    self.counts.frames_skipped += 1
                    self.latest = self._result(self._frames.frame(), None)
                else:
                    closed += self._segment()
        return closed

    def finish(self) -> list[Emission]:
        """End of the stream: segment the rows not yet covered, close every emission."""
        closed: list[Emission] = []
        if self._stretch_rows > self._tracked_rows:
            self.counts.frames += 1
            with self._on_stream():
                closed += self._segment()
        return closed + self.tracker.close_all()

    def _start_stretch(self, block: IQBlock, gap: int) -> list[Emission]:
        closed = []
        if self._clock is not None:
            closed += self.finish()
            self.counts.breaks += 1
            self.counts.samples_lost += max(gap, 0)
            self.counts.retunes += int(block.retuned)
        self._spectrogram.reset()
        self._frames.reset()
        if self.cells is not None:
            self.cells.reset(moved=block.center_freq != self._center_freq)
        self._stretch_rows = self._tracked_rows = 0
        self._next_frame_row = self.geometry.height
        self._center_freq = block.center_freq
        self._clock = StreamClock(block.first_sample, self.geometry.samples_per_row,
                                  block.sample_rate, block.time, block.first_sample)
        return closed + self.tracker.start(self._clock, block.center_freq)

    def _result(self, frame: torch.Tensor, classes: torch.Tensor | None) -> FrameResult:
        """The frame ending at the newest row, for display."""
        return FrameResult(
            rows_db=frame,
            classes=classes,
            center_freq=self._center_freq,
            sample_rate=self.geometry.sample_rate,
            end_sample=self._clock.row_sample(self._stretch_rows) if self._clock else 0,
            cells=self.cells.cells if self.cells is not None else NO_CELLS,
        )

    def _segment(self) -> list[Emission]:
        """Segment the newest frame; hand the rows not yet tracked to the tracker."""
        started = time.perf_counter()
        frame = self._frames.frame()
        held = frame.shape[0]
        # a frame shorter than usual (a stretch's start) is mirrored to the frame's height, as
        # the fixed-shape engines take it and as the network was trained
        x = pad_rows(network_input(frame), self.geometry.height)[None]
        probs = self.runner.infer(x)[0, :, :held]  # (classes, rows, width), on the device
        # Queued before the copies to the host below, which wait for it, so a reader of the
        # published frame on another thread or stream finds it done. max().indices, not
        # argmax: torch's argmax over a short leading dimension is 15x slower on the CPU.
        classes = probs.max(dim=0).indices.to(torch.uint8)
        new = min(self._stretch_rows - self._tracked_rows, held)
        first_row = self._stretch_rows - new
        chunk = probs[:, held - new :].permute(1, 2, 0).float().cpu().numpy()
        power = frame[held - new :].cpu().numpy()  # dBFS rows are float32 already
        marks = NO_MARKS
        if self.raw_classes:
            chunk_classes = classes[held - new :].cpu().numpy()
        else:  # the whole frame's rows vote, not only the chunk's new ones
            winners = classes.cpu().numpy()
            if self.cells is not None:
                marks = cell_marks(self.cells.current(winners), self.geometry)
            shown = carrier_classes(winners, marks)
            classes, chunk_classes = torch.from_numpy(shown), shown[held - new :]
        self._tracked_rows = self._stretch_rows
        self.counts.frames_segmented += 1
        self.counts.segment_seconds.append(time.perf_counter() - started)
        self.latest = self._result(frame, classes)
        return self.tracker.update(first_row, chunk, power, chunk_classes, marks)

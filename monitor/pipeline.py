"""Wiring: the source's reader thread, a bounded queue, the processing loop, and the sinks.

The reader thread iterates the source and never waits on processing: for a live source a full
queue drops its oldest block (every dropped sample counted); for a recording the reader waits
instead, so nothing is lost. The processing loop runs in the thread that calls
:meth:`Pipeline.run` (the main thread headless, a worker thread under the GUI); it falls behind
when the queue holds more than ``BEHIND_SHARE`` of its capacity, and then skips frames (counted)
rather than let the queue overflow. Gaps in the stream are found from sample indices, whatever
caused them. Closed emissions go to every sink as they close; the GUI reads
:attr:`Pipeline.latest` and :meth:`Pipeline.snapshot`, which the processing loop publishes.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from monitor.occupancy.emission import Emission
from monitor.occupancy.stats import RunStats
from monitor.processing import FrameResult, Processor
from monitor.sources.base import IQBlock, Source

__all__ = ["BlockSink", "EmissionSink", "Pipeline"]

log = logging.getLogger(__name__)

QUEUE_SECONDS = 1.0
#: The queue fill (share of its capacity) past which a live stream's processing is behind and
#: skips frames. A quarter leaves three quarters of a second for a stall of the machine before
#: samples are dropped, and keeps a sample's wait in the queue short.
BEHIND_SHARE = 0.25


class EmissionSink(Protocol):
    """Where closed emissions go: a log, an annotation collector."""

    def write(self, emission: Emission) -> None: ...

    def close(self) -> None: ...


class BlockSink(Protocol):
    """Where raw blocks go: a recording."""

    def write_block(self, block: IQBlock) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class _Item:
    block: IQBlock
    arrived: float


_END = object()


class Pipeline:
    """Source to sinks.

    Args:
        source: an opened source.
        processor: the processing chain, with an active runner.
        stats: counted as the run goes (its descriptive fields set by the caller).
        sinks: receive every emission as it closes.
        block_sinks: receive every block processed (``--record``).
        queue_seconds: capacity of the queue in stream seconds.

    Attributes:
        error: what ended the source early, if anything did.
    """

    def __init__(self, source: Source, processor: Processor, stats: RunStats,
                 sinks: Sequence[EmissionSink] = (), block_sinks: Sequence[BlockSink] = (),
                 queue_seconds: float = QUEUE_SECONDS) -> None:
        self.source = source
        self.processor = processor
        self.stats = stats
        self.sinks = list(sinks)
        self.block_sinks = list(block_sinks)
        self.error: str | None = None
        self._queue_seconds = queue_seconds
        self._queue = _BlockQueue()
        self._stop = threading.Event()
        self._next_sample: int | None = None
        self.latest: FrameResult | None = None
        self.on_frame: Callable[[FrameResult], None] | None = None

    def stop(self) -> None:
        """Ask the run to end soon (from any thread, a signal handler included)."""
        self._stop.set()
        self.source.close()

    def run(self, duration: float | None = None) -> RunStats:
        """Process until the source ends, ``duration`` stream seconds pass, or :meth:`stop`.

        Every open emission is closed and written before it returns, whatever ended the run.
        A live source's LTE and NR cells are searched on a thread of their own, so that processing
        does not wait for a search; a recording's in the frame a search falls on.
        """
        if self.processor.cells is not None:
            self.processor.cells.background = self.source.live
        self.stats.start()
        reader = threading.Thread(target=self._read, name="source-reader", daemon=True)
        capacity_samples = self._queue_seconds * self.source.sample_rate
        stop_sample = None if duration is None else round(duration * self.source.sample_rate)
        reader.start()
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    break
                assert isinstance(item, _Item)
                block = item.block
                if stop_sample is not None:
                    block = _clip(block, stop_sample)
                    if block is None:
                        break
                behind = (self.source.live
                          and self._queued_samples() > BEHIND_SHARE * capacity_samples)
                self.stats.count_block(len(block.samples), block.lost_before,
                                       block.discarded_before)
                self._account_gap(block)
                for sink in self.block_sinks:
                    sink.write_block(block)
                emissions = self._feed(block, behind, item.arrived)
                self._emit(emissions)
                if stop_sample is not None and block.end_sample >= stop_sample:
                    break
                if self._stop.is_set():
                    break
        finally:
            self._stop.set()
            self.source.close()
            self._emit(self._count_frames(self.processor.finish, None))
            reader.join(timeout=5.0)
            for sink in [*self.sinks, *self.block_sinks]:
                sink.close()
            self.stats.stop()
        return self.stats

    def _feed(self, block: IQBlock, behind: bool, arrived: float) -> list[Emission]:
        return self._count_frames(lambda: self.processor.feed(block, behind=behind), arrived)

    def _count_frames(self, step: Callable[[], list[Emission]],
                      arrived: float | None) -> list[Emission]:
        """Run a processor step and count the frames it formed and segmented."""
        counts = self.processor.counts
        frames, segmented = counts.frames, counts.frames_segmented
        emissions = step()
        new_segmented = counts.frames_segmented - segmented
        for i in range(counts.frames - frames):
            is_segmented = i >= (counts.frames - frames) - new_segmented
            latency = time.monotonic() - arrived if is_segmented and arrived else None
            self.stats.count_frame(is_segmented, latency)
        if self.processor.latest is not None and self.processor.latest is not self.latest:
            held = self.latest.cells if self.latest is not None else None
            self.latest = self.processor.latest
            cells, centre = self.latest.cells, self.latest.center_freq
            if cells != held:  # a search's or a retune's, not every frame's
                self.stats.note_lte_cells([(c.cell_id, c.duplex, centre + c.centre_hz,
                                            c.mib.n_rb if c.mib else None) for c in cells.lte])
                self.stats.note_nr_cells([(c.cell_id, c.scs, centre + c.ssb_hz,
                                           c.pbch.mib if c.pbch else None) for c in cells.nr])
            if self.on_frame is not None:
                self.on_frame(self.latest)
        return emissions

    def _read(self) -> None:
        """The reader thread: source to queue."""
        capacity = self._queue_seconds * self.source.sample_rate
        try:
            for block in self.source.blocks():
                if self._stop.is_set():
                    break
                item = _Item(block, time.monotonic())
                if self.source.live:
                    while self._queued_samples() + len(block.samples) > capacity:
                        self._drop_oldest()
                    self._queue.put(item)
                else:
                    while self._queued_samples() + len(block.samples) > capacity and \
                            self._queue.qsize() > 0 and not self._stop.is_set():
                        time.sleep(0.002)
                    self._queue.put(item)
                self.stats.note_queue_depth(self._queue.qsize())
        except Exception as exc:  # the run ends, closing what is open; the caller reports it
            log.error("source failed: %s", exc)
            self.error = str(exc)
        finally:
            self._queue.put(_END)

    def _queued_samples(self) -> int:
        return self._queue.samples

    def _drop_oldest(self) -> None:
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return
        if isinstance(item, _Item):
            self.stats.count_dropped(len(item.block.samples))
            if item.block.lost_before:  # what the source lost before it still counts
                self.stats.count_block(0, item.block.lost_before, item.block.discarded_before)

    def _account_gap(self, block: IQBlock) -> None:
        if self._next_sample is not None and block.first_sample > self._next_sample:
            log.warning("gap of %d samples before sample %d",
                        block.first_sample - self._next_sample, block.first_sample)
        self._next_sample = block.end_sample

    def _emit(self, emissions: list[Emission]) -> None:
        for emission in emissions:
            self.stats.count_emission()
            for sink in self.sinks:
                sink.write(emission)
        tracker = self.processor.tracker
        self.stats.note_unlogged(tracker.unconfident, tracker.narrow)


class _BlockQueue(queue.Queue):
    """A FIFO of blocks that keeps a running count of the samples it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.samples = 0

    def _put(self, item: _Item | object) -> None:  # called with the queue's lock held
        super()._put(item)
        if isinstance(item, _Item):
            self.samples += len(item.block.samples)

    def _get(self) -> _Item | object:  # called with the queue's lock held
        item = super()._get()
        if isinstance(item, _Item):
            self.samples -= len(item.block.samples)
        return item


def _clip(block: IQBlock, stop_sample: int) -> IQBlock | None:
    """The part of ``block`` before ``stop_sample``; None if nothing is left."""
    if block.first_sample >= stop_sample:
        return None
    if block.end_sample <= stop_sample:
        return block
    keep = stop_sample - block.first_sample
    return dataclasses.replace(block, samples=np.ascontiguousarray(block.samples[:keep]))

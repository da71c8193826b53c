"""The processor: frames due every hop, skipped and counted when behind, shown all the same;
the classes it publishes are the carriers'."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from engines.backends.torch_runner import TorchRunner
from engines.prmnet import create_model
from monitor.dsp.geometry import Geometry
from monitor.dsp.lte_sync import STEP_HZ, LteCell
from monitor.occupancy.cells import CellWatch, FrameCells, with_known_mibs
from monitor.occupancy.stats import RunStats
from monitor.pipeline import Pipeline
from monitor.processing import Processor
from monitor.sources.base import IQBlock, Source
from monitor.synth.bch import Mib

RATE = 1.92e6
G = Geometry.for_rate(RATE)


def _blocks(frames: int) -> list[IQBlock]:
    """Blocks of one frame each of complex noise."""
    rng = np.random.default_rng(0)
    n = G.height * G.samples_per_row
    out = []
    for k in range(frames):
        x = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64) * 0.01
        out.append(IQBlock(x, k * n, 1.8e9, RATE, 1.0e9 + k * n / RATE))
    return out


def test_skipped_frames_are_counted_and_published_without_classes() -> None:
    torch.manual_seed(0)
    runner = TorchRunner(create_model("prmnet_w8").eval()).activate()
    processor = Processor(runner, G, hop=G.height)
    behind = [False, True, True, False]
    published = []
    for block, late in zip(_blocks(4), behind, strict=True):
        processor.feed(block, behind=late)
        published.append(processor.latest)
    counts = processor.counts
    assert (counts.frames, counts.frames_segmented, counts.frames_skipped) == (4, 2, 2)
    assert [p.classes is None for p in published] == behind
    assert all(p.rows_db.shape == (G.height, G.width) for p in published)
    ends = [p.end_sample for p in published]
    assert ends == [(k + 1) * G.height * G.samples_per_row for k in range(4)]
    assert counts.rows == 4 * G.height and counts.samples == 4 * G.height * G.samples_per_row


class _Patches(nn.Module):
    """Logits of one carrier in columns 60-160, LTE, with a third of its pixels NR."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        nr = torch.rand(h, 100, generator=torch.Generator().manual_seed(0)) < 0.3
        logits = torch.zeros(n, 3, h, w)
        logits[:, 0] = 5.0
        logits[:, 0, :, 60:160] = 0.0
        logits[:, 1, :, 60:160] = torch.where(nr, 0.0, 5.0)
        logits[:, 2, :, 60:160] = torch.where(nr, 5.0, 0.0)
        return logits


@pytest.mark.parametrize("raw", [False, True])
def test_a_carrier_painted_in_both_classes_is_published_in_its_class(raw: bool) -> None:
    runner = TorchRunner(_Patches()).activate()
    processor = Processor(runner, G, hop=G.height, raw_classes=raw)
    processor.feed(_blocks(1)[0])
    classes = processor.latest.classes.cpu().numpy()
    assert (classes[:, :60] == 0).all() and (classes[:, 160:] == 0).all()
    carrier = classes[:, 60:160]
    assert (carrier != 0).all()
    nr_share = (carrier == 2).mean()
    assert 0.25 < nr_share < 0.35 if raw else nr_share == 0.0
    (emission,) = processor.tracker.close_all()
    assert emission.label == "LTE"


class _AllNR(nn.Module):
    """Logits calling every pixel NR, as a network might call a view inside an LTE carrier."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], 3, *x.shape[2:])
        logits[:, 2] = 5.0
        return logits


def _lte_blocks(frames: int) -> list[IQBlock]:
    """Blocks of one frame each of a 20 MHz LTE carrier whose centre is in view (cell 86)."""
    from monitor.synth.scene import SceneSpec, parse_carrier, render

    n = G.height * G.samples_per_row
    spec = SceneSpec(RATE, frames * n / RATE, [parse_carrier(
        "lte:bw=20e6,offset=60e3,snr=3,load=0.7,cell=86")])
    iq = render(spec, np.random.default_rng(2)).iq
    return [IQBlock(iq[k * n : (k + 1) * n], k * n, 1.86e9, RATE, 1.0e9 + k * n / RATE)
            for k in range(frames)]


@pytest.mark.parametrize("search", [True, False])
def test_an_lte_cell_names_the_carrier_the_network_calls_nr(search: bool) -> None:
    runner = TorchRunner(_AllNR()).activate()
    every = 2.0 if search else None
    processor = Processor(runner, G, hop=G.height, cell_search_every=every)
    for block in _lte_blocks(3):
        processor.feed(block)
    classes = processor.latest.classes.cpu().numpy()
    (emission,) = processor.finish()
    if search:
        assert (classes == 1).all() and emission.label == "LTE"
        assert [c.cell_id for c in processor.cells.cells.lte] == [86]
        assert processor.cells.searches == 1  # 120 ms of stream: one search, its cell held
    else:
        assert (classes == 2).all() and emission.label == "NR" and processor.cells is None


class _AllLTE(nn.Module):
    """Logits calling every pixel LTE, as a network might call a view inside an NR carrier."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], 3, *x.shape[2:])
        logits[:, 1] = 5.0
        return logits


def test_an_nr_cells_ssb_names_the_carrier_the_network_calls_lte() -> None:
    """The view inside a 20 MHz NR carrier at 15 kHz, its SSB at the view's centre."""
    from monitor.synth.scene import SceneSpec, parse_carrier, render

    n = G.height * G.samples_per_row
    spec = SceneSpec(RATE, 2 * n / RATE, [parse_carrier(
        "nr:bw=20e6,scs=15e3,offset=0,snr=10,load=0.5,cell=500,ssb_period=10e-3,"
        "ssb_offset_rb=43")])
    iq = render(spec, np.random.default_rng(3)).iq
    processor = Processor(TorchRunner(_AllLTE()).activate(), G, hop=G.height,
                          cell_search_every=2.0)
    for k in range(2):
        processor.feed(IQBlock(iq[k * n : (k + 1) * n], k * n, 2.1e9, RATE, 1.0e9 + k * n / RATE))
    assert [c.cell_id for c in processor.cells.cells.nr] == [500]
    assert (processor.latest.classes.cpu().numpy() == 2).all()
    (emission,) = processor.finish()
    assert emission.label == "NR"


def test_a_retune_drops_the_cells_and_searches_again_a_gap_does_not() -> None:
    runner = TorchRunner(_AllNR()).activate()
    processor = Processor(runner, G, hop=G.height)
    blocks = _lte_blocks(2)
    processor.feed(blocks[0])
    assert processor.cells.searches == 1 and processor.cells.cells.lte
    # lost samples, or a looped replay starting again: the carriers are where they were
    again = IQBlock(blocks[1].samples, blocks[1].first_sample + 100, 1.86e9, RATE,
                    blocks[1].time, retuned=True)
    processor.feed(again)
    assert processor.cells.searches == 1 and processor.cells.cells.lte
    retuned = IQBlock(blocks[1].samples, again.end_sample, 1.9e9, RATE, blocks[1].time,
                      retuned=True)
    processor.feed(retuned)
    assert processor.cells.searches == 2


def test_a_live_stream_searches_on_a_thread_and_takes_the_cells_when_found() -> None:
    watch = CellWatch(G, every=2.0, background=True)
    block = _lte_blocks(1)[0].samples
    watch.push(block)
    classes = np.full((G.height, G.width), 2, np.uint8)
    assert watch.current(classes) == FrameCells()  # the search has only started
    watch._pending.result(timeout=60)
    (cell,) = watch.current(classes).lte
    assert cell.centre_hz == pytest.approx(60e3, abs=STEP_HZ / 2)
    assert watch.searches == 1
    watch.push(block)
    watch.reset()  # a retune: the cells held and any search still running are of the past
    assert watch.cells == FrameCells() and watch._pending is None


class _Blocks(Source):
    """A live source of some blocks."""

    def __init__(self, blocks: list[IQBlock]) -> None:
        self._blocks = blocks

    @property
    def sample_rate(self) -> float:
        return RATE

    @property
    def center_freq(self) -> float:
        return self._blocks[0].center_freq

    def describe(self) -> str:
        return "blocks"

    def open(self) -> None:
        pass

    def blocks(self) -> Iterator[IQBlock]:
        yield from self._blocks

    def close(self) -> None:
        pass


@pytest.mark.parametrize("live", [True, False])
def test_the_pipeline_searches_a_live_sources_cells_on_a_thread(live: bool) -> None:
    source = _Blocks(_lte_blocks(1))
    source.live = live
    processor = Processor(TorchRunner(_AllNR()).activate(), G, hop=G.height)
    Pipeline(source, processor, RunStats()).run()
    assert processor.cells.background == live
    assert processor.cells.searches == 1
    assert (processor.cells._pending is not None) == live  # not yet taken up: no frame after


def test_a_cell_keeps_the_mib_an_earlier_search_decoded() -> None:
    """A carrier's bandwidth does not change: a later search that could not decode the MIB
    keeps the one decoded before, for the same PCI at the same centre only."""
    decoded = LteCell(60e3, 86, "FDD", 0.5, 0.4, Mib(100, 12), 2)
    later = [LteCell(60e3 + STEP_HZ, 86, "FDD", 0.3, 0.2), LteCell(60e3, 87, "FDD", 0.3, 0.2),
             LteCell(2e6, 86, "FDD", 0.3, 0.2)]
    kept = with_known_mibs(later, [decoded])
    assert [c.mib for c in kept] == [Mib(100, 12), None, None]
    assert kept[0].centre_hz == 60e3 + STEP_HZ and kept[0].ports == 2
    assert with_known_mibs([decoded], later) == [decoded]

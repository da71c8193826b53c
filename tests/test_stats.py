"""Run statistics: the contract's fields, counts from two threads, latency percentiles, the file."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from monitor.errors import DeviceError
from monitor.occupancy.stats import RunStats
from monitor.synth.nr_bch import NrMib

CONTRACT = ("samples_in", "samples_dropped", "frames", "frames_segmented", "wall_seconds",
            "realtime_factor", "engine", "precision", "compute_device", "model")


def test_contract_fields_first_and_counts() -> None:
    stats = RunStats(source="synthetic", sample_rate=1e6, engine="torch", precision="fp32",
                     compute_device="cpu", model="prmnet-w16")
    stats.count_block(1000)
    stats.count_block(1000, lost_before=500)
    stats.count_block(0, lost_before=300, discarded_before=200)  # a settle time after a lost link
    stats.count_dropped(1000)
    for segmented in (True, True, False):
        stats.count_frame(segmented)
    stats.count_emission()
    stats.note_queue_depth(3)
    stats.note_queue_depth(1)
    d = stats.to_dict()
    assert tuple(d)[: len(CONTRACT)] == CONTRACT
    assert (d["samples_in"], d["samples_dropped"]) == (2000, 1600)
    assert d["samples_discarded"] == 200  # missing, but on purpose: not dropped
    assert d["gaps"] == {"count": 2, "samples": 800}
    assert (d["frames"], d["frames_segmented"], d["frames_skipped"]) == (3, 2, 1)
    assert (d["emissions"], d["queue_high_water"]) == (1, 3)
    # stream time: samples processed, lost or discarded by the source, dropped by the queue
    assert d["stream_seconds"] == pytest.approx(3800 / 1e6)
    assert d["latency_ms"] is None
    assert d["realtime_factor"] is None  # the clock never started


def test_realtime_factor_is_stream_over_wall_seconds() -> None:
    stats = RunStats(sample_rate=1e6)
    stats.count_block(2_000_000)
    stats.wall_seconds = 0.5
    assert stats.to_dict()["realtime_factor"] == pytest.approx(4.0)
    stats.start()
    stats.stop()
    assert 0 <= stats.wall_seconds < 1


def test_latency_percentiles_within_two_percent() -> None:
    stats = RunStats()
    for ms in range(1, 101):
        stats.count_frame(True, latency_s=ms / 1e3)
    latency = stats.to_dict()["latency_ms"]
    assert latency["frames"] == 100
    assert latency["p50"] == pytest.approx(50, rel=0.02)
    assert latency["p95"] == pytest.approx(95, rel=0.02)


def test_counts_from_two_threads_add_up() -> None:
    stats = RunStats()

    def reader() -> None:
        for _ in range(20_000):
            stats.count_block(10)

    def processor() -> None:
        for _ in range(20_000):
            stats.count_frame(True)

    threads = [threading.Thread(target=reader), threading.Thread(target=processor)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (stats.samples_in, stats.frames) == (200_000, 20_000)


def test_write_is_atomic_json(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    RunStats(model="m").write(path)
    assert json.loads(path.read_text())["model"] == "m"
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]
    with pytest.raises(DeviceError, match="stats file"):
        RunStats().write(tmp_path / "missing" / "stats.json")


def test_lte_cells_keep_the_bandwidth_a_search_decoded() -> None:
    stats = RunStats()
    stats.note_lte_cells([(86, "FDD", 1859.955e6, None), (300, "FDD", 1815.3e6, 100)])
    stats.note_lte_cells([(86, "FDD", 1859.957e6, 100), (300, "FDD", 1815.301e6, None)])
    assert stats.to_dict()["lte_cells"] == [
        {"pci": 86, "duplex": "FDD", "freq_hz": 1859957000, "n_rb": 100},
        {"pci": 300, "duplex": "FDD", "freq_hz": 1815301000, "n_rb": 100}]


def test_nr_cells_once_each_by_pci_and_ssb_with_their_raster_points_and_mib() -> None:
    stats = RunStats(center_freq=3.5e9)
    assert stats.to_dict()["nr_cells"] == []
    barred = NrMib(sfn=978, k_ssb=31, cell_barred=True)
    stats.note_nr_cells([(500, 30e3, 3512.64e6, barred), (1, 30e3, 3426.24e6, None)])
    # the same SSB half a subcarrier off, its MIB not decoded this time; the same PCI with
    # another SSB
    stats.note_nr_cells([(500, 30e3, 3512.655e6, None), (500, 30e3, 3520.0e6, None)])
    assert stats.to_dict()["nr_cells"] == [
        {"pci": 1, "scs_hz": 30e3, "ssb_hz": 3426240000, "gscn": 7795, "raster_offset_hz": 0,
         "ssb_arfcn": 628416, "mib": None},
        {"pci": 500, "scs_hz": 30e3, "ssb_hz": 3512655000, "gscn": 7855,
         "raster_offset_hz": 15000, "ssb_arfcn": 634177,
         "mib": {"sib1": False, "cell_barred": True, "intra_freq_reselection": True,
                 "scs_common_hz": 15e3, "k_ssb": 31, "coreset_zero": 0, "search_space_zero": 0,
                 "dmrs_type_a_position": 2}},
        # 3000 + 361 * 1.44 MHz is the nearest point
        {"pci": 500, "scs_hz": 30e3, "ssb_hz": 3520000000, "gscn": 7860,
         "raster_offset_hz": 160000, "ssb_arfcn": 634667, "mib": None}]


def test_nr_cells_have_no_raster_point_where_the_centre_frequency_is_unknown() -> None:
    stats = RunStats()  # a raw IQ file replayed without --fc: frequencies from the view's centre
    stats.note_nr_cells([(500, 30e3, 9.84e6, None)])
    assert stats.to_dict()["nr_cells"] == [
        {"pci": 500, "scs_hz": 30e3, "ssb_hz": 9840000, "gscn": None, "raster_offset_hz": None,
         "ssb_arfcn": None, "mib": None}]

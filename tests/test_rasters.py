"""NR's rasters against TS 38.104's tables and the SSBs of real cells."""

from __future__ import annotations

import pytest

from monitor.rasters import SyncRasterPoint, nearest_sync_raster, nr_arfcn


@pytest.mark.parametrize(("freq_hz", "gscn"), [
    (3512.64e6, 7855),  # srsRAN's n78 cell (nr-n78-3502-usrp): 3000 + 356 * 1.44 MHz
    (2155.25e6, 5387),  # an n1 cell (nr-n1-2157-starhub): N 1796, M 1
    (2155.35e6, 5388),  # N 1796, M 3
    (2155.45e6, 5389),  # N 1796, M 5
    (1.25e6, 2),  # the lowest point: N 1, M 1
    (3000e6, 7499),  # the first point above 3 GHz: N 0
    (24250.08e6, 22256),  # the first of FR2
    (27999.84e6, 22473),
])
def test_sync_raster_points_are_numbered_as_table_5_4_3_1_1(freq_hz: float, gscn: int) -> None:
    assert nearest_sync_raster(freq_hz) == SyncRasterPoint(gscn, pytest.approx(freq_hz))


def test_a_frequency_off_the_raster_takes_the_nearest_point() -> None:
    # 60 kHz off: under 3 GHz the three M's points are 100 kHz apart, so it names a neighbour
    assert nearest_sync_raster(2155.25e6 + 60e3).gscn == 5388
    assert nearest_sync_raster(3512.64e6 + 700e3).gscn == 7855
    assert nearest_sync_raster(3512.64e6 + 750e3).gscn == 7856
    assert nearest_sync_raster(2999.9e6).gscn == 7499  # nearer 3000 MHz than 2999.25 MHz


def test_no_raster_point_outside_0_to_100_ghz() -> None:
    assert nearest_sync_raster(0.0) is None
    assert nearest_sync_raster(-9.84e6) is None
    assert nearest_sync_raster(101e9) is None
    assert nr_arfcn(101e9) is None


@pytest.mark.parametrize(("freq_hz", "arfcn"), [
    (2155.25e6, 431050),  # 5 kHz steps from 0
    (3512.64e6, 634176),  # 600000 + 15 kHz steps from 3 GHz
    (3500e6, 633333),  # nearest: 633333.3
    (3000e6, 600000),
    (28e9, 2079166),  # 2016667 + 60 kHz steps from 24250.08 MHz
])
def test_nr_arfcn_is_numbered_as_table_5_4_2_1_1(freq_hz: float, arfcn: int) -> None:
    assert nr_arfcn(freq_hz) == arfcn

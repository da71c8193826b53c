"""SoapySDR: the system's library loaded for real (enumeration, a missing radio), and the
readStream semantics (partial reads, timeouts, overflows, errors) through an object with
SoapySDR's interface."""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from monitor.errors import DeviceError, InputError
from monitor.sources.base import IQBlock
from monitor.sources.radio import Backoff
from monitor.sources.soapy import SoapySource, list_soapy, load_soapysdr

pytestmark = pytest.mark.timeout(20)

RATE = 10e6
FC = 1.8e9
BLOCK = 4096
HAS_TIME = 4


def _real_soapysdr() -> Any:
    try:
        return load_soapysdr()
    except DeviceError as exc:
        pytest.skip(f"SoapySDR is not installed (apt install python3-soapysdr): {exc}")


def test_the_real_library_loads_and_enumerates() -> None:
    soapy = _real_soapysdr()
    assert soapy.SOAPY_SDR_TIMEOUT == -1 and soapy.SOAPY_SDR_OVERFLOW == -4
    assert soapy.SOAPY_SDR_HAS_TIME == HAS_TIME
    assert isinstance(soapy.getAPIVersion(), str)
    for spec, label in list_soapy():
        assert spec.startswith("soapy:") and label


def test_a_missing_radio_is_one_line_and_exit_status_1() -> None:
    soapy = _real_soapysdr()
    if soapy.Device.enumerate({"driver": "hackrf"}):
        pytest.skip("a HackRF is plugged into this machine")
    with pytest.raises(DeviceError, match="no SoapySDR device matches driver=hackrf") as err:
        SoapySource({"driver": "hackrf"}, FC, RATE).open()
    assert "\n" not in str(err.value) and err.value.exit_status == 1


def test_bindings_for_another_python_are_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "SoapySDR", None)
    (tmp_path / "SoapySDR.py").write_text("")
    (tmp_path / "_SoapySDR.cpython-39-x86_64-linux-gnu.so").write_bytes(b"")
    with pytest.raises(DeviceError, match=r"built for another Python.*cpython-39") as err:
        load_soapysdr([tmp_path])
    assert "\n" not in str(err.value)
    with pytest.raises(DeviceError, match=r"apt install python3-soapysdr.*system-site-packages"):
        load_soapysdr([tmp_path / "nothing"])


class FakeRange:
    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def minimum(self) -> float:
        return self.low

    def maximum(self) -> float:
        return self.high


class FakeDevice:
    """A SoapySDR device over an array of samples, following a script per opening.

    Script events: an int N (a read of at most N samples), ``timeout``, ``overflow:K`` (the
    driver drops K samples and says so), ``error`` (SOAPY_SDR_STREAM_ERROR), ``raise``; after the
    script, reads of ``chunk`` samples until the data ends, then timeouts.
    """

    def __init__(self, soapy: FakeSoapy, script: Sequence[int | str]) -> None:
        self.soapy = soapy
        self.script = list(script)
        self.calls: list[tuple[str, Any]] = []
        self.closed = False

    def getNumChannels(self, direction: int) -> int:
        return 1

    def getSampleRateRange(self, direction: int, channel: int) -> list[FakeRange]:
        return [FakeRange(2e6, 20e6)]

    def setSampleRate(self, direction: int, channel: int, rate: float) -> None:
        self.calls.append(("rate", rate))

    def getSampleRate(self, direction: int, channel: int) -> float:
        return dict(self.calls)["rate"]

    def setBandwidth(self, direction: int, channel: int, bandwidth: float) -> None:
        self.calls.append(("bandwidth", bandwidth))

    def listAntennas(self, direction: int, channel: int) -> tuple[str, ...]:
        return ("TX/RX", "RX2")

    def setAntenna(self, direction: int, channel: int, name: str) -> None:
        self.calls.append(("antenna", name))

    def hasFrequencyCorrection(self, direction: int, channel: int) -> bool:
        return True

    def setFrequencyCorrection(self, direction: int, channel: int, ppm: float) -> None:
        self.calls.append(("ppm", ppm))

    def hasDCOffsetMode(self, direction: int, channel: int) -> bool:
        return True

    def setDCOffsetMode(self, direction: int, channel: int, automatic: bool) -> None:
        self.calls.append(("dc", automatic))

    def setFrequency(self, direction: int, channel: int, freq: float) -> None:
        self.calls.append(("freq", freq))

    def hasGainMode(self, direction: int, channel: int) -> bool:
        return self.soapy.agc

    def setGainMode(self, direction: int, channel: int, automatic: bool) -> None:
        self.calls.append(("agc", automatic))

    def getGainRange(self, direction: int, channel: int) -> FakeRange:
        return FakeRange(0, 40)

    def setGain(self, direction: int, channel: int, gain: float) -> None:
        self.calls.append(("gain", gain))

    def getDriverKey(self) -> str:
        return "fake"

    def getHardwareKey(self) -> str:
        return "FakeRF"

    def setupStream(self, direction: int, fmt: str, channels: list[int]) -> str:
        assert (direction, fmt, channels) == (1, "CF32", [0])
        return "stream"

    def activateStream(self, stream: str) -> int:
        self.calls.append(("activate", stream))
        return 0

    def readStream(self, stream: str, buffs: list[np.ndarray], num: int,
                   timeoutUs: int = 100000) -> SimpleNamespace:
        soapy = self.soapy
        event = self.script.pop(0) if self.script else soapy.chunk
        if isinstance(event, str):
            kind, _, arg = event.partition(":")
            if kind == "raise":
                raise RuntimeError("USB transfer failed")
            if kind == "overflow":
                soapy.position += int(arg)
                return SimpleNamespace(ret=-4, flags=0, timeNs=0)
            if kind == "timeout":
                time.sleep(timeoutUs / 1e6)
            return SimpleNamespace(ret={"timeout": -1, "error": -2}[kind], flags=0, timeNs=0)
        n = min(event, num, len(soapy.data) - soapy.position)
        if n <= 0:
            time.sleep(timeoutUs / 1e6)
            return SimpleNamespace(ret=-1, flags=0, timeNs=0)
        buffs[0][:n] = soapy.data[soapy.position : soapy.position + n]
        stamp = round(soapy.position * 1e9 / RATE)
        soapy.position += n
        return SimpleNamespace(ret=n, flags=HAS_TIME if soapy.timed else 0, timeNs=stamp)

    def deactivateStream(self, stream: str) -> None:
        self.calls.append(("deactivate", stream))

    def closeStream(self, stream: str) -> None:
        self.calls.append(("closeStream", stream))

    def close(self) -> None:
        self.closed = True


class FakeSoapy:
    """The SoapySDR module's interface: constants, ``Device`` (one script per opening; a None
    script: no such device), ``errToStr``."""

    SOAPY_SDR_RX = 1
    SOAPY_SDR_CF32 = "CF32"
    SOAPY_SDR_HAS_TIME = HAS_TIME

    def __init__(self, openings: Sequence[Sequence[int | str] | None] = ((),), timed: bool = True,
                 agc: bool = True, chunk: int = 1500, seconds: float = 0.02) -> None:
        rng = np.random.default_rng(5)
        n = int(seconds * RATE)
        self.data = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
        self.openings = list(openings)
        self.timed, self.agc, self.chunk = timed, agc, chunk
        self.position = 0
        self.devices: list[FakeDevice] = []
        self.Device = self._make

    def _make(self, args: dict[str, str]) -> FakeDevice:
        script = self.openings[min(len(self.devices), len(self.openings) - 1)]
        if script is None:
            self.devices.append(FakeDevice(self, []))
            raise RuntimeError("SoapySDR::Device::make() no match")
        device = FakeDevice(self, script)
        self.devices.append(device)
        return device

    @staticmethod
    def errToStr(code: int) -> str:
        return {-2: "STREAM_ERROR"}.get(code, "UNKNOWN")


def _source(soapy: FakeSoapy, **kwargs: Any) -> SoapySource:
    options: dict[str, Any] = {"soapy": soapy, "settle_s": 0.0, "dc_block": False,
                               "block_samples": BLOCK, "backoff": Backoff(0.02, 0.1),
                               "stall_timeout": 0.3}
    options.update(kwargs)
    return SoapySource({"driver": "fake"}, FC, RATE, **options)


def _collect(source: SoapySource, samples: int) -> list[IQBlock]:
    blocks: list[IQBlock] = []
    for block in source.blocks():
        blocks.append(block)
        if block.end_sample >= samples:
            break
    return blocks


def _check(blocks: list[IQBlock], reference: np.ndarray) -> None:
    for before, after in itertools.pairwise(blocks):
        assert after.first_sample == before.end_sample + after.lost_before
    for block in blocks:
        expected = reference[block.first_sample : block.end_sample]
        np.testing.assert_array_equal(block.samples, expected)


def test_partial_reads_and_timeouts_fill_whole_blocks() -> None:
    soapy = FakeSoapy([[1000, 500, "timeout", 3000, 100]])
    with _source(soapy) as source:
        blocks = _collect(source, 100_000)
    assert all(len(b.samples) == BLOCK and b.lost_before == 0 for b in blocks)
    _check(blocks, soapy.data)
    assert source.stats.timeouts == 1 and source.stats.overflows == 0
    assert source.stats.samples_received == len(blocks) * BLOCK


def test_what_the_driver_buffered_before_the_first_read_is_skipped() -> None:
    """The monitor opens the radio, then loads its model: the samples the driver buffered
    meanwhile (here all of them come at once) are stale, up to what the radio made."""
    soapy = FakeSoapy([[]], seconds=0.6)
    before = time.monotonic()
    with _source(soapy) as source:
        time.sleep(0.35)
        blocks = _collect(source, 10_000)
    after = time.monotonic()
    first = int(np.flatnonzero(soapy.data == blocks[0].samples[0])[0])
    # what the radio made from its activation to the first read: at least the sleep, at most
    # all the time the test took (a loaded machine may start the read late)
    assert 0.3 * RATE <= first < min(after - before, 0.55) * RATE
    _check(blocks, soapy.data[first:])
    assert blocks[0].first_sample == 0 and source.stats.samples_lost == 0


def test_an_overflow_with_timestamps_counts_the_samples_lost() -> None:
    soapy = FakeSoapy([[3000, "overflow:1000"]])
    with _source(soapy) as source:
        blocks = _collect(source, 50_000)
    assert len(blocks[0].samples) == 3000
    assert blocks[1].lost_before == 1000 and blocks[1].first_sample == 4000
    assert source.stats.overflows == 1 and source.stats.samples_lost == 1000
    _check(blocks, soapy.data)


def test_an_overflow_without_timestamps_is_counted_as_an_event(caplog) -> None:
    soapy = FakeSoapy([[3000, "overflow:1000"]], timed=False)
    with caplog.at_level(logging.WARNING), _source(soapy) as source:
        blocks = _collect(source, 50_000)
    assert source.stats.overflows == 1 and source.stats.samples_lost == 0
    assert "samples lost are not known" in caplog.text
    np.testing.assert_array_equal(blocks[1].samples, soapy.data[4000 : 4000 + BLOCK])


@pytest.mark.parametrize("failure", ["error", "raise", "stall"])
def test_a_failing_radio_is_reopened_and_the_gap_counted(failure: str) -> None:
    first = [2000, "timeout", *(["timeout"] * 20 if failure == "stall" else [failure])]
    soapy = FakeSoapy([first, None, [], []], seconds=0.05)
    with _source(soapy) as source:
        blocks = _collect(source, 100_000)
    assert source.stats.reconnects == 1 and len(soapy.devices) == 3
    assert soapy.devices[0].closed and ("deactivate", "stream") in soapy.devices[0].calls
    assert len(blocks[0].samples) == 2000
    assert source.stats.samples_lost == blocks[1].lost_before >= 0.02 * RATE
    np.testing.assert_array_equal(blocks[1].samples, soapy.data[2000 : 2000 + BLOCK])


def test_a_radio_that_stays_away_ends_in_a_device_error() -> None:
    soapy = FakeSoapy([["error"], None])
    with _source(soapy, max_reconnects=2) as source:
        with pytest.raises(DeviceError, match=r"2 reconnect attempts failed.*no match"):
            list(source.blocks())


def test_settings_reach_the_radio() -> None:
    soapy = FakeSoapy()
    with _source(soapy, gain=55, bandwidth=8e6, antenna="RX2", ppm=1.5, dc_block=True) as source:
        next(source.blocks())
    calls = soapy.devices[0].calls
    assert calls[:3] == [("rate", RATE), ("bandwidth", 8e6), ("antenna", "RX2")]
    assert ("ppm", 1.5) in calls and ("dc", True) in calls and ("freq", FC) in calls
    assert ("agc", False) in calls and ("gain", 40) in calls
    assert source.describe() == "SoapySDR fake FakeRF at 10 MS/s"


@pytest.mark.parametrize(("agc", "expected"), [(True, ("agc", True)), (False, ("gain", 20.0))])
def test_automatic_gain_or_the_middle_of_the_range(agc: bool, expected: tuple) -> None:
    soapy = FakeSoapy(agc=agc)
    with _source(soapy) as source:
        next(source.blocks())
    assert expected in soapy.devices[0].calls


def test_settings_the_radio_lacks_are_input_errors() -> None:
    with pytest.raises(InputError, match="cannot sample at 3e\\+07 S/s; it takes 2e\\+06-2e\\+07"):
        SoapySource({}, FC, 30e6, soapy=FakeSoapy()).open()
    with pytest.raises(InputError, match="no antenna 'LNAW'; it has TX/RX, RX2"):
        _source(FakeSoapy(), antenna="LNAW").open()
    with pytest.raises(InputError, match="no receive channel 1"):
        _source(FakeSoapy(), channel=1).open()


def test_settle_and_retune_discard_and_mark() -> None:
    soapy = FakeSoapy(seconds=0.05)
    blocks: list[IQBlock] = []
    with _source(soapy, settle_s=0.001) as source:
        for block in source.blocks():
            blocks.append(block)
            if len(blocks) == 3:
                source.retune(1.81e9)
            if len(blocks) == 8:
                break
    settle = round(0.001 * RATE)
    np.testing.assert_array_equal(blocks[0].samples, soapy.data[settle : settle + BLOCK])
    retuned = [b for b in blocks if b.retuned]
    assert len(retuned) == 1 and retuned[0].lost_before == settle
    assert retuned[0].center_freq == 1.81e9 and ("freq", 1.81e9) in soapy.devices[0].calls
    assert source.stats.samples_discarded == settle and source.stats.samples_lost == 0
    _check(blocks, soapy.data[settle:])


def test_close_from_another_thread_ends_a_silent_stream_at_once() -> None:
    soapy = FakeSoapy([["timeout"] * 1000])
    source = _source(soapy, stall_timeout=60)
    source.open()
    closer = threading.Timer(0.2, source.close)
    closer.start()
    started = time.monotonic()
    assert list(source.blocks()) == []
    assert time.monotonic() - started < 1.0
    closer.join()
    assert soapy.devices[0].closed


def test_list_soapy_names_each_radio() -> None:
    soapy = SimpleNamespace(Device=SimpleNamespace(enumerate=lambda: [
        {"driver": "hackrf", "serial": "0000abcd", "label": "HackRF One #0 0000abcd"},
        {"driver": "audio", "device_id": "0", "label": ""},
    ]))
    assert list_soapy(soapy) == [
        ("soapy:driver=hackrf,serial=0000abcd", "HackRF One #0 0000abcd"),
        ("soapy:driver=audio,device_id=0", "driver=audio,device_id=0,label="),
    ]


def test_gain_changes_while_streaming() -> None:
    soapy = FakeSoapy(seconds=0.05)
    with _source(soapy) as source:
        for i, _ in enumerate(source.blocks()):
            if i == 2:
                source.set_gain(31.0)
            if i == 4:
                break
    assert ("gain", 31.0) in soapy.devices[0].calls

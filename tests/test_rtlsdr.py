"""RTL-SDR: pyrtlsdr loaded for real (no radio here), and the streaming, overflow counting,
retuning and reconnecting through an object with pyrtlsdr's interface."""

from __future__ import annotations

import ctypes
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

from monitor.errors import DeviceError, InputError
from monitor.sources.base import IQBlock
from monitor.sources.radio import Backoff, list_devices
from monitor.sources.rtlsdr import RtlSdrSource, list_rtlsdr, load_pyrtlsdr

pytestmark = pytest.mark.timeout(20)

RATE = 2.4e6
FC = 1.8e9
TRANSFER = 4096
R820T_GAINS = [0, 9, 14, 27, 37, 77, 87, 125, 144, 157, 166, 197, 207, 229, 254, 280, 297, 328,
               338, 364, 372, 386, 402, 421, 434, 439, 445, 480, 496]


class FakeLibUsbError(OSError):
    """pyrtlsdr's LibUSBError: an OSError whose errno is libusb's code."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.errno = code


class FakeRtlSdr:
    """pyrtlsdr's ``RtlSdr`` over a byte string: ``read_bytes_async`` runs in the calling thread
    and calls back with ctypes arrays at the sample rate, as librtlsdr's event loop does, until
    cancelled.

    Class attributes, set per test by :func:`fake_driver`: the data, the serial numbers, and
    what each opening does: ``normal``, ``lost_after:N`` (the stream ends after N bytes, as when
    the dongle is pulled), ``stall_after:N`` (no more callbacks until cancelled), ``busy``,
    ``denied`` (opening fails); ``odd_transfers`` (transfers of odd lengths).
    """

    data = b""
    serials: Sequence[str] = ("00000001",)
    openings: Sequence[str] = ("normal",)
    offset = 0
    opened = 0
    began = 0.0
    calls: ClassVar[list[tuple[str, Any]]] = []
    instances: ClassVar[list[FakeRtlSdr]] = []

    def __init__(self, device_index: int = 0, serial_number: str | None = None) -> None:
        cls = type(self)
        behaviour = cls.openings[min(cls.opened, len(cls.openings) - 1)]
        cls.opened += 1
        if behaviour == "busy":
            raise FakeLibUsbError(-6, "usb_claim_interface error -6")
        if behaviour == "denied":
            raise FakeLibUsbError(-3, "Could not open SDR")
        self.behaviour = behaviour
        self.index = device_index
        self.rate = 1.024e6
        self.cancelled = threading.Event()
        self.closed = False
        cls.instances.append(self)

    @classmethod
    def get_device_serial_addresses(cls) -> list[str]:
        return list(cls.serials)

    def _call(self, name: str, value: Any = None) -> None:
        if self.closed:
            raise AssertionError(f"{name} on a closed device")
        type(self).calls.append((name, value))

    def set_sample_rate(self, rate: float) -> None:
        self._call("rate", rate)
        self.rate = rate

    def get_sample_rate(self) -> float:
        return self.rate

    def set_center_freq(self, freq: float) -> None:
        self._call("freq", freq)

    def set_freq_correction(self, ppm: int) -> None:
        self._call("ppm", ppm)

    def get_gains(self) -> list[int]:
        return R820T_GAINS

    def set_gain(self, gain: float | str) -> None:
        self._call("gain", gain)

    def set_agc_mode(self, on: bool) -> None:
        self._call("agc", on)

    def set_bias_tee(self, on: bool) -> None:
        self._call("bias_tee", on)

    def set_direct_sampling(self, mode: int) -> None:
        self._call("direct", mode)

    def get_tuner_type(self) -> int:
        return 5

    def read_bytes_async(
        self, callback: Callable[[Any, Any], None], num_bytes: int, context: Any = None
    ) -> None:
        cls = type(self)
        kind, _, arg = self.behaviour.partition(":")
        limit = cls.offset + int(arg) if arg else len(cls.data)
        self.cancelled.clear()
        due = cls.began = time.monotonic()
        size = num_bytes
        while not self.cancelled.is_set():
            if kind == "odd_transfers":
                size = num_bytes - 1 if size == num_bytes else num_bytes + 1
            end = min(cls.offset + size, limit, len(cls.data))
            if end <= cls.offset:
                if kind == "lost_after":
                    return
                self.cancelled.wait()
                return
            chunk = cls.data[cls.offset : end]
            cls.offset = end
            due += len(chunk) / (2 * self.rate)
            time.sleep(max(0.0, due - time.monotonic()))
            callback((ctypes.c_ubyte * len(chunk)).from_buffer_copy(chunk), context or self)

    def cancel_read_async(self) -> None:
        self._call("cancel")
        self.cancelled.set()

    def close(self) -> None:
        self.closed = True


def fake_driver(
    data: bytes,
    openings: Sequence[str] = ("normal",),
    serials: Sequence[str] = ("00000001",),
) -> type[FakeRtlSdr]:
    """A fresh FakeRtlSdr class (its state is per class, shared by the instances a source
    opens one after another)."""
    attrs = {"data": data, "openings": list(openings), "serials": list(serials),
             "offset": 0, "opened": 0, "calls": [], "instances": []}
    return type("RtlSdr", (FakeRtlSdr,), attrs)


def _data(seconds: float = 0.2, seed: int = 3) -> bytes:
    """Random bytes, whole transfers of them."""
    size = 2 * TRANSFER * round(seconds * RATE / TRANSFER)
    return np.random.default_rng(seed).integers(0, 256, size, np.uint8).tobytes()


def _iq(data: bytes) -> np.ndarray:
    return (np.frombuffer(data, np.uint8).astype(np.float32) - 127.5).view(np.complex64) / 128


def _source(driver: type[FakeRtlSdr], **kwargs: Any) -> RtlSdrSource:
    options: dict[str, Any] = {"driver": driver, "settle_s": 0.0, "dc_block": False,
                               "transfer_samples": TRANSFER, "backoff": Backoff(0.02, 0.1),
                               "stall_timeout": 0.5}
    options.update(kwargs)
    return RtlSdrSource(FC, RATE, **options)


def _collect(
    source: RtlSdrSource, samples: int, each: Callable[[IQBlock], None] | None = None
) -> list[IQBlock]:
    blocks: list[IQBlock] = []
    for block in source.blocks():
        blocks.append(block)
        if each is not None:
            each(block)
        if block.end_sample >= samples:
            break
    return blocks


def _check(blocks: list[IQBlock], data: bytes, skip: int = 0) -> None:
    """Indices add up, and every block holds the samples its indices say."""
    reference = _iq(data)[skip:]
    for before, after in itertools.pairwise(blocks):
        assert after.first_sample == before.end_sample + after.lost_before
    for block in blocks:
        expected = reference[block.first_sample : block.end_sample]
        np.testing.assert_array_equal(block.samples, expected)


def test_pyrtlsdr_and_librtlsdr_load_for_real() -> None:
    pytest.importorskip("rtlsdr", reason="pyrtlsdr is not installed (pip install pyrtlsdr)")
    driver = load_pyrtlsdr()
    for name in ("read_bytes_async", "cancel_read_async", "get_gains", "set_bias_tee",
                 "set_direct_sampling", "set_agc_mode", "get_device_serial_addresses"):
        assert callable(getattr(driver, name))
    from rtlsdr.librtlsdr import librtlsdr

    assert callable(librtlsdr.rtlsdr_set_offset_tuning)


def test_no_radio_is_one_line_and_exit_status_1() -> None:
    pytest.importorskip("rtlsdr", reason="pyrtlsdr is not installed (pip install pyrtlsdr)")
    if load_pyrtlsdr().get_device_serial_addresses():
        pytest.skip("an RTL-SDR is plugged into this machine")
    assert list_rtlsdr() == []
    with pytest.raises(DeviceError, match="no RTL-SDR found") as err:
        RtlSdrSource(FC, RATE).open()
    assert "\n" not in str(err.value) and err.value.exit_status == 1
    assert not any(line.startswith("rtlsdr") for line in list_devices())


def test_streams_transfers_in_order_with_the_settings_applied() -> None:
    data = _data()
    driver = fake_driver(data)
    source = _source(driver, gain=21.5, ppm=12, bias_tee=True)
    with source:
        blocks = _collect(source, len(data) // 2)
    assert sum(len(b.samples) for b in blocks) == len(data) // 2
    assert all(len(b.samples) == TRANSFER and b.lost_before == 0 for b in blocks)
    _check(blocks, data)
    calls = dict(driver.calls)
    assert calls["rate"] == RATE and calls["freq"] == FC and calls["ppm"] == 12
    assert calls["gain"] == pytest.approx(20.7) and calls["bias_tee"] is True
    assert calls["agc"] is False and "direct" not in calls
    assert "R820T" in source.describe() and "00000001" in source.describe()
    assert driver.instances[0].closed


def test_settle_time_discards_the_first_transfers() -> None:
    data = _data()
    with _source(fake_driver(data), settle_s=0.01) as source:
        blocks = _collect(source, 50_000)
    assert blocks[0].first_sample == 0 and blocks[0].lost_before == 0
    reference = _iq(data).reshape(-1, TRANSFER)
    skipped = [k for k in range(len(reference)) if np.array_equal(reference[k], blocks[0].samples)]
    assert len(skipped) == 1 and 0 < skipped[0] * TRANSFER <= 0.01 * RATE + 2 * TRANSFER
    _check(blocks, data, skip=skipped[0] * TRANSFER)


def test_transfers_queued_before_the_first_read_are_skipped() -> None:
    """The monitor opens the radio, then loads its model: the transfers queued meanwhile (and
    the ones the full queue dropped) are stale, not lost."""
    data = _data(1.5)
    driver = fake_driver(data)
    with _source(driver, queue_transfers=256) as source:  # 0.44 s
        deadline = time.monotonic() + 10
        while driver.offset < 2 * 0.6 * RATE and time.monotonic() < deadline:
            time.sleep(0.01)  # the driver keeps its pace on average, not on a loaded machine
        started = time.monotonic()
        reached = driver.offset // 2
        blocks = _collect(source, round(0.3 * RATE))
        elapsed = time.monotonic() - started
    reference = _iq(data).reshape(-1, TRANSFER)
    first = [k for k in range(len(reference)) if np.array_equal(reference[k], blocks[0].samples)]
    assert reached >= 0.6 * RATE
    assert len(first) == 1 and first[0] * TRANSFER >= reached - TRANSFER
    _check(blocks, data, skip=first[0] * TRANSFER)
    assert blocks[0].first_sample == 0 and source.stats.samples_lost == 0
    assert source.stats.dropped_transfers == 0
    # at the radio's pace from then on: the driver's schedule, less what it was behind it
    behind = started - driver.began - reached / RATE
    assert elapsed > 0.28 - behind


def test_a_slow_reader_loses_whole_transfers_and_counts_every_sample() -> None:
    data = _data(1.0)
    driver = fake_driver(data)
    blocks: list[IQBlock] = []
    with _source(driver, queue_transfers=4) as source:
        for block in source.blocks():
            blocks.append(block)
            time.sleep(0.005)
            if len(blocks) == 20:
                break
    stats = source.stats
    assert stats.samples_lost == sum(b.lost_before for b in blocks) > 0
    assert stats.samples_lost % TRANSFER == 0
    assert stats.dropped_transfers >= stats.samples_lost // TRANSFER
    assert stats.samples_received == 20 * TRANSFER
    _check(blocks, data)


def test_odd_and_short_transfers_keep_i_and_q_paired() -> None:
    data = _data()
    with _source(fake_driver(data, ["odd_transfers"])) as source:
        blocks = _collect(source, 100_000)
    assert source.stats.short_reads > 0
    got = np.concatenate([b.samples for b in blocks])
    np.testing.assert_array_equal(got, _iq(data)[: len(got)])


@pytest.mark.parametrize("first", ["lost_after:100000", "stall_after:100000"])
def test_a_lost_radio_is_reopened_and_the_gap_counted(first: str) -> None:
    data = _data(0.4)
    driver = fake_driver(data, [first, "busy", "denied", "normal"])
    with _source(driver) as source:
        blocks = _collect(source, 200_000)
    gaps = [b for b in blocks if b.lost_before]
    assert source.stats.reconnects == 1 and len(gaps) == 1 and driver.opened == 4
    assert gaps[0].lost_before >= 0.02 * RATE
    assert source.stats.samples_lost == gaps[0].lost_before
    assert all(sdr.closed for sdr in driver.instances[:1])
    before = [b for b in blocks if b.end_sample <= gaps[0].first_sample]
    assert sum(len(b.samples) for b in before) == 50_000
    _check(before, data)
    resumed = np.concatenate([b.samples for b in blocks if b.first_sample >= gaps[0].first_sample])
    np.testing.assert_array_equal(resumed, _iq(data)[50_000 : 50_000 + len(resumed)])


def test_a_radio_that_stays_away_ends_in_a_device_error() -> None:
    driver = fake_driver(_data(), ["lost_after:20000", "busy"])
    with _source(driver, max_reconnects=3) as source:
        with pytest.raises(DeviceError, match=r"3 reconnect attempts failed.*busy"):
            list(source.blocks())


def test_retune_restarts_the_stream_and_discards_the_pause() -> None:
    data = _data(0.4)
    driver = fake_driver(data)

    def retune_once(block: IQBlock) -> None:
        if block.end_sample == 5 * TRANSFER:
            source.retune(1.81e9)

    with _source(driver, settle_s=0.005) as source:
        blocks = _collect(source, 30 * TRANSFER, retune_once)
    retuned = [b for b in blocks if b.retuned]
    assert len(retuned) == 1 and retuned[0].center_freq == 1.81e9
    assert retuned[0].lost_before >= 0.005 * RATE
    assert source.stats.samples_discarded == retuned[0].lost_before == retuned[0].discarded_before
    assert source.stats.samples_lost == 0
    assert driver.calls.index(("cancel", None)) + 1 == driver.calls.index(("freq", 1.81e9))
    assert len(driver.instances) == 1


def test_close_from_another_thread_stops_the_stream_at_once() -> None:
    driver = fake_driver(_data(), ["stall_after:0"])
    source = _source(driver, stall_timeout=60)
    source.open()
    closer = threading.Timer(0.2, source.close)
    closer.start()
    started = time.monotonic()
    assert list(source.blocks()) == []
    assert time.monotonic() - started < 1.0
    closer.join()
    assert driver.instances[0].closed and ("cancel", None) in driver.calls


@pytest.mark.parametrize(
    ("device", "index"), [(None, 0), ("1", 1), ("SERIAL-B", 1), ("00000007", 2)]
)
def test_device_is_found_by_serial_or_index(device: str | None, index: int) -> None:
    driver = fake_driver(_data(0.01), serials=["00000001", "SERIAL-B", "00000007"])
    with _source(driver, device=device) as source:
        next(source.blocks())
    assert driver.instances[0].index == index


@pytest.mark.parametrize(
    ("serials", "openings", "message"),
    [
        ([], ["normal"], "no RTL-SDR found"),
        (["00000001"], ["denied"], "access denied; install librtlsdr's udev rules"),
        (["00000001"], ["busy"], "busy: another program or the dvb_usb_rtl28xxu"),
    ],
)
def test_open_failures_are_one_line(serials: list[str], openings: list[str], message: str) -> None:
    driver = fake_driver(_data(0.01), openings, serials)
    with pytest.raises(DeviceError, match=message) as err:
        _source(driver).open()
    assert "\n" not in str(err.value)
    with pytest.raises(DeviceError, match="no RTL-SDR matches '5'; found #0 serial 00000001"):
        _source(fake_driver(b""), device="5").open()


def test_list_rtlsdr_names_each_radio() -> None:
    driver = fake_driver(b"", serials=["00000001", "00000001", "ABC"])
    assert list_rtlsdr(driver) == [
        ("rtlsdr:0", "RTL-SDR #0, serial 00000001"),
        ("rtlsdr:1", "RTL-SDR #1, serial 00000001"),
        ("rtlsdr:ABC", "RTL-SDR #2, serial ABC"),
    ]


def test_bad_settings_are_input_errors() -> None:
    with pytest.raises(InputError, match="cannot sample at 600000"):
        RtlSdrSource(FC, 600e3)
    with pytest.raises(InputError, match="multiple of 256"):
        RtlSdrSource(FC, RATE, transfer_samples=1000)
    with pytest.raises(InputError, match="direct sampling"):
        RtlSdrSource(FC, RATE, direct_sampling=3)


def test_gain_changes_while_streaming() -> None:
    driver = fake_driver(_data(0.4))
    blocks: list[IQBlock] = []
    with _source(driver) as source:
        for block in source.blocks():
            blocks.append(block)
            if len(blocks) == 3:
                source.set_gain(19.0)  # the nearest R820T gain is 19.7 dB
            if len(blocks) == 6:
                break
    assert ("gain", 19.7) in driver.calls
    assert not any(b.lost_before for b in blocks)  # the stream was not interrupted

"""What the radios share: device names, DC spike removal, sample accounting, backoff."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.errors import InputError
from monitor.sources.radio import (
    Backoff,
    BlockStamper,
    DcBlocker,
    DeviceSpec,
    list_devices,
    open_radio,
    parse_device,
)
from monitor.sources.rtlsdr import RtlSdrSource
from monitor.sources.rtltcp import RtlTcpSource
from monitor.sources.soapy import SoapySource


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("rtlsdr", DeviceSpec("rtlsdr")),
        ("rtlsdr:1", DeviceSpec("rtlsdr", device="1")),
        ("RTLSDR:00000001", DeviceSpec("rtlsdr", device="00000001")),
        ("rtltcp:192.168.1.5:1234", DeviceSpec("rtltcp", host="192.168.1.5", port=1234)),
        ("rtltcp:pi.local", DeviceSpec("rtltcp", host="pi.local", port=1234)),
        ("rtltcp:[::1]:7373", DeviceSpec("rtltcp", host="::1", port=7373)),
        ("soapy", DeviceSpec("soapy")),
        ("soapy:driver=hackrf,serial=0000abcd",
         DeviceSpec("soapy", args={"driver": "hackrf", "serial": "0000abcd"})),
        ("soapy:driver=uhd, type=b200",
         DeviceSpec("soapy", args={"driver": "uhd", "type": "b200"})),
        ("synthetic", DeviceSpec("synthetic")),
    ],
)
def test_device_names_parse(spec: str, parsed: DeviceSpec) -> None:
    assert parse_device(spec) == parsed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hackrf", "unknown device 'hackrf'; use one of: rtlsdr"),
        ("rtltcp:", "write rtltcp:HOST:PORT"),
        ("rtltcp:host:port", "write rtltcp:HOST:PORT"),
        ("rtltcp:host:70000", "port 70000 is not between 1 and 65535"),
        ("soapy:hackrf", "'hackrf' is not KEY=VALUE"),
        ("soapy:=x", "'=x' is not KEY=VALUE"),
        ("rtlsdr:a b", "bad RTL-SDR index or serial"),
    ],
)
def test_bad_device_names_say_how(spec: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        parse_device(spec)
    assert err.value.exit_status == 2


def test_dc_blocker_removes_the_offset_and_keeps_a_carrier() -> None:
    rate, n, bin_ = 2.4e6, 4096, 328
    t = np.arange(60 * n) / rate
    rng = np.random.default_rng(0)
    tone = 0.3 * np.exp(2j * np.pi * bin_ * rate / 65536 * t)
    noise = 0.05 * (rng.standard_normal(len(t)) + 1j * rng.standard_normal(len(t)))
    x = (tone + noise + (0.08 - 0.05j)).astype(np.complex64)
    dc = DcBlocker(rate)
    y = np.concatenate([dc(block.copy()) for block in x.reshape(-1, n)])
    assert abs(y[:n].mean()) < 0.01
    assert abs(y.mean()) < 0.002
    spectrum = np.abs(np.fft.fft(y[-65536:])) / 65536
    assert spectrum[bin_] == pytest.approx(0.3, rel=0.02)
    assert spectrum[0] < 0.002
    dc.reset()
    assert abs(dc(np.full(n, 0.5 + 0.5j, np.complex64)).mean()) < 1e-6


def test_backoff_grows_to_its_cap_and_resets() -> None:
    backoff = Backoff(0.5, 4.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_stamper_counts_every_missing_sample_and_keeps_time_exact() -> None:
    stamper = BlockStamper(1e6, 1.8e9, dc_block=False)
    stamper.lose(10)
    stamper.discard(10)
    assert stamper.stats.samples_lost == stamper.stats.samples_discarded == 0
    first = stamper.stamp(np.zeros(100, np.complex64), arrival=1000.0)
    assert (first.first_sample, first.lost_before) == (0, 0)
    assert first.time == pytest.approx(1000.0 - 100e-6)
    stamper.lose(stamper.samples_in(0.001))
    stamper.retune(1.81e9)
    stamper.discard(50)
    second = stamper.stamp(np.zeros(100, np.complex64), arrival=2000.0)
    assert (second.first_sample, second.lost_before) == (1150, 1050)
    assert second.retuned and second.center_freq == 1.81e9
    assert second.time == pytest.approx(first.time + 1150e-6)
    third = stamper.stamp(np.zeros(100, np.complex64), arrival=2000.1)
    assert not third.retuned and third.lost_before == 0
    stats = stamper.stats
    assert (stats.samples_received, stats.samples_lost, stats.samples_discarded) == (300, 1000, 50)
    assert third.end_sample == sum((stats.samples_received, stats.samples_lost,
                                    stats.samples_discarded))
    assert stamper.samples_in(-1.0) == 0


def test_list_devices_gives_lines_even_without_radios() -> None:
    for line in list_devices():
        assert line.startswith("# ") or "\t" in line


def test_open_radio_makes_each_source_unopened() -> None:
    rtl = open_radio("rtlsdr:1", center_freq=1.8e9, sample_rate=None, gain="20.7")
    assert isinstance(rtl, RtlSdrSource) and rtl.sample_rate == 2.4e6
    tcp = open_radio("rtltcp:localhost:1", center_freq=1.8e9, sample_rate=1.92e6)
    assert isinstance(tcp, RtlTcpSource) and tcp.sample_rate == 1.92e6
    soapy = open_radio("soapy:driver=hackrf", center_freq=1.8e9, sample_rate=10e6, gain="Auto")
    assert isinstance(soapy, SoapySource) and soapy.center_freq == 1.8e9


@pytest.mark.parametrize(
    ("device", "options", "message"),
    [
        ("rtlsdr", {"center_freq": None}, "needs --fc"),
        ("rtlsdr", {"gain": "loud"}, "--gain must be a number of dB or auto"),
        ("rtlsdr", {"sample_rate": 5e6}, "cannot sample at 5e"),
        ("soapy:driver=hackrf", {}, "needs --rate"),
        ("synthetic", {}, "not a radio"),
    ],
)
def test_open_radio_refuses_what_cannot_work(device: str, options: dict, message: str) -> None:
    settings = {"center_freq": 1.8e9, "sample_rate": None, **options}
    with pytest.raises(InputError, match=message):
        open_radio(device, **settings)

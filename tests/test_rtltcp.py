"""rtl_tcp: a real server on loopback serving a recording at its pace, behaving and not."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from monitor.errors import DeviceError, InputError
from monitor.iq_formats import parse_datatype, to_raw
from monitor.sources.base import IQBlock
from monitor.sources.files import open_recording
from monitor.sources.radio import Backoff
from monitor.sources.rtltcp import RtlTcpSource
from tests.rtltcp_server import RtlTcpServer

pytestmark = pytest.mark.timeout(20)

RATE = 1.92e6
FC = 1.8e9
CU8 = parse_datatype("cu8")
DC = 0.1 + 0.05j


def _recording(tmp_path: Path, seconds: float = 0.25, seed: int = 1) -> bytes:
    """A raw cu8 recording on disk (random, so any reordering shows, with a DC offset as from
    LO leakage), read back as bytes."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    iq = 0.3 * (rng.standard_normal(n) + 1j * rng.standard_normal(n)) + DC
    iq = iq.real.clip(-0.99, 0.99) + 1j * iq.imag.clip(-0.99, 0.99)
    path = tmp_path / "rec.cu8"
    to_raw(np.asarray(iq, np.complex128), CU8).tofile(path)
    return open_recording(path, "cu8", RATE, FC).samples.tobytes()


def _iq(data: bytes) -> np.ndarray:
    return (np.frombuffer(data, np.uint8).astype(np.float32) - 127.5).view(np.complex64) / 128


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    servers: list[RtlTcpServer] = []

    def start(behaviours: Sequence[str] = ("normal",), **kwargs: object) -> RtlTcpServer:
        server = RtlTcpServer(_recording(tmp_path), behaviours, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _source(server: RtlTcpServer, **kwargs: object) -> RtlTcpSource:
    options: dict = {"settle_s": 0.0, "dc_block": False, "block_samples": 4096,
                     "backoff": Backoff(0.05, 0.2), "connect_timeout": 1.0, "stall_timeout": 1.0}
    options.update(kwargs)
    return RtlTcpSource("127.0.0.1", server.port, FC, RATE, **options)


def _collect(source: RtlTcpSource, samples: int) -> list[IQBlock]:
    blocks: list[IQBlock] = []
    for block in source.blocks():
        blocks.append(block)
        if blocks[-1].end_sample >= samples:
            break
    return blocks


def _check_indices(blocks: list[IQBlock]) -> None:
    for before, after in itertools.pairwise(blocks):
        assert after.first_sample == before.end_sample + after.lost_before


def test_streams_the_recording_in_order_at_its_pace(serve) -> None:
    server = serve()
    source = _source(server, gain=20.7, ppm=-3, bias_tee=True)
    started = time.monotonic()
    with source:
        blocks = _collect(source, len(server.data) // 2)
    elapsed = time.monotonic() - started
    got = np.concatenate([b.samples for b in blocks])
    np.testing.assert_array_equal(got, _iq(server.data)[: len(got)])
    assert len(got) == len(server.data) // 2
    assert blocks[0].first_sample == 0
    assert all(b.lost_before == 0 and not b.retuned for b in blocks)
    _check_indices(blocks)
    assert elapsed > 0.8 * len(got) / RATE
    assert blocks[-1].time - blocks[0].time == pytest.approx(blocks[-1].first_sample / RATE)
    assert server.commands[:6] == [
        (0x02, 1_920_000), (0x01, 1_800_000_000), (0x03, 1), (0x04, 207), (0x08, 0),
        (0x05, 2**32 - 3),
    ]
    assert (0x0E, 1) in server.commands
    assert "R820T, 29 gains" in source.describe()
    assert source.stats.samples_received == len(got)


def test_settle_time_is_skipped_before_the_stream_begins(serve) -> None:
    server = serve()
    with _source(server, settle_s=0.01) as source:
        blocks = _collect(source, 20_000)
    skipped = round(0.01 * RATE)
    assert blocks[0].first_sample == 0 and blocks[0].lost_before == 0
    got = np.concatenate([b.samples for b in blocks])
    np.testing.assert_array_equal(got, _iq(server.data)[skipped : skipped + len(got)])


def test_a_backlog_from_before_the_first_read_is_skipped(tmp_path: Path) -> None:
    """The monitor connects, then loads its model: what the server made meanwhile is stale, and
    read at once it would come faster than real time."""
    server = RtlTcpServer(_recording(tmp_path, seconds=2.0), rate=RATE)
    try:
        with _source(server, stall_timeout=0.5) as source:  # shorter than the wait: no alarm
            time.sleep(0.8)
            started = time.monotonic()
            blocks = _collect(source, round(0.4 * RATE))
            elapsed = time.monotonic() - started
    finally:
        server.stop()
    reference = _iq(server.data)
    head = blocks[0].samples[:64]
    first = next(int(k) for k in np.flatnonzero(reference == head[0])
                 if np.array_equal(reference[k : k + len(head)], head))
    got = np.concatenate([b.samples for b in blocks])
    np.testing.assert_array_equal(got, reference[first : first + len(got)])
    assert first >= 0.7 * RATE
    assert blocks[0].first_sample == 0 and source.stats.samples_lost == 0
    assert server.connections == 1
    # the stream then comes at its pace: 0.4 s of it takes most of 0.4 s, not a burst
    assert elapsed > 0.3


def test_odd_chunks_keep_i_and_q_paired(serve) -> None:
    server = serve(chunk=1001)
    with _source(server, block_samples=3000) as source:
        blocks = _collect(source, 100_000)
    got = np.concatenate([b.samples for b in blocks])
    np.testing.assert_array_equal(got, _iq(server.data)[: len(got)])


def test_retune_discards_the_old_view_and_marks_the_block(serve) -> None:
    server = serve()
    with _source(server, settle_s=0.005) as source:
        blocks: list[IQBlock] = []
        for block in source.blocks():
            blocks.append(block)
            if len(blocks) == 5:
                source.retune(1.81e9)
            if len(blocks) == 12:
                break
    retuned = [i for i, b in enumerate(blocks) if b.retuned]
    assert len(retuned) == 1
    after = blocks[retuned[0]]
    assert after.center_freq == 1.81e9 and blocks[0].center_freq == FC
    assert after.lost_before >= round(0.005 * RATE)
    assert source.stats.samples_discarded == after.lost_before == after.discarded_before
    assert source.stats.samples_lost == 0
    assert (0x01, 1_810_000_000) in server.commands
    _check_indices(blocks)
    reference = _iq(server.data)[round(0.005 * RATE) :]
    for block in blocks:
        expected = reference[block.first_sample : block.end_sample]
        np.testing.assert_array_equal(block.samples, expected)


@pytest.mark.parametrize("behaviour", ["close_after:200001", "stall_after:100000"])
def test_lost_link_reconnects_and_counts_the_gap(serve, behaviour: str) -> None:
    server = serve([behaviour, "normal"])
    with _source(server, stall_timeout=0.3) as source:
        blocks = _collect(source, 300_000)
    gaps = [b for b in blocks if b.lost_before]
    assert source.stats.reconnects == 1 and len(gaps) == 1
    wait = 0.3 if behaviour.startswith("stall") else 0.05
    assert gaps[0].lost_before >= 0.9 * wait * RATE
    assert source.stats.samples_lost == gaps[0].lost_before
    _check_indices(blocks)
    first, second = server.served[0], server.served[1]
    before = np.concatenate([b.samples for b in blocks if b.end_sample <= gaps[0].first_sample])
    np.testing.assert_array_equal(before, _iq(server.data[: first[1] & ~1]))
    after = np.concatenate([b.samples for b in blocks if b.first_sample >= gaps[0].first_sample])
    np.testing.assert_array_equal(after, _iq(server.data[second[0] :])[: len(after)])


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("bad_magic", "not an rtl_tcp server"),
        ("garbage", "not an rtl_tcp server"),
        ("huge_gains", "4000000000 gains"),
        ("silent", "no rtl_tcp header within"),
    ],
)
def test_a_server_that_is_not_rtl_tcp_is_refused_in_one_line(serve, behaviour, message) -> None:
    server = serve([behaviour])
    source = _source(server, connect_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(DeviceError, match=message) as err:
        source.open()
    assert time.monotonic() - started < 2
    assert "\n" not in str(err.value) and str(server.port) in str(err.value)


def test_nothing_listening_is_a_device_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    source = RtlTcpSource("127.0.0.1", port, FC, RATE)
    with pytest.raises(DeviceError, match="cannot connect"):
        source.open()


def test_a_server_gone_bad_ends_in_a_device_error_after_the_attempts(serve) -> None:
    server = serve(["close_after:50000", "huge_gains", "bad_magic", "garbage"])
    with _source(server, max_reconnects=3) as source:
        blocks: list[IQBlock] = []
        with pytest.raises(DeviceError, match="3 reconnect attempts failed"):
            blocks.extend(source.blocks())
    assert sum(len(b.samples) for b in blocks) == 25_000
    assert source.stats.reconnects == 0


def test_a_hostile_reconnect_is_retried_until_the_server_behaves(serve) -> None:
    server = serve(["close_after:50000", "huge_gains", "garbage", "normal"])
    with _source(server) as source:
        blocks = _collect(source, 150_000)
    assert source.stats.reconnects == 1 and server.connections == 4
    assert sum(b.lost_before for b in blocks) == source.stats.samples_lost > 0


def test_close_from_another_thread_ends_a_stalled_stream_at_once(serve) -> None:
    server = serve(["stall_after:0"])
    source = _source(server, stall_timeout=60)
    source.open()
    threading.Timer(0.2, source.close).start()
    started = time.monotonic()
    assert list(source.blocks()) == []
    assert time.monotonic() - started < 1.0


def test_bad_settings_are_input_errors() -> None:
    with pytest.raises(InputError, match="cannot sample"):
        RtlTcpSource("127.0.0.1", 1234, FC, 5e6)
    with pytest.raises(InputError, match="cannot tune"):
        RtlTcpSource("127.0.0.1", 1234, 5e9, RATE)
    with pytest.raises(InputError, match="gain"):
        RtlTcpSource("127.0.0.1", 1234, FC, RATE, gain="loud")


def test_dc_spike_is_removed_on_the_stream(serve) -> None:
    server = serve()
    with _source(server, dc_block=True) as source:
        blocks = _collect(source, 200_000)
    assert np.mean(_iq(server.data)) == pytest.approx(DC, abs=0.01)
    assert abs(np.mean(np.concatenate([b.samples for b in blocks]))) < abs(DC) / 10


def test_a_trickling_server_counts_as_stalled(serve) -> None:
    server = serve(["trickle", "normal"])
    with _source(server, stall_timeout=0.3) as source:
        blocks = _collect(source, 50_000)
    assert source.stats.reconnects == 1 and server.connections == 2
    assert blocks[0].first_sample == 0


def test_gain_changes_while_streaming(serve) -> None:
    server = serve()
    with _source(server) as source:
        for i, _ in enumerate(source.blocks()):
            if i == 2:
                source.set_gain(25.4)
            if i == 4:
                source.set_gain("auto")
            if i == 6:
                break
        with pytest.raises(InputError):
            source.set_gain("loud")
    manual = server.commands.index((0x03, 1))  # the run started on the tuner's AGC
    assert server.commands[manual + 1] == (0x04, 254)
    assert server.commands[-1] == (0x03, 0)

"""A client of rtl_tcp, the RTL-SDR network server of librtlsdr (osmocom ``src/rtl_tcp.c``).

The protocol: on connecting, the server sends a 12-byte header, the magic ``RTL0`` then the
tuner type and the number of tuner gains as big-endian 32-bit integers, and from then on an
endless stream of unsigned 8-bit I/Q pairs. The client sends 5-byte commands, one byte of command
and a big-endian 32-bit parameter: 0x01 frequency (Hz), 0x02 sample rate (S/s), 0x03 gain mode
(1 manual, 0 the tuner's AGC), 0x04 gain (tenths of dB), 0x05 frequency correction (ppm), 0x08
the RTL2832's AGC, 0x0e bias tee. (pyrtlsdr's own TCP client speaks another protocol.)

The server is untrusted: the header is checked (magic, a known tuner type, a plausible gain
count), every read is bounded by the block buffer, every wait times out, and a server that falls
silent for ``stall_timeout`` (or sends less than a tenth of the sample rate's bytes over it), or
drops the connection, is reconnected with backoff. The samples of
the gap are counted as lost from the wall clock (what the server had buffered when the link broke
cannot be known). The first ``settle_s`` of samples after connecting, and after a retune also the
bytes already waiting in the socket, belong to the server's old settings and are discarded.

The server streams from the moment it is connected, and the monitor connects before it loads its
model (a missing server is the first thing to report). What piles up in the meantime is
discarded when the stream begins if it is more than ``STALE_S`` of stream: it is stale for a
live view, and read at once it would arrive faster than real time and overflow the monitor's
queue.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import socket
import struct
import termios
import threading
import time
from collections.abc import Iterator

import numpy as np

from monitor.errors import DeviceError, InputError
from monitor.iq_formats import from_raw, parse_datatype
from monitor.sources.base import IQBlock
from monitor.sources.radio import (
    STALE_S,
    Backoff,
    BlockStamper,
    RadioSource,
    check_gain,
    one_line,
)
from monitor.sources.rtlsdr import TUNERS, check_rtl_frequency, check_rtl_rate

__all__ = ["HEADER", "MAX_GAIN_COUNT", "RtlTcpSource"]

log = logging.getLogger(__name__)

#: The server's greeting: magic, tuner type, tuner gain count.
HEADER = struct.Struct(">4sII")
#: A command: code and parameter.
COMMAND = struct.Struct(">BI")
#: The most gains a tuner has is 29 (R820T); a header claiming more than this is not rtl_tcp.
MAX_GAIN_COUNT = 64
SET_FREQUENCY = 0x01
SET_SAMPLE_RATE = 0x02
SET_GAIN_MODE = 0x03
SET_GAIN = 0x04
SET_FREQ_CORRECTION = 0x05
SET_AGC_MODE = 0x08
SET_BIAS_TEE = 0x0E
_CU8 = parse_datatype("cu8")
_POLL = 0.1


class _LinkError(Exception):
    """The connection failed, broke, stalled, or the peer is not an rtl_tcp server."""


class RtlTcpSource(RadioSource):
    """An RTL-SDR behind an rtl_tcp server.

    Args:
        host: the server's name or address.
        port: its TCP port (rtl_tcp's default is 1234).
        center_freq: Hz.
        sample_rate: S/s; 2.4e6 or 1.92e6 match the models.
        gain: ``"auto"`` (the tuner's AGC) or dB (the server sets the nearest it has).
        ppm: frequency correction; None leaves the server's.
        bias_tee: power the antenna port; None leaves it as the server has it.
        rtl_agc: the RTL2832's digital AGC.
        dc_block: remove the DC spike (:class:`~monitor.sources.radio.DcBlocker`).
        block_samples: samples per block.
        settle_s: seconds of samples discarded after connecting and after a retune.
        connect_timeout: seconds to connect and receive the header.
        stall_timeout: seconds without data after which the link counts as lost.
        backoff: waits between reconnect attempts.
        max_reconnects: failed attempts in a row before giving up; None: never give up.

    Raises:
        InputError: for a rate, frequency or gain the server cannot take.
    """

    def __init__(
        self,
        host: str,
        port: int,
        center_freq: float,
        sample_rate: float = 2.4e6,
        *,
        gain: float | str = "auto",
        ppm: int | None = None,
        bias_tee: bool | None = None,
        rtl_agc: bool = False,
        dc_block: bool = True,
        block_samples: int = 65536,
        settle_s: float = 0.25,
        connect_timeout: float = 5.0,
        stall_timeout: float = 3.0,
        backoff: Backoff | None = None,
        max_reconnects: int | None = None,
    ) -> None:
        check_rtl_rate(sample_rate)
        check_rtl_frequency(center_freq)
        check_gain(gain)
        if block_samples <= 0:
            raise InputError(f"block_samples must be positive, got {block_samples}")
        self._host, self._port = host, port
        self._center_freq = float(center_freq)
        self._gain = gain
        self._ppm = ppm
        self._bias_tee = bias_tee
        self._rtl_agc = rtl_agc
        self._block_bytes = 2 * block_samples
        self._settle_bytes = 2 * round(settle_s * sample_rate)
        self._connect_timeout = connect_timeout
        self._stall_timeout = stall_timeout
        self._backoff = backoff or Backoff()
        self._max_reconnects = max_reconnects
        self._stamper = BlockStamper(sample_rate, center_freq, dc_block)
        self._stop = threading.Event()
        self._io = threading.Lock()
        self._retune_lock = threading.Lock()
        self._retune_to: float | None = None
        self._sock: socket.socket | None = None
        self._opened = False
        self._tuner = "unknown"
        self._gain_count = 0
        self._skip = 0
        self._skipped = 0
        self._last_wall = 0.0
        self._last_mono = 0.0
        self._window_start = 0.0
        self._window_bytes = 0
        self._connected_mono = 0.0
        self._scratch = memoryview(bytearray(min(self._block_bytes, 1 << 16)))

    @property
    def name(self) -> str:
        """``rtl_tcp HOST:PORT``."""
        return f"rtl_tcp {self._host}:{self._port}"

    def describe(self) -> str:
        return (f"{self.name} ({self._tuner}, {self._gain_count} gains) at "
                f"{self.sample_rate / 1e6:g} MS/s")

    def open(self) -> None:
        """Connect, check the header, send the settings.

        Raises:
            DeviceError: the server is unreachable, silent, or not an rtl_tcp server.
        """
        with self._io:
            if self._opened or self._stop.is_set():
                return
            try:
                self._connect()
            except _LinkError as exc:
                raise DeviceError(f"{self.name}: {exc}") from None
            self._opened = True
        log.info("%s: streaming at %.6g Hz", self.describe(), self._center_freq)

    def retune(self, center_freq: float) -> None:
        """Tune to ``center_freq`` between blocks; what the server sent before is discarded.

        Raises:
            InputError: a frequency an RTL-SDR cannot tune to.
        """
        check_rtl_frequency(center_freq)
        with self._retune_lock:
            self._retune_to = self._center_freq = float(center_freq)

    def set_gain(self, gain: float | str) -> None:
        """``"auto"`` (the tuner's AGC) or dB (the server takes the nearest it has), sent at
        once; a reconnect sends it again.

        Raises:
            InputError: a gain that is neither ``"auto"`` nor a number.
        """
        check_gain(gain)
        self._gain = gain
        with self._io:
            if self._sock is None:
                return
            try:
                self._send_gain()
            except _LinkError as exc:
                log.warning("%s lost: %s; reconnecting", self.name, exc)
                self._disconnect()

    def close(self) -> None:
        self._stop.set()
        with self._io:
            self._disconnect()

    def blocks(self) -> Iterator[IQBlock]:
        """Yield blocks of ``block_samples`` until :meth:`close`; a partial one before a gap.

        Raises:
            DeviceError: the link was lost and ``max_reconnects`` attempts failed.
        """
        self.open()
        self._skip_backlog()
        buf = np.empty(self._block_bytes, np.uint8)
        view = memoryview(buf)
        filled = 0
        while not self._stop.is_set():
            with self._io:
                if self._stop.is_set():
                    break
                if self._sock is None:
                    self._reconnect()
                    continue
                with self._retune_lock:
                    freq, self._retune_to = self._retune_to, None
                got = 0
                if freq is None:
                    try:
                        got = self._receive(view[filled:])
                    except _LinkError as exc:
                        log.warning("%s lost: %s; reconnecting", self.name, exc)
                        self._disconnect()
            if freq is not None or self._sock is None:
                if filled > 1:
                    yield self._block(buf, filled & ~1)
                if freq is not None:
                    self._retune(freq, filled & 1)
                filled = 0
                continue
            filled += got
            if filled == self._block_bytes:
                yield self._block(buf, filled)
                filled = 0

    def _block(self, buf: np.ndarray, nbytes: int) -> IQBlock:
        self._backoff.reset()
        return self._stamper.stamp(from_raw(buf[:nbytes], _CU8), self._last_wall)

    def _retune(self, freq: float, odd: int) -> None:
        """Send the new frequency and skip what the server sent before it took effect: the
        bytes already waiting here and ``settle_s`` more (and the half pair of an odd count)."""
        with self._io:
            if self._sock is None:
                return
            try:
                self._send(SET_FREQUENCY, round(freq))
                waiting = _waiting_bytes(self._sock)
            except _LinkError as exc:
                log.warning("%s lost: %s; reconnecting", self.name, exc)
                self._disconnect()
                return
            self._stamper.retune(freq)
            self._skip = (waiting + 1) // 2 * 2 + self._settle_bytes + odd
            self._skipped = odd
        log.info("%s: retuned to %.6g Hz", self.name, freq)

    def _skip_backlog(self) -> None:
        """Discard what the server has made since the connection when that is more than
        ``STALE_S`` of stream. It is counted from the clock, not from what waits here: most of
        a backlog waits in the server (its send buffer and, in rtl_tcp, its list of transfers)
        and would follow in a burst."""
        with self._io:
            if self._sock is None:
                return
            now = time.monotonic()
            # the stall and trickle checks start with the stream, not with the connection
            self._last_mono = self._window_start = now
            self._window_bytes = 0
            made = round((now - self._connected_mono) * self.sample_rate)
            if made < STALE_S * self.sample_rate:
                return
            self._skip = max(self._skip, 2 * made)  # the settle time is part of it
            try:
                self._receive(None)
            except _LinkError as exc:
                log.warning("%s lost: %s; reconnecting", self.name, exc)
                self._disconnect()

    def _receive(self, view: memoryview | None) -> int:
        """Receive into ``view`` (after any bytes to skip); 0 when interrupted by close or a
        retune, or once the bytes to skip are gone where ``view`` is None.

        Raises:
            _LinkError: the server closed, failed or fell silent for ``stall_timeout``.
        """
        assert self._sock is not None
        while True:
            if view is None and not self._skip:
                return 0
            target = self._scratch[: min(self._skip, len(self._scratch))] if self._skip else view
            try:
                got = self._sock.recv_into(target)
            except TimeoutError:
                if self._stop.is_set() or self._retune_to is not None:
                    return 0
                if time.monotonic() - self._last_mono > self._stall_timeout:
                    raise _LinkError(f"no data for {self._stall_timeout:g} s") from None
                continue
            except OSError as exc:
                raise _LinkError(one_line(exc)) from None
            if not got:
                raise _LinkError("the server closed the connection")
            self._last_wall, self._last_mono = time.time(), time.monotonic()
            self._check_rate(got)
            if not self._skip:
                return got
            self._skip -= got
            self._skipped += got
            if not self._skip:
                self._stamper.discard(self._skipped // 2)
                self._skipped = 0

    def _check_rate(self, got: int) -> None:
        """A server that trickles data is as good as silent: over each ``stall_timeout`` it must
        send a tenth of what the sample rate makes at least.

        Raises:
            _LinkError: it sent less.
        """
        self._window_bytes += got
        elapsed = self._last_mono - self._window_start
        if elapsed < self._stall_timeout:
            return
        expected = 2 * self.sample_rate * elapsed
        if self._window_bytes < expected / 10:
            raise _LinkError(f"the server sent {self._window_bytes} bytes in {elapsed:.3g} s, "
                             f"not the {expected:.0f} of {self.sample_rate:g} S/s")
        self._window_start, self._window_bytes = self._last_mono, 0

    def _reconnect(self) -> None:
        """Reconnect with backoff (caller holds the I/O lock); the gap is counted as lost.

        Raises:
            DeviceError: ``max_reconnects`` attempts in a row failed.
        """
        failures = 0
        since = self._last_wall or time.time()
        while not self._stop.wait(self._backoff.next_delay()):
            try:
                self._connect()
            except _LinkError as exc:
                failures += 1
                log.warning("%s: reconnect failed: %s", self.name, exc)
                if self._max_reconnects is not None and failures >= self._max_reconnects:
                    raise DeviceError(f"{self.name} lost and {failures} reconnect attempts "
                                      f"failed; last: {exc}") from None
                continue
            gap = self._stamper.samples_in(self._last_wall - since)
            self._stamper.lose(gap)
            self._stamper.restart()
            self._stamper.stats.reconnects += 1
            log.warning("%s: reconnected after %.3g s; %d samples lost", self.name,
                        self._last_wall - since, gap)
            return

    def _connect(self) -> None:
        """Connect, read and check the header, send the settings; skip the settle time.

        Raises:
            _LinkError: for any failure, saying which.
        """
        sock = self._dial()
        try:
            header = self._receive_exactly(sock, HEADER.size)
            magic, tuner, gains = HEADER.unpack(header)
            if magic != b"RTL0":
                raise _LinkError(f"not an rtl_tcp server: it greeted with {header!r}, not RTL0")
            if tuner >= len(TUNERS) or gains > MAX_GAIN_COUNT:
                raise _LinkError(f"not an rtl_tcp server: implausible header (tuner type "
                                 f"{tuner}, {gains} gains)")
            self._sock = sock
            self._send_settings()
        except _LinkError:
            sock.close()
            self._sock = None
            raise
        self._tuner, self._gain_count = TUNERS[tuner], gains
        self._window_start, self._window_bytes = time.monotonic(), 0
        self._connected_mono = self._window_start
        if self._stamper.center_freq != self._center_freq:
            self._stamper.retune(self._center_freq)
        self._last_wall, self._last_mono = time.time(), time.monotonic()
        self._skip, self._skipped = self._settle_bytes, 0

    def _dial(self) -> socket.socket:
        """A connected socket, its reads timing out every ``_POLL`` s to notice :meth:`close`."""
        try:
            addresses = socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise _LinkError(f"cannot resolve {self._host}: {one_line(exc)}") from None
        problem = "no address"
        for family, kind, proto, _, address in addresses:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            code = sock.connect_ex(address)
            deadline = time.monotonic() + self._connect_timeout
            while code in (errno.EINPROGRESS, errno.EWOULDBLOCK) and not self._stop.is_set():
                if select.select([], [sock], [], _POLL)[1]:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                elif time.monotonic() > deadline:
                    code = errno.ETIMEDOUT
            if code == 0 and not self._stop.is_set():
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(_POLL)
                return sock
            sock.close()
            problem = "closed" if self._stop.is_set() else f"cannot connect: {_strerror(code)}"
        raise _LinkError(problem)

    def _receive_exactly(self, sock: socket.socket, size: int) -> bytes:
        data = b""
        deadline = time.monotonic() + self._connect_timeout
        while len(data) < size:
            if self._stop.is_set():
                raise _LinkError("closed")
            if time.monotonic() > deadline:
                raise _LinkError(f"no rtl_tcp header within {self._connect_timeout:g} s")
            try:
                chunk = sock.recv(size - len(data))
            except TimeoutError:
                continue
            except OSError as exc:
                raise _LinkError(one_line(exc)) from None
            if not chunk:
                raise _LinkError("the server closed the connection before its header")
            data += chunk
        return data

    def _send_settings(self) -> None:
        self._send(SET_SAMPLE_RATE, round(self.sample_rate))
        self._send(SET_FREQUENCY, round(self._center_freq))
        self._send_gain()
        self._send(SET_AGC_MODE, int(self._rtl_agc))
        if self._ppm is not None:
            self._send(SET_FREQ_CORRECTION, int(self._ppm))
        if self._bias_tee is not None:
            self._send(SET_BIAS_TEE, int(self._bias_tee))

    def _send_gain(self) -> None:
        if self._gain == "auto":
            self._send(SET_GAIN_MODE, 0)
        else:
            self._send(SET_GAIN_MODE, 1)
            self._send(SET_GAIN, round(10 * float(self._gain)))

    def _send(self, command: int, value: int) -> None:
        """Send one command; a negative value goes as its two's complement, as rtl_tcp reads
        it."""
        assert self._sock is not None
        try:
            self._sock.sendall(COMMAND.pack(command, value & 0xFFFFFFFF))
        except OSError as exc:
            raise _LinkError(f"cannot send command {command:#04x}: {one_line(exc)}") from None

    def _disconnect(self) -> None:
        """Close the connection; samples being skipped when it broke count as discarded."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._stamper.discard(self._skipped // 2)
        self._skip = self._skipped = 0


def _strerror(code: int) -> str:
    return f"{errno.errorcode.get(code, code)} ({os.strerror(code)})"


def _waiting_bytes(sock: socket.socket) -> int:
    """Bytes received by the kernel and not yet read (0 where the platform cannot say)."""
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])

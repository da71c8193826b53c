"""RTL-SDR dongles through pyrtlsdr and librtlsdr, streamed asynchronously.

librtlsdr keeps a ring of USB bulk transfers in flight (``rtlsdr_read_async``) and hands each
filled one to a callback, which here only copies it into a bounded queue with ``put_nowait``:
the driver's thread never waits on the monitor. The reader thread takes the transfers from the
queue, stamps them (:class:`~monitor.sources.radio.BlockStamper`) and yields one block each.

What is and is not observable about lost samples:

- a transfer the queue could not take (the monitor fell behind): counted exactly, from the
  sample index every transfer carries (``dropped_transfers``, ``samples_lost``);
- a transfer shorter than asked (``short_reads``): counted; its samples are delivered, and an odd
  byte left over is carried into the next transfer so I and Q stay paired;
- samples the RTL2832's FIFO dropped because no transfer was pending: librtlsdr does not report
  them and they cannot be counted. With 32 transfers in flight (0.9 s at 2.4 MS/s) and a
  callback that only queues, this happens only when the whole process stalls;
- USB transfer errors: librtlsdr counts them internally, reports none, and cancels the stream
  when they persist or the device is gone; that ends in a reconnect, and the samples of the gap
  are counted from the wall clock.

A radio that stops delivering for ``stall_timeout`` seconds is treated as lost too.

A retune stops the stream, tunes and starts it again (pyrtlsdr closes the device when a tuning
call fails, which librtlsdr cannot do while it streams); the samples of the pause and of the
settle time after it are discarded.

The radio streams from :meth:`RtlSdrSource.open`, which the monitor calls before it loads its
model (a missing radio is the first thing to report); the transfers queued in the meantime are
discarded when the stream begins if they hold more than ``STALE_S`` of stream. They are stale
for a live view, and taken at once they would arrive faster than real time and overflow the
monitor's queue.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

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

__all__ = [
    "TUNERS",
    "RtlSdrSource",
    "check_rtl_frequency",
    "check_rtl_rate",
    "list_rtlsdr",
    "load_pyrtlsdr",
]

log = logging.getLogger(__name__)

#: librtlsdr's ``enum rtlsdr_tuner``, by value.
TUNERS = ("unknown", "E4000", "FC0012", "FC0013", "FC2580", "R820T", "R828D")
_E4000 = 1
_CU8 = parse_datatype("cu8")
_POLL = 0.1
_JOIN_TIMEOUT = 3.0
_LIBUSB_ERROR_ACCESS = -3
_LIBUSB_ERROR_BUSY = -6


def check_rtl_rate(rate: float) -> None:
    """Raise InputError unless librtlsdr can sample at ``rate``.

    Raises:
        InputError: outside 225 001-300 000 and 900 001-3 200 000 S/s.
    """
    if not (225_000 < rate <= 300_000 or 900_000 < rate <= 3_200_000):
        raise InputError(
            f"an RTL-SDR cannot sample at {rate:g} S/s: it takes 225001-300000 or "
            "900001-3200000 S/s (2.4e6 and 1.92e6 match the models)"
        )


def check_rtl_frequency(freq: float) -> None:
    """Raise InputError unless ``freq`` fits librtlsdr's 32-bit frequency.

    Raises:
        InputError: not between 0 and 4.29 GHz.
    """
    if not 0 < freq < 2**32:
        raise InputError(f"an RTL-SDR cannot tune to {freq:g} Hz")


def load_pyrtlsdr() -> Any:
    """pyrtlsdr's ``RtlSdr`` class, with librtlsdr loaded.

    Raises:
        DeviceError: pyrtlsdr is not installed or cannot load librtlsdr, saying how to fix it.
    """
    try:
        from rtlsdr import RtlSdr
    except ModuleNotFoundError as exc:
        if exc.name != "rtlsdr":
            raise DeviceError(f"pyrtlsdr cannot be imported: {one_line(exc)}") from None
        raise DeviceError("pyrtlsdr is not installed: pip install pyrtlsdr pyrtlsdrlib") from None
    except (ImportError, OSError, AttributeError) as exc:
        raise DeviceError(
            f"pyrtlsdr cannot load librtlsdr ({one_line(exc)}): pip install pyrtlsdrlib, or "
            "install the system's librtlsdr (apt install librtlsdr0)"
        ) from None
    return RtlSdr


def _serials(driver: Any) -> list[str]:
    try:
        return list(driver.get_device_serial_addresses())
    except OSError as exc:
        raise DeviceError(
            f"cannot read the RTL-SDRs' USB strings ({one_line(exc)}): install librtlsdr's udev "
            "rules (rtl-sdr.rules) so this user may open them"
        ) from None


def list_rtlsdr(driver: Any = None) -> list[tuple[str, str]]:
    """The RTL-SDRs plugged in: (``--device`` name, label) each.

    Args:
        driver: pyrtlsdr's ``RtlSdr`` class, or an object with its interface (tests).

    Raises:
        DeviceError: pyrtlsdr or librtlsdr is missing, or the USB strings cannot be read.
    """
    serials = _serials(driver or load_pyrtlsdr())
    found = []
    for index, serial in enumerate(serials):
        unique = serial and serials.count(serial) == 1
        spec = f"rtlsdr:{serial if unique else index}"
        found.append((spec, f"RTL-SDR #{index}, serial {serial}"))
    return found


class _Session:
    """One opening of the radio: its driver object, its streaming thread and its counters.

    The counters are written by the driver's callback thread and read by the reader thread.
    """

    def __init__(self, sdr: Any, number: int) -> None:
        self.sdr = sdr
        self.number = number
        self.produced = 0
        self.dropped = 0
        self.short_reads = 0
        self.carry: np.ndarray | None = None
        self.last_arrival = time.time()
        self.last_mono = time.monotonic()
        self.ended = threading.Event()
        self.error = ""
        self.thread: threading.Thread | None = None


class RtlSdrSource(RadioSource):
    """An RTL-SDR dongle, streamed through librtlsdr's asynchronous ring of USB transfers.

    Args:
        center_freq: Hz.
        sample_rate: S/s; 2.4e6 or 1.92e6 match the models.
        device: index or serial number (a matching serial wins); None for the first radio.
        gain: ``"auto"`` (the tuner's AGC) or dB, set to the nearest gain the tuner has.
        ppm: frequency correction of the dongle's crystal.
        bias_tee: power the antenna port (RTL-SDR Blog v3/v4); None leaves it as it is.
        offset_tuning: tune the LO off the band centre (E4000 only); None: on for E4000.
        direct_sampling: 0 off, 1 the I branch, 2 the Q branch (HF on modified dongles).
        rtl_agc: the RTL2832's digital AGC.
        dc_block: remove the DC spike (:class:`~monitor.sources.radio.DcBlocker`).
        transfer_samples: samples per USB transfer and per block (a multiple of 256).
        transfers: USB transfers librtlsdr keeps in flight.
        queue_transfers: transfers the queue to the reader holds before it drops.
        settle_s: seconds of samples discarded when the stream starts (after opening, a retune
            or a reconnect), in whole transfers.
        stall_timeout: seconds without samples after which the radio counts as lost.
        backoff: waits between reconnect attempts.
        max_reconnects: failed attempts in a row before giving up; None: never give up.
        driver: pyrtlsdr's ``RtlSdr`` class (the default), or an object with its interface.

    Raises:
        InputError: for a rate, frequency or transfer size the radio cannot take.
    """

    def __init__(
        self,
        center_freq: float,
        sample_rate: float = 2.4e6,
        *,
        device: str | None = None,
        gain: float | str = "auto",
        ppm: int = 0,
        bias_tee: bool | None = None,
        offset_tuning: bool | None = None,
        direct_sampling: int = 0,
        rtl_agc: bool = False,
        dc_block: bool = True,
        transfer_samples: int = 65536,
        transfers: int = 32,
        queue_transfers: int = 64,
        settle_s: float = 0.05,
        stall_timeout: float = 3.0,
        backoff: Backoff | None = None,
        max_reconnects: int | None = None,
        driver: Any = None,
    ) -> None:
        check_rtl_rate(sample_rate)
        check_rtl_frequency(center_freq)
        if transfer_samples <= 0 or transfer_samples % 256:
            raise InputError(f"transfer_samples must be a positive multiple of 256, "
                             f"got {transfer_samples}")
        check_gain(gain)
        if direct_sampling not in (0, 1, 2):
            raise InputError(f"direct sampling is 0 (off), 1 (I) or 2 (Q), got {direct_sampling}")
        self._device = device
        self._center_freq = float(center_freq)
        self._requested_rate = float(sample_rate)
        self._gain = gain
        self._ppm = int(ppm)
        self._bias_tee = bias_tee
        self._offset_tuning = offset_tuning
        self._direct_sampling = direct_sampling
        self._rtl_agc = rtl_agc
        self._transfer_bytes = 2 * transfer_samples
        self._transfers = transfers
        self._settle_samples = round(settle_s * sample_rate)
        self._stall_timeout = stall_timeout
        self._backoff = backoff or Backoff()
        self._max_reconnects = max_reconnects
        self._driver = driver
        self._queue: queue.Queue[tuple[int, int, np.ndarray, float]] = queue.Queue(queue_transfers)
        self._stamper = BlockStamper(sample_rate, center_freq, dc_block)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._retune_lock = threading.Lock()
        self._retune_to: float | None = None
        self._session: _Session | None = None
        self._sessions = 0
        self._opened = False
        self._label = f"RTL-SDR {device}" if device else "RTL-SDR #0"
        self._expected = 0
        self._gap_from: float | None = None
        self._gap_lost = True
        self._seen_dropped = 0
        self._seen_short = 0

    def open(self) -> None:
        """Open and configure the radio and start streaming.

        Raises:
            DeviceError: no RTL-SDR, pyrtlsdr or librtlsdr missing, or the radio failed.
        """
        with self._lock:
            if self._opened or self._stop.is_set():
                return
            self._start(self._open_radio())
            self._opened = True
        log.info("%s: streaming at %.6g Hz", self.describe(), self._center_freq)

    def retune(self, center_freq: float) -> None:
        """Tune to ``center_freq`` between blocks; ``settle_s`` of samples are discarded.

        Raises:
            InputError: a frequency the radio cannot tune to.
        """
        check_rtl_frequency(center_freq)
        with self._retune_lock:
            self._retune_to = self._center_freq = float(center_freq)

    def set_gain(self, gain: float | str) -> None:
        """``"auto"`` (the tuner's AGC) or dB (the nearest gain the tuner has), set at once while
        the stream runs, as rtl_tcp does from its command thread; a reconnect sets it again.

        Raises:
            InputError: a gain that is neither ``"auto"`` nor a number.
        """
        check_gain(gain)
        self._gain = gain
        with self._lock:
            if self._session is not None:
                try:
                    self._set_gain(self._session.sdr)
                except OSError as exc:
                    log.warning("%s: setting the gain failed: %s", self._label, one_line(exc))

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._session is not None:
                self._end(self._session)
                self._session = None

    def blocks(self) -> Iterator[IQBlock]:
        """Yield one block per USB transfer until :meth:`close`.

        Raises:
            DeviceError: the radio was lost and ``max_reconnects`` attempts failed.
        """
        self.open()
        self._skip_backlog()
        while not self._stop.is_set():
            session = self._session
            if session is None:
                self._reconnect()
                continue
            if self._apply_retune(session):
                continue
            try:
                number, start, raw, arrival = self._queue.get(timeout=_POLL)
            except queue.Empty:
                if self._stop.is_set():
                    break
                if session.ended.is_set():
                    self._lose(session, session.error or "the radio stopped streaming")
                elif time.monotonic() - session.last_mono > self._stall_timeout:
                    self._lose(session, f"no samples for {self._stall_timeout:g} s")
                continue
            block = self._take(session, number, start, raw, arrival)
            if block is not None:
                self._backoff.reset()
                yield block

    def _skip_backlog(self) -> None:
        """Discard the transfers queued before the first read when they hold more than
        ``STALE_S`` of stream; the ones the queue had no room for are not counted as dropped
        either: the stream begins after them."""
        with self._lock:
            session = self._session
            if session is None:
                return
            self._seen_dropped = session.dropped
            if self._queue.qsize() * self._transfer_bytes < 2 * STALE_S * self.sample_rate:
                return
            while True:
                try:
                    number, start, raw, _ = self._queue.get_nowait()
                except queue.Empty:
                    break
                if number == session.number:
                    self._expected = start + len(raw) // 2

    def _take(
        self, session: _Session, number: int, start: int, raw: np.ndarray, arrival: float
    ) -> IQBlock | None:
        """Account for one transfer; the block it makes, or None when it is discarded."""
        if number != session.number:
            return None
        self._count(session)
        n = len(raw) // 2
        if self._gap_from is not None:
            gap = self._stamper.samples_in(arrival - n / self.sample_rate - self._gap_from)
            if self._gap_lost:
                self._stamper.lose(gap)
                log.warning("%s: back after a gap of %d samples", self._label, gap)
            else:
                self._stamper.discard(gap)
            self._gap_from = None
        self._stamper.lose(start - self._expected)
        self._expected = start + n
        if start < self._settle_samples:
            self._stamper.discard(n)
            return None
        return self._stamper.stamp(from_raw(raw, _CU8), arrival)

    def _count(self, session: _Session) -> None:
        stats = self._stamper.stats
        stats.dropped_transfers += session.dropped - self._seen_dropped
        stats.short_reads += session.short_reads - self._seen_short
        self._seen_dropped, self._seen_short = session.dropped, session.short_reads

    def _apply_retune(self, session: _Session) -> bool:
        """Stop the stream, tune, start it again; what it held and the pause are discarded.
        Whether a retune was asked for."""
        with self._retune_lock:
            freq, self._retune_to = self._retune_to, None
        if freq is None:
            return False
        with self._lock:
            if self._session is not session:
                return True
            self._stamper.retune(freq)
            stopped = self._end(session, close=False)
            self._account(session, lost=not stopped)
            if not stopped:
                self._session = None
                return True
            try:
                session.sdr.set_center_freq(freq)
            except OSError as exc:
                log.warning("%s lost: retune to %.6g Hz failed: %s; reconnecting", self._label,
                            freq, one_line(exc))
                session.sdr.close()
                self._session = None
                self._gap_lost = True
                return True
            self._start(session.sdr)
        log.info("%s: retuned to %.6g Hz", self._label, freq)
        return True

    def _lose(self, session: _Session, reason: str) -> None:
        """The radio is gone or stuck: stop it, close it, count what it never delivered."""
        with self._lock:
            if self._session is not session:
                return
            log.warning("%s lost: %s; reconnecting", self._label, reason)
            self._end(session)
            self._session = None
            self._account(session, lost=True)

    def _account(self, session: _Session, lost: bool) -> None:
        """Count what a stopped stream produced and never delivered as lost or discarded; the
        pause until the next stream is counted alike when that one starts."""
        self._count(session)
        tail = session.produced - self._expected
        if lost:
            self._stamper.lose(tail)
        else:
            self._stamper.discard(tail)
        self._gap_from, self._gap_lost = session.last_arrival, lost

    def _reconnect(self) -> None:
        """Reopen the radio with backoff; the gap is counted when its first transfer arrives.

        Raises:
            DeviceError: ``max_reconnects`` attempts in a row failed.
        """
        failures = 0
        while not self._stop.wait(self._backoff.next_delay()):
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    self._start(self._open_radio())
                except DeviceError as exc:
                    failures += 1
                    log.warning("%s: reconnect failed: %s", self._label, exc)
                    if self._max_reconnects is not None and failures >= self._max_reconnects:
                        raise DeviceError(f"{self._label} lost and {failures} reconnect attempts "
                                          f"failed; last: {exc}") from None
                    continue
            self._stamper.stats.reconnects += 1
            self._stamper.restart()
            log.info("%s: reconnected", self._label)
            return

    def _open_radio(self) -> Any:
        """Find, open and configure the radio.

        Raises:
            DeviceError: none found, or it cannot be opened or configured.
        """
        driver = self._driver or load_pyrtlsdr()
        serials = _serials(driver)
        index = self._resolve(serials)
        try:
            sdr = driver(device_index=index)
        except OSError as exc:
            raise DeviceError(_open_error(index, exc)) from None
        try:
            self._configure(sdr)
        except OSError as exc:
            sdr.close()
            raise DeviceError(f"RTL-SDR #{index}: {one_line(exc)}") from None
        tuner = sdr.get_tuner_type()
        self._label = (f"RTL-SDR #{index} ({TUNERS[tuner] if 0 <= tuner < len(TUNERS) else tuner}"
                       f", serial {serials[index]})")
        return sdr

    def _resolve(self, serials: list[str]) -> int:
        if not serials:
            raise DeviceError("no RTL-SDR found: plug one in (librtlsdr sees no device)")
        wanted = self._device
        if wanted is None:
            return 0
        if wanted in serials:
            return serials.index(wanted)
        if wanted.isdigit() and int(wanted) < len(serials):
            return int(wanted)
        found = ", ".join(f"#{i} serial {s}" for i, s in enumerate(serials))
        raise DeviceError(f"no RTL-SDR matches {wanted!r}; found {found}")

    def _configure(self, sdr: Any) -> None:
        """Set up an opened radio, in the order librtlsdr needs (rate before offset tuning
        before frequency)."""
        sdr.set_sample_rate(self._requested_rate)
        self._stamper.sample_rate = float(sdr.get_sample_rate())
        if self._direct_sampling:
            sdr.set_direct_sampling(self._direct_sampling)
        offset = self._offset_tuning
        if offset is None:
            offset = sdr.get_tuner_type() == _E4000 and not self._direct_sampling
        if offset and _set_offset_tuning(sdr) < 0:
            log.warning("offset tuning is not available with this tuner")
        if self._ppm:
            sdr.set_freq_correction(self._ppm)
        sdr.set_center_freq(self._center_freq)
        self._set_gain(sdr)
        sdr.set_agc_mode(self._rtl_agc)
        if self._bias_tee is not None:
            sdr.set_bias_tee(self._bias_tee)
        sdr.DEFAULT_ASYNC_BUF_NUMBER = self._transfers

    def _set_gain(self, sdr: Any) -> None:
        if self._gain == "auto":
            sdr.set_gain("auto")
            return
        nearest = min(sdr.get_gains(), key=lambda g: abs(g - 10 * float(self._gain)))
        sdr.set_gain(nearest / 10)
        if abs(nearest / 10 - float(self._gain)) > 0.5:
            log.info("gain %g dB is not available; using %g dB", self._gain, nearest / 10)

    def _start(self, sdr: Any) -> None:
        """Start streaming from an opened radio in its own thread (caller holds the lock)."""
        self._sessions += 1
        session = _Session(sdr, self._sessions)
        session.thread = threading.Thread(
            target=self._stream, args=(session,), name="rtlsdr-async", daemon=True
        )
        self._session = session
        self._expected = 0
        self._seen_dropped = self._seen_short = 0
        session.thread.start()

    def _stream(self, session: _Session) -> None:
        """The driver's thread: librtlsdr's event loop runs here until cancelled or lost."""
        try:
            session.sdr.read_bytes_async(
                functools.partial(self._on_transfer, session), self._transfer_bytes
            )
        except OSError as exc:
            session.error = one_line(exc)
        finally:
            session.ended.set()

    def _on_transfer(self, session: _Session, values: Any, _context: Any) -> None:
        """librtlsdr's callback: copy the transfer, queue it without waiting, count drops."""
        arrival = time.time()
        data = np.frombuffer(values, dtype=np.uint8)
        if len(data) != self._transfer_bytes:
            session.short_reads += 1
        if session.carry is not None:
            data = np.concatenate((session.carry, data))
            session.carry = None
        else:
            data = data.copy()
        if len(data) % 2:
            session.carry, data = data[-1:], data[:-1]
        item = (session.number, session.produced, data, arrival)
        session.produced += len(data) // 2
        session.last_arrival, session.last_mono = arrival, time.monotonic()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            session.dropped += 1

    def _end(self, session: _Session, close: bool = True) -> bool:
        """Stop streaming, drop what is queued, close the radio (caller holds the lock); False
        when librtlsdr does not stop, and the radio is left as it is."""
        if not session.ended.is_set():
            try:
                session.sdr.cancel_read_async()
            except OSError as exc:
                log.debug("cancel_read_async: %s", exc)
        if session.thread is not None:
            session.thread.join(_JOIN_TIMEOUT)
            if session.thread.is_alive():
                log.error("%s: librtlsdr did not stop streaming; leaving the radio open",
                          self._label)
                return False
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if close:
            session.sdr.close()
        return True


def _set_offset_tuning(sdr: Any) -> int:
    """librtlsdr's ``rtlsdr_set_offset_tuning``, which pyrtlsdr does not wrap; its status."""
    from rtlsdr.librtlsdr import librtlsdr

    return int(librtlsdr.rtlsdr_set_offset_tuning(sdr.dev_p, 1))


def _open_error(index: int, exc: OSError) -> str:
    code = getattr(exc, "errno", None)
    if code == _LIBUSB_ERROR_ACCESS:
        return (f"RTL-SDR #{index}: access denied; install librtlsdr's udev rules "
                "(rtl-sdr.rules) or add this user to the plugdev group")
    if code == _LIBUSB_ERROR_BUSY:
        return (f"RTL-SDR #{index} is busy: another program or the dvb_usb_rtl28xxu kernel "
                "module holds it (blacklist the module)")
    return f"cannot open RTL-SDR #{index}: {one_line(exc)}"

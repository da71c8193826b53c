"""Any SoapySDR radio (HackRF, Airspy, USRP, bladeRF, LimeSDR, Pluto, SDRplay, ...), CF32 stream.

The Python bindings come with the system's SoapySDR (Debian and Ubuntu: ``python3-soapysdr``)
and are not on PyPI. :func:`load_soapysdr` imports them as they are, or, from a virtual
environment made without ``--system-site-packages``, finds them in the system's package
folders and loads just those two files when they are built for the running Python; otherwise it
says in one line how to make them visible.

``readStream`` return codes: a positive count of samples (a partial read is fine: the block fills
over several reads); -1 timeout (counted; no data for ``stall_timeout`` counts as a lost radio);
-4 overflow (counted; the driver dropped samples: when it stamps its reads with hardware time
(``SOAPY_SDR_HAS_TIME``, as UHD, SoapyRTLSDR and LimeSuite do) the loss is measured from the
timestamps and counted in the samples, otherwise only the event is counted and the sample index
loses step with the true time by the unknown loss); any other error or an exception: the radio
is closed and reopened with backoff, and the gap is counted as lost from the wall clock.

The radio streams from :meth:`SoapySource.open`, which the monitor calls before it loads its
model (a missing radio is the first thing to report). When it has made more than ``STALE_S`` of
stream by the first read, what the driver buffered meanwhile is discarded: the reads that return
at once, up to what the radio made. It is stale for a live view, and read at once it would
arrive faster than real time and overflow the monitor's queue.

DC spike: where the driver has automatic DC offset correction it is switched on, and
:class:`~monitor.sources.radio.DcBlocker` removes what is left.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from monitor.errors import DeviceError, InputError
from monitor.sources.base import IQBlock
from monitor.sources.radio import (
    STALE_S,
    Backoff,
    BlockStamper,
    RadioSource,
    check_gain,
    one_line,
)

__all__ = ["SoapySource", "list_soapy", "load_soapysdr"]

log = logging.getLogger(__name__)

_TIMEOUT = -1
_OVERFLOW = -4
_READ_TIMEOUT_US = 100_000
_BINDINGS = "SoapySDR.py"


def _system_folders() -> list[Path]:
    """Where distributions and source builds put SoapySDR's Python bindings."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    folders = [Path("/usr/lib/python3/dist-packages"), Path("/usr/local/lib/python3/dist-packages")]
    for prefix in ("/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/local/lib64",
                   "/opt/homebrew/lib"):
        folders += [Path(prefix, version, "site-packages"), Path(prefix, version, "dist-packages")]
    return folders


def load_soapysdr(folders: list[Path] | None = None) -> ModuleType:
    """The ``SoapySDR`` module: importable as it is, or the system's, loaded from ``folders``
    (the system's package folders by default) when built for this Python.

    Raises:
        DeviceError: no bindings for this Python, saying how to install or expose them.
    """
    try:
        import SoapySDR
    except ImportError:
        pass
    else:
        return SoapySDR
    mismatched = []
    for folder in _system_folders() if folders is None else folders:
        if not (folder / _BINDINGS).is_file():
            continue
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            if (folder / f"_SoapySDR{suffix}").is_file():
                return _load_from(folder, folder / f"_SoapySDR{suffix}")
        mismatched += [p.name for p in folder.glob("_SoapySDR*") if p.suffix in (".so", ".pyd")]
    here = f"{sys.implementation.cache_tag} ({sysconfig.get_config_var('SOABI')})"
    if mismatched:
        raise DeviceError(
            f"SoapySDR's Python bindings here are built for another Python ({', '.join(mismatched)}"
            f"), this one is {here}: make the virtual environment with that Python and "
            "--system-site-packages"
        )
    raise DeviceError(
        "SoapySDR's Python bindings are not installed: apt install python3-soapysdr (and run "
        "from the system's python3, or a virtual environment made with --system-site-packages, "
        "or put the folder holding SoapySDR.py on PYTHONPATH)"
    )


def _load_from(folder: Path, extension: Path) -> ModuleType:
    """Load ``_SoapySDR`` and ``SoapySDR`` from ``folder`` without putting it on sys.path.

    Raises:
        DeviceError: the bindings are there but do not load (a library missing or mismatched).
    """
    try:
        for name, path in (("_SoapySDR", extension), ("SoapySDR", folder / _BINDINGS)):
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
    except (ImportError, OSError, AttributeError) as exc:
        sys.modules.pop("_SoapySDR", None)
        sys.modules.pop("SoapySDR", None)
        raise DeviceError(f"SoapySDR's Python bindings in {folder} do not load: "
                          f"{one_line(exc)}") from None
    log.debug("SoapySDR bindings loaded from %s", folder)
    return module


def _args_text(args: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in args.items()) or "(any)"


def list_soapy(soapy: Any = None) -> list[tuple[str, str]]:
    """The radios SoapySDR finds: (``--device`` name, label) each.

    Args:
        soapy: the SoapySDR module, or an object with its interface (tests).

    Raises:
        DeviceError: the bindings are missing.
    """
    soapy = soapy or load_soapysdr()
    found = []
    for kwargs in soapy.Device.enumerate():
        args = dict(kwargs)
        keys = [k for k in ("driver", "serial") if k in args] if "serial" in args else [
            k for k in args if k != "label"]
        spec = "soapy:" + _args_text({k: args[k] for k in keys})
        found.append((spec, args.get("label") or _args_text(args)))
    return found


class SoapySource(RadioSource):
    """A radio through SoapySDR, read as a CF32 stream.

    Args:
        args: device arguments (``driver``, ``serial``, ...), as ``--device soapy:...`` gives.
        center_freq: Hz.
        sample_rate: S/s; the radio must support it (the models serve their card's rates).
        gain: ``"auto"`` (the driver's AGC, or the middle of the range where it has none) or dB,
            clipped to the radio's range.
        bandwidth: analog filter bandwidth, Hz; None leaves the driver's choice, which follows
            the sample rate on most radios.
        antenna: antenna port name; None leaves the driver's default.
        channel: receive channel.
        ppm: frequency correction, where the driver has it; None leaves it.
        dc_block: remove the DC spike (the driver's correction and
            :class:`~monitor.sources.radio.DcBlocker`).
        block_samples: samples per block.
        settle_s: seconds of samples discarded after opening and after a retune.
        stall_timeout: seconds without samples after which the radio counts as lost.
        backoff: waits between reconnect attempts.
        max_reconnects: failed attempts in a row before giving up; None: never give up.
        soapy: the SoapySDR module (loaded by default), or an object with its interface.

    Raises:
        InputError: for a gain that is neither 'auto' nor a number.
    """

    def __init__(
        self,
        args: Mapping[str, str],
        center_freq: float,
        sample_rate: float,
        *,
        gain: float | str = "auto",
        bandwidth: float | None = None,
        antenna: str | None = None,
        channel: int = 0,
        ppm: float | None = None,
        dc_block: bool = True,
        block_samples: int = 65536,
        settle_s: float = 0.25,
        stall_timeout: float = 3.0,
        backoff: Backoff | None = None,
        max_reconnects: int | None = None,
        soapy: Any = None,
    ) -> None:
        check_gain(gain)
        if not (sample_rate > 0 and center_freq > 0 and block_samples > 0):
            raise InputError("the sample rate, centre frequency and block size must be positive")
        self._args = dict(args)
        self._center_freq = float(center_freq)
        self._requested_rate = float(sample_rate)
        self._gain = gain
        self._bandwidth = bandwidth
        self._antenna = antenna
        self._channel = channel
        self._ppm = ppm
        self._dc_block = dc_block
        self._block_samples = block_samples
        self._settle_s = settle_s
        self._stall_timeout = stall_timeout
        self._backoff = backoff or Backoff()
        self._max_reconnects = max_reconnects
        self._soapy = soapy
        self._stamper = BlockStamper(sample_rate, center_freq, dc_block)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._retune_lock = threading.Lock()
        self._retune_to: float | None = None
        self._device: Any = None
        self._stream: Any = None
        self._opened = False
        self._label = f"SoapySDR {_args_text(self._args)}"
        self._skip = 0
        self._next_ns: int | None = None
        self._overflowed = False
        self._last_wall = 0.0
        self._last_mono = 0.0
        self._activated_mono = 0.0

    def open(self) -> None:
        """Load the bindings, open and configure the radio, start its stream.

        Raises:
            DeviceError: no bindings, no such radio, or the radio failed.
            InputError: a rate, antenna or channel the radio does not have.
        """
        with self._lock:
            if self._opened or self._stop.is_set():
                return
            self._soapy = self._soapy or load_soapysdr()
            self._start()
            self._opened = True
        log.info("%s: streaming at %.6g Hz", self.describe(), self._center_freq)

    def retune(self, center_freq: float) -> None:
        """Tune to ``center_freq`` between blocks; ``settle_s`` of samples are discarded.

        Raises:
            InputError: a frequency that is not positive.
        """
        if not center_freq > 0:
            raise InputError(f"cannot tune to {center_freq:g} Hz")
        with self._retune_lock:
            self._retune_to = self._center_freq = float(center_freq)

    def set_gain(self, gain: float | str) -> None:
        """``"auto"`` or dB (clipped to the radio's range), set at once; a reconnect sets it
        again.

        Raises:
            InputError: a gain that is neither ``"auto"`` nor a number.
        """
        check_gain(gain)
        self._gain = gain
        with self._lock:
            if self._device is not None:
                try:
                    self._set_gain(self._device, self._soapy)
                except RuntimeError as exc:  # the bindings raise it for driver errors
                    log.warning("%s: setting the gain failed: %s", self._label, one_line(exc))

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._release()

    def blocks(self) -> Iterator[IQBlock]:
        """Yield blocks of ``block_samples`` until :meth:`close`; a partial one before a gap.

        Raises:
            DeviceError: the radio was lost and ``max_reconnects`` attempts failed.
        """
        self.open()
        self._skip_backlog()
        buf = np.empty(self._block_samples, np.complex64)
        filled = 0
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    break
                if self._device is None:
                    self._reconnect()
                    continue
                with self._retune_lock:
                    freq, self._retune_to = self._retune_to, None
                got = 0 if freq is not None else self._read(buf[filled:])
            if freq is not None or got < 0:
                if filled:
                    yield self._block(buf[:filled])
                    filled = 0
                if freq is not None:
                    self._tune(freq)
                continue
            filled += got
            if filled == len(buf):
                yield self._block(buf)
                filled = 0

    def _skip_backlog(self) -> None:
        """Discard what the driver buffered before the first read (see the module's doc)."""
        with self._lock:
            if self._device is None:
                return
            made = round((time.monotonic() - self._activated_mono) * self.sample_rate)
            if made < STALE_S * self.sample_rate:
                return
            buf = np.empty(self._block_samples, np.complex64)
            drained = 0
            while drained < made:
                try:
                    result = self._device.readStream(self._stream, [buf],
                                                     min(len(buf), made - drained), timeoutUs=0)
                except (RuntimeError, OSError):
                    break  # the first read proper meets it again and reconnects
                if result.ret > 0:
                    drained += result.ret
                elif result.ret != _OVERFLOW:  # the driver's buffer overflowed meanwhile
                    break
            self._skip = max(0, self._skip - drained)  # the settle time is part of it
            self._next_ns, self._overflowed = None, False
            self._last_wall, self._last_mono = time.time(), time.monotonic()
        log.debug("%s: %d samples from before the first read discarded", self._label, drained)

    def _block(self, samples: np.ndarray) -> IQBlock:
        self._backoff.reset()
        return self._stamper.stamp(samples.copy(), self._last_wall)

    def _read(self, view: np.ndarray) -> int:
        """One ``readStream`` into ``view``, after the samples to skip (caller holds the lock).
        Samples received; 0 for none yet; -1 after an overflow or when the radio was lost,
        so the partial block ends before the gap."""
        soapy = self._soapy
        try:
            result = self._device.readStream(self._stream, [view], len(view),
                                              timeoutUs=_READ_TIMEOUT_US)
        except (RuntimeError, OSError) as exc:
            self._lose(f"readStream failed: {one_line(exc)}")
            return -1
        ret = int(result.ret)
        if ret > 0:
            return self._received(view, ret, result)
        if ret == _OVERFLOW:
            self._stamper.stats.overflows += 1
            self._overflowed = True
            log.debug("%s: overflow", self._label)
            return -1
        if ret == _TIMEOUT or ret == 0:
            self._stamper.stats.timeouts += 1
            if time.monotonic() - self._last_mono > self._stall_timeout:
                self._lose(f"no samples for {self._stall_timeout:g} s")
                return -1
            return 0
        self._lose(f"readStream error {ret} ({soapy.errToStr(ret)})")
        return -1

    def _received(self, view: np.ndarray, ret: int, result: Any) -> int:
        """Account for ``ret`` samples read into ``view``: time, overflow loss, skipping."""
        self._last_wall, self._last_mono = time.time(), time.monotonic()
        if result.flags & self._soapy.SOAPY_SDR_HAS_TIME:
            if self._overflowed and self._next_ns is not None:
                self._stamper.lose(self._stamper.samples_in((result.timeNs - self._next_ns) / 1e9))
            self._next_ns = result.timeNs + round(ret * 1e9 / self.sample_rate)
        elif self._overflowed:
            log.warning("%s: overflow; the driver gives no timestamps, so the samples lost "
                        "are not known", self._label)
        self._overflowed = False
        skip = min(self._skip, ret)
        if skip:
            self._skip -= skip
            self._stamper.discard(skip)
            view[: ret - skip] = view[skip:ret]
        return ret - skip

    def _tune(self, freq: float) -> None:
        with self._lock:
            if self._device is None:
                return
            try:
                self._device.setFrequency(self._soapy.SOAPY_SDR_RX, self._channel, freq)
            except (RuntimeError, OSError) as exc:
                self._lose(f"retune to {freq:g} Hz failed: {one_line(exc)}")
                return
            self._stamper.retune(freq)
            self._skip = round(self._settle_s * self.sample_rate)
        log.info("%s: retuned to %.6g Hz", self._label, freq)

    def _lose(self, reason: str) -> None:
        log.warning("%s lost: %s; reconnecting", self._label, reason)
        self._release()

    def _reconnect(self) -> None:
        """Reopen with backoff (caller holds the lock); the gap is counted as lost.

        Raises:
            DeviceError: ``max_reconnects`` attempts in a row failed.
        """
        failures = 0
        since = self._last_wall or time.time()
        while not self._stop.wait(self._backoff.next_delay()):
            try:
                self._start()
            except (DeviceError, InputError) as exc:
                failures += 1
                log.warning("%s: reconnect failed: %s", self._label, exc)
                if self._max_reconnects is not None and failures >= self._max_reconnects:
                    raise DeviceError(f"{self._label} lost and {failures} reconnect attempts "
                                      f"failed; last: {exc}") from None
                continue
            gap = self._stamper.samples_in(time.time() - since)
            self._stamper.lose(gap)
            self._stamper.restart()
            self._stamper.stats.reconnects += 1
            log.warning("%s: reconnected; %d samples lost", self._label, gap)
            return

    def _start(self) -> None:
        """Open, configure, set up and activate the stream.

        Raises:
            DeviceError: no such radio, or it failed.
            InputError: settings it cannot take.
        """
        soapy = self._soapy
        try:
            device = soapy.Device(self._args)
        except (RuntimeError, ValueError) as exc:
            raise DeviceError(f"no SoapySDR device matches {_args_text(self._args)}: "
                              f"{one_line(exc)} (see --list-devices)") from None
        try:
            self._configure(device)
            stream = device.setupStream(soapy.SOAPY_SDR_RX, soapy.SOAPY_SDR_CF32, [self._channel])
            status = device.activateStream(stream)
            if status:
                device.closeStream(stream)
                raise RuntimeError(f"activateStream: {soapy.errToStr(status)}")
        except (RuntimeError, OSError) as exc:
            device.close()
            raise DeviceError(f"{self._label}: {one_line(exc)}") from None
        except InputError:
            device.close()
            raise
        self._device, self._stream = device, stream
        self._skip = round(self._settle_s * self.sample_rate)
        self._next_ns, self._overflowed = None, False
        self._last_wall, self._last_mono = time.time(), time.monotonic()
        self._activated_mono = self._last_mono

    def _configure(self, device: Any) -> None:
        """Rate, bandwidth, antenna, correction, DC, frequency, gain.

        Raises:
            InputError: a channel, rate or antenna the radio does not have.
        """
        rx, ch, soapy = self._soapy.SOAPY_SDR_RX, self._channel, self._soapy
        if not 0 <= ch < device.getNumChannels(rx):
            raise InputError(f"{self._label} has no receive channel {ch}")
        ranges = [(r.minimum(), r.maximum()) for r in device.getSampleRateRange(rx, ch)]
        rate = self._requested_rate
        if ranges and not any(low - 1 <= rate <= high + 1 for low, high in ranges):
            spans = ", ".join(f"{low:g}" if low == high else f"{low:g}-{high:g}"
                              for low, high in ranges)
            raise InputError(f"{self._label} cannot sample at {rate:g} S/s; it takes {spans}")
        device.setSampleRate(rx, ch, rate)
        actual = float(device.getSampleRate(rx, ch))
        if abs(actual - rate) > 1e-6 * rate:
            log.warning("%s samples at %g S/s, not %g", self._label, actual, rate)
        self._stamper.sample_rate = actual
        if self._bandwidth:
            device.setBandwidth(rx, ch, self._bandwidth)
        if self._antenna is not None:
            antennas = list(device.listAntennas(rx, ch))
            if self._antenna not in antennas:
                raise InputError(f"{self._label} has no antenna {self._antenna!r}; it has "
                                 f"{', '.join(antennas)}")
            device.setAntenna(rx, ch, self._antenna)
        if self._ppm is not None:
            if device.hasFrequencyCorrection(rx, ch):
                device.setFrequencyCorrection(rx, ch, self._ppm)
            else:
                log.warning("%s has no frequency correction; ppm ignored", self._label)
        if self._dc_block and device.hasDCOffsetMode(rx, ch):
            device.setDCOffsetMode(rx, ch, True)
        device.setFrequency(rx, ch, self._center_freq)
        self._set_gain(device, soapy)
        self._label = f"SoapySDR {device.getDriverKey()} {device.getHardwareKey()}".strip()

    def _set_gain(self, device: Any, soapy: Any) -> None:
        rx, ch = soapy.SOAPY_SDR_RX, self._channel
        automatic = device.hasGainMode(rx, ch)
        span = device.getGainRange(rx, ch)
        low, high = span.minimum(), span.maximum()
        if self._gain == "auto" and automatic:
            device.setGainMode(rx, ch, True)
            return
        if self._gain == "auto":
            gain = (low + high) / 2
            log.info("%s has no automatic gain; using %g dB", self._label, gain)
        else:
            gain = min(max(float(self._gain), low), high)
            if gain != float(self._gain):
                log.info("gain %g dB is outside %g-%g dB; using %g dB", self._gain, low, high,
                         gain)
        if automatic:
            device.setGainMode(rx, ch, False)
        device.setGain(rx, ch, gain)

    def _release(self) -> None:
        """Stop and close the stream and the radio, whatever state they are in (caller holds
        the lock)."""
        device, stream = self._device, self._stream
        self._device = self._stream = None
        if device is None:
            return
        for step in (lambda: device.deactivateStream(stream), lambda: device.closeStream(stream),
                     device.close):
            try:
                step()
            except (RuntimeError, OSError) as exc:
                log.debug("%s: %s while closing", self._label, one_line(exc))

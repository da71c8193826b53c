"""What every radio source shares: device names, DC spike removal, sample accounting, backoff.

A radio's stream is stamped here: :class:`BlockStamper` turns the samples a radio delivers into
:class:`~monitor.sources.base.IQBlock` with absolute sample indices, wall-clock times derived from
those indices, and every sample that never reached the monitor in ``lost_before`` and in
:class:`RadioStats`. Two kinds of missing samples are kept apart:

- *lost*: the radio or the link dropped them (a driver overflow, a full transfer queue, the gap
  while a lost radio is reconnected, estimated from the wall clock);
- *discarded*: the source threw them away on purpose, the settle time after a retune or a
  reconnect, when the samples still belong to the old frequency or an unsettled tuner.

Both advance the sample index (``lost_before`` holds their sum, ``discarded_before`` the second),
so time stays exact; the stats say which was which. Samples before the first block (the settle
time after the first connection) are neither: the stream begins with the first block.

DC spike: most SDRs leak their local oscillator into the band centre, a constant offset that
shows as a line at 0 Hz. :class:`DcBlocker` subtracts a running estimate of it, a one-pole IIR
average of the blocks' means with a time constant of a second; a modulated carrier averages to
zero over that time and stays, and only the constant leakage goes. The 1/f noise close to DC is
signal-like and stays too.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field

import numpy as np

from monitor.errors import DeviceError, InputError
from monitor.sources.base import IQBlock, Source

__all__ = [
    "RTL_DEFAULT_RATE",
    "STALE_S",
    "Backoff",
    "BlockStamper",
    "DcBlocker",
    "DeviceSpec",
    "RadioSource",
    "RadioStats",
    "check_gain",
    "list_devices",
    "one_line",
    "open_radio",
    "parse_device",
]

log = logging.getLogger(__name__)

DEVICE_FORMS = "rtlsdr[:INDEX|:SERIAL], rtltcp:HOST:PORT, soapy:KEY=VALUE,..., synthetic"
RTL_TCP_DEFAULT_PORT = 1234
#: An RTL-SDR's rate when none is asked for: its highest without dropped samples on most hosts.
RTL_DEFAULT_RATE = 2.4e6
#: A radio streams from when it is opened, before the monitor has loaded its model; a backlog of
#: more than this many seconds when the stream begins is discarded (the monitor counts itself
#: behind from a quarter of a second queued).
STALE_S = 0.25
_SOAPY_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class DeviceSpec:
    """A parsed ``--device`` argument.

    Attributes:
        kind: ``"rtlsdr"``, ``"rtltcp"``, ``"soapy"`` or ``"synthetic"``.
        device: rtlsdr: the index or serial number as given (resolved when the radio opens: a
            serial number that matches wins over an index); None for the first radio.
        host: rtltcp: the server's host name or address.
        port: rtltcp: the server's TCP port.
        args: soapy: the device arguments (``driver``, ``serial``, ...).
    """

    kind: str
    device: str | None = None
    host: str = ""
    port: int = 0
    args: dict[str, str] = field(default_factory=dict)


def parse_device(spec: str) -> DeviceSpec:
    """Parse ``--device``: ``rtlsdr[:INDEX|:SERIAL]``, ``rtltcp:HOST:PORT``,
    ``soapy:KEY=VALUE,...`` or ``synthetic``.

    ``rtltcp:HOST`` uses rtl_tcp's default port 1234; an IPv6 address goes in brackets
    (``rtltcp:[::1]:1234``). ``soapy`` alone takes the first device SoapySDR finds.

    Raises:
        InputError: for an unknown kind or a malformed name, saying what the forms are.
    """
    kind, _, rest = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "synthetic" and not rest:
        return DeviceSpec("synthetic")
    if kind == "rtlsdr":
        if rest and not re.fullmatch(r"[\x21-\x7e]+", rest):
            raise InputError(f"bad RTL-SDR index or serial {rest!r} in --device {spec!r}")
        return DeviceSpec("rtlsdr", device=rest or None)
    if kind == "rtltcp":
        host, port = _host_port(rest, spec)
        return DeviceSpec("rtltcp", host=host, port=port)
    if kind == "soapy":
        return DeviceSpec("soapy", args=_soapy_args(rest, spec))
    raise InputError(f"unknown device {spec!r}; use one of: {DEVICE_FORMS}")


def open_radio(
    device: str,
    *,
    center_freq: float | None,
    sample_rate: float | None,
    gain: str = "auto",
    ppm: int = 0,
) -> Source:
    """The source for ``--device`` (not opened yet), with the command line's settings.

    An RTL-SDR or rtl_tcp runs at 2.4 MS/s unless ``sample_rate`` says otherwise; a SoapySDR
    radio needs the rate (radios differ too much for one default). ``ppm`` 0 leaves an rtl_tcp
    server's own correction.

    Raises:
        InputError: a malformed device name, no ``center_freq``, a gain that is neither a number
            nor ``auto``, no rate for a SoapySDR radio, or settings the radio cannot take.
    """
    spec = parse_device(device)
    if spec.kind == "synthetic":
        raise InputError("the synthetic scene is not a radio")
    if center_freq is None:
        raise InputError(f"--device {device} needs --fc, the centre frequency in Hz")
    if gain.strip().lower() == "auto":
        level: float | str = "auto"
    else:
        try:
            level = float(gain)
        except ValueError:
            raise InputError(f"--gain must be a number of dB or auto, got {gain!r}") from None
    if spec.kind == "rtlsdr":
        from monitor.sources.rtlsdr import RtlSdrSource

        return RtlSdrSource(center_freq, sample_rate or RTL_DEFAULT_RATE, device=spec.device,
                            gain=level, ppm=ppm)
    if spec.kind == "rtltcp":
        from monitor.sources.rtltcp import RtlTcpSource

        return RtlTcpSource(spec.host, spec.port, center_freq, sample_rate or RTL_DEFAULT_RATE,
                            gain=level, ppm=ppm or None)
    if sample_rate is None:
        raise InputError(
            f"--device {device} needs --rate, a rate the radio has and a model serves (e.g. "
            "10e6 for a HackRF or an Airspy, 30.72e6 for a USRP, bladeRF, LimeSDR or Pluto)"
        )
    from monitor.sources.soapy import SoapySource

    return SoapySource(spec.args, center_freq, sample_rate, gain=level)


def _host_port(rest: str, spec: str) -> tuple[str, int]:
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([^:\[\]\s]+)(?::(\d+))?", rest)
    if m is None:
        raise InputError(f"--device {spec!r}: write rtltcp:HOST:PORT, e.g. rtltcp:192.168.1.5:1234")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4) or RTL_TCP_DEFAULT_PORT)
    if not 0 < port < 65536:
        raise InputError(f"--device {spec!r}: port {port} is not between 1 and 65535")
    return host, port


def _soapy_args(rest: str, spec: str) -> dict[str, str]:
    args: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not _SOAPY_KEY.match(key):
            raise InputError(
                f"--device {spec!r}: {item!r} is not KEY=VALUE; write e.g. "
                "soapy:driver=hackrf,serial=0000000000000000"
            )
        args[key] = value.strip()
    return args


def check_gain(gain: float | str) -> float | str:
    """A gain as radios take it: ``"auto"`` or a number of dB.

    Raises:
        InputError: anything else.
    """
    if gain == "auto" or (isinstance(gain, (int, float)) and not isinstance(gain, bool)):
        return gain
    raise InputError(f"gain must be 'auto' or a number of dB, got {gain!r}")


def one_line(exc: BaseException | str) -> str:
    """A driver's message on one line (some span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


class DcBlocker:
    """Removes the DC offset (LO leakage) by subtracting a slowly tracking estimate of it.

    The estimate is a one-pole IIR average of the block means, with the block length folded into
    the pole so the time constant is the same whatever the block size. Until a time constant's
    worth of samples has passed it is the plain mean of all samples so far, so the spike is gone
    from the first block on.
    """

    def __init__(self, sample_rate: float, time_constant: float = 1.0) -> None:
        self._samples_per_tau = time_constant * sample_rate
        self._dc = 0j
        self._seen = 0

    def reset(self) -> None:
        """Forget the estimate (after a retune or a reconnect the leakage is another)."""
        self._dc, self._seen = 0j, 0

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """Subtract the DC estimate from ``samples`` (complex64) in place and return them."""
        if not len(samples):
            return samples
        self._seen += len(samples)
        weight = max(-math.expm1(-len(samples) / self._samples_per_tau), len(samples) / self._seen)
        self._dc += weight * (complex(samples.mean(dtype=np.complex128)) - self._dc)
        samples -= np.complex64(self._dc)
        return samples


class Backoff:
    """Exponentially growing waits between reconnect attempts, capped."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0) -> None:
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self._next = initial

    def next_delay(self) -> float:
        """The wait before the next attempt; each call lengthens the one after."""
        delay = self._next
        self._next = min(self._next * self.factor, self.maximum)
        return delay

    def reset(self) -> None:
        """After a connection that worked: the next failure waits ``initial`` again."""
        self._next = self.initial


@dataclass
class RadioStats:
    """What a radio source delivered and what it could not.

    Attributes:
        samples_received: samples delivered in blocks. The last block's ``end_sample`` is
            ``samples_received + samples_lost + samples_discarded``.
        samples_lost: samples the radio or the link dropped (overflows, a full transfer queue,
            reconnect gaps estimated from the wall clock).
        samples_discarded: samples thrown away on purpose: the settle time after a retune or a
            reconnect.
        overflows: overflow events the driver reported.
        timeouts: reads that timed out without data.
        short_reads: transfers shorter than asked.
        dropped_transfers: transfers the source's queue could not take.
        reconnects: times the radio was lost and reopened.
    """

    samples_received: int = 0
    samples_lost: int = 0
    samples_discarded: int = 0
    overflows: int = 0
    timeouts: int = 0
    short_reads: int = 0
    dropped_transfers: int = 0
    reconnects: int = 0


class BlockStamper:
    """Stamps a radio's samples into :class:`IQBlock`: indices, times, losses, retunes, DC.

    Not thread-safe: one reader thread calls it.

    Attributes:
        stats: the counts so far.
        sample_rate: samples per second.
        center_freq: the centre frequency stamped on the blocks.
    """

    def __init__(self, sample_rate: float, center_freq: float, dc_block: bool = True) -> None:
        self.stats = RadioStats()
        self.sample_rate = float(sample_rate)
        self.center_freq = float(center_freq)
        self._dc = DcBlocker(sample_rate) if dc_block else None
        self._next = 0
        self._pending = 0
        self._pending_discarded = 0
        self._anchor: float | None = None
        self._retuned = False

    @property
    def started(self) -> bool:
        """Whether a block has been stamped: before it, nothing is lost, the stream has not
        begun."""
        return self._anchor is not None

    def lose(self, count: int) -> None:
        """``count`` samples the radio or the link dropped just before the next block."""
        if count > 0 and self.started:
            self.stats.samples_lost += count
            self._pending += count
            self._next += count

    def samples_in(self, seconds: float) -> int:
        """The samples a gap of ``seconds`` on the wall clock held (0 for a negative one)."""
        return max(0, round(seconds * self.sample_rate))

    def discard(self, count: int) -> None:
        """``count`` samples thrown away on purpose (settle time) just before the next block."""
        if count > 0 and self.started:
            self.stats.samples_discarded += count
            self._pending += count
            self._pending_discarded += count
            self._next += count

    def retune(self, center_freq: float) -> None:
        """The next block is at ``center_freq`` and is marked ``retuned``."""
        self.center_freq = float(center_freq)
        self._retuned = True
        self.restart()

    def restart(self) -> None:
        """The radio was reopened: the DC estimate starts again."""
        if self._dc is not None:
            self._dc.reset()

    def stamp(self, samples: np.ndarray, arrival: float) -> IQBlock:
        """The block of ``samples`` (complex64, taken over and DC-corrected in place), the last
        of which arrived at wall-clock time ``arrival``."""
        if self._anchor is None:
            self._anchor = arrival - len(samples) / self.sample_rate
        if self._dc is not None:
            samples = self._dc(samples)
        block = IQBlock(
            samples=samples,
            first_sample=self._next,
            center_freq=self.center_freq,
            sample_rate=self.sample_rate,
            time=self._anchor + self._next / self.sample_rate,
            lost_before=self._pending,
            discarded_before=self._pending_discarded,
            retuned=self._retuned,
        )
        self.stats.samples_received += len(samples)
        self._next += len(samples)
        self._pending = self._pending_discarded = 0
        self._retuned = False
        return block


class RadioSource(Source):
    """What the radio sources share: a :class:`BlockStamper` (rate, sample indices, losses),
    the centre frequency in force and a label; subclasses set ``_stamper``, ``_center_freq`` and
    ``_label`` in their constructors."""

    _stamper: BlockStamper
    _center_freq: float
    _label: str

    @property
    def sample_rate(self) -> float:
        return self._stamper.sample_rate

    @property
    def center_freq(self) -> float:
        return self._center_freq

    @property
    def stats(self) -> RadioStats:
        """What was delivered and lost so far."""
        return self._stamper.stats

    def describe(self) -> str:
        return f"{self._label} at {self.sample_rate / 1e6:g} MS/s"


def list_devices() -> list[str]:
    """The radios this machine can open, one line each: the ``--device`` name, a tab, what it
    is. A kind of radio whose library is missing gives one line starting with ``#`` saying why.
    """
    from monitor.sources.rtlsdr import list_rtlsdr
    from monitor.sources.soapy import list_soapy

    lines: list[str] = []
    for kind, lister in (("rtlsdr", list_rtlsdr), ("soapy", list_soapy)):
        try:
            lines += [f"{spec}\t{label}" for spec, label in lister()]
        except DeviceError as exc:
            lines.append(f"# {kind}: {exc}")
    return lines

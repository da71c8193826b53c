"""What every source gives the pipeline: blocks of IQ with their place in the stream.

A source is cheap to construct; :meth:`Source.open` does the heavy work (opening a device,
connecting, mapping a file) and :meth:`Source.blocks` yields :class:`IQBlock` until the stream ends
or :meth:`Source.close` is called from another thread. Sources own no threads of the pipeline's:
the pipeline's reader thread iterates :meth:`Source.blocks` and queues what it yields (a driver's
own callback thread, as librtlsdr's, stays inside its source).

Time is never guessed downstream: it is derived from ``first_sample`` (the absolute index since
the stream began, counting lost samples) and the sample rate, anchored at ``time`` of the block's
first sample.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from monitor.errors import InputError

__all__ = ["IQBlock", "Source"]


@dataclass(frozen=True)
class IQBlock:
    """A block of contiguous samples.

    Attributes:
        samples: complex64, full scale +-1.
        first_sample: absolute index of ``samples[0]`` since the stream began; indices of lost
            samples are counted, so ``first_sample`` of the next block is this one's plus
            ``len(samples)`` plus whatever that block lost before it.
        center_freq: RF centre frequency in force, Hz.
        sample_rate: samples per second in force.
        time: wall-clock time of ``samples[0]``, POSIX seconds (UTC).
        lost_before: samples missing just before this block (overflow, dropped transfer,
            reconnect, settle time); 0 normally.
        discarded_before: how many of ``lost_before`` the source threw away on purpose (the
            settle time after a retune or a reconnect): a gap in the stream, but not a loss.
        retuned: the first block after a change of frequency or rate: whatever came before
            belongs to another view.
    """

    samples: np.ndarray
    first_sample: int
    center_freq: float
    sample_rate: float
    time: float
    lost_before: int = 0
    discarded_before: int = 0
    retuned: bool = False

    @property
    def end_sample(self) -> int:
        return self.first_sample + len(self.samples)


class Source(ABC):
    """A stream of IQ blocks from a radio, a server, a recording or the generator.

    Attributes:
        live: a live source cannot wait: when processing falls behind, the pipeline drops its
            oldest blocks (and counts them). A recording is not live: the reader waits instead.
    """

    live: bool = True

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    @abstractmethod
    def sample_rate(self) -> float:
        """Samples per second."""

    @property
    @abstractmethod
    def center_freq(self) -> float:
        """RF centre frequency, Hz."""

    @abstractmethod
    def describe(self) -> str:
        """One line for the status bar and the stats: what this source is."""

    @abstractmethod
    def open(self) -> None:
        """Acquire the device, connection or file.

        Raises:
            monitor.errors.DeviceError: the radio or server is not there or failed.
            monitor.errors.InputError: bad settings for it.
        """

    @abstractmethod
    def blocks(self) -> Iterator[IQBlock]:
        """Yield blocks until the stream ends or :meth:`close` is called."""

    @abstractmethod
    def close(self) -> None:
        """Stop :meth:`blocks` and release everything; safe to call twice and from any thread."""

    def retune(self, center_freq: float) -> None:
        """Ask for a new centre frequency, taken up between blocks; the samples of the settle
        time are discarded and the next block is marked ``retuned``.

        Raises:
            monitor.errors.InputError: this source cannot be retuned (a recording).
        """
        raise InputError(f"{self.describe()} cannot be retuned")

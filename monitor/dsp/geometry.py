"""The spectrogram geometry: the one description of how IQ samples become an image.

Training, calibration, evaluation and the live monitor all use a :class:`Geometry` made by
:meth:`Geometry.for_rate`, so what the network sees live is what it was trained on.

An image is ``height`` rows by ``width`` frequency pixels and spans ``frame_seconds`` (40 ms, as
in the reference data set, whatever the sample rate). Row r spans samples
``[r * samples_per_row, (r + 1) * samples_per_row)`` of its frame and is the average of the
Hann-windowed periodograms of the fewest segments that together cover every one of those samples
(spread evenly, overlapping only as much as that needs), so no sample is thrown away, the noise
variance falls with the sample rate, and the cost stays at about one FFT per sample: the
spectrogram keeps up with 61.44 MS/s on two CPU cores.
Each segment's FFT has ``nfft = width * zoom`` bins; ``zoom`` adjacent bins are summed into one
pixel, which gives flat pixels with sharp edges where a row holds enough samples for it.

Pixel j (0 = lowest frequency) is centred on ``(j - width / 2) * sample_rate / width`` Hz from the
centre frequency; the image is in dB relative to full scale (a full-scale complex tone on a
pixel's centre reads 0 dBFS).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Geometry"]

#: Frame length of the reference data set (MathWorks 5G/LTE spectrum sensing): 40 ms.
FRAME_SECONDS = 0.04
IMAGE_SIZE = 256
MAX_ZOOM = 4


@dataclass(frozen=True)
class Geometry:
    """How a stream at ``sample_rate`` is cut into rows and pixels.

    Attributes:
        sample_rate: samples per second of the complex baseband stream.
        width: frequency pixels per row.
        height: rows per frame.
        samples_per_row: samples each row spans.
        nfft: FFT length of a segment (``width * zoom``).
        segments: periodograms averaged per row.
    """

    sample_rate: float
    width: int
    height: int
    samples_per_row: int
    nfft: int
    segments: int

    @classmethod
    def for_rate(
        cls,
        sample_rate: float,
        width: int = IMAGE_SIZE,
        height: int = IMAGE_SIZE,
        frame_seconds: float = FRAME_SECONDS,
    ) -> Geometry:
        """The geometry for a stream at ``sample_rate``.

        A frame lasts ``frame_seconds`` where a row then holds at least ``width`` samples (from
        ``width * height / frame_seconds`` = 1.64 MS/s at the defaults); at lower rates rows hold
        exactly ``width`` samples and frames last longer.

        Raises:
            ValueError: for a rate or size that cannot make an image.
        """
        if not sample_rate > 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        if width < 8 or height < 8:
            raise ValueError(f"image must be at least 8x8, got {width}x{height}")
        samples_per_row = max(round(sample_rate * frame_seconds / height), width)
        zoom = 2 ** min(int(math.log2(samples_per_row // width)), int(math.log2(MAX_ZOOM)))
        nfft = width * zoom
        segments = math.ceil(samples_per_row / nfft)
        return cls(float(sample_rate), width, height, samples_per_row, nfft, segments)

    @property
    def zoom(self) -> int:
        """FFT bins summed into one pixel."""
        return self.nfft // self.width

    @property
    def frame_samples(self) -> int:
        """Samples one frame spans."""
        return self.samples_per_row * self.height

    @property
    def frame_seconds(self) -> float:
        return self.frame_samples / self.sample_rate

    @property
    def row_seconds(self) -> float:
        return self.samples_per_row / self.sample_rate

    @property
    def pixel_hz(self) -> float:
        """Width of one frequency pixel."""
        return self.sample_rate / self.width

    def segment_starts(self) -> np.ndarray:
        """Offsets of the row's segments, spread evenly so they cover every sample of the row."""
        return np.round(np.linspace(0, self.samples_per_row - self.nfft, self.segments)).astype(
            np.int64
        )

    def pixel_centres(self) -> np.ndarray:
        """Centre of each frequency pixel relative to the centre frequency, Hz."""
        return (np.arange(self.width) - self.width // 2) * self.pixel_hz

    def row_centres(self, rows: int | None = None) -> np.ndarray:
        """Centre time of each row relative to the frame's first sample, seconds."""
        rows = self.height if rows is None else rows
        return (np.arange(rows) + 0.5) * self.row_seconds

    def to_dict(self) -> dict[str, float | int]:
        """The geometry as it is written into a model card."""
        return asdict(self)

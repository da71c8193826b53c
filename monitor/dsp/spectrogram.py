"""The spectrogram: IQ samples to dB rows, and rows to the network's input.

The one implementation, in torch, on the CPU or a GPU. :class:`Spectrogram` turns whole rows of
samples into rows of pixel powers; :class:`StreamingSpectrogram` feeds it from blocks of any size
and returns rows as soon as their samples have arrived, with the same numbers as the whole-frame
computation (rows are independent of each other by construction: see ``geometry.py``).

Scale: a pixel holds the power within its bandwidth (the PSD integrated over ``fs / width``), in
dB relative to full scale: white noise of power s reads ``s / width``, and a full-scale tone whose
main lobe lies within one pixel reads 0 dBFS.

Network input (:func:`network_input`): ``(dB - floor) / 10`` where ``floor`` is the frame's
20th percentile, so the scale is tied to the noise floor rather than to the strongest signal (a
carrier appearing does not move the noise), clipped to [-2, 8] (-20 to +80 dB).
"""

from __future__ import annotations

import numpy as np
import torch

from monitor.dsp.geometry import Geometry

__all__ = ["FLOOR_QUANTILE", "Spectrogram", "StreamingSpectrogram", "network_input"]

FLOOR_QUANTILE = 0.2
#: Segment samples transformed at once on the CPU: about 1 MB of complex64, so the windowed
#: segments, their spectra and their powers stay in the cache between the steps (the whole
#: frame at once is memory-bound: twice as slow at 61.44 MS/s).
CPU_CHUNK_SAMPLES = 1 << 17
DB_PER_UNIT = 10.0
INPUT_RANGE = (-2.0, 8.0)
_TINY = 1e-20


class Spectrogram:
    """Rows of pixel powers (dBFS) from whole rows of samples.

    Args:
        geometry: the geometry to compute.
        device: where the computation runs.
    """

    def __init__(self, geometry: Geometry, device: torch.device | str = "cpu") -> None:
        self.geometry = geometry
        self.device = torch.device(device)
        g = geometry
        window = torch.hann_window(g.nfft, periodic=True, dtype=torch.float32, device=self.device)
        # Bin power = |FFT(w x)|^2 / (nfft * sum(w^2)): noise of power s reads s / nfft per bin;
        # the mean over segments is folded in too.
        scale = 1.0 / (g.nfft * float((window**2).sum()) * g.segments)
        # (-1)^n moves 0 Hz to the middle bin: the FFT comes out in fftshift order.
        alternate = 1.0 - 2.0 * (torch.arange(g.nfft, device=self.device) % 2)
        self._window = (window * alternate * scale**0.5).to(torch.complex64)
        self._starts = [int(s) for s in g.segment_starts()]
        self._chunk_rows = (
            max(1, CPU_CHUNK_SAMPLES // (g.segments * g.nfft)) if self.device.type == "cpu"
            else None
        )

    def power(self, samples: torch.Tensor) -> torch.Tensor:
        """Linear pixel power of every whole row in ``samples``.

        Args:
            samples: complex64, shape (..., n) with n a multiple of ``samples_per_row``.

        Returns:
            float32, shape (..., n // samples_per_row, width).
        """
        g = self.geometry
        rows = samples.reshape(*samples.shape[:-1], -1, g.samples_per_row)
        n = rows.shape[-2]
        if n == 0:
            return torch.zeros(*rows.shape[:-1], g.width, device=self.device)
        step = self._chunk_rows or n
        if n <= step:
            return self._power(rows)
        out = torch.empty(*rows.shape[:-1], g.width, device=self.device)
        for first in range(0, n, step):
            out[..., first : first + step, :] = self._power(rows[..., first : first + step, :])
        return out

    def _power(self, rows: torch.Tensor) -> torch.Tensor:
        """:meth:`power` of rows (..., n, samples_per_row) in one pass."""
        g = self.geometry
        segments = torch.empty(*rows.shape[:-1], g.segments, g.nfft, dtype=torch.complex64,
                               device=self.device)
        for k, start in enumerate(self._starts):  # windowed as they are gathered
            torch.mul(rows[..., start : start + g.nfft], self._window, out=segments[..., k, :])
        spectrum = torch.fft.fft(segments, dim=-1)
        bins = (spectrum.real**2 + spectrum.imag**2).sum(dim=-2)
        return self._pool(bins)

    def rows(self, samples: torch.Tensor) -> torch.Tensor:
        """Pixel power in dBFS of every whole row in ``samples`` (see :meth:`power`)."""
        return 10.0 * torch.log10(self.power(samples) + _TINY)

    def frame(self, samples: np.ndarray | torch.Tensor) -> torch.Tensor:
        """dBFS image of one frame, shape (height, width), from ``frame_samples`` samples."""
        x = torch.as_tensor(samples, device=self.device)
        if x.shape[-1] != self.geometry.frame_samples:
            raise ValueError(
                f"a frame needs {self.geometry.frame_samples} samples, got {x.shape[-1]}"
            )
        return self.rows(x.to(torch.complex64))

    def _pool(self, bins: torch.Tensor) -> torch.Tensor:
        """Sum ``zoom`` FFT bins into each pixel, centred on the pixel centre.

        Pixel j spans bins ``j*zoom - zoom/2 .. j*zoom + zoom/2`` (after fftshift); the two bins on
        its edges are shared half and half with its neighbours, so every bin counts once.
        """
        zoom = self.geometry.zoom
        if zoom == 1:
            return bins
        rolled = torch.roll(bins, zoom // 2, dims=-1)
        grouped = rolled.unflatten(-1, (self.geometry.width, zoom))
        edge = grouped[..., 0]
        return grouped.sum(dim=-1) - 0.5 * edge + 0.5 * torch.roll(edge, -1, dims=-1)


class StreamingSpectrogram:
    """Rows as samples arrive, from blocks of any length.

    Holds at most one row's worth of samples between calls; the rows it returns equal those of
    :meth:`Spectrogram.rows` on the whole stream.
    """

    def __init__(self, spectrogram: Spectrogram) -> None:
        self.spectrogram = spectrogram
        self._pending = torch.zeros(0, dtype=torch.complex64, device=spectrogram.device)

    def push(self, samples: torch.Tensor) -> torch.Tensor:
        """Add ``samples`` (complex64, 1-D); return the dBFS rows completed, (rows, width).

        The block itself is never copied: only the row that straddles the previous block is
        assembled, and the tail left for the next one is kept.
        """
        spr = self.spectrogram.geometry.samples_per_row
        x = samples.to(self._pending.device)
        parts = []
        start = 0
        if self._pending.numel():
            start = spr - self._pending.numel()
            if x.numel() < start:
                self._pending = torch.cat((self._pending, x))
                return self.spectrogram.rows(x[:0])
            parts.append(self.spectrogram.rows(torch.cat((self._pending, x[:start]))))
        whole = (x.numel() - start) // spr * spr
        parts.append(self.spectrogram.rows(x[start : start + whole]))
        self._pending = x[start + whole :].clone()
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def reset(self) -> None:
        """Forget pending samples (after a retune or a gap in the stream)."""
        self._pending = self._pending[:0]


def network_input(frame_db: torch.Tensor) -> torch.Tensor:
    """The network's input from dBFS frames: ``(dB - floor) / 10``, floor-referenced.

    Args:
        frame_db: shape (..., height, width), dBFS.

    Returns:
        float32, shape (..., 1, height, width), clipped to ``INPUT_RANGE``.
    """
    flat = frame_db.flatten(-2)
    k = max(1, round(FLOOR_QUANTILE * flat.shape[-1]))
    floor = flat.kthvalue(k, dim=-1).values[..., None, None]
    scaled = (frame_db - floor) / DB_PER_UNIT
    return scaled.clamp(*INPUT_RANGE).unsqueeze(-3).to(torch.float32)

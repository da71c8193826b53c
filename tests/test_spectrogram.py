"""The one spectrogram geometry: scale, coverage, stream equals frame, floor-tied input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monitor.dsp.geometry import Geometry
from monitor.dsp.spectrogram import Spectrogram, StreamingSpectrogram, network_input

RATES = [1.92e6, 2.4e6, 19.2e6, 46.08e6, 61.44e6]


def _noise(n: int, power: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    return (x * np.sqrt(power / 2)).astype(np.complex64)


@pytest.mark.parametrize("rate", RATES)
def test_geometry_covers_every_sample_in_40ms(rate: float) -> None:
    g = Geometry.for_rate(rate)
    assert (g.width, g.height) == (256, 256)
    assert g.frame_seconds == pytest.approx(0.04, rel=2e-3)
    starts = g.segment_starts()
    covered = np.zeros(g.samples_per_row, dtype=bool)
    for s in starts:
        covered[s : s + g.nfft] = True
    assert covered.all()
    # the fewest segments that can: about one FFT per sample
    assert g.segments == -(-g.samples_per_row // g.nfft)


def test_geometry_below_1_64_msps_lengthens_the_frame() -> None:
    g = Geometry.for_rate(1.0e6)
    assert g.samples_per_row == 256
    assert g.frame_seconds == pytest.approx(256 * 256 / 1.0e6)


def test_geometry_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Geometry.for_rate(0.0)


@pytest.mark.parametrize("rate", RATES)
def test_noise_reads_its_power_per_pixel(rate: float) -> None:
    g = Geometry.for_rate(rate)
    spec = Spectrogram(g)
    power = spec.power(torch.from_numpy(_noise(g.frame_samples, power=0.01)))
    assert float(power.mean()) * g.width == pytest.approx(0.01, rel=0.02)


@pytest.mark.parametrize("rate", [19.2e6, 61.44e6])
def test_full_scale_tone_reads_0_dbfs_on_its_pixel(rate: float) -> None:
    g = Geometry.for_rate(rate)
    n = np.arange(g.frame_samples)
    k = 37  # pixels above the centre
    tone = np.exp(2j * np.pi * k * g.pixel_hz * n / rate).astype(np.complex64)
    db = Spectrogram(g).rows(torch.from_numpy(tone))
    assert float(db[:, g.width // 2 + k].mean()) == pytest.approx(0.0, abs=0.05)
    assert float(db[:, g.width // 2 + k + 2].max()) < -60


def test_pixel_centres_match_the_tone_positions() -> None:
    g = Geometry.for_rate(19.2e6)
    centres = g.pixel_centres()
    assert centres[g.width // 2] == 0.0
    assert centres[0] == pytest.approx(-19.2e6 / 2)
    n = np.arange(g.frame_samples)
    tone = np.exp(2j * np.pi * -3.1e6 * n / g.sample_rate).astype(np.complex64)
    db = Spectrogram(g).rows(torch.from_numpy(tone)).mean(dim=0)
    assert abs(centres[int(db.argmax())] - -3.1e6) <= g.pixel_hz / 2


@pytest.mark.parametrize("rate", [1.92e6, 19.2e6])
def test_stream_gives_the_same_rows_as_the_frame(rate: float) -> None:
    g = Geometry.for_rate(rate)
    spec = Spectrogram(g)
    x = torch.from_numpy(_noise(g.frame_samples + 123, seed=3))
    whole = spec.rows(x[: g.frame_samples])
    stream = StreamingSpectrogram(spec)
    rng = np.random.default_rng(1)
    rows, i = [], 0
    while i < len(x):
        step = int(rng.integers(1, 3 * g.samples_per_row))
        rows.append(stream.push(x[i : i + step]))
        i += step
    streamed = torch.cat(rows)
    assert streamed.shape == whole.shape
    assert torch.equal(streamed, whole)


def test_network_input_is_tied_to_the_noise_floor() -> None:
    g = Geometry.for_rate(19.2e6)
    spec = Spectrogram(g)
    noise = _noise(g.frame_samples, seed=5)
    n = np.arange(g.frame_samples)
    carrier = 1e3 * np.exp(2j * np.pi * 2e6 * n / g.sample_rate).astype(np.complex64)
    quiet = network_input(spec.frame(noise))
    loud = network_input(spec.frame(noise + carrier))
    assert quiet.shape == (1, 256, 256)
    # the noise pixels far from the strong tone keep their values when it appears
    far = slice(0, 100)
    assert torch.allclose(quiet[0, :, far], loud[0, :, far], atol=0.05)
    assert float(quiet.median()) == pytest.approx(0.1, abs=0.15)
    # scaling the whole input (a gain change) does not change the network's input
    louder = network_input(spec.frame(noise * 10))
    assert torch.allclose(quiet, louder, atol=1e-4)

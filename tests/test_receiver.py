"""Receiver impairments and the SigMF sample formats."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy.special import erfc

from monitor.errors import InputError
from monitor.iq_formats import from_raw, parse_datatype, to_raw
from monitor.sources.files import open_recording
from monitor.synth.receiver import (
    RECEIVERS,
    ReceiverProfile,
    apply_receiver,
)

FS = 1.92e6


def _noise(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 2), dtype=np.float32) * np.float32(np.sqrt(0.5))).view(
        np.complex64
    )[:, 0]


def _periodogram(x: np.ndarray, n_fft: int) -> np.ndarray:
    """Averaged periodogram (rectangular window), in fftshift order: noise of unit power -> 1."""
    rows = x[: x.size // n_fft * n_fft].reshape(-1, n_fft)
    return np.fft.fftshift(np.mean(np.abs(np.fft.fft(rows, axis=1)) ** 2, axis=0)) / n_fft


def _db(value: float) -> float:
    return float(10 * np.log10(value))


# --- receivers ----------------------------------------------------------------------------------


def test_profile_validation() -> None:
    with pytest.raises(InputError, match="datatype"):
        ReceiverProfile("bad", datatype="ci12")
    with pytest.raises(InputError, match="corner"):
        ReceiverProfile("bad", flicker_db=(10.0, 10.0))
    with pytest.raises(InputError):
        ReceiverProfile("bad", rolloff_start=1.5)


def test_ideal_adds_nothing() -> None:
    x = _noise(10_000) * 3
    y = apply_receiver(x, FS, RECEIVERS["ideal"], np.random.default_rng(0))
    assert y.dtype == np.complex64
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("name", ["rtlsdr", "hackrf", "usrp"])
def test_radios_record_on_their_grid(name: str) -> None:
    profile = RECEIVERS[name]
    y = apply_receiver(_noise(200_000), FS, profile, np.random.default_rng(1))
    assert y.dtype == np.complex64 and y.size == 200_000
    fmt = parse_datatype(profile.datatype)
    np.testing.assert_array_equal(from_raw(to_raw(y, fmt), fmt), y)
    assert np.abs(y.view(np.float32)).max() <= 1.0
    assert profile.rms_dbfs is not None
    low, high = profile.rms_dbfs
    assert low - 0.5 <= 10 * np.log10(np.mean(np.abs(y) ** 2)) <= high + 0.5


def test_dc_line_height() -> None:
    profile = ReceiverProfile("dc", dc_db=(20.0, 20.0))
    y = apply_receiver(_noise(1_048_576), FS, profile, np.random.default_rng(2))
    spectrum = _periodogram(y, 1024)  # bins of fs/1024: the noise is 1 per bin
    floor = np.median(spectrum)
    assert floor == pytest.approx(1.0, rel=0.05)
    assert _db(spectrum[512] - floor) == pytest.approx(20.0, abs=0.5)
    assert np.delete(spectrum, 512).max() < 1.5


def test_flicker_hump() -> None:
    profile = ReceiverProfile("flicker", flicker_db=(18.0, 18.0), flicker_hz=4000.0)
    y = apply_receiver(_noise(2_097_152), FS, profile, np.random.default_rng(3))
    spectrum = _periodogram(y, 4096)  # 469 Hz bins, a tenth of the corner
    freq = (np.arange(4096) - 2048) * FS / 4096
    above = spectrum - 1.0
    assert _db(above[2048]) == pytest.approx(18.0, abs=1.0)
    corner = np.abs(np.abs(freq) - 4000.0) < 300
    assert _db(above[corner].mean()) == pytest.approx(15.0, abs=1.0)
    assert _db(above[np.abs(freq) > 200e3].mean() + 1.0) < 0.1


def test_image_rejection() -> None:
    n, bin_ = 262_144, 13_107  # a tone at +0.05 fs, on a bin
    tone = 100 * np.exp(2j * np.pi * bin_ * np.arange(n) / n)
    x = (tone + _noise(n)).astype(np.complex64)
    profile = ReceiverProfile("image", image_db=(-30.0, -30.0))
    spectrum = np.abs(np.fft.fft(apply_receiver(x, FS, profile, np.random.default_rng(4)))) ** 2
    assert _db(spectrum[-bin_] / spectrum[bin_]) == pytest.approx(-30.0, abs=0.3)


def test_rolloff_shapes_signal_and_noise() -> None:
    profile = ReceiverProfile("rolloff", rolloff_start=0.3, rolloff_edge_db=6.5, rolloff_power=2.3)
    y = apply_receiver(_noise(1_048_576), FS, profile, np.random.default_rng(5))
    spectrum = _periodogram(y, 256)
    freq = (np.arange(256) - 128) / 128  # fractions of fs/2
    for f in (0.0, 0.5, 0.7, 0.82, 0.9, 0.97):
        measured = _db(spectrum[np.abs(np.abs(freq) - f) < 0.02].mean())
        assert measured == pytest.approx(float(profile.rolloff_db(np.array(f))), abs=0.3)
    assert float(profile.rolloff_db(np.array(0.82))) == pytest.approx(-3.0, abs=0.3)


def test_agc_level_and_clipping() -> None:
    # RMS -3 dBFS: each rail has sigma 0.5 of full scale; cu8 reads (code - 127.5) / 128, so
    # values beyond +-127/128 land on the end codes 0 and 255 (+-0.99609375).
    profile = ReceiverProfile("agc", datatype="cu8", rms_dbfs=(-3.0, -3.0))
    y = apply_receiver(_noise(500_000), FS, profile, np.random.default_rng(6))
    rails = y.view(np.float32)
    sigma = 10 ** (-3 / 20) / np.sqrt(2)
    expected = erfc((127 / 128) / (sigma * np.sqrt(2)))
    end = 127.5 / 128
    assert np.mean(np.abs(rails) == np.float32(end)) == pytest.approx(expected, abs=0.002)
    assert rails.max() == np.float32(end) and rails.min() == -np.float32(end)
    quiet = dataclasses.replace(profile, rms_dbfs=(-20.0, -20.0))
    y = apply_receiver(_noise(500_000), FS, quiet, np.random.default_rng(7))
    assert _db(np.mean(np.abs(y) ** 2)) == pytest.approx(-20.0, abs=0.1)


def test_receiver_draws_from_its_ranges() -> None:
    profile = ReceiverProfile("ranges", datatype="ci16_le", rms_dbfs=(-30.0, -10.0))
    levels = []
    for seed in range(40):
        y = apply_receiver(_noise(4096, seed), FS, profile, np.random.default_rng(seed))
        levels.append(_db(np.mean(np.abs(y) ** 2)))
    assert -30.05 <= min(levels) < -25 and -15 < max(levels) <= -9.95


# --- the profiles against the recordings they were measured on ---------------------------------


def _load(captures_dir: Path, name: str) -> tuple[np.ndarray, float]:
    rec = open_recording(captures_dir / f"{name}.sigmf-meta")
    return rec.read(0, len(rec)), rec.sample_rate


def test_rtlsdr_rolloff_matches_recordings(captures_dir: Path) -> None:
    # The views lie inside flat LTE carriers: the mean shape of their spectra is the receiver's.
    freq = np.abs((np.arange(512) - 256) / 256)
    points = np.array([0.6, 0.75, 0.85, 0.95])
    measured = np.zeros(points.size)
    names = ("lte-fdd-1860-rtlsdr", "lte-tdd-2585-rtlsdr", "lte-2645-rtlsdr")
    for name in names:
        spectrum = _periodogram(_load(captures_dir, name)[0], 512)
        reference = spectrum[(freq > 0.1) & (freq < 0.4)].mean()
        measured += [_db(spectrum[np.abs(freq - f) < 0.03].mean() / reference) for f in points]
    expected = RECEIVERS["rtlsdr"].rolloff_db(points)
    np.testing.assert_allclose(measured / len(names), expected, atol=0.5)


def test_hackrf_dc_line_matches_recording(captures_dir: Path) -> None:
    x, _ = _load(captures_dir, "lte-1815-hackrf")
    spectrum = _periodogram(x, 1024)
    floor = np.median(np.r_[spectrum[440:500], spectrum[525:585]])
    low, high = RECEIVERS["hackrf"].dc_db or (0.0, 0.0)
    assert low - 1.0 <= _db(spectrum[512] / floor) <= high + 1.0

"""The OFDM modulator: exact continuous-time symbols at any rate, offsets, taper."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.signal

from monitor.synth.lte import LteConfig, lte_grid
from monitor.synth.ofdm import CarrierGrid, modulate, tone


def _grid(n_sc: int, scs: float, n_symbols: int, seed: int = 0) -> CarrierGrid:
    rng = np.random.default_rng(seed)
    qpsk = (rng.choice([-1, 1], (n_symbols, n_sc)) + 1j * rng.choice([-1, 1], (n_symbols, n_sc)))
    # TS 38.211 5.3.1 CP lengths in seconds: 144*2^-mu (+16 at the first symbol of each 0.5 ms)
    mu = int(np.log2(scs / 15e3))
    per_half_ms = 7 * 2**mu
    cp = np.full(n_symbols, 144 * 2.0**-mu)
    cp[::per_half_ms] += 16
    return CarrierGrid((qpsk / np.sqrt(2)).astype(np.complex64), scs, -(n_sc // 2), cp / 30.72e6)


@pytest.mark.parametrize("scs", [15e3, 30e3, 60e3])
def test_same_waveform_at_every_rate(scs: float) -> None:
    """30 kHz at 1.92 MS/s has CPs of 4.5 samples: the samples still lie on the waveform."""
    grid = _grid(int(1.5e6 / scs), scs, 28)
    low = modulate(grid, 1.92e6, 3000, start_time=2.1e-5, freq_offset=1.7e4)
    high = modulate(grid, 7.68e6, 12000, start_time=2.1e-5, freq_offset=1.7e4)
    assert np.max(np.abs(low - high[::4])) < 1e-4 * np.max(np.abs(low))


def test_cyclic_prefix_repeats_the_symbol_tail() -> None:
    grid = _grid(600, 15e3, 7)
    x = modulate(grid, 30.72e6, 15360, taper_seconds=0.0)
    # symbol 1 starts at 160 + 2048 samples; its CP (144) equals its last 144 samples
    s1 = 160 + 2048
    assert np.allclose(x[s1 : s1 + 144], x[s1 + 2048 : s1 + 2048 + 144], atol=1e-4)


def test_frequency_offset_moves_the_carrier() -> None:
    grid = _grid(120, 15e3, 14)
    fs = 7.68e6
    x = modulate(grid, fs, 7600, freq_offset=1.5e6 + 3.3e3)
    f, p = scipy.signal.welch(x, fs, nperseg=1024, return_onesided=False)
    distance = np.abs(f - 1.5e6 - 3.3e3)
    assert p[distance < 0.8e6].min() > 100 * p[distance > 1.2e6].max()


def test_subcarriers_outside_the_view_are_dropped() -> None:
    grid = _grid(600, 15e3, 14)  # 9 MHz wide
    x = modulate(grid, 1.92e6, 1900, freq_offset=0.0)
    assert np.isfinite(x).all()
    # unit-energy REs: power = number of subcarriers inside the 1.92 MHz view (about 128)
    assert np.mean(np.abs(x) ** 2) == pytest.approx(1.92e6 / 15e3, rel=0.05)


def test_taper_lowers_out_of_band_emission() -> None:
    grid = _grid(300, 15e3, 56)
    fs = 30.72e6
    hard = modulate(grid, fs, 56000, taper_seconds=0.0)
    soft = modulate(grid, fs, 56000, taper_seconds=1.0e-6)
    f, p_hard = scipy.signal.welch(hard, fs, nperseg=2048, return_onesided=False)
    _, p_soft = scipy.signal.welch(soft, fs, nperseg=2048, return_onesided=False)
    far = np.abs(f) > 4e6
    assert p_soft[far].mean() < 0.3 * p_hard[far].mean()


def test_outside_the_grid_is_silent() -> None:
    grid = _grid(12, 15e3, 7)
    x = modulate(grid, 1.92e6, 2000, start_time=-1e-4)
    assert np.all(x[:190] == 0)
    assert np.any(x[200:] != 0)


def test_rate_must_be_a_multiple_of_the_scs() -> None:
    with pytest.raises(ValueError):
        modulate(_grid(12, 15e3, 7), 2.048e6, 100)


def test_tone_matches_exp() -> None:
    n = np.arange(10000)
    assert np.allclose(tone(0.0123, 10000), np.exp(2j * np.pi * 0.0123 * n), atol=1e-5)


def test_an_lte_carrier_is_moved_by_a_mixer_whose_phase_runs_on() -> None:
    """36.211 7.4: an LTE carrier at an offset is the carrier at 0 Hz times one continuous tone,
    so its reference signals keep their phase from symbol to symbol wherever it is received."""
    grid = lte_grid(LteConfig(n_rb=6, cell_id=5), 2, np.random.default_rng(0))
    fs, n = 1.92e6, 3000
    at_zero = modulate(grid, fs, n)
    moved = modulate(grid, fs, n, freq_offset=300e3)
    assert np.allclose(moved, at_zero * tone(300e3 / fs, n), atol=1e-5)
    nr_like = replace(grid, continuous_phase=False)  # NR restarts each symbol's phase
    assert not np.allclose(modulate(nr_like, fs, n, freq_offset=300e3),
                           at_zero * tone(300e3 / fs, n), atol=1e-3)

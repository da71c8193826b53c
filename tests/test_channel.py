"""Fading profiles, the fading process and the transmitter-receiver offsets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import j0

from monitor.errors import InputError
from monitor.synth.channel import (
    PROFILES,
    FadingProfile,
    apply_fading,
    apply_offsets,
    parse_channel,
)


def _rms_delay_spread(profile: FadingProfile) -> float:
    powers = profile.tap_powers()
    delays = np.asarray(profile.delays_s)
    mean = powers @ delays
    return float(np.sqrt(powers @ delays**2 - mean**2))


def _band_limited_noise(rng: np.random.Generator, n: int, band: float = 0.8) -> np.ndarray:
    """Unit-power complex noise occupying |f| < band * fs/2."""
    spectrum = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    spectrum[np.abs(np.fft.fftfreq(n)) > band / 2] = 0
    x = np.fft.ifft(spectrum)
    return (x / np.sqrt(np.mean(np.abs(x) ** 2))).astype(np.complex64)


def test_tdl_tables_against_tr38901() -> None:
    # Table 7.7.2-1 (TDL-A): 23 taps, tap 2 at 0.3819 DS with 0 dB, tap 1 at -13.4 dB.
    tdla = PROFILES["tdla30-10"]
    assert len(tdla.delays_s) == 23
    assert tdla.delays_s[1] == pytest.approx(0.3819 * 30e-9)
    assert tdla.powers_db[:2] == (-13.4, 0.0)
    assert tdla.doppler_hz == 10.0 and tdla.k_factor_db is None
    # Table 7.7.2-3 (TDL-C): 24 taps, the last at 8.6523 DS and -22.8 dB.
    tdlc = PROFILES["tdlc300-100"]
    assert len(tdlc.delays_s) == 24
    assert tdlc.delays_s[-1] == pytest.approx(8.6523 * 300e-9)
    assert tdlc.powers_db[-1] == -22.8
    # Tables 7.7.2-4/5: the LOS tap (-0.2 / -0.03 dB) and its Rayleigh part (-13.5 / -22.03 dB)
    # merge into one Rician tap with K = 13.3 / 22 dB.
    tdld, tdle = PROFILES["tdld30-10"], PROFILES["tdle30-10"]
    assert tdld.k_factor_db == pytest.approx(13.3) and len(tdld.delays_s) == 13
    assert tdle.k_factor_db == pytest.approx(22.0) and len(tdle.delays_s) == 14
    assert tdld.powers_db[0] == pytest.approx(10 * np.log10(10**-0.02 + 10**-1.35))
    assert tdle.delays_s[-1] == pytest.approx(20.6519 * 30e-9)
    assert PROFILES["tdlb100-400"].delays_s[2] == pytest.approx(0.2155 * 100e-9)


@pytest.mark.parametrize(
    ("name", "spread_ns", "tolerance"),
    [
        # The TR 38.901 tables are normalised to an RMS delay spread of 1 (TDL-D is 0.994 as
        # published); TS 36.104 gives 43, 357 and 991 ns for EPA, EVA, ETU.
        ("tdla30-10", 30.0, 0.001),
        ("tdlb100-400", 100.0, 0.001),
        ("tdlc300-100", 300.0, 0.001),
        ("tdld30-10", 30.0, 0.01),
        ("tdle30-10", 30.0, 0.001),
        ("epa5", 43.0, 0.01),
        ("eva70", 357.0, 0.01),
        ("etu300", 991.0, 0.01),
    ],
)
def test_rms_delay_spread(name: str, spread_ns: float, tolerance: float) -> None:
    assert _rms_delay_spread(PROFILES[name]) == pytest.approx(spread_ns * 1e-9, rel=tolerance)


def test_lte_tables_against_ts36104() -> None:
    etu = PROFILES["etu300"]
    assert etu.delays_s[-1] == pytest.approx(5000e-9)
    assert etu.powers_db == (-1.0, -1.0, -1.0, 0.0, 0.0, 0.0, -3.0, -5.0, -7.0)
    assert PROFILES["epa5"].powers_db[-1] == -20.8
    assert PROFILES["eva5"].delays_s[-1] == pytest.approx(2510e-9)


@pytest.mark.parametrize(
    ("spec", "name", "doppler"),
    [
        ("etu70", "etu70", 70.0),
        (" EPA5 ", "epa5", 5.0),
        ("eva200", "eva200", 200.0),
        ("tdlc300-100", "tdlc300-100", 100.0),
        ("TDL-A100-50", "tdla100-50", 50.0),
        ("tdle1000-2.5", "tdle1000-2.5", 2.5),
        ("rayleigh70", "rayleigh70", 70.0),
    ],
)
def test_parse_channel_forms(spec: str, name: str, doppler: float) -> None:
    profile = parse_channel(spec)
    assert profile is not None
    assert profile.name == name
    assert profile.doppler_hz == doppler


def test_parse_channel_scales_tdl_delays() -> None:
    profile = parse_channel("tdlb250-10")
    assert profile is not None
    assert profile.delays_s[-1] == pytest.approx(4.7834 * 250e-9)


@pytest.mark.parametrize("spec", ["none", "AWGN"])
def test_parse_channel_no_fading(spec: str) -> None:
    assert parse_channel(spec) is None


@pytest.mark.parametrize("spec", ["", "etu", "tdlf30-10", "tdla30", "rician5", "etu70x", "eta5"])
def test_parse_channel_rejects(spec: str) -> None:
    with pytest.raises(InputError, match="tdlXD-N"):
        parse_channel(spec)


@pytest.mark.parametrize("spec", ["etu5000", "tdla0-10", "tdla9000-10"])
def test_parse_channel_rejects_out_of_range(spec: str) -> None:
    with pytest.raises(InputError):
        parse_channel(spec)


def test_fading_keeps_length_and_type() -> None:
    rng = np.random.default_rng(0)
    x = _band_limited_noise(rng, 1001)
    y = apply_fading(x, 1.92e6, PROFILES["etu300"], rng)
    assert y.dtype == np.complex64 and y.shape == x.shape
    assert apply_fading(x[:0], 1.92e6, PROFILES["etu300"], rng).shape == (0,)


@pytest.mark.parametrize(
    ("name", "sample_rate", "n", "runs"),
    [
        # Multipath profiles: many short realisations (their slow fading barely averages in
        # 1 ms); the single path: long ones, 0.77 s or 54 Doppler periods each.
        ("etu300", 7.68e6, 7680, 500),
        ("tdlc300-100", 7.68e6, 7680, 500),
        ("tdld30-10", 7.68e6, 7680, 500),
        ("rayleigh70", 100e3, 76_800, 120),
    ],
)
def test_fading_mean_power_gain_is_one(name: str, sample_rate: float, n: int, runs: int) -> None:
    rng = np.random.default_rng(1)
    x = _band_limited_noise(rng, n)
    profile = PROFILES[name]
    gains = [np.mean(np.abs(apply_fading(x, sample_rate, profile, rng)) ** 2) for _ in range(runs)]
    assert np.mean(gains) == pytest.approx(1.0, abs=0.04)


def test_rayleigh_autocorrelation_follows_jakes() -> None:
    rng = np.random.default_rng(2)
    fs, doppler, n = 50e3, 100.0, 100_000  # 2 s, 200 Doppler periods
    profile = parse_channel(f"rayleigh{doppler:g}")
    assert profile is not None
    ones = np.ones(n, dtype=np.complex64)
    lags = np.array([25, 50, 100, 191, 300, 450])  # J0 from 0.94 through its first zero (191)
    corr = np.zeros(lags.size)
    power = 0.0
    for _ in range(40):
        h = apply_fading(ones, fs, profile, rng).astype(np.complex128)
        corr += [np.mean(h[lag:] * np.conj(h[:-lag])).real for lag in lags]
        power += np.mean(np.abs(h) ** 2)
    expected = j0(2 * np.pi * doppler * lags / fs)
    np.testing.assert_allclose(corr / power, expected, atol=0.08)


def test_rayleigh_doppler_spectrum_is_jakes() -> None:
    rng = np.random.default_rng(3)
    fs, doppler, n = 128e3, 100.0, 256_000
    profile = parse_channel(f"rayleigh{doppler:g}")
    assert profile is not None
    spectrum = np.zeros(n)
    for _ in range(20):
        h = apply_fading(np.ones(n, dtype=np.complex64), fs, profile, rng)
        spectrum += np.abs(np.fft.fft(h * np.hanning(n))) ** 2
    freq = np.abs(np.fft.fftfreq(n, 1 / fs)) / doppler
    total = spectrum.sum()
    # Classical spectrum S(f) ~ 1 / sqrt(1 - (f/fd)^2): nothing beyond fd, 12.8 % of the power
    # within 0.2 fd and 41 % between 0.8 fd and fd.
    assert spectrum[freq > 1.05].sum() / total < 1e-3
    assert spectrum[freq < 0.2].sum() / total == pytest.approx(0.128, abs=0.04)
    assert spectrum[(freq > 0.8) & (freq <= 1.05)].sum() / total == pytest.approx(0.41, abs=0.05)


def test_rician_tap_k_factor_and_los_doppler() -> None:
    rng = np.random.default_rng(4)
    fs, doppler, n = 20e3, 50.0, 20_000
    profile = FadingProfile("los", (0.0,), (0.0,), doppler, k_factor_db=10.0)
    # The LOS part is a line at fd cos(pi/4): demodulated, it is the mean; the rest is diffuse.
    los = np.exp(-2j * np.pi * doppler * np.cos(np.pi / 4) * np.arange(n) / fs)
    k_factors = []
    for _ in range(30):
        h = apply_fading(np.ones(n, dtype=np.complex64), fs, profile, rng)
        line = np.abs(np.mean(h * los)) ** 2
        k_factors.append(line / (np.mean(np.abs(h) ** 2) - line))
    assert 10 * np.log10(np.mean(k_factors)) == pytest.approx(10.0, abs=0.5)


def test_power_delay_profile_matches_table() -> None:
    # At 100 MS/s every ETU delay is a whole number of samples: correlating the output with the
    # white input recovers each tap's gain at its delay.
    rng = np.random.default_rng(5)
    fs, n, runs = 100e6, 8192, 150
    etu = PROFILES["etu70"]
    profile = FadingProfile("etu-static", etu.delays_s, etu.powers_db, 0.0)
    delays = np.rint(np.asarray(profile.delays_s) * fs).astype(int)
    pdp = np.zeros(600)
    for _ in range(runs):
        x = _band_limited_noise(rng, n, band=2.0)
        y = apply_fading(x, fs, profile, rng)
        corr = np.fft.ifft(np.fft.fft(y, 2 * n) * np.conj(np.fft.fft(x, 2 * n)))[:600] / n
        pdp += np.abs(corr) ** 2 / runs
    expected = profile.tap_powers()
    np.testing.assert_allclose(10 * np.log10(pdp[delays]), 10 * np.log10(expected), atol=1.0)
    others = np.delete(pdp, delays)
    assert others.max() < 0.01 * expected.min()


def test_fractional_delay_taps_are_band_limited_delays() -> None:
    rng = np.random.default_rng(6)
    fs, n, delay = 10e6, 20_000, 3.7
    x = _band_limited_noise(rng, n, band=0.9)
    profile = FadingProfile("two", (0.0, delay / fs), (0.0, -3.0), 0.0)
    y = apply_fading(x, fs, profile, np.random.default_rng(7))
    # Fit the same (static) realisation's two gains from its response over 90 % of the band.
    impulse = np.zeros(256, dtype=np.complex64)
    impulse[100] = 1
    h = apply_fading(impulse, fs, profile, np.random.default_rng(7))
    freq = np.fft.fftfreq(256)
    band = np.abs(freq) < 0.45
    response = np.fft.fft(h)[band] * np.exp(2j * np.pi * freq[band] * 100)
    model = np.stack([np.ones(band.sum()), np.exp(-2j * np.pi * freq[band] * delay)], axis=1)
    gains, *_ = np.linalg.lstsq(model, response, rcond=None)
    freq = np.fft.fftfreq(n)
    exact = np.fft.ifft(np.fft.fft(x) * (gains[0] + gains[1] * np.exp(-2j * np.pi * freq * delay)))
    inner = slice(100, n - 100)
    error = np.mean(np.abs(y[inner] - exact[inner]) ** 2) / np.mean(np.abs(exact[inner]) ** 2)
    assert 10 * np.log10(error) < -40


def test_cfo_shifts_a_tone() -> None:
    fs, n = 1.92e6, 19_200
    x = np.exp(2j * np.pi * 100e3 * np.arange(n) / fs).astype(np.complex64)
    y = apply_offsets(x, fs, cfo_hz=-37.5e3)
    freq = np.fft.fftfreq(n, 1 / fs)[np.argmax(np.abs(np.fft.fft(y)))]
    assert freq == pytest.approx(62.5e3)
    assert np.allclose(np.abs(y), 1.0, atol=1e-5)


def test_sro_scales_frequency_and_stretches_time() -> None:
    fs, n, ppm = 1e6, 200_000, 500.0
    t = np.arange(n)
    tone = np.exp(2j * np.pi * 0.2 * t).astype(np.complex64)
    y = apply_offsets(tone, fs, sro_ppm=ppm)
    inner = slice(100, n - 100)
    phase = np.unwrap(np.angle(y[inner].astype(np.complex128)))
    slope = np.polyfit(t[inner], phase, 1)[0] / (2 * np.pi)
    assert slope == pytest.approx(0.2 / (1 + ppm * 1e-6), rel=1e-7)
    # A pulse at sample 150000 lands at 150000 (1 + 500e-6) = 150075.
    pulse = np.exp(-0.5 * ((t - 150_000) / 8.0) ** 2).astype(np.complex64)
    moved = np.abs(apply_offsets(pulse, fs, sro_ppm=ppm)) ** 2
    assert moved @ t / moved.sum() == pytest.approx(150_075.0, abs=0.05)


@pytest.mark.parametrize("delay_samples", [12.3, -4.75, 0.5])
def test_fractional_timing_delay(delay_samples: float) -> None:
    fs, n = 2e6, 4096
    t = np.arange(n)
    pulse = np.exp(-0.5 * ((t - 2000) / 6.0) ** 2).astype(np.complex64)
    moved = np.abs(apply_offsets(pulse, fs, delay_s=delay_samples / fs)) ** 2
    assert moved @ t / moved.sum() == pytest.approx(2000 + delay_samples, abs=0.02)
    # Energy kept within the interpolator's passband ripple (0.02 dB).
    assert moved.sum() == pytest.approx(np.sum(np.abs(pulse) ** 2), rel=5e-3)


def test_offsets_keep_length_and_reject_absurd_sro() -> None:
    x = np.ones(1000, dtype=np.complex64)
    y = apply_offsets(x, 1e6, cfo_hz=10.0, sro_ppm=-80.0, delay_s=3e-6)
    assert y.shape == x.shape and y.dtype == np.complex64
    with pytest.raises(InputError):
        apply_offsets(x, 1e6, sro_ppm=5000.0)

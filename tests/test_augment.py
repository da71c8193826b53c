"""Tests of monitor.train.augment: each augmentation does what it says and keeps masks aligned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monitor.dsp.spectrogram import network_input
from monitor.train.augment import (
    AugmentConfig,
    add_dc_spike,
    add_gain,
    augment_frame,
    frequency_shift,
    lower_snr,
    mirror,
    noise_floor,
    random_crop,
)

FLOOR_DB = -60.0
DOF = 4.0
LTE_COLS = slice(60, 110)
NR_COLS = slice(180, 200)
CARRIER_DB = 15.0


def _frame(seed: int = 0, noise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Gamma-distributed noise (4 degrees of freedom) with an LTE and an NR carrier 15 dB up."""
    rng = np.random.default_rng(seed)
    power = 10 ** (FLOOR_DB / 10) * rng.gamma(DOF, 1 / DOF, size=(256, 256))
    mask = np.zeros((256, 256), dtype=np.uint8)
    mask[:, LTE_COLS] = 1
    mask[:, NR_COLS] = 2
    if not noise:
        mask[:, :110] = 1
        mask[:, 110:] = 2
    power[mask > 0] *= 10 ** (CARRIER_DB / 10)
    return (10 * np.log10(power)).astype(np.float32), mask


def _contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean in-band power over mean out-of-band power, dB."""
    linear = 10 ** (image / 10)
    return float(10 * np.log10(linear[mask > 0].mean() / linear[mask == 0].mean()))


def test_mirror_twice_is_identity_and_keeps_dc() -> None:
    image, mask = _frame()
    assert np.array_equal(mirror(mirror(image)), image)
    assert np.array_equal(mirror(mirror(mask)), mask)
    assert np.array_equal(mirror(image)[:, 128], image[:, 128])
    # Pixel j (offset j - 128) goes to offset 128 - j: the LTE band [60, 110) to [147, 197).
    flipped = mirror(mask)
    assert np.array_equal(np.flatnonzero(flipped[0] == 1), np.arange(147, 197))
    assert np.array_equal(mirror(image)[:, 147], image[:, 109])


def test_shift_moves_image_and_mask_and_fills_with_noise() -> None:
    image, mask = _frame()
    rng = np.random.default_rng(1)
    shifted, labels = frequency_shift(image, mask, 20, rng)
    assert np.array_equal(shifted[:, 80:130], image[:, LTE_COLS])
    assert np.array_equal(np.flatnonzero(labels[0] == 1), np.arange(80, 130))
    assert (labels[:, :20] == 0).all()
    noise_values = set(image[mask == 0].tolist())
    assert set(shifted[:, :20].ravel().tolist()) <= noise_values
    down, down_labels = frequency_shift(image, mask, -30, rng)
    assert np.array_equal(down[:, 30:80], image[:, LTE_COLS])
    assert (down_labels[:, -30:] == 0).all()


def test_shift_leaves_a_frame_without_visible_noise_alone() -> None:
    image, mask = _frame(noise=False)
    shifted, labels = frequency_shift(image, mask, 20, np.random.default_rng(0))
    assert np.array_equal(shifted, image)
    assert np.array_equal(labels, mask)


def test_noise_floor_measures_the_noise_pixels() -> None:
    image, mask = _frame()
    floor, dof = noise_floor(image, mask)
    assert 10 * np.log10(floor) == pytest.approx(FLOOR_DB, abs=0.2)
    assert DOF / 1.5 < dof < DOF * 1.5


def test_lower_snr_lowers_the_in_band_contrast_by_the_added_noise() -> None:
    image, mask = _frame()
    before = _contrast(image, mask)
    after = _contrast(lower_snr(image, mask, 0.0, np.random.default_rng(2)), mask)
    # Noise doubled: (S + N) / N becomes (S + 2N) / 2N, 15.1 dB -> 12.3 dB.
    expected = 10 * np.log10((10 ** (CARRIER_DB / 10) + 1) / 2)
    assert after < before
    assert after == pytest.approx(expected, abs=0.3)


def test_dc_spike_raises_only_the_centre_column() -> None:
    image, mask = _frame()
    spiked = add_dc_spike(image, mask, 20.0)
    assert np.array_equal(np.delete(spiked, 128, axis=1), np.delete(image, 128, axis=1))
    assert np.median(spiked[:, 128]) == pytest.approx(FLOOR_DB + 20.0, abs=0.5)


def test_gain_does_not_change_the_network_input() -> None:
    image, _ = _frame()
    a = network_input(torch.from_numpy(image))
    b = network_input(torch.from_numpy(add_gain(image, 13.0)))
    assert torch.allclose(a, b, atol=1e-4)


def test_random_crop_keeps_image_and_mask_aligned() -> None:
    columns = np.broadcast_to(np.arange(256, dtype=np.float32), (256, 256))
    rng = np.random.default_rng(3)
    image, mask = random_crop(columns, (columns % 3).astype(np.uint8), (64, 32), rng)
    assert image.shape == mask.shape == (64, 32)
    assert np.array_equal(image % 3, mask)
    with pytest.raises(ValueError):
        random_crop(columns, columns.astype(np.uint8), (512, 8), rng)


def test_augment_frame_is_seeded_and_keeps_carriers_under_their_labels() -> None:
    image, mask = _frame()
    config = AugmentConfig(crop=(128, 64), shift=1.0, mirror=1.0, gain=1.0, snr=1.0, dc=1.0,
                           added_noise_db=(-10.0, -5.0))
    a = augment_frame(image, mask, np.random.default_rng(7), config)
    b = augment_frame(image, mask, np.random.default_rng(7), config)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0].shape == a[1].shape == (128, 64)
    for seed in range(6):
        full = AugmentConfig(crop=None, shift=1.0, mirror=1.0, snr=1.0, dc=0.0,
                             added_noise_db=(-10.0, -5.0))
        out, labels = augment_frame(image, mask, np.random.default_rng(seed), full)
        assert _contrast(out, labels) > 10.0
        assert np.isin(np.unique(labels), [0, 1, 2]).all()


def test_config_rejects_sides_that_are_not_multiples_of_8() -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        AugmentConfig(crop=(100, 64))
    with pytest.raises(ValueError, match="probability"):
        AugmentConfig(mirror=1.5)

"""Augmentations that do to a training frame what radios do to a spectrum.

Every function works on a dBFS frame ``image`` (height, width) from the data set, before
:func:`monitor.dsp.spectrogram.network_input`, and on its class mask (same shape, 0 noise, 1 LTE,
2 NR); each returns new arrays and keeps the two aligned. Randomness comes only from the
``numpy.random.Generator`` passed in, so a frame's augmentation is fixed by the generator's seed.

What each one models:

- :func:`frequency_shift`: a receiver tuned a little off. Columns move with the mask; the columns
  uncovered on one side are filled with pixels drawn from the frame's own noise (the pixels its
  mask calls noise), never with zeros or a wrapped-around edge, which no receiver produces.
- :func:`mirror`: complex conjugation of the IQ stream (swapped I and Q, high-side injection),
  which mirrors the spectrum about DC: pixel ``j`` (offset ``j - width / 2``) goes to
  ``-(j - width / 2)``; the DC pixel stays where it is, and mirroring twice is the identity.
- :func:`add_gain`: another receiver gain, a dB offset of the whole frame. The network input is
  referenced to the frame's noise floor, so this checks invariance more than it teaches.
- :func:`lower_snr`: the same scene further away or through a noisier front end: noise is added
  in the linear power domain, ``P' = P + floor * u * g`` with ``u`` the added power relative to
  the floor and ``g`` a gamma-distributed fluctuation with the degrees of freedom of the frame's
  own noise pixels, so the added noise looks like the noise already there.
- :func:`add_dc_spike`: the LO leakage of zero-IF receivers, a line in the centre column
  (pixel ``width // 2``, 0 Hz) of random height above the floor. Labels do not change.
- :func:`random_crop`: a random window for training on smaller tiles (the networks are fully
  convolutional); sides must stay multiples of 8 for PRMNet's coarsest stream.

:func:`augment_frame` chains them as :class:`AugmentConfig` says, in the order a signal meets
them: retuning and mirroring (the scene), added noise, DC spike and gain (the receiver), crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.dsp.spectrogram import FLOOR_QUANTILE

__all__ = [
    "AugmentConfig",
    "add_dc_spike",
    "add_gain",
    "augment_frame",
    "frequency_shift",
    "lower_snr",
    "mirror",
    "noise_floor",
    "random_crop",
]

MIN_NOISE_PIXELS = 256
"""Fewest noise-labelled pixels the noise statistics are drawn from (one row's worth)."""

DEFAULT_DOF = 2.0
"""Degrees of freedom of a pixel's noise where the frame has too few noise pixels to tell."""

SIDE_MULTIPLE = 8


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations a training frame gets, and how strong.

    A probability of 0 switches an augmentation off; ``crop = None`` trains on whole frames.

    Attributes:
        crop: (height, width) of a random crop, multiples of 8, or None.
        shift: probability of a frequency shift.
        max_shift: largest shift, as a fraction of the width.
        mirror: probability of mirroring the spectrum.
        gain: probability of a gain offset.
        gain_db: range of the offset, dB.
        snr: probability of adding noise.
        added_noise_db: range of the added noise power relative to the frame's noise floor, dB
            (0 dB doubles the noise: the SNR falls by 3 dB).
        dc: probability of a DC spike.
        dc_db: range of the spike's power relative to the noise floor, dB.
    """

    crop: tuple[int, int] | None = (128, 128)
    shift: float = 0.5
    max_shift: float = 0.25
    mirror: float = 0.5
    gain: float = 0.5
    gain_db: tuple[float, float] = (-20.0, 20.0)
    snr: float = 0.3
    added_noise_db: tuple[float, float] = (-10.0, 6.0)
    dc: float = 0.2
    dc_db: tuple[float, float] = (0.0, 25.0)

    def __post_init__(self) -> None:
        if self.crop is not None and (
            len(self.crop) != 2 or any(s <= 0 or s % SIDE_MULTIPLE for s in self.crop)
        ):
            raise ValueError(f"crop sides must be positive multiples of 8, got {self.crop}")
        for name in ("shift", "mirror", "gain", "snr", "dc"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability, got {getattr(self, name)}")
        if not 0.0 <= self.max_shift < 1.0:
            raise ValueError(f"max_shift must lie in [0, 1), got {self.max_shift}")
        for name in ("gain_db", "added_noise_db", "dc_db"):
            low, high = getattr(self, name)
            if high < low:
                raise ValueError(f"{name} must be [low, high], got {getattr(self, name)}")


def augment_frame(
    image: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    config: AugmentConfig,
    radio: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Augment one frame as ``config`` says.

    Args:
        image: dBFS frame (height, width); with ``radio=False`` any image (channels, height,
            width), e.g. the authors' RGB pictures, which only get the mirror and the crop.
        mask: class mask (height, width).
        rng: the only source of randomness.
        config: what to apply.
        radio: whether ``image`` is a dBFS spectrogram, so that the radio effects apply.

    Returns:
        The augmented image (float32) and mask (uint8).
    """
    image = np.asarray(image, dtype=np.float32)
    mask = np.asarray(mask, dtype=np.uint8)
    if radio and rng.random() < config.shift:
        limit = round(config.max_shift * image.shape[-1])
        image, mask = frequency_shift(image, mask, int(rng.integers(-limit, limit + 1)), rng)
    if rng.random() < config.mirror:
        image, mask = mirror(image), mirror(mask)
    if radio and rng.random() < config.snr:
        image = lower_snr(image, mask, float(rng.uniform(*config.added_noise_db)), rng)
    if radio and rng.random() < config.dc:
        image = add_dc_spike(image, mask, float(rng.uniform(*config.dc_db)))
    if radio and rng.random() < config.gain:
        image = add_gain(image, float(rng.uniform(*config.gain_db)))
    if config.crop is not None:
        image, mask = random_crop(image, mask, config.crop, rng)
    return image, mask


def random_crop(
    image: np.ndarray, mask: np.ndarray, size: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random (height, width) window of the image (any leading axes) and of its mask.

    Raises:
        ValueError: if the window is larger than the frame.
    """
    height, width = mask.shape[-2:]
    h, w = size
    if h > height or w > width:
        raise ValueError(f"cannot crop {h}x{w} from a {height}x{width} frame")
    top = int(rng.integers(0, height - h + 1))
    left = int(rng.integers(0, width - w + 1))
    window = (slice(top, top + h), slice(left, left + w))
    return image[(..., *window)], mask[window]


def frequency_shift(
    image: np.ndarray, mask: np.ndarray, shift: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Move the spectrum ``shift`` pixels up in frequency (down where negative).

    The ``|shift|`` columns uncovered on one side are labelled noise and filled with pixels drawn
    at random from the frame's noise-labelled pixels. A frame with fewer than
    ``MIN_NOISE_PIXELS`` of them (a carrier filling the view) comes back unchanged: its noise
    floor cannot be seen, so nothing honest can fill the gap.
    """
    noise = _noise_pixels(image, mask)
    if shift == 0 or noise is None or abs(shift) >= mask.shape[-1]:
        return image.copy(), mask.copy()
    shifted = np.roll(image, shift, axis=-1)
    labels = np.roll(mask, shift, axis=-1)
    uncovered = slice(0, shift) if shift > 0 else slice(shift, None)
    fill_shape = shifted[:, uncovered].shape
    shifted[:, uncovered] = rng.choice(noise, size=fill_shape)
    labels[:, uncovered] = 0
    return shifted, labels


def mirror(array: np.ndarray) -> np.ndarray:
    """The spectrum mirrored about DC (complex conjugation); also right for masks.

    Pixel ``j`` goes to ``(width - j) % width``: the DC pixel ``width // 2`` and the Nyquist
    pixel 0 stay in place.
    """
    return np.roll(array[..., ::-1], 1, axis=-1).copy()


def add_gain(image: np.ndarray, gain_db: float) -> np.ndarray:
    """The frame ``gain_db`` dB stronger (weaker where negative)."""
    return (image + np.float32(gain_db)).astype(np.float32)


def noise_floor(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean linear power of a noise pixel, and its degrees of freedom.

    From the noise-labelled pixels where there are at least ``MIN_NOISE_PIXELS``; otherwise the
    floor is the frame's ``FLOOR_QUANTILE`` quantile (the reference of the network input) and the
    degrees of freedom ``DEFAULT_DOF``. The degrees of freedom ``k`` of a gamma-distributed power
    follow from the variance of its logarithm, ``var(ln P) = trigamma(k) ~ 1 / (k - 1/2)``.

    Returns:
        ``(floor, dof)``: floor in linear units of the frame (10 ** (dB / 10)), dof >= 1.
    """
    noise = _noise_pixels(image, mask)
    if noise is None:
        return float(10.0 ** (np.quantile(image, FLOOR_QUANTILE) / 10.0)), DEFAULT_DOF
    log_power = noise.astype(np.float64) * (np.log(10.0) / 10.0)
    dof = max(1.0, 1.0 / max(float(np.var(log_power)), 1e-6) + 0.5)
    return float(np.mean(np.exp(log_power))), dof


def lower_snr(
    image: np.ndarray, mask: np.ndarray, added_db: float, rng: np.random.Generator
) -> np.ndarray:
    """Add noise of ``added_db`` dB relative to the frame's noise floor, in the linear domain.

    Every pixel gets ``floor * 10 ** (added_db / 10) * g`` with ``g`` drawn from a gamma
    distribution of mean 1 and the degrees of freedom of the frame's own noise (see
    :func:`noise_floor`), so every carrier's SNR falls by ``10 log10(1 + 10 ** (added_db / 10))``
    dB where the floor is seen, and the labels stay as they are.
    """
    floor, dof = noise_floor(image, mask)
    fluctuation = rng.gamma(dof, 1.0 / dof, size=image.shape)
    added = floor * 10.0 ** (added_db / 10) * fluctuation
    power = 10.0 ** (image.astype(np.float64) / 10.0) + added
    return (10.0 * np.log10(power)).astype(np.float32)


def add_dc_spike(image: np.ndarray, mask: np.ndarray, height_db: float) -> np.ndarray:
    """Add a line ``height_db`` dB above the noise floor in the DC column (``width // 2``)."""
    floor, _ = noise_floor(image, mask)
    out = image.astype(np.float32)
    dc = image.shape[-1] // 2
    power = 10.0 ** (image[:, dc].astype(np.float64) / 10.0) + floor * 10.0 ** (height_db / 10)
    out[:, dc] = 10.0 * np.log10(power)
    return out


def _noise_pixels(image: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """The dB values of the noise-labelled pixels, or None where there are too few."""
    noise = image[mask == 0]
    return noise if noise.size >= MIN_NOISE_PIXELS else None

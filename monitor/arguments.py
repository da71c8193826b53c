"""Value types of the command lines' arguments: each turns text into a value or says, in the
words argparse prints, what is wrong with it."""

from __future__ import annotations

import argparse

__all__ = ["count", "positive_float", "positive_int", "probability", "rate_list", "snr_range"]


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def positive_int(text: str) -> int:
    value = _whole(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def count(text: str) -> int:
    """A whole number, 0 or more."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def probability(text: str) -> float:
    """A number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {text}")
    return value


def rate_list(text: str) -> tuple[float, ...]:
    """Comma-separated sample rates, e.g. ``1.92e6,19.2e6``."""
    return tuple(positive_float(t) for t in text.split(",") if t.strip())


def snr_range(text: str) -> tuple[float, float]:
    """``LO:HI`` in dB (``X`` alone is ``X:X``)."""
    lo, sep, hi = text.partition(":")
    try:
        low, high = float(lo), float(hi if sep else lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO:HI in dB, got {text!r}") from None
    if high < low:
        raise argparse.ArgumentTypeError(f"LO must not exceed HI, got {text!r}")
    return low, high


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None

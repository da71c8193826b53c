"""The calibration recipe (``calib/recipe.toml``): what the quantizer sees, how it quantizes,
what stays in higher precision, and the accuracy the result must keep."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import InputError

__all__ = ["DEFAULT_RECIPE", "RECIPE_FORMAT", "Recipe", "load_recipe"]

DEFAULT_RECIPE = Path(__file__).with_name("recipe.toml")
RECIPE_FORMAT = "prmnet-calib-recipe/1"
METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class Recipe:
    """A calibration recipe (see ``calib/recipe.toml`` for the meaning of every field).

    Attributes:
        rates: sample rates of the generator frames, used in turn.
        snr_db: per-carrier SNR range.
        count: generator frames.
        seed: their seed.
        frames_per_recording: frames taken from each of the user's recordings.
        method: int8 calibration method.
        per_channel: per-channel weight scales.
        keep: glob patterns of node names kept in float.
        test_count: frames of the synthetic test set.
        test_seed: its seed.
        max_drop_points: the most mean IoU (points) the quantized graph may lose.
        text: the recipe file as written.
    """

    rates: tuple[float, ...]
    snr_db: tuple[float, float]
    count: int
    seed: int
    frames_per_recording: int
    method: str
    per_channel: bool
    keep: tuple[str, ...]
    test_count: int
    test_seed: int
    max_drop_points: float
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def load_recipe(path: str | Path | None = None) -> Recipe:
    """Read a recipe (default ``calib/recipe.toml``).

    Raises:
        InputError: for a missing file, bad TOML, another format, or a missing or bad key.
    """
    target = Path(path) if path is not None else DEFAULT_RECIPE
    try:
        text = target.read_text()
        data = tomllib.loads(text)
    except OSError as exc:
        raise InputError(f"cannot read recipe {target}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{target} is not valid TOML: {exc}") from None
    if data.get("format") != RECIPE_FORMAT:
        raise InputError(f"{target} is not a {RECIPE_FORMAT} recipe")
    try:
        frames, quantize, test = data["frames"], data["quantize"], data["test"]
        recipe = Recipe(
            rates=tuple(float(r) for r in frames["rates"]),
            snr_db=(float(frames["snr_db"][0]), float(frames["snr_db"][1])),
            count=int(frames["count"]),
            seed=int(frames["seed"]),
            frames_per_recording=int(frames["frames_per_recording"]),
            method=str(quantize["method"]),
            per_channel=bool(quantize["per_channel"]),
            keep=tuple(str(k) for k in quantize["keep"]),
            test_count=int(test["count"]),
            test_seed=int(test["seed"]),
            max_drop_points=float(test["max_drop_points"]),
            text=text,
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise InputError(f"{target}: missing or bad key {exc}") from None
    if recipe.method not in METHODS:
        raise InputError(f"{target}: method must be {', '.join(METHODS)}, not {recipe.method}")
    if not recipe.rates or recipe.count < 1 or recipe.test_count < 1:
        raise InputError(f"{target}: needs at least one rate, one frame and one test frame")
    return recipe

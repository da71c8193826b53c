"""Training and evaluation: data sets, augmentation, metrics, the training loop, model cards."""

from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "configs"
"""The training configurations shipped with the package (``prmnet train NAME`` finds them)."""

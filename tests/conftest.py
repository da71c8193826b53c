"""Shared fixtures: the real-world recordings, and a quiet torch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

DEFAULT_CAPTURES = Path(__file__).parents[2] / "shared" / "captures"
CAPTURES = Path(os.environ.get("PRMNET_CAPTURES", DEFAULT_CAPTURES))


@pytest.fixture(scope="session")
def captures_dir() -> Path:
    """The folder of real recordings with truth.json; the test is skipped where it is absent."""
    if not (CAPTURES / "truth.json").is_file():
        pytest.skip(f"real recordings not found in {CAPTURES}")
    return CAPTURES


@pytest.fixture(scope="session")
def captures_truth(captures_dir: Path) -> list[dict]:
    return json.loads((captures_dir / "truth.json").read_text())

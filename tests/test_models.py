"""Which shipped model the monitor runs at a sample rate, and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engines import models
from engines.models import load_model
from engines.prmnet import create_model
from monitor.errors import InputError
from monitor.train.cards import make_card, save_checkpoint

ALL_RATES = [1.92e6, 61.44e6]
LOW_RATES = [1.92e6, 3.2e6]


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A weights folder: a cheap model for every rate, the same network for the low rates only,
    and a dearer one for every rate."""
    torch.manual_seed(0)
    for name, model, overrides, rates in (
        ("cheap_all", "prmnet_cpu", {}, ALL_RATES),
        ("cheap_low", "prmnet_cpu", {}, LOW_RATES),
        ("dear_all", "unet_s", {"base_width": 9}, ALL_RATES),
    ):
        card = make_card(model, overrides, rates)
        save_checkpoint(create_model(model, **overrides), card, tmp_path / f"{name}.safetensors")
    monkeypatch.setattr(models, "WEIGHTS_DIR", tmp_path)
    return tmp_path


def test_the_cheapest_model_runs_and_one_made_for_the_rate_goes_first(weights: Path) -> None:
    assert load_model(None, 2.4e6).name == "cheap_low"
    assert load_model(None, 19.2e6).name == "cheap_all"
    (weights / "cheap_all.json").unlink()  # no card: not a shipped model
    assert load_model(None, 19.2e6).name == "dear_all"


def test_on_a_gpu_the_best_tested_model_runs_and_an_untested_one_comes_last(
        weights: Path) -> None:
    def record_test_miou(name: str, miou: float) -> None:
        card = weights / f"{name}.json"
        data = json.loads(card.read_text())
        data["metrics"]["test"] = {"pixels": {"miou": miou}}
        card.write_text(json.dumps(data))

    assert load_model(None, 19.2e6, gpu=True).name == "cheap_all"  # none tested: the cheapest
    record_test_miou("dear_all", 0.74)
    assert load_model(None, 19.2e6, gpu=True).name == "dear_all"
    assert load_model(None, 19.2e6).name == "cheap_all"  # on the CPU the cost decides
    record_test_miou("cheap_all", 0.80)
    assert load_model(None, 19.2e6, gpu=True).name == "cheap_all"
    assert load_model(None, 2.4e6, gpu=True).name == "cheap_all"  # cheap_low: no test figure


def test_a_rate_no_model_serves_is_refused_with_the_rates_they_do(weights: Path) -> None:
    with pytest.raises(InputError, match=r"no shipped model serves 100 MS/s .*cheap_low: "
                                         r"1.92-3.2 MS/s"):
        load_model(None, 100e6)
    with pytest.raises(InputError, match=r"cheap_low serves 1\.92-3\.2 MS/s, not 19\.2 MS/s"):
        load_model("cheap_low", 19.2e6)
    assert load_model("cheap_low", None).card.sample_rates == LOW_RATES

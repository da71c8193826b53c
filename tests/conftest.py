"""Shared fixtures: the real-world recordings, and a quiet torch."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

if TYPE_CHECKING:
    from engines.models import LoadedModel

torch.set_num_threads(int(os.environ.get("PRMNET_TEST_THREADS", "2")))

def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak-minutes", type=float, default=0.0,
                     help="run the rtl_tcp soak test for this many minutes (default: skip it)")
    parser.addoption("--soak-report", default=None,
                     help="write the soak test's figures to this JSON file")


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


@pytest.fixture(scope="session")
def untrained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint with random weights: a run's mechanics, not its accuracy."""
    from engines.prmnet import create_model
    from monitor.train.cards import make_card, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "untrained_w8"
    return save_checkpoint(create_model("prmnet_w8"),
                           make_card("prmnet_w8", {}, [1.0e6, 62e6]), path)


def prmnet_engine_command(*argv: str) -> int:
    """Run ``prmnet ARGV`` for the commands of :mod:`engines.commands` (``engine``, ``export``,
    ``calib``) in this process; their exit status."""
    from engines.commands import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    return args.func(args)


def make_tiny_model() -> LoadedModel:
    """An untrained one-channel PRMNet at width 8 with a 32x32 card, the same weights each
    call."""
    from engines.models import LoadedModel
    from engines.prmnet import create_model
    from monitor.train.cards import geometry_fields, make_card

    torch.manual_seed(0)
    card = make_card("prmnet_w8", {}, [1.92e6, 61.44e6], geometry=geometry_fields(32, 32))
    return LoadedModel("tiny", create_model("prmnet_w8").eval(), card)


@pytest.fixture
def tiny_model() -> LoadedModel:
    """:func:`make_tiny_model` (engines tests)."""
    return make_tiny_model()


@pytest.fixture(scope="session")
def tiny_package() -> bytes:
    """The AOTInductor package of :func:`make_tiny_model` for this CPU (about 40 s to build,
    once a session); skipped where there is no C++ compiler."""
    from engines.backends.aot_package import build_package, compiler_unavailable

    reason = compiler_unavailable()
    if reason is not None:
        pytest.skip(reason)
    return build_package(make_tiny_model().module, (1, 1, 32, 32))


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private user cache directory (engine cache, quantized graphs)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "prmnet-monitor"


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the test (the engines tests keep their CPU use small)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""The synthetic radio: real-time blocks from the built-in world, retuning, gain."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.errors import InputError
from monitor.sources.synthetic import BAND_PLAN, SyntheticSource


def _power_db(source: SyntheticSource, blocks: int) -> float:
    it = source.blocks()
    samples = np.concatenate([next(it).samples for _ in range(blocks)])
    return float(10 * np.log10(np.mean(np.abs(samples) ** 2)))


def test_gain_moves_every_level_and_retune_moves_the_view() -> None:
    plan = (BAND_PLAN[1],)  # one 10 MHz LTE carrier at 1837.5 MHz
    source = SyntheticSource(center_freq=1.8375e9, sample_rate=1.92e6, realtime=False,
                             plan=plan)
    with source:
        nominal = _power_db(source, 3)
        source.set_gain(30.0)  # 10 dB over the nominal 20 dB
        assert _power_db(source, 3) == pytest.approx(nominal + 10.0, abs=0.5)
        source.set_gain("auto")
        assert _power_db(source, 3) == pytest.approx(nominal, abs=0.5)
        with pytest.raises(InputError):
            source.set_gain("loud")
        assert source.in_view() == [plan[0]]
        source.retune(1.9e9)
        block = next(source.blocks())
        assert block.retuned and block.center_freq == 1.9e9
        assert source.in_view() == []

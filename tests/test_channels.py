"""Fitting a segmented span to the nominal 3GPP channel of its class."""

from __future__ import annotations

import pytest

from monitor.occupancy.channels import CHANNEL_BANDWIDTHS, fit_channel


def test_the_bandwidths_are_the_3gpp_ones() -> None:
    assert CHANNEL_BANDWIDTHS["LTE"] == (1.4e6, 3e6, 5e6, 10e6, 15e6, 20e6)
    nr = CHANNEL_BANDWIDTHS["NR"]
    assert nr[0] == 5e6 and nr[-1] == 100e6 and 25e6 in nr and 35e6 not in nr


@pytest.mark.parametrize(("label", "width", "bandwidth"), [
    ("LTE", 1.25e6, 1.4e6),   # an RTL-SDR's view of a 1.4 MHz carrier, painted short
    ("LTE", 12e6, 10e6),      # nearest in ratio: 12/10 < 15/12
    ("LTE", 13e6, 15e6),
    ("NR", 23e6, 25e6),
    ("NR", 95e6, 100e6),
])
def test_a_span_takes_the_nearest_bandwidth_and_keeps_its_centre(
        label: str, width: float, bandwidth: float) -> None:
    centre = 1.8e9 + 10e3
    low, high = fit_channel(label, centre - width / 2, centre + width / 2)
    assert high - low == pytest.approx(bandwidth)
    assert (low + high) / 2 == pytest.approx(centre)


@pytest.mark.parametrize(("label", "width"), [
    ("LTE", 40e6),   # two 20 MHz LTE carriers side by side: not one channel
    ("LTE", 0.5e6),  # narrower than any LTE carrier
    ("NR", 3e6),
])
def test_a_span_far_from_every_bandwidth_keeps_its_edges(label: str, width: float) -> None:
    assert fit_channel(label, 1e9, 1e9 + width) == (1e9, 1e9 + width)


def test_a_class_without_channels_or_an_empty_span_is_an_error() -> None:
    with pytest.raises(ValueError, match="noise"):
        fit_channel("noise", 0.0, 1e6)
    with pytest.raises(ValueError, match="empty"):
        fit_channel("LTE", 1e6, 1e6)

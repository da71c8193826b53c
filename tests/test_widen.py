"""Widening a trained U-Net: the wider network computes what the narrow one computed, and its
copies of a channel part ways once it trains."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engines.unet import UNet
from engines.widen import widen_unet


def _trained_looking(base_width: int, **kwargs: object) -> UNet:
    """A U-Net whose batch norms hold statistics and affines other than their defaults."""
    torch.manual_seed(0)
    model = UNet(1, 3, base_width, depth=3, **kwargs)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
    return model


@pytest.mark.parametrize("wide", [7, 10, 15])
@pytest.mark.parametrize("pooling", [{}, {"time_pool": 2, "time_fold": True}])
def test_the_wider_network_computes_what_the_narrow_one_did(
    wide: int, pooling: dict[str, object]
) -> None:
    narrow = _trained_looking(5, **pooling)
    widened = UNet(1, 3, wide, depth=3, **pooling)
    widen_unet(narrow, widened, torch.Generator().manual_seed(1))
    assert widened.widths == [wide * 2**i for i in range(4)]
    x = torch.randn(2, 1, 32, 48)
    with torch.no_grad():
        narrow.eval(), widened.eval()
        assert torch.allclose(widened(x), narrow(x), atol=1e-5)
        narrow.train(), widened.train()  # batch statistics: the copies' are the originals'
        assert torch.allclose(widened(x), narrow(x), atol=1e-4)


def test_the_copies_of_a_channel_part_ways_in_training() -> None:
    widened = UNet(1, 3, 10, depth=3)
    widen_unet(_trained_looking(5), widened, torch.Generator().manual_seed(1))
    first = widened.stem.block[0].weight  # channels 2k and 2k+1 copy narrow channel k
    assert torch.equal(first[0::2], first[1::2])
    optimizer = torch.optim.SGD(widened.parameters(), lr=0.1)
    x, y = torch.randn(2, 1, 32, 48), torch.randint(0, 3, (2, 32, 48))
    nn.functional.cross_entropy(widened(x), y).backward()
    optimizer.step()
    assert not torch.allclose(first[0::2], first[1::2])


def test_only_a_wider_twin_takes_the_weights() -> None:
    narrow = _trained_looking(5)
    for other, match in ((UNet(1, 3, 4, depth=3), "cannot widen"),
                         (UNet(1, 3, 10, depth=2), "depth"),
                         (UNet(1, 3, 10, depth=3, time_pool=2), "time_pool"),
                         (UNet(1, 3, 10, depth=3, strip_context=True), "strip context")):
        with pytest.raises(ValueError, match=match):
            widen_unet(narrow, other)

"""Tests of engines.prmnet, engines.unet and engines.complexity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engines.complexity import conv_flops, param_count
from engines.context import StripContext
from engines.prmnet import (
    MODEL_CONFIGS,
    PRMNet,
    create_model,
    fuse_for_inference,
    prmnet,
    prmnet_w8,
    probabilities,
)
from engines.time_pool import fold_weights
from engines.unet import UNET_CONFIGS, unet_matching_flops

PUBLISHED_PARAMS = 14_495_203


def _meta_model(name: str) -> nn.Module:
    with torch.device("meta"):
        return create_model(name)


def test_published_parameter_count() -> None:
    assert param_count(_meta_model("prmnet")) == PUBLISHED_PARAMS
    with torch.device("meta"):
        assert param_count(PRMNet()) == PUBLISHED_PARAMS


def test_published_body_has_35_convs_at_5x5_and_a_1x1_projection() -> None:
    body = _meta_model("prmnet").body
    convs = [m for m in body.modules() if isinstance(m, nn.Conv2d)]
    assert sum(m.kernel_size == (5, 5) and m.out_channels == 128 for m in convs) == 35
    assert [m.kernel_size for m in convs if m.kernel_size != (5, 5)] == [(1, 1)]


@pytest.mark.parametrize("name", sorted(MODEL_CONFIGS))
def test_forward_returns_finite_logits_of_input_size(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(2, MODEL_CONFIGS[name]["in_chans"], 64, 64)
    with torch.inference_mode():
        logits = model(x)
    assert logits.shape == (2, 3, 64, 64)
    assert torch.isfinite(logits).all()


def test_probabilities_sum_to_one_over_classes() -> None:
    torch.manual_seed(0)
    probs = probabilities(10 * torch.randn(2, 3, 8, 8))
    assert torch.allclose(probs.sum(dim=1), torch.ones(2, 8, 8))
    assert (probs >= 0).all()


def test_spare_head_norms_do_not_change_the_output() -> None:
    torch.manual_seed(0)
    with_norms = prmnet_w8(spare_head_norms=True).eval()
    without = prmnet_w8(spare_head_norms=False).eval()
    without.load_state_dict(with_norms.state_dict(), strict=False)
    x = torch.randn(1, 1, 16, 16)
    with torch.inference_mode():
        assert torch.equal(with_norms(x), without(x))
    assert param_count(with_norms) - param_count(without) == 2 * (8 + 4)


def test_width8_reduces_loss_on_one_tiny_batch() -> None:
    torch.manual_seed(0)
    model = prmnet_w8()
    x = torch.randn(2, 1, 32, 32)
    target = (x[:, 0] > 0.5).long() + (x[:, 0] > 1.5).long()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0]


def test_conv_flops_of_a_single_conv() -> None:
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    # 2 images x 8 channels x 10 x 12 outputs, each 3 x 3 x 3 = 27 multiply-adds.
    assert conv_flops(conv, (2, 3, 10, 12)) == 2 * (2 * 8 * 10 * 12) * 27
    assert conv_flops(nn.Linear(5, 7), (4, 5)) == 2 * 4 * 7 * 5


def test_conv_flops_restores_training_mode() -> None:
    model = prmnet_w8()
    conv_flops(model, (1, 1, 16, 16))
    assert model.training


def test_unet_s_matches_prmnet_w16_flops_at_256() -> None:
    target = conv_flops(_meta_model("prmnet_w16"), (1, 1, 256, 256))
    unet = conv_flops(_meta_model("unet_s"), (1, 1, 256, 256))
    assert abs(unet - target) <= 0.15 * target


def test_unet_matching_flops_finds_unet_s() -> None:
    target = conv_flops(_meta_model("prmnet_w16"), (1, 1, 256, 256))
    unet = unet_matching_flops(target, in_chans=1, input_hw=(256, 256))
    assert unet.classifier.in_channels == UNET_CONFIGS["unet_s"]["base_width"]


@pytest.mark.parametrize(("name", "message"), [("prmnet_w8", "multiple of 8"),
                                               ("prmnet_cpu", "multiple of 32"),
                                               ("unet_s", "multiple of 16")])
def test_input_size_not_a_multiple_raises_clear_error(name: str, message: str) -> None:
    model = create_model(name)
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(1, 1, 44, 64))


@pytest.mark.parametrize(("pooled", "plain", "k"), [
    (lambda: create_model("prmnet_cpu"), lambda: create_model("prmnet_w8"), 4),
    (lambda: create_model("unet_s", base_width=4, time_pool=2),
     lambda: create_model("unet_s", base_width=4), 2),
])
def test_time_pool_keeps_every_row_and_pixel(pooled, plain, k: int) -> None:
    """prmnet_cpu and a time-pooled U-Net: the same weights as the unpooled network, logits at
    the input's size, 1/k of the FLOPs."""
    cpu, full = pooled(), plain()
    assert cpu(torch.randn(2, 1, 32 * k, 64)).shape == (2, 3, 32 * k, 64)
    assert param_count(cpu) == param_count(full)
    ratio = conv_flops(cpu, (1, 1, 256, 256)) / conv_flops(full, (1, 1, 256, 256))
    assert ratio == pytest.approx(1 / k, abs=0.01)
    # on rows repeated k times it is the unpooled network on the single rows, stretched
    cpu.load_state_dict(full.state_dict())
    cpu.eval(), full.eval()
    x = torch.randn(1, 1, 16, 32)
    with torch.no_grad():
        got = cpu(x.repeat_interleave(k, dim=-2))
        expected = F.interpolate(full(x), size=(16 * k, 32), mode="bilinear",
                                 align_corners=False)
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize(("name", "overrides", "first"), [
    ("prmnet_cpu", {}, "msfe.branches"),
    ("unet_s", {"base_width": 9, "time_pool": 2}, "stem.block.0"),
])
def test_a_folded_network_sees_the_rows_an_averaging_one_blurs(
    name: str, overrides: dict[str, int], first: str
) -> None:
    """time_fold: the group's rows as channels; with fold_weights it computes what its
    averaging twin computes, and unlike the twin it tells rows apart within a group."""
    torch.manual_seed(0)
    averaging = create_model(name, **overrides).eval()
    folded = create_model(name, **overrides, time_fold=True).eval()
    k = folded.time_pool
    assert folded.in_chans == 1
    weights = averaging.state_dict()
    stems = [key for key in weights if key.startswith(first) and key.endswith("weight")
             and weights[key].ndim == 4]
    folded.load_state_dict({key: fold_weights(v, k) if key in stems else v
                            for key, v in weights.items()})
    assert all(folded.state_dict()[key].shape[1] == k for key in stems)
    x = torch.randn(2, 1, 64, 64)
    swapped = x.clone()
    swapped[..., 0::k, :], swapped[..., 1::k, :] = x[..., 1::k, :], x[..., 0::k, :]
    with torch.no_grad():
        assert torch.allclose(folded(x), averaging(x), atol=1e-5)
        assert torch.allclose(averaging(swapped), averaging(x), atol=1e-5)
        folded.get_parameter(stems[0])[:, 0] += 1.0  # now row 0 of a group counts more
        assert not torch.allclose(folded(swapped), folded(x), atol=1e-3)
    assert conv_flops(folded, (1, 1, 256, 256)) / conv_flops(averaging, (1, 1, 256, 256)) < 1.03
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        folded(torch.zeros(1, k, 64, 64))


def test_strip_context_adds_what_a_pixels_column_and_row_hold() -> None:
    torch.manual_seed(0)
    context = StripContext(3)
    x = torch.randn(1, 3, 16, 16)
    assert torch.equal(context(x), x)  # it starts at zero
    for weight in context.parameters():
        torch.nn.init.normal_(weight)
    moved = x.clone()
    moved[..., 15, 3] += 5.0  # row 15, column 3
    with torch.no_grad():
        change = (context(moved) - context(x)).abs().amax(dim=1)[0]
    assert change[0, 3] > 0.1  # the same column, 15 rows away
    assert change[15, 0] > 0.1  # the same row, 3 columns away
    assert change[0, 0] == 0  # neither
    assert (change[:, 3] > 0.1).all() and (change[15, :] > 0.1).all()


def test_wrong_channel_count_raises_clear_error() -> None:
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        prmnet_w8()(torch.zeros(1, 3, 64, 64))


def test_unknown_model_name_raises() -> None:
    with pytest.raises(ValueError, match="unknown model 'prmnet_w7'"):
        create_model("prmnet_w7")


def test_entry_point_overrides_config() -> None:
    model = prmnet(in_chans=1, width=8, ms_width=2, head_width=8, head_mid_width=4)
    assert model.in_chans == 1
    assert model.body.proj.out_channels == 8


@pytest.mark.parametrize(("name", "overrides"), [
    ("prmnet_cpu", {}), ("prmnet_w16", {}), ("prmnet_cpu", {"strip_context": True}),
])
def test_fused_copy_gives_the_same_logits_without_norms(
    name: str, overrides: dict[str, bool]
) -> None:
    torch.manual_seed(0)
    model = create_model(name, **overrides)
    for context in (m for m in model.modules() if isinstance(m, StripContext)):
        for weight in context.parameters():
            nn.init.normal_(weight, std=0.1)
    for norm in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        nn.init.uniform_(norm.weight, 0.5, 1.5)
        nn.init.uniform_(norm.bias, -0.5, 0.5)
    model.eval()
    fused = fuse_for_inference(model)
    x = torch.randn(2, 1, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(fused(x), model(x), atol=1e-5, rtol=1e-4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert len(fused.msfe.branches) == 1 and fused.msfe.branches[0].kernel_size == (7, 7)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is kept


def test_fusing_leaves_other_models_alone() -> None:
    model = create_model("unet_s", base_width=4)
    assert fuse_for_inference(model) is model

"""Tests of monitor.train: data, configuration, training and resuming, model cards, evaluation."""

from __future__ import annotations

import argparse
import json
import pickle
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from engines.prmnet import create_model
from monitor.dsp.geometry import Geometry
from monitor.dsp.spectrogram import network_input
from monitor.errors import InputError
from monitor.synth.dataset import DatasetRequest, generate_dataset
from monitor.synth.truth import carrier_region, silent_as_noise
from monitor.train.cards import load_checkpoint, make_card, save_checkpoint
from monitor.train.commands import add_commands
from monitor.train.data import (
    PNG_COLOURS,
    AugmentedFrames,
    StepBatches,
    holdout_split,
    open_frames,
)
from monitor.train.evaluate import (
    ERROR_PLACES,
    REACH_SHARES,
    SNR_BINS,
    EvalResult,
    _count_carrier_pixels,
    _count_error_places,
    _count_missed,
    check_not_training_data,
    evaluate,
    evaluate_captures,
    format_report,
    rate_key,
    snr_bin,
    write_report,
)
from monitor.train.loop import (
    CONFIG_DIR,
    FIT_PROBE_STEPS,
    TrainConfig,
    _fitted_steps,
    _initialise,
    lovasz_softmax,
    resolve_config,
    segment,
    split_data,
    train,
)
from monitor.train.metrics import LTE, NR, ConfusionMatrix

RATE = 1.92e6


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: quicker on a busy machine, and the runs compare bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 12-frame training set in two shards and a 3-frame validation set, at 1.92 MS/s."""
    root = tmp_path_factory.mktemp("data")
    generate_dataset(root / "train", DatasetRequest(12, (RATE,), seed=11, shard_size=6),
                     workers=1, progress=False)
    generate_dataset(root / "val", DatasetRequest(3, (RATE,), seed=12), workers=1,
                     progress=False)
    return {"train": root / "train", "val": root / "val"}


def _config(data: dict[str, Path], steps: int, val_every: int = 3, **optim: float) -> TrainConfig:
    return TrainConfig.from_dict({
        "model": "prmnet_w8",
        "seed": 3,
        "data": {"train": [str(data["train"])], "val": [str(data["val"])], "val_frames": 1},
        "optim": {"steps": steps, "batch_size": 4, "lr": 1e-2, "warmup_steps": 0, **optim},
        "loss": {"dice": 0.5},
        "augment": {"crop": [64, 64]},
        "run": {"val_every": val_every, "checkpoint_every": 100},
    })


def _untrained(tmp_path: Path, name: str, model: str = "prmnet_w8", **overrides: int) -> Path:
    torch.manual_seed(0)
    card = make_card(model, overrides, [RATE])
    return save_checkpoint(create_model(model, **overrides), card, tmp_path / f"{name}.safetensors")


def test_shard_frames_give_network_input_labels_and_truth(data: dict[str, Path]) -> None:
    frames = open_frames([data["train"]])
    assert len(frames) == 12 and frames.in_chans == 1
    x, y, meta = frames[7]
    image, mask, _ = frames.raw(7)
    assert x.shape == (1, 256, 256) and x.dtype == torch.float32
    assert y.shape == (256, 256) and y.dtype == torch.int64
    assert torch.equal(x, network_input(torch.from_numpy(image)))
    assert torch.equal(y, torch.from_numpy(mask.astype(np.int64)))
    assert meta["index"] == 7 and meta["sample_rate"] == RATE and "carriers" in meta
    assert frames.sample_rates() == [RATE]
    clone = pickle.loads(pickle.dumps(frames))  # as a spawned loader worker gets it
    assert torch.equal(clone[7][0], x)


def test_sent_truth_makes_carriers_that_sent_nothing_noise(data: dict[str, Path]) -> None:
    channel, sent = open_frames([data["train"]]), open_frames([data["train"]], "sent")
    for i in range(len(channel)):
        image, mask, meta = channel.raw(i)
        geometry = Geometry.for_rate(meta["sample_rate"])
        expected = silent_as_noise(mask, channel.energy(i), meta["carriers"], geometry)
        assert np.array_equal(sent.raw(i)[1], expected)
        assert np.array_equal(sent.raw(i)[0], image)
        assert np.all((sent.raw(i)[1] == mask) | (sent.raw(i)[1] == 0))
    with pytest.raises(InputError, match="truth must be one of channel, sent"):
        open_frames([data["train"]], "painted")
    with pytest.raises(InputError, match="truth is one of"):
        TrainConfig.from_dict({"model": "prmnet_w8", "data": {
            "train": ["x"], "val_fraction": 0.3, "truth": "painted"}, "optim": {"steps": 1}})


def test_bad_data_folders_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such data folder"):
        open_frames([tmp_path / "missing"])
    with pytest.raises(InputError, match="not a data set"):
        open_frames([tmp_path])
    (tmp_path / "testSet").mkdir()
    with pytest.raises(InputError, match="testSet"):
        open_frames([tmp_path])


def test_authors_png_layout(tmp_path: Path) -> None:
    from matplotlib import image as mpimg

    root = tmp_path / "testSet"
    (root / "input").mkdir(parents=True)
    (root / "label").mkdir()
    rng = np.random.default_rng(0)
    classes = np.zeros((64, 80), dtype=np.uint8)
    classes[:, 20:40] = 1
    classes[:, 50:70] = 2
    colours = np.array([PNG_COLOURS[c] for c in range(3)], dtype=np.uint8)
    for name in ("a.png", "b.png"):
        mpimg.imsave(root / "input" / name, rng.integers(0, 256, (64, 80, 3), dtype=np.uint8))
        mpimg.imsave(root / "label" / name, colours[classes])
    frames = open_frames([root])
    assert len(frames) == 2 and frames.in_chans == 3
    x, y, meta = frames[1]
    assert x.shape == (3, 256, 256) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert meta["file"] == "b.png"
    # Nearest resize: output column c comes from column floor((c + 0.5) * 80 / 256).
    rows = ((np.arange(256) + 0.5) * 64 / 256).astype(int)
    cols = ((np.arange(256) + 0.5) * 80 / 256).astype(int)
    expected = classes[rows][:, cols]
    assert np.array_equal(y.numpy(), expected)
    train_idx, held = holdout_split(frames, 0.5)
    assert sorted(train_idx + held) == [0, 1]


def test_batches_depend_only_on_seed_and_step(data: dict[str, Path]) -> None:
    whole = list(StepBatches(12, 5, seed=4, start=0, stop=8))
    resumed = list(StepBatches(12, 5, seed=4, start=3, stop=8))
    assert resumed == whole[3:]
    first_epoch = [p for batch in whole for p, _ in batch][:12]
    assert sorted(first_epoch) == list(range(12))
    assert [k for batch in whole for _, k in batch] == list(range(40))
    frames = open_frames([data["train"]])
    items = AugmentedFrames(frames, range(12), _config(data, 1).augment, seed=3)
    a, b = items[(5, 17)], items[(5, 17)]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[0].shape == (1, 64, 64)


def test_holdout_split_is_by_frame_identity(data: dict[str, Path]) -> None:
    frames = open_frames([data["train"]])
    train_idx, held = holdout_split(frames, 0.3)
    assert sorted(train_idx + held) == list(range(12)) and held
    assert holdout_split(frames, 0.3) == (train_idx, held)


def test_shipped_configs_parse_and_bad_keys_are_named(tmp_path: Path) -> None:
    for path in sorted(CONFIG_DIR.glob("*.toml")):
        config = TrainConfig.from_toml(path)
        make_card(config.model, config.overrides, [RATE])  # the model builds
    assert resolve_config("prmnet_w8") == CONFIG_DIR / "prmnet_w8.toml"
    with pytest.raises(InputError, match="no such configuration"):
        resolve_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "prmnet_w8"\n[data]\ntrain = ["x"]\nval_fraction = 0.1\n'
                   "[optim]\nsteps = 10\nlearning_rate = 1.0\n")
    with pytest.raises(InputError, match="learning_rate"):
        TrainConfig.from_toml(bad)
    bad.write_text('model = "prmnet_w8"\n[data]\ntrain = ["x"]\nval_fraction = 0.1\n'
                   '[optim]\nsteps = "many"\n')
    with pytest.raises(InputError, match="steps"):
        TrainConfig.from_toml(bad)
    bad.write_text('model = "prmnet_w8"\n[data]\ntrain = ["x"]\n[optim]\nsteps = 1\n')
    with pytest.raises(InputError, match="val"):
        TrainConfig.from_toml(bad)


def test_training_lowers_the_loss(data: dict[str, Path], tmp_path: Path) -> None:
    result = train(_config(data, 20, val_every=8), tmp_path / "run", progress=False)
    assert result.finished and len(result.losses) == 20
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5])
    assert (tmp_path / "run" / "best.safetensors").is_file()
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [8, 16, 20]
    # and with the Lovasz-softmax term in place of Dice
    table = _config(data, 20, val_every=20).to_dict()
    lovasz = TrainConfig.from_dict({**table, "loss": {"dice": 0.0, "lovasz": 0.5}})
    result = train(lovasz, tmp_path / "lovasz", progress=False)
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5])


def test_a_run_for_some_rates_trains_on_their_frames_and_serves_them_alone(
    tmp_path: Path,
) -> None:
    generate_dataset(tmp_path / "two", DatasetRequest(8, (RATE, 2.4e6), seed=13), workers=1,
                     progress=False)
    frames = open_frames([tmp_path / "two"])
    config = TrainConfig.from_dict({
        "model": "prmnet_w8", "seed": 3,
        "data": {"train": [str(tmp_path / "two")], "val_fraction": 0.3, "rates": [2.4e6]},
        "optim": {"steps": 2, "batch_size": 2, "warmup_steps": 0},
        "augment": {"crop": [64, 64]},
    })
    train_idx, _, val_idx = split_data(config.data, frames)
    assert train_idx and val_idx
    assert {frames.metas[i]["sample_rate"] for i in train_idx + val_idx} == {2.4e6}
    assert len(train_idx) + len(val_idx) == 4
    train(config, tmp_path / "run", progress=False)
    card = json.loads((tmp_path / "run" / "best.json").read_text())
    assert card["sample_rates"] == [2.4e6, 2.4e6]
    assert card["data"]["train_frames"] == len(train_idx)
    elsewhere = TrainConfig.from_dict({**config.to_dict(), "data": {
        "train": [str(tmp_path / "two")], "val_fraction": 0.3, "rates": [10e6]}})
    with pytest.raises(InputError, match="0 training and 0 validation frames"):
        split_data(elsewhere.data, frames)
    with pytest.raises(InputError, match=r"data\.rates"):
        TrainConfig.from_dict({**config.to_dict(), "data": {
            "train": ["x"], "val_fraction": 0.3, "rates": ["fast"]}})


def test_resumed_run_gives_the_weights_of_an_uninterrupted_one(
    data: dict[str, Path], tmp_path: Path
) -> None:
    config = _config(data, 6)
    whole = train(config, tmp_path / "whole", progress=False)
    first = train(config, tmp_path / "parts", max_steps=4, progress=False)
    assert (first.step, first.finished) == (4, False)
    second = train(config, tmp_path / "parts", progress=False)
    assert (second.step, second.finished, len(second.losses)) == (6, True, 2)
    assert second.losses == whole.losses[4:]
    states = [torch.load(tmp_path / run / "ckpt-last.pt", weights_only=True)
              for run in ("whole", "parts")]
    assert states[0]["state"]["step"] == states[1]["state"]["step"] == 6
    for key, value in states[0]["model"].items():
        assert torch.equal(value, states[1]["model"][key]), key
    best = [safetensors.torch.load_file(tmp_path / run / "best.safetensors")
            for run in ("whole", "parts")]
    assert all(torch.equal(best[0][k], best[1][k]) for k in best[0])
    other = _config(data, 6, lr=1e-3)
    with pytest.raises(InputError, match="another configuration"):
        train(other, tmp_path / "parts", progress=False)
    # a run begun before a key existed (its checkpoint lacks it) resumes where the key is at its
    # default, and only there
    path = tmp_path / "parts" / "ckpt-last.pt"
    payload = torch.load(path, weights_only=True)
    del payload["config"]["data"]["truth"]
    payload["state"]["step"] = 4
    torch.save(payload, path)
    assert train(config, tmp_path / "parts", progress=False).step == 6
    sent = TrainConfig.from_dict({**config.to_dict(), "data": {
        **config.to_dict()["data"], "truth": "sent"}})
    with pytest.raises(InputError, match="another configuration"):
        train(sent, tmp_path / "parts", progress=False)


def test_init_starts_from_a_checkpoint_with_the_same_tensors(
    data: dict[str, Path], tmp_path: Path
) -> None:
    start = _untrained(tmp_path, "start", time_pool=2)
    config = TrainConfig.from_dict({**_config(data, 1).to_dict(), "init": str(start)})
    assert config.init == str(start)
    # one step at a learning rate of almost zero: the weights are the init's, not the seed's
    # (BatchNorm's running statistics move with the batch, so they are left out)
    run = train(TrainConfig.from_dict({**config.to_dict(), "optim": {
        **config.to_dict()["optim"], "lr": 1e-12}}), tmp_path / "run", progress=False)
    trained = safetensors.torch.load_file(run.best_path)
    initial = safetensors.torch.load_file(start)
    learned = [k for k in initial if "running_" not in k and "num_batches" not in k]
    assert all(torch.allclose(trained[k], initial[k], atol=1e-6) for k in learned)
    # a network that folds its rows starts as its averaging twin
    folded = TrainConfig.from_dict({**config.to_dict(), "overrides": {"time_pool": 2,
                                                                       "time_fold": True}})
    model = create_model("prmnet_w8", time_pool=2, time_fold=True).eval()
    _initialise(model, str(start))
    twin, _ = load_checkpoint(start)
    x = torch.randn(1, 1, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(model(x), twin(x), atol=1e-5)
    assert folded.overrides["time_fold"] is True
    # and one with strip context as the network without it
    for name, overrides in (("prmnet_w8", {}), ("unet_s", {"base_width": 4})):
        without = _untrained(tmp_path, f"{name}-plain", model=name, **overrides)
        model = create_model(name, **overrides, strip_context=True).eval()
        _initialise(model, str(without))
        twin, _ = load_checkpoint(without)
        with torch.inference_mode():
            assert torch.allclose(model(x), twin(x), atol=1e-5)
    # and a wider U-Net as the narrower one it was widened from
    narrow = _untrained(tmp_path, "unet-narrow", model="unet_s", base_width=4)
    model = create_model("unet_s", base_width=8).eval()
    _initialise(model, str(narrow))
    twin, _ = load_checkpoint(narrow)
    with torch.inference_mode():
        assert torch.allclose(model(x), twin(x), atol=1e-5)
    with pytest.raises(InputError, match="cannot widen"):
        _initialise(create_model("unet_s", base_width=3), str(narrow))
    bad = _untrained(tmp_path, "unet", model="unet_s")
    with pytest.raises(InputError, match="do not fit"):
        train(TrainConfig.from_dict({**config.to_dict(), "init": str(bad)}), tmp_path / "bad",
              progress=False)


def test_a_run_stopped_before_its_first_validation_validates_once(
    data: dict[str, Path], tmp_path: Path
) -> None:
    result = train(_config(data, 20, val_every=10), tmp_path / "run", max_steps=2,
                   progress=False)
    assert result.step == 2 and result.best_path is not None
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2]


def test_a_run_fitted_to_its_minutes_times_itself_and_keeps_its_steps(
    data: dict[str, Path], tmp_path: Path
) -> None:
    config = _config(data, 100_000, val_every=20)  # far more steps than fit
    part = train(config, tmp_path / "fit", fit_minutes=0.15, max_steps=5, progress=False)
    total = part.total_steps
    assert FIT_PROBE_STEPS < total < 100_000
    assert json.loads((tmp_path / "fit" / "config.json").read_text())["optim"]["steps"] == total
    # timing it left the model as it was: its steps are those of a run of that length
    plain = train(_config(data, total, val_every=20), tmp_path / "plain", max_steps=5,
                  progress=False)
    assert part.losses == plain.losses
    with pytest.raises(InputError, match="fitted to its wall time"):
        train(config, tmp_path / "fit", progress=False)
    # resumed, it keeps the steps it was fitted to, however long they take now
    rest = train(config, tmp_path / "fit", fit_minutes=0.15, max_minutes=10, progress=False)
    assert (rest.step, rest.total_steps) == (total, total)


def test_the_lovasz_softmax_loss_by_hand() -> None:
    # two pixels, labelled 0 and 1. Class 0: errors 0.2 (A), 0.4 (B); sorted B, A, the Jaccard
    # loss after B is 1/2, after both 1: 0.4 * 1/2 + 0.2 * 1/2 = 0.3. Class 1: errors 0.2 (A),
    # 0.4 (B); after B (its own pixel) the loss is 1, A adds none: 0.4. Mean 0.35.
    probs = torch.tensor([[[[0.8, 0.4]], [[0.2, 0.6]]]])
    labels = torch.tensor([[[0, 1]]])
    assert lovasz_softmax(probs, labels).item() == pytest.approx(0.35)
    onehot = torch.nn.functional.one_hot(labels, 2).permute(0, 3, 1, 2).float()
    assert lovasz_softmax(onehot, labels).item() == 0.0
    # a class absent from the labels is left out of the mean: both pixels labelled 0, errors 0.2
    # (A) and 0.6 (B); after B the loss is 1/2, after both 1: 0.6 * 1/2 + 0.2 * 1/2
    assert lovasz_softmax(probs, torch.zeros_like(labels)).item() == pytest.approx(0.4)
    table = {"model": "unet_s", "data": {"train": ["d"], "val": ["v"]}, "optim": {"steps": 1}}
    assert TrainConfig.from_dict({**table, "loss": {"lovasz": 0.5}}).loss.lovasz == 0.5
    with pytest.raises(InputError, match="must not be negative"):
        TrainConfig.from_dict({**table, "loss": {"lovasz": -1.0}})


def test_the_steps_that_fit_a_wall_time() -> None:
    config = TrainConfig.from_dict({"model": "prmnet_w8", "data": {"train": ["d"], "val": ["v"]},
                                    "optim": {"steps": 1, "warmup_steps": 100},
                                    "run": {"val_every": 50}})
    # 95 % of 100 s, less the last validation, at 0.1 s a step and 2 s every 50 steps
    assert _fitted_steps(config, 100.0, 0.1, 2.0) == int((0.95 * 100 - 2) / (0.1 + 2 / 50))
    with pytest.raises(InputError, match=r"fit 53 steps .* not more than the 100 of the warm-up"):
        _fitted_steps(config, 10.0, 0.1, 2.0)


def test_bf16_training_lowers_the_loss_and_bad_precisions_are_named(
    data: dict[str, Path], tmp_path: Path
) -> None:
    config = _config(data, 12, val_every=12)
    table = {**config.to_dict(), "run": {**config.to_dict()["run"], "precision": "bf16"}}
    result = train(TrainConfig.from_dict(table), tmp_path / "run", progress=False)
    assert result.finished and np.mean(result.losses[-4:]) < np.mean(result.losses[:4])
    model, _ = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast, fp32 weights
    table["run"]["precision"] = "fp16"
    with pytest.raises(InputError, match=r"run\.precision is one of fp32, bf16"):
        TrainConfig.from_dict(table)


def test_weights_stored_in_half_precision_load_as_measured(tmp_path: Path) -> None:
    from monitor.train.cards import round_to_half

    torch.manual_seed(0)
    model = create_model("prmnet_w8").eval()
    full = save_checkpoint(model, make_card("prmnet_w8", {}, [RATE]), tmp_path / "full")
    round_to_half(model)
    half = save_checkpoint(model, make_card("prmnet_w8", {}, [RATE]), tmp_path / "half",
                           half=True)
    stored = safetensors.torch.load_file(half)
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, _ = load_checkpoint(half)
    x = torch.randn(1, 1, 64, 64)
    with torch.inference_mode():
        assert all(p.dtype == torch.float32 for p in loaded.parameters())
        assert torch.equal(loaded(x), model(x))  # rounded, then stored exactly
    # a tensor float16 cannot hold (a batch norm's running mean can be) stays float32
    model.head.norm.running_mean[0] = 1e6
    assert round_to_half(model) == ["head.norm.running_mean"]
    mixed = save_checkpoint(model, make_card("prmnet_w8", {}, [RATE]), tmp_path / "mixed",
                            half=True)
    stored = safetensors.torch.load_file(mixed)
    assert stored["head.norm.running_mean"].dtype == torch.float32
    assert stored["head.norm.running_var"].dtype == torch.float16
    with torch.inference_mode():
        assert torch.equal(load_checkpoint(mixed)[0](x), model(x))


def test_checkpoint_round_trip_and_its_errors(tmp_path: Path) -> None:
    path = _untrained(tmp_path, "w8")
    model, card = load_checkpoint(path)
    fresh = create_model("prmnet_w8")
    fresh.load_state_dict(safetensors.torch.load_file(path))
    x = torch.randn(1, 1, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model(x), fresh.eval()(x))
    assert card.parameters == 60963 and card.gflops == pytest.approx(4.168, abs=0.01)
    assert card.geometry["width"] == card.geometry["height"] == 256
    assert card.serves(RATE) and not card.serves(61.44e6)
    assert card.geometry_for(RATE).samples_per_row == 300
    assert load_checkpoint(tmp_path / "w8.json")[1] == card
    card_file = tmp_path / "w8.json"
    text = card_file.read_text()
    card_file.write_text(text.replace('"prmnet_w8"', '"prmnet_w16"'))
    with pytest.raises(InputError, match="does not match"):
        load_checkpoint(path)
    card_file.write_text(text)
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="not a valid safetensors"):
        load_checkpoint(path)
    card_file.unlink()
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(path)


def test_a_network_that_cannot_take_its_own_frames_is_refused(tmp_path: Path) -> None:
    path = _untrained(tmp_path, "tp", "unet_s", base_width=4, time_pool=2)
    card = path.with_suffix(".json")
    card.write_text(card.read_text().replace('"time_pool": 2', '"time_pool": 32'))
    with pytest.raises(InputError, match="multiples of 512, and its frames have 256"):
        load_checkpoint(path)


def test_eval_report_of_two_models_side_by_side(data: dict[str, Path], tmp_path: Path) -> None:
    frames = open_frames([data["val"]])
    results = []
    for name, model_name, overrides in (("w8", "prmnet_w8", {}), ("unet", "unet_s",
                                                                   {"base_width": 4})):
        model, card = load_checkpoint(_untrained(tmp_path, name, model_name, **overrides))
        results.append(evaluate(model, card, frames, name, limit=2))
    assert results[0].frames == 2 and sum(results[0].frames_by_snr.values()) == 2
    assert results[0].confusion.matrix.sum() == 2 * 256 * 256
    assert results[0].frames_by_rate == {rate_key({"sample_rate": RATE}): 2}
    elsewhere = make_card("prmnet_w8", {}, [10e6])
    with pytest.raises(InputError, match="none of the frames is at a rate w8 serves"):
        evaluate(create_model("prmnet_w8"), elsewhere, frames, "w8", limit=2)
    labelled = sum(int((frames[i][1] != 0).sum()) for i in range(2))
    assert results[0].signal_pixels == labelled >= results[0].silent_pixels
    assert results[0].as_sent.matrix.sum() == 2 * 256 * 256
    # as shown: the same truth and the same pixels called noise, signal only moved between classes
    shown = results[0].shown.matrix
    assert (shown.sum(dim=1) == results[0].confusion.matrix.sum(dim=1)).all()
    assert (shown[:, 0] == results[0].confusion.matrix[:, 0]).all()
    # every wrong pixel lies in exactly one place
    matrix, places = results[0].confusion.matrix, results[0].error_places
    assert sum(v for k, v in places.items() if k.startswith("signal")) == int(
        matrix[1:].sum() - matrix[1, 1] - matrix[2, 2])
    assert sum(v for k, v in places.items() if k.startswith("noise")) == int(matrix[0, 1:].sum())
    sent = sum(int(((frames[i][1] != 0) & torch.from_numpy(frames.energy(i) != 0)).sum())
               for i in range(2))
    assert results[0].sent_pixels == sent
    report = write_report(results, {}, tmp_path / "report", "prmnet eval ...", "val")
    text = report.read_text()
    for heading in ("## Models", "## Pixels", "## Carriers", "## Mean IoU by SNR",
                    "## By kind of view", "## By sample rate", "## Confusion"):
        assert heading in text
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"w8", "unet"}
    assert {"miou", "iou", "f1", "confusion"} <= set(metrics["models"]["w8"]["pixels"])
    assert "Against what was sent" in text and "## Where the errors lie" in text
    assert "As the monitor shows them" in text
    shown_miou = metrics["models"]["w8"]["pixels_as_shown"]["miou"]
    as_shown = text[text.index("As the monitor shows them"):].splitlines()
    row = next(line for line in as_shown if line.startswith("| w8 |")).split("|")
    assert row[2].strip() == f"{100 * shown_miou:.1f}"
    change = shown_miou - metrics["models"]["w8"]["pixels"]["miou"]
    assert row[-2].strip() == f"{100 * change:+.1f}"
    assert set(metrics["models"]["w8"]["error_places"]) == {"signal sent", *ERROR_PLACES}
    assert 0.0 <= metrics["models"]["w8"]["silent_share"] <= 1.0
    as_sent = text[text.index("Against what was sent"):].splitlines()
    row = next(line for line in as_sent if line.startswith("| w8 |"))
    share = metrics["models"]["w8"]["silent_share"]
    assert row.split("|")[-2].strip() == f"{100 * share:.1f}"
    # what a receiver can reach: the labels with their silent (or nearly silent) carriers as
    # noise, against the labels; the more carriers are out of reach, the less is reachable
    reach = {share: ConfusionMatrix() for share in REACH_SHARES}
    painted = ConfusionMatrix()
    for i in range(2):
        mask, meta = frames[i][1], frames[i][2]
        painted.update(torch.tensor(frames.energy(i))[None], mask[None])
        for share, matrix in reach.items():
            seen = silent_as_noise(mask.numpy(), frames.energy(i), meta["carriers"],
                                   Geometry.for_rate(RATE), share)
            matrix.update(torch.from_numpy(seen)[None], mask[None])
    reachable = metrics["models"]["w8"]["reachable_miou"]
    assert list(reachable) == [f"{share:g}" for share in REACH_SHARES]
    for share, matrix in reach.items():
        assert reachable[f"{share:g}"] == pytest.approx(matrix.summary()["miou"])
        assert f"| {100 * share:g} % | {100 * matrix.summary()['miou']:.1f} |" in text
    assert list(reachable.values()) == sorted(reachable.values(), reverse=True)
    energy_miou = metrics["models"]["w8"]["energy_painted_miou"]
    assert energy_miou == pytest.approx(painted.summary()["miou"])
    assert f"would score {100 * energy_miou:.1f} %" in text
    # each labelled signal pixel is counted once, in its carrier's SNR bin
    by_carrier = metrics["models"]["w8"]["carrier_pixels_by_snr"]
    assert sum(v["pixels"] for v in by_carrier.values()) == labelled
    assert all(0 <= v["called_class"] <= v["called_signal"] <= 1 for v in by_carrier.values())
    assert "## Carrier pixels by the carrier's SNR" in text
    missed = metrics["models"]["w8"]["missed_carriers"]
    assert missed["all"]["pixel_share"] == pytest.approx(1.0)
    assert missed["idle"]["carriers"] <= missed["missed"]["carriers"] <= missed["all"]["carriers"]
    painted = metrics["models"]["w8"]["miou_missed_painted"]
    assert painted["none"] == pytest.approx(metrics["models"]["w8"]["pixels"]["miou"])
    assert painted["none"] <= painted["sent"] + 1e-9 and "## Carriers missed" in text
    by_rate = metrics["models"]["w8"]["by_rate"]
    assert [v["frames"] for v in by_rate.values()] == [2]
    assert 0.0 <= next(iter(by_rate.values()))["false_alarm"] <= 1.0
    assert (tmp_path / "report" / "miou_vs_snr.png").stat().st_size > 0
    assert (tmp_path / "report" / "confusion.png").stat().st_size > 0
    assert (tmp_path / "report" / "errors.png").stat().st_size > 0 and "(errors.png)" in text


def test_carriers_missed_whole_and_what_finding_them_is_worth() -> None:
    """A carrier under a tenth of whose pixels are called signal is missed; painting it, where
    it sent in more than an idle cell's share of them, gives what finding it would be worth."""
    geometry = Geometry.for_rate(RATE)
    carriers = [{"label": "LTE", "freq_low_hz": -0.4 * RATE, "freq_high_hz": -0.2 * RATE},
                {"label": "NR", "freq_low_hz": 0.1 * RATE, "freq_high_hz": 0.3 * RATE}]
    for c in carriers:
        c.update(start_sample=0, sample_count=10**9)
    meta = {"sample_rate": RATE, "carriers": carriers}
    truth = np.zeros((geometry.height, geometry.width), np.int64)
    for c, cls in zip(carriers, (LTE, NR), strict=True):
        truth[carrier_region(c, geometry)] = cls
    pred = np.where(truth == LTE, LTE, 0)  # the NR carrier missed
    pred[:10][truth[:10] == NR] = NR  # a few rows of it: under a tenth
    for sent_share, idle in ((0.5, False), (0.01, True)):
        energy = np.where(truth == LTE, LTE, 0).astype(np.uint8)
        nr_rows = np.flatnonzero((truth == NR).any(axis=1))
        some = nr_rows[: round(sent_share * nr_rows.size)]
        energy[some] = np.where(truth[some] == NR, NR, energy[some])
        result = EvalResult("m", make_card("prmnet_w8", {}, [RATE]))
        _count_missed(result, energy, pred, truth, meta, geometry)
        nr_pixels = int((truth == NR).sum())
        assert result.missed["all"] == [2, int((truth != 0).sum())]
        assert result.missed["missed"] == [1, nr_pixels]
        assert result.missed["idle"] == ([1, nr_pixels] if idle else [0, 0])
        miou = {k: m.summary()["miou"] for k, m in result.missed_painted.items()}
        assert miou["none"] < 0.9 and miou["all"] == pytest.approx(1.0)
        assert miou["sent"] == pytest.approx(miou["none"] if idle else 1.0)


def test_worst_frames_gallery(data: dict[str, Path], tmp_path: Path) -> None:
    from monitor.train.evaluate import _frame_snr
    from monitor.train.gallery import MIN_SNR_DB, Gallery, frame_miou, pick_frames

    truth = torch.zeros(8, 8, dtype=torch.int64)
    truth[:, :4] = NR
    assert frame_miou(truth, truth) == 1.0
    assert frame_miou(torch.zeros_like(truth), truth) == pytest.approx(0.25)  # noise 1/2, NR 0
    assert pick_frames({3: 0.5, 7: 0.2, 1: 0.5, 9: 0.9}, 3) == [7, 1, 3]
    # the evaluation scores exactly the frames whose strongest carrier is at MIN_SNR_DB or more
    frames = open_frames([data["val"]])
    model, card = load_checkpoint(_untrained(tmp_path, "w8"))
    result = evaluate(model, card, frames, "w8")
    geometry = card.geometry_for(RATE)
    snrs = {i: _frame_snr(frames[i][2], geometry) for i in range(len(frames))}
    high = {i for i, snr in snrs.items() if snr is not None and snr >= MIN_SNR_DB}
    assert set(result.frame_mious) == set(result.frame_snrs) == high
    for i in high:
        assert result.frame_mious[i] == pytest.approx(
            frame_miou(segment(model, frames[i][0][None])[0], frames[i][1]))
    # every model segments the same frames; a model that does not serve a rate is left out there
    gallery = Gallery.of(frames, [2, 0], {2: 25.0, 0: 21.0})
    assert gallery.captions[0] == "frame 2\n1.92 MS/s, SNR 25 dB"
    gallery.add("w8", model, card)
    unet, _ = load_checkpoint(_untrained(tmp_path, "unet", "unet_s", base_width=4))
    gallery.add("unet", unet, make_card("unet_s", {"base_width": 4}, [10e6]))
    assert [p.shape for p in gallery.predictions["w8"]] == [(256, 256)] * 2
    assert gallery.predictions["unet"] == [None, None]
    assert (gallery.predictions["w8"][0] == segment(model, frames[2][0][None])[0].numpy()).all()
    report = write_report([result], {}, tmp_path / "report", gallery=gallery).read_text()
    assert "## The worst frames at high SNR" in report and "(worst.png)" in report
    assert (tmp_path / "report" / "worst.png").stat().st_size > 0
    # no gallery, no figure
    assert "worst" not in write_report([result], {}, tmp_path / "plain").read_text()
    assert not (tmp_path / "plain" / "worst.png").exists()


def test_wrong_pixels_are_placed_by_what_was_sent_and_where_the_carriers_are() -> None:
    truth = torch.zeros(8, 32, dtype=torch.int64)
    truth[:4, 10:20] = NR  # on for four rows, off for the rest
    sent = torch.zeros(8, 32, dtype=torch.bool)
    sent[:4, 10:15] = True  # sent in half its channel
    pred = truth.clone()
    pred[0, 10:12] = 0  # called noise where sent: 2
    pred[1, 16:19] = 0  # called noise where nothing was sent: 3
    pred[2, 12] = LTE  # the other class, sent: 1
    pred[3, 19] = LTE  # the other class, nothing sent: 1
    pred[0, 20:23] = NR  # just past its edge: 3
    pred[6, 10:14] = LTE  # its band while it is off: 4
    pred[7, 30] = NR  # apart from it: 1
    result = EvalResult("x", make_card("prmnet_w8", {}, [RATE]))
    _count_error_places(result, sent, pred, truth)
    assert list(result.error_places.values()) == [2, 3, 1, 1, 3, 4, 1]
    assert (result.sent_pixels, result.noise_pixels) == (20, 8 * 32 - 40)


def test_carrier_pixels_are_counted_in_the_bin_of_the_carriers_own_snr() -> None:
    g = Geometry.for_rate(RATE)
    carrier = {"label": "NR", "freq_low_hz": -0.4 * RATE, "freq_high_hz": -0.1 * RATE,
               "snr_db": -7.0, "start_sample": 0, "sample_count": g.frame_samples // 2}
    truth = np.zeros((g.height, g.width), dtype=np.int64)
    cols = (g.pixel_centres() >= carrier["freq_low_hz"]) & (
        g.pixel_centres() <= carrier["freq_high_hz"])
    truth[: g.height // 2, cols] = NR
    pred = truth.copy()
    first = np.flatnonzero(cols)[0]
    pred[:10, first : first + 4] = 0  # 40 called noise
    pred[10:15, first : first + 2] = LTE  # 10 called signal, the wrong class
    pred[g.height // 2 :, :] = NR  # outside the carrier's rows: not its pixels
    result = EvalResult("x", make_card("prmnet_w8", {}, [RATE]))
    _count_carrier_pixels(result, pred, truth, {"carriers": [carrier]}, g)
    n = int((truth == NR).sum())
    assert result.carrier_pixels == {snr_bin(-7.0): [n, n - 40, n - 50]}


def test_rate_keys_name_the_rate_in_ms_per_second() -> None:
    assert rate_key({"sample_rate": 1.92e6}) == "1.92 MS/s"
    assert rate_key({"sample_rate": 61.44e6}) == "61.44 MS/s"
    assert rate_key({}) == "unknown"


def test_snr_bins() -> None:
    assert snr_bin(None) == "noise only"
    assert snr_bin(-12.0) == SNR_BINS[0] == "-10 to -5 dB"
    assert snr_bin(7.0) == "5 to 10 dB"
    assert snr_bin(31.0) == SNR_BINS[-1] == "25 to 30 dB"


def test_eval_refuses_test_data_drawn_like_the_training_data(
    data: dict[str, Path], tmp_path: Path
) -> None:
    _, card = load_checkpoint(_untrained(tmp_path, "w8"))
    card.data = {"train": open_frames([data["train"]]).describe()}
    check_not_training_data(card, open_frames([data["val"]]), "w8")
    with pytest.raises(InputError, match="another --seed"):
        check_not_training_data(card, open_frames([data["train"]]), "w8")


def test_eval_on_real_recordings(
    captures_dir: Path, captures_truth: list[dict], tmp_path: Path
) -> None:
    model, card = load_checkpoint(_untrained(tmp_path, "w8"))
    results = evaluate_captures(model, card, captures_dir, max_frames=1)
    assert [r.recording for r in results] == [e["recording"] for e in captures_truth]
    for r in results:
        assert r.frames == 1 and r.rows > 0
        assert sum(r.shares.values()) == pytest.approx(1.0)
        assert r.counts and sum(r.counts) == r.rows * 256
        passed, reason = r.verdict()
        assert isinstance(passed, bool) and reason
        # as shown, signal pixels change class, never to or from noise
        assert sum(r.shown_counts) == sum(r.counts) and r.shown_counts[0] == r.counts[0]
    short = next(r for r in results if r.recording == "nr-n1-2157-starhub")
    assert short.rows < 256  # 1 ms: fewer rows than a frame, only the real ones counted
    # the cells found in the IQ, whatever the network: an NR cell's SSB in each NR recording,
    # with what its MIB says
    cells = {r.recording: r.cells for r in results}
    assert cells["nr-n78-3502-usrp"] == ["NR 500 (SSB 30 kHz, GSCN 7855; MIB: barred, no SIB1)"]
    assert cells["nr-n1-2157-starhub"] == ["NR 55 (SSB 15 kHz, GSCN 5387; MIB: SIB1)"]
    assert cells["lte-1815-hackrf"] == ["LTE 300 (FDD, 100 RB)"]
    assert cells["noise-2646-hackrf"] == []
    text = format_report([], {"w8": results})
    assert "nr-n1-2157-starhub" in text and "46.08 (not served)" in text
    # the model serves 1.92 MS/s only: its count is of the four recordings at that rate
    assert re.search(r"## Real recordings: w8 \(\d of 4 at the rates it serves pass; \d of 5 "
                     r"others; as shown, \d of 4 and \d of 5\)", text)


def test_commands_train_and_eval(data: dict[str, Path], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="prmnet")
    add_commands(parser.add_subparsers(dest="command", required=True))
    config = tmp_path / "tiny.toml"
    config.write_text(
        f'model = "prmnet_w8"\nseed = 1\n[data]\ntrain = ["{data["train"]}"]\n'
        f'val = ["{data["val"]}"]\nval_frames = 1\n[optim]\nsteps = 2\nbatch_size = 2\n'
        "[augment]\ncrop = 64\n[run]\nval_every = 2\n"
    )
    args = parser.parse_args(["train", str(config), "--run-dir", str(tmp_path / "run"),
                              "--no-progress"])
    assert args.func(args) == 0
    assert "step 2 of 2, finished" in capsys.readouterr().out
    card = json.loads((tmp_path / "run" / "best.json").read_text())
    assert card["training"]["command"].startswith("prmnet train")
    assert card["training"]["seed"] == 1 and card["data"]["train"][0]["request"]["seed"] == 11
    best = tmp_path / "run" / "best.safetensors"
    args = parser.parse_args(["eval", str(best), "--data", str(data["val"]), "--limit", "1",
                              "--report", str(tmp_path / "report"), "--record-metrics",
                              "--worst-frames", "2"])
    assert args.func(args) == 0
    assert "## Pixels" in capsys.readouterr().out
    report = (tmp_path / "report" / "report.md").read_text()
    assert "--worst-frames 2" in report.splitlines()[2]
    assert (f"Test data: {data['val']}, made by `prmnet synth dataset {data['val']} --frames 3 "
            "--rates 1.92e6 --seed 12`.") in report
    assert "test" in json.loads((tmp_path / "run" / "best.json").read_text())["metrics"]
    # on its own training frames only when asked, and then its card is left alone
    on_train = ["eval", str(best), "--data", str(data["train"]), "--limit", "1"]
    with pytest.raises(InputError, match="--training-data"):
        args = parser.parse_args(on_train)
        args.func(args)
    card_before = (tmp_path / "run" / "best.json").read_text()
    args = parser.parse_args([*on_train, "--training-data", "--worst-frames", "0"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "--training-data" in out and "training seeds allowed" in out and "## Pixels" in out
    args = parser.parse_args([*on_train, "--training-data", "--record-metrics"])
    with pytest.raises(InputError, match="leave out --record-metrics"):
        args.func(args)
    assert (tmp_path / "run" / "best.json").read_text() == card_before
    # the classes as shown in full: the frames' IQ rendered again and searched for cells
    args = parser.parse_args(["eval", str(best), "--data", str(data["val"]), "--limit", "1",
                              "--cells", "--worst-frames", "0"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "1 frames searched for cells (`--cells`)" in out
    assert re.search(r"Of the (\d+) LTE carriers whose PSS lies in view, \d+ were found", out)
    assert re.search(r"(\d+) NR cells found by their SSB, (\d+) of them an NR carrier's", out)
    assert re.search(r"Of the \d+ NR carriers that sent an SSB whole in view \(the symbol and "
                     r"subcarriers of its PSS\), \d+ were found", out)
    args = parser.parse_args(["eval", str(best)])
    with pytest.raises(InputError, match="nothing to evaluate"):
        args.func(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", str(best), "--worst-frames", "-1"])
    assert "argument --worst-frames: must be 0 or more, got -1" in capsys.readouterr().err


def test_tune_bias_folds_the_best_validation_offsets_into_the_classifier(
    data: dict[str, Path], tmp_path: Path
) -> None:
    from monitor.train.bias import GRID, classifier, tune_run
    from monitor.train.cards import load_checkpoint, read_card

    train(_config(data, 6), tmp_path / "run", progress=False)
    trained, _ = load_checkpoint(tmp_path / "run" / "best.safetensors")
    result = tune_run(tmp_path / "run", "prmnet tune-bias run")
    assert result.offsets[0] == 0.0 and all(o in GRID for o in result.offsets[1:])
    # chosen on the validation frames: never worse there than the network as trained
    assert result.after["miou"] >= result.before["miou"] - 0.005
    tuned, card = load_checkpoint(result.path)
    shift = classifier(tuned).bias - classifier(trained).bias
    assert torch.allclose(shift, torch.tensor(result.offsets), atol=1e-6)
    assert card.training["class_bias"]["offsets"] == list(result.offsets)
    assert read_card(result.path).metrics["validation_before_bias"]["miou"] == pytest.approx(
        result.before["miou"])
    half = tune_run(tmp_path / "run", "prmnet tune-bias run --half", half=True)
    assert half.offsets == result.offsets
    assert read_card(half.path).training["stored_as"] == "float16"
    assert {v.dtype for v in safetensors.torch.load_file(half.path).values()
            if v.is_floating_point()} == {torch.float16}
    with pytest.raises(InputError, match="not a training run"):
        tune_run(tmp_path)


class _LogitsFromInput(nn.Module):
    """Logits noise 0, LTE = the input, NR -10: a network whose every pixel is known."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x), x, torch.full_like(x, -10.0)], dim=1)


def test_tune_bias_keeps_the_false_alarm_on_noise_only_frames_under_its_bound() -> None:
    from monitor.train.bias import tune_bias

    x_noise = torch.full((1, 16, 16), -5.0)
    x_noise[:, :4, :4] = 0.2                      # 1/16 of an empty frame looks like LTE
    x_signal = torch.full((1, 16, 16), -5.0)
    x_signal[:, :, :8] = 0.2                      # and so does the LTE carrier of another
    y_signal = torch.zeros(16, 16, dtype=torch.int64)
    y_signal[:, :8] = 1
    frames = [(x_noise, torch.zeros(16, 16, dtype=torch.int64), {}), (x_signal, y_signal, {})]
    # mean IoU alone: the LTE pixels are worth the false alarm
    _, cm = tune_bias(_LogitsFromInput(), frames, [0, 1], torch.device("cpu"),
                      max_false_alarm=None)
    assert cm[1, 1] == 128 and cm[0, 1] == 16     # [truth, prediction]
    # bounded at 1.5 %: the offset must silence the empty frame, and the carrier with it
    _, cm = tune_bias(_LogitsFromInput(), frames, [0, 1], torch.device("cpu"))
    assert cm[0, 1] == 0 and cm[1, 1] == 0


def test_view_kind_tells_views_inside_carriers_from_mixed_and_empty_ones() -> None:
    from monitor.train.evaluate import INSIDE, MIXED, NOISE_ONLY, view_kind

    mask = torch.ones(8, 8, dtype=torch.int64)
    assert view_kind(mask) == INSIDE
    mask[:, 6:] = 2
    assert view_kind(mask) == INSIDE  # two carriers side by side, no noise
    mask[:, :1] = 0
    assert view_kind(mask) == MIXED
    assert view_kind(torch.zeros(8, 8, dtype=torch.int64)) == NOISE_ONLY

"""Scenes: SNR as defined, masks that line up with the energy, placement, reproducibility."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from monitor.cli import prmnet_main
from monitor.dsp.geometry import Geometry
from monitor.dsp.spectrogram import Spectrogram
from monitor.errors import InputError
from monitor.sources.files import open_recording
from monitor.synth.dataset import DatasetRequest, generate_dataset, read_request
from monitor.synth.random_scene import (
    REFERENCE_MIN_RATE,
    SCENES,
    draw_reference_scene,
    draw_scene,
)
from monitor.synth.scene import CarrierSpec, SceneSpec, parse_carrier, render
from monitor.synth.truth import (
    class_mask,
    energy_mask,
    sent_fraction,
    silent_as_noise,
    ssbs_in_view,
)
from monitor.train.data import open_frames


def _power(scene, geometry: Geometry) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(scene.iq[: geometry.frame_samples]))
    return Spectrogram(geometry).power(x).numpy()


@pytest.mark.parametrize(
    ("label", "bw", "scs", "snr"),
    [("LTE", 10e6, 15e3, 0.0), ("LTE", 5e6, 15e3, 12.0), ("NR", 10e6, 30e3, 6.0),
     ("NR", 15e6, 15e3, 20.0)],
)
def test_snr_is_the_psd_ratio_of_sent_resource_elements(
    label: str, bw: float, scs: float, snr: float
) -> None:
    """Measured in-band PSD over the noise PSD matches the request, once the share of resource
    elements actually sent (known from the grid) is accounted for."""
    rate = 19.2e6
    g = Geometry.for_rate(rate)
    carrier = CarrierSpec(label, bw, 0.0, snr, scs, options={"load": 1.0})
    scene = render(SceneSpec(rate, g.frame_seconds, (carrier,)), np.random.default_rng(1))
    power = _power(scene, g) * g.width  # noise reads 1 per pixel
    freqs = g.pixel_centres()
    inside = np.abs(freqs) < 0.4 * bw
    outside = np.abs(freqs) > 0.5 * bw + 1e6
    noise = power[:, outside].mean()
    assert noise == pytest.approx(1.0, rel=0.05)
    fraction = sent_fraction(scene.sent[0], g)[:, inside].mean()
    measured = 10 * np.log10((power[:, inside].mean() / noise - 1) / fraction)
    assert measured == pytest.approx(snr, abs=0.5)


def test_masks_line_up_with_the_measured_energy() -> None:
    rate = 61.44e6
    g = Geometry.for_rate(rate)
    carriers = (
        CarrierSpec("LTE", 20e6, -15e6, 25.0, options={"load": 0.8}),
        CarrierSpec("NR", 20e6, 12e6, 25.0, 30e3, options={"load": 0.7}),
    )
    scene = render(SceneSpec(rate, g.frame_seconds, carriers), np.random.default_rng(2))
    labels = class_mask(scene, g)
    sent = energy_mask(scene, g)
    db = 10 * np.log10(_power(scene, g) * g.width)
    # class mask: 20 MHz / 240 kHz = 83 or 84 columns per carrier, at the right place
    for cls, centre in ((1, -15e6), (2, 12e6)):
        cols = np.flatnonzero((labels == cls).all(axis=0))
        assert len(cols) in (83, 84)
        assert abs(g.pixel_centres()[cols].mean() - centre) < g.pixel_hz
    # energy sent: 25 dB over the floor (fading-free), minus a margin for the pixel's share
    assert np.median(db[sent > 0]) > 20
    # no energy where nothing was sent: the floor, but for a pixel of leakage at the edges
    quiet = (labels == 0) & (np.convolve((labels.max(axis=0) > 0), [1, 1, 1], "same") == 0)
    assert np.median(db[quiet]) < 1.0
    # energy only inside the class mask, classes agree
    assert np.all(labels[sent > 0] == sent[sent > 0])


def test_a_carrier_wider_than_the_view_fills_it() -> None:
    rate = 1.92e6
    g = Geometry.for_rate(rate)
    carrier = CarrierSpec("LTE", 20e6, 3e6, 15.0, options={"load": 0.5})
    scene = render(SceneSpec(rate, g.frame_seconds, (carrier,), receiver="rtlsdr"),
                   np.random.default_rng(3))
    assert np.all(class_mask(scene, g) == 1)
    assert scene.iq.dtype == np.complex64 and len(scene.iq) == g.frame_samples
    # an idle LTE carrier still sends reference signals in every row
    assert (energy_mask(scene, g) == 1).any(axis=1).mean() > 0.9


def test_switching_carrier_is_labelled_only_while_on() -> None:
    rate = 19.2e6
    g = Geometry.for_rate(rate)
    carrier = CarrierSpec("NR", 10e6, 0.0, 20.0, 30e3, on=(0.010, 0.025), options={"load": 1.0})
    scene = render(SceneSpec(rate, g.frame_seconds, (carrier,)), np.random.default_rng(4))
    rows = np.flatnonzero((class_mask(scene, g) == 2).any(axis=1))
    assert rows[0] == pytest.approx(0.010 / g.row_seconds, abs=1)
    assert rows[-1] == pytest.approx(0.025 / g.row_seconds, abs=1)
    db = 10 * np.log10(_power(scene, g) * g.width)[:, np.abs(g.pixel_centres()) < 3e6].mean(1)
    assert db[: rows[0] - 2].max() < 2 and db[rows[-1] + 2 :].max() < 2
    assert db[rows[0] + 2 : rows[-1] - 2].min() > 10


@pytest.mark.parametrize(("seed", "nr_sent"), [(0, False), (1, True)])
def test_an_idle_nr_cell_between_its_ssbs_is_noise_as_sent(seed: int, nr_sent: bool) -> None:
    """An idle NR cell sends only its SSBs (every 160 ms here), so a 40 ms frame may hold
    nothing of it; an idle LTE cell always sends its reference signals."""
    g = Geometry.for_rate(19.2e6)
    carriers = (CarrierSpec("LTE", 5e6, -5e6, 20.0, options={"load": 0.0}),
                CarrierSpec("NR", 10e6, 4e6, 20.0, 30e3,
                            options={"load": 0.0, "ssb_period_s": 0.16}))
    scene = render(SceneSpec(19.2e6, g.frame_seconds, carriers), np.random.default_rng(seed))
    labels, sent = class_mask(scene, g), energy_mask(scene, g)
    assert (sent == 2).any() == nr_sent and (sent == 1).any()
    seen = silent_as_noise(labels, sent, [asdict(c) for c in scene.carriers], g)
    assert np.array_equal(seen == 1, labels == 1)
    assert np.array_equal(seen == 2, labels == 2 if nr_sent else np.zeros_like(labels, bool))
    # its SSB is 2 % of its channel here, the idle LTE cell's signals 10 % of its own: a
    # carrier sending in at most a share of its channel is noise
    nearly = silent_as_noise(labels, sent, [asdict(c) for c in scene.carriers], g, 0.05)
    assert np.array_equal(nearly == 1, labels == 1) and not (nearly == 2).any()
    assert not silent_as_noise(labels, sent, [asdict(c) for c in scene.carriers], g, 0.2).any()


@pytest.mark.parametrize("seed", [0, 1])
def test_ssbs_in_view_are_the_blocks_sent_whole_in_the_frame(seed: int) -> None:
    """Four bursts of the same blocks in a 40 ms frame at a 10 ms period; half of them from a
    carrier on for half the frame; none where the PSS runs past the view's edge; none for LTE."""
    geometry = Geometry.for_rate(19.2e6)

    def counts(offset: float, on: str = "") -> list[int]:
        nr = (f"nr:bw=10e6,scs=30e3,offset={offset},snr=10,cell=5,ssb_period=10e-3,l_max=4,"
              f"ssb_offset_rb=2{on}")
        spec = SceneSpec(19.2e6, geometry.frame_seconds,
                         [parse_carrier(nr), parse_carrier("lte:bw=5e6,offset=-6e6,snr=10")])
        scene = render(spec, np.random.default_rng(seed))
        return [ssbs_in_view(placed, geometry) for placed in scene.sent]

    whole, lte = counts(0.0)
    assert whole > 0 and whole % 4 == 0 and lte == 0
    assert counts(0.0, ",on=0:0.02")[0] == whole // 2
    # SSB 2 RBs over the carrier's lowest: at 9 MHz its PSS reaches 10.2 MHz, past 9.6
    assert counts(4.5e6)[0] == whole and counts(9e6)[0] == 0


def test_same_seed_same_bytes() -> None:
    spec = draw_scene(np.random.default_rng(9), 19.2e6, 0.01)
    a = render(spec, np.random.default_rng(10)).iq
    b = render(spec, np.random.default_rng(10)).iq
    c = render(spec, np.random.default_rng(11)).iq
    assert a.tobytes() == b.tobytes()
    assert spec.carriers == () or a.tobytes() != c.tobytes()


def test_dataset_bytes_do_not_depend_on_workers(tmp_path: Path) -> None:
    request = DatasetRequest(frames=5, rates=(1.92e6, 2.4e6), seed=3, shard_size=2)
    one = generate_dataset(tmp_path / "one", request, workers=1, progress=False)
    two = generate_dataset(tmp_path / "two", request, workers=2, progress=False)
    for shard in sorted(p.name for p in one.glob("shard-*")):
        for name in ("images.npy", "labels.npy", "energy.npy", "frames.jsonl"):
            assert (one / shard / name).read_bytes() == (two / shard / name).read_bytes()
    images = np.load(one / "shard-00002" / "images.npy", mmap_mode="r")
    assert images.shape == (1, 256, 256) and images.dtype == np.float16
    manifest = json.loads((one / "dataset.json").read_text())
    assert manifest["request"]["frames"] == 5
    # a frame's IQ, rendered again from the request, is the IQ its image was made of
    frames = open_frames([one])
    again = Spectrogram(Geometry.for_rate(frames.rate(3))).frame(frames.samples(3)).numpy()
    assert np.array_equal(again.astype(np.float16), frames.raw(3)[0].astype(np.float16))
    carriers = frames.raw(3)[2]["carriers"]
    ssbs = frames.ssbs_in_view(3)
    assert ssbs is not None and len(ssbs) == len(carriers)
    assert all(n == 0 for n, c in zip(ssbs, carriers, strict=True) if c["label"] == "LTE")
    # resuming finds every shard done; a different request is refused; the same one grown
    # keeps the shards it had
    generate_dataset(one, request, workers=1, progress=False)
    with pytest.raises(ValueError, match="different data set"):
        generate_dataset(one, DatasetRequest(frames=6, rates=(1.92e6,)), progress=False)
    before = (one / "shard-00001" / "images.npy").stat().st_mtime_ns
    generate_dataset(one, DatasetRequest(frames=7, rates=(1.92e6, 2.4e6), seed=3, shard_size=2),
                     workers=1, progress=False)
    assert (one / "shard-00001" / "images.npy").stat().st_mtime_ns == before
    assert np.load(one / "shard-00002" / "images.npy").shape[0] == 2
    assert json.loads((one / "dataset.json").read_text())["request"]["frames"] == 7


def test_a_data_set_names_the_command_that_makes_it_again(tmp_path: Path) -> None:
    request = DatasetRequest(frames=2, rates=(1.92e6, 30.72e6), snr_db=(-5.0, 20.0), seed=9)
    generate_dataset(tmp_path / "a", request, workers=1, progress=False)
    read = read_request(tmp_path / "a")
    assert read is not None
    assert read == request
    command = read.command(tmp_path / "b c")
    assert command == (f"prmnet synth dataset '{tmp_path / 'b c'}' --frames 2 "
                       "--rates 1.92e6,30.72e6 --snr=-5:20 --seed 9")
    assert "--snr" not in DatasetRequest(2, (1.92e6,)).command("x")
    assert prmnet_main([*shlex.split(command)[1:], "--workers", "1"]) == 0
    for name in ("images.npy", "labels.npy"):
        assert ((tmp_path / "a" / "shard-00000" / name).read_bytes()
                == (tmp_path / "b c" / "shard-00000" / name).read_bytes())
    assert read_request(tmp_path) is None  # no dataset.json


def test_parse_carrier_forms() -> None:
    c = parse_carrier("lte:bw=20e6,offset=-10e6,snr=15,duplex=tdd,config=2,load=0.5")
    assert (c.label, c.bandwidth_hz, c.offset_hz, c.snr_db) == ("LTE", 20e6, -10e6, 15.0)
    assert c.options == {"duplex": "tdd", "tdd_config": 2, "load": 0.5}
    n = parse_carrier("nr:bw=40e6,scs=30e3,offset=15e6,snr=10,ssb_period=20e-3,load=0.3,on=0:0.01")
    assert (n.label, n.scs, n.on, n.options["ssb_period_s"]) == ("NR", 30e3, (0.0, 0.01), 0.02)
    for bad in ("wifi:bw=20e6", "lte", "lte:bw", "lte:bw=7e6", "nr:bw=40e6,scs=45e3",
                "lte:bw=20e6,scs=30e3", "lte:bw=20e6,duplex=tdd,config=9"):
        with pytest.raises(InputError):
            parse_carrier(bad)


def test_synth_recording_command_writes_annotated_sigmf(tmp_path: Path) -> None:
    out = tmp_path / "pair.sigmf-meta"
    status = prmnet_main([
        "synth", "recording", str(out), "--rate", "19.2e6", "--duration", "0.02",
        "--fc", "2.6e9", "--seed", "4", "--datatype", "ci16",
        "--carrier", "lte:bw=5e6,offset=-5e6,snr=15",
        "--carrier", "nr:bw=10e6,scs=30e3,offset=4e6,snr=10,on=0.005:0.015",
        "--channel", "epa5", "--receiver", "hackrf",
    ])
    assert status == 0
    rec = open_recording(out)
    assert (rec.sample_rate, rec.center_freq, len(rec)) == (19.2e6, 2.6e9, 384000)
    ann = {a["core:label"]: a for a in rec.meta["annotations"]}
    assert ann["LTE"]["core:freq_lower_edge"] == pytest.approx(2.6e9 - 7.5e6)
    assert ann["LTE"]["core:freq_upper_edge"] == pytest.approx(2.6e9 - 2.5e6)
    assert ann["NR"]["core:sample_start"] == 96000
    assert ann["NR"]["core:sample_count"] == 192000


def test_synth_recording_bad_input_is_one_line(tmp_path: Path, capsys) -> None:
    status = prmnet_main(["synth", "recording", str(tmp_path / "x.sigmf-meta"), "--rate", "1e6",
                          "--duration", "0.01", "--carrier", "lte:bw=3e6,snr=oops"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "bad --carrier" in err[0]
    assert not (tmp_path / "x.sigmf-data").exists()


@pytest.mark.parametrize("rate", [1.92e6, 61.44e6])
def test_random_views_show_noise_carrier_ends_and_whole_carriers_at_every_rate(rate: float) -> None:
    """A narrow view must often see where a wide carrier ends, or noise alone: a data set where
    it nearly always lies inside a carrier teaches a network that noise does not exist there."""
    rng = np.random.default_rng(0)
    kinds = {"empty": 0, "inside": 0, "edge": 0}
    for _ in range(600):
        spec = draw_scene(rng, rate, 0.04)
        if not spec.carriers:
            kinds["empty"] += 1
            continue
        ends = [(c.offset_hz - c.bandwidth_hz / 2, c.offset_hz + c.bandwidth_hz / 2)
                for c in spec.carriers]
        inside = any(lo <= -rate / 2 and hi >= rate / 2 for lo, hi in ends)
        kinds["inside" if inside else "edge"] += 1
    shares = {k: v / 600 for k, v in kinds.items()}
    assert 0.1 <= shares["empty"] <= 0.25
    assert shares["edge"] >= 0.25
    if rate < 3e6:
        assert shares["inside"] >= 0.3


@pytest.mark.parametrize("rate", [61.44e6, 19.2e6])
def test_reference_scenes_hold_an_nr_and_an_lte_carrier_wholly_in_view(rate: float) -> None:
    rng = np.random.default_rng(5)
    orders = set()
    for _ in range(200):
        spec = draw_reference_scene(rng, rate, 0.04, (-10.0, 30.0))
        assert sorted(c.label for c in spec.carriers) == ["LTE", "NR"]
        orders.add(spec.carriers[0].label)
        low, high = (sorted((c.offset_hz - c.bandwidth_hz / 2, c.offset_hz + c.bandwidth_hz / 2)
                            for c in spec.carriers))
        assert -rate / 2 < low[0] and high[1] < rate / 2 and low[1] <= high[0]
        assert spec.receiver == "ideal"
        for c in spec.carriers:
            assert c.on is None and c.channel in ("rayleigh0", "rayleigh10", "rayleigh500")
            assert -10 <= c.snr_db <= 30
            if c.label == "NR":  # loaded (the load is drawn 10-80 % with the carrier)
                assert 10e6 <= c.bandwidth_hz <= 50e6 and "load" not in c.options
                assert c.options["ssb_period_s"] == 0.02
                assert c.options["ssb_case"] == ("A" if c.scs == 15e3 else "B")
            else:
                assert 5e6 <= c.bandwidth_hz <= 20e6 and c.options["load"] >= 0.2
    assert orders == {"LTE", "NR"}
    with pytest.raises(ValueError, match="MS/s or more"):
        draw_reference_scene(rng, REFERENCE_MIN_RATE * 0.99, 0.04)


def test_a_reference_data_set_is_its_own_and_named_by_its_command(tmp_path: Path) -> None:
    assert SCENES == ("monitor", "reference")  # the choices of prmnet synth dataset --scenes
    request = DatasetRequest(frames=1, rates=(61.44e6,), seed=2, scenes="reference")
    assert request.command("x").endswith("--seed 2 --scenes reference")
    generate_dataset(tmp_path / "ref", request, workers=1, progress=False)
    assert read_request(tmp_path / "ref") == request
    meta = json.loads((tmp_path / "ref" / "shard-00000" / "frames.jsonl").read_text())
    assert sorted(c["label"] for c in meta["carriers"]) == ["LTE", "NR"]
    with pytest.raises(ValueError, match="different data set"):
        generate_dataset(tmp_path / "ref", DatasetRequest(1, (61.44e6,), seed=2), progress=False)
    with pytest.raises(ValueError, match="unknown scenes"):
        DatasetRequest(1, (61.44e6,), scenes="matlab")
    with pytest.raises(ValueError, match="MS/s or more"):
        DatasetRequest(1, (61.44e6, 2.4e6), scenes="reference")
    # a data set written before scenes could be chosen holds the monitor's
    mon = DatasetRequest(frames=1, rates=(1.92e6,), seed=2)
    generate_dataset(tmp_path / "old", mon, workers=1, progress=False)
    manifest = json.loads((tmp_path / "old" / "dataset.json").read_text())
    del manifest["request"]["scenes"]
    (tmp_path / "old" / "dataset.json").write_text(json.dumps(manifest))
    assert read_request(tmp_path / "old") == mon
    generate_dataset(tmp_path / "old", mon, workers=1, progress=False)

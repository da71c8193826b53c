"""Recorded IQ: sample formats, SigMF pairs and archives, WAV and raw files, bad input."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io.wavfile

from monitor.errors import InputError
from monitor.iq_formats import from_raw, parse_datatype, to_raw
from monitor.recordings import Annotation, write_recording
from monitor.sources.files import open_recording

DATATYPES = ["cf32_le", "cf32_be", "cf64_le", "ci32_le", "ci16_le", "ci16_be", "ci8", "cu8",
             "cu16_le"]


def _iq(n: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 0.2 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    return (np.clip(x.real, -0.99, 0.99) + 1j * np.clip(x.imag, -0.99, 0.99)).astype(np.complex64)


@pytest.mark.parametrize("name", DATATYPES)
def test_round_trip_within_one_step(name: str) -> None:
    fmt = parse_datatype(name)
    x = _iq()
    y = from_raw(to_raw(x, fmt), fmt)
    assert np.max(np.abs(y.real - x.real)) <= 0.5 * fmt.scale + 1e-7
    assert np.max(np.abs(y.imag - x.imag)) <= 0.5 * fmt.scale + 1e-7


@pytest.mark.parametrize(("name", "dtype"), [("cu8", np.uint8), ("ci8", np.int8),
                                             ("ci16_le", np.int16)])
def test_round_trip_is_exact_on_every_code(name: str, dtype: type) -> None:
    fmt = parse_datatype(name)
    codes = np.arange(np.iinfo(dtype).min, np.iinfo(dtype).max + 1).astype(dtype)
    codes = np.concatenate([codes, codes[::-1]])  # I and Q take every code
    samples = from_raw(codes, fmt)
    assert np.abs(samples.view(np.float32)).max() <= 1.0
    np.testing.assert_array_equal(to_raw(samples, fmt), codes)


def test_integer_conventions() -> None:
    cu8 = parse_datatype("cu8")
    edge = 0.99609375
    assert from_raw(np.array([0, 255], np.uint8), cu8)[0] == pytest.approx(-edge + edge * 1j)
    ci16 = parse_datatype("ci16_le")
    assert to_raw(np.array([1.5 - 1.5j]), ci16).tolist() == [32767, -32768]
    assert parse_datatype("ci16_be").dtype.byteorder == ">"


@pytest.mark.parametrize("name", ["rf32_le", "cf16", "ci64", "xx", "cu8_le_be"])
def test_unknown_datatypes_are_refused(name: str) -> None:
    with pytest.raises(InputError, match="supported"):
        parse_datatype(name)


@pytest.mark.parametrize("name", ["cf32_le", "ci16_le", "ci8", "cu8"])
def test_sigmf_pair_round_trip(tmp_path: Path, name: str) -> None:
    x = _iq(5000)
    ann = Annotation(100, 2000, 1.79e9, 1.81e9, "LTE")
    meta = write_recording(tmp_path / "rec.sigmf-meta", x, 1.92e6, 1.8e9, name, [ann])
    for way in (meta, meta.with_suffix(".sigmf-data"), meta.with_suffix("")):
        rec = open_recording(way)
        assert (len(rec), rec.sample_rate, rec.center_freq) == (5000, 1.92e6, 1.8e9)
    y = rec.read(10, 100)
    assert np.max(np.abs(y - x[10:110])) <= rec.fmt.scale
    stored = json.loads(meta.read_text())
    assert stored["annotations"][0]["core:label"] == "LTE"
    assert stored["annotations"][0]["core:freq_lower_edge"] == 1.79e9


def test_sigmf_archive(tmp_path: Path) -> None:
    x = _iq(3000)
    meta = write_recording(tmp_path / "a.sigmf-meta", x, 19.2e6, 2.6e9, "ci16_le")
    archive = tmp_path / "a.sigmf"
    with tarfile.open(archive, "w") as tar:
        tar.add(meta, arcname="a/a.sigmf-meta")
        tar.add(meta.with_suffix(".sigmf-data"), arcname="a/a.sigmf-data")
    rec = open_recording(archive)
    assert len(rec) == 3000 and rec.sample_rate == 19.2e6
    assert np.max(np.abs(rec.read(0, 3000) - x)) < 1e-4


def test_wav_iq(tmp_path: Path) -> None:
    x = _iq(2000)
    stereo = np.stack([x.real, x.imag], axis=1).astype(np.float32)
    scipy.io.wavfile.write(tmp_path / "iq.wav", 2_400_000, stereo)
    rec = open_recording(tmp_path / "iq.wav", center_freq=1.8e9)
    assert (len(rec), rec.sample_rate, rec.center_freq) == (2000, 2.4e6, 1.8e9)
    assert np.allclose(rec.read(0, 2000), x)
    scipy.io.wavfile.write(tmp_path / "mono.wav", 48000, stereo[:, 0])
    with pytest.raises(InputError, match="2 channels"):
        open_recording(tmp_path / "mono.wav")


def test_raw_needs_format_rate_and_fc(tmp_path: Path) -> None:
    raw = tmp_path / "capture.bin"
    to_raw(_iq(100), parse_datatype("cu8")).tofile(raw)
    with pytest.raises(InputError, match="--format, --rate and --fc"):
        open_recording(raw)
    rec = open_recording(raw, datatype="cu8", sample_rate=2.4e6, center_freq=1e9)
    assert len(rec) == 100
    with pytest.raises(InputError, match="positive"):
        open_recording(raw, datatype="cu8", sample_rate=0.0, center_freq=1e9)


def test_bad_recordings_say_what_is_wrong(tmp_path: Path) -> None:
    meta = write_recording(tmp_path / "r.sigmf-meta", _iq(1000), 1.92e6, 1e9, "ci16_le",
                           [Annotation(0, 1000, 1e9 - 1e6, 1e9 + 1e6, "NR")])
    data = meta.with_suffix(".sigmf-data")
    full = data.read_bytes()
    data.write_bytes(full[:-1])
    with pytest.raises(InputError, match="truncated"):
        open_recording(meta)
    data.write_bytes(full[:2000])  # whole samples, but fewer than the annotation spans
    with pytest.raises(InputError, match="truncated"):
        open_recording(meta)
    data.write_bytes(full)
    doc = json.loads(meta.read_text())
    doc["global"]["core:datatype"] = "cq99"
    meta.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="unsupported IQ datatype"):
        open_recording(meta)
    doc["global"]["core:datatype"] = "ci16_le"
    doc["global"]["core:sample_rate"] = 0
    meta.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="sample_rate"):
        open_recording(meta)
    data.unlink()
    with pytest.raises(InputError, match=r"data file .* not found"):
        open_recording(meta)
    with pytest.raises(InputError, match="directory"):
        open_recording(tmp_path)
    with pytest.raises(InputError, match="no such recording"):
        open_recording(tmp_path / "nothing.wav")


def test_reads_every_real_capture(captures_dir: Path, captures_truth: list[dict]) -> None:
    for item in captures_truth:
        rec = open_recording(captures_dir / f"{item['recording']}.sigmf-meta")
        assert rec.sample_rate == item["sample_rate"]
        assert rec.center_freq == item["frequency"]
        x = rec.read(0, 4096)
        assert x.dtype == np.complex64 and np.isfinite(x).all() and np.abs(x).max() > 0

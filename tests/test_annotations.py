"""SigMF annotations: a copy of the recording's metadata with the emissions added, valid SigMF."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sigmf
import sigmf.validate

from monitor.errors import InputError
from monitor.occupancy.annotations import validate_annotation_path, write_annotations
from monitor.occupancy.emission import Emission
from monitor.recordings import Annotation, write_recording
from monitor.sources.files import open_recording

RATE = 1.92e6
FC = 1_842.5e6
N_SAMPLES = 20_000


def emission(start: int, count: int, label: str, confidence: float) -> Emission:
    return Emission(
        start_time=1_795_900_000.0 + start / RATE,
        end_time=1_795_900_000.0 + (start + count - 1) / RATE,
        start_sample=start,
        sample_count=count,
        freq_low_hz=FC - 0.6e6,
        freq_high_hz=FC + 0.3e6,
        label=label,
        confidence=confidence,
        power_db=-37.25,
    )


EMISSIONS = [emission(12_000, 5_000, "NR", 0.71), emission(1_000, 8_000, "LTE", 0.934)]


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    iq = np.zeros(N_SAMPLES, np.complex64)
    truth = Annotation(500, 9_000, FC - 0.7e6, FC + 0.4e6, "LTE", {"prmnet:snr_db": 12.0})
    return write_recording(tmp_path / "scene", iq, RATE, FC, "ci16_le", [truth],
                           description="a test scene")


def test_copy_of_the_recording_with_emissions_added(recording: Path) -> None:
    source = open_recording(recording)
    out = write_annotations(recording, EMISSIONS, sample_rate=RATE, center_freq=FC,
                            source_meta=source.meta)
    assert out == recording
    meta = json.loads(out.read_text())
    assert meta["global"]["core:description"] == "a test scene"
    assert meta["global"]["core:datatype"] == "ci16_le"
    assert meta["global"]["core:sha512"] == source.meta["global"]["core:sha512"]
    assert meta["captures"] == source.meta["captures"]
    assert [ext["name"] for ext in meta["global"]["core:extensions"]] == ["prmnet"]
    starts = [a["core:sample_start"] for a in meta["annotations"]]
    assert starts == [500, 1_000, 12_000]
    assert meta["annotations"][0]["prmnet:snr_db"] == 12.0
    lte = meta["annotations"][1]
    assert lte["core:label"] == "LTE"
    assert lte["core:sample_count"] == 8_000
    assert lte["core:freq_lower_edge"] == FC - 0.6e6
    assert lte["core:freq_upper_edge"] == FC + 0.3e6
    assert lte["prmnet:confidence"] == 0.934
    assert lte["prmnet:power_db"] == -37.25
    assert "confidence 0.93" in lte["core:comment"]
    assert lte["core:generator"].startswith("prmnet-monitor")
    sigmf.validate.validate(meta)

    reopened = open_recording(recording)
    assert len(reopened) == N_SAMPLES
    assert len(reopened.meta["annotations"]) == 3
    handle = sigmf.sigmffile.fromfile(str(recording))
    handle.validate()
    labels = [a["core:label"] for a in handle.get_annotations()]
    assert labels == ["LTE", "LTE", "NR"]
    assert [a["core:sample_start"] for a in handle.get_annotations(13_000)] == [12_000]


def test_source_meta_is_not_modified(recording: Path, tmp_path: Path) -> None:
    source = open_recording(recording)
    before = json.dumps(source.meta, sort_keys=True)
    out = write_annotations(tmp_path / "elsewhere.sigmf-meta", EMISSIONS, sample_rate=RATE,
                            center_freq=FC, source_meta=source.meta)
    assert json.dumps(source.meta, sort_keys=True) == before
    assert len(json.loads(out.read_text())["annotations"]) == 3


def test_new_minimal_metadata(tmp_path: Path) -> None:
    out = write_annotations(tmp_path / "live.sigmf-meta", EMISSIONS, sample_rate=RATE,
                            center_freq=FC, datatype="cu8")
    meta = json.loads(out.read_text())
    sigmf.validate.validate(meta)
    assert meta["global"]["core:sample_rate"] == RATE
    assert meta["global"]["core:datatype"] == "cu8"
    assert meta["captures"] == [{"core:sample_start": 0, "core:frequency": FC}]
    assert [a["core:label"] for a in meta["annotations"]] == ["LTE", "NR"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.sigmf-meta"]


def test_minimal_source_meta_is_completed(tmp_path: Path) -> None:
    """A WAV or raw recording's metadata has no version and no capture."""
    source_meta = {"global": {"core:datatype": "ci16_le", "core:sample_rate": RATE}}
    out = write_annotations(tmp_path / "wav.sigmf-meta", EMISSIONS, sample_rate=RATE,
                            center_freq=FC, source_meta=source_meta)
    meta = json.loads(out.read_text())
    sigmf.validate.validate(meta)
    assert meta["captures"][0]["core:frequency"] == FC


def test_rate_mismatch_is_refused(recording: Path, tmp_path: Path) -> None:
    source = open_recording(recording)
    with pytest.raises(ValueError, match="S/s"):
        write_annotations(tmp_path / "x.sigmf-meta", EMISSIONS, sample_rate=2 * RATE,
                          center_freq=FC, source_meta=source.meta)


def test_invalid_source_meta_is_one_line(tmp_path: Path) -> None:
    source_meta = {"global": {"core:datatype": "nonsense", "core:sample_rate": RATE}}
    with pytest.raises(InputError, match="not valid SigMF") as info:
        write_annotations(tmp_path / "x.sigmf-meta", EMISSIONS, sample_rate=RATE,
                          center_freq=FC, source_meta=source_meta)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_annotation_path_checks(tmp_path: Path) -> None:
    assert validate_annotation_path(tmp_path / "a.sigmf-meta") == tmp_path / "a.sigmf-meta"
    with pytest.raises(InputError, match=r"\.sigmf-meta"):
        validate_annotation_path(tmp_path / "a.json")
    with pytest.raises(InputError, match="does not exist"):
        validate_annotation_path(tmp_path / "no" / "a.sigmf-meta")
    assert list(tmp_path.iterdir()) == []

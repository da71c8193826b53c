"""The monitor end to end with the shipped model: the carriers it is shown are the ones it logs.

Generator recordings with known carriers (their SigMF annotations are the truth) are replayed
from disk and served through a loopback rtl_tcp server; the real recordings of
``../shared/captures`` are replayed and checked against ``truth.json``. A carrier is found when
an emission of its class covers its band with an intersection over union of at least 0.5; then
its edges must lie within 5 % of its bandwidth and its start and end within a frame (40 ms) of
the truth, and no emission of the other class may cover it for longer than a frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from monitor.cli import monitor_main, prmnet_main
from monitor.iq_formats import parse_datatype
from monitor.occupancy.logs import read_log
from monitor.sources.files import open_recording
from tests.conftest import CAPTURES
from tests.rtltcp_server import RtlTcpServer

pytestmark = pytest.mark.timeout(300)

FRAME_S = 0.04
EDGE_SHARE = 0.05
MIN_IOU = 0.5
FC = 1.8e9


@dataclass(frozen=True)
class Case:
    """A generator recording: rate, length, the carriers (``prmnet synth recording`` specs) and
    the receiver that records them (one of those radios at such rates are)."""

    name: str
    rate: float
    seconds: float
    carriers: tuple[str, ...]
    receiver: str
    datatype: str = "ci16_le"


CASES = [
    pytest.param(
        Case("lte-1m92", 1.92e6, 0.6, ("lte:bw=1.4e6,offset=0,snr=15,load=0.6",), "rtlsdr"),
        id="lte-1m92"),
    pytest.param(Case("lte-nr-19m2", 19.2e6, 0.6, (
        "lte:bw=5e6,offset=-5.5e6,snr=20,load=0.6",
        "nr:bw=10e6,scs=30e3,offset=4e6,snr=15,load=0.5,on=0.2:0.45",
    ), "hackrf"), id="lte-nr-19m2"),
    pytest.param(Case("nr-lte-61m44", 61.44e6, 0.32, (
        "nr:bw=40e6,scs=30e3,offset=8e6,snr=15,load=0.5",
        "lte:bw=10e6,offset=-20e6,snr=15,load=0.6",
    ), "usrp"), id="nr-lte-61m44"),
]


@dataclass(frozen=True)
class Truth:
    label: str
    low_hz: float
    high_hz: float
    start_s: float
    end_s: float


def _record(case: Case, folder: Path, seed: int = 5) -> Path:
    meta = folder / f"{case.name}.sigmf-meta"
    argv = ["synth", "recording", str(meta), "--rate", str(case.rate), "--duration",
            str(case.seconds), "--fc", str(FC), "--seed", str(seed), "--receiver", case.receiver,
            "--datatype", case.datatype]
    for spec in case.carriers:
        argv += ["--carrier", spec]
    assert prmnet_main(argv) == 0
    return meta


def _truth(meta: Path) -> list[Truth]:
    doc = json.loads(meta.read_text())
    rate = doc["global"]["core:sample_rate"]
    return [Truth(a["core:label"], a["core:freq_lower_edge"], a["core:freq_upper_edge"],
                  a["core:sample_start"] / rate,
                  (a["core:sample_start"] + a["core:sample_count"]) / rate)
            for a in doc["annotations"]]


def _iou(row: dict, truth: Truth) -> float:
    inter = min(row["freq_high_hz"], truth.high_hz) - max(row["freq_low_hz"], truth.low_hz)
    union = max(row["freq_high_hz"], truth.high_hz) - min(row["freq_low_hz"], truth.low_hz)
    return max(inter, 0.0) / union


def _check(rows: list[dict], truths: list[Truth], rate: float, edges: bool = True,
           times: bool = True) -> None:
    """Every truth carrier found with its class, no other class on it for longer than a frame,
    and (``edges``, ``times``) its edges, start and end."""
    for truth in truths:
        covering = [r for r in rows if _iou(r, truth) >= MIN_IOU]
        found = [r for r in covering if r["label"] == truth.label]
        wrong = [r for r in covering if r["label"] != truth.label]
        what = f"{truth.label} {truth.low_hz / 1e6:.2f}-{truth.high_hz / 1e6:.2f} MHz"
        assert found, f"{what} not found; emissions: {rows}"
        longest = max(found, key=lambda r: r["sample_count"])
        tolerance = EDGE_SHARE * (truth.high_hz - truth.low_hz)
        assert not edges or abs(longest["freq_low_hz"] - truth.low_hz) <= tolerance, (what,
                                                                                     longest)
        assert not edges or abs(longest["freq_high_hz"] - truth.high_hz) <= tolerance, (what,
                                                                                       longest)
        if times:
            start = min(r["start_sample"] for r in found) / rate
            end = max(r["start_sample"] + r["sample_count"] for r in found) / rate
            assert abs(start - truth.start_s) <= FRAME_S, (what, start, truth.start_s)
            assert abs(end - truth.end_s) <= FRAME_S, (what, end, truth.end_s)
        assert all(r["sample_count"] / rate <= FRAME_S for r in wrong), (what, wrong)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("scenes")
    return {p.values[0].name: _record(p.values[0], folder) for p in CASES}


@pytest.mark.parametrize("case", CASES)
def test_replay_logs_the_carriers_of_a_generator_recording(
    case: Case, recordings: dict[str, Path], tmp_path: Path
) -> None:
    log, stats = tmp_path / "occ.jsonl", tmp_path / "stats.json"
    assert monitor_main(["--replay", str(recordings[case.name]), "--headless", "--log", str(log),
                         "--stats", str(stats)]) == 0
    summary = json.loads(stats.read_text())
    assert summary["samples_dropped"] == 0
    assert summary["frames_segmented"] == summary["frames"]
    _check(read_log(log), _truth(recordings[case.name]), case.rate)


def test_rtl_tcp_stream_of_a_recording_logs_its_carriers(tmp_path: Path) -> None:
    """A cu8 recording at 2.4 MS/s, as an RTL-SDR would give it, served by rtl_tcp on loopback."""
    case = Case("lte-2m4-cu8", 2.4e6, 1.5, ("lte:bw=1.4e6,offset=-0.3e6,snr=15,load=0.6",),
                "rtlsdr", "cu8")
    meta = _record(case, tmp_path)
    recording = open_recording(meta)
    assert recording.fmt == parse_datatype("cu8")
    # looped, as a radio never runs out; the stream begins once the monitor has loaded its model
    server = RtlTcpServer(np.asarray(recording.samples).tobytes(), rate=case.rate, loop=True)
    log, stats = tmp_path / "occ.jsonl", tmp_path / "stats.json"
    try:
        status = monitor_main([
            "--device", f"rtltcp:127.0.0.1:{server.port}", "--fc", str(FC), "--rate",
            str(case.rate), "--headless", "--duration", "1.0", "--log",
            str(log), "--stats", str(stats)])
    finally:
        server.stop()
    assert status == 0
    summary = json.loads(stats.read_text())
    # one second of stream after the settle time, all of it segmented, nothing lost
    assert summary["samples_in"] == case.rate and summary["samples_dropped"] == 0
    # found with its class and its edges, no other class on it; the stream starts after the
    # recording does, so its times are not the recording's
    _check(read_log(log), _truth(meta), case.rate, times=False)


def _captures() -> list:
    """One parameter per recording of ../shared/captures' truth.json (none where absent)."""
    if not (CAPTURES / "truth.json").is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no {CAPTURES}"))]
    entries = json.loads((CAPTURES / "truth.json").read_text())
    return [pytest.param(e, id=e["recording"]) for e in entries]


#: The LTE cells truth.json's notes say were decoded from the recordings.
DECODED_CELLS = {"lte-fdd-1860-rtlsdr": {142, 86}, "lte-tdd-2585-rtlsdr": {66, 67, 68},
                 "lte-2645-rtlsdr": {21, 22}}
#: The NR cells of the recordings (truth.json's PCI 500; the others' PCIs as found): PCI, the
#: GSCN of its SSB, the SSB's offset from that raster point (none: it lies on the raster), and
#: from its MIB whether it has a SIB1 and is barred.
NR_CELLS = {"nr-n78-3502-usrp": [(500, 7855, 0, False, True)],
            "nr-n1-2157-starhub": [(55, 5387, 0, True, False)],
            "nr-n78-3426-cyberx": [(1, 7795, 0, True, False)]}
#: The recordings whose cell's MIB the monitor's one search decodes: 20 MHz carriers.
DECODED_RB = {"lte-tdd-2585-rtlsdr": 100, "lte-2645-rtlsdr": 100, "lte-1815-hackrf": 100,
              "lte-2585-hackrf": 100}


@pytest.mark.parametrize("entry", _captures())
def test_a_real_recording_is_given_its_class(entry: dict, tmp_path: Path) -> None:
    """The class holding most of the logged band-time is one that is present, the absent class
    holds under 5 % of it; on the noise recording, the emissions cover under 2 % of the view."""
    name = entry["recording"]
    log, stats = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.json"
    meta = CAPTURES / f"{name}.sigmf-meta"
    assert monitor_main(["--replay", str(meta), "--headless", "--log", str(log),
                         "--stats", str(stats)]) == 0
    summary = json.loads(stats.read_text())
    found = summary["lte_cells"]
    cells = {c["pci"] for c in found}
    assert [(c["pci"], c["gscn"], c["raster_offset_hz"], c["mib"]["sib1"],
             c["mib"]["cell_barred"]) for c in summary["nr_cells"]] == NR_CELLS.get(name, [])
    assert bool(cells) == ("LTE" in entry["present"]), cells
    assert cells <= DECODED_CELLS.get(name, cells)
    assert {c["n_rb"] for c in found} - {None} == ({DECODED_RB[name]} if name in DECODED_RB
                                                   else set())
    rows = read_log(log)
    area = {label: sum(r["sample_count"] * (r["freq_high_hz"] - r["freq_low_hz"])
                       for r in rows if r["label"] == label) for label in ("LTE", "NR")}
    total = sum(area.values())
    recording = open_recording(meta)
    view = recording.sample_rate * recording.samples.size // 2  # Hz x samples
    if not entry["present"]:
        assert total / view < 0.02, area
        return
    assert total > 0, f"nothing logged on {name}"
    assert max(area, key=area.__getitem__) in entry["present"], area
    assert sum(area[a] for a in entry["absent"]) / total < 0.05, area

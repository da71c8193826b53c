"""Command-line entry points: ``prmnet-monitor`` (the monitor) and ``prmnet`` (the offline
tools).

Every error a user can cause ends in one line on stderr and exit status 2 (bad input) or 1 (a
failing device or machine); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from monitor.arguments import positive_float, positive_int, probability, rate_list, snr_range
from monitor.errors import InputError, MonitorError
from monitor.gui.bench import add_bench_gui_command
from monitor.occupancy.tracker import DEFAULT_MIN_CONFIDENCE

__all__ = ["monitor_main", "prmnet_main"]

log = logging.getLogger("prmnet")

SYNTH_EXAMPLES = """\
examples:
  # a random LTE/NR scene as an RTL-SDR would record it
  prmnet synth recording scene.sigmf-meta --rate 2.4e6 --duration 0.2 --receiver rtlsdr \\
      --datatype cu8 --seed 7
  # a 20 MHz TDD LTE carrier beside a 40 MHz NR carrier at 61.44 MS/s, through EVA70 fading
  prmnet synth recording pair.sigmf-meta --rate 61.44e6 --duration 0.04 --fc 3.5e9 \\
      --carrier lte:bw=20e6,offset=-14e6,snr=15,duplex=tdd,config=2,load=0.5 \\
      --carrier nr:bw=40e6,scs=30e3,offset=15e6,snr=10,ssb_period=20e-3,load=0.3 \\
      --channel eva70
  # 20,000 training frames at three rates on every core
  prmnet synth dataset data/train --frames 20000 --rates 1.92e6,19.2e6,61.44e6 --seed 1
"""


MONITOR_EXAMPLES = """\
examples:
  # the built-in synthetic LTE/NR radio, headless, for 10 s, logging every carrier it sees
  prmnet-monitor --headless --duration 10 --log occupancy.csv
  # an RTL-SDR on the 1.8 GHz LTE band
  prmnet-monitor --device rtlsdr --fc 1.8e9
  # a recording, as fast as the machine goes, with annotations for inspectrum or IQEngine
  prmnet-monitor --replay capture.sigmf-meta --headless --log occ.jsonl \\
      --annotate capture.sigmf-meta --stats stats.json
  # a raw RTL-SDR dump: raw files need their format, rate and centre frequency
  prmnet-monitor --replay dump.bin --format cu8 --rate 2.4e6 --fc 1.86e9 --headless
  # an rtl_tcp server on another machine
  prmnet-monitor --device rtltcp:192.0.2.10:1234 --fc 2.645e9 --headless --log occ.parquet

exit status: 0 done, 2 bad input (one line on stderr says what and how to fix it), 1 a radio or
the machine failed.
"""


def monitor_main(argv: Sequence[str] | None = None) -> int:
    """``prmnet-monitor``: watch a radio, a recording or the synthetic radio for LTE and NR."""
    parser = _monitor_parser()
    args = parser.parse_args(argv)
    return _run(_monitor, args, parser.prog)


def _monitor_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prmnet-monitor",
        description="A real-time spectrum monitor that tells 5G NR from LTE: IQ from a radio "
        "or a recording, a rolling spectrogram segmented pixel by pixel by PRMNet, and a log "
        "of every carrier seen. With no --device and no --replay it runs the built-in "
        "synthetic LTE/NR radio.",
        epilog=MONITOR_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = parser.add_argument_group("source")
    src.add_argument("--device", metavar="DEV",
                     help="rtlsdr[:INDEX|:SERIAL], rtltcp:HOST:PORT, soapy:KEY=VALUE,..., "
                     "synthetic (default)")
    src.add_argument("--fc", type=float, metavar="HZ", help="centre frequency")
    src.add_argument("--rate", type=positive_float, metavar="SPS",
                     help="sample rate (default: what the radio and the model both serve)")
    src.add_argument("--gain", default="auto", metavar="DB|auto", help="tuner gain (auto)")
    src.add_argument("--ppm", type=int, default=0, metavar="N",
                     help="frequency correction of the radio's oscillator")
    src.add_argument("--replay", type=Path, metavar="PATH",
                     help="a recording: SigMF (.sigmf-meta/.sigmf-data/.sigmf), WAV IQ, or raw "
                     "with --format --rate --fc")
    src.add_argument("--format", dest="datatype", metavar="FMT",
                     choices=["cu8", "ci8", "ci16", "cf32"],
                     help="sample format of a raw recording: cu8, ci8, ci16 or cf32")
    src.add_argument("--speed", type=_speed, metavar="X|max",
                     help="replay pace: 1 is real time, max as fast as it goes (default: 1 "
                     "with the window, max headless)")
    src.add_argument("--loop", action="store_true", help="replay the recording over and over")
    src.add_argument("--list-devices", action="store_true",
                     help="list the radios this machine can see, and exit")
    eng = parser.add_argument_group("engine")
    eng.add_argument("--model", metavar="NAME|PATH",
                     help="a shipped model's name or a checkpoint (.safetensors with its .json "
                     "card); default: of the shipped models that serve the sample rate, the "
                     "cheapest on the CPU and the best tested on a GPU")
    eng.add_argument("--engine", default="auto",
                     choices=["auto", "torch", "onnxruntime", "tensorrt"],
                     help="how to run the network (auto: TensorRT, then ONNX Runtime on CUDA, "
                     "then torch; on the CPU, the faster of torch and ONNX Runtime; the log "
                     "says why it passed each over). On the CPU torch runs the model compiled "
                     "for this CPU once `prmnet engine build MODEL --compute cpu` made it")
    eng.add_argument("--precision", default="auto",
                     choices=["auto", "fp32", "fp16", "bf16", "int8", "fp8"],
                     help="arithmetic of the engine (auto: fp16 on a GPU, fp32 on the CPU; int8 "
                     "and fp8 run the graph `prmnet calib` made)")
    eng.add_argument("--compute", default="auto", metavar="auto|cpu|cuda[:N]",
                     help="where the spectrogram and the network run")
    eng.add_argument("--hop", type=int, metavar="ROWS",
                     help="rows between segmented frames (default: a whole frame on the CPU, "
                     "half a frame on a GPU)")
    out = parser.add_argument_group("output")
    out.add_argument("--headless", action="store_true", help="no window")
    out.add_argument("--duration", type=positive_float, metavar="SECONDS",
                     help="stop after this much stream time")
    out.add_argument("--log", type=Path, metavar="PATH",
                     help="occupancy log, one row per emission: .csv, .jsonl or .parquet")
    out.add_argument("--min-confidence", type=probability, default=DEFAULT_MIN_CONFIDENCE,
                     metavar="P",
                     help="log only emissions whose mean class probability is at least P "
                     f"(default {DEFAULT_MIN_CONFIDENCE}; 0 logs everything the network "
                     "paints; the stats count the rest as emissions_unconfident)")
    out.add_argument("--raw-edges", action="store_true",
                     help="log the edges the network paints; by default an emission wholly in "
                     "view is logged as the nominal 3GPP channel of its class nearest to them "
                     "(LTE 1.4-20 MHz, NR 5-100 MHz, same centre), and one narrower than a quarter "
                     "of the narrowest is not logged (stats: emissions_narrow)")
    out.add_argument("--raw-classes", action="store_true",
                     help="show and track the class the network gives each pixel; by default "
                     "every signal pixel of a carrier takes the class most of the carrier's "
                     "columns give it, as a carrier is LTE or NR, not both")
    out.add_argument("--annotate", type=Path, metavar="PATH",
                     help="write the emissions as SigMF annotations into this .sigmf-meta")
    out.add_argument("--record", type=Path, metavar="PATH",
                     help="record the raw IQ as a SigMF recording")
    out.add_argument("--stats", type=Path, metavar="PATH",
                     help="a JSON summary of the run at its end")
    out.add_argument("--screenshot", type=Path, metavar="PNG",
                     help="with the window: save it when the run ends")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _monitor(args: argparse.Namespace) -> int:
    if args.list_devices:
        from monitor.sources.radio import list_devices

        for line in list_devices():
            print(line)
        return 0
    if args.screenshot is not None and args.headless:
        raise InputError("--screenshot needs the window; it cannot be used with --headless")
    if args.replay is not None and args.device is not None:
        raise InputError("give either --device or --replay, not both")
    if args.datatype is not None and args.replay is None:
        raise InputError("--format describes a raw recording: use it with --replay")
    from monitor.app import MonitorSettings, run_monitor

    settings = MonitorSettings(
        device=args.device,
        center_freq=args.fc,
        sample_rate=args.rate,
        gain=args.gain,
        ppm=args.ppm,
        replay=args.replay,
        datatype={"ci16": "ci16_le", "cf32": "cf32_le"}.get(args.datatype, args.datatype),
        speed=_replay_speed(args.speed, args.headless),
        loop=args.loop,
        model=args.model,
        engine=args.engine,
        precision=args.precision,
        compute=args.compute,
        headless=args.headless,
        duration=args.duration,
        log_path=args.log,
        annotate=args.annotate,
        record=args.record,
        stats=args.stats,
        screenshot=args.screenshot,
        hop=args.hop,
        min_confidence=args.min_confidence,
        fit_channels=not args.raw_edges,
        raw_classes=args.raw_classes,
    )
    if args.headless:
        stats = run_monitor(settings).to_dict()
    else:
        from monitor.gui.app import run_gui

        stats = run_gui(settings).to_dict()
    print(
        f"{stats['source']}: {stats['stream_seconds']:.2f} s of stream in "
        f"{stats['wall_seconds']:.2f} s ({stats['realtime_factor']}x real time), "
        f"{stats['frames_segmented']}/{stats['frames']} frames segmented, "
        f"{stats['samples_dropped']} samples dropped, {stats['emissions']} emissions"
    )
    return 0


def _replay_speed(speed: float | str | None, headless: bool) -> float | None:
    """Stream seconds per wall second of a replay; None: as fast as it goes (``max``, and the
    default headless); real time by default with the window."""
    if speed == "max" or (speed is None and headless):
        return None
    return float(speed) if speed is not None else 1.0


def _speed(text: str) -> float | str:
    if text == "max":
        return "max"
    return positive_float(text)


def prmnet_main(argv: Sequence[str] | None = None) -> int:
    """``prmnet``: scenes and data sets, training, evaluation, export, benchmarks."""
    parser = _prmnet_parser()
    args = parser.parse_args(argv)
    return _run(args.func, args, parser.prog)


def _run(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace,
         prog: str) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return func(args) or 0
    except MonitorError as exc:
        if args.debug:
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130


def _prmnet_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prmnet",
        description="Offline tools of prmnet-monitor: synthetic LTE/NR scenes and data sets, "
        "training and evaluation of the network, occupancy reports, benchmarks.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = commands.add_parser(
        "synth",
        help="3GPP-structured LTE/NR scenes: recordings and training data sets",
        epilog=SYNTH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = synth.add_subparsers(dest="kind", required=True, metavar="KIND")
    rec = kinds.add_parser(
        "recording",
        help="write one scene as a SigMF recording annotated with its true carriers",
        epilog=SYNTH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rec.add_argument("out", type=Path, metavar="OUT.sigmf-meta")
    rec.add_argument("--rate", type=positive_float, required=True, metavar="SPS",
                     help="sample rate, e.g. 1.92e6, 19.2e6, 61.44e6")
    rec.add_argument("--duration", type=positive_float, required=True, metavar="S",
                     help="length in seconds")
    rec.add_argument("--fc", type=float, default=0.0, metavar="HZ",
                     help="centre frequency written to the metadata (default 0)")
    rec.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    rec.add_argument("--carrier", action="append", default=[], metavar="SPEC",
                     help="lte:bw=HZ,offset=HZ,snr=DB[,duplex=tdd,config=N,load=X,on=S:S,...] "
                     "or nr:bw=HZ,scs=HZ,offset=HZ,snr=DB[,ssb_period=S,load=X,...]; repeat "
                     "for more; none: a random scene")
    rec.add_argument("--channel", default=None, metavar="PROFILE",
                     help="fading for every carrier: epa5, eva70, etu300, tdla30-10, ... "
                     "(default: none for given carriers, random for a random scene)")
    rec.add_argument("--receiver", default=None, choices=["ideal", "rtlsdr", "hackrf", "usrp"],
                     help="receiver model (default: ideal, or random for a random scene)")
    rec.add_argument("--datatype", default="cf32_le",
                     choices=["cf32", "cf32_le", "ci16", "ci16_le", "ci8", "cu8"],
                     help="SigMF sample format (default cf32_le)")
    rec.set_defaults(func=_synth_recording)

    ds = kinds.add_parser(
        "dataset",
        help="write a training data set of random scenes (resumable shards)",
        epilog=SYNTH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ds.add_argument("out", type=Path, metavar="OUT_DIR")
    ds.add_argument("--frames", type=int, required=True, help="number of 256x256 frames")
    ds.add_argument("--rates", type=rate_list, default=(1.92e6, 19.2e6, 61.44e6), metavar="LIST",
                    help="comma-separated sample rates, used in turn "
                    "(default 1.92e6,19.2e6,61.44e6)")
    ds.add_argument("--snr", type=snr_range, default=(-10.0, 30.0), metavar="LO:HI",
                    help="per-carrier SNR range in dB (default -10:30; a range that starts "
                    "below 0 is written --snr=-5:20)")
    ds.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ds.add_argument("--scenes", choices=("monitor", "reference"), default="monitor",
                    help="monitor (default): every kind of scene a monitor meets, at every rate; "
                    "reference: the test frames of the reference recipe the published results "
                    "use, an NR and a loaded LTE carrier side by side, both wholly in view "
                    "(16 MS/s or more; the recipe's own rate is 61.44e6)")
    ds.add_argument("--workers", type=int, default=None,
                    help="processes (default: every core)")
    ds.set_defaults(func=_synth_dataset)

    cmp_ = kinds.add_parser(
        "compare",
        help="figure: real recordings beside generated scenes made to resemble them",
    )
    cmp_.add_argument("out", type=Path, metavar="OUT.png")
    cmp_.add_argument("--captures", type=Path, default=Path("../shared/captures"),
                      help="folder of the real SigMF recordings (default ../shared/captures)")
    cmp_.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    cmp_.set_defaults(func=_synth_compare)

    from engines.commands import add_commands as add_engine_commands
    from monitor.occupancy.report import add_report_command
    from monitor.train.commands import add_commands as add_train_commands

    add_train_commands(commands)
    add_engine_commands(commands)
    add_report_command(commands)

    bench = commands.add_parser("bench", help="measure speed against references in one run")
    targets = bench.add_subparsers(dest="target", required=True, metavar="TARGET")
    bsynth = targets.add_parser("synth", help="scene generation: frames per second per rate")
    bsynth.add_argument("--rates", type=rate_list, default=(1.92e6, 61.44e6), metavar="LIST")
    bsynth.add_argument("--frames", type=int, default=6, help="frames per rate (default 6)")
    bsynth.add_argument("--json", type=Path, default=None, help="also write the figures here")
    bsynth.set_defaults(func=_bench_synth)
    bmodel = targets.add_parser(
        "model", help="parameters, GFLOP and CPU time of a frame against the frame's duration")
    bmodel.add_argument("models", nargs="*", default=["prmnet_cpu", "prmnet_w8", "prmnet_w16"],
                        metavar="MODEL", help="model names or checkpoint paths "
                        "(default prmnet_cpu prmnet_w8 prmnet_w16)")
    bmodel.add_argument("--rates", type=rate_list, default=(1.92e6, 2.4e6), metavar="LIST")
    bmodel.add_argument("--threads", type=positive_int, default=2)
    bmodel.add_argument("--compiled", action="store_true",
                        help="also time each model compiled for this CPU, as the torch engine "
                        "runs it after prmnet engine build MODEL --compute cpu (built here "
                        "where the engine cache lacks it: about a minute a model)")
    bmodel.set_defaults(func=_bench_model)
    bstft = targets.add_parser("stft", help="the spectrogram against scipy.signal, same data")
    bstft.add_argument("--rates", type=rate_list, default=(2.4e6, 19.2e6, 61.44e6),
                       metavar="LIST")
    bstft.add_argument("--threads", type=positive_int, default=2)
    bstft.set_defaults(func=_bench_stft)
    bengine = targets.add_parser("engines", help="frames per second of each engine on a model")
    bengine.add_argument("model", metavar="MODEL", help="a shipped model's name or a checkpoint")
    bengine.add_argument("--engines", default="torch,onnxruntime", metavar="LIST")
    bengine.add_argument("--compute", default="auto")
    bengine.set_defaults(func=_bench_engines)
    breplay = targets.add_parser("replay", help="end to end: a generated recording through the "
                                 "monitor, headless, with its real-time factor")
    breplay.add_argument("model", metavar="MODEL", help="a shipped model's name or a checkpoint")
    breplay.add_argument("--rate", type=positive_float, default=2.4e6, metavar="SPS")
    breplay.add_argument("--seconds", type=positive_float, default=10.0)
    breplay.add_argument("--hop", type=positive_int, default=None, metavar="ROWS")
    breplay.add_argument("--speed", type=positive_float, default=None,
                         help="pace the replay (1: real time); default as fast as it goes")
    breplay.add_argument("--live", action="store_true",
                         help="deliver the recording as a radio would: paced in real time, and "
                         "when processing falls behind, frames skipped and the oldest samples "
                         "dropped, all counted (implies --speed 1)")
    breplay.set_defaults(func=_bench_replay)
    for target in (bsynth, bmodel, bstft, bengine, breplay):
        if target is not bsynth:
            target.add_argument("--json", type=Path, default=None,
                                help="also write the figures here")
    add_bench_gui_command(targets)
    return parser


def _synth_recording(args: argparse.Namespace) -> int:
    import numpy as np

    from monitor.recordings import Annotation, write_recording
    from monitor.synth.channel import parse_channel
    from monitor.synth.random_scene import draw_scene
    from monitor.synth.scene import SceneSpec, parse_carrier, render

    rng = np.random.default_rng(args.seed)
    if args.channel:
        parse_channel(args.channel)  # a bad name is bad input before anything is rendered
    if args.carrier:
        carriers = tuple(parse_carrier(text) for text in args.carrier)
        spec = SceneSpec(args.rate, args.duration, carriers, args.fc,
                         receiver=args.receiver or "ideal")
    else:
        spec = draw_scene(rng, args.rate, args.duration, center_freq=args.fc)
        spec = replace(spec, receiver=args.receiver or spec.receiver)
    if args.channel:
        spec = replace(spec, carriers=tuple(replace(c, channel=args.channel)
                                            for c in spec.carriers))
    scene = render(spec, rng)
    datatype = {"cf32": "cf32_le", "ci16": "ci16_le"}.get(args.datatype, args.datatype)
    annotations = [
        Annotation(
            start_sample=c.start_sample,
            sample_count=c.sample_count,
            freq_low_hz=args.fc + c.freq_low_hz,
            freq_high_hz=args.fc + c.freq_high_hz,
            label=c.label,
            extra={"prmnet:snr_db": round(c.snr_db, 2), "prmnet:scs_hz": c.scs,
                   "prmnet:cell_id": c.cell_id, "prmnet:channel": c.channel or "none"},
        )
        for c in scene.carriers
        if c.sample_count > 0
    ]
    path = write_recording(
        args.out, scene.iq, args.rate, args.fc, datatype, annotations,
        description=f"prmnet synth recording, seed {args.seed}, receiver {spec.receiver}",
    )
    print(f"wrote {path} ({len(scene.iq)} samples, {len(annotations)} carriers)")
    return 0


def _synth_dataset(args: argparse.Namespace) -> int:
    from monitor.synth.dataset import DatasetRequest, generate_dataset

    if args.frames <= 0:
        raise InputError("--frames must be positive")
    try:
        request = DatasetRequest(frames=args.frames, rates=args.rates, snr_db=args.snr,
                                 seed=args.seed, scenes=args.scenes)
        out = generate_dataset(args.out, request, workers=args.workers)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    print(f"wrote {args.frames} frames to {out}")
    return 0


def _synth_compare(args: argparse.Namespace) -> int:
    from monitor.synth.figures import compare_with_captures

    if not args.captures.is_dir():
        raise InputError(f"no recordings folder {args.captures}; point --captures at one")
    print(f"wrote {compare_with_captures(args.captures, args.out, args.seed)}")
    return 0


def _bench_synth(args: argparse.Namespace) -> int:
    from monitor.bench import bench_synth

    return _report(bench_synth(args.rates, args.frames), args.json)


def _bench_model(args: argparse.Namespace) -> int:
    from monitor.bench import bench_model

    return _report(bench_model(args.models, args.rates, args.threads,
                               compiled=args.compiled), args.json)


def _bench_stft(args: argparse.Namespace) -> int:
    from monitor.bench import bench_stft

    return _report(bench_stft(args.rates, args.threads), args.json)


def _bench_engines(args: argparse.Namespace) -> int:
    from monitor.bench import bench_engines

    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    return _report(bench_engines(args.model, engines, args.compute), args.json)


def _bench_replay(args: argparse.Namespace) -> int:
    from monitor.bench import bench_replay

    rows = bench_replay(args.rate, args.seconds, args.model, args.hop,
                        1.0 if args.live else args.speed, args.live)
    return _report(rows, args.json)


def _report(rows: list[dict], json_path: Path | None) -> int:
    """Print benchmark rows as a table; also as JSON where asked."""
    from monitor.bench import format_table

    print(format_table(rows))
    if json_path is not None:
        json_path.write_text(json.dumps(rows, indent=2) + "\n")
    return 0

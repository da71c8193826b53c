"""The ``prmnet train``, ``prmnet tune-bias`` and ``prmnet eval`` subcommands (wired in by
``monitor.cli``)."""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path

from monitor.arguments import count, positive_float, positive_int, probability
from monitor.errors import InputError
from monitor.train import CONFIG_DIR

__all__ = ["EVAL_EXAMPLES", "TRAIN_EXAMPLES", "add_commands"]

log = logging.getLogger("prmnet.train")

TRAIN_EXAMPLES = """\
examples:
  # data: a training set, and a test set drawn with another seed
  prmnet synth dataset data/train --frames 20000 --rates 1.92e6,19.2e6,61.44e6 --seed 1
  prmnet synth dataset data/test --frames 2000 --rates 1.92e6,19.2e6,61.44e6 --seed 2
  # train the CPU model with a shipped configuration (monitor/train/configs/prmnet_w8.toml)
  prmnet train prmnet_w8 --run-dir runs/prmnet_w8
  # a long run in the background, four hours at a time: the same command resumes it
  nohup prmnet train prmnet_w8 --run-dir runs/prmnet_w8 --max-minutes 240 \\
      > runs/prmnet_w8.out 2>&1 &
  # the published width on a GPU lent for an hour: the steps fitted to 50 minutes
  prmnet train prmnet --run-dir runs/prmnet --fit-minutes 50
  # your own configuration (copy a shipped one: every key is explained in it)
  prmnet train my-run.toml
The run folder holds ckpt-last.pt (resume state), best.safetensors + best.json (the best
weights by validation mean IoU, with their model card) and log.jsonl (one line per validation).
SIGTERM or Ctrl-C stop after the current step with a checkpoint.
"""

EVAL_EXAMPLES = """\
examples:
  # one model on the test set; tables on stdout
  prmnet eval runs/prmnet_w8/best.safetensors --data data/test
  # the shipped PRMNet beside the U-Net baseline, on the test set and the real recordings
  prmnet eval engines/weights/prmnet_cpu.safetensors engines/weights/unet_cpu.safetensors \\
      --data data/test --captures ../shared/captures --report docs/eval
  # a quick look: 100 frames, recordings only
  prmnet eval runs/prmnet_w8/best.safetensors --data data/test --limit 100
  prmnet eval runs/prmnet_w8/best.safetensors --captures ../shared/captures
  # does it lack capacity or data? the same figures on frames it trained on and on test frames
  prmnet eval runs/unet_cpu_stage5.safetensors --data data/train5 --limit 256 --training-data
  prmnet eval runs/unet_cpu_stage5.safetensors --data data/test2 --limit 256
A MODEL is NAME.safetensors with its card NAME.json beside it. The report folder gets
report.md, metrics.json, miou_vs_snr.png, confusion.png, errors.png and worst.png (the test
frames the first model segments worst at high SNR, with every model's classes on them).
"""


TUNE_EXAMPLES = """\
examples:
  # after prmnet train prmnet_cpu --run-dir runs/prmnet_cpu
  prmnet tune-bias runs/prmnet_cpu
  prmnet eval runs/prmnet_cpu/tuned.safetensors --data data/test
The offsets are chosen on the run's own validation frames (never the test set), the best mean
IoU among those that call at most 1.5 % of the noise-only frames' pixels signal, and folded into
the bias of the network's last convolution; runs/prmnet_cpu/tuned.json records them with the
validation figures before and after.
"""


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``tune-bias`` and ``eval`` to a ``prmnet`` subparser set; each sets
    ``func``."""
    train = subparsers.add_parser(
        "train",
        help="train a segmentation network from a TOML configuration (resumable)",
        description="Train PRMNet or the U-Net baseline on prmnet synth data sets (or the "
        "authors' PNG layout). Running the same command again resumes the run.",
        epilog=TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("config", metavar="CONFIG",
                       help="a TOML configuration, or the name of a shipped one: "
                       + ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))))
    train.add_argument("--run-dir", type=Path, default=None, metavar="DIR",
                       help="the run folder (default runs/CONFIG_NAME)")
    train.add_argument("--max-minutes", type=positive_float, default=None, metavar="M",
                       help="stop after this many minutes, with a checkpoint")
    train.add_argument("--max-steps", type=positive_int, default=None, metavar="N",
                       help="stop after this many steps of this call, with a checkpoint")
    train.add_argument("--fit-minutes", type=positive_float, default=None, metavar="M",
                       help="size a new run to end in M minutes: time a few training steps and "
                       "a validation, set the configuration's step count to what fits (so the "
                       "learning rate ends its schedule when the time ends), and stop at M "
                       "minutes; a resumed run keeps the steps it was fitted to")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)

    tune = subparsers.add_parser(
        "tune-bias",
        help="per-class logit offsets for a trained run, chosen on its validation frames",
        description="Find the offsets to the LTE and NR logits that give the run's best "
        "checkpoint its highest mean IoU on the run's validation frames, and write the tuned "
        "checkpoint as RUN_DIR/tuned.safetensors with its card.",
        epilog=TUNE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tune.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a prmnet train run folder")
    tune.add_argument("--max-false-alarm", type=probability, default=None, metavar="P",
                      help="keep the share of the noise-only validation frames' pixels called "
                      "LTE or NR at most P (default 0.015, a margin under the 2 %% a noise "
                      "recording may show; 1 for mean IoU alone)")
    tune.add_argument("--device", default="cpu", metavar="DEV",
                      help="cpu (default), cuda, cuda:N or auto")
    tune.add_argument("--half", action="store_true",
                      help="store the tuned weights in float16 where float16 holds them (the "
                      "paper-size network's 58 MB become 29 MB), measured after the rounding")
    tune.set_defaults(func=_tune)

    ev = subparsers.add_parser(
        "eval",
        help="evaluate models on a test set and real recordings; write a report",
        description="Evaluate one or more checkpoints side by side: pixel metrics, mean IoU by "
        "SNR, carrier precision and recall on a test set; class shares on real recordings.",
        epilog=EVAL_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("models", nargs="+", type=Path, metavar="MODEL",
                    help="checkpoints: NAME.safetensors with NAME.json beside it")
    ev.add_argument("--data", type=Path, action="append", default=[], metavar="DIR",
                    help="test data: a prmnet synth dataset folder or the authors' testSet "
                    "(repeat for more)")
    ev.add_argument("--captures", type=Path, default=None, metavar="DIR",
                    help="real SigMF recordings with a truth.json (e.g. ../shared/captures)")
    ev.add_argument("--report", type=Path, default=None, metavar="DIR",
                    help="write report.md, metrics.json and plots here")
    ev.add_argument("--limit", type=positive_int, default=None, metavar="N",
                    help="evaluate only the first N test frames")
    ev.add_argument("--capture-frames", type=positive_int, default=8, metavar="N",
                    help="at most N frames per recording (default 8)")
    ev.add_argument("--batch-size", type=positive_int, default=1, metavar="N",
                    help="frames per forward pass (default 1, as the monitor runs)")
    ev.add_argument("--threads", type=positive_int, default=None, metavar="N",
                    help="torch threads (default: torch's choice)")
    ev.add_argument("--device", default="cpu", metavar="DEV",
                    help="cpu (default), cuda, cuda:N or auto")
    ev.add_argument("--worst-frames", type=count, default=4, metavar="N",
                    help="draw the N test frames the first model segments worst at high SNR, "
                    "with every model's classes (worst.png; default 4, 0: none)")
    ev.add_argument("--record-metrics", action="store_true",
                    help="also write the test and recording figures into each model's card")
    ev.add_argument("--training-data", action="store_true",
                    help="take --data drawn with a model's training seed: its figures there "
                    "against those on test data tell a network short of data (higher on what "
                    "it trained on) from one held back by its capacity or by the task (the "
                    "same); not with --record-metrics")
    ev.add_argument("--cells", action="store_true",
                    help="judge the classes as shown in full, as the monitor makes them: render "
                    "each test frame's IQ again and search it for LTE cells, whose PSS names "
                    "their carriers LTE, and NR cells, whose SSB names theirs NR (seconds a "
                    "frame; the recordings are always searched)")
    ev.set_defaults(func=_eval)


def _tune(args: argparse.Namespace) -> int:
    from monitor.train.bias import MAX_FALSE_ALARM, tune_run
    from monitor.train.loop import pick_device

    bound = MAX_FALSE_ALARM if args.max_false_alarm is None else args.max_false_alarm
    command = shlex.join(["prmnet", "tune-bias", str(args.run_dir),
                          *(["--max-false-alarm", str(bound)] if bound != MAX_FALSE_ALARM
                            else []), *(["--half"] if args.half else [])])
    result = tune_run(args.run_dir, command, str(pick_device(args.device)), bound, args.half)
    print(f"offsets LTE {result.offsets[1]:+.2f}, NR {result.offsets[2]:+.2f}: validation mean "
          f"IoU {100 * result.before['miou']:.2f} % -> {100 * result.after['miou']:.2f} %, LTE "
          f"called NR {100 * result.before['lte_as_nr']:.1f} % -> "
          f"{100 * result.after['lte_as_nr']:.1f} %, NR called LTE "
          f"{100 * result.before['nr_as_lte']:.1f} % -> {100 * result.after['nr_as_lte']:.1f} "
          f"%, noise-only frames called signal {100 * result.before['false_alarm']:.2f} % -> "
          f"{100 * result.after['false_alarm']:.2f} % ({result.path})")
    return 0


def _train(args: argparse.Namespace) -> int:
    from monitor.train.loop import TrainConfig, resolve_config, train

    path = resolve_config(args.config)
    config = TrainConfig.from_toml(path)
    run_dir = args.run_dir or Path("runs") / path.stem
    command = shlex.join(["prmnet", "train", args.config, "--run-dir", str(run_dir),
                          *(["--max-minutes", f"{args.max_minutes:g}"] if args.max_minutes
                            else []),
                          *(["--fit-minutes", f"{args.fit_minutes:g}"] if args.fit_minutes
                            else [])])
    result = train(config, run_dir, command=command, max_minutes=args.max_minutes,
                   max_steps=args.max_steps, progress=not args.no_progress,
                   fit_minutes=args.fit_minutes)
    state = "finished" if result.finished else "stopped; run the same command to resume"
    best = (f"best validation mean IoU {100 * result.best_miou:.2f} % ({result.best_path})"
            if result.best_path else "no validation yet")
    print(f"{run_dir}: step {result.step} of {result.total_steps}, {state}; {best}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    from monitor.train.cards import load_checkpoint, write_card
    from monitor.train.data import open_frames
    from monitor.train.evaluate import (
        check_not_training_data,
        evaluate,
        evaluate_captures,
        format_report,
        write_report,
    )
    from monitor.train.gallery import Gallery, pick_frames
    from monitor.train.loop import pick_device

    if not args.data and args.captures is None:
        raise InputError("nothing to evaluate on: give --data DIR, --captures DIR or both")
    if args.training_data and args.record_metrics:
        raise InputError("--training-data measures a model's fit, not its accuracy: its "
                         "figures do not go into cards (leave out --record-metrics)")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    frames = open_frames(args.data) if args.data else None
    names = _names(args.models)
    results, captures = [], {}
    nr_found: dict[int, tuple] = {}  # the NR search is the models' to share (--cells)
    gallery: Gallery | None = None
    for path, name in zip(args.models, names, strict=True):
        model, card = load_checkpoint(path, device)
        if frames is not None:
            if not args.training_data:
                check_not_training_data(card, frames, name)
            result = evaluate(model, card, frames, name, args.limit, args.batch_size, device,
                              args.cells, nr_found)
            results.append(result)
            if gallery is None and args.worst_frames > 0:
                worst = pick_frames(result.frame_mious, args.worst_frames)
                gallery = Gallery.of(frames, worst, result.frame_snrs)
            if gallery is not None:
                gallery.add(name, model, card, device)
            card.metrics["test"] = {"data": [str(d) for d in args.data],
                                    **result.summary()}
        if args.captures is not None:
            captures[name] = evaluate_captures(model, card, args.captures, args.capture_frames,
                                               device)
            card.metrics["captures"] = [c.summary() for c in captures[name]]
        if args.record_metrics:
            write_card(card, path)
    command = shlex.join(["prmnet", "eval", *map(str, args.models),
                          *(a for d in args.data for a in ("--data", str(d))),
                          *(["--captures", str(args.captures)] if args.captures else []),
                          *(["--report", str(args.report)] if args.report else []),
                          *(["--limit", str(args.limit)] if args.limit else []),
                          *(["--capture-frames", str(args.capture_frames)]
                            if args.captures and args.capture_frames != 8 else []),
                          *(["--batch-size", str(args.batch_size)]
                            if args.batch_size != 1 else []),
                          *(["--device", args.device] if args.device != "cpu" else []),
                          *(["--worst-frames", str(args.worst_frames)]
                            if frames is not None and args.worst_frames != 4 else []),
                          *(["--training-data"] if args.training_data else []),
                          *(["--cells"] if args.cells else [])])
    data = ", ".join(_data_origin(d) for d in args.data)
    if args.training_data and data:
        data += (" (training seeds allowed: a model's figures on frames it trained on measure "
                 "its fit)")
    if args.report:
        report = write_report(results, captures, args.report, command, data, gallery)
        log.info("wrote %s", report)
    print(format_report(results, captures, command, data))
    return 0


def _names(paths: list[Path]) -> list[str]:
    """Report names: the file stems, with the folder added where stems repeat."""
    stems = [p.stem for p in paths]
    return [
        f"{p.parent.name}/{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths
    ]


def _data_origin(folder: Path) -> str:
    """A test data folder, with the command that makes it again where it is generator data."""
    from monitor.synth.dataset import read_request

    request = read_request(folder)
    return f"{folder}, made by `{request.command(folder)}`" if request else str(folder)

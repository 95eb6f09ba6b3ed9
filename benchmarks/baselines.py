"""Does time matter? Each model of issue 15 trained on each task it applies to, for the same budget.

For every task x model x seed: a fresh model, ``train.fit`` with a time budget on the CPU, then
the test accuracy on sequences made from MNIST's *test* digits. The table gives the median over
the seeds with its range, the parameter count and the steps the budget bought, and says, for
each model, why it lands where it does.

    python benchmarks/baselines.py --seeds 3             # the issue's table: 3 tasks, 3 seeds, 60 s each
    python benchmarks/baselines.py --tasks direction     # one task
    python benchmarks/baselines.py --quick               # tiny runs, prints, writes nothing
    python benchmarks/baselines.py --from-jsonl runs.jsonl   # the table again from saved runs

Runs in-process through the library (``cnnlstm_edu.train.fit``) on the CLI's data
(``cnnlstm_edu.cli.tasks``), so ``train --task T --model M --time-budget 60 --batch-size 32``
is the same experiment. Every run is appended to ``--jsonl`` as it ends, so the table can be
written again (``--from-jsonl``) without training anything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import hardware  # noqa: E402

from cnnlstm_edu import data  # noqa: E402
from cnnlstm_edu.cli.tasks import TASKS  # noqa: E402
from cnnlstm_edu.models import build_model, count_parameters  # noqa: E402
from cnnlstm_edu.train import fit  # noqa: E402

SEQUENCE = ("cnn_lstm", "cnn_convlstm")
BASELINES = ("frame_average", "last_frame", "conv3d")
MODELS = {  # task -> the models that apply to it (whole_image needs the whole 28x28 digit)
    "quadrants": (*SEQUENCE, "whole_image", *BASELINES),
    "direction": (*SEQUENCE, *BASELINES),
    "first_digit": (*SEQUENCE, *BASELINES),
}
ABOUT = {
    "quadrants": "each MNIST digit as its four 14x14 quadrants, a 4-step sequence",
    "direction": "a 12 px digit sliding 2 px per frame in one of 8 directions on a 24x24 canvas that "
                 "wraps around, 6 frames: the defaults of `cnnlstm_edu.data.direction`",
    "first_digit": "two 28x28 digits of different classes, the first for frames 0-1, the second for "
                   "2-3; the label is the first",
}
CLIPS = {"quadrants": (60_000, 10_000), "direction": (10_000, 2_000), "first_digit": (10_000, 2_000)}

WHY = {"quadrants": {
    "cnn_lstm": "it reads the quadrants in a fixed order, so each piece's place is known from when it "
                "comes, and its state carries the pieces to the end; it ends a little below whole_image, "
                "with ten times its parameters.",
    "cnn_convlstm": "as cnn_lstm, with a 2-D state; a convolution at every gate makes its steps "
                    "slower, so the budget bought it fewer steps than cnn_lstm and it ends just below it.",
    "whole_image": "the digit whole, its strokes joined across the cuts: nothing in this task is about "
                   "time, and this plain CNN beats every sequence model here, with a tenth of "
                   "cnn_lstm's parameters.",
    "frame_average": "order-blind, it can't tell which quadrant a piece came from, yet ends about a "
                     "point below cnn_lstm: the four pieces, as a set, mostly name the digit already.",
    "last_frame": "the bottom-right quadrant alone: a quarter of the digit names it about three times "
                  "in four.",
    "conv3d": "two 3-step kernels in a row reach across all four quadrants, in order, before it "
              "averages over time; but its steps cost more than frame_average's, and order adds "
              "little on this task (see frame_average): it ends level with it.",
}, "direction": {
    "cnn_lstm": "its LSTM reads the frames in order, so the shift from one frame to the next (the "
                "motion) is there to learn: on a quieter machine (its row's load) 206-537 steps of 32 "
                "clips were enough for all but a clip or two of the 2,000.",
    "frame_average": "it averages the frames' features, and a clip played backwards has exactly "
                     "the frames of a clip of the opposite direction, so it can never tell which "
                     "way along an axis the digit went: 50 % at best. It does far worse, a few points "
                     "above chance, because every frame alone shows the digit at a uniformly "
                     "random place whatever the direction: each class's score, the average of "
                     "per-frame scores of its linear classifier, then has the same expected value "
                     "for every direction, and only the spread of those averages differs. Telling "
                     "a row of positions from a column (the axis) needs products of features, "
                     "which an average followed by a linear layer cannot form.",
    "last_frame": "one frame shows where the digit is, and on the wrapping canvas that place is "
                  "uniformly random whatever the direction: chance, however long it trains.",
    "conv3d": "its kernels span 3 frames, so it sees the motion directly, which is all this task "
              "needs, with a 28th of cnn_lstm's parameters; its runs were on the busy machine (its "
              "row's load), where the seed given the fewest steps stopped far short.",
    "cnn_convlstm": "its state is a 2-D map, so the digit's place in the previous frame is still there "
                    "where the next frame's can be compared with it: motion, in order. But a "
                    "convolution at every gate makes its steps the slowest, and 60 s on the busy "
                    "machine bought it the fewest: it is still learning when the budget ends.",
}, "first_digit": {
    "cnn_lstm": "it has to recognise digit A and keep it in its state through B's frames, then "
                "name it at the end: memory, which is what the LSTM is for. It is still learning when "
                "60 s end on the busy machine: its seeds rank as their steps do.",
    "frame_average": "\"A then B\" holds exactly the frames of \"B then A\", so at best it "
                     "recognises both digits and guesses which came first: 50 %, just above where it "
                     "lands.",
    "last_frame": "the last frame always shows B, never the answer: it can only learn \"not "
                  "this digit\", about 1 in 9.",
    "conv3d": "its 3-frame kernels straddle the change from A to B in the middle of the clip, so "
              "the order is visible to it locally, without any memory; with a 29th of cnn_lstm's "
              "parameters it ends above both recurrent models in this budget.",
    "cnn_convlstm": "the same memory, in a 2-D state, with a ninth of cnn_lstm's parameters: the "
                    "budget bought it under half of cnn_lstm's steps, yet it ends above it, so per step "
                    "it learned faster here.",
}}


def load(task: str, train_clips: int | None, test_clips: int | None):
    """``(train, test)`` as ``(x, y)`` pairs: the CLI's data for ``task``, or its first clips."""
    n_train, n_test = train_clips or CLIPS[task][0], test_clips or CLIPS[task][1]
    if task == "quadrants":   # every model sees the 4 quadrants; whole_image tiles them back
        return tuple((data.quadrant_sequences(images[:n]), labels[:n])        # (n, 4, 1, 14, 14)
                     for (images, labels), n in ((data.load_mnist("train"), n_train),
                                                 (data.load_mnist("test"), n_test)))
    generate = getattr(data, task)
    return generate(n_train, split="train", seed=0), generate(n_test, split="test", seed=1)


def run(task: str, model_name: str, seed: int, seconds: float, clips) -> dict:
    (x, y), test = clips
    torch.manual_seed(seed)
    config = {} if model_name == "whole_image" else {"frame_size": x.shape[-1]}
    model = build_model(model_name, num_classes=TASKS[task].num_classes, **config)
    load_start, t0 = os.getloadavg(), time.perf_counter()
    for event in fit(model, (x, y), test, time_budget=seconds, batch_size=32, device="cpu",
                     seed=seed, eval_every_epoch=False):
        pass
    result = {"task": task, "model": model_name, "seed": seed, "test_acc": event.test_acc,
              "steps": event.step, "epochs": event.epoch, "train_seconds": event.seconds,
              "wall_seconds": time.perf_counter() - t0, "params": count_parameters(model),
              "load_start": load_start, "load": os.getloadavg(), "budget": seconds,
              "threads": torch.get_num_threads(), "clips": (len(x), len(test[0]))}
    print(f"{task} {model_name} seed {seed}: test_acc {event.test_acc:.4f} after {event.step} steps "
          f"({event.seconds:.0f} s), load {load_start[0]:.1f} -> {result['load'][0]:.1f}", flush=True)
    return result


def table(results: list[dict]) -> list[str]:
    lines = ["| task | model | test accuracy, median (min-max) | seeds | parameters | steps in the "
             "budget (median) | load at the end of its runs | chance |", "|---|---|---|---|---|---|---|---|"]
    for task in dict.fromkeys(r["task"] for r in results):
        for name in dict.fromkeys(r["model"] for r in results if r["task"] == task):
            rs = [r for r in results if r["task"] == task and r["model"] == name]
            accs, loads = [r["test_acc"] for r in rs], [r["load"][0] for r in rs]
            lines.append(f"| {task} | {name} | {100 * statistics.median(accs):.1f} % "
                         f"({100 * min(accs):.1f}-{100 * max(accs):.1f}) | {len(rs)} | "
                         f"{rs[0]['params']:,} | {statistics.median(r['steps'] for r in rs):.0f} | "
                         f"{min(loads):.1f}-{max(loads):.1f} | {100 / TASKS[task].num_classes:.1f} % |")
    return lines


def goal(results: list[dict]) -> list[str]:
    """Issue 15's goal on direction, from the medians (when both models ran)."""
    acc = {name: statistics.median(r["test_acc"] for r in results
                                   if r["task"] == "direction" and r["model"] == name)
           for name in ("cnn_lstm", "frame_average")
           if any(r["task"] == "direction" and r["model"] == name for r in results)}
    if len(acc) < 2:
        return []
    met = acc["cnn_lstm"] >= 0.95 and acc["frame_average"] <= 0.55
    loads = [r["load"][0] for r in results if r["task"] == "direction" and r["model"] in acc]
    return [f"Issue 15's goal on `direction`, 60 s of training each on the 2-core CPU: `cnn_lstm` "
            f">= 95 %, `frame_average` <= 55 %. Medians: `cnn_lstm` {100 * acc['cnn_lstm']:.1f} %, "
            f"`frame_average` {100 * acc['frame_average']:.1f} %: {'met' if met else 'NOT met'} "
            f"(load average {min(loads):.1f}-{max(loads):.1f} at the end of these runs).", ""]


def report(results: list[dict], command: str) -> list[str]:
    tasks = list(dict.fromkeys(r["task"] for r in results))
    loads = [r["load"][0] for r in results]
    seconds, threads = results[0]["budget"], results[0]["threads"]
    clips = {r["task"]: r["clips"] for r in results}
    torch.set_num_threads(threads)               # so that hardware() says what the runs used
    return [
        "# Does time matter? Baselines against the CNN-LSTM (issue 15)", "",
        f"Written by `{command.strip()}`. Each run trains a fresh model with `train.fit` for "
        f"{seconds:g} s of training time on the CPU (batch 32, AdamW, one-cycle learning "
        "rate over the budget; the same as `python -m cnnlstm_edu train --task T --model M "
        f"--time-budget {seconds:g} --batch-size 32 --seed S`), and is tested on sequences made from "
        "MNIST's test digits. " + " ".join(f"`{task}`: {ABOUT[task]} ({clips[task][0]:,} training, "
                                           f"{clips[task][1]:,} test)." for task in tasks), "",
        *hardware("cpu"),
        *([f"- `--threads {threads}`: one torch thread per run, because the tracking benchmark ran "
           "at the same time"] if "--threads" in command else []),
        f"- load average over 1 min at the end of each run: {min(loads):.1f} to {max(loads):.1f}. "
        "**The machine was shared** with other work (2 cores; above ~2 a run got fewer steps "
        "than a quiet machine gives it): the table gives each row's range.", "",
        *table(results), "",
        *goal(results),
        *[line for task in tasks for line in (
            f"Why each model lands where it does on `{task}`:", "",
            *[f"- `{name}`: {WHY[task][name]}"
              for name in dict.fromkeys(r["model"] for r in results if r["task"] == task)], "")],
    ]


def save_run(path: str | None, command: str, result: dict) -> None:
    """Append one run to ``--jsonl`` as soon as it ends: a crash later loses nothing."""
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"command": command, "result": result}) + "\n")


def saved_runs(path: str) -> tuple[list[dict], str]:
    """The results ``--jsonl`` saved, and the commands that made them (several when runs made at
    different times were put in one file, e.g. a row re-measured on a quieter machine)."""
    runs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    if not runs:
        raise SystemExit(f"error: --from-jsonl {path}: no runs in it")
    commands = list(dict.fromkeys(r["command"] for r in runs))
    return [r["result"] for r in runs], " ; then ".join(commands)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="training budget per run")
    parser.add_argument("--seeds", type=int, default=1, help="runs per task and model (seeds 0..n-1)")
    parser.add_argument("--tasks", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--models", nargs="+", default=None, choices=list(MODELS["quadrants"]),
                        help="default: every model that applies to the task")
    parser.add_argument("--train-clips", type=int, default=None, help="default: the CLI's (see CLIPS)")
    parser.add_argument("--test-clips", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own); 1 is faster on a busy machine")
    parser.add_argument("--out", default=str(HERE / "baselines.md"))
    parser.add_argument("--jsonl", default=None, help="append each run's result to this file as it ends")
    parser.add_argument("--from-jsonl", default=None, help="write the table from these saved runs; train nothing")
    parser.add_argument("--quick", action="store_true", help="tiny runs; prints, writes nothing")
    args = parser.parse_args(argv)
    for name in ("seconds", "seeds", "train_clips", "test_clips", "threads"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be above 0, got {value}")
    if args.quick:
        args.seconds, args.train_clips, args.test_clips, args.out, args.seeds = 0.3, 128, 64, None, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python benchmarks/baselines.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.from_jsonl:
        results, command = saved_runs(args.from_jsonl)
    else:
        results = []
        for task in args.tasks:
            # The same sequences for every model and seed: only the model and its initialisation change.
            clips = load(task, args.train_clips, args.test_clips)
            for name in (m for m in MODELS[task] if args.models is None or m in args.models):
                for seed in range(args.seeds):
                    results.append(run(task, name, seed, args.seconds, clips))
                    save_run(args.jsonl, command, results[-1])
    print("\n".join(table(results)))
    if args.out:
        Path(args.out).write_text("\n".join(report(results, command)))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

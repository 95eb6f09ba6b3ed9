"""Accuracy within a time budget: the CLI's own training run, timed as a user would run it.

Each run is exactly

    python -m cnnlstm_edu train --model MODEL --device DEVICE --time-budget S --seed K --json

in a fresh process; the table reports the test accuracy on the 10,000 test digits (order 1234)
over several seeds: median, worst and best. ``train_seconds`` is time spent in training steps;
loading the data and the final evaluation are outside the budget (reported separately).

    python benchmarks/train_speed.py                       # CPU, the default runs below, 3 seeds
    python benchmarks/train_speed.py --runs cnn_lstm:30 --repeats 5
    python benchmarks/train_speed.py --quick               # a 2 s smoke run, writes nothing
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import hardware, train_cli  # noqa: E402


def run_once(model: str, device: str, budget: float, seed: int) -> dict:
    return train_cli("--model", model, "--device", device, "--time-budget", str(budget), "--seed", str(seed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", default=["cnn_lstm:10", "cnn_lstm:30", "cnn_convlstm:60"],
                        metavar="MODEL:SECONDS", help="model and time budget of each row")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="seeds 0..repeats-1")
    parser.add_argument("--out", default=str(HERE / "train_speed.md"))
    parser.add_argument("--quick", action="store_true", help="one 2 s run, print, write nothing")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.repeats, args.out = ["cnn_lstm:2"], 1, None

    rows = []
    for spec in args.runs:
        model, _, budget = spec.partition(":")
        budget = float(budget)
        runs = [run_once(model, args.device, budget, seed) for seed in range(args.repeats)]
        accs = [r["test_acc"] for r in runs]
        row = {
            "model": model, "budget": budget, "device": runs[0]["device"],
            "median": statistics.median(accs), "worst": min(accs), "best": max(accs),
            "epochs": statistics.median(r["epochs"] for r in runs),
            "steps": statistics.median(r["steps"] for r in runs),
            "train_s": statistics.median(r["train_seconds"] for r in runs),
            "wall_s": statistics.median(r["wall_seconds"] for r in runs),
            "load": max(r["load"] for r in runs),
            "command": runs[0]["command"].replace("--seed 0", "--seed K"),
        }
        rows.append(row)
        print(f"{model} {budget:g}s on {row['device']}: test_acc median {row['median']:.4f} "
              f"(worst {row['worst']:.4f}, best {row['best']:.4f}) over {len(runs)} seeds, "
              f"{row['epochs']:.2f} epochs", flush=True)

    if args.out:
        lines = [
            "# Training speed: test accuracy within a time budget", "",
            "Written by `python benchmarks/train_speed.py` (`make bench`). Each row is the median over "
            f"seeds 0..{args.repeats - 1} of a fresh CLI run; accuracy on the 10,000 MNIST test digits "
            "cut into quadrants (order 1234). The budget counts training steps only; data loading "
            "and the final evaluation come on top (`wall s` is the whole process). `load` is the "
            "highest 1-minute load average seen at the end of a run: above the core count, other "
            "processes shared the CPU and the run got fewer steps than a quiet machine gives.", "",
            *hardware(args.device), "",
            "| model | device | budget s | test acc (median) | worst | best | epochs | steps | train s | wall s | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(f"| {r['model']} | {r['device']} | {r['budget']:g} | {r['median']:.2%} | "
                         f"{r['worst']:.2%} | {r['best']:.2%} | {r['epochs']:.2f} | {r['steps']:.0f} | "
                         f"{r['train_s']:.1f} | {r['wall_s']:.1f} | {r['load']:.1f} |")
        lines += ["", "Commands:", ""] + [f"    {r['command']}" for r in rows] + [""]
        Path(args.out).write_text("\n".join(lines))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The GPU figures in one run: fast CNN-LSTM training, ConvLSTM speed, fold versus loop.

Needs only torch and this package (no gradio), so it runs on a bare GPU machine from a checkout:

    PYTHONPATH=. python3 benchmarks/gpu.py                   # writes benchmarks/gpu_<device>.md
    python benchmarks/gpu.py --quick                         # smoke test: tiny, prints, writes nothing

1. **Training** (the goal: >= 99.0 % test accuracy within 2 s of training on one H100). The CNN-LSTM
   of the course on MNIST quadrants, trained by ``cnnlstm_edu.train.fit`` as the CLI and the app
   do: the whole data set resident on the GPU, bf16 autocast, channels-last, fused AdamW,
   cuDNN's LSTM, a one-cycle learning rate laid over the time budget. A grid of batch sizes,
   peak learning rates and model widths, several seeds each; *first step -> end* is the wall
   time from the first training step to the end of training (the final evaluation starts
   there), process start, data loading and the evaluation excluded. Before the timed runs, a
   throwaway run per batch size loads the CUDA kernels and lets cuDNN pick its algorithms (the
   same start-up cost a process pays once).
2. **ConvLSTM**: ``benchmarks/convlstm_speed.py`` on this device (hoisted input convolution vs the
   per-step ``cat([x, h])`` reference; the goal is >= 1.5x in training).
3. **TimeDistributed**: fold versus loop over batch sizes and sequence lengths.
"""

from __future__ import annotations

import argparse
import itertools
import re
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing
import convlstm_speed  # noqa: E402
from common import hardware  # noqa: E402

from cnnlstm_edu.bench import fold_vs_loop, format_table  # noqa: E402
from cnnlstm_edu.data import load_mnist, quadrant_sequences  # noqa: E402
from cnnlstm_edu.models import build_model  # noqa: E402
from cnnlstm_edu.train import fit  # noqa: E402

WIDTHS = {"default": {}, "wide": {"channels": (32, 64), "hidden_size": 256}}


def train_once(data, device, budget: float, batch: int, lr: float, width: str, seed: int) -> dict:
    model = build_model("cnn_lstm", **WIDTHS[width])
    for event in fit(model, *data, time_budget=budget, batch_size=batch, lr=lr, device=device,
                     seed=seed, log_every=50, eval_every_epoch=False):
        if event.kind == "start":
            first = time.perf_counter()
        if event.kind == "step":       # the last one comes right after the final (synchronised) step
            last_step = time.perf_counter()
        if event.kind == "end":
            end = event
    return {"acc": end.test_acc, "train_s": end.seconds, "wall_s": last_step - first,
            "epochs": end.epoch, "steps": end.step}


def training_section(device, budget: float, batches, lrs, widths, seeds, quick: bool) -> tuple[str, list]:
    images, labels = load_mnist("train")
    test_images, test_labels = load_mnist("test")
    if quick:
        images, labels, test_images, test_labels = images[:512], labels[:512], test_images[:256], test_labels[:256]
    # Resident on the device from the start: a batch is then one index operation.
    data = ((quadrant_sequences(images).to(device), labels.to(device)),
            (quadrant_sequences(test_images).to(device), test_labels.to(device)))
    for batch in batches:   # warm-up: kernels loaded, cuDNN's algorithm chosen for these shapes
        for _ in fit(build_model("cnn_lstm"), *data, epochs=1.05, batch_size=batch, device=device,
                     eval_every_epoch=False):
            pass
    rows = []
    for width, batch, lr in itertools.product(widths, batches, lrs):
        runs = [train_once(data, device, budget, batch, lr, width, seed) for seed in range(seeds)]
        accs = [r["acc"] for r in runs]
        row = {"width": width, "batch": batch, "lr": lr, "median": statistics.median(accs),
               "worst": min(accs), "epochs": statistics.median(r["epochs"] for r in runs),
               "steps": statistics.median(r["steps"] for r in runs),
               "train_s": statistics.median(r["train_s"] for r in runs),
               "wall_s": max(r["wall_s"] for r in runs)}
        rows.append(row)
        print(f"train {width} batch {batch} lr {lr:g}: median {row['median']:.4f} worst {row['worst']:.4f} "
              f"{row['epochs']:.2f} epochs, first step -> end {row['wall_s']:.2f} s", flush=True)
    best = max(rows, key=lambda r: (r["worst"], r["median"]))
    lines = [
        f"## 1. CNN-LSTM on MNIST quadrants, {budget:g} s of training", "",
        f"Median and worst test accuracy (10,000 test digits) over seeds 0..{seeds - 1}; *first step -> end* "
        "is the largest over the seeds. Widths: default = conv (16, 32), LSTM 128; wide = conv (32, 64), "
        "LSTM 256.", "",
        "| width | batch | peak lr | test acc (median) | worst | epochs | steps | train s | first step -> end s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['width']} | {r['batch']} | {r['lr']:g} | {r['median']:.2%} | {r['worst']:.2%} | "
                     f"{r['epochs']:.2f} | {r['steps']:.0f} | {r['train_s']:.2f} | {r['wall_s']:.2f} |")
    goal = "met" if best["worst"] >= 0.99 and best["wall_s"] <= 2.0 else "NOT met"
    lines += ["", f"Best row: {best['width']}, batch {best['batch']}, lr {best['lr']:g}: worst seed "
              f"{best['worst']:.2%}, {best['wall_s']:.2f} s. Goal (>= 99.0 % within 2 s): **{goal}**.", ""]
    return "\n".join(lines), rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--budget", type=float, default=1.9, help="seconds of training per run")
    parser.add_argument("--batch", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--lr", type=float, nargs="+", default=[4e-3, 8e-3])
    parser.add_argument("--width", nargs="+", choices=sorted(WIDTHS), default=["default", "wide"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=None, help="default: benchmarks/gpu_<device name>.md")
    parser.add_argument("--quick", action="store_true", help="tiny runs, print only")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        if not args.quick:
            parser.error("no CUDA device here: run this on a GPU machine (--quick smoke-tests it on the CPU)")
        device = torch.device("cpu")
        print("no CUDA device: smoke-testing on the CPU", flush=True)
    if args.quick:
        args.budget, args.batch, args.lr, args.width, args.seeds = 0.5, [64], [4e-3], ["default"], 1

    train_md, _ = training_section(device, args.budget, args.batch, args.lr, args.width, args.seeds, args.quick)
    print(train_md, flush=True)

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    sizes, repeats, warmup = ((convlstm_speed.QUICK_SIZES, 1, 0) if args.quick else (convlstm_speed.SIZES, 7, 2))
    conv_rows = [convlstm_speed.bench_size(size, device, repeats, warmup) for size in sizes]
    conv_md = convlstm_speed.to_markdown(conv_rows, device, repeats, warmup, "python benchmarks/gpu.py")
    conv_md = "## 2. ConvLSTM speed\n" + conv_md.split("\n", 1)[1]     # its title becomes a section
    print(conv_md, flush=True)

    fold_md = []
    grid = ([2], [2]) if args.quick else ([1, 4, 16, 64, 256, 1024], [4, 16])
    for frame, backward in itertools.product([14] if args.quick else [14, 56], (False, True)):
        rows = fold_vs_loop(*grid, frame_size=frame, device=device, backward=backward,
                            min_time=0.01 if args.quick else 0.5)
        what = "forward + backward" if backward else "forward"
        fold_md.append(f"### {frame}x{frame} frames, {what}\n\n{format_table(rows)}\n")
    fold_text = "## 3. TimeDistributed, fold versus loop\n\n" + "\n".join(fold_md)
    print(fold_text, flush=True)

    if args.quick:
        return 0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    out = Path(args.out or HERE / f"gpu_{re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')}.md")
    text = "\n".join([f"# GPU figures: {name}", "",
                      "Generated by `PYTHONPATH=. python3 benchmarks/gpu.py` in one process.", "",
                      *hardware(device), "", train_md, conv_md, fold_text])
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

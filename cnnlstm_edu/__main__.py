"""Command line: ``python -m cnnlstm_edu train ...``.

    python -m cnnlstm_edu train --model cnn_lstm --time-budget 30
    python -m cnnlstm_edu train --model cnn_lstm --epochs 1 --device cpu --json
    python -m cnnlstm_edu trace --model cnn_lstm --depth 2

Progress goes to stderr under a tqdm bar; with ``--json`` the last line on stdout is one JSON
object with the run's results (``test_acc``, ``train_seconds``, ``epochs``, ``device``, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

__all__ = ["main"]


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    from .data.quadrants import QUADRANT_ORDERS
    from .models import MODELS

    parser = argparse.ArgumentParser(prog="python -m cnnlstm_edu", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model on MNIST quadrant sequences",
                                description="Train on the bundled MNIST, each digit cut into four "
                                            "14x14 quadrants read as a 4-step sequence.")
    train.add_argument("--model", choices=sorted(MODELS), default="cnn_lstm")
    train.add_argument("--order", default="1234",
                       help=f"quadrant order, a permutation of 1234 (the seed's: {', '.join(QUADRANT_ORDERS)})")
    train.add_argument("--epochs", type=_positive(float), default=None,
                       help="passes over the 60,000 training digits (may be fractional)")
    train.add_argument("--time-budget", type=_positive(float), default=None,
                       help="seconds of training; the learning-rate schedule is fitted to it")
    train.add_argument("--batch-size", type=_positive(int), default=128)
    train.add_argument("--lr", type=_positive(float), default=4e-3, help="peak learning rate")
    train.add_argument("--hidden-size", type=_positive(int), default=None, help="LSTM hidden units (ConvLSTM: hidden channels)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1 ...")
    train.add_argument("--threads", type=_positive(int), default=None, help="CPU threads for torch")
    train.add_argument("--save", metavar="PATH", default=None,
                       help="write the trained model as a safetensors checkpoint")
    train.add_argument("--json", action="store_true", help="print the results as one JSON line last")

    trace = commands.add_parser("trace", help="print the shape trace of a built-in model",
                                description="Run a model once on random frames (B, T, C, H, W) and "
                                            "print every module's input and output shapes, axes named.")
    trace.add_argument("--model", choices=sorted(MODELS), default="cnn_lstm")
    trace.add_argument("--batch", type=_positive(int), default=2, help="B: clips in the batch")
    trace.add_argument("--steps", type=_positive(int), default=4, help="T: frames per clip")
    trace.add_argument("--depth", type=int, default=None, help="show modules at most this deep (0: the model)")
    return parser


def train_command(args: argparse.Namespace) -> dict:
    import torch
    from tqdm.auto import tqdm

    from . import save_checkpoint
    from .data import load_mnist, quadrant_sequences
    from .models import MODELS, build_model
    from .train import fit

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.epochs is None and args.time_budget is None:
        args.epochs = 2.0
    t_load = time.perf_counter()
    train_images, train_labels = load_mnist("train")
    test_images, test_labels = load_mnist("test")
    train = (quadrant_sequences(train_images, args.order), train_labels)   # (60000, 4, 1, 14, 14)
    test = (quadrant_sequences(test_images, args.order), test_labels)      # (10000, 4, 1, 14, 14)
    load_seconds = time.perf_counter() - t_load

    config = {}
    if args.hidden_size:   # the LSTM's hidden_size, or the ConvLSTM's hidden_channels
        _, config_cls = MODELS[args.model]
        hidden = "hidden_size" if "hidden_size" in config_cls.__dataclass_fields__ else "hidden_channels"
        config[hidden] = args.hidden_size
    model = build_model(args.model, **config)
    n_params = sum(p.numel() for p in model.parameters())

    # The bar counts seconds when the run is limited by time, steps otherwise.
    by_time = args.time_budget is not None
    bar = tqdm(total=args.time_budget if by_time else None, unit="s" if by_time else "step",
               file=sys.stderr, disable=None, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s [{elapsed}{postfix}]" if by_time else None)
    history = []
    last = None
    for event in fit(model, train, test, epochs=args.epochs, time_budget=args.time_budget,
                     batch_size=args.batch_size, lr=args.lr, device=args.device, seed=args.seed):
        if event.kind == "start":
            bar.set_description(f"{args.model} on {event.device}")
            if event.total_steps and not by_time:
                bar.total = event.total_steps
        elif event.kind == "step":
            bar.update((event.seconds if by_time else event.step) - bar.n)
            bar.set_postfix(epoch=f"{event.epoch:.2f}", loss=f"{event.loss:.3f}",
                            acc=f"{event.accuracy:.3f}", refresh=False)
        elif event.kind == "eval":
            bar.write(f"epoch {event.epoch:.0f}: test_acc={event.test_acc:.4f} "
                      f"test_loss={event.test_loss:.4f} ({event.seconds:.1f}s)", file=sys.stderr)
            history.append({"epoch": event.epoch, "seconds": round(event.seconds, 2),
                            "test_acc": event.test_acc})
        last = event
    bar.close()

    result = {
        "model": args.model, "order": args.order, "test_acc": last.test_acc,
        "test_loss": last.test_loss, "train_seconds": round(last.seconds, 3),
        "epochs": round(last.epoch, 4), "steps": last.step, "device": last.device,
        "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
        "threads": torch.get_num_threads(), "parameters": n_params,
        "load_seconds": round(load_seconds, 3), "history": history,
        "torch": torch.__version__,
    }
    if args.save:
        save_checkpoint(model, args.save, order=args.order, test_acc=last.test_acc)
        result["saved"] = args.save
    print(f"test accuracy {last.test_acc:.2%} after {last.seconds:.1f}s of training "
          f"({last.epoch:.2f} epochs, {last.step} steps) on {last.device}", file=sys.stderr)
    return result


def trace_command(args: argparse.Namespace) -> str:
    import torch

    from .models import build_model
    from .trace import trace_shapes

    model = build_model(args.model)
    config = model.config
    frames = torch.randn(args.batch, args.steps, config.in_channels, config.frame_size, config.frame_size)
    return str(trace_shapes(model, frames, depth=args.depth))  # (B, T, C, H, W) through every module


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "trace":
        print(trace_command(args))
    if args.command == "train":
        try:
            result = train_command(args)
        except ValueError as e:          # bad options reach the user as one line, not a traceback
            print(f"error: {e}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

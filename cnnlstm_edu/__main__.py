"""Command line: ``python -m cnnlstm_edu train ...``.

    python -m cnnlstm_edu train --model cnn_lstm --time-budget 30
    python -m cnnlstm_edu train --model cnn_lstm --epochs 1 --device cpu --json
    python -m cnnlstm_edu trace --model cnn_lstm --depth 2
    python -m cnnlstm_edu bench --batch 1 8 64 --steps 4 16 --device cpu

Progress goes to stderr under a tqdm bar; with ``--json`` the last line on stdout is one JSON
object with the run's results (``test_acc``, ``train_seconds``, ``epochs``, ``device``, ...).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .checks import check_number

__all__ = ["main"]


def _number(*, integer: bool = False, low: float | None = None, high: float | None = None,
            low_open: bool = False):
    """An argparse ``type`` for a number flag, checked by :func:`~cnnlstm_edu.checks.check_number`.

    NaN and infinities are refused here, before anything runs: ``--time-budget nan`` would train
    forever and ``--lr inf`` would print ``Infinity``, which is not JSON.
    """
    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            value = text                 # check_number names what it accepts and what came
        try:
            return check_number(value, "value", integer=integer, low=low, high=high, low_open=low_open)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = "whole number" if integer else "number"   # argparse names the type in errors
    return parse


_positive_int = _number(integer=True, low=1)
_positive_float = _number(low=0, low_open=True)
_non_negative_float = _number(low=0)
_probability = _number(low=0, high=1)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (the usage block hid the message)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .data.quadrants import QUADRANT_ORDERS
    from .models import MODELS

    parser = _Parser(prog="python -m cnnlstm_edu", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train", help="train a model (MNIST quadrant classifiers, Moving-MNIST next-frame)",
        description="Train on the bundled MNIST: classifiers read each digit as four 14x14 "
                    "quadrants, a 4-step sequence; next_frame forecasts Moving-MNIST videos.")
    train.add_argument("--model", choices=sorted(MODELS), default="cnn_lstm")
    train.add_argument("--order", default="1234",
                       help=f"quadrant order, a permutation of 1234 (the seed's: {', '.join(QUADRANT_ORDERS)})")
    train.add_argument("--epochs", type=_positive_float, default=None,
                       help="passes over the training set (may be fractional)")
    train.add_argument("--time-budget", type=_positive_float, default=None,
                       help="seconds of training; the learning-rate schedule is fitted to it")
    train.add_argument("--batch-size", type=_positive_int, default=None,
                       help="default: 128 for classifiers, 32 for next_frame")
    train.add_argument("--lr", type=_positive_float, default=None,
                       help="peak learning rate (default: 4e-3 for classifiers, 3e-3 for next_frame)")
    train.add_argument("--hidden-size", type=_positive_int, default=None, help="LSTM hidden units (ConvLSTM: hidden channels)")
    train.add_argument("--seed", type=_number(integer=True, low=0), default=0)
    train.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1 ...")
    train.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    tricks = train.add_argument_group("training tricks (seed 003)")
    tricks.add_argument("--dropout", type=_number(low=0, high=1), default=None,
                        help="dropout on the recurrent layer's input and output, and between stacked layers")
    tricks.add_argument("--weight-decay", type=_non_negative_float, default=0.0, help="weight decay on everything but the recurrent weights")
    tricks.add_argument("--lstm-weight-decay", type=_non_negative_float, default=0.0,
                        help="weight decay on the recurrent layers' weights only (never biases, never the CNN)")
    tricks.add_argument("--clip-grad", type=_positive_float, default=None, metavar="NORM",
                        help="clip the global gradient norm to NORM")
    tricks.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw",
                        help="sgd (momentum 0.9) shows exploding gradients and clipping most plainly")
    tricks.add_argument("--curriculum", type=_positive_int, nargs="?", const=1, default=None, metavar="UNROLL",
                        help="Re3 unroll curriculum starting at UNROLL steps (default 1): double the "
                             "unroll and halve the batch at each validation plateau")
    feed = tricks.add_mutually_exclusive_group()
    feed.add_argument("--teacher-forcing", dest="sampling", action="store_const", const="teacher_forcing",
                      help="next_frame: always feed the true previous frame in training")
    feed.add_argument("--scheduled-sampling", dest="sampling", action="store_const", const="scheduled",
                      help="next_frame: feed the model's own previous output with a rising probability")
    tricks.add_argument("--sampling-max", type=_probability, default=0.5,
                        help="the probability scheduled sampling rises to (default 0.5)")
    train.add_argument("--save", metavar="PATH", default=None,
                       help="write the trained model as a safetensors checkpoint")
    train.add_argument("--json", action="store_true", help="print the results as one JSON line last")

    trace = commands.add_parser("trace", help="print the shape trace of a built-in model",
                                description="Run a model once on random frames (B, T, C, H, W) and "
                                            "print every module's input and output shapes, axes named.")
    trace.add_argument("--model", choices=sorted(MODELS), default="cnn_lstm")
    trace.add_argument("--batch", type=_positive_int, default=2, help="B: clips in the batch")
    trace.add_argument("--steps", type=_positive_int, default=4, help="T: frames per clip")
    trace.add_argument("--depth", type=_number(integer=True, low=0), default=None, help="show modules at most this deep (0: the model)")

    bench = commands.add_parser("bench", help="time TimeDistributed's fold and loop modes on this machine",
                                description="Time a frame CNN applied to every frame of (B, T, C, H, W) "
                                            "by folding time into the batch and by looping over steps.")
    bench.add_argument("--batch", type=_positive_int, nargs="+", default=[1, 8, 64, 256], help="batch sizes B")
    bench.add_argument("--steps", type=_positive_int, nargs="+", default=[4, 16], help="sequence lengths T")
    bench.add_argument("--frame", type=_positive_int, default=28, help="frame size H = W")
    bench.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda ...")
    bench.add_argument("--backward", action="store_true", help="time forward + backward, as in training")
    return parser


# Per model: the data it learns from and the defaults that train it well on a CPU.
DEFAULTS = {
    "cnn_lstm": {"batch_size": 128, "lr": 4e-3, "epochs": 2.0},
    "cnn_convlstm": {"batch_size": 128, "lr": 4e-3, "epochs": 2.0},
    "next_frame": {"batch_size": 32, "lr": 3e-3, "time_budget": 120.0},
}


def load_data(args: argparse.Namespace):
    """(train, test, objective) for ``args.model``."""
    if args.model == "next_frame":
        from .data.moving_mnist import moving_mnist
        from .models.next_frame import NextFrameObjective

        # Test videos use MNIST's test digits and their own seed: nothing seen in training.
        train = (moving_mnist(12000, split="train", seed=args.seed), None)   # (N, 10, 1, 32, 32)
        test = (moving_mnist(1000, split="test", seed=10_000 + args.seed), None)
        return train, test, NextFrameObjective(context=5, horizon=5)
    from .data import load_mnist, quadrant_sequences

    train_images, train_labels = load_mnist("train")
    test_images, test_labels = load_mnist("test")
    train = (quadrant_sequences(train_images, args.order), train_labels)   # (60000, 4, 1, 14, 14)
    test = (quadrant_sequences(test_images, args.order), test_labels)      # (10000, 4, 1, 14, 14)
    return train, test, None


@contextmanager
def _ctrl_c_stops(stop: threading.Event) -> Iterator[None]:
    """Within the block, the first Ctrl-C sets ``stop`` instead of raising KeyboardInterrupt:
    ``fit`` then ends after the current step, measures the model on the test set and hands it
    back, so the run is reported and saved. A second Ctrl-C interrupts at once."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is signal.SIG_IGN:
        yield                        # only the main thread can catch signals
        return

    def first_ctrl_c(signum, frame):
        stop.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, first_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def train_command(args: argparse.Namespace) -> dict:
    import torch
    from tqdm.auto import tqdm

    from .checkpoint import check_writable, save_checkpoint
    from .models import MODELS, build_model
    from .train import Curriculum, fit

    if args.save is not None:
        # Checked before training, not after: a typo must not cost the run.
        try:
            check_writable(args.save)
        except (OSError, ValueError) as e:
            raise ValueError(f"--save {args.save!r}: {e}") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    defaults = DEFAULTS[args.model]
    batch_size = args.batch_size or defaults["batch_size"]
    lr = args.lr or defaults["lr"]
    epochs, budget = args.epochs, args.time_budget
    if epochs is None and budget is None:
        epochs, budget = defaults.get("epochs"), defaults.get("time_budget")

    config = {}
    _, config_cls = MODELS[args.model]
    if args.hidden_size:   # the LSTM's hidden_size, or the ConvLSTM's hidden_channels
        config["hidden_size" if "hidden_size" in config_cls.__dataclass_fields__ else "hidden_channels"] = args.hidden_size
    if args.dropout is not None:
        if "dropout" not in config_cls.__dataclass_fields__:
            raise ValueError(f"--dropout: the {args.model} model has no dropout option")
        config["dropout"] = args.dropout
    model = build_model(args.model, **config)
    n_params = sum(p.numel() for p in model.parameters())

    t_load = time.perf_counter()
    train, test, objective = load_data(args)
    load_seconds = time.perf_counter() - t_load

    # The bar counts seconds when the run is limited by time, steps otherwise.
    by_time = budget is not None
    bar = tqdm(total=budget if by_time else None, unit="s" if by_time else "step",
               file=sys.stderr, disable=None, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s [{elapsed}{postfix}]" if by_time else None)
    history, curriculum_log, norm_max = [], [], 0.0
    start = last = None
    stop = threading.Event()          # set by Ctrl-C: fit ends after the current step
    events = fit(model, train, test, epochs=epochs, time_budget=budget, batch_size=batch_size, lr=lr,
                 weight_decay=args.weight_decay, recurrent_weight_decay=args.lstm_weight_decay,
                 clip_grad=args.clip_grad, optimizer=args.optimizer,
                 curriculum=Curriculum(start_unroll=args.curriculum) if args.curriculum else None,
                 sampling=args.sampling, sampling_max=args.sampling_max, objective=objective,
                 device=args.device, seed=args.seed, stop=stop)
    with _ctrl_c_stops(stop):
        for event in events:
            if event.kind == "start":
                start = event
                bar.set_description(f"{args.model} on {event.device}")
                bar.write(f"training {args.model} on {event.device}; Ctrl-C stops and keeps the model",
                          file=sys.stderr)
                if event.total_steps and not by_time:
                    bar.total = event.total_steps
            elif event.kind == "step":
                bar.update((event.seconds if by_time else event.step) - bar.n)
                norm_max = max(norm_max, event.grad_norm_max)
                postfix = {"epoch": f"{event.epoch:.2f}", "loss": f"{event.loss:.3f}"}
                if event.accuracy == event.accuracy:                     # not NaN: a classifier
                    postfix["acc"] = f"{event.accuracy:.3f}"
                if event.unroll is not None:
                    postfix.update(unroll=event.unroll, batch=event.batch_size)
                bar.set_postfix(postfix, refresh=False)
            elif event.kind == "curriculum":
                bar.write(f"plateau at step {event.step}: unroll {event.unroll}, batch {event.batch_size}, "
                          f"sampling p {event.sampling_p:.2f}", file=sys.stderr)
                curriculum_log.append({"step": event.step, "unroll": event.unroll,
                                       "batch_size": event.batch_size, "sampling_p": event.sampling_p})
            elif event.kind == "eval":
                bar.write(f"epoch {event.epoch:.0f}: test_loss={event.test_loss:.4f}"
                          + (f" test_acc={event.test_acc:.4f}" if event.test_acc == event.test_acc else "")
                          + f" ({event.seconds:.1f}s)", file=sys.stderr)
                history.append({"epoch": event.epoch, "seconds": round(event.seconds, 2),
                                "test_loss": event.test_loss, "test_acc": event.test_acc})
            last = event
    bar.close()

    result = {
        "model": args.model, "test_acc": last.test_acc, "test_loss": last.test_loss,
        **last.extra["test"], "train_seconds": round(last.seconds, 3),
        "epochs": round(last.epoch, 4), "steps": last.step, "device": last.device,
        "batch_size": batch_size, "lr": lr, "seed": args.seed, "optimizer": args.optimizer,
        "clip_grad": args.clip_grad, "max_grad_norm": norm_max, "sampling": args.sampling,
        "param_groups": [{k: g[k] for k in ("name", "weight_decay", "parameters")}
                         for g in start.extra["param_groups"]],
        "curriculum": curriculum_log if args.curriculum else None,
        "threads": torch.get_num_threads(), "parameters": n_params,
        "load_seconds": round(load_seconds, 3), "history": history, "torch": torch.__version__,
        "stopped": last.extra["stopped"],
    }
    if args.model != "next_frame":
        result["order"] = args.order
    if args.save:
        save_checkpoint(model, args.save, order=args.order, test_acc=last.test_acc)
        result["saved"] = args.save
    if "test_mse" in last.extra["test"]:
        m = last.extra["test"]
        summary = f"test MSE {m['test_mse']:.5f} vs copy-last {m['copy_last_mse']:.5f} (ratio {m['ratio']:.3f})"
    else:
        summary = f"test accuracy {last.test_acc:.2%}"
    if result["stopped"]:
        summary = f"stopped by Ctrl-C: {summary}"
    print(f"{summary} after {last.seconds:.1f}s of training ({last.epoch:.2f} epochs, {last.step} "
          f"steps) on {last.device}", file=sys.stderr)
    return result


def trace_command(args: argparse.Namespace) -> str:
    import torch

    from .models import build_model
    from .trace import trace_shapes

    model = build_model(args.model)
    config = model.config
    frames = torch.randn(args.batch, args.steps, config.in_channels, config.frame_size, config.frame_size)
    return str(trace_shapes(model, frames, depth=args.depth))  # (B, T, C, H, W) through every module


def bench_command(args: argparse.Namespace) -> str:
    from .bench import fold_vs_loop, format_table
    from .train import device_name, resolve_device

    device = resolve_device(args.device)
    rows = fold_vs_loop(args.batch, args.steps, frame_size=args.frame, device=device, backward=args.backward)
    what = "forward + backward" if args.backward else "forward"
    return f"TimeDistributed(FrameCNN) on {args.frame}x{args.frame} frames, {what}, {device_name(device)}\n" \
           + format_table(rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "trace":
        print(trace_command(args))
    if args.command == "bench":
        print(bench_command(args))
    if args.command == "train":
        try:
            result = train_command(args)
        except ValueError as e:          # bad options reach the user as one line, not a traceback
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:        # before training began, or a second Ctrl-C
            print("interrupted: the run was not finished, nothing was saved", file=sys.stderr)
            return 130
        if args.json:
            # NaN is not JSON: a metric the model does not have (a forecaster's accuracy) is null.
            print(json.dumps({k: None if isinstance(v, float) and v != v else v for k, v in result.items()}))
        if result["stopped"]:
            return 130                   # the shell's code for "ended by Ctrl-C": not the run asked for
    return 0


if __name__ == "__main__":
    sys.exit(main())

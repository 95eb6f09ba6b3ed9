"""``python -m cnnlstm_edu train``: build a model, load its data, run ``fit``, report and save.

The command is a few small steps: the options become a model and a :class:`TrainConfig`;
``fit``'s events go to a progress bar (:class:`_Progress`); the last event becomes the JSON
result. The first Ctrl-C stops training after the current step, and the run is still
measured, reported and saved; a second one interrupts at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .clips import (CLIP_DEFAULTS, backbone_weights, check_clip_options, clip_fields, clip_result,
                    per_class_accuracy, read_clips, setting, training_data)
from .tasks import TASKS, check_task, load_task

__all__ = ["DEFAULTS", "TASK_DEFAULTS", "load_data", "train_command"]

# Per model: the defaults that train it well on a CPU.
_CLASSIFIER = {"batch_size": 128, "lr": 4e-3, "epochs": 2.0}
DEFAULTS = {
    "cnn_lstm": _CLASSIFIER, "cnn_convlstm": _CLASSIFIER, "whole_image": _CLASSIFIER,
    "frame_average": _CLASSIFIER, "last_frame": _CLASSIFIER, "conv3d": _CLASSIFIER,
    "next_frame": {"batch_size": 32, "lr": 3e-3, "time_budget": 120.0},
    "tracker": {"batch_size": 32, "lr": 3e-3, "time_budget": 300.0},   # issue 15's budget for track
}
# Per task, what overrides the model's defaults: 10,000 short clips learn best in small batches
# (benchmarks/baselines.md: a CNN-LSTM learns direction in about 100 steps of 32 clips).
TASK_DEFAULTS = {"direction": {"batch_size": 32}, "first_digit": {"batch_size": 32}}


def load_data(args: argparse.Namespace):
    """(train, test, objective) for ``args.model`` on ``args.task``."""
    if args.model == "next_frame":
        from ..data.moving_mnist import moving_mnist
        from ..models.next_frame import NextFrameObjective

        # Test videos use MNIST's test digits and their own seed: nothing seen in training.
        train = (moving_mnist(12000, split="train", seed=args.seed), None)   # (N, 10, 1, 32, 32)
        test = (moving_mnist(1000, split="test", seed=10_000 + args.seed), None)
        return train, test, NextFrameObjective(context=5, horizon=5)
    return load_task(args.task, args.order)


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


def _check_save(path: str | None) -> None:
    """Before training, not after: a typo in --save must not cost the run."""
    from ..checkpoint import check_writable

    if path is not None:
        try:
            check_writable(path)
        except (OSError, ValueError) as e:
            raise ValueError(f"--save {path!r}: {e}") from None


def _build_model(args: argparse.Namespace, clips: dict | None = None, weights=None):
    """The model the flags ask for, built for the task's clips (or, with ``--data``, for the
    folder's: ``clips`` holds its frame size, channels, classes and frame CNN)."""
    from ..models import MODELS, build_model

    model_class, config_class = MODELS[args.model]
    fields = config_class.__dataclass_fields__
    task = TASKS[args.task]
    config = {}
    if clips is not None:
        config.update(clips)
    elif args.model not in ("next_frame", "tracker", "whole_image"):   # built for the task's clips
        config.update(frame_size=task.frame_size, num_classes=task.num_classes)
    if args.hidden_size:   # the LSTM's hidden_size, or the ConvLSTM's hidden_channels
        size = [name for name in ("hidden_size", "hidden_channels") if name in fields]
        if not size:
            raise ValueError(f"--hidden-size: the {args.model} model has no recurrent layer to size")
        config[size[0]] = args.hidden_size
    if args.dropout is not None:
        if "dropout" not in fields:
            raise ValueError(f"--dropout: the {args.model} model has no dropout option")
        config["dropout"] = args.dropout
    if weights is not None:      # a torchvision frame CNN's pretrained weights (cnn_lstm only)
        return model_class(config_class(**config), weights=weights)
    return build_model(args.model, **config)


def _check_clip_model(args: argparse.Namespace) -> None:
    """Build the model ``--data`` asks for on the meta device (no memory, no weights), for clips
    of ``--size`` (or 64x64 until the clips say) and 2 classes: a flag the model refuses is
    refused now, not after the folder is decoded."""
    import torch

    size = args.size or [64]
    fields = clip_fields(args, size * 2 if len(size) == 1 else size, args.channels or 1, 2)
    try:
        with torch.device("meta"):
            _build_model(args, fields)
    except ValueError as e:
        if str(e).startswith("--") or not args.size:
            raise
        raise ValueError(f"--size {' '.join(map(str, args.size))}: {e}") from None


def _clip_model(args: argparse.Namespace, clips):
    """The model for the clips of ``--data``: their frame size and channels, one output per class."""
    import torch

    backbone = setting(args, "backbone")
    weights = None if backbone in ("scratch", "mnist") else backbone_weights(backbone)
    fields = clip_fields(args, clips.settings["size"], clips.settings["channels"], len(clips.classes))
    torch.manual_seed(args.seed)              # the same seed, the same initial weights, on every rank
    return _build_model(args, fields, weights)


def _train_config(args: argparse.Namespace):
    """The flags as a TrainConfig, with the model's (and task's) defaults where a flag was left out."""
    from ..train import TrainConfig
    from .tasks import curriculum_for

    defaults = {**DEFAULTS[args.model], **TASK_DEFAULTS.get(args.task, {})}
    if args.data is not None:
        defaults = CLIP_DEFAULTS
    epochs, budget = args.epochs, args.time_budget
    if epochs is None and budget is None:
        epochs, budget = defaults.get("epochs"), defaults.get("time_budget")
    # A bare --curriculum (0) starts where Re3 did on its task, with the task's plateau test.
    curriculum = curriculum_for(args.task, args.curriculum) if args.curriculum is not None else None
    return TrainConfig(
        epochs=epochs, time_budget=budget, batch_size=args.batch_size or defaults["batch_size"],
        lr=args.lr or defaults["lr"], weight_decay=args.weight_decay,
        recurrent_weight_decay=args.lstm_weight_decay, clip_grad=args.clip_grad, optimizer=args.optimizer,
        curriculum=curriculum, sampling=args.sampling, sampling_max=args.sampling_max, device=args.device,
        seed=args.seed)


class _Progress:
    """Shows ``fit``'s events under a tqdm bar on stderr and keeps what the result reports."""

    def __init__(self, model_name: str, budget: float | None, quiet: bool = False) -> None:
        from tqdm.auto import tqdm

        # The bar counts seconds when the run is limited by time, steps otherwise. A quiet one
        # (a rank other than 0) shows nothing and only keeps the last event.
        self.model_name, self.by_time, self.quiet = model_name, budget is not None, quiet
        self.bar = tqdm(total=budget, unit="s" if self.by_time else "step", file=sys.stderr,
                        disable=True if quiet else None,
                        dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s [{elapsed}{postfix}]" if self.by_time else None)
        self.history, self.curriculum, self.norm_max, self.start, self.last = [], [], 0.0, None, None

    def show(self, event) -> None:
        bar, self.last = self.bar, event
        if self.quiet:
            return
        if event.kind == "start":
            self.start = event
            bar.set_description(f"{self.model_name} on {event.device}")
            bar.write(f"training {self.model_name} on {event.device}; Ctrl-C stops and keeps the model",
                      file=sys.stderr)
            if event.total_steps and not self.by_time:
                bar.total = event.total_steps
        elif event.kind == "step":
            bar.update((event.seconds if self.by_time else event.step) - bar.n)
            self.norm_max = max(self.norm_max, event.grad_norm_max)
            postfix = {"epoch": f"{event.epoch:.2f}", "loss": f"{event.loss:.3f}"}
            if event.accuracy == event.accuracy:                     # not NaN: a classifier
                postfix["acc"] = f"{event.accuracy:.3f}"
            if event.unroll is not None:
                postfix.update(unroll=event.unroll, batch=event.batch_size)
            bar.set_postfix(postfix, refresh=False)
        elif event.kind == "curriculum":
            bar.write(f"plateau at step {event.step}: unroll {event.unroll}, batch {event.batch_size}, "
                      f"sampling p {event.sampling_p:.2f}", file=sys.stderr)
            self.curriculum.append({"step": event.step, "unroll": event.unroll,
                                    "batch_size": event.batch_size, "sampling_p": event.sampling_p})
        elif event.kind == "eval":
            iou = event.extra["test"].get("test_iou")             # a tracker's
            bar.write(f"epoch {event.epoch:.0f}: test_loss={event.test_loss:.4f}"
                      + (f" test_acc={event.test_acc:.4f}" if event.test_acc == event.test_acc else "")
                      + (f" test_iou={iou:.4f}" if iou is not None else "")
                      + f" ({event.seconds:.1f}s)", file=sys.stderr)
            self.history.append({"epoch": event.epoch, "seconds": round(event.seconds, 2),
                                 "test_loss": event.test_loss, "test_acc": event.test_acc,
                                 **({"test_iou": iou} if iou is not None else {})})


def _result(args: argparse.Namespace, config, progress: _Progress, n_params: int, load_seconds: float) -> dict:
    import torch

    last = progress.last
    result = {
        "model": args.model, "test_acc": last.test_acc, "test_loss": last.test_loss,
        **last.extra["test"], "train_seconds": round(last.seconds, 3),
        "epochs": round(last.epoch, 4), "steps": last.step, "device": last.device,
        "batch_size": config.batch_size, "lr": config.lr, "seed": args.seed, "optimizer": args.optimizer,
        "clip_grad": args.clip_grad, "max_grad_norm": progress.norm_max, "sampling": args.sampling,
        "param_groups": [{k: g[k] for k in ("name", "weight_decay", "parameters")}
                         for g in progress.start.extra["param_groups"]],
        "curriculum": progress.curriculum if args.curriculum is not None else None,
        "threads": torch.get_num_threads(), "parameters": n_params,
        "load_seconds": round(load_seconds, 3), "history": progress.history, "torch": torch.__version__,
        "stopped": last.extra["stopped"],
    }
    if args.ddp:        # the batch above is the global one, shared by the ranks
        result.update(world_size=progress.start.extra["world_size"], sync_batchnorm=args.sync_bn)
    if args.model == "next_frame":
        result["task"] = "moving_mnist"       # its own data, whatever --task says (only quadrants passes)
        return result
    if args.data is not None:                 # the caller adds the folder's keys (clip_result)
        return result
    if args.task == "quadrants":
        result["order"] = args.order
    result["task"] = args.task
    if TASKS[args.task].num_classes:         # a classifier's accuracy means something only beside this
        result["chance"] = 1 / TASKS[args.task].num_classes
    return result


def _summary(last) -> str:
    if "test_mse" in last.extra["test"]:
        m = last.extra["test"]
        summary = f"test MSE {m['test_mse']:.5f} vs copy-last {m['copy_last_mse']:.5f} (ratio {m['ratio']:.3f})"
    elif "test_iou" in last.extra["test"]:
        m = last.extra["test"]
        summary = (f"free-running test IoU {m['test_iou']:.3f}, baseline {m['baseline_iou']:.3f} "
                   f"(static box {m['static_iou']:.3f}, constant "
                   f"velocity {m['velocity_iou']:.3f})")
    else:
        summary = f"test accuracy {last.test_acc:.2%}"
    stopped = "stopped by Ctrl-C: " if last.extra["stopped"] else ""
    return (f"{stopped}{summary} after {last.seconds:.1f}s of training ({last.epoch:.2f} epochs, "
            f"{last.step} steps) on {last.device}")


def _checkpoint_info(args: argparse.Namespace, last, clips=None) -> dict:
    """What the checkpoint keeps about the run: the quadrant order, or the task, and its score;
    for a folder of clips, the class names and how the clips were read (``predict`` needs them)."""
    if clips is not None:
        from ..checkpoint import clip_info

        # class_names: where deploy.export_onnx looks for the names of the outputs
        return {"task": "clips", "test_acc": last.test_acc, "class_names": clips.classes,
                "clips": clip_info(clips.classes, clips.settings, setting(args, "backbone"), args.freeze)}
    if args.task == "quadrants":
        return {"order": args.order, "test_acc": last.test_acc}
    if args.task == "track":
        return {"task": "track", "test_iou": last.extra["test"]["test_iou"]}
    return {"task": args.task, "test_acc": last.test_acc}


def _torchrun(args: argparse.Namespace):
    """The ranks torchrun announced, or None for a plain run; refuses a mix of the two."""
    from ..train.distributed import DistributedError, torchrun_ranks

    try:
        ranks = torchrun_ranks()
    except DistributedError as e:
        raise ValueError(str(e)) from None
    if args.ddp and ranks is None:
        raise ValueError("--ddp runs as one of several processes started by torchrun, e.g. torchrun "
                         "--standalone --nproc_per_node=2 -m cnnlstm_edu train --ddp ...; this one was "
                         "started alone (no RANK or WORLD_SIZE in its environment)")
    if ranks is not None and not args.ddp and ranks.world_size > 1:
        raise ValueError(f"torchrun started {ranks.world_size} processes, but without --ddp each would "
                         "train its own model on all the data and print and save the same file: add --ddp")
    if args.sync_bn and not args.ddp:
        raise ValueError("--sync-bn shares BatchNorm's statistics between the processes of a --ddp run; "
                         "one process already normalises over the whole batch: add --ddp or leave it out")
    return ranks if args.ddp else None


@contextmanager
def _process_group(args: argparse.Namespace, ranks) -> Iterator:
    """The block as one rank of torchrun's group (left at the end), or alone: yields the Ranks.

    A rank that loses the others ends with one line saying so, and exit code 1, not a hang:
    every wait is bounded by --ddp-timeout, and a dead peer is noticed at once."""
    from ..train.distributed import DistributedError, Ranks, process_group

    if ranks is None:
        yield Ranks()
        return
    try:
        with process_group(args.device, args.ddp_timeout, ranks=ranks) as joined:
            yield joined
    except DistributedError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None


def train_command(args: argparse.Namespace) -> dict | None:
    """Run ``train``; returns the result that ``--json`` prints (None on a rank other than 0).

    With ``--ddp`` under torchrun every rank runs this; each trains on its shard of each batch,
    and rank 0 alone prints, writes the JSON and saves."""
    import torch

    from ..checkpoint import save_checkpoint
    from ..train import fit
    from ..train.distributed import rank_zero_first

    torchrun = _torchrun(args)
    check_task(args.model, args.task, args.sampling, args.order)
    check_clip_options(args)
    _check_save(args.save)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = dataclasses.replace(_train_config(args), ddp=args.ddp, sync_batchnorm=args.sync_bn)
    clips = None
    if args.data is None:
        # --seed fixes the initial weights too: the same seed, the same run, with 1 process or N
        # (under --ddp every rank starts from rank 0's weights anyway).
        torch.manual_seed(args.seed)
        model = _build_model(args)
    else:                                     # sized by the clips, once read; its flags checked now
        _check_clip_model(args)
    with _process_group(args, torchrun) as ranks:
        t_load = time.perf_counter()
        with rank_zero_first(ranks):          # rank 0 fills a cache of decoded clips; the others read it
            if args.data is None:
                train, test, objective = load_data(args)
                net = model
            else:
                clips = read_clips(args)
                model = _clip_model(args, clips)
                net, train, test, objective = training_data(args, model, clips)   # net: what trains
        load_seconds = time.perf_counter() - t_load
        n_params = sum(p.numel() for p in model.parameters())

        progress, stop = _Progress(args.model, config.time_budget, quiet=not ranks.main), threading.Event()
        with _ctrl_c_stops(stop):
            for event in fit(net, train, test, config=config, objective=objective, stop=stop):
                progress.show(event)
        progress.bar.close()
        if not ranks.main:                    # rank 0 alone reports: None tells main() to print nothing
            return None
        result = _result(args, config, progress, n_params, load_seconds)
        if clips is not None:
            result.update(clip_result(args, clips, per_class_accuracy(net, test, clips.classes)))
        if args.save:
            save_checkpoint(model, args.save, **_checkpoint_info(args, progress.last, clips))
            result["saved"] = args.save
    print(_summary(progress.last), file=sys.stderr)
    return result

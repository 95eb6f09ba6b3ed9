"""The command line's arguments: every number flag checked before anything runs."""

from __future__ import annotations

import argparse

from ..checks import check_number

__all__ = ["build_parser"]


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
    parser = _Parser(prog="python -m cnnlstm_edu", description="Command line: python -m cnnlstm_edu train ...")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train(commands)
    _add_trace(commands)
    _add_bench(commands)
    _add_export(commands)
    _add_predict(commands)
    return parser


def _add_train(commands) -> None:
    from ..data.quadrants import QUADRANT_ORDERS
    from ..models import MODELS

    from .tasks import TASKS

    train = commands.add_parser(
        "train", help="train a model on a task made from the bundled MNIST",
        description="Train on the bundled MNIST. --task quadrants (the default): classifiers read each "
                    "digit as four 14x14 quadrants, a 4-step sequence; direction and first_digit: "
                    "clips where the answer is in the order of the frames; track: follow a digit's "
                    "box (--model tracker). next_frame forecasts Moving-MNIST videos.")
    train.add_argument("--model", choices=sorted(MODELS), default="cnn_lstm")
    train.add_argument("--task", choices=list(TASKS), default="quadrants",
                       help="; ".join(f"{t.name}: {t.what}" for t in TASKS.values()))
    train.add_argument("--order", default="1234",
                       help=f"quadrant order, a permutation of 1234 (the seed's: {', '.join(QUADRANT_ORDERS)})")
    train.add_argument("--epochs", type=_positive_float, default=None,
                       help="passes over the training set (may be fractional)")
    train.add_argument("--time-budget", type=_positive_float, default=None,
                       help="seconds of training; the learning-rate schedule is fitted to it")
    train.add_argument("--batch-size", type=_positive_int, default=None,
                       help="default: 128 for classifiers on quadrants, 32 on direction and "
                            "first_digit, 32 for next_frame and tracker")
    train.add_argument("--lr", type=_positive_float, default=None,
                       help="peak learning rate (default: 4e-3 for classifiers, 3e-3 for next_frame and tracker)")
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
    tricks.add_argument("--curriculum", type=_positive_int, nargs="?", const=0, default=None,
                        metavar="UNROLL",
                        help="Re3 unroll curriculum starting at UNROLL steps (default 2 for track, as "
                             "Re3; 1 elsewhere): double the unroll and halve the batch at each "
                             "validation plateau")
    feed = tricks.add_mutually_exclusive_group()
    feed.add_argument("--teacher-forcing", dest="sampling", action="store_const", const="teacher_forcing",
                      help="next_frame, tracker: always feed the true previous frame (box) in training")
    feed.add_argument("--scheduled-sampling", dest="sampling", action="store_const", const="scheduled",
                      help="next_frame, tracker: feed the model's own previous output with a rising "
                           "probability")
    tricks.add_argument("--sampling-max", type=_probability, default=0.5,
                        help="the probability scheduled sampling rises to (default 0.5)")
    _add_clips(train)
    train.add_argument("--save", metavar="PATH", default=None,
                       help="write the trained model as a safetensors checkpoint")
    train.add_argument("--json", action="store_true", help="print the results as one JSON line last")
    ranks = train.add_argument_group(
        "more than one process (docs/scale.md)",
        "torchrun --standalone --nproc_per_node=2 -m cnnlstm_edu train --ddp ...: each process (rank) "
        "trains on its shard of every batch; --batch-size stays the global batch, and only rank 0 "
        "prints and saves")
    ranks.add_argument("--ddp", action="store_true",
                       help="run as one rank of torchrun's group: DistributedDataParallel, gloo on CPUs, "
                            "NCCL on GPUs")
    ranks.add_argument("--sync-bn", action="store_true",
                       help="with --ddp: BatchNorm normalises with the statistics of the global batch, "
                            "not of each rank's shard (as one process would)")
    ranks.add_argument("--ddp-timeout", type=_positive_float, default=1800.0, metavar="SECONDS",
                       help="with --ddp: how long a rank waits for the others before giving up "
                            "(default 1800); a rank that dies is noticed at once")


def _add_clips(train) -> None:
    from ..models.encoders import BACKBONES

    clips = train.add_argument_group(
        "your own clips (docs/clips.md)",
        "--data FOLDER trains a classifier on a folder with one sub-folder of clips per class (video "
        "files, animated GIFs, folders of frame images); the same clips of each class are held out on "
        "every run (--test-fraction). Without the flags below, the clips are read as they are: 8 frames, their own size and colour")
    clips.add_argument("--data", metavar="FOLDER", default=None,
                       help="the folder of class sub-folders (decoded once, then read from its cache)")
    clips.add_argument("--frames", type=_number(integer=True, low=2, high=10_000), default=None, metavar="T",
                       help="frames sampled uniformly from each clip (default 8)")
    clips.add_argument("--size", type=_positive_int, nargs="+", default=None, metavar="PX",
                       help="H W (or one number for square frames) to resize every frame to (default: "
                            "the clips' own size, which must then be the same for all)")
    clips.add_argument("--channels", type=int, choices=[1, 3], default=None,
                       help="1 grey, 3 colour (default: the clips' own mode)")
    clips.add_argument("--short", choices=["loop", "pad"], default=None,
                       help="a clip shorter than T frames: loop it (default), or pad it with black frames "
                            "that the LSTM never reads (cnn_lstm: packed by each clip's length)")
    clips.add_argument("--backbone", choices=["scratch", "mnist", *sorted(BACKBONES)], default=None,
                       help="cnn_lstm's frame CNN: scratch (default, trained from random weights), mnist "
                            "(shipped, pretrained on MNIST digits), or a torchvision CNN whose ImageNet "
                            "weights are already in torch's cache (nothing is downloaded)")
    clips.add_argument("--freeze", action="store_true",
                       help="keep the pretrained frame CNN as it is (Keras' trainable=False): its "
                            "features are computed once, and only the LSTM and classifier train")
    clips.add_argument("--test-fraction", type=_number(low=0, high=0.9, low_open=True), default=None,
                       metavar="F", help="the share of each class held out for the test (default 0.25)")


def _add_predict(commands) -> None:
    predict = commands.add_parser(
        "predict", help="classify clips with a checkpoint from train --data, frame by frame",
        description="Read each clip as the checkpoint's training clips were read (frames, size, "
                    "channels, the short-clip rule) and print the class probabilities after every "
                    "frame, then the final class.")
    predict.add_argument("checkpoint", help="a checkpoint saved by train --data FOLDER --save PATH")
    predict.add_argument("clips", nargs="+", metavar="CLIP", help="video files, .gif files or folders of frames")
    predict.add_argument("--device", default="cpu", help="cpu (default), auto, cuda ...")
    predict.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")


def _add_trace(commands) -> None:
    from ..models import MODELS

    trace = commands.add_parser("trace", help="print the shape trace of a built-in model",
                                description="Run a model once on random frames (B, T, C, H, W) and "
                                            "print every module's input and output shapes, axes named.")
    trace.add_argument("--model", choices=sorted(MODELS), default="cnn_lstm")
    trace.add_argument("--batch", type=_positive_int, default=2, help="B: clips in the batch")
    trace.add_argument("--steps", type=_positive_int, default=4, help="T: frames per clip")
    trace.add_argument("--depth", type=_number(integer=True, low=0), default=None, help="show modules at most this deep (0: the model)")


def _add_bench(commands) -> None:
    bench = commands.add_parser("bench", help="time TimeDistributed's fold and loop modes on this machine",
                                description="Time a frame CNN applied to every frame of (B, T, C, H, W) "
                                            "by folding time into the batch and by looping over steps.")
    bench.add_argument("--batch", type=_positive_int, nargs="+", default=[1, 8, 64, 256], help="batch sizes B")
    bench.add_argument("--steps", type=_positive_int, nargs="+", default=[4, 16], help="sequence lengths T")
    bench.add_argument("--frame", type=_positive_int, default=28, help="frame size H = W")
    bench.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda ...")
    bench.add_argument("--backward", action="store_true", help="time forward + backward, as in training")


def _add_export(commands) -> None:
    export = commands.add_parser(
        "export", help="write a checkpoint's one-step graph to ONNX, the state as inputs and outputs",
        description="Export a streaming model (cnn_lstm, cnn_convlstm, next_frame, tracker) as an ONNX "
                    "graph of one step: inputs the frame (B, C, H, W) then every state tensor, outputs "
                    "the step's result then the new state, in the same order; the batch axis is dynamic. "
                    "Run it with onnxruntime (cnnlstm_edu.deploy.OnnxStreamer, or docs/deploy.md).")
    export.add_argument("checkpoint", help="a checkpoint saved by train --save (its digest is verified)")
    export.add_argument("--onnx", required=True, metavar="OUT", help="the .onnx file to write")
    export.add_argument("--check", action="store_true",
                        help="stream held-out clips through the ONNX file and through PyTorch, print the "
                             "largest difference (exit 1 above 1e-4)")
    export.add_argument("--clips", type=_positive_int, default=8, help="test clips for --check")

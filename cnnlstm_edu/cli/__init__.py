"""Command line: ``python -m cnnlstm_edu train ...``.

    python -m cnnlstm_edu train --model cnn_lstm --time-budget 30
    python -m cnnlstm_edu train --model cnn_lstm --epochs 1 --device cpu --json
    python -m cnnlstm_edu train --task direction --model frame_average --time-budget 60 --json
    python -m cnnlstm_edu train --task track --model tracker --scheduled-sampling --curriculum
    python -m cnnlstm_edu trace --model cnn_lstm --depth 2
    python -m cnnlstm_edu bench --batch 1 8 64 --steps 4 16 --device cpu
    python -m cnnlstm_edu export model.safetensors --onnx model.onnx --check
    python -m cnnlstm_edu train --data clips/ --frames 8 --size 32 32 --channels 1 --save clips.safetensors
    python -m cnnlstm_edu predict clips.safetensors clips/left/left_000.mp4 new_clip.gif

Progress goes to stderr under a tqdm bar; with ``--json`` the last line on stdout is one JSON
object with the run's results (``test_acc``, ``train_seconds``, ``epochs``, ``device``, ``task``,
``chance`` for a classifier, ``test_iou``, ``iou_by_horizon`` and ``baseline_iou`` for track,
``classes`` and ``per_class`` for a folder of clips, ...). ``predict --json`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

from .parser import build_parser
from .train import train_command

__all__ = ["build_parser", "main"]


def trace_command(args: argparse.Namespace) -> str:
    import torch

    from ..models import build_model
    from ..trace import trace_shapes

    model = build_model(args.model)
    config = model.config
    if args.model == "whole_image":      # the four 14x14 quadrants of a digit, tiled back together
        frames = torch.randn(args.batch, args.steps, 1, 14, 14)
    else:
        frames = torch.randn(args.batch, args.steps, config.in_channels, config.frame_size, config.frame_size)
    inputs = [frames]                    # (B, T, C, H, W)
    if args.model == "tracker":          # and the box fed at each step t = 1 .. T-1
        inputs.append(torch.tensor([16.0, 16.0, 40.0, 44.0]).repeat(args.batch, args.steps - 1, 1))  # (B, T-1, 4)
    return str(trace_shapes(model, *inputs, depth=args.depth))  # through every module


def bench_command(args: argparse.Namespace) -> str:
    from ..bench import fold_vs_loop, format_table
    from ..train import device_name, resolve_device

    device = resolve_device(args.device)
    rows = fold_vs_loop(args.batch, args.steps, frame_size=args.frame, device=device, backward=args.backward)
    what = "forward + backward" if args.backward else "forward"
    return f"TimeDistributed(FrameCNN) on {args.frame}x{args.frame} frames, {what}, {device_name(device)}\n" \
           + format_table(rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "trace":
        try:
            print(trace_command(args))
        except ValueError as e:          # a shape the model refuses (whole_image with --steps 6)
            print(f"error: {e}", file=sys.stderr)
            return 2
    if args.command == "bench":
        print(bench_command(args))
    if args.command == "export":
        return _export(args)
    if args.command == "predict":
        return _predict(args)
    if args.command == "train":
        try:
            result = train_command(args)
        except ValueError as e:          # bad options reach the user as one line, not a traceback
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:        # before training began, or a second Ctrl-C
            print("interrupted: the run was not finished, nothing was saved", file=sys.stderr)
            return 130
        if result is None:               # a rank other than 0 under torchrun: rank 0 reports the run
            return 0
        if args.json:
            # NaN is not JSON: a metric the model does not have (a forecaster's accuracy) is null.
            print(json.dumps({k: None if isinstance(v, float) and v != v else v for k, v in result.items()}))
        if result["stopped"]:
            return 130                   # the shell's code for "ended by Ctrl-C": not the run asked for
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_command

    try:
        text, passed = export_command(args)
    except (ValueError, FileNotFoundError) as e:   # a refused checkpoint or model: one line, exit 2
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(text)
    return 0 if passed else 1


def _predict(args: argparse.Namespace) -> int:
    from .predict import format_beliefs, predict_command

    try:
        beliefs, classes, settings = predict_command(args)
    except (ValueError, FileNotFoundError) as e:   # a refused checkpoint or device: one line, exit 2
        print(f"error: {e}", file=sys.stderr)
        return 2
    for belief in beliefs:
        if belief.error is not None:
            print(f"error: {belief.error}", file=sys.stderr)
        elif not args.json:
            print(format_beliefs(belief, classes) + "\n")
    if args.json:
        clips = [{"clip": b.clip, "error": b.error} if b.error is not None else
                 {"clip": b.clip, "class": b.final(classes)[0], "probability": b.final(classes)[1],
                  "frames": len(b.probs), "beliefs": b.probs} for b in beliefs]
        print(json.dumps({"checkpoint": args.checkpoint, "classes": classes, "settings": settings, "clips": clips}))
    return 1 if any(b.error is not None for b in beliefs) else 0   # the shell sees that one failed

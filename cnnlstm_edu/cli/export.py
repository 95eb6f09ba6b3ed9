"""The export command: a checkpoint to a one-step ONNX graph, with its state as inputs and outputs.

    python -m cnnlstm_edu export model.safetensors --onnx model.onnx
    python -m cnnlstm_edu export model.safetensors --onnx model.onnx --check

``--check`` streams held-out clips of the model's task through the ONNX file with onnxruntime,
frame by frame, runs the same clips through the PyTorch model whole, and prints the largest
difference.
"""

from __future__ import annotations

import argparse

__all__ = ["export_command"]


TOLERANCE = 1e-4   # float32 rounding in two runtimes stays far below this; a wrong graph does not


def export_command(args: argparse.Namespace) -> tuple[str, bool]:
    """Run ``export``; returns what it prints and whether ``--check`` (if asked) stayed within
    :data:`TOLERANCE`. A refused checkpoint or model is a ``ValueError``."""
    from ..checkpoint import load_checkpoint
    from ..deploy import export_onnx, read_metadata

    model, info = load_checkpoint(args.checkpoint)          # refuses a file that fails its digest
    if not isinstance(model.config.frame_size, int):        # train --data --size H W with H != W
        raise ValueError(f"export: {args.checkpoint} reads {model.config.frame_size[0]}x"
                         f"{model.config.frame_size[1]} frames; the one-step ONNX graph is built for "
                         "square frames only: train with --size S (one number)")
    path = export_onnx(model, args.onnx, info=info)
    meta = read_metadata(path)
    lines = [f"wrote {path} ({path.stat().st_size / 1024:.0f} kB): {meta['model']}, one step; "
             f"inputs {', '.join(meta['inputs'])}; outputs {', '.join(meta['outputs'])}; batch axis B dynamic"]
    passed = True
    if args.check:
        from ..deploy.check import largest_difference, test_clips

        what = "test clips"
        if "clips" in info:      # train --data: the folder is not in the checkpoint, its frames' shape is
            import torch

            from ..checkpoint import read_clip_info

            c, what = model.config, "random clips (the training folder is not in the checkpoint)"
            frames = read_clip_info(info, args.checkpoint, c.num_classes)[1]["frames"]
            clips, box = torch.rand(args.clips, frames, c.in_channels, c.frame_size, c.frame_size), None
        else:
            clips, box = test_clips(model, info, num_clips=args.clips)
        diff = largest_difference(model, path, clips, box)
        B, T = clips.shape[:2]
        lines.append(f"check: {B} {what} of {T} frames streamed through onnxruntime frame by frame "
                     f"vs the PyTorch model on whole clips: largest difference {diff:.2e} "
                     f"({meta['result']}): {'within' if diff <= TOLERANCE else 'ABOVE'} {TOLERANCE:g}")
        passed = diff <= TOLERANCE
    return "\n".join(lines), passed

"""Check an exported file against PyTorch: the same test clips, streamed and whole.

:func:`full_sequence` is what the PyTorch model says about whole clips in one call, step by
step; :func:`largest_difference` streams the same clips through the ONNX file frame by frame
and returns the largest difference. ``python -m cnnlstm_edu export ... --check`` prints it.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from ..modes import eval_mode
from ..pixels import to_float
from .steps import check_streamable

__all__ = ["full_sequence", "largest_difference", "test_clips"]


@torch.no_grad()
def full_sequence(model: nn.Module, clips: torch.Tensor, box: torch.Tensor | None = None) -> torch.Tensor:
    """The model's result after every frame of ``clips`` ``(B, T, C, H, W)``, in one call: logits
    ``(B, T, classes)``, forecast frames ``(B, T, C, H, W)``, or the tracker's boxes ``(B, T, 4)``
    free-running from ``box`` ``(B, 4)`` (frame 0's box is ``box``)."""
    name = check_streamable(model)
    with eval_mode(model):
        if name == "next_frame":
            return model.step(clips)[0]
        if name == "tracker":
            if box is None:
                raise ValueError("full_sequence: the tracker needs the first frame's box, (B, 4)")
            return model.track(clips, box)
        return model(clips, all_steps=True)


def test_clips(model: nn.Module, info: dict | None = None, num_clips: int = 8):
    """``(clips, first_box)`` of the task the model was trained on (the checkpoint's ``info``):
    held-out MNIST quadrants (in the saved order), direction or first_digit clips, Moving MNIST,
    or track clips with their first boxes (``first_box`` is None but for the tracker). Float
    frames in [0, 1]."""
    from .. import data

    name, info = check_streamable(model), info or {}
    size = model.config.frame_size
    if name == "tracker":
        clips, boxes = data.track(num_clips, split="test", size=size, seq_len=11)
        return to_float(clips), boxes[:, 0]
    if name == "next_frame":
        from ..data.moving_mnist import moving_mnist

        return to_float(moving_mnist(num_clips, seq_len=10, size=size, split="test")), None
    task = info.get("task", "quadrants")
    if task == "direction":
        clips = data.direction(num_clips, split="test", size=size)[0]
    elif task == "first_digit":
        clips = data.first_digit(num_clips, split="test", size=size)[0]
    else:
        images, _ = data.load_mnist("test")
        clips = data.quadrant_sequences(images[:num_clips], order=info.get("order", "1234"))
    if tuple(clips.shape[2:]) != (model.config.in_channels, size, size):
        raise ValueError(f"test_clips: the {task} clips are {tuple(clips.shape[2:])} frames, the model "
                         f"reads ({model.config.in_channels}, {size}, {size})")
    return to_float(clips), None


def largest_difference(model: nn.Module, path: str | os.PathLike, clips: torch.Tensor,
                       box: torch.Tensor | None = None) -> float:
    """Stream ``clips`` through the ONNX file at ``path`` frame by frame; the largest absolute
    difference from :func:`full_sequence` over every frame's result."""
    from .onnx_streamer import OnnxStreamer

    streamed = OnnxStreamer(path).stream(clips, box=box)              # (B, T, ...)
    return (streamed - full_sequence(model, clips, box)).abs().max().item()

"""TimeDistributed: one module, one set of weights, applied to every time step of a sequence.

The PyTorch counterpart of Keras' ``TimeDistributed`` wrapper (seed 004's fix for
"expected ndim=4, found ndim=5"). Two ways to do the same thing, kept side by side because
comparing them is a lesson in itself (seed 000):

- ``mode="fold"`` folds time into the batch, ``(B, T, ...) -> (B*T, ...)``, calls the module
  once and unfolds the result. One big call: what the lip-reading blog ends up doing with
  ``tf.reshape``.
- ``mode="loop"`` calls the module once per step on ``x[:, t]`` and stacks the results, the
  ``tf.map_fn`` way. Same numbers, T smaller calls.

Both give the same output whenever the module treats the samples of a batch independently.
The one common layer that does not is ``BatchNorm`` in training mode: its statistics come from
the B*T frames in fold mode and from only B frames per call in loop mode. In eval mode (running
statistics) the two agree again.
"""

from __future__ import annotations

import torch
from torch import nn

from ..axes import format_shape, sequence_axes
from ..shapes import ShapeError, fold_time, translate_errors, unfold_time

__all__ = ["TimeDistributed"]

MODES = ("fold", "loop")


class TimeDistributed(nn.Module):
    """Apply ``module`` to each time step of a ``(B, T, ...)`` input and return ``(B, T, ...)``.

    >>> conv = nn.Conv2d(1, 8, kernel_size=3, padding=1)
    >>> td = TimeDistributed(conv)              # mode="fold"
    >>> x = torch.randn(2, 4, 1, 14, 14)         # (B, T, C, H, W)
    >>> td(x).shape                              # (B, T, 8, 14, 14)
    torch.Size([2, 4, 8, 14, 14])
    >>> loop = TimeDistributed(conv, mode="loop")  # the same conv, so the same weights
    >>> torch.allclose(td(x), loop(x), atol=1e-6)
    True
    """

    def __init__(self, module: nn.Module, mode: str = "fold") -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"TimeDistributed wraps an nn.Module, got {type(module).__name__}")
        if mode not in MODES:
            raise ValueError(f"TimeDistributed: mode must be one of {MODES}, got {mode!r}")
        self.module = module
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"TimeDistributed expects a tensor (B, T, ...), got {type(x).__name__}")
        if x.dim() < 3:
            raise ShapeError(
                f"TimeDistributed expects (B, T, ...) with at least one axis per frame, got "
                f"{tuple(x.shape)}. A batch of single frames has no time axis: call the module "
                "directly, or add one with x.unsqueeze(1)."
            )
        B, T = x.shape[:2]
        if T == 0:
            raise ShapeError(
                f"TimeDistributed expects (B, T, ...) with at least one time step, got {tuple(x.shape)} "
                "(T=0): there is no frame to apply the module to."
            )
        if self.mode == "fold":
            frames = fold_time(x)                  # (B*T, ...): every frame is a batch row
            y = self._call(frames, x, "B*T")       # (B*T, ...out)
            return unfold_time(y, steps=T)         # (B, T, ...out)
        # One call per step, exactly what tf.map_fn does; slower for small frames, lighter
        # on peak memory because only one step's activations are alive at a time in eval.
        steps = [self._call(x[:, t], x, "B") for t in range(T)]  # T tensors of (B, ...out)
        return torch.stack(steps, dim=1)           # (B, T, ...out)

    def _call(self, frames: torch.Tensor, x: torch.Tensor, rows: str) -> torch.Tensor:
        """The module on a batch of frames, its errors said in terms of the (B, T, ...) input."""
        name = type(self.module).__name__
        conv = _first_layer(self.module)
        if isinstance(conv, nn.modules.conv._ConvNd) and frames.dim() != conv.weight.dim():
            # Conv2d would take 3-D frames (B*T, H, W) as one unbatched image with B*T channels
            # and run: the classic frames-without-a-channel-axis mistake, caught before it does.
            wanted = ("N", "C") + ("D", "H", "W")[5 - conv.weight.dim():]  # Conv2d: N, C, H, W
            raise ShapeError(
                f"TimeDistributed({name}): {type(conv).__name__} takes frames ({', '.join(wanted)}), so the "
                f"input should be (B, T, {', '.join(wanted[1:])}); got {tuple(x.shape)}, whose frames are "
                f"{tuple(frames.shape)}. Frames without a channel axis (B, T, H, W) need x.unsqueeze(2)."
            )

        # Frames stored (H, W, C), as Keras, NumPy and PIL keep them, whose last axis is exactly
        # the channels the conv wants: the fix is a permute, not a different in_channels.
        channels_last = (isinstance(conv, nn.modules.conv._ConvNd) and frames.dim() == 4
                         and frames.shape[-1] == conv.in_channels != frames.shape[1])

        def what() -> str:
            # The module's own message speaks of the frames it got, (B*T, ...); a learner passed
            # (B, T, ...). Name both; translate_errors keeps torch's words and chains the original.
            frame = format_shape(frames.shape, (rows,) + (None,) * (frames.dim() - 1))
            axes = ("B", "T", "H", "W", "C") if channels_last else sequence_axes(x.dim())
            return (f"TimeDistributed({name}, mode={self.mode!r}) got "
                    f"{format_shape(x.shape, axes)} and passed {name} frames {frame}")

        def hint() -> str:
            if channels_last:
                return ("The frames look channels-last (H, W, C), as Keras, NumPy and PIL store them: "
                        "permute the video first, x.permute(0, 1, 4, 2, 3) -> (B, T, C, H, W).")
            return (f"Each frame is x[:, t], of shape {tuple(x.shape[2:])}: build the module for that "
                    "shape (Conv2d's in_channels = C, Linear's in_features = the last axis).")

        with translate_errors(what, hint):
            y = self.module(frames)
        if not isinstance(y, torch.Tensor):
            raise TypeError(
                f"TimeDistributed needs the wrapped module to return one tensor per frame; "
                f"{name} returned {type(y).__name__}"
            )
        if y.dim() == 0 or y.shape[0] != frames.shape[0]:
            raise ShapeError(
                f"TimeDistributed({name}): the module must keep one row per frame, but it turned "
                f"frames {tuple(frames.shape)} ({rows}={frames.shape[0]} rows) into {tuple(y.shape)}. "
                "A module that mixes the rows of a batch (a flatten from axis 0, a sum over the batch) "
                "cannot be applied frame by frame; flatten from axis 1 instead (nn.Flatten())."
            )
        return y

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def _first_layer(module: nn.Module) -> nn.Module:
    """The first leaf layer a frame meets (for an nn.Sequential, its first layer)."""
    while isinstance(module, nn.Sequential) and len(module):
        module = module[0]
    return module


"""The ConvLSTM's arithmetic, written once for :class:`ConvLSTMCell` and :class:`ConvLSTM`.

- the gate update of one step, :func:`lstm_update` (with optional peepholes);
- a stride-1 convolution padded the way Keras pads, :func:`conv2d_padded` and :func:`same_padding`
  (for an even kernel TensorFlow puts the extra row and column at the bottom and right);
- the checks of the constructor arguments and of the grid a frame leaves after the input
  convolution, with the messages the two layers share.

>>> x = torch.randn(2, 3, 8, 8)                                   # (B, C, H, W)
>>> gates = conv2d_padded(x, torch.randn(4 * 5, 3, 3, 3), None, "same")   # (B, 4F, H, W)
>>> h, c = lstm_update(gates, torch.zeros(2, 5, 8, 8))
>>> h.shape                                                       # (B, F, H, W)
torch.Size([2, 5, 8, 8])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..shapes import ShapeError

__all__ = ["PADDINGS", "same_padding", "conv2d_padded", "lstm_update", "init_uniform", "kernel_pair",
           "padding_mode", "output_grid", "check_pixels"]

PADDINGS = ("same", "valid")


# --- argument checks ------------------------------------------------------------------------


def kernel_pair(kernel_size, owner: str) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(3, 5) -> (3, 5)``; anything else is an error that says what is allowed."""
    if isinstance(kernel_size, int) and not isinstance(kernel_size, bool):
        kernel_size = (kernel_size, kernel_size)
    try:
        kh, kw = kernel_size
    except (TypeError, ValueError):
        raise ValueError(
            f"{owner}: kernel_size must be an int or a pair (kh, kw) of ints, got {kernel_size!r}."
        ) from None
    for k in (kh, kw):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(
                f"{owner}: kernel_size must be positive ints, got {kernel_size!r}. "
                "A 1x1 kernel is the smallest (it makes a ConvLSTM an nn.LSTM per pixel)."
            )
    return kh, kw


def padding_mode(padding, owner: str) -> str:
    """``'same'`` or ``'valid'`` (any case), else an error that says what each one does."""
    mode = padding.lower() if isinstance(padding, str) else padding
    if mode not in PADDINGS:
        raise ValueError(
            f"{owner}: padding must be 'same' (keep H, W) or 'valid' (no padding, as in Keras), "
            f"got {padding!r}."
        )
    return mode


def output_grid(H: int, W: int, kernel_size: tuple[int, int], padding: str, owner: str,
                shape: tuple[int, ...] | None = None) -> tuple[int, int]:
    """The output grid ``(H', W')``, or an error when 'valid' padding leaves nothing of the frame."""
    if padding == "same":
        return H, W
    kh, kw = kernel_size
    if H < kh or W < kw:
        raise ShapeError(
            f"{owner}: frames of H={H}, W={W}{f' (input {shape})' if shape else ''} are smaller than the {kh}x{kw} kernel, so "
            "padding='valid' leaves no pixel. Use padding='same', a smaller kernel, or bigger frames."
        )
    return H - kh + 1, W - kw + 1


def check_pixels(x: torch.Tensor, axes: str, what: str) -> None:
    """Frames need at least one pixel: a convolution over an empty grid fails deep inside torch."""
    H, W = x.shape[-2:]
    if H == 0 or W == 0:
        raise ShapeError(f"{what}: expected ({', '.join(axes.split())}) with frames of at least 1x1 pixels, "
                         f"got {tuple(x.shape)} (H={H}, W={W}).")


# --- the math, written once and shared by ConvLSTMCell and ConvLSTM --------------------------


def same_padding(kernel_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The ``F.pad`` amounts ``(left, right, top, bottom)`` that keep H, W under a stride-1 conv.

    A kernel of size k needs ``k - 1`` extra rows in total. For an odd k they split evenly; for
    an even k TensorFlow and Keras put the odd one out at the *end* (bottom, right), and so do we.

    >>> same_padding((3, 3))
    (1, 1, 1, 1)
    >>> same_padding((2, 4))            # even kernels: one more at the bottom / right
    (1, 2, 0, 1)
    """
    kh, kw = kernel_size
    top, left = (kh - 1) // 2, (kw - 1) // 2
    return left, kw - 1 - left, top, kh - 1 - top


def conv2d_padded(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: str) -> torch.Tensor:
    """A stride-1 ``conv2d`` with Keras' ``'same'`` or ``'valid'`` padding, for any kernel shape.

    >>> x = torch.randn(2, 3, 7, 9)                         # (N, C, H, W)
    >>> w = torch.randn(8, 3, 2, 4)                         # (4F, C, kh, kw): an even, non-square kernel
    >>> conv2d_padded(x, w, None, "same").shape             # (N, 4F, H, W)
    torch.Size([2, 8, 7, 9])
    >>> conv2d_padded(x, w, None, "valid").shape            # (N, 4F, H-kh+1, W-kw+1)
    torch.Size([2, 8, 6, 6])
    """
    if padding == "valid":
        return F.conv2d(x, weight, bias)
    kh, kw = weight.shape[-2:]
    left, right, top, bottom = same_padding((kh, kw))
    if left == right and top == bottom:
        # Odd kernel: the convolution pads symmetrically by itself, without a padded copy of x.
        return F.conv2d(x, weight, bias, padding=(top, left))
    return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias)


def lstm_update(
    gates: torch.Tensor,
    c: torch.Tensor,
    peephole: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step from the summed gate pre-activations: ``(B, 4F, ...)`` and ``c`` -> ``(h', c')``.

    ``gates`` holds ``W_x * x_t + W_h * h + b`` for the four gates stacked as i, f, g, o (the
    ``nn.LSTM`` order). ``peephole`` is ``(w_ci, w_cf, w_co)``: the input and forget gates peek
    at the old cell, the output gate at the new one (Gers & Schmidhuber 2000).

    >>> gates = torch.zeros(2, 4 * 5, 3, 3)                  # (B, 4F, H, W), all gates half open
    >>> h, c = lstm_update(gates, torch.ones(2, 5, 3, 3))    # c' = 0.5 * 1 + 0.5 * tanh(0)
    >>> h.shape, c[0, 0, 0, 0].item()
    (torch.Size([2, 5, 3, 3]), 0.5)
    """
    i, f, g, o = gates.chunk(4, dim=1)  # each (B, F, ...)
    if peephole is not None:
        w_ci, w_cf, w_co = peephole
        i = i + w_ci * c
        f = f + w_cf * c
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    if peephole is not None:
        o = o + w_co * c
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def init_uniform(module: nn.Module, hidden_channels: int) -> None:
    # nn.LSTM's own initialisation: every weight and bias ~ U(-1/sqrt(F), 1/sqrt(F)). It ignores
    # the kernel area, so a big kernel starts with big pre-activations; it is kept anyway so a
    # 1x1 ConvLSTM and an nn.LSTM start from the same distribution.
    bound = 1.0 / math.sqrt(hidden_channels)
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


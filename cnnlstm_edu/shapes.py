"""Moving the time axis in and out of the batch: the one reshape every CNN-LSTM needs.

A video batch is ``(B, T, C, H, W)``: B clips of T frames. A ``Conv2d`` only understands
``(N, C, H, W)``, so the frames are *folded* into the batch, ``(B*T, C, H, W)``, the CNN runs
once over all of them, and its per-frame output is *unfolded* back to ``(B, T, ...)`` for the
recurrent layer. This is the ``tf.reshape`` trick of the lip-reading blog (seed 000) and the
``rearrange(video, 'b t ... -> (b t) ...')`` of einops, spelled in plain PyTorch.

Every function here checks its input and raises :class:`ShapeError` naming the axes it
expected, the shape it got, and what to do about it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["ShapeError", "fold_time", "unfold_time", "flatten_spatial", "check_shape", "describe"]


class ShapeError(ValueError):
    """A tensor arrived with the wrong shape. The message names the axes expected and got.

    It is a ``ValueError``, so ``except ValueError`` code keeps working.

    >>> try:
    ...     fold_time(torch.zeros(3))
    ... except ValueError as e:
    ...     print(type(e).__name__)
    ShapeError
    """


def describe(shape: Sequence[int], axes: str | Sequence[str] | None = None) -> str:
    """Write a shape with its axis names, e.g. ``(B=8, T=4, C=1, H=14, W=14)``.

    >>> describe((8, 4, 1, 14, 14), "B T C H W")
    '(B=8, T=4, C=1, H=14, W=14)'
    >>> describe((8, 4))
    '(8, 4)'
    """
    shape = tuple(int(s) for s in shape)
    if axes is None:
        return str(shape) if len(shape) != 1 else f"({shape[0]},)"
    names = axes.split() if isinstance(axes, str) else list(axes)
    if len(names) != len(shape):
        return str(shape)
    return "(" + ", ".join(f"{n}={s}" for n, s in zip(names, shape)) + ")"


def check_shape(x: torch.Tensor, axes: str, what: str = "input", hint: str = "", **sizes: int) -> None:
    """Raise :class:`ShapeError` unless ``x`` has one axis per name in ``axes`` and the given sizes.

    ``axes`` is a space-separated list of names; a trailing ``...`` allows any further axes.
    Keyword arguments pin the size of named axes.

    >>> check_shape(torch.zeros(2, 4, 1, 14, 14), "B T C H W", C=1)
    >>> check_shape(torch.zeros(2, 4, 3, 14, 14), "B T C H W", C=1)
    Traceback (most recent call last):
        ...
    cnnlstm_edu.shapes.ShapeError: input: expected (B, T, C=1, H, W), got (2, 4, 3, 14, 14): axis C is 3, not 1.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    names = axes.split()
    open_ended = names[-1] == "..."
    if open_ended:
        names = names[:-1]
    expected = "(" + ", ".join(f"{n}={sizes[n]}" if n in sizes else n for n in names)
    expected += ", ...)" if open_ended else ")"
    got = tuple(x.shape)
    rank_ok = x.dim() >= len(names) if open_ended else x.dim() == len(names)
    if not rank_ok:
        need = f"at least {len(names)}" if open_ended else str(len(names))
        raise ShapeError(
            f"{what}: expected {expected}, got {got}: that is {x.dim()} axes, not {need}."
            + (f" {hint}" if hint else "")
        )
    for i, n in enumerate(names):
        if n in sizes and got[i] != sizes[n]:
            raise ShapeError(
                f"{what}: expected {expected}, got {got}: axis {n} is {got[i]}, not {sizes[n]}."
                + (f" {hint}" if hint else "")
            )


def fold_time(x: torch.Tensor) -> torch.Tensor:
    """Fold the time axis into the batch: ``(B, T, *rest) -> (B*T, *rest)``.

    Frame ``t`` of clip ``b`` lands at row ``b*T + t``, so :func:`unfold_time` with ``steps=T``
    puts every frame back where it came from. No data is copied when ``x`` is contiguous.

    >>> x = torch.randn(2, 4, 1, 14, 14)       # (B, T, C, H, W)
    >>> fold_time(x).shape                     # (B*T, C, H, W)
    torch.Size([8, 1, 14, 14])
    >>> torch.equal(unfold_time(fold_time(x), steps=4), x)
    True
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"fold_time expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ShapeError(
            f"fold_time expects (B, T, ...) with a batch and a time axis, got {tuple(x.shape)}. "
            "A single clip (T, C, H, W) needs a batch axis first: x.unsqueeze(0)."
        )
    B, T = x.shape[:2]
    return x.reshape(B * T, *x.shape[2:])  # (B*T, ...)


def unfold_time(y: torch.Tensor, steps: int) -> torch.Tensor:
    """Undo :func:`fold_time`: ``(B*T, *rest) -> (B, steps, *rest)`` with ``T = steps``.

    >>> feats = torch.randn(8, 32)               # (B*T, F): one feature vector per frame
    >>> unfold_time(feats, steps=4).shape        # (B, T, F)
    torch.Size([2, 4, 32])
    >>> unfold_time(feats, steps=3)
    Traceback (most recent call last):
        ...
    cnnlstm_edu.shapes.ShapeError: unfold_time: the first axis of (8, 32) is B*T = 8, which steps=3 does not divide. Pass the T that fold_time folded (x.shape[1] before folding).
    """
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"unfold_time expects a torch.Tensor, got {type(y).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"unfold_time: steps must be a positive int (the number of time steps T), got {steps!r}")
    if y.dim() < 1:
        raise ShapeError(f"unfold_time expects (B*T, ...), got a 0-d tensor {tuple(y.shape)}")
    BT = y.shape[0]
    if BT % steps:
        raise ShapeError(
            f"unfold_time: the first axis of {tuple(y.shape)} is B*T = {BT}, which steps={steps} does not "
            "divide. Pass the T that fold_time folded (x.shape[1] before folding)."
        )
    return y.reshape(BT // steps, steps, *y.shape[1:])  # (B, T, ...)


def flatten_spatial(x: torch.Tensor) -> torch.Tensor:
    """Flatten each frame's feature map into one feature axis: ``(B, T, C, H, W) -> (B, T, C*H*W)``.

    This is how a conv feature map becomes an LSTM input (seed 001): every frame keeps its own
    row, only the axes *inside* a frame are merged. A plain ``x.flatten(1)`` would merge the time
    axis too, and the LSTM would see one long vector instead of a sequence.

    >>> x = torch.randn(2, 7, 5, 8, 8)         # (B, T, C, H, W)
    >>> flatten_spatial(x).shape               # (B, T, C*H*W)
    torch.Size([2, 7, 320])
    """
    check_shape(x, "B T C ...", what="flatten_spatial",
                hint="It flattens every axis after (B, T); fold_time/unfold_time keep T separate.")
    B, T = x.shape[:2]
    return x.reshape(B, T, -1)  # (B, T, C*H*W)

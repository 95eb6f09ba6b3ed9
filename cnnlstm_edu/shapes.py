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

import math
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

from .axes import format_shape

__all__ = ["ShapeError", "fold_time", "unfold_time", "flatten_spatial", "check_shape", "check_float",
           "describe", "module_error", "translate_errors", "is_out_of_memory"]


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
    """Write a shape with its axis names, e.g. ``(B=8, T=4, C=1, H=14, W=14)``: :func:`~cnnlstm_edu.axes.format_shape`.

    >>> describe((8, 4, 1, 14, 14), "B T C H W")
    '(B=8, T=4, C=1, H=14, W=14)'
    >>> describe((8, 4))
    '(8, 4)'
    """
    return format_shape(shape, axes)  # the one writer of axis names, in axes.py


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


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()


def check_float(x: torch.Tensor, what: str = "input", like: torch.Tensor | None = None, hint: str = "",
                like_name: str = "the layer's weights", fix: str | None = None) -> None:
    """Raise unless ``x`` holds floating-point values that a layer with weights ``like`` can take.

    Integer frames (``uint8`` pixels straight from ``load_mnist``) are a ``TypeError`` that says
    to scale them; a dtype or device other than the weights' is one that says which way to
    convert (``fix`` replaces that advice when ``like`` is not a weight). Under autocast any float
    dtype passes: autocast itself casts for each operation.

    >>> w = torch.zeros(8, 1, 3, 3)
    >>> check_float(torch.zeros(2, 1, 14, 14), "frames", like=w)
    >>> check_float(torch.zeros(2, 1, 14, 14, dtype=torch.uint8), "frames", like=w)
    Traceback (most recent call last):
        ...
    TypeError: frames: expected floating-point values, got torch.uint8 of shape (2, 1, 14, 14). uint8 pixels 0..255 become floats in [0, 1] with x.float() / 255.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    if not (x.is_floating_point() or x.is_complex()):
        fix = ("uint8 pixels 0..255 become floats in [0, 1] with x.float() / 255." if x.dtype == torch.uint8
               else "Convert it with x.float().")
        raise TypeError(f"{what}: expected floating-point values, got {x.dtype} of shape {tuple(x.shape)}. "
                        f"{fix}" + (f" {hint}" if hint else ""))
    if like is None:
        return
    if x.device != like.device:
        raise ValueError(
            f"{what} {tuple(x.shape)} is on {x.device}, but {like_name} {'is' if like_name.endswith('input') else 'are'} on {like.device}. "
            + (fix or f"Move the input, x.to('{like.device}'), or the model, model.to('{x.device}').")
        )
    if x.dtype != like.dtype and not _autocast_on(x.device.type):
        raise TypeError(
            f"{what}: dtype {x.dtype} of shape {tuple(x.shape)}, but {like_name} {'is' if like_name.endswith('input') else 'are'} {like.dtype}. "
            + (fix or f"Convert the input, x.to({like.dtype}), or the model, model.to({x.dtype}) "
                      "(or run under torch.autocast).")
        )


def is_out_of_memory(error: BaseException) -> bool:
    """True for a device running out of memory (CUDA, MPS or CPU), whatever the exception class.

    >>> is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    True
    """
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(error, oom) or "out of memory" in str(error).lower()


# What torch says when a module gets a tensor of the wrong shape, or of the wrong dtype or device.
_SHAPE_WORDS = re.compile(
    r"shape|size|dimension|channels|\b\d+D\b|-D\b|mat1 and mat2|ndim|same number of|expected input|"
    r"kernel|must match|cannot be multiplied|out of range|invalid for input", re.IGNORECASE)
_DTYPE_WORDS = re.compile(r"dtype|scalar type|Input type \(\w+|should be the same|not implemented for", re.IGNORECASE)
_DEVICE_WORDS = re.compile(r"same device|cuda\.\w+Tensor|device type", re.IGNORECASE)


def module_error(error: BaseException, what: str, hint: str = "") -> Exception | None:
    """A ``ShapeError``, ``TypeError`` or ``ValueError`` for a ``RuntimeError`` that a wrapped module
    raised, leading with ``what`` (the axes expected and the shape that came); ``None`` when the
    error is not about shapes, dtypes or devices (out of memory, a CUDA fault...), which must
    pass unchanged. Raise the result ``from error``: the original stays attached.

    >>> try:
    ...     torch.nn.Linear(3, 2)(torch.zeros(8, 5))
    ... except RuntimeError as e:
    ...     print(module_error(e, "frames (B*T=8, 5)"))
    frames (B*T=8, 5): Linear raised RuntimeError: ...mat1 and mat2 shapes cannot be multiplied (8x5 and 3x2)
    """
    if not isinstance(error, RuntimeError) or is_out_of_memory(error) or "CUDA error" in str(error):
        return None
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    owner = _raising_module(error)
    message = f"{what}: {owner + ' raised ' if owner else ''}{type(error).__name__}: {first}"
    if _DEVICE_WORDS.search(first):
        return ValueError(f"{message}. The input and the module's weights must be on one device: "
                          "model.to(device) and x.to(device).")
    if _DTYPE_WORDS.search(first):
        return TypeError(f"{message}. The input's dtype must be the weights' (usually float32): "
                         "x.float(), or x.float() / 255 for uint8 pixels.")
    if _SHAPE_WORDS.search(first):
        return ShapeError(message + (("" if message.endswith(".") else ".") + f" {hint}" if hint else ""))
    return None


@contextmanager
def translate_errors(what: str | Callable[[], str], hint: str | Callable[[], str] = "") -> Iterator[None]:
    """The one place where torch's errors become ours: a ``RuntimeError`` raised in the block about
    shapes, dtypes or devices is re-raised as a :class:`ShapeError`, ``TypeError`` or ``ValueError``
    (see :func:`module_error`) that leads with ``what`` (the axes expected and the shape that came)
    and ends with ``hint``, the original chained as ``__cause__``. Anything else passes unchanged:
    out of memory, CUDA faults, and errors already translated by an inner block, so nested
    wrappers (a ``TimeDistributed`` inside a ``Stateful``) explain once, at the innermost one.
    einops does the same around its reductions: catch once, re-raise with the pattern and shape.

    ``what`` and ``hint`` may be functions, called only when there is an error to explain: the
    message costs nothing on the path that works.

    >>> frames = torch.zeros(8, 5)
    >>> with translate_errors(lambda: f"frames {describe(frames.shape, 'B*T F')}", hint="Build Linear(5, 2)."):
    ...     torch.nn.Linear(3, 2)(frames)
    Traceback (most recent call last):
        ...
    cnnlstm_edu.shapes.ShapeError: frames (B*T=8, F=5): Linear raised RuntimeError: ...(8x5 and 3x2). Build Linear(5, 2).
    """
    try:
        yield
    except RuntimeError as error:
        translated = module_error(error, what() if callable(what) else what, hint() if callable(hint) else hint)
        if translated is None:
            raise
        raise translated from error


def _raising_module(error: BaseException) -> str:
    """The class name of the innermost nn.Module whose forward is on the traceback, if any."""
    tb, name = error.__traceback__, ""
    while tb is not None:
        module = tb.tb_frame.f_locals.get("self")
        if isinstance(module, torch.nn.Module) and tb.tb_frame.f_code.co_name in ("forward", "_conv_forward"):
            name = type(module).__name__
        tb = tb.tb_next
    return name


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


_MAX_INDEX = 2**63 - 1  # torch's sizes and strides are int64


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
    steps_given = steps
    try:  # numpy and 0-d tensor integers are ints too; floats and bools are not
        steps = operator.index(steps) if not isinstance(steps, bool) else None
    except TypeError:
        steps = None
    if steps is None or steps < 1:
        raise ValueError(f"unfold_time: steps must be a positive int (the number of time steps T), got {steps_given!r}")
    if y.dim() < 1:
        raise ShapeError(f"unfold_time expects (B*T, ...), got a 0-d tensor {tuple(y.shape)}")
    BT = y.shape[0]
    if steps > max(BT, 1) and steps * math.prod(max(n, 1) for n in y.shape[1:]) > _MAX_INDEX:
        # Only an empty batch divides by more steps than it has rows, and a clip of that many
        # steps cannot be laid out (torch's int64 strides overflow): refuse it before reshape.
        raise ShapeError(
            f"unfold_time: steps={steps} is more time steps than a tensor can index: the strides of "
            f"{format_shape((0, steps, *y.shape[1:]), ('B', 'T') + (None,) * (y.dim() - 1))} overflow int64. "
            f"Pass the T that fold_time folded (x.shape[1] before folding); {tuple(y.shape)} has B*T = {BT}."
        )
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

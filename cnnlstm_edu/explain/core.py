"""explain and explain_shapes: the diagnoses tried in turn on an error, with what is known around it."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from ..shapes import ShapeError
from ..trace import ShapeTrace
from .context import Context, Watcher, context_from_trace, context_of
from .frames import conv_channels, reshape_size, video_into_frame_layer
from .sequences import broadcast, index_rank, loss_time_axis, matmul_features, rnn_input, rnn_rank, rnn_state

__all__ = ["DIAGNOSES", "diagnose", "explain", "explain_shapes"]


# Tried in this order; each recognises its mistake by torch's wording (torch 2.x) and says None otherwise.
DIAGNOSES = (video_into_frame_layer, reshape_size, matmul_features, rnn_input, rnn_rank, rnn_state, loss_time_axis,
             conv_channels, broadcast, index_rank)


def diagnose(error: BaseException, ctx: Context) -> str | None:
    if isinstance(error, ShapeError):
        # Ours already say what was expected and what to do, except those translated from a
        # torch error inside a wrapper (TimeDistributed, Stateful): they keep torch's words, and
        # a diagnosis of those words, made with the wrapper's input in view, says more.
        cause = error.__cause__
        translated = diagnose(cause, ctx) if isinstance(cause, RuntimeError) else None
        return translated or str(error)
    msg = str(error)
    for mistake in DIAGNOSES:
        advice = mistake(msg, ctx)
        if advice:
            return advice[0].upper() + advice[1:]
    return None


def explain(error: BaseException, model: nn.Module | None = None, trace: ShapeTrace | None = None) -> str:
    """Say in plain words what shape mistake ``error`` is, with the numbers and the fix.

    ``trace`` (or the ``error.trace`` that :func:`~cnnlstm_edu.trace.trace_shapes` attaches)
    tells which module failed and the axes of its input, so the advice can name them.

    >>> try:
    ...     torch.zeros(32, 32, 7, 7).view(8, 1568)     # (B*T, C, H, W) with B=8, T=4
    ... except RuntimeError as e:
    ...     print(explain(e))
    The reshape to [8, 1568] does not fit a tensor of 50176 numbers: 50176 = 8 x 4 x 1568, but ...
    Fix: keep the time axis, reshape to (B, T, -1) = (8, 4, 1568): x.reshape(8, 4, -1), ...
    >>> print(explain(KeyError("lstm")))
    explain() does not recognise this as one of the shape mistakes it knows ...
    """
    if not isinstance(error, BaseException):
        raise TypeError(f"explain takes the exception a model call raised, got {type(error).__name__}")
    advice = diagnose(error, context_of(error, model, trace))
    if advice is not None:
        return advice
    return (f"explain() does not recognise this as one of the shape mistakes it knows (a video into a "
            f"frame layer, a reshape that loses an axis, in_features/input_size mismatches, an LSTM output "
            f"used without picking a step, channels-last frames, a state of the wrong batch), so it will "
            f"not guess. PyTorch said: {type(error).__name__}: {error}\nTo see every shape up to the "
            "failing call, run trace_shapes(model, x) and print the trace attached to the error "
            "(error.trace).")


@contextmanager
def explain_shapes(model: nn.Module | None = None):
    """Re-raise a shape error from the block as a :class:`ShapeError` that explains it.

    Errors :func:`explain` does not recognise pass through unchanged; the original stays
    attached as ``__cause__``. While the block runs, light global module hooks record which
    module is being called, so the advice can name it (``model`` gives the qualified names).

    >>> model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU())
    >>> with explain_shapes():
    ...     model(torch.zeros(2, 4, 1, 14, 14))             # (B, T, C, H, W) into a Conv2d
    Traceback (most recent call last):
        ...
    cnnlstm_edu.shapes.ShapeError: In 0 (Conv2d): Conv2d takes a batch of frames, 4-D like (N, C, H, W), but it got the 5-D tensor (B=2, T=4, C=1, H=14, W=14): ...
    """
    watcher = Watcher()
    try:
        with watcher:
            yield
    except (RuntimeError, ValueError, IndexError) as error:
        if isinstance(error, ShapeError) and not isinstance(error.__cause__, RuntimeError):
            raise
        trace = getattr(error, "trace", None)
        ctx = context_from_trace(trace, model) if isinstance(trace, ShapeTrace) else watcher.context(model)
        advice = diagnose(error, ctx)
        if advice is None or advice == str(error):
            raise
        explained = ShapeError(advice)
        if trace is not None:
            explained.trace = trace
        raise explained from error


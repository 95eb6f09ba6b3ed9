"""The Shapes tab without the web page: a trace for any (B, T, C, H, W), and the classic mistakes.

:func:`shape_report` builds the chosen model for the frames asked for and traces one batch
through it with :func:`~cnnlstm_edu.trace.trace_shapes`. Each entry of :data:`MISTAKES` is a
few lines of broken code that a learner writes sooner or later (most of them straight from
seed 004, the Stack Overflow question behind the MNIST-quadrant task); :func:`break_it` runs
it inside :func:`~cnnlstm_edu.explain.explain_shapes` and returns PyTorch's own message beside
the plain-language diagnosis.

>>> report = shape_report("cnn_lstm", 2, 4, 1, 14, 14)
>>> report.trace["lstm"].format_outputs()[0]
'(B=2, T=4, H=128)'
>>> out = break_it("flatten_time", "cnn_lstm", 2, 4, 1, 14, 14)
>>> "Expected 288, got 1152" in out.error
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..checks import check_number
from ..explain import explain, explain_shapes
from ..models import build_model
from ..trace import ShapeTrace, trace_shapes
from ..analysis import recurrent_layer
from .settings import MODEL_CHOICES

__all__ = ["MISTAKES", "Mistake", "BrokenRun", "ShapeReport", "break_it", "check_dims", "shape_report"]

# Limits that keep one trace to a fraction of a second and a few MB.
LIMITS = {"B": 64, "T": 64, "C": 8, "H": 256, "W": 256}
MAX_ELEMENTS = 4_000_000


def check_dims(B, T, C, H, W) -> tuple[int, int, int, int, int]:
    """The five sizes as ints, or a ``ValueError`` that says which one is wrong and why.

    >>> check_dims(2, 4, 1, 14, 14.0)
    (2, 4, 1, 14, 14)
    >>> check_dims(0, 4, 1, 14, 14)
    Traceback (most recent call last):
        ...
    ValueError: B (clips in the batch) must be a whole number from 1 to 64, got 0.
    """
    names = {"B": "clips in the batch", "T": "time steps", "C": "channels", "H": "frame height",
             "W": "frame width"}
    out = [check_number(value, f"{axis} ({meaning})", integer=True, low=1, high=LIMITS[axis], whole_floats=True)
           for (axis, meaning), value in zip(names.items(), (B, T, C, H, W))]
    total = out[0] * out[1] * out[2] * out[3] * out[4]
    if total > MAX_ELEMENTS:
        raise ValueError(f"B*T*C*H*W = {total:,} numbers is more than this page traces "
                         f"({MAX_ELEMENTS:,}); make the batch or the frames smaller.")
    return tuple(out)


def _model(name: str, C: int, H: int) -> nn.Module:
    if name not in MODEL_CHOICES.values():   # the registry has more: trackers need boxes, baselines other frames
        raise ValueError(f"Unknown model {name!r}: the Shapes tab traces {sorted(MODEL_CHOICES.values())}.")
    torch.manual_seed(0)
    # The model is built for the frames asked for: C channels, H x H pixels (its frames are square).
    return build_model(name, in_channels=C, frame_size=H)


@dataclass
class ShapeReport:
    trace: ShapeTrace | None     # the rows reached (all of them when the forward finished)
    error: str | None            # PyTorch's message, when the forward raised
    advice: str | None           # explain()'s diagnosis of it


def shape_report(model_name: str, B, T, C, H, W) -> ShapeReport:
    """Trace one random batch ``(B, T, C, H, W)`` through ``model_name`` built for ``C`` and ``H``.

    Bad sizes raise ``ValueError``. A forward that fails (say ``W != H``) is not an error here:
    the report holds the rows traced up to the failure, the message and the diagnosis.
    """
    B, T, C, H, W = check_dims(B, T, C, H, W)
    model = _model(model_name, C, H)
    x = torch.randn(B, T, C, H, W)                       # (B, T, C, H, W)
    try:
        return ShapeReport(trace_shapes(model, x), None, None)
    except (RuntimeError, ValueError, IndexError) as e:
        return ShapeReport(getattr(e, "trace", None), f"{type(e).__name__}: {e}", explain(e, model=model))


@dataclass
class Mistake:
    title: str                                           # the button's label
    story: str                                           # what the learner meant to do
    code: str                                            # the broken lines, as shown on the page
    run: Callable[[nn.Module, torch.Tensor], object]


def _video_into_conv(model, x):
    conv = model.encoder.module.blocks[0][0]             # the frame CNN's first Conv2d
    return conv(x)                                       # x is (B, T, C, H, W): 5-D


def _reshape_forgets_time(model, x):
    B, T, C, H, W = x.shape
    return x.view(B, C * H * W)                          # one vector per frame... but T is gone


def _flatten_time(model, x):
    feats = model.encoder(x).flatten(2)                  # (B, T, F)
    rnn = recurrent_layer(model)
    if not isinstance(rnn, nn.LSTM):                     # the ConvLSTM reads maps: use a plain LSTM
        rnn = nn.LSTM(feats.shape[-1], 32, batch_first=True)
    return rnn(feats.flatten(1))                         # (B, T*F): time folded into the features


def _lstm_sized_for_pixels(model, x):
    B, T, C, H, W = x.shape
    lstm = nn.LSTM(input_size=C * H * W, hidden_size=32, batch_first=True)
    return lstm(model.encoder(x).flatten(2))             # but the CNN gives F features per frame


def _loss_on_every_step(model, x):
    logits = model(x, all_steps=True)                    # (B, T, classes)
    y = torch.zeros(x.shape[0], dtype=torch.long)        # (B,): one label per clip
    return F.cross_entropy(logits, y)


MISTAKES: dict[str, Mistake] = {
    "video_into_conv": Mistake(
        "Video into Conv2d",
        "Run the CNN on the clips directly (seed 004: \"expected ndim=4, found ndim=5\").",
        "conv = nn.Conv2d(C, 16, 3, padding=1)\nconv(x)                       # x: (B, T, C, H, W)",
        _video_into_conv),
    "reshape_forgets_time": Mistake(
        "Reshape forgets T",
        "Flatten each frame to a vector, but write the reshape without the time axis (seed 004: "
        "\"total size of new array must be unchanged\").",
        "x.view(B, C * H * W)          # meant (B, T, C*H*W)",
        _reshape_forgets_time),
    "flatten_time": Mistake(
        "Flatten time away before the LSTM",
        "Flatten the CNN's output for the LSTM, time axis included (seed 004's Reshape((56*14,)): "
        "\"expected ndim=3, found ndim=2\").",
        "feats = encoder(x)            # (B, T, F)\nlstm(feats.flatten(1))        # (B, T*F)",
        _flatten_time),
    "lstm_sized_for_pixels": Mistake(
        "LSTM sized for pixels",
        "Size the LSTM for a raw frame, not for what the CNN makes of it.",
        "lstm = nn.LSTM(input_size=C*H*W, hidden_size=32, batch_first=True)\n"
        "lstm(encoder(x))              # (B, T, F), F != C*H*W",
        _lstm_sized_for_pixels),
    "loss_on_every_step": Mistake(
        "Loss on every step",
        "Classify the LSTM's whole output (B, T, H) and give the loss one label per clip.",
        "logits = classifier(lstm_output)   # (B, T, classes)\nF.cross_entropy(logits, y)     # y: (B,)",
        _loss_on_every_step),
}


@dataclass
class BrokenRun:
    code: str                    # the broken lines
    error: str                   # what PyTorch said
    advice: str                  # what explain() says about it


def break_it(key: str, model_name: str, B, T, C, H, W) -> BrokenRun:
    """Run mistake ``key`` on a batch of the given sizes; return PyTorch's message and the diagnosis."""
    if key not in MISTAKES:
        raise ValueError(f"Unknown mistake {key!r}: choose one of {sorted(MISTAKES)}.")
    mistake = MISTAKES[key]
    B, T, C, H, W = check_dims(B, T, C, H, W)
    model = _model(model_name, C, H).eval()
    x = torch.randn(B, T, C, H, W)                       # (B, T, C, H, W)
    try:
        with torch.no_grad(), explain_shapes(model):
            mistake.run(model, x)
    except (RuntimeError, ValueError, IndexError) as e:
        original = e.__cause__ if e.__cause__ is not None else e
        advice = str(e) if e is not original else explain(e, model=model)
        return BrokenRun(mistake.code, f"{type(original).__name__}: {original}", advice)
    return BrokenRun(mistake.code, "(no error with these sizes)",
                     "These sizes happen to hide the mistake: try T > 1 or other sizes.")

"""The Try-it tab without the web page: a drawing made MNIST-like, then read one quadrant at a time.

A model trained on quadrant sequences never needs the whole digit at once (and one trained on
direction clips never sees a whole clip at once either). Here the frames go in one per call,
the way a camera would deliver them: the frame CNN reads the frame, a
:class:`~cnnlstm_edu.layers.stateful.Stateful` recurrent layer continues from the state the
previous frame left, and the classifier says what the model believes so far. The beliefs are
exactly those of ``model(x, all_steps=True)``, which sees the four frames in one batch: that
equality is the lesson (and a test).

>>> import torch
>>> from cnnlstm_edu.models import build_model
>>> model = build_model("cnn_lstm").eval()
>>> x = torch.rand(1, 4, 1, 14, 14)                  # (B, T, C, H, W): one digit's quadrants
>>> streamed = stream_beliefs(model, x[0])           # (T, classes), one frame at a time
>>> torch.allclose(streamed, model(x, all_steps=True).softmax(-1)[0], atol=1e-5)
True
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import nn

from ..models.streaming import FrameStreamer
from ..modes import eval_mode
from ..pixels import to_float
from ..viz.images import upscale

__all__ = ["DEFAULT_MODEL_SECONDS", "STAND_IN_FACTOR", "default_model", "stand_in_seconds", "frames_strip", "sketch_to_mnist", "stream_beliefs"]

DEFAULT_MODEL_SECONDS = 8.0     # training time of the stand-in model a session without one gets
# Direction clips cost about 4x a quadrant sequence per step (6 frames of 24x24 against 4 of
# 14x14, measured 0.24 against 0.06 s at batch 32 on one busy CPU thread): their stand-in trains
# longer, so that it has seen the motion.
STAND_IN_FACTOR = {"quadrants": 1.0, "direction": 2.5}
MAX_SKETCH_PIXELS = 2048 * 2048  # a drawing is 280x280; bigger inputs would only cost memory


def _ink(image: np.ndarray) -> np.ndarray:
    """How much ink each pixel holds, 0..1, whatever the sketch's format: dark strokes on a light
    or transparent canvas (gradio's sketchpad) or light strokes on black (MNIST itself)."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.max(initial=0) > 1.0:
        img = img / 255.0
    if img.ndim == 2:
        lum, alpha = img, np.ones_like(img)
    elif img.ndim == 3 and img.shape[2] in (3, 4):
        lum = img[..., :3] @ np.array([0.299, 0.587, 0.114])      # (H, W) luminance
        alpha = img[..., 3] if img.shape[2] == 4 else np.ones_like(lum)
    else:
        raise ValueError(f"The sketch should be an image (H, W), (H, W, 3) or (H, W, 4), got shape {img.shape}.")
    if alpha.min() > 0.99 and np.median(lum) < 0.5:
        return lum                   # an opaque dark canvas: light strokes are the ink
    return alpha * (1.0 - lum)       # dark strokes; a transparent pixel holds none


def sketch_to_mnist(sketch) -> np.ndarray:
    """A drawing -> a ``(28, 28)`` uint8 digit prepared the way MNIST's were.

    ``sketch`` is what ``gr.Sketchpad`` hands over (a dict whose ``"composite"`` is the drawing)
    or a plain image array. As in MNIST: white ink on black; the digit's bounding box scaled to
    fit 20x20 keeping its aspect ratio (anti-aliased, hence grey edges); placed on a 28x28 field
    so that its centre of mass is the field's centre. An empty canvas raises ``ValueError``.

    >>> canvas = np.full((280, 280, 4), 0, dtype=np.uint8)        # transparent
    >>> canvas[60:220, 130:150] = (0, 0, 0, 255)                  # a black vertical stroke: a "1"
    >>> digit = sketch_to_mnist({"composite": canvas})
    >>> digit.shape, digit.dtype, int(digit[14, 14]) > 200, int(digit[0, 0])
    ((28, 28), dtype('uint8'), True, 0)
    >>> sketch_to_mnist(np.zeros((280, 280, 4), dtype=np.uint8))
    Traceback (most recent call last):
        ...
    ValueError: The canvas is empty: draw a digit first (a bold stroke, most of the canvas high).
    """
    from PIL import Image

    if isinstance(sketch, dict):
        sketch = sketch.get("composite")
    if sketch is None:
        raise ValueError("The canvas is empty: draw a digit first (a bold stroke, most of the canvas high).")
    shape = getattr(sketch, "shape", None)
    if shape is None or len(shape) < 2 or shape[0] * shape[1] > MAX_SKETCH_PIXELS:
        raise ValueError(f"The sketch should be an image of at most {MAX_SKETCH_PIXELS:,} pixels, (H, W), "
                         f"(H, W, 3) or (H, W, 4); got {type(sketch).__name__} of shape {shape}.")
    ink = _ink(sketch)                                                   # (H, W) in [0, 1]
    rows, cols = np.nonzero(ink > 0.1)
    if len(rows) < 3:
        raise ValueError("The canvas is empty: draw a digit first (a bold stroke, most of the canvas high).")
    crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]     # the bounding box
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))           # PIL wants (width, height)
    small = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize(size, Image.LANCZOS),
                       dtype=np.float64) / 255.0                          # (h', w'), longest side 20
    # Centre of mass to pixel (14, 14), where MNIST's digits have theirs (measured: 13.99, 14.00
    # on average), clipped so that the digit stays whole.
    ys, xs = np.indices(small.shape)
    mass = small.sum()
    cy, cx = (ys * small).sum() / mass, (xs * small).sum() / mass
    top = int(np.clip(round(14 - cy), 0, 28 - small.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - small.shape[1]))
    out = np.zeros((28, 28))
    out[top:top + small.shape[0], left:left + small.shape[1]] = small
    return (out.clip(0, 1) * 255).round().astype(np.uint8)


@torch.no_grad()
def stream_beliefs(model: nn.Module, seq: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``(T, classes)`` after each frame of ``seq`` ``(T, C, H, W)``, fed one
    frame per call through :class:`~cnnlstm_edu.models.streaming.FrameStreamer` (``Stateful``
    around the recurrent layer). The model runs in eval mode; its mode is restored.
    """
    device = next(model.parameters()).device
    x = to_float(seq.to(device)).unsqueeze(0)          # (1, T, C, H, W)
    with eval_mode(model):
        stream = FrameStreamer(model)
        beliefs = [stream(x[:, t])[0].float().softmax(-1) for t in range(x.shape[1])]  # T x (classes,)
    return torch.stack(beliefs).cpu()                  # (T, classes)


def frames_strip(seq: torch.Tensor, cell: int = 84, gap: int = 6) -> np.ndarray:
    """The frames ``(T, 1, H, W)`` side by side as one greyscale image, in the order they are fed;
    colour frames ``(T, 3, H, W)`` as one RGB image.

    >>> frames_strip(torch.zeros(4, 1, 14, 14)).shape
    (84, 354)
    >>> frames_strip(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape
    (64, 134, 3)
    """
    T, C, H, W = seq.shape
    k = max(1, cell // max(H, W))
    frames = to_float(seq[:, 0] if C == 1 else seq.permute(0, 2, 3, 1)).numpy()   # (T, H, W[, 3]) in [0, 1]
    big = upscale(frames, k, axes=(1, 2))                          # (T, kH, kW[, 3])
    out = np.full((k * H, T * k * W + (T - 1) * gap) + frames.shape[3:], 0.55)   # grey gaps between frames
    for t in range(T):
        out[:, t * (k * W + gap):t * (k * W + gap) + k * W] = big[t]
    return (out * 255).round().astype(np.uint8)


_default_lock = threading.Lock()
_default_models: dict[tuple[str, str | None, str], nn.Module] = {}


def stand_in_seconds(task: str = "quadrants") -> float:
    """How long the stand-in model of ``task`` trains."""
    return DEFAULT_MODEL_SECONDS * STAND_IN_FACTOR[task]


def default_model(order: str = "1234", seconds: float | None = None, device: str = "auto",
                  task: str = "quadrants") -> nn.Module:
    """A CNN-LSTM trained for ``seconds`` on ``task`` (quadrants in ``order``, or direction clips),
    once per process, task and order, for the sessions that have not trained their own. Shared
    read-only, in eval mode."""
    from ..models import build_model
    from ..train import fit, resolve_device
    from .settings import TrainSettings
    from .training import task_data

    settings = TrainSettings(task=task, order=order if task == "quadrants" else "1234")   # checks both
    key = (task, order if task == "quadrants" else None, str(resolve_device(device)))
    with _default_lock:
        if key not in _default_models:
            data = task_data(task, settings.order)
            torch.manual_seed(0)
            model = build_model("cnn_lstm", **settings.model_config())
            d = resolve_device(device)
            for _ in fit(model, (data.train_for(d), data.train_y), None, time_budget=seconds or stand_in_seconds(task),
                         batch_size=settings.app_task.batch_size, device=d):
                pass
            _default_models[key] = model.eval()
        return _default_models[key]

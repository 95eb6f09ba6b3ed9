"""What every figure of :mod:`cnnlstm_edu.viz` shares: a pyplot-free ``Figure`` that shows itself
as a PNG in Jupyter, and the small conversions the figures read their data through.

Figures are built with ``matplotlib.figure.Figure``, never ``pyplot``: no global figure list, so a
web server can draw from several threads at once. Jupyter's inline backend, though, renders only
pyplot's figures by itself; :func:`new_figure` therefore gives each figure its own PNG display
(``_repr_png_``), and a notebook shows it when it is the last value of a cell, without any
display hook registered anywhere.

>>> fig = new_figure(4, 3)
>>> fig.add_subplot().plot([0, 1], [1, 0])
[<matplotlib.lines.Line2D object at ...>]
>>> fig._repr_png_()[:4]
b'\\x89PNG'
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterable

import numpy as np
import torch

__all__ = ["new_figure", "shows_as_png", "figure_png", "step_names", "history_rows", "frame_images"]


def figure_png(fig) -> bytes | None:
    """The figure as PNG bytes, cropped to what was drawn: exactly what the inline backend does
    for pyplot's figures (None for a figure with nothing drawn)."""
    from IPython.core.pylabtools import print_figure

    return print_figure(fig, "png", bbox_inches="tight")


def shows_as_png(fig):
    """Give ``fig`` (any ``matplotlib.figure.Figure``) its own PNG display in Jupyter; returns it.

    >>> from matplotlib.figure import Figure
    >>> fig = Figure()
    >>> _ = fig.add_subplot()
    >>> shows_as_png(fig)._repr_png_()[:4]
    b'\\x89PNG'
    """
    fig._repr_png_ = types.MethodType(figure_png, fig)   # this figure only: no global hook
    return fig


def new_figure(width: float, height: float):
    """A ``width`` x ``height`` inch figure, constrained layout, that Jupyter draws as a PNG."""
    from matplotlib.figure import Figure

    return shows_as_png(Figure(figsize=(width, height), layout="constrained"))


def step_names(T: int, order: str | None) -> list[str]:
    """Names of the steps: ``frame 1: quadrant 4``, ... when ``order`` has one quadrant per step.

    >>> step_names(2, "41"), step_names(2, None)
    (['frame 1: quadrant 4', 'frame 2: quadrant 1'], ['frame 1', 'frame 2'])
    """
    if order and len(order) == T:
        return [f"frame {t + 1}: quadrant {q}" for t, q in enumerate(order)]
    return [f"frame {t + 1}" for t in range(T)]


def history_rows(history: Iterable) -> list[dict]:
    """fit() events or plain dicts -> dicts without NaNs.

    >>> history_rows([{"epoch": 1, "accuracy": float("nan"), "loss": 0.5}])
    [{'epoch': 1, 'loss': 0.5}]
    """
    rows = []
    for item in history:
        row = item.to_dict() if hasattr(item, "to_dict") else dict(item)
        rows.append({k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))})
    return rows


def frame_images(frames) -> list[np.ndarray]:
    """Frames ``(n, H, W)``, ``(n, 1, H, W)`` or ``(n, 3, H, W)`` (uint8 or float) as images for
    imshow: ``(H, W)`` or ``(H, W, 3)`` floats in [0, 1]. Float frames outside [0, 1] (normalised
    ones) are rescaled to their own range.

    >>> [img.shape for img in frame_images(torch.zeros(2, 3, 4, 5, dtype=torch.uint8))]
    [(4, 5, 3), (4, 5, 3)]
    """
    f = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames).detach().cpu()
    if f.dim() == 4 and f.shape[1] in (1, 3):
        f = f[:, 0] if f.shape[1] == 1 else f.permute(0, 2, 3, 1)           # (n, H, W) or (n, H, W, 3)
    elif f.dim() != 3:
        raise ValueError(f"expected frames (n, H, W) or (n, C, H, W) with C = 1 or 3, got {tuple(f.shape)}")
    f = f.float() / 255 if f.dtype == torch.uint8 else f.float()
    if len(f) and (f.min() < 0 or f.max() > 1):
        f = (f - f.min()) / max(float(f.max() - f.min()), 1e-6)
    return list(f.numpy())

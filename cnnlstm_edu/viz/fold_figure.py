"""Where each frame goes when time is folded into the batch: lesson 1's picture of ``fold_time``.

``fold_time`` turns a video batch ``(B, T, C, H, W)`` into ``(B*T, C, H, W)``; frame ``t`` of
clip ``b`` becomes row ``b*T + t``. :func:`plot_fold` draws a (small) batch in its ``(b, t)``
grid, each picture taken from the folded tensor's row ``b*T + t``: if the rule were wrong, the
clips would come out scrambled.

>>> import torch
>>> fig = plot_fold(torch.rand(2, 4, 1, 14, 14))
>>> [ax.get_title() for ax in fig.axes[:5]]
['x[0, 0] -> row 0', 'x[0, 1] -> row 1', 'x[0, 2] -> row 2', 'x[0, 3] -> row 3', 'x[1, 0] -> row 4']
"""

from __future__ import annotations

import torch

from ..shapes import fold_time
from .figure import frame_images, new_figure

__all__ = ["plot_fold"]


def plot_fold(x: torch.Tensor, max_clips: int = 4, max_steps: int = 8):
    """Each frame of ``x`` ``(B, T, C, H, W)`` in its place, titled with its row in ``fold_time(x)``.

    At most ``max_clips`` clips and ``max_steps`` frames per clip are drawn (a bigger batch
    would be unreadable); the rows are those of the whole batch.

    >>> plot_fold(torch.rand(2, 4, 14, 14))
    Traceback (most recent call last):
    ...
    ValueError: plot_fold: x must be a video batch (B, T, C, H, W), got shape (2, 4, 14, 14)
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 5:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"plot_fold: x must be a video batch (B, T, C, H, W), got shape {shape}")
    B, T = x.shape[:2]
    frames = fold_time(x)                                  # (B*T, C, H, W)
    rows, cols = min(B, max_clips), min(T, max_steps)
    fig = new_figure(2 * cols, 1.2 * rows + 0.4)
    grid = fig.subplots(rows, cols, squeeze=False)
    for b in range(rows):
        images = frame_images(frames[b * T:b * T + cols])     # rows b*T .. b*T + cols - 1
        for t in range(cols):
            grid[b, t].imshow(images[t], cmap="gray")
            grid[b, t].set_title(f"x[{b}, {t}] -> row {b * T + t}", fontsize=8)
            grid[b, t].axis("off")
    fig.suptitle("each frame of each clip becomes one row of the folded batch", fontsize=9)
    return fig

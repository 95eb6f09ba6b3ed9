"""Figures for the track task (lesson 08): boxes drawn over a clip, and IoU frame by frame.

- :func:`plot_track`: chosen frames of one clip, each with one rectangle per named track (the
  truth, a tracker, a baseline), so a reader sees where a track leaves its digit.
- :func:`plot_iou_by_frame`: mean IoU against the frames since the given first box, one line per
  track, with the horizons of :data:`~cnnlstm_edu.data.tracking.HORIZONS` marked.

Boxes are ``(x0, y0, x1, y1)`` in pixels with exclusive ends, as :func:`cnnlstm_edu.data.track`
gives them: pixel ``j`` spans ``j .. j + 1``. ``imshow`` centres pixel ``j`` on ``j``, so a box
is drawn shifted by half a pixel, and its edges fall exactly on the pixel borders.

>>> from cnnlstm_edu.data import track
>>> clips, boxes = track(1, split="test", seq_len=6, seed=0)
>>> fig = plot_track(clips[0], {"truth": boxes[0]})
>>> len(fig.axes), fig.axes[0].get_title()
(6, 'frame 0')
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..data.tracking import HORIZONS
from .figure import frame_images, new_figure

__all__ = ["plot_track", "plot_iou_by_frame"]

_STYLES = ("-", "--", ":", "-.")


def _tracks(tracks, T: int) -> dict[str, np.ndarray]:
    """Each named track as a ``(T, 4)`` array, checked against the clip's ``T``."""
    if not isinstance(tracks, dict) or not tracks:
        raise ValueError("plot_track: tracks must map a name to its boxes (T, 4), e.g. {'truth': boxes}")
    out = {}
    for name, boxes in tracks.items():
        b = np.asarray(torch.as_tensor(boxes).detach().cpu().float())
        if b.shape != (T, 4):
            raise ValueError(f"plot_track: track {name!r} has boxes of shape {b.shape}; the clip has "
                             f"{T} frames, so it needs ({T}, 4): one (x0, y0, x1, y1) per frame")
        out[name] = b
    return out


def plot_track(clip: torch.Tensor, tracks: dict, frames: Sequence[int] | None = None, size: float = 1.4):
    """Frames of one clip ``(T, C, H, W)`` with each track's box drawn over them.

    ``tracks`` maps a name to its boxes ``(T, 4)``; ``frames`` picks the frames to show (all of
    them by default). Frame 0 is the frame in which the first box is given.

    >>> clip = torch.zeros(5, 1, 8, 8)                          # (T, C, H, W)
    >>> truth = torch.tensor([1., 1, 4, 4]).repeat(5, 1)         # (T, 4)
    >>> fig = plot_track(clip, {"truth": truth, "tracker": truth + 1}, frames=[0, 4])
    >>> [ax.get_title() for ax in fig.axes], len(fig.axes[1].patches)
    (['frame 0', 'frame 4'], 2)
    """
    images = frame_images(clip)
    T = len(images)
    shown = list(range(T)) if frames is None else list(frames)
    bad = [t for t in shown if not isinstance(t, (int, np.integer)) or not 0 <= t < T]
    if not shown or bad:
        raise ValueError(f"plot_track: frames must be frame indices 0 .. {T - 1} of this clip, got {bad or shown}")
    boxes = _tracks(tracks, T)
    fig = new_figure(size * len(shown) + 0.4, size + 0.6)
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    from matplotlib.patches import Rectangle

    for ax, t in zip(axes, shown):
        ax.imshow(images[t], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"frame {t}", fontsize=8)
        for k, (name, b) in enumerate(boxes.items()):
            x0, y0, x1, y1 = b[t]
            # Pixel j spans j-0.5 .. j+0.5 in imshow's coordinates: shift by half a pixel.
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color=f"C{k}",
                                   linestyle=_STYLES[k % len(_STYLES)], linewidth=1.4,
                                   label=name if t == shown[0] else None))
    fig.legend(fontsize=7, loc="outside lower center", ncol=min(len(boxes), 5))
    return fig


def plot_iou_by_frame(curves: dict, horizons: Sequence[int] = HORIZONS, title: str | None = None):
    """Mean IoU per frame, one line per track: ``curves`` maps a name to its ``(T,)`` IoUs.

    Index 0 is the frame whose box was given (IoU 1 for every track that starts from it); the
    dotted verticals mark ``horizons`` (frames after the first box) that the clips reach.

    >>> fig = plot_iou_by_frame({"static box": torch.tensor([1.0, 0.5, 0.3]), "tracker": [1.0, 0.9, 0.8]})
    >>> fig.axes[0].get_xlabel(), [line.get_label() for line in fig.axes[0].get_lines()[:2]]
    ('frames since the given box', ['static box', 'tracker'])
    """
    if not isinstance(curves, dict) or not curves:
        raise ValueError("plot_iou_by_frame: curves must map a name to its IoU per frame, (T,)")
    fig = new_figure(6.0, 3.0)
    ax = fig.add_subplot()
    T = 0
    for k, (name, values) in enumerate(curves.items()):
        v = np.asarray(torch.as_tensor(values, dtype=torch.float64))
        if v.ndim != 1:
            raise ValueError(f"plot_iou_by_frame: curve {name!r} must be one IoU per frame (T,), got shape {v.shape}")
        ax.plot(np.arange(len(v)), v, _STYLES[(k // 10) % len(_STYLES)], color=f"C{k % 10}", label=str(name))
        T = max(T, len(v))
    for h in horizons:
        if h < T:
            ax.axvline(h, color="gray", linestyle=":", linewidth=0.8)
    ax.set_xlabel("frames since the given box")
    ax.set_ylabel("mean IoU")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return fig

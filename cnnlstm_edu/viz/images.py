"""Plain RGB arrays for live views that refresh several times a second (the app).

Drawing a matplotlib figure costs about a hundred milliseconds; building these arrays costs one.
:func:`upscale` is the one image upscaler of the package (nearest neighbour: pixels stay square
pixels, so the browser shows a 14 x 14 quadrant as blocks, not as a blur);
:func:`activation_mosaic` draws a :class:`~cnnlstm_edu.analysis.Probe` and :func:`heatmap_image`
a matrix such as the hidden state after each step.

>>> upscale(np.eye(2, dtype=np.uint8), 2)
array([[1, 1, 0, 0],
       [1, 1, 0, 0],
       [0, 0, 1, 1],
       [0, 0, 1, 1]], dtype=uint8)
"""

from __future__ import annotations

import numpy as np
import torch

from ..analysis import Probe
from ..checks import check_number

__all__ = ["upscale", "activation_mosaic", "heatmap_image"]


def upscale(img, k: int | tuple[int, int], axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """``img`` scaled up by whole factors, each pixel repeated into a ``k`` x ``k`` block.

    ``k`` is one factor or a pair ``(rows, columns)``; ``axes`` are the image's height and width
    axes: ``(0, 1)`` for ``(H, W)`` and ``(H, W, 3)`` images, ``(1, 2)`` for a stack ``(T, H, W)``.

    >>> upscale(np.zeros((28, 28)), 5).shape                 # (5*H, 5*W)
    (140, 140)
    >>> upscale(np.zeros((4, 14, 14)), 6, axes=(1, 2)).shape # (T, 6*H, 6*W)
    (4, 84, 84)
    >>> upscale(np.zeros((2, 3, 3)), (16, 5)).shape          # (16*rows, 5*cols, RGB)
    (32, 15, 3)
    >>> upscale(np.zeros((2, 2)), 0)
    Traceback (most recent call last):
    ValueError: upscale: k must be a positive int, got 0.
    """
    kh, kw = (k, k) if not isinstance(k, (tuple, list)) else k
    kh = check_number(kh, "k", integer=True, low=1, owner="upscale")
    kw = check_number(kw, "k", integer=True, low=1, owner="upscale")
    return np.repeat(np.repeat(np.asarray(img), kh, axis=axes[0]), kw, axis=axes[1])


def _colormap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def _to_cell(img: np.ndarray, size: int) -> np.ndarray:
    """Scale a (h, w[, 3]) image up by a whole factor and centre it on a ``size`` x ``size`` cell."""
    h, w = img.shape[:2]
    big = upscale(img, max(1, size // max(h, w)))[:size, :size]           # (k*h, k*w[, 3])
    cell = np.zeros((size, size) + img.shape[2:], dtype=img.dtype)
    top, left = (size - big.shape[0]) // 2, (size - big.shape[1]) // 2
    cell[top:top + big.shape[0], left:left + big.shape[1]] = big
    return cell


def _mosaic_groups(p: Probe, channels: int) -> list[list[np.ndarray]]:
    """The probe's frames (grey) and each block's first ``channels`` maps (viridis), as RGB stacks
    ``(T, h, w, 3)``; a channel's colours share one scale across the frames."""
    viridis, grey = _colormap("viridis"), _colormap("gray")
    groups = [[grey(p.frames[:, 0].numpy().clip(0, 1))[..., :3]]]          # [(T, H, W, 3)]
    for m in p.maps:
        m = m[:, :channels].numpy()                                         # (T, k, h, w)
        lo = m.min(axis=(0, 2, 3), keepdims=True)
        hi = m.max(axis=(0, 2, 3), keepdims=True)
        m = (m - lo) / np.maximum(hi - lo, 1e-6)                            # per channel, over frames
        groups.append([viridis(m[:, c])[..., :3] for c in range(m.shape[1])])
    return groups


def activation_mosaic(p: Probe, channels: int = 8, cell: int = 42, gap: int = 4,
                      group_gap: int = 14) -> np.ndarray:
    """One RGB image of a :class:`~cnnlstm_edu.analysis.Probe`: a row per frame, in the order the
    model read them.

    Each row holds the frame (grey), then the first ``channels`` feature maps of every conv
    block (viridis), each scaled up to a ``cell``-pixel square. A channel's colours share one
    scale across the frames, so a map that lights up for frame 3 and not for frame 1 shows it.

    >>> p = Probe(torch.rand(4, 1, 14, 14), [torch.rand(4, 16, 7, 7)], torch.zeros(4, 8), torch.rand(4, 10))
    >>> activation_mosaic(p, channels=2).shape      # 4 rows; frame + 2 maps per row
    (180, 144, 3)
    """
    T = p.frames.shape[0]
    groups = _mosaic_groups(p, channels)
    width = sum(len(g) * cell + (len(g) - 1) * gap for g in groups) + group_gap * (len(groups) - 1)
    height = T * cell + (T - 1) * gap
    out = np.full((height, width, 3), 0.93)                                 # light grey background
    for t in range(T):
        y, x = t * (cell + gap), 0
        for g in groups:
            for img in g:
                out[y:y + cell, x:x + cell] = _to_cell(img[t], cell)
                x += cell + gap
            x += group_gap - gap
    return (out * 255).round().astype(np.uint8)


def heatmap_image(values: torch.Tensor | np.ndarray, vmin: float = -1.0, vmax: float = 1.0,
                  cmap: str = "RdBu_r", width: int = 640, row_height: int = 16) -> np.ndarray:
    """A ``(rows, cols)`` matrix as an RGB image, each value one coloured block, no axes.

    The LSTM's hidden state lives in (-1, 1) (``h = o * tanh(c)``), hence the fixed diverging
    scale: blue negative, white zero, red positive.

    >>> heatmap_image(torch.zeros(4, 128)).shape    # (T, hidden) -> 4 rows of 16 px, 5 px per unit
    (64, 640, 3)
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or 0 in v.shape:
        raise ValueError(f"heatmap_image: expected a non-empty (rows, cols) matrix, got shape {v.shape}")
    rgb = _colormap(cmap)(((v - vmin) / (vmax - vmin)).clip(0, 1))[..., :3]  # (rows, cols, 3)
    rgb = upscale(rgb, (row_height, max(1, width // v.shape[1])))            # (rows*rh, cols*k, 3)
    return (rgb * 255).round().astype(np.uint8)

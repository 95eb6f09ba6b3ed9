"""Figures of sequences of frames: data, forecasts, and a stream cut into chunks.

:func:`plot_frames` (clips as rows of frames: quadrant orders, videos), :func:`plot_examples`
(digits with their labels and predictions), :func:`plot_forecast` (a next-frame model's forecast
beside the truth and the copy-last baseline) and :func:`plot_chunks` (a sequence streamed in
chunks against the whole).

>>> len(plot_frames([torch.rand(3, 8, 8)]).axes)           # one row of 3 frames
3
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..modes import eval_mode
from ..pixels import to_float
from .figure import frame_images, new_figure

__all__ = ["plot_frames", "plot_examples", "plot_forecast", "plot_chunks"]


def plot_frames(rows, titles: Sequence | None = None, start=None, title: str | None = None,
                size: float = 1.0):
    """Clips as rows of frames, each row labelled on the left: quadrant orders, videos, forecasts.

    ``rows`` maps a row name to its frames, ``(T, H, W)`` or ``(T, C, H, W)`` with C = 1 or 3,
    uint8 or float in [0, 1] (a list of such tensors gets no names). Rows may differ in length
    and in frame size: a row of tall ``56 x 14`` frames gets a taller row. ``start`` maps a row
    name to the column its first frame goes in (a forecast that begins after the context
    frames); the cells before it stay empty. ``titles`` is one title per column (a list of
    strings) or one list per row, for that row's own frames; by default the top row's columns
    are numbered ``frame 1``, ``frame 2``, ... ``title`` goes above the whole figure.

    >>> clip = torch.rand(10, 1, 32, 32)                # (T, C, H, W)
    >>> fig = plot_frames({"truth": clip, "forecast": clip[5:]}, start={"forecast": 5})
    >>> len(fig.axes), fig.axes[0].get_title()          # 2 rows x 10 columns
    (20, 'frame 1')
    >>> from cnnlstm_edu.data import quadrant_sequences
    >>> digit = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)       # (N, H, W)
    >>> fig = plot_frames({"1234": quadrant_sequences(digit, "1234")[0],     # (T, C, H, W)
    ...                    "4321": quadrant_sequences(digit, "4321")[0]}, titles=["t=1", "t=2", "t=3", "t=4"])
    >>> len(fig.axes), fig.axes[0].get_ylabel(), fig.axes[1].get_title()
    (8, '1234', 't=2')
    """
    names, seqs, firsts, titles, title_firsts = _frame_rows(rows, titles, start)
    cols = max(first + len(seq) for first, seq in zip(firsts, seqs))
    # A row as tall as its frames are, relative to their width (clipped, so one odd row stays readable).
    ratios = [min(max(q[0].shape[0] / q[0].shape[1], 0.5), 4.0) if q else 1.0 for q in seqs]
    fig = new_figure(0.9 * size * cols + (1.2 if any(names) else 0.2), 0.95 * size * sum(ratios) + 0.4)
    axes = fig.subplots(len(seqs), cols, squeeze=False, gridspec_kw={"height_ratios": ratios})
    for r, (name, seq, first) in enumerate(zip(names, seqs, firsts)):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if first <= c < first + len(seq):
                ax.imshow(seq[c - first], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.axis("off")
            k = c - title_firsts[r]
            if r < len(titles) and 0 <= k < len(titles[r]) and (first <= c < first + len(seq) or r == 0):
                ax.set_title(titles[r][k], fontsize=7)
        if name is not None:
            if first > 0:                 # an empty first cell: keep only the row's name visible
                axes[r, 0].axis("on")
                for side in axes[r, 0].spines.values():
                    side.set_visible(False)
            axes[r, 0].set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _frame_rows(rows, titles, start):
    """plot_frames' arguments read into lists, one item per row: names, frame images, the column
    of each row's first frame, the titles, and the column each row's titles start at."""
    if isinstance(rows, dict):
        names, seqs = list(rows), [frame_images(v) for v in rows.values()]
    else:
        names, seqs = [None] * len(rows), [frame_images(v) for v in rows]
    if not seqs or not any(seqs):
        raise ValueError("plot_frames: no frames to draw")
    start = dict(start or {})
    firsts = [start.get(name, 0) for name in names]
    if titles is None:  # the top row's columns numbered, from the first column
        cols = max(first + len(seq) for first, seq in zip(firsts, seqs))
        return names, seqs, firsts, [[f"frame {c + 1}" for c in range(cols)]] + [[]] * (len(seqs) - 1), [0] * len(seqs)
    if titles and isinstance(titles[0], str):
        titles = [list(titles)] * len(seqs)
    return names, seqs, firsts, titles, firsts

def plot_examples(images: torch.Tensor, labels: Sequence[int], preds: Sequence[int] | None = None,
                  columns: int = 8):
    """Digits ``(N, 28, 28)`` in a grid, titled with their label (and prediction, when given).

    >>> fig = plot_examples(torch.zeros(3, 28, 28), [1, 2, 3], [1, 7, 3])
    >>> fig.axes[1].get_title()
    'true 2, said 7'
    """
    n = len(images)
    rows = max(1, math.ceil(n / columns))
    fig = new_figure(1.2 * min(n, columns) + 0.2, 1.35 * rows)
    for i in range(n):
        ax = fig.add_subplot(rows, min(n, columns), i + 1)
        ax.imshow(np.asarray(images[i]), cmap="gray")
        ax.set_xticks([]), ax.set_yticks([])
        title = f"true {labels[i]}" + (f", said {preds[i]}" if preds is not None else "")
        ax.set_title(title, fontsize=7, color="#b30000" if preds is not None and preds[i] != labels[i] else "black")
    return fig


@torch.no_grad()
def plot_forecast(model: nn.Module, clip: torch.Tensor, context: int | None = None,
                  horizon: int | None = None):
    """A next-frame model at work on one clip: what it saw, what came next, what it forecast.

    ``clip`` is one video ``(T, C, H, W)`` (or ``(1, T, C, H, W)``), uint8 or float in [0, 1].
    The model (a :class:`~cnnlstm_edu.models.NextFrame`) reads the first ``context`` frames and
    forecasts ``horizon`` more, feeding each forecast back in (both default to the model's
    config, capped by the clip's length). Four rows: the frames seen, the true next frames, the
    forecast, and the baseline every forecaster must beat, the last frame seen copied; the
    last two are titled with their squared error per pixel.

    >>> from cnnlstm_edu.data.moving_mnist import moving_mnist
    >>> from cnnlstm_edu.models import build_model
    >>> fig = plot_forecast(build_model("next_frame"), moving_mnist(1, seq_len=10)[0], context=5, horizon=5)
    >>> [ax.get_ylabel() for ax in fig.axes[::5]]
    ['seen', 'truth', 'forecast', 'copy last']
    """
    if clip.dim() == 5:
        clip = clip[0]                                             # (T, C, H, W)
    if clip.dim() != 4:
        raise ValueError(f"plot_forecast: expected one clip (T, C, H, W), got {tuple(clip.shape)}")
    config = getattr(model, "config", None)
    k = context or getattr(config, "context", 5)
    m = horizon or min(getattr(config, "horizon", 5), clip.shape[0] - k)
    if not 1 <= k < clip.shape[0] or m < 1:
        raise ValueError(f"plot_forecast: a clip of {clip.shape[0]} frames cannot give {k} to read and "
                         f"{m} to forecast")
    device = next(model.parameters()).device
    frames = to_float(clip).cpu()                                  # (T, C, H, W) in [0, 1]
    with eval_mode(model):
        pred = model.forecast(frames[None, :k].to(device), m)[0].float().cpu()   # (m, C, H, W)
    truth = frames[k:k + m]                                        # (m', C, H, W): what the clip holds
    copy = frames[k - 1:k].expand(m, -1, -1, -1)                   # (m, C, H, W)
    mse = lambda a: [f"{float((a[t] - truth[t]).square().mean()):.4f}" if t < len(truth) else ""  # noqa: E731
                     for t in range(m)]
    titles = [[f"t={t}" for t in range(k)], [f"t={k + t}" for t in range(m)],
              [f"mse {e}" if e else "" for e in mse(pred)], [f"mse {e}" if e else "" for e in mse(copy)]]
    return plot_frames({"seen": frames[:k], "truth": truth, "forecast": pred, "copy last": copy}, titles=titles)


def plot_chunks(whole: torch.Tensor, parts: Sequence[torch.Tensor], units: int = 3, sample: int = 0):
    """A sequence fed in chunks against the same sequence fed whole: where the cuts fell, and
    that the outputs match across them.

    ``whole`` is a recurrent layer's output for the whole sequence ``(B, T, ...)``; ``parts`` the
    outputs of the chunks ``(B, t_k, ...)`` (e.g. from
    :func:`~cnnlstm_edu.layers.stateful.feed_in_chunks`), batch first. The top panel shows the
    chunks along time; the bottom one the first ``units`` output values of clip ``sample``:
    lines for the whole run, dots for the chunked one (coloured by chunk). The title gives the
    largest difference anywhere.

    >>> whole = torch.randn(2, 7, 5)                  # (B, T, H)
    >>> fig = plot_chunks(whole, whole.split(3, dim=1))
    >>> fig.axes[0].get_title()
    'chunks of 3, 3, 1 frames: max |whole - chunked| = 0'
    """
    whole = whole.detach().float().cpu()
    parts = [p.detach().float().cpu() for p in parts]
    chunked = torch.cat(parts, dim=1)
    if chunked.shape != whole.shape:
        raise ValueError(f"plot_chunks: the chunks add up to {tuple(chunked.shape)}, the whole sequence "
                         f"is {tuple(whole.shape)}; pass the chunks of this same sequence, batch first")
    T = whole.shape[1]
    diff = float((chunked - whole).abs().max())
    sizes = [p.shape[1] for p in parts]
    fig = new_figure(8, 3.6)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1, 3])
    begin = 0
    for k, n in enumerate(sizes):
        top.barh(0, n, left=begin + 0.5, color=f"C{k % 10}", edgecolor="white")
        top.text(begin + 0.5 + n / 2, 0, f"{n}", ha="center", va="center", fontsize=8, color="white")
        begin += n
    top.set_yticks([])
    top.set_title(f"chunks of {', '.join(map(str, sizes))} frames: max |whole - chunked| = {diff:.2g}",
                  fontsize=9)
    w = whole[sample].reshape(T, -1)[:, :units]       # (T, units)
    c = chunked[sample].reshape(T, -1)[:, :units]
    steps = np.arange(1, T + 1)                       # frames numbered from 1
    chunk_of = np.repeat(np.arange(len(sizes)), sizes)
    for u in range(w.shape[1]):
        bottom.plot(steps, w[:, u].numpy(), color="0.6", linewidth=1.2, label="whole" if u == 0 else None)
        bottom.scatter(steps, c[:, u].numpy(), c=[f"C{k % 10}" for k in chunk_of], s=14, zorder=3,
                       label="chunked" if u == 0 else None)
    for b in np.cumsum(sizes)[:-1]:
        bottom.axvline(b + 0.5, color="0.3", linestyle=":", linewidth=0.8)
    bottom.set_xlabel("frame")
    bottom.set_ylabel(f"first {w.shape[1]} outputs")
    bottom.legend(fontsize=7, loc="upper right")
    return fig

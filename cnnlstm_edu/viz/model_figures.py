"""Figures of one model at work: what each frame does to the CNN, the state, the gates, the belief.

:func:`plot_activations` (every frame and the CNN's feature maps of it), :func:`plot_hidden` (the
recurrent state after each step), :func:`plot_beliefs` (class probabilities after 1, 2, 3, 4
frames), :func:`plot_gates` (the gates of :class:`~cnnlstm_edu.layers.lstm.LSTM`) and
:func:`plot_recurrent_parameters` (dense LSTM gates versus convolutional gates on a feature map).
They draw what :mod:`cnnlstm_edu.analysis` computed: a :class:`~cnnlstm_edu.analysis.Probe`, or
tensors of the same shapes.

>>> p = Probe(torch.rand(4, 1, 14, 14), [torch.rand(4, 16, 7, 7)], torch.zeros(4, 8), torch.full((4, 10), 0.1))
>>> len(plot_beliefs(p, order="1234", label=3).axes)        # 4 frames above 4 bar charts
8
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..analysis import Probe
from .figure import frame_images, new_figure, step_names

__all__ = ["plot_activations", "plot_hidden", "plot_beliefs", "plot_gates", "plot_recurrent_parameters"]


def plot_activations(p: Probe, channels: int = 8, order: str | None = None):
    """Every frame (left) and the first ``channels`` feature maps of each conv block, a row per frame.

    >>> p = Probe(torch.rand(4, 1, 14, 14), [torch.rand(4, 16, 7, 7)], torch.zeros(4, 8), torch.rand(4, 10))
    >>> fig = plot_activations(p, channels=4, order="1234")
    >>> len(fig.axes)                  # 4 frames x (frame + 4 maps)
    20
    """
    T = p.frames.shape[0]
    groups = [("input", p.frames[:, :1])] + [(name, m[:, :channels]) for name, m in zip(p.block_names, p.maps)]
    cols = sum(g.shape[1] for _, g in groups)
    fig = new_figure(1.0 + 0.9 * cols, 1.0 * T + 0.6)
    axes = fig.subplots(T, cols, squeeze=False)
    names = step_names(T, order)
    for t in range(T):
        c = 0
        for name, g in groups:
            scale = g.amax(dim=(0, 2, 3)) if name != "input" else torch.ones(1)
            for k in range(g.shape[1]):
                ax = axes[t, c]
                ax.imshow(g[t, k].numpy(), cmap="gray" if name == "input" else "viridis",
                          vmin=0 if name == "input" else float(g[:, k].min()), vmax=float(scale[k]) or 1.0)
                ax.set_xticks([]), ax.set_yticks([])
                if t == 0:
                    ax.set_title(name if k == 0 else f"ch {k}", fontsize=7)
                c += 1
        axes[t, 0].set_ylabel(names[t].replace(": ", "\n"), fontsize=7)
    fig.suptitle("each frame and what the CNN makes of it", fontsize=9)
    return fig


def plot_hidden(hidden: torch.Tensor, order: str | None = None):
    """The recurrent state ``(T, D)`` after each step as a heatmap, one row per step.

    >>> fig = plot_hidden(torch.zeros(4, 128))
    >>> fig.axes[0].get_ylabel()
    'step'
    """
    h = torch.as_tensor(hidden).float().cpu()
    fig = new_figure(7, 0.4 * h.shape[0] + 1.0)
    ax = fig.add_subplot()
    im = ax.imshow(h.numpy(), aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_yticks(range(h.shape[0]), step_names(h.shape[0], order), fontsize=7)
    ax.set_ylabel("step")
    ax.set_xlabel("hidden unit")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def plot_beliefs(probs: torch.Tensor, order: str | None = None, label: int | None = None,
                 frames: torch.Tensor | None = None):
    """What the model believes after 1, 2, ..., T frames: one bar chart of class probabilities per step.

    ``label`` (the true class) is marked. ``probs`` is ``(T, classes)``, e.g. ``Probe.probs`` or
    ``model(x, all_steps=True).softmax(-1)[0]``. With ``frames`` ``(T, C, H, W)`` each step's
    frame is drawn above its bars: what came in, and what the model made of everything so far.
    A :class:`Probe` in place of ``probs`` brings its own frames:
    ``plot_beliefs(probe(model, seq), order, label)``.

    >>> fig = plot_beliefs(torch.full((4, 10), 0.1), order="4321", label=3)
    >>> [ax.get_title() for ax in fig.axes][:2]
    ['frame 1: quadrant 4', 'frame 2: quadrant 3']
    >>> len(plot_beliefs(torch.full((4, 10), 0.1), frames=torch.rand(4, 1, 14, 14)).axes)  # 4 frames + 4 charts
    8
    """
    if isinstance(probs, Probe):
        probs, frames = probs.probs, probs.frames if frames is None else frames
    probs = torch.as_tensor(probs).float().cpu()
    T, K = probs.shape
    names = step_names(T, order)
    if frames is None:
        fig = new_figure(2.2 * T, 2.0)
        axes = fig.subplots(1, T, sharey=True, squeeze=False)[0]
    else:
        images = frame_images(frames)                                         # T x (H, W[, 3])
        if len(images) != T:
            raise ValueError(f"plot_beliefs: {len(images)} frames for {T} steps of probabilities")
        fig = new_figure(2.2 * T, 4.0)
        grid = fig.subplots(2, T, squeeze=False, gridspec_kw={"height_ratios": [1.1, 1]})
        for t, ax in enumerate(grid[0]):
            ax.imshow(images[t], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(names[t], fontsize=8)
        axes = grid[1]
    for t, ax in enumerate(axes):
        colors = ["#fd8d3c" if k == int(probs[t].argmax()) else "#6baed6" for k in range(K)]
        ax.bar(range(K), probs[t].numpy(), color=colors)
        ax.set_xticks(range(K))
        ax.set_ylim(0, 1)
        if frames is None:
            ax.set_title(names[t], fontsize=8)
        elif t:
            ax.set_yticklabels([])
        if label is not None:
            ax.get_xticklabels()[label].set_fontweight("bold")
            ax.axvline(label, color="#31a354", linewidth=0.8, linestyle=":")
    axes[0].set_ylabel("probability")
    return fig


def plot_gates(gates, sample: int = 0):
    """The four gates of :class:`~cnnlstm_edu.layers.lstm.LSTM` over time: heatmaps ``(T, H)``.

    ``gates`` is the :class:`~cnnlstm_edu.layers.lstm.LSTMGates` that ``LSTM(...)(x,
    return_gates=True)`` returns, each ``(B, T, H)``; ``sample`` picks the clip.

    >>> from cnnlstm_edu.layers.lstm import LSTM
    >>> _, _, gates = LSTM(input_size=3, hidden_size=6)(torch.randn(2, 5, 3), return_gates=True)
    >>> [ax.get_title() for ax in plot_gates(gates).axes[:4]]
    ['input gate i', 'forget gate f', 'candidate g', 'output gate o']
    """
    names = [("i", "input gate i", 0, 1), ("f", "forget gate f", 0, 1), ("g", "candidate g", -1, 1),
             ("o", "output gate o", 0, 1)]
    fig = new_figure(10, 2.6)
    for ax, (key, title, lo, hi) in zip(fig.subplots(1, 4), names):
        g = getattr(gates, key)[sample].detach().float().cpu().numpy()     # (T, H)
        im = ax.imshow(g, aspect="auto", cmap="RdBu_r" if lo < 0 else "viridis", vmin=lo, vmax=hi,
                       interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("unit")
        ax.set_ylabel("step")
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def plot_recurrent_parameters(channels: int, hidden: int, kernel_size: int = 3,
                              sizes: Sequence[int] = range(1, 15), mark: int | None = None):
    """Parameters of the recurrent layer over a ``(channels, s, s)`` feature map, against ``s``.

    Two lines from :func:`~cnnlstm_edu.models.recurrent_parameters`: an ``nn.LSTM`` on the
    flattened map (grows with the map's area) and a ConvLSTM on the map (does not depend on it).
    ``mark`` (a map size) marks and labels both counts there. Log scale: they differ by orders
    of magnitude.

    >>> fig = plot_recurrent_parameters(1024, 256, mark=7)            # seed 002's MobileNet map
    >>> fig.axes[0].get_yscale(), fig.axes[0].get_xlabel()
    ('log', 'map size s (the map is s x s)')
    """
    from ..models import recurrent_parameters

    sizes = list(sizes)
    counts = [recurrent_parameters(channels, s, s, hidden, kernel_size) for s in sizes]
    fig = new_figure(6.4, 3.4)
    ax = fig.add_subplot()
    ax.plot(sizes, [c["lstm"] for c in counts], "o-", color="#e6550d", markersize=3,
            label="LSTM on the flattened map (CNN-LSTM)")
    ax.plot(sizes, [c["convlstm"] for c in counts], "o-", color="#3182bd", markersize=3,
            label=f"ConvLSTM, {kernel_size}x{kernel_size} gates (CNN-ConvLSTM)")
    if mark is not None:
        at = recurrent_parameters(channels, mark, mark, hidden, kernel_size)
        for key, color in (("lstm", "#e6550d"), ("convlstm", "#3182bd")):
            ax.plot([mark], [at[key]], "o", color=color, markersize=8, markerfacecolor="none")
            # Below-right of the rising LSTM line, above the flat ConvLSTM one: clear of both.
            ax.annotate(f"{at[key]:,}", (mark, at[key]), textcoords="offset points", fontsize=8, color=color,
                        xytext=(8, -6) if key == "lstm" else (6, 6), va="top" if key == "lstm" else "baseline")
        ax.set_title(f"({channels}, {mark}, {mark}) map into {hidden} hidden units: the LSTM needs "
                     f"{at['lstm'] / at['convlstm']:.1f}x the parameters", fontsize=9)
    ax.set_yscale("log")
    ax.set_xlabel("map size s (the map is s x s)")
    ax.set_ylabel("parameters")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    return fig

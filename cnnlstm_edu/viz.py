"""Pictures of a CNN-LSTM at work: what each frame does to the CNN, the state and the belief.

Two kinds of helpers, for two kinds of readers:

- **matplotlib figures** for notebooks and reports: :func:`plot_activations` (every frame and
  the CNN's feature maps of it), :func:`plot_hidden` (the recurrent state after each step),
  :func:`plot_beliefs` (class probabilities after 1, 2, 3, 4 frames), :func:`plot_curves` (loss
  and accuracy from :func:`~cnnlstm_edu.train.fit`'s events), :func:`plot_confusion`,
  :func:`plot_examples` (digits with their labels and predictions), :func:`plot_gates` (the
  gates of :class:`~cnnlstm_edu.layers.lstm.LSTM`) and :func:`plot_fold_vs_loop` (timings from
  :mod:`cnnlstm_edu.bench`). Each returns a ``matplotlib.figure.Figure``
  built without ``pyplot``, so a web server can draw from several threads at once; in Jupyter
  the figure shows itself when it is the last value of a cell.
- **plain RGB arrays** for live views that refresh several times a second (the app):
  :func:`activation_mosaic` and :func:`heatmap_image` cost a millisecond, where drawing a
  matplotlib figure costs a hundred.

The shape pipeline figure is :meth:`ShapeTrace.plot <cnnlstm_edu.trace.ShapeTrace.plot>`.
Both kinds read a :class:`Probe`: one sequence run through a model once, with everything
recorded on the way (:func:`probe`).

Figures of data and of results that are not one model's probe: :func:`plot_frames` (sequences
of frames as rows: quadrant orders, videos), :func:`plot_forecast` (a next-frame model's forecast
beside the truth and the copy-last baseline), :func:`plot_step_accuracy` (accuracy after
1, 2, ..., T frames, per setting), :func:`plot_recurrent_parameters` (dense LSTM gates versus
convolutional gates on a feature map), :func:`plot_runs` (several training runs overlaid: what a
trick changed) and :func:`plot_chunks` (a sequence streamed in chunks against the whole).

>>> import torch
>>> from cnnlstm_edu.models import build_model
>>> seq = torch.rand(4, 1, 14, 14)                  # (T, C, H, W): one digit's four quadrants
>>> p = probe(build_model("cnn_lstm"), seq)
>>> [tuple(m.shape) for m in p.maps]                 # per conv block: (T, C', H', W')
[(4, 16, 7, 7), (4, 32, 3, 3)]
>>> tuple(p.hidden.shape), tuple(p.probs.shape)      # (T, hidden), (T, classes)
((4, 128), (4, 10))
>>> activation_mosaic(p).shape                       # (height, width, RGB)
(180, 798, 3)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = [
    "Probe", "probe", "recurrent_layer", "activation_mosaic", "heatmap_image", "confusion_matrix",
    "plot_activations", "plot_hidden", "plot_beliefs", "plot_curves", "plot_confusion",
    "plot_examples", "plot_gates", "plot_fold_vs_loop",
    "plot_frames", "plot_forecast", "plot_step_accuracy", "plot_recurrent_parameters",
    "show_figures_in_jupyter", "plot_runs", "plot_chunks",
]


def show_figures_in_jupyter() -> bool:
    """Make Jupyter draw pyplot-free figures (``Figure(...)``) as PNG images; True if it did.

    Jupyter's inline backend registers its PNG display only when pyplot draws its first figure,
    so a ``matplotlib.figure.Figure`` built directly (every figure of this module, and
    :meth:`ShapeTrace.plot <cnnlstm_edu.trace.ShapeTrace.plot>`) would show as
    ``<Figure size 900x300 with 2 Axes>`` in a notebook that never touched pyplot. Importing
    this module calls it; outside IPython it does nothing.

    >>> show_figures_in_jupyter()          # a plain Python session: nothing to do
    False
    """
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    if not formatters or "image/png" not in formatters:
        return False
    from IPython.core.pylabtools import print_figure
    from matplotlib.figure import Figure

    # What the inline backend does for pyplot's figures: a PNG cropped to what was drawn.
    formatters["image/png"].for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))
    return True


show_figures_in_jupyter()

# Recurrent layers whose output is "h at every step"; found by type so that any model built
# from the package's pieces can be probed, whatever its attribute names.
_RECURRENT = (nn.LSTM, nn.GRU, nn.RNN)


def recurrent_layer(model: nn.Module) -> nn.Module | None:
    """The first recurrent layer in ``model``: ``nn.LSTM``/``GRU``/``RNN``, ``ConvLSTM``, or the
    from-scratch ``LSTM``; None when there is none.

    >>> from cnnlstm_edu.models import build_model
    >>> type(recurrent_layer(build_model("cnn_convlstm"))).__name__
    'ConvLSTM'
    """
    from .layers.convlstm import ConvLSTM
    from .layers.lstm import LSTM

    for module in model.modules():
        if isinstance(module, _RECURRENT + (ConvLSTM, LSTM)):
            return module
    return None


@dataclass
class Probe:
    """One sequence seen by a model, everything recorded (batch axis dropped)."""

    frames: torch.Tensor                  # (T, C, H, W) the frames as the model read them, float
    maps: list[torch.Tensor]              # one per conv block: (T, C', H', W') its output per frame
    hidden: torch.Tensor                  # (T, D) the recurrent layer's h after each step, flattened
    probs: torch.Tensor                   # (T, classes) softmax of the classifier after each step
    block_names: list[str] = field(default_factory=list)   # e.g. ["block 1", "block 2"]

    def __post_init__(self) -> None:
        if not self.block_names:
            self.block_names = [f"block {i + 1}" for i in range(len(self.maps))]

    @property
    def prediction(self) -> int:
        """The class believed after the last frame."""
        return int(self.probs[-1].argmax())


@torch.no_grad()
def probe(model: nn.Module, seq: torch.Tensor) -> Probe:
    """Run one sequence ``(T, C, H, W)`` (or ``(1, T, C, H, W)``) through ``model`` and record it.

    The model must accept ``all_steps=True`` (``CNNLSTM``, ``CNNConvLSTM``): the belief after
    every step comes from the classifier applied to every step's hidden state. Feature maps are
    taken from the conv blocks of ``model.encoder.module.blocks`` (the frame CNN inside
    ``TimeDistributed``) with forward hooks, so the forward pass is the model's own. The model
    runs in eval mode (BatchNorm with its running statistics) and gets its mode back after.
    uint8 frames are scaled to [0, 1] as in training.
    """
    from .train import to_float

    if seq.dim() == 4:
        seq = seq.unsqueeze(0)                     # (1, T, C, H, W): a batch of one clip
    if seq.dim() != 5 or seq.shape[0] != 1:
        raise ValueError(f"probe: expected one sequence (T, C, H, W) or (1, T, C, H, W), got {tuple(seq.shape)}")
    device = next(model.parameters()).device
    x = to_float(seq.to(device))
    T = x.shape[1]

    cnn = getattr(getattr(model, "encoder", None), "module", None)
    blocks = list(getattr(cnn, "blocks", []))
    rnn = recurrent_layer(model)
    outputs: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(blocks))}
    hidden: list[torch.Tensor] = []

    def keep_map(i):
        # TimeDistributed's fold mode calls a block once on all T frames, loop mode T times on
        # one frame each: collecting a list and concatenating covers both.
        return lambda module, args, out: outputs[i].append(out.detach().float().contiguous())

    handles = [b.register_forward_hook(keep_map(i)) for i, b in enumerate(blocks)]
    if rnn is not None:
        handles.append(rnn.register_forward_hook(lambda module, args, out: hidden.append(out[0].detach().float())))
    was_training = model.training
    model.eval()
    try:
        logits = model(x, all_steps=True)          # (1, T, classes)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    maps = [torch.cat(outputs[i]).cpu() for i in range(len(blocks))]   # each (T, C', H', W')
    if hidden:
        h = hidden[0]
        batch_first = getattr(rnn, "batch_first", True)
        h = h[0] if batch_first else h[:, 0]       # (T, hidden) or (T, F, H', W')
        h = h.reshape(T, -1).cpu()                 # (T, D): a ConvLSTM's map read as one vector
    else:
        h = torch.zeros(T, 0)
    return Probe(frames=x[0].float().cpu(), maps=maps, hidden=h,
                 probs=logits[0].float().softmax(-1).cpu())


# --- fast arrays --------------------------------------------------------------------------------


def _colormap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def _to_cell(img: np.ndarray, size: int) -> np.ndarray:
    """Scale a (h, w[, 3]) image up by a whole factor (nearest: pixels stay pixels) and centre it
    on a ``size`` x ``size`` cell."""
    h, w = img.shape[:2]
    k = max(1, size // max(h, w))
    big = np.repeat(np.repeat(img, k, axis=0), k, axis=1)[:size, :size]   # (k*h, k*w[, 3])
    cell = np.zeros((size, size) + img.shape[2:], dtype=img.dtype)
    top, left = (size - big.shape[0]) // 2, (size - big.shape[1]) // 2
    cell[top:top + big.shape[0], left:left + big.shape[1]] = big
    return cell


def activation_mosaic(p: Probe, channels: int = 8, cell: int = 42, gap: int = 4,
                      group_gap: int = 14) -> np.ndarray:
    """One RGB image of a :class:`Probe`: a row per frame, in the order the model read them.

    Each row holds the frame (grey), then the first ``channels`` feature maps of every conv
    block (viridis), each scaled up to a ``cell``-pixel square. A channel's colours share one
    scale across the frames, so a map that lights up for frame 3 and not for frame 1 shows it.

    >>> p = Probe(torch.rand(4, 1, 14, 14), [torch.rand(4, 16, 7, 7)], torch.zeros(4, 8), torch.rand(4, 10))
    >>> activation_mosaic(p, channels=2).shape      # 4 rows; frame + 2 maps per row
    (180, 144, 3)
    """
    T = p.frames.shape[0]
    viridis, grey = _colormap("viridis"), _colormap("gray")
    groups = [[grey(p.frames[:, 0].numpy().clip(0, 1))[..., :3]]]          # [(T, H, W, 3)]
    for m in p.maps:
        m = m[:, :channels].numpy()                                         # (T, k, h, w)
        lo = m.min(axis=(0, 2, 3), keepdims=True)
        hi = m.max(axis=(0, 2, 3), keepdims=True)
        m = (m - lo) / np.maximum(hi - lo, 1e-6)                            # per channel, over frames
        groups.append([viridis(m[:, c])[..., :3] for c in range(m.shape[1])])
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
    k = max(1, width // v.shape[1])
    rgb = np.repeat(np.repeat(rgb, row_height, axis=0), k, axis=1)           # (rows*rh, cols*k, 3)
    return (rgb * 255).round().astype(np.uint8)


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """``cm[i, j]`` counts the samples of class ``i`` predicted as ``j``.

    >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), num_classes=2)
    tensor([[1, 0],
            [1, 1]])
    """
    labels, preds = torch.as_tensor(labels).long().cpu(), torch.as_tensor(preds).long().cpu()
    if labels.shape != preds.shape:
        raise ValueError(f"confusion_matrix: labels {tuple(labels.shape)} and preds {tuple(preds.shape)} differ")
    flat = torch.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)                            # (true, predicted)


# --- matplotlib figures -------------------------------------------------------------------------


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _step_names(T: int, order: str | None) -> list[str]:
    if order and len(order) == T:
        return [f"frame {t + 1}: quadrant {q}" for t, q in enumerate(order)]
    return [f"frame {t + 1}" for t in range(T)]


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
    fig = _figure(1.0 + 0.9 * cols, 1.0 * T + 0.6)
    axes = fig.subplots(T, cols, squeeze=False)
    names = _step_names(T, order)
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
    fig = _figure(7, 0.4 * h.shape[0] + 1.0)
    ax = fig.add_subplot()
    im = ax.imshow(h.numpy(), aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_yticks(range(h.shape[0]), _step_names(h.shape[0], order), fontsize=7)
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
    names = _step_names(T, order)
    if frames is None:
        fig = _figure(2.2 * T, 2.0)
        axes = fig.subplots(1, T, sharey=True, squeeze=False)[0]
    else:
        images = _frame_images(frames)                                         # T x (H, W[, 3])
        if len(images) != T:
            raise ValueError(f"plot_beliefs: {len(images)} frames for {T} steps of probabilities")
        fig = _figure(2.2 * T, 4.0)
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


def _rows(history: Iterable) -> list[dict]:
    """fit() events or plain dicts -> dicts without NaNs."""
    rows = []
    for item in history:
        row = item.to_dict() if hasattr(item, "to_dict") else dict(item)
        rows.append({k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))})
    return rows


def plot_curves(history: Iterable):
    """Loss and accuracy against epochs, train and test, from :func:`~cnnlstm_edu.train.fit`'s events.

    ``history`` holds events (or dicts) with ``epoch`` and any of ``loss``, ``accuracy`` (the
    training batches) and ``test_loss``, ``test_acc`` (an evaluation). A panel with nothing to
    draw is left out: a next-frame model has a loss and no accuracy.

    >>> history = [{"epoch": 0.5, "loss": 0.9, "accuracy": 0.7}, {"epoch": 1.0, "test_loss": 0.2, "test_acc": 0.95}]
    >>> fig = plot_curves(history)
    >>> [ax.get_title() for ax in fig.axes]
    ['loss', 'accuracy']
    >>> [ax.get_title() for ax in plot_curves([{"epoch": 0.5, "loss": 0.9}]).axes]
    ['loss']
    """
    rows = _rows(history)
    panels = [(title, train_key, test_key)
              for title, train_key, test_key in [("loss", "loss", "test_loss"), ("accuracy", "accuracy", "test_acc")]
              if any((train_key in r or test_key in r) and "epoch" in r for r in rows)]
    panels = panels or [("loss", "loss", "test_loss")]          # nothing at all: one empty panel
    fig = _figure(4.5 * len(panels), 3)
    for ax, (title, train_key, test_key) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for key, name, style in [(train_key, "train", "-"), (test_key, "test", "o-")]:
            pts = [(r["epoch"], r[key]) for r in rows if key in r and "epoch" in r]
            if pts:
                ax.plot(*zip(*pts), style, label=name, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend()
    return fig


def plot_confusion(cm: torch.Tensor | np.ndarray, title: str | None = None):
    """A confusion matrix (rows: true class, columns: predicted) with its counts written in.

    >>> fig = plot_confusion(torch.eye(10, dtype=torch.long) * 100)
    >>> fig.axes[0].get_xlabel()
    'predicted'
    """
    cm = np.asarray(cm)
    K = cm.shape[0]
    fig = _figure(4.6, 4.2)
    ax = fig.add_subplot()
    # A log-like scale: the diagonal holds ~1000 per class, the mistakes a handful; on a linear
    # scale every mistake would look the same pale colour.
    ax.imshow(np.log1p(cm), cmap="Blues")
    for i in range(K):
        for j in range(K):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if i == j else "black")
    ax.set_xticks(range(K)), ax.set_yticks(range(K))
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    total = cm.sum()
    ax.set_title(title or f"accuracy {np.trace(cm) / max(total, 1):.2%} on {total} digits", fontsize=9)
    return fig


def plot_examples(images: torch.Tensor, labels: Sequence[int], preds: Sequence[int] | None = None,
                  columns: int = 8):
    """Digits ``(N, 28, 28)`` in a grid, titled with their label (and prediction, when given).

    >>> fig = plot_examples(torch.zeros(3, 28, 28), [1, 2, 3], [1, 7, 3])
    >>> fig.axes[1].get_title()
    'true 2, said 7'
    """
    n = len(images)
    rows = max(1, math.ceil(n / columns))
    fig = _figure(1.2 * min(n, columns) + 0.2, 1.35 * rows)
    for i in range(n):
        ax = fig.add_subplot(rows, min(n, columns), i + 1)
        ax.imshow(np.asarray(images[i]), cmap="gray")
        ax.set_xticks([]), ax.set_yticks([])
        title = f"true {labels[i]}" + (f", said {preds[i]}" if preds is not None else "")
        ax.set_title(title, fontsize=7, color="#b30000" if preds is not None and preds[i] != labels[i] else "black")
    return fig


def _frame_images(frames) -> list[np.ndarray]:
    """Frames ``(n, H, W)``, ``(n, 1, H, W)`` or ``(n, 3, H, W)`` (uint8 or float) as images for
    imshow: ``(H, W)`` or ``(H, W, 3)`` floats in [0, 1]. Float frames outside [0, 1] (normalised
    ones) are rescaled to their own range."""
    f = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames).detach().cpu()
    if f.dim() == 4 and f.shape[1] in (1, 3):
        f = f[:, 0] if f.shape[1] == 1 else f.permute(0, 2, 3, 1)           # (n, H, W) or (n, H, W, 3)
    elif f.dim() != 3:
        raise ValueError(f"expected frames (n, H, W) or (n, C, H, W) with C = 1 or 3, got {tuple(f.shape)}")
    f = f.float() / 255 if f.dtype == torch.uint8 else f.float()
    if len(f) and (f.min() < 0 or f.max() > 1):
        f = (f - f.min()) / max(float(f.max() - f.min()), 1e-6)
    return list(f.numpy())


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
    if isinstance(rows, dict):
        names, seqs = list(rows), [_frame_images(v) for v in rows.values()]
    else:
        names, seqs = [None] * len(rows), [_frame_images(v) for v in rows]
    if not seqs or not any(seqs):
        raise ValueError("plot_frames: no frames to draw")
    start = dict(start or {})
    firsts = [start.get(name, 0) for name in names]
    cols = max(first + len(seq) for first, seq in zip(firsts, seqs))
    if titles is None:
        titles = [[f"frame {c + 1}" for c in range(cols)]] + [[]] * (len(seqs) - 1)
        firsts_for_titles = [0] * len(seqs)
    else:
        if titles and isinstance(titles[0], str):
            titles = [list(titles)] * len(seqs)
        firsts_for_titles = firsts
    # A row as tall as its frames are, relative to their width (clipped, so one odd row stays readable).
    ratios = [min(max(q[0].shape[0] / q[0].shape[1], 0.5), 4.0) if q else 1.0 for q in seqs]
    fig = _figure(0.9 * size * cols + (1.2 if any(names) else 0.2), 0.95 * size * sum(ratios) + 0.4)
    axes = fig.subplots(len(seqs), cols, squeeze=False, gridspec_kw={"height_ratios": ratios})
    for r, (name, seq, first) in enumerate(zip(names, seqs, firsts)):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if first <= c < first + len(seq):
                ax.imshow(seq[c - first], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.axis("off")
            k = c - firsts_for_titles[r]
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
    from .train import to_float

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
    was_training = model.training
    model.eval()
    try:
        pred = model.forecast(frames[None, :k].to(device), m)[0].float().cpu()   # (m, C, H, W)
    finally:
        model.train(was_training)
    truth = frames[k:k + m]                                        # (m', C, H, W): what the clip holds
    copy = frames[k - 1:k].expand(m, -1, -1, -1)                   # (m, C, H, W)
    mse = lambda a: [f"{float((a[t] - truth[t]).square().mean()):.4f}" if t < len(truth) else ""  # noqa: E731
                     for t in range(m)]
    titles = [[f"t={t}" for t in range(k)], [f"t={k + t}" for t in range(m)],
              [f"mse {e}" if e else "" for e in mse(pred)], [f"mse {e}" if e else "" for e in mse(copy)]]
    return plot_frames({"seen": frames[:k], "truth": truth, "forecast": pred, "copy last": copy}, titles=titles)


def plot_step_accuracy(accuracy, chance: float | None = 0.1):
    """Accuracy after 1, 2, ..., T frames, a group of bars per step and a bar per setting.

    ``accuracy`` maps a setting's name (a quadrant order, a model) to its ``T`` accuracies in
    [0, 1], e.g. ``(predict(model, x, all_steps=True) == y[:, None]).float().mean(0)``.
    ``chance`` draws a dashed line (0.1 for ten classes; None for none).

    >>> fig = plot_step_accuracy({"1234": [0.3, 0.6, 0.8, 0.98], "4321": [0.2, 0.5, 0.85, 0.98]})
    >>> fig.axes[0].get_xlabel()
    'frames seen'
    """
    names = list(accuracy)
    values = [np.asarray(torch.as_tensor(accuracy[n], dtype=torch.float64)) * 100 for n in names]
    if not values:
        raise ValueError("plot_step_accuracy: no settings to draw")
    T = max(len(v) for v in values)
    width = 0.8 / len(values)
    fig = _figure(max(5.0, 1.4 * T + 1.5), 3.2)
    ax = fig.add_subplot()
    for k, (name, v) in enumerate(zip(names, values)):
        x = np.arange(1, len(v) + 1) + (k - (len(values) - 1) / 2) * width
        bars = ax.bar(x, v, width=width * 0.95, label=str(name))
        ax.bar_label(bars, fmt="%.0f", fontsize=6, padding=1)
    if chance is not None:
        ax.axhline(100 * chance, color="black", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(1, T + 1))
    ax.set_xlabel("frames seen")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    fig.legend(fontsize=7, loc="outside upper center", ncol=min(len(names), 6))
    ax.grid(axis="y", alpha=0.3)
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
    from .models import recurrent_parameters

    sizes = list(sizes)
    counts = [recurrent_parameters(channels, s, s, hidden, kernel_size) for s in sizes]
    fig = _figure(6.4, 3.4)
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
    fig = _figure(10, 2.6)
    for ax, (key, title, lo, hi) in zip(fig.subplots(1, 4), names):
        g = getattr(gates, key)[sample].detach().float().cpu().numpy()     # (T, H)
        im = ax.imshow(g, aspect="auto", cmap="RdBu_r" if lo < 0 else "viridis", vmin=lo, vmax=hi,
                       interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("unit")
        ax.set_ylabel("step")
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def plot_fold_vs_loop(rows: Sequence[dict]):
    """Loop time over fold time against the batch size, one line per sequence length.

    ``rows`` come from :func:`cnnlstm_edu.bench.fold_vs_loop`. Above the dashed line at 1 the
    folded call is faster; below it the per-step loop is. Where a line crosses it is the
    crossover on the machine that measured them.

    >>> rows = [{"batch": b, "steps": 4, "loop_over_fold": r} for b, r in [(1, 3.0), (64, 0.8)]]
    >>> fig = plot_fold_vs_loop(rows)
    >>> fig.axes[0].get_ylabel()
    'loop time / fold time'
    """
    fig = _figure(6, 3.2)
    ax = fig.add_subplot()
    for T in sorted({r["steps"] for r in rows}):
        pts = sorted((r["batch"], r["loop_over_fold"]) for r in rows if r["steps"] == T)
        ax.plot(*zip(*pts), "o-", label=f"T = {T}")
    ax.axhline(1.0, color="black", linestyle="--", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size B")
    ax.set_ylabel("loop time / fold time")
    ax.set_title("above 1: folding time into the batch is faster", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_runs(runs, keys: Sequence = ("loss",), x: str = "step", log: Sequence[str] = (),
              title: str | None = None):
    """Several runs overlaid, one panel per quantity: what a training trick changed.

    ``runs`` maps a run's name to its :func:`~cnnlstm_edu.train.fit` events (a list, or the
    generator itself, which is then run) or to plain dicts. Each item of ``keys`` is a panel: a
    key such as ``"grad_norm"``, or a tuple of keys drawn in the same panel (``("loss",
    "test_loss")``: one colour per run, one line style per key). ``x`` is the horizontal axis
    (``"step"``, ``"epoch"``, or any key of the dicts); keys in ``log`` get a log scale. A key
    whose values are all integers (``unroll``, ``batch_size``) is drawn as a staircase.

    >>> runs = {"plain": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}],
    ...         "trick": [{"step": 1, "loss": 2.5, "unroll": 1}, {"step": 2, "loss": 0.5, "unroll": 2}]}
    >>> fig = plot_runs(runs, keys=("loss", "unroll"))
    >>> [ax.get_title() for ax in fig.axes]
    ['loss', 'unroll']
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['plain', 'trick']
    """
    rows = {name: _rows(history) for name, history in runs.items()}
    panels = [(k,) if isinstance(k, str) else tuple(k) for k in keys]
    fig = _figure(min(4.2 * len(panels), 13), 3)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    styles = ["-", "--", ":", "-."]
    colors = [f"C{i}" for i in range(10)]
    for ax, panel in zip(axes, panels):
        for r, (name, rs) in enumerate(rows.items()):
            for s, key in enumerate(panel):
                pts = [(row[x], row[key]) for row in rs if row.get(x) is not None and row.get(key) is not None]
                if not pts:
                    continue
                xs, ys = zip(*pts)
                stairs = all(isinstance(v, int) and not isinstance(v, bool) for v in ys)
                label = name if len(panel) == 1 else f"{name}: {key}"
                ax.plot(xs, ys, styles[s % len(styles)], color=colors[r % len(colors)], label=label,
                        drawstyle="steps-post" if stairs else "default",
                        marker="o" if len(pts) <= 12 and not stairs else None, markersize=3)
        ax.set_title(" / ".join(panel), fontsize=9)
        ax.set_xlabel(x)
        if any(k in log for k in panel):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


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
    fig = _figure(8, 3.6)
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

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
]

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


def plot_beliefs(probs: torch.Tensor, order: str | None = None, label: int | None = None):
    """What the model believes after 1, 2, ..., T frames: one bar chart of class probabilities per step.

    ``label`` (the true class) is marked. ``probs`` is ``(T, classes)``, e.g. ``Probe.probs`` or
    ``model(x, all_steps=True).softmax(-1)[0]``.

    >>> fig = plot_beliefs(torch.full((4, 10), 0.1), order="4321", label=3)
    >>> [ax.get_title() for ax in fig.axes][:2]
    ['frame 1: quadrant 4', 'frame 2: quadrant 3']
    """
    probs = torch.as_tensor(probs).float().cpu()
    T, K = probs.shape
    fig = _figure(2.2 * T, 2.0)
    axes = fig.subplots(1, T, sharey=True, squeeze=False)[0]
    for t, (ax, name) in enumerate(zip(axes, _step_names(T, order))):
        colors = ["#fd8d3c" if k == int(probs[t].argmax()) else "#6baed6" for k in range(K)]
        ax.bar(range(K), probs[t].numpy(), color=colors)
        ax.set_xticks(range(K))
        ax.set_ylim(0, 1)
        ax.set_title(name, fontsize=8)
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
    training batches) and ``test_loss``, ``test_acc`` (an evaluation).

    >>> history = [{"epoch": 0.5, "loss": 0.9, "accuracy": 0.7}, {"epoch": 1.0, "test_loss": 0.2, "test_acc": 0.95}]
    >>> fig = plot_curves(history)
    >>> [ax.get_title() for ax in fig.axes]
    ['loss', 'accuracy']
    """
    rows = _rows(history)
    fig = _figure(9, 3)
    for ax, (title, train_key, test_key) in zip(fig.subplots(1, 2),
                                                [("loss", "loss", "test_loss"), ("accuracy", "accuracy", "test_acc")]):
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

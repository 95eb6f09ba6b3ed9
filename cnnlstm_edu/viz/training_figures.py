"""Figures of training: curves of one run, several runs overlaid, and what they scored.

:func:`plot_curves` (loss and accuracy from :func:`~cnnlstm_edu.train.fit`'s events),
:func:`plot_runs` (several runs overlaid: what a training trick changed), :func:`plot_confusion`
(a :func:`~cnnlstm_edu.analysis.confusion_matrix`), :func:`plot_step_accuracy` (accuracy after
1, 2, ..., T frames, per setting: :func:`~cnnlstm_edu.analysis.accuracy_per_step`) and
:func:`plot_fold_vs_loop` (timings from :mod:`cnnlstm_edu.bench`).

>>> [ax.get_title() for ax in plot_curves([{"epoch": 1.0, "loss": 0.3, "test_acc": 0.9}]).axes]
['loss', 'accuracy']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from .figure import history_rows, new_figure

__all__ = ["plot_curves", "plot_runs", "plot_confusion", "plot_step_accuracy", "plot_fold_vs_loop"]


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
    rows = history_rows(history)
    panels = [(title, train_key, test_key)
              for title, train_key, test_key in [("loss", "loss", "test_loss"), ("accuracy", "accuracy", "test_acc")]
              if any((train_key in r or test_key in r) and "epoch" in r for r in rows)]
    panels = panels or [("loss", "loss", "test_loss")]          # nothing at all: one empty panel
    fig = new_figure(4.5 * len(panels), 3)
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
    rows = {name: history_rows(history) for name, history in runs.items()}
    panels = [(k,) if isinstance(k, str) else tuple(k) for k in keys]
    fig = new_figure(min(4.2 * len(panels), 13), 3)
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


def plot_confusion(cm: torch.Tensor | np.ndarray, title: str | None = None):
    """A confusion matrix (rows: true class, columns: predicted) with its counts written in.

    >>> fig = plot_confusion(torch.eye(10, dtype=torch.long) * 100)
    >>> fig.axes[0].get_xlabel()
    'predicted'
    """
    cm = np.asarray(cm)
    K = cm.shape[0]
    fig = new_figure(4.6, 4.2)
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
    fig = new_figure(max(5.0, 1.4 * T + 1.5), 3.2)
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
    fig = new_figure(6, 3.2)
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

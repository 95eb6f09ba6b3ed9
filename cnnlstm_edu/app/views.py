"""What the page shows, as plain values: HTML for beliefs, tables for curves, images for digits.

These are cheap (no matplotlib), because they are redrawn several times a second while a model
trains. Nothing here imports gradio.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..viz.images import upscale

__all__ = ["activation_image", "beliefs_html", "clip_trail", "curve_frame", "digit_image", "gallery_items",
           "markdown_text", "step_accuracy_table"]

_BAR, _TOP, _TRUE = "#6baed6", "#fd8d3c", "#31a354"


def beliefs_html(probs: torch.Tensor | None, order: str | None = None, label: int | None = None,
                 classes: Sequence[str] | None = None, short: Sequence[str] | None = None) -> str:
    """A table of small bars: one row per step, one column per class; what the model believes
    after seeing 1, 2, ..., T frames. The most likely class is orange; the true one's column
    header is green. ``classes`` names the classes (default: their numbers) and ``short`` heads
    their columns (default: ``classes``).

    >>> text = beliefs_html(torch.full((4, 10), 0.1), order="1234", label=7)
    >>> text.count("<tr>"), "frame 4 (Q4)" in text
    (5, True)
    >>> "says" in beliefs_html(torch.eye(2), classes=("left", "right"), short=("L", "R"), label=1)
    True
    """
    if probs is None:
        return "<p><i>No beliefs yet.</i></p>"
    probs = torch.as_tensor(probs).float().cpu()
    T, K = probs.shape
    names = [str(k) for k in range(K)] if classes is None else [str(c) for c in classes]
    heads = names if short is None else [str(c) for c in short]
    if len(names) != K or len(heads) != K:
        raise ValueError(f"beliefs_html: {K} classes of probabilities, {len(names)} names and {len(heads)} headers")
    head = ['<th style="text-align:left;padding:2px 8px 2px 0">after</th>']
    for k in range(K):
        style = f"color:{_TRUE};text-decoration:underline" if k == label else ""
        head.append(f'<th style="width:20px;text-align:center;padding:2px;{style}" '
                    f'title="{html.escape(names[k])}">{html.escape(heads[k])}</th>')
    head.append('<th style="text-align:left;padding-left:8px">says</th>')
    rows = ["<tr>" + "".join(head) + "</tr>"]
    for t in range(T):
        top = int(probs[t].argmax())
        name = f"frame {t + 1}" + (f" (Q{order[t]})" if order and len(order) == T else "")
        cells = [f'<td style="padding:2px 8px 2px 0;white-space:nowrap">{html.escape(name)}</td>']
        for k in range(K):
            p = float(probs[t, k])
            cells.append(
                f'<td style="vertical-align:bottom;height:40px;padding:0 2px" title="{html.escape(names[k])}: {p:.1%}">'
                f'<div style="height:{max(1, round(p * 38))}px;background:{_TOP if k == top else _BAR};'
                'border-radius:2px"></div></td>')
        mark = "" if label is None else (" &#10003;" if top == label else " &#10007;")
        said = html.escape(names[top] if short is None else f"{heads[top]} {names[top]}")
        cells.append(f'<td style="padding-left:8px;white-space:nowrap"><b>{said}</b> '
                     f'({float(probs[t, top]):.0%}){mark}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if classes is None:
        caption = ("Q1-Q4: quadrants top-left, top-right, bottom-left, bottom-right"
                   + ("" if label is None else f"; true digit: <b>{label}</b>"))
    else:
        caption = (f"chance: {1 / K:.0%} each"
                   + ("" if label is None else f"; true answer: <b>{html.escape(names[label])}</b>"))
    caption = f"<p style='margin:4px 0 0 0'>{caption}</p>"
    return ('<div class="beliefs" style="font-size:13px;overflow-x:auto">'
            '<table style="border-collapse:collapse">' + "".join(rows) + "</table>" + caption + "</div>")


def curve_frame(history: list[dict], metric: str, max_points: int = 400) -> pd.DataFrame:
    """The rows of ``history`` for one curve ("loss" or "accuracy") as a table for ``gr.LinePlot``:
    columns ``epoch``, ``metric`` and ``series`` ("train"/"test"). Long runs are thinned to
    about ``max_points`` training points, so each refresh sends little.

    >>> h = [{"epoch": 0.1 * i, "series": "train", "loss": 1.0, "accuracy": 0.5} for i in range(1000)]
    >>> len(curve_frame(h, "loss"))          # every 3rd of 1000 points, and the last
    334
    """
    train = [h for h in history if h["series"] == "train" and not math.isnan(h[metric])]
    test = [h for h in history if h["series"] == "test" and not math.isnan(h[metric])]
    stride = max(1, math.ceil(len(train) / max_points))
    keep = train[::stride]
    if train and keep[-1] is not train[-1]:
        keep.append(train[-1])
    rows = keep + test
    # Typed columns even when empty, so that "series" is a category (two colours and a legend),
    # never a number (a colour gradient).
    return pd.DataFrame({"epoch": pd.Series([h["epoch"] for h in rows], dtype="float64"),
                         metric: pd.Series([h[metric] for h in rows], dtype="float64"),
                         "series": pd.Series([h["series"] for h in rows], dtype="object")})


def step_accuracy_table(accuracy: Sequence[float], chance: float | None = None) -> str:
    """Markdown: the test accuracy after 1, 2, ..., T frames, one column per frame.

    >>> print(step_accuracy_table([0.125, 0.9, 1.0], chance=0.125))
    | after frame | 1 | 2 | 3 |
    |---|---|---|---|
    | test accuracy | 12.5% | 90.0% | 100.0% |
    <BLANKLINE>
    chance is 12.5%.
    """
    T = len(accuracy)
    lines = ["| after frame | " + " | ".join(str(t + 1) for t in range(T)) + " |",
             "|---|" + "---|" * T,
             "| test accuracy | " + " | ".join(f"{a:.1%}" for a in accuracy) + " |"]
    if chance is not None:
        lines += ["", f"chance is {chance:.1%}."]
    return "\n".join(lines)


def clip_trail(clip: torch.Tensor, size: int = 168) -> np.ndarray:
    """A clip ``(T, 1, H, W)`` as one greyscale image: every frame at once, the early ones faint,
    so that the path and its direction show (the last frame brightest).

    >>> clip = torch.zeros(3, 1, 24, 24, dtype=torch.uint8); clip[:, 0, 5, 5] = 255
    >>> clip_trail(clip).shape
    (168, 168)
    """
    T = clip.shape[0]
    frames = clip[:, 0].float().numpy() / 255.0                           # (T, H, W) in [0, 1]
    weight = np.linspace(0.25, 1.0, T).reshape(T, 1, 1)                   # faint early, bright late
    trail = (frames * weight).max(axis=0)                                 # (H, W)
    return digit_image((trail * 255).round().astype(np.uint8), size)


def digit_image(image, size: int = 140) -> np.ndarray:
    """A (28, 28) digit scaled up with square pixels, so the browser does not blur it.

    >>> digit_image(np.zeros((28, 28), dtype=np.uint8)).shape
    (140, 140)
    """
    img = np.asarray(image)
    return upscale(img, max(1, size // img.shape[0]))              # (k*28, k*28)


def gallery_items(images: torch.Tensor, labels: list[int], preds: list[int],
                  classes: Sequence[str] | None = None) -> list[tuple[np.ndarray, str]]:
    """Misclassified examples as ``(image, caption)`` pairs for ``gr.Gallery``: digits ``(n, 28, 28)``
    as they are, clips ``(n, T, 1, H, W)`` as their trails (:func:`clip_trail`); captions
    "true -> predicted", by name when ``classes`` are given."""
    name = (lambda k: str(k)) if classes is None else (lambda k: classes[k])
    show = (lambda img: digit_image(img.numpy(), 112)) if images.dim() == 3 else (lambda img: clip_trail(img, 112))
    return [(show(img), f"{name(y)} -> {name(p)}") for img, y, p in zip(images, labels, preds)]


def markdown_text(text) -> str:
    r"""``text`` (a learner's file or folder name) as literal Markdown: no link, emphasis or HTML.

    >>> print(markdown_text("[x](http://a) *b* <i>"))
    \[x\]\(http://a\) \*b\* &lt;i&gt;
    """
    return re.sub(r"([\\`*_{}\[\]()#+\-!|~$])", r"\\\1", html.escape(str(text), quote=False))


def activation_image(p) -> np.ndarray:
    """A :class:`~cnnlstm_edu.analysis.Probe` as the page's mosaic: a row per frame, the frame then
    the first 8 maps of each conv block. Quadrants: (180, 798, 3), 42-px cells (a pixel 3x3);
    direction's 24x24 frames: 48-px cells (a pixel 2x2), (308, 900, 3); larger frames at most 64 px.
    Colour frames are drawn by their luminance.
    """
    from ..viz import activation_mosaic

    H = p.frames.shape[-1]
    if p.frames.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        p = dataclasses.replace(p, frames=(p.frames * weights).sum(1, keepdim=True))   # (T, 1, H, W)
    return activation_mosaic(p, cell=42 if H <= 14 else max(H, min(2 * H, 64)))

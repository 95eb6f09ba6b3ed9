"""What the page shows, as plain values: HTML for beliefs, tables for curves, images for digits.

These are cheap (no matplotlib), because they are redrawn several times a second while a model
trains. Nothing here imports gradio.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import torch

from ..viz.images import upscale

__all__ = ["beliefs_html", "curve_frame", "digit_image", "gallery_items"]

_BAR, _TOP, _TRUE = "#6baed6", "#fd8d3c", "#31a354"


def beliefs_html(probs: torch.Tensor | None, order: str | None = None, label: int | None = None) -> str:
    """A table of small bars: one row per step, one column per class; what the model believes
    after seeing 1, 2, ..., T frames. The most likely class is orange; the true one's column
    header is green.

    >>> text = beliefs_html(torch.full((4, 10), 0.1), order="1234", label=7)
    >>> text.count("<tr>"), "frame 4 (Q4)" in text
    (5, True)
    """
    if probs is None:
        return "<p><i>No beliefs yet.</i></p>"
    probs = torch.as_tensor(probs).float().cpu()
    T, K = probs.shape
    head = ['<th style="text-align:left;padding:2px 8px 2px 0">after</th>']
    for k in range(K):
        style = f"color:{_TRUE};text-decoration:underline" if k == label else ""
        head.append(f'<th style="width:20px;text-align:center;padding:2px;{style}">{k}</th>')
    head.append('<th style="text-align:left;padding-left:8px">says</th>')
    rows = ["<tr>" + "".join(head) + "</tr>"]
    for t in range(T):
        top = int(probs[t].argmax())
        name = f"frame {t + 1}" + (f" (Q{order[t]})" if order and len(order) == T else "")
        cells = [f'<td style="padding:2px 8px 2px 0;white-space:nowrap">{html.escape(name)}</td>']
        for k in range(K):
            p = float(probs[t, k])
            cells.append(
                f'<td style="vertical-align:bottom;height:40px;padding:0 2px" title="{k}: {p:.1%}">'
                f'<div style="height:{max(1, round(p * 38))}px;background:{_TOP if k == top else _BAR};'
                'border-radius:2px"></div></td>')
        mark = "" if label is None else (" &#10003;" if top == label else " &#10007;")
        cells.append(f'<td style="padding-left:8px;white-space:nowrap"><b>{top}</b> '
                     f'({float(probs[t, top]):.0%}){mark}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    caption = ("<p style='margin:4px 0 0 0'>Q1-Q4: quadrants top-left, top-right, bottom-left, bottom-right"
               + ("" if label is None else f"; true digit: <b>{label}</b>") + "</p>")
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


def digit_image(image, size: int = 140) -> np.ndarray:
    """A (28, 28) digit scaled up with square pixels, so the browser does not blur it.

    >>> digit_image(np.zeros((28, 28), dtype=np.uint8)).shape
    (140, 140)
    """
    img = np.asarray(image)
    return upscale(img, max(1, size // img.shape[0]))              # (k*28, k*28)


def gallery_items(images: torch.Tensor, labels: list[int], preds: list[int]) -> list[tuple[np.ndarray, str]]:
    """Misclassified digits as ``(image, caption)`` pairs for ``gr.Gallery``."""
    return [(digit_image(img.numpy(), 112), f"{y} -> {p}") for img, y, p in zip(images, labels, preds)]

"""Views of a shape trace: the fixed-width text table (checked against golden files), the same
table in HTML for Jupyter, and a matplotlib drawing of the pipeline, one box per stage.

Each function takes a :class:`~cnnlstm_edu.trace.result.ShapeTrace` (any object with its
``rows``, ``warnings``, ``sizes``, ``error`` and ``failed``) and only reads it.
"""

from __future__ import annotations

import html
import textwrap
from typing import NamedTuple

from ..axes import AXIS_MEANINGS, axis_kind, format_shape

__all__ = ["AXIS_COLORS", "Stage", "legend", "plot", "stages", "table", "to_html"]

# Colours of the axis kinds, shared by the HTML table and the plot: the time axis and the folded
# B*T axis stand out, so the fold (B, T) -> B*T and the unfold are visible at a glance.
AXIS_COLORS = {
    "batch": "#9ecae1",      # B
    "time": "#fdae6b",       # T
    "folded": "#c994c7",     # B*T: time folded into the batch (or into the features)
    "layers": "#d9d9d9",     # L
    "feature": "#c7e9c0",    # C, H, W, F
    "unknown": "#ffffff",    # a bare size
}


class Stage(NamedTuple):
    """One box of the pipeline drawing: what it is and the tensors it hands on."""

    title: str                                 # "lstm: LSTM", "fold (B, T) -> B*T", ...
    note: str                                  # a second line: the wrapper's name, "raised here"
    tensors: list[tuple[str, tuple, tuple]]    # (name, shape, axes) of what comes out
    inputs: list[tuple[str, tuple, tuple]]     # what went in, when it is worth comparing


# --- text -------------------------------------------------------------------------------------


def table(trace) -> str:
    """The trace as a fixed-width table: module, type, input, output; then axes and warnings."""
    header = ["module", "type", "input", "output"]
    body = []
    for row in trace.rows:
        label = row.name.rsplit(".", 1)[-1] if row.depth else "model"
        kind = row.type + (f" x{row.calls}" if row.calls > 1 else "")
        outputs = ["(raised)"] if row.raised and not row.outputs else _named(row.output_names, row.format_outputs())
        body.append(["  " * row.depth + label, kind, _named(row.input_names, row.format_inputs()), outputs])
    widths = [max([len(header[k])] + [len(line) for cells in body
                                       for line in ([cells[k]] if k < 2 else cells[k])]) for k in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for cells in body:
        height = max(1, len(cells[2]), len(cells[3]))
        for k in range(height):
            parts = [cells[0] if k == 0 else "", cells[1] if k == 0 else "",
                     cells[2][k] if k < len(cells[2]) else "", cells[3][k] if k < len(cells[3]) else ""]
            lines.append("  ".join(p.ljust(w) for p, w in zip(parts, widths)).rstrip())
    lines.append("")
    lines.append(textwrap.fill("axes: " + legend(trace), width=100, subsequent_indent="      "))
    for w in trace.warnings:
        lines.append(textwrap.fill(f"warning: {w}", width=100, subsequent_indent="  "))
    if trace.error is not None:
        where = (trace.failed.name if trace.failed else "") or "model"
        lines.append(textwrap.fill(f"raised in {where}: {type(trace.error).__name__}: {trace.error}",
                                   width=100, subsequent_indent="  "))
    return "\n".join(lines)


def legend(trace) -> str:
    """What each axis name in the trace means, with its size where one size holds everywhere."""
    seen = {a for row in trace.rows for axes in row.input_axes + row.output_axes for a in axes if a}
    sizes = trace.sizes
    parts = []
    for name in AXIS_MEANINGS:
        if name in seen:
            size = sizes.get(name) or (sizes["B"] * sizes["T"]
                                       if name in ("B*T", "T*B") and {"B", "T"} <= set(sizes) else None)
            parts.append(f"{name} {AXIS_MEANINGS[name]}" + (f" ({size})" if size else ""))
    return ", ".join(parts) or "none known"


def _named(names: list[str], shapes: list[str]) -> list[str]:
    """One line per tensor; with several, each starts with its name: ``h_n  (L=1, B=2, H=128)``."""
    if len(shapes) <= 1:
        return shapes
    width = max(len(n) for n in names)
    return [f"{n.ljust(width)}  {s}" for n, s in zip(names, shapes)]


# --- Jupyter ----------------------------------------------------------------------------------


def _chips(names, shapes, axes) -> str:
    """Each tensor as coloured axis chips, one line per tensor, named when there are several."""
    lines = []
    for name, shape, labels in zip(names, shapes, axes):
        spans = [f'<span style="background:{AXIS_COLORS[axis_kind(a)]};padding:0 3px;'
                 f'border-radius:3px;margin-right:2px">{html.escape(f"{a}={s}" if a else str(s))}</span>'
                 for a, s in zip(labels, shape)]
        prefix = f"<code>{html.escape(name)}</code> " if len(shapes) > 1 else ""
        lines.append(prefix + "(" + "".join(spans) + ")")
    return "<br>".join(lines)


def to_html(trace) -> str:
    """The table of :func:`table` in HTML, every axis a chip coloured by its kind."""
    cells = ['<table style="font-family:monospace;font-size:90%"><thead><tr>'
             "<th>module</th><th>type</th><th>input</th><th>output</th></tr></thead><tbody>"]
    for row in trace.rows:
        label = html.escape(row.name.rsplit(".", 1)[-1] if row.depth else "model")
        kind = html.escape(row.type) + (f" <b>x{row.calls}</b>" if row.calls > 1 else "")
        out = "<i>raised</i>" if row.raised and not row.outputs else _chips(row.output_names, row.outputs, row.output_axes)
        cells.append(f'<tr><td style="text-align:left;padding-left:{1.2 * row.depth:.1f}em" '
                     f'title="{html.escape(row.name)}">{label}</td><td style="text-align:left">{kind}</td>'
                     f'<td style="text-align:left">{_chips(row.input_names, row.inputs, row.input_axes)}</td>'
                     f'<td style="text-align:left">{out}</td></tr>')
    cells.append("</tbody></table>")
    cells.append(f"<p><small>axes: {html.escape(legend(trace))}</small></p>")
    if trace.warnings:
        cells.append("<ul>" + "".join(f'<li style="color:#b30000">{html.escape(str(w))}</li>'
                                      for w in trace.warnings) + "</ul>")
    return "".join(cells)


# --- matplotlib -------------------------------------------------------------------------------


def _tensors(names, shapes, axes) -> list[tuple[str, tuple, tuple]]:
    return list(zip(names, shapes, axes))


def stages(trace, depth: int = 2) -> list[Stage]:
    """The pipeline that :func:`plot` draws, one :class:`Stage` per box.

    Modules at most ``depth`` deep are boxes; a ``TimeDistributed`` becomes three: the fold
    (or the loop over T), its module, and the unfold (or the stack).
    """
    rows = trace.rows
    if not rows:
        return []
    out = [Stage("input", "", _tensors(rows[0].input_names, rows[0].inputs, rows[0].input_axes), [])]
    children = _children(rows)

    def visit(i: int) -> None:
        row, kids = rows[i], children[i]
        ins = _tensors(row.input_names, row.inputs, row.input_axes)
        if row.type == "TimeDistributed" and kids and row.depth < depth:
            inner = rows[kids[0]]
            folded = any(a and "*" in a for a in (inner.input_axes[0] if inner.input_axes else ()))
            title = "fold (B, T) -> B*T" if folded else f"loop: x[:, t], {inner.calls} calls"
            out.append(Stage(title, row.name, _tensors(inner.input_names, inner.inputs, inner.input_axes), ins))
            for k in kids:
                visit(k)
            title = "unfold B*T -> (B, T)" if folded else "stack the T results"
            out.append(Stage(title, row.name, _tensors(row.output_names, row.outputs, row.output_axes), []))
        elif kids and row.depth < depth:
            for k in kids:
                visit(k)
        else:
            title = f"{row.name or 'model'}: {row.type}" + (f" x{row.calls}" if row.calls > 1 else "")
            note = "raised here" if row.raised and not row.outputs else ""
            out.append(Stage(title, note, _tensors(row.output_names, row.outputs, row.output_axes), ins))

    for k in (children[0] if children[0] and depth > 0 else []):
        visit(k)
    if len(out) == 1:
        visit(0)
    return out


def _children(rows) -> list[list[int]]:
    """For each row, the indices of its direct children (rows are in pre-order with depths)."""
    children: list[list[int]] = [[] for _ in rows]
    stack: list[int] = []
    for i, row in enumerate(rows):
        while stack and rows[stack[-1]].depth >= row.depth:
            stack.pop()
        if stack:
            children[stack[-1]].append(i)
        stack.append(i)
    return children


_LINE, _PAD, _GAP = 0.42, 0.12, 0.45      # inches: a line of a box, a box's padding, between boxes


def plot(trace, depth: int = 2, ax=None):
    """Draw the pipeline, one box per stage, axes coloured: T orange, B*T purple, B blue.

    Returns the matplotlib ``Figure``; a new one (not pyplot: no global state, any backend)
    unless ``ax`` is given.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch

    from ..viz.figure import shows_as_png

    boxes = stages(trace, depth)
    # A line per tensor (two when there is a note under the title); drawn in inches down from 0.
    rows_per_stage = [max(2 if stage.note else 1, len(stage.tensors)) for stage in boxes]
    height = 0.6 + sum(n * _LINE + _PAD for n in rows_per_stage) + _GAP * (len(boxes) - 1)
    if ax is None:
        fig = shows_as_png(Figure(figsize=(10, height)))   # a PNG in Jupyter, no display hook needed
        ax = fig.add_axes((0, 0, 1, 1))
    else:
        fig = ax.figure
    ax.set_xlim(0, 100)
    ax.set_ylim(-height, 0)
    ax.axis("off")
    y, prev_bottom, previous = -0.3, None, None
    for stage, n in zip(boxes, rows_per_stage):
        top, box_h = y, n * _LINE + _PAD
        _draw_stage(ax, stage, top, box_h)
        if prev_bottom is not None:
            ax.add_patch(FancyArrowPatch((50, prev_bottom), (50, top), arrowstyle="-|>", mutation_scale=10,
                                         color="#636363", linewidth=1))
            # Work done between two modules (x[:, -1], a flatten) shows as a changed shape.
            inputs = stage.inputs
            if inputs and previous and inputs[0][1] != previous[0][1]:
                ax.text(51.5, (prev_bottom + top) / 2, f"in: {format_shape(inputs[0][1], inputs[0][2])}",
                        fontsize=7, va="center", color="#636363", family="monospace")
        prev_bottom, previous = top - box_h, stage.tensors
        y = top - box_h - _GAP
    return fig


def _draw_stage(ax, stage: Stage, top: float, box_h: float) -> None:
    """One box: its title, its note, and each tensor it hands on as coloured axis chips."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((1, top - box_h), 98, box_h, boxstyle="round,pad=0.02,rounding_size=0.1",
                                facecolor="#f7f7f7", edgecolor="#636363", linewidth=1))
    ax.text(2, top - 0.27, stage.title, fontsize=9, fontweight="bold", va="center", family="monospace")
    if stage.note:
        ax.text(2, top - 0.27 - _LINE, stage.note, fontsize=8, va="center", color="#636363", family="monospace")
    for k, (name, shape, axes) in enumerate(stage.tensors):
        cy = top - 0.27 - _LINE * k
        x = 40.0
        if len(stage.tensors) > 1:
            ax.text(x, cy, name, fontsize=8, va="center", family="monospace")
            x += 7
        for a, s in zip(axes, shape):
            text = f"{a}={s}" if a else str(s)
            width = 1.1 * len(text) + 1.2
            ax.add_patch(FancyBboxPatch((x, cy - 0.15), width, 0.3, boxstyle="round,pad=0.02,rounding_size=0.08",
                                        facecolor=AXIS_COLORS[axis_kind(a)], edgecolor="#969696", linewidth=0.6))
            ax.text(x + width / 2, cy, text, fontsize=8, ha="center", va="center", family="monospace")
            x += width + 0.8

"""trace_shapes: run a model once and see every module's input and output shapes, axes named.

A CNN-LSTM is mostly reshapes that move the time axis into the batch and out again, and
PyTorch's messages give sizes, not meanings (``shape '[8, 1568]' is invalid for input of size
50176``). ``trace_shapes`` runs the model once with forward hooks on every module, the way
torchinfo does (and removes them in a ``finally``), and records in call order:

- every module's inputs and outputs, *every* member of a tuple included: an LSTM's ``output``,
  ``h_n`` and ``c_n`` each get a line, where torchinfo keeps only the first;
- the meaning of each axis where it can be known: ``B`` (clips), ``T`` (time steps), ``B*T``
  (frames folded into the batch), ``C``, ``H``, ``W``, ``F`` (features), ``L`` (layers of an
  RNN state), and ``H`` for the hidden size of an LSTM's output;
- one row with a count ``x4`` for a module called once per time step (``TimeDistributed``'s
  loop mode), where Keras' ``summary()`` shows only the wrapper and a plain hook list T copies.

How the axes are known: the model's input is labelled ``(B, T, C, H, W)`` (or what ``axes=``
says) and the labels then *follow the data*. A ``torch.overrides.TorchFunctionMode`` sees every
tensor operation during the trace, so a ``reshape`` that merges B and T makes an axis ``B*T``,
``flatten(1)`` turns ``(C, H, W)`` into one ``F``, ``x[:, -1]`` drops T and ``permute``
reorders. Recurrent layers label their results by their contract (``nn.LSTM``: ``output``
``(B, T, H)``, ``h_n`` ``(L, B, H)``). A size alone never names an axis when two axes could
share it: an axis whose meaning is unknown is printed as a bare number.

The same watcher reports code that PyTorch runs without complaint but that is almost surely
wrong (:data:`WARNING_KINDS`):

- ``unbatched``: a 2-D tensor reaches ``nn.LSTM``/``GRU``/``RNN``, which reads it as ONE
  sequence, so the batch becomes the time axis (seed 004's "expected ndim=3, found ndim=2",
  which PyTorch does not raise);
- ``time_major`` / ``batch_major``: a ``(T, B, ...)`` tensor reaches a ``batch_first=True``
  layer, or a ``(B, T, ...)`` one a ``batch_first=False`` layer (``nn.LSTM``'s default). The
  labels decide; when the tensor has none, its sizes do, but only if B and T differ;
- ``view_swap``: a ``view``/``reshape`` cuts a folded ``T*B`` axis (or a ``(T, B)`` pair) into
  sizes ``(B, T)``, or the other way round: the shape looks swapped but every "clip" now mixes
  steps of different clips. Found only where the labels reach (not through custom C++ ops,
  ``.data`` or ``numpy()`` round trips) and only if B and T differ.
"""

from __future__ import annotations

import html
import math
import re
import textwrap
import weakref
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence
from torch.overrides import TorchFunctionMode

from .axes import AXIS_MEANINGS, BATCH_ATOMS, axis_kind, axis_name, format_shape, model_input_axes, parse_axes
from .axes import recurrent_contract
from .layers.time_distributed import TimeDistributed

__all__ = ["AXIS_COLORS", "ShapeTrace", "Stage", "TraceRow", "TraceWarning", "WARNING_KINDS", "axis_kind",
           "format_shape", "trace_shapes"]

# One axis label is a tuple of "atoms": ("B",) is the batch, ("B", "T") the folded B*T axis,
# None an axis whose meaning is unknown. A tensor's labels are one such entry per axis.

WARNING_KINDS = {
    "unbatched": "a 2-D tensor reached a recurrent layer, which reads it as ONE unbatched sequence",
    "time_major": "a (T, B, ...) tensor reached a batch_first=True recurrent layer",
    "batch_major": "a (B, T, ...) tensor reached a batch_first=False recurrent layer",
    "view_swap": "a view/reshape relabelled B and T instead of moving data with permute",
}

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



# --- small helpers about shapes and labels ----------------------------------------------------


def _merge(axes):
    """The label of one axis made by merging ``axes`` (all known), e.g. B, T -> B*T; C, H, W -> F."""
    if any(a is None for a in axes):
        return None
    atoms = [atom for a in axes for atom in a]
    merged = []
    for atom in atoms:
        if atom not in BATCH_ATOMS:
            atom = "F"  # a flattened feature map is a feature vector, whatever it was made of
            if merged and merged[-1] == "F":
                continue
        merged.append(atom)
    return tuple(merged)


def _reshape_groups(src, dst, joins_previous=lambda axis: False):
    """Pair the axes of ``src`` and ``dst`` that a reshape maps onto each other.

    Returns ``[(src_axes, dst_axes), ...]``, or None when the sizes cannot be paired (empty tensors).
    Size-1 axes make the pairing ambiguous; ``joins_previous(axis)`` says whether a size-1 source
    axis belongs to the group before it (T=1 folding into B*T) rather than to the next one.

    >>> _reshape_groups((2, 4, 288), (8, 288))
    [([0, 1], [0]), ([2], [1])]
    """
    if 0 in src or 0 in dst or math.prod(src) != math.prod(dst):
        return None
    groups, i, j = [], 0, 0
    while i < len(src) and j < len(dst):
        ins, outs, p, q = [i], [j], src[i], dst[j]
        while p != q:
            if p < q:
                i += 1
                ins.append(i)
                p *= src[i]
            else:
                j += 1
                outs.append(j)
                q *= dst[j]
        while i + 1 < len(src) and src[i + 1] == 1 and joins_previous(i + 1):
            i += 1
            ins.append(i)
        groups.append((ins, outs))
        i, j = i + 1, j + 1
    groups += [([k], []) for k in range(i, len(src))] + [([], [k]) for k in range(j, len(dst))]
    return groups


def _tensors(obj, path: str):
    """Every tensor inside ``obj`` (tuples, lists, dicts, named tuples), in order, with its path.

    A ``PackedSequence`` is one sequence: its ``data`` and ``batch_sizes``; the sort permutations
    are bookkeeping, not shapes a learner needs.
    """
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, PackedSequence):
        yield f"{path}.data", obj.data
        yield f"{path}.batch_sizes", obj.batch_sizes
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):
        for name, item in zip(obj._fields, obj):
            yield from _tensors(item, f"{path}.{name}")
    elif isinstance(obj, (tuple, list)):
        for i, item in enumerate(obj):
            yield from _tensors(item, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from _tensors(item, f"{path}[{key!r}]")


# --- recurrent layers: what they read and what they return ------------------------------------

PACKED = ("sum(T)",)        # the rows of a PackedSequence's data: every step of every sequence

def _io_names(module, paths: list[str], output: bool) -> list[str]:
    """``["output", "h_n", "c_n"]`` for an LSTM's results; the tensor paths elsewhere."""
    contract = recurrent_contract(module)
    known: tuple[str, ...] = ()
    if contract is not None:
        known = contract.output_names if output else contract.input_names
    if len(paths) == 1 and not known:
        return ["output" if output else "input"]
    names, k = [], 0
    for i, path in enumerate(paths):
        if path.endswith(".batch_sizes") and i and paths[i - 1] == path[:-len("batch_sizes")] + "data":
            names.append(names[-1][:-len("data")] + "batch_sizes")   # a packed sequence: one name
            continue
        name = known[k] if k < len(known) else path
        packed = path.endswith(".data") and i + 1 < len(paths) and paths[i + 1] == path[:-4] + "batch_sizes"
        names.append(name + ".data" if packed and k < len(known) else name)
        k += 1
    return names


def _recurrent_labels(module, x_labels, x_shape, n_outputs, packed=False):
    """Labels for a recurrent layer's results, by its contract, from how it reads its input.

    An axis keeps the label it had in the input (the truth about where the data came from);
    where the input's label is unknown, the layer's own reading (B, T) is used. A packed input
    gives a packed output, ``data`` (sum(T), H) and ``batch_sizes`` (T,), and batched states.
    """
    contract = recurrent_contract(module)
    x_labels = x_labels or (None,) * len(x_shape)
    states = 2 if contract.cell_state else 1     # anything after them (gates) is left alone
    hidden = tuple((a,) for a in contract.hidden_axes)
    if packed:
        state = (("L",), ("B",)) + hidden
        return ([(PACKED,) + hidden, (("T",),)] + [state] * states)[:n_outputs]
    if contract.sequence:
        if len(x_shape) != contract.batched_rank:  # an unbatched sequence (T, F): no batch axis anywhere
            output = (x_labels[0],) + hidden
            state = (("L",),) + hidden
        else:
            b, t = (0, 1) if module.batch_first else (1, 0)
            batch, time = x_labels[b] or ("B",), x_labels[t] or ("T",)
            output = ((batch, time) if module.batch_first else (time, batch)) + hidden
            state = (("L",), batch) + hidden
        return ([output] + [state] * states)[:n_outputs]
    batched = len(x_shape) == contract.batched_rank
    step = ((x_labels[0],) if batched else ()) + hidden
    return [step] * min(n_outputs, states)


# --- what one trace records -------------------------------------------------------------------


@dataclass(frozen=True)
class TraceWarning:
    """Code that PyTorch runs without complaint but that is almost surely wrong.

    ``kind`` is a key of :data:`WARNING_KINDS`, ``module`` the qualified name of the module
    where it happened (``""`` for the model itself).
    """

    kind: str
    module: str
    message: str

    def __str__(self) -> str:
        return f"{self.module or 'model'}: {self.message}"


@dataclass
class TraceRow:
    """One module call: shapes in and out, with one label per axis (None where unknown)."""

    name: str                                  # qualified name, "" for the model itself
    type: str                                  # class name, e.g. "Conv2d"
    depth: int                                 # 0 for the model, 1 for its children, ...
    inputs: list[tuple[int, ...]]              # every input tensor, tuple members flattened in order
    outputs: list[tuple[int, ...]]             # every output tensor: output, h_n, c_n, ...
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    input_axes: list[tuple[str | None, ...]] = field(default_factory=list)   # e.g. ("B*T", "C", "H", "W")
    output_axes: list[tuple[str | None, ...]] = field(default_factory=list)
    calls: int = 1                             # > 1: called again and again with the same shapes
    raised: bool = False                       # its forward raised before returning

    def format_inputs(self) -> list[str]:
        return [format_shape(s, a) for s, a in zip(self.inputs, self.input_axes)]

    def format_outputs(self) -> list[str]:
        return [format_shape(s, a) for s, a in zip(self.outputs, self.output_axes)]


class _Node:
    """A row while it is being recorded: a tree, so repeated calls can be counted in place."""

    def __init__(self, module, name, depth, inputs):
        self.module, self.name, self.depth = module, name, depth
        self.inputs = inputs              # [(name, shape, labels)]
        self.outputs = []                 # [(name, shape, labels)], filled on the first return
        self.children: list[_Node] = []
        self.cursor = 0                   # which child the current call of this node reached
        self.calls = 1
        self.done = False

    def preorder(self):
        yield self
        for child in self.children:
            yield from child.preorder()


class Stage(NamedTuple):
    """One box of the pipeline drawing: what it is and the tensors it hands on."""

    title: str                                 # "lstm: LSTM", "fold (B, T) -> B*T", ...
    note: str                                  # a second line: the wrapper's name, "raised here"
    tensors: list[tuple[str, tuple, tuple]]    # (name, shape, axes) of what comes out
    inputs: list[tuple[str, tuple, tuple]]     # what went in, when it is worth comparing


class ShapeTrace:
    """The result of :func:`trace_shapes`: ``rows`` in call order, ``warnings``, and views of them.

    ``str(trace)`` is a table, ``trace._repr_html_()`` the same table for Jupyter,
    ``trace.plot()`` a matplotlib figure of the pipeline. ``trace["lstm"]`` is the row of the
    module with that qualified name.
    """

    def __init__(self, rows: list[TraceRow], warnings: list[TraceWarning], sizes: dict[str, int],
                 error: BaseException | None = None) -> None:
        self.rows = rows
        self.warnings = warnings
        self.sizes = sizes          # the sizes of B and T read from the model's input
        self.error = error          # set when the forward raised: the rows are those reached

    def __getitem__(self, name: str) -> TraceRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no module named {name!r} in the trace; names: {[r.name for r in self.rows]}")

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def failed(self) -> TraceRow | None:
        """The innermost module whose forward raised, or None if the run finished."""
        raised = [row for row in self.rows if row.raised]
        return raised[-1] if raised else None

    # --- text ---

    def __str__(self) -> str:
        return self.table()

    __repr__ = __str__

    def table(self) -> str:
        """The trace as a fixed-width table: module, type, input, output; then axes and warnings."""
        header = ["module", "type", "input", "output"]
        body = []
        for row in self.rows:
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
        lines.append(textwrap.fill("axes: " + self._legend(), width=100, subsequent_indent="      "))
        for w in self.warnings:
            lines.append(textwrap.fill(f"warning: {w}", width=100, subsequent_indent="  "))
        if self.error is not None:
            where = (self.failed.name if self.failed else "") or "model"
            lines.append(textwrap.fill(f"raised in {where}: {type(self.error).__name__}: {self.error}",
                                       width=100, subsequent_indent="  "))
        return "\n".join(lines)

    def _legend(self) -> str:
        seen = {a for row in self.rows for axes in row.input_axes + row.output_axes for a in axes if a}
        parts = []
        for name in AXIS_MEANINGS:
            if name in seen:
                size = self.sizes.get(name) or (self.sizes["B"] * self.sizes["T"]
                                                if name in ("B*T", "T*B") and {"B", "T"} <= set(self.sizes) else None)
                parts.append(f"{name} {AXIS_MEANINGS[name]}" + (f" ({size})" if size else ""))
        return ", ".join(parts) or "none known"

    # --- Jupyter ---

    def _repr_html_(self) -> str:
        def chips(names, shapes, axes):
            lines = []
            for name, shape, labels in zip(names, shapes, axes):
                spans = [f'<span style="background:{AXIS_COLORS[axis_kind(a)]};padding:0 3px;'
                         f'border-radius:3px;margin-right:2px">{html.escape(f"{a}={s}" if a else str(s))}</span>'
                         for a, s in zip(labels, shape)]
                prefix = f"<code>{html.escape(name)}</code> " if len(shapes) > 1 else ""
                lines.append(prefix + "(" + "".join(spans) + ")")
            return "<br>".join(lines)

        cells = ['<table style="font-family:monospace;font-size:90%"><thead><tr>'
                 "<th>module</th><th>type</th><th>input</th><th>output</th></tr></thead><tbody>"]
        for row in self.rows:
            label = html.escape(row.name.rsplit(".", 1)[-1] if row.depth else "model")
            kind = html.escape(row.type) + (f" <b>x{row.calls}</b>" if row.calls > 1 else "")
            out = "<i>raised</i>" if row.raised and not row.outputs else chips(row.output_names, row.outputs, row.output_axes)
            cells.append(f'<tr><td style="text-align:left;padding-left:{1.2 * row.depth:.1f}em" '
                         f'title="{html.escape(row.name)}">{label}</td><td style="text-align:left">{kind}</td>'
                         f'<td style="text-align:left">{chips(row.input_names, row.inputs, row.input_axes)}</td>'
                         f'<td style="text-align:left">{out}</td></tr>')
        cells.append("</tbody></table>")
        cells.append(f"<p><small>axes: {html.escape(self._legend())}</small></p>")
        if self.warnings:
            cells.append("<ul>" + "".join(f'<li style="color:#b30000">{html.escape(str(w))}</li>'
                                          for w in self.warnings) + "</ul>")
        return "".join(cells)

    # --- matplotlib ---

    def stages(self, depth: int = 2) -> list[Stage]:
        """The pipeline that :meth:`plot` draws, one :class:`Stage` per box.

        Modules at most ``depth`` deep are boxes; a ``TimeDistributed`` becomes three: the fold
        (or the loop over T), its module, and the unfold (or the stack).
        """
        if not self.rows:
            return []
        tensors = lambda names, shapes, axes: list(zip(names, shapes, axes))  # noqa: E731
        root = self.rows[0]
        stages = [Stage("input", "", tensors(root.input_names, root.inputs, root.input_axes), [])]
        children = _children(self.rows)

        def visit(i: int) -> None:
            row, kids = self.rows[i], children[i]
            ins = tensors(row.input_names, row.inputs, row.input_axes)
            if row.type == "TimeDistributed" and kids and row.depth < depth:
                inner = self.rows[kids[0]]
                folded = any(a and "*" in a for a in (inner.input_axes[0] if inner.input_axes else ()))
                title = "fold (B, T) -> B*T" if folded else f"loop: x[:, t], {inner.calls} calls"
                stages.append(Stage(title, row.name, tensors(inner.input_names, inner.inputs, inner.input_axes), ins))
                for k in kids:
                    visit(k)
                title = "unfold B*T -> (B, T)" if folded else "stack the T results"
                stages.append(Stage(title, row.name, tensors(row.output_names, row.outputs, row.output_axes), []))
            elif kids and row.depth < depth:
                for k in kids:
                    visit(k)
            else:
                title = f"{row.name or 'model'}: {row.type}" + (f" x{row.calls}" if row.calls > 1 else "")
                note = "raised here" if row.raised and not row.outputs else ""
                stages.append(Stage(title, note, tensors(row.output_names, row.outputs, row.output_axes), ins))

        for k in (children[0] if children[0] and depth > 0 else []):
            visit(k)
        if len(stages) == 1:
            visit(0)
        return stages

    def plot(self, depth: int = 2, ax=None):
        """Draw the pipeline, one box per stage, axes coloured: T orange, B*T purple, B blue.

        Returns the matplotlib ``Figure``. ``depth`` is how deep into the model the boxes go.

        >>> import matplotlib; matplotlib.use("Agg")
        >>> from cnnlstm_edu.models import build_model
        >>> trace = trace_shapes(build_model("cnn_lstm"), torch.randn(2, 4, 1, 14, 14))
        >>> fig = trace.plot()
        >>> [stage.title for stage in trace.stages()][:4]
        ['input', 'fold (B, T) -> B*T', 'encoder.module: FrameCNN', 'unfold B*T -> (B, T)']
        """
        from matplotlib.figure import Figure
        from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

        stages = self.stages(depth)
        # A line per tensor (two when there is a note under the title); drawn in inches down from 0.
        rows_per_stage = [max(2 if stage.note else 1, len(stage.tensors)) for stage in stages]
        line, pad, gap = 0.42, 0.12, 0.45
        height = 0.6 + sum(n * line + pad for n in rows_per_stage) + gap * (len(stages) - 1)
        if ax is None:
            fig = Figure(figsize=(10, height))   # not pyplot: no global state, any backend
            ax = fig.add_axes((0, 0, 1, 1))
        else:
            fig = ax.figure
        ax.set_xlim(0, 100)
        ax.set_ylim(-height, 0)
        ax.axis("off")
        y = -0.3
        prev_bottom = None
        previous = None
        for (title, note, shapes, inputs), n in zip(stages, rows_per_stage):
            box_h = n * line + pad
            top = y
            ax.add_patch(FancyBboxPatch((1, top - box_h), 98, box_h, boxstyle="round,pad=0.02,rounding_size=0.1",
                                        facecolor="#f7f7f7", edgecolor="#636363", linewidth=1))
            ax.text(2, top - 0.27, title, fontsize=9, fontweight="bold", va="center", family="monospace")
            if note:
                ax.text(2, top - 0.27 - line, note, fontsize=8, va="center", color="#636363", family="monospace")
            for k, (name, shape, axes) in enumerate(shapes):
                cy = top - 0.27 - line * k
                x = 40.0
                if len(shapes) > 1:
                    ax.text(x, cy, name, fontsize=8, va="center", family="monospace")
                    x += 7
                for a, s in zip(axes, shape):
                    text = f"{a}={s}" if a else str(s)
                    width = 1.1 * len(text) + 1.2
                    ax.add_patch(FancyBboxPatch((x, cy - 0.15), width, 0.3, boxstyle="round,pad=0.02,rounding_size=0.08",
                                                facecolor=AXIS_COLORS[axis_kind(a)], edgecolor="#969696", linewidth=0.6))
                    ax.text(x + width / 2, cy, text, fontsize=8, ha="center", va="center", family="monospace")
                    x += width + 0.8
            if prev_bottom is not None:
                ax.add_patch(FancyArrowPatch((50, prev_bottom), (50, top), arrowstyle="-|>", mutation_scale=10,
                                             color="#636363", linewidth=1))
                # Work done between two modules (x[:, -1], a flatten) shows as a changed shape.
                if inputs and previous and inputs[0][1] != previous[0][1]:
                    ax.text(51.5, (prev_bottom + top) / 2, f"in: {format_shape(inputs[0][1], inputs[0][2])}",
                            fontsize=7, va="center", color="#636363", family="monospace")
            prev_bottom, previous = top - box_h, shapes
            y = top - box_h - gap
        return fig


def _named(names: list[str], shapes: list[str]) -> list[str]:
    """One line per tensor; with several, each starts with its name: ``h_n  (L=1, B=2, H=128)``."""
    if len(shapes) <= 1:
        return shapes
    width = max(len(n) for n in names)
    return [f"{n.ljust(width)}  {s}" for n, s in zip(names, shapes)]


def _children(rows: list[TraceRow]) -> list[list[int]]:
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


# --- the tracer: hooks for modules, a TorchFunctionMode for everything between them -------------


class _Tracer(TorchFunctionMode):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.names = {}
        for name, module in model.named_modules():
            self.names.setdefault(id(module), name)
        self.labels: dict[int, tuple] = {}         # id(tensor) -> (weakref, labels)
        self.sizes: dict[str, int] = {}            # B and T, from the model's input
        self.root = _Node(None, "", -1, [])
        self.stack = [self.root]
        self.warnings: list[TraceWarning] = []

    # labels, keyed by tensor identity; a weak reference makes a recycled id harmless
    def get(self, t: torch.Tensor):
        entry = self.labels.get(id(t))
        if entry is None or entry[0]() is not t or len(entry[1]) != t.dim():
            return None
        return entry[1]

    def set(self, t: torch.Tensor, labels) -> None:
        if labels is not None and len(labels) == t.dim() and any(a is not None for a in labels):
            self.labels[id(t)] = (weakref.ref(t), tuple(labels))

    def label_inputs(self, model, inputs, axes) -> None:
        per_input = [axes] if isinstance(axes, str) or axes is None else list(axes)
        for k, x in enumerate(inputs):
            if not isinstance(x, torch.Tensor):
                continue
            given = per_input[k] if k < len(per_input) else None
            if given is None and k == 0:
                given = model_input_axes(model, x.dim())
            if given is None:
                continue
            labels = parse_axes(given, x.dim(), f"input {k} {tuple(x.shape)}")
            self.set(x, labels)
            for a, s in zip(labels, x.shape):
                if a is not None and len(a) == 1 and a[0] in ("B", "T"):
                    self.sizes.setdefault(a[0], int(s))

    def warn(self, kind: str, module: str, message: str) -> None:
        w = TraceWarning(kind, module, message)
        if w not in self.warnings:
            self.warnings.append(w)

    @property
    def where(self) -> str:
        return self.stack[-1].name if len(self.stack) > 1 else ""

    # --- module hooks ---

    def pre_hook(self, module, args, kwargs):
        found = [(p, t) for i, a in enumerate(args) for p, t in _tensors(a, f"[{i}]")]
        found += [(p, t) for key, v in kwargs.items() for p, t in _tensors(v, key)]
        names = _io_names(module, [p for p, _ in found], output=False)
        labels = [self.get(t) for _, t in found]
        contract = recurrent_contract(module)
        packed = bool(args) and isinstance(args[0], PackedSequence)
        if contract is not None and packed:
            # The data's rows are the steps of every sequence; its features are the layer's input.
            state = _recurrent_labels(module, None, (), len(found) + 1, packed=True)
            data = labels[0] or (PACKED,) + (("F",),) * (found[0][1].dim() - 1)
            labels = [data, labels[1] or state[1]] + [lab or s for lab, s in zip(labels[2:], state[2:])]
        elif contract is not None and found and len(found) > 1:
            # h_0 and c_0 are usually made inside forward or by the caller: label them by contract.
            state = _recurrent_labels(module, labels[0], tuple(found[0][1].shape), len(found))
            labels = [labels[0]] + [lab or s for lab, s in zip(labels[1:], state[1:])]
        inputs = [(n, tuple(t.shape), lab) for n, (_, t), lab in zip(names, found, labels)]

        parent = self.stack[-1]
        node = self._child(parent, module, inputs)
        if node.calls == 1 and contract is not None and contract.sequence and found and not packed:
            self._check_recurrent_input(node.name, module, found[0][1], labels[0])
        self.stack.append(node)

    def _child(self, parent: _Node, module, inputs) -> _Node:
        shapes = [s for _, s, _ in inputs]
        kids = parent.children
        # A parent called again (loop mode) calls its children again in the same order: count
        # those calls on the rows already there instead of adding T copies.
        if parent.cursor < len(kids):
            candidate = kids[parent.cursor]
            if candidate.module is module and [s for _, s, _ in candidate.inputs] == shapes:
                parent.cursor += 1
                candidate.calls += 1
                candidate.cursor = 0
                return candidate
        elif kids and kids[-1].module is module and kids[-1].done and [s for _, s, _ in kids[-1].inputs] == shapes:
            kids[-1].calls += 1      # the same module again, straight after itself: x[:, t] for each t
            kids[-1].cursor = 0
            return kids[-1]
        name = self.names.get(id(module), type(module).__name__)
        node = _Node(module, name, parent.depth + 1, inputs)
        kids.append(node)
        parent.cursor = len(kids)
        return node

    def post_hook(self, module, args, kwargs, output):
        # A child that raised inside a try/except in its parent never reached its own post hook.
        while len(self.stack) > 1 and self.stack[-1].module is not module:
            self.stack.pop()
        node = self.stack.pop() if len(self.stack) > 1 else None
        found = list(_tensors(output, ""))
        packed = bool(args) and isinstance(args[0], PackedSequence)
        x = args[0].data if packed else args[0] if args and isinstance(args[0], torch.Tensor) else None
        x_labels = self.get(x) if x is not None else None
        labels = [self.get(t) for _, t in found]
        if recurrent_contract(module) is not None and x is not None and found:
            rule = _recurrent_labels(module, x_labels, tuple(x.shape), len(found), packed)
            labels = rule + labels[len(rule):]
        elif isinstance(module, TimeDistributed) and x_labels is not None and len(found) == 1:
            y_labels = labels[0] or (None,) * found[0][1].dim()
            labels = [tuple(x_labels[:2]) + tuple(y_labels[2:])]  # (B, T) around whatever each frame became
        for (_, t), lab in zip(found, labels):
            self.set(t, lab)
        if node is not None and not node.done:
            names = _io_names(module, [p for p, _ in found], output=True)
            node.outputs = [(n, tuple(t.shape), lab) for n, (_, t), lab in zip(names, found, labels)]
            node.done = True

    def _check_recurrent_input(self, name: str, module, x: torch.Tensor, labels) -> None:
        kind = type(module).__name__
        shown = format_shape(x.shape, [axis_name(a) for a in labels] if labels else None)
        if isinstance(module, nn.RNNBase) and x.dim() == 2:
            what = ("the batch axis B" if labels and labels[0] == ("B",) else "its first axis")
            self.warn("unbatched", name,
                      f"{kind} got a 2-D input {shown}. PyTorch reads a 2-D tensor as ONE unbatched "
                      f"sequence (T, F), so {what} ({x.shape[0]}) is being read as {x.shape[0]} time "
                      "steps of a single sequence. Give it (B, T, F): keep the time axis when you "
                      "reshape (x.view(B, T, -1), unfold_time), or x.unsqueeze(1) for one step per sample.")
            return
        if x.dim() != recurrent_contract(module).batched_rank:
            return
        first, second = (labels[0], labels[1]) if labels else (None, None)
        B, T = self.sizes.get("B"), self.sizes.get("T")
        # Sizes decide only when the labels are silent and B and T cannot be confused.
        by_size = first is None and second is None and B and T and B != T
        time_major = (first, second) == (("T",), ("B",)) or (by_size and x.shape[:2] == (T, B))
        batch_major = (first, second) == (("B",), ("T",)) or (by_size and x.shape[:2] == (B, T))
        perm = "(1, 0, 2)" if x.dim() == 3 else "(1, 0, 2, 3, 4)"
        n0, n1 = x.shape[0], x.shape[1]
        if module.batch_first and time_major:
            how = "is time-major" if not by_size else f"looks time-major: its sizes are (T={n0}, B={n1}, ...)"
            self.warn("time_major", name,
                      f"{kind} has batch_first=True, so it reads (B, T, ...), but its input {shown} {how}. "
                      f"It will treat the {n0} steps as clips and the {n1} clips as steps. Move the data "
                      f"with x.permute{perm} (a view or reshape would only relabel it), or build the layer "
                      "with batch_first=False.")
        elif not module.batch_first and batch_major:
            how = "is batch-major" if not by_size else f"looks batch-major: its sizes are (B={n0}, T={n1}, ...)"
            self.warn("batch_major", name,
                      f"{kind} has batch_first=False (nn.LSTM's default), so it reads (T, B, ...), but its "
                      f"input {shown} {how}. It will treat the {n0} clips as time steps and the {n1} steps "
                      f"as the batch. Build it with batch_first=True, or pass x.permute{perm}.")

    # --- every tensor operation between the modules ---

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        try:
            if isinstance(out, torch.Tensor):
                self.set(out, self._follow(func, args, kwargs, out))
            elif getattr(func, "__name__", "") in ("_pack_padded_sequence", "_pad_packed_sequence"):
                for t, labels in zip(out, self._packing(func.__name__, args, kwargs)):
                    self.set(t, labels)
        except Exception:  # labels are a courtesy: never let them break the user's forward
            pass
        return out

    def _packing(self, name, args, kwargs):
        """Labels of what pack_padded_sequence and pad_packed_sequence return: both are pairs."""
        labels = self.get(args[0])
        batch_first = args[2] if len(args) > 2 else kwargs.get("batch_first", False)
        if labels is None:
            return ()
        if name == "_pack_padded_sequence":   # (B, T, *rest) -> data (sum(T), *rest), batch_sizes (T,)
            time = labels[1] if batch_first else labels[0]
            return (PACKED,) + labels[2:], (time,)
        if labels[0] != PACKED:
            return ()
        lead = (("B",), ("T",)) if batch_first else (("T",), ("B",))   # back to (B, T, *rest), lengths (B,)
        return lead + labels[1:], (("B",),)

    def _follow(self, func, args, kwargs, out):
        name = getattr(func, "__name__", "")
        if name in ("stack", "cat", "concat", "concatenate"):
            return self._join(name, args, kwargs, out)
        src = args[0] if args and isinstance(args[0], torch.Tensor) else None
        labels = self.get(src) if src is not None else None
        if labels is None:
            return self._same_shape(args, out)
        in_shape, out_shape = tuple(src.shape), tuple(out.shape)
        if name in ("squeeze", "unsqueeze"):
            return _align_ones(labels, in_shape, out_shape)
        if name in ("view", "reshape", "flatten", "unflatten", "view_as", "reshape_as"):
            return self._reshape(name, labels, in_shape, out_shape)
        if name == "permute":
            dims = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
            return tuple(labels[d] for d in (tuple(dims) or tuple(kwargs["dims"])))
        if name in ("movedim", "moveaxis") and len(args) == 3 and all(isinstance(d, int) for d in args[1:]):
            result = list(labels)
            result.insert(args[2] % len(labels), result.pop(args[1] % len(labels)))
            return tuple(result)
        if name in _REDUCTIONS:
            return _reduce(labels, args, kwargs, out.dim())
        if name in ("transpose", "swapaxes", "swapdims"):
            d0, d1 = (args[1], args[2]) if len(args) > 2 else (kwargs["dim0"], kwargs["dim1"])
            result = list(labels)
            result[d0], result[d1] = result[d1], result[d0]
            return tuple(result)
        if name == "__getitem__":
            return _index(labels, in_shape, args[1], out_shape)
        if name == "linear":
            return labels[:-1] + (("F",),) if out.dim() == src.dim() else None
        match = re.match(r"(conv(_transpose)?|max_pool|avg_pool|adaptive_(avg|max)_pool|lp_pool)([123])d", name)
        if match:
            return _feature_map(labels, in_shape, out_shape, int(match.group(4)))
        if name in ("interpolate", "upsample", "pad") and len(out_shape) >= 3:
            return _feature_map(labels, in_shape, out_shape, len(out_shape) - 2)
        return self._same_shape(args, out)

    def _same_shape(self, args, out):
        # Elementwise work (ReLU, dropout, +, BatchNorm, ...) keeps every axis where it was.
        for a in args:
            if isinstance(a, torch.Tensor) and a.shape == out.shape:
                labels = self.get(a)
                if labels is not None:
                    return labels
        return None

    def _join(self, name, args, kwargs, out):
        tensors = args[0] if args else kwargs.get("tensors")
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        labels = [self.get(t) for t in tensors]
        if not labels or any(lab is None or lab != labels[0] for lab in labels):
            return None
        if name == "stack":  # a new axis, whose meaning the caller knows (TimeDistributed says T)
            dim = dim % out.dim()
            return labels[0][:dim] + (None,) + labels[0][dim:]
        return labels[0]

    def _reshape(self, name, labels, in_shape, out_shape):
        def is_batch(axis):
            return labels[axis] is not None and set(labels[axis]) <= set(BATCH_ATOMS)

        # (B=3, T=1, C=1, ...) -> (3, 1, ...): the T=1 folds with B, and C=1 stays C.
        groups = _reshape_groups(in_shape, out_shape, lambda axis: is_batch(axis) and is_batch(axis - 1))
        if groups is None:
            return None
        result = [None] * len(out_shape)
        for ins, outs in groups:
            if len(ins) == 1 and len(outs) == 1:             # an axis that stays itself, C=1 included
                result[outs[0]] = labels[ins[0]]
                continue
            # A size-1 axis holds no data to follow, but B=1 still says that B and T fold into B*T.
            batch = [i for i in ins if is_batch(i)]
            ins = [i for i in ins if in_shape[i] != 1 or (i in batch and len(batch) > 1)]
            if not ins or not outs:
                continue
            units = self._units([(labels[i], in_shape[i]) for i in ins])
            sizes = [out_shape[j] for j in outs]
            split = _split(units, sizes)
            if split is not None:
                for j, axis in zip(outs, split):
                    result[j] = axis
                continue
            atoms = [a for a, n in units if n > 1]
            if len(atoms) == len(units) == 2 and sorted(atoms) == [("B",), ("T",)] \
                    and _split(units[::-1], sizes) is not None:
                self._warn_swap(name, labels, in_shape, ins, tuple(a[0] for a in atoms), out_shape)
            elif len(units) == 1 and units[0][0] == ("F",) and len([n for n in sizes if n != 1]) == 3:
                grid = iter((("C",), ("H",), ("W",)))          # a feature vector unflattened into a map
                for j in outs:
                    result[j] = next(grid) if out_shape[j] != 1 else None
        return tuple(result)

    def _units(self, axes):
        """Break the axes of a reshape group into the smallest pieces whose sizes are known.

        A folded axis ``B*T=8`` becomes ``B=2`` and ``T=4`` (when both sizes are known), so that it
        can be cut again; any other axis stays one piece with its own size.
        """
        units = []
        for label, size in axes:
            known = [self.sizes.get(a) for a in label] if label is not None and len(label) > 1 else [None]
            if all(known) and math.prod(known) == size:
                units += [((a,), s) for a, s in zip(label, known)]
            else:
                units.append((label, size))
        return units

    def _warn_swap(self, name, labels, in_shape, ins, merged, out_shape):
        B, T = self.sizes["B"], self.sizes["T"]
        src = format_shape(in_shape, [axis_name(a) for a in labels])
        if merged == ("T", "B"):
            fix = ("unfold in the order the data lies, then swap the axes: "
                   f"x.view(T, B, ...).transpose(0, 1)" if len(ins) == 1 else
                   f"move the data instead: x.transpose({ins[0]}, {ins[1]})")
            got = "(B, T, ...)"
        else:
            fix = ("unfold as (B, T, ...) first, then swap the axes with transpose(0, 1)" if len(ins) == 1 else
                   f"move the data instead: x.transpose({ins[0]}, {ins[1]})")
            got = "(T, B, ...)"
        self.warn("view_swap", self.where,
                  f"{name} turned {src} into {tuple(out_shape)}, shaped like {got} with B={B}, T={T}. "
                  f"A view or reshape only regroups the numbers in memory order, so it does not swap B "
                  f"and T: each 'clip' of the result mixes steps of different clips. To swap them, {fix}.")


def _split(units, sizes):
    """Deal ``units`` ((label, size) pieces, in memory order) out to axes of ``sizes``, or None.

    >>> _split([(("B",), 2), (("T",), 4), (("F",), 72)], [2, 288])     # (B*T, F) viewed as (B, -1)
    [('B',), ('T', 'F')]
    >>> _split([(("T",), 4), (("B",), 2)], [2, 4]) is None              # T*B cannot become (B, T)
    True
    """
    out, k = [], 0
    for n, size in enumerate(sizes):
        if size == 1:  # the next piece if it has size 1 too (B=1), else a new axis with no name
            named = k < len(units) and units[k][1] == 1
            out.append(units[k][0] if named else None)
            k += named
            continue
        group, p = [], 1
        # Size-1 pieces left at the end belong to the last axis: (T=3, B=1) merges to T*B.
        while k < len(units) and (p < size or (units[k][1] == 1 and n == len(sizes) - 1)):
            group.append(units[k][0])
            p *= units[k][1]
            k += 1
        if p != size or not group:
            return None
        out.append(group[0] if len(group) == 1 else _merge(group))
    return out if k == len(units) else None


def _index(labels, shape, index, out_shape):
    """Labels after basic indexing: an int drops its axis (``x[:, -1]`` drops T), a slice keeps it.

    >>> _index((("B",), ("T",), ("H",)), (2, 4, 16), (slice(None), -1), (2, 16))
    (('B',), ('H',))
    """
    index = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, (torch.Tensor, list, bool)) for i in index):
        return None  # advanced indexing: the result's axes are not simply the input's
    used = sum(1 for i in index if i is not None and i is not Ellipsis)
    expanded = []
    for i in index:
        expanded += [slice(None)] * (len(shape) - used) if i is Ellipsis else [i]
    result, axis = [], 0
    for i in expanded:
        if i is None:
            result.append(None)
        elif isinstance(i, slice):
            result.append(labels[axis])
            axis += 1
        elif isinstance(i, int) or hasattr(i, "__index__"):
            axis += 1
        else:
            return None
    result += list(labels[axis:])
    if len(result) != len(out_shape):
        return None
    # x[:, :2] still has a time axis, with fewer steps; a slice of a folded B*T axis is not B*T.
    return tuple(a if a is None or len(a) == 1 or n == s else None
                 for a, n, s in zip(result, out_shape, _kept_sizes(shape, expanded)))


def _kept_sizes(shape, expanded):
    """The input sizes of the axes that survive an index, with 0 for the axes it adds."""
    sizes, axis = [], 0
    for i in expanded:
        if i is None:
            sizes.append(0)
        elif isinstance(i, slice):
            sizes.append(shape[axis])
            axis += 1
        else:
            axis += 1
    return sizes + list(shape[axis:])


def _align_ones(labels, in_shape, out_shape):
    """Labels after ``squeeze``/``unsqueeze``: every axis keeps its name, size-1 axes come and go.

    >>> _align_ones((("B",), ("F",)), (2, 72), (2, 1, 72))
    (('B',), None, ('F',))
    """
    result, i = [], 0
    for size in out_shape:
        while i < len(in_shape) and in_shape[i] == 1 and size != 1:
            i += 1                                   # a size-1 axis squeezed away
        if i < len(in_shape) and in_shape[i] == size:
            result.append(labels[i])
            i += 1
        elif size == 1:
            result.append(None)                      # a new axis
        else:
            return None
    return tuple(result)


_REDUCTIONS = ("sum", "mean", "amax", "amin", "std", "var", "prod", "logsumexp", "nansum", "nanmean")


def _reduce(labels, args, kwargs, out_rank):
    """Labels after a reduction over some axes: ``x.mean(1)`` on (B, T, F) averages T away."""
    dims = args[1] if len(args) > 1 and not isinstance(args[1], bool) else kwargs.get("dim")
    if dims is None:
        return None
    dims = {d % len(labels) for d in ((dims,) if isinstance(dims, int) else dims)}
    keep = len(args) > 2 and args[2] is True or kwargs.get("keepdim", False)
    result = tuple(None if k in dims else a for k, a in enumerate(labels)) if keep else \
        tuple(a for k, a in enumerate(labels) if k not in dims)
    return result if len(result) == out_rank else None


def _feature_map(labels, in_shape, out_shape, spatial: int):
    """Labels after a convolution or pooling over ``spatial`` axes: batch kept, then C and the grid."""
    if len(out_shape) != len(in_shape):
        return None
    grid = {1: (None,), 2: (("H",), ("W",)), 3: (None, ("H",), ("W",))}[spatial]
    if spatial == 3 and in_shape[-3] == out_shape[-3]:
        grid = (labels[-3],) + grid[1:]   # Conv3d over (B, C, T, H, W) that keeps every step
    if len(out_shape) == spatial + 2:
        first = labels[0] if out_shape[0] == in_shape[0] else None
        return (first, ("C",)) + grid
    if len(out_shape) == spatial + 1:     # unbatched: (C, H, W)
        return (("C",),) + grid
    return None


def trace_shapes(model: nn.Module, *inputs, axes=None, depth: int | None = None, train: bool = False,
                 **kwargs) -> ShapeTrace:
    """Run ``model(*inputs, **kwargs)`` once and record every module's shapes, axes labelled.

    ``axes`` names the axes of the first input (``"B T C H W"``), or of each input (a list);
    by default a 5-D input is ``(B, T, C, H, W)``, a 3-D one ``(B, T, F)``. ``depth`` keeps
    modules at most that deep (0: the model alone). The model runs in eval mode under
    ``torch.no_grad()`` so that BatchNorm statistics do not move (``train=True`` keeps training
    mode); every module's mode is restored afterwards. If the forward raises, the exception
    carries the partial trace as ``error.trace``.

    >>> from cnnlstm_edu.models import build_model
    >>> model = build_model("cnn_lstm", channels=(4, 8), hidden_size=16)
    >>> trace = trace_shapes(model, torch.randn(2, 4, 1, 14, 14))    # (B, T, C, H, W)
    >>> trace["encoder.module"].format_inputs()                       # the CNN sees frames
    ['(B*T=8, C=1, H=14, W=14)']
    >>> trace["lstm"].output_names, trace["lstm"].format_outputs()
    (['output', 'h_n', 'c_n'], ['(B=2, T=4, H=16)', '(L=1, B=2, H=16)', '(L=1, B=2, H=16)'])
    >>> trace["classifier"].format_inputs()                           # x[:, -1] dropped T
    ['(B=2, H=16)']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"trace_shapes traces an nn.Module, got {type(model).__name__}")
    tracer = _Tracer(model)
    tracer.label_inputs(model, inputs, axes)
    modes = [(m, m.training) for m in model.modules()]
    handles = []
    try:
        for m in model.modules():
            handles.append(m.register_forward_pre_hook(tracer.pre_hook, with_kwargs=True))
            handles.append(m.register_forward_hook(tracer.post_hook, with_kwargs=True))
        model.train(train)
        with torch.no_grad(), tracer:
            model(*inputs, **kwargs)
    except Exception as error:
        try:
            error.trace = _result(tracer, depth, error)
        except Exception:  # some exception types refuse new attributes; the error matters more
            pass
        raise
    finally:
        for h in handles:
            h.remove()
        for m, was_training in modes:
            m.training = was_training
    return _result(tracer, depth)


def _result(tracer: _Tracer, depth: int | None, error: BaseException | None = None) -> ShapeTrace:
    unfinished = {id(n) for n in tracer.stack[1:]} if error is not None else set()
    rows = []
    for node in tracer.root.preorder():
        if node is tracer.root or (depth is not None and node.depth > depth):
            continue
        rows.append(TraceRow(
            name=node.name, type=type(node.module).__name__, depth=node.depth,
            inputs=[s for _, s, _ in node.inputs], outputs=[s for _, s, _ in node.outputs],
            input_names=[n for n, _, _ in node.inputs], output_names=[n for n, _, _ in node.outputs],
            input_axes=[_names(lab, len(s)) for _, s, lab in node.inputs],
            output_axes=[_names(lab, len(s)) for _, s, lab in node.outputs],
            calls=node.calls, raised=id(node) in unfinished,
        ))
    return ShapeTrace(rows, list(tracer.warnings), dict(tracer.sizes), error)


def _names(labels, rank: int) -> tuple[str | None, ...]:
    return tuple(axis_name(a) for a in labels) if labels else (None,) * rank

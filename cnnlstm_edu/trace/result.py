"""What one trace records: a :class:`TraceRow` per module call, :class:`TraceWarning` for code
that runs but is almost surely wrong, and the :class:`ShapeTrace` that holds them and shows them
(as text, HTML or a figure: :mod:`cnnlstm_edu.trace.render`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..axes import format_shape
from . import render
from .render import Stage

__all__ = ["ShapeTrace", "TraceRow", "TraceWarning", "WARNING_KINDS"]

WARNING_KINDS = {
    "unbatched": "a 2-D tensor reached a recurrent layer, which reads it as ONE unbatched sequence",
    "time_major": "a (T, B, ...) tensor reached a batch_first=True recurrent layer",
    "batch_major": "a (B, T, ...) tensor reached a batch_first=False recurrent layer",
    "view_swap": "a view/reshape relabelled B and T instead of moving data with permute",
}


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


class ShapeTrace:
    """The result of :func:`~cnnlstm_edu.trace.trace_shapes`: ``rows`` in call order, ``warnings``,
    and views of them.

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

    def table(self) -> str:
        """The trace as a fixed-width table: module, type, input, output; then axes and warnings."""
        return render.table(self)

    def __str__(self) -> str:
        return self.table()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return render.to_html(self)

    def stages(self, depth: int = 2) -> list[Stage]:
        """The pipeline that :meth:`plot` draws, one :class:`~cnnlstm_edu.trace.render.Stage` per box.

        Modules at most ``depth`` deep are boxes; a ``TimeDistributed`` becomes three: the fold
        (or the loop over T), its module, and the unfold (or the stack).
        """
        return render.stages(self, depth)

    def plot(self, depth: int = 2, ax=None):
        """Draw the pipeline, one box per stage, axes coloured: T orange, B*T purple, B blue.

        Returns the matplotlib ``Figure``. ``depth`` is how deep into the model the boxes go.

        >>> import matplotlib; matplotlib.use("Agg")
        >>> import torch
        >>> from cnnlstm_edu.models import build_model
        >>> from cnnlstm_edu.trace import trace_shapes
        >>> trace = trace_shapes(build_model("cnn_lstm"), torch.randn(2, 4, 1, 14, 14))
        >>> fig = trace.plot()
        >>> [stage.title for stage in trace.stages()][:4]
        ['input', 'fold (B, T) -> B*T', 'encoder.module: FrameCNN', 'unfold B*T -> (B, T)']
        """
        return render.plot(self, depth, ax)

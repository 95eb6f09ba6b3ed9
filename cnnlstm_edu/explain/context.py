"""What is known around a shape error: the failing module, its input's shape and axes, B and T,
the tensors made just before, and the modules that were running (from a partial trace, from the
light hooks of :func:`~cnnlstm_edu.explain.explain_shapes`, or from the traceback itself); plus the
small writers the diagnoses share (a product of factors, a shape with its axes, "In lstm (LSTM): ").
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.modules import module as module_hooks
from torch.nn.modules.loss import _Loss

from ..axes import format_shape, model_input_axes
from ..trace import ShapeTrace

__all__ = ["Context", "Watcher", "context_from_trace", "context_of", "find_prefix", "guess_map", "ints",
           "map_source", "running_calls", "show", "times", "where_prefix"]


# --- what is known around the error -----------------------------------------------------------


@dataclass
class Context:
    where: str | None = None              # qualified name of the module that raised ("" = the model)
    kind: str | None = None               # its class name, e.g. "Conv2d"
    inputs: list[tuple] = field(default_factory=list)        # its input shapes
    input_axes: list[tuple] = field(default_factory=list)    # their labels, where known
    B: int | None = None
    T: int | None = None
    recent: list[tuple] = field(default_factory=list)  # (name, shape, labels) of outputs made before
    model: nn.Module | None = None
    module: nn.Module | None = None       # the module that raised, when the watcher saw it
    calls: list[tuple] = field(default_factory=list)   # (class name, input shape) of the modules
                                                         # running when it failed, outermost first

    def axes_of(self, shape) -> tuple | None:
        """The labels of ``shape`` if it is the failing module's input, else None."""
        for s, a in zip(self.inputs, self.input_axes):
            if tuple(s) == tuple(shape) and a and any(a):
                return a
        return None


def context_from_trace(trace: ShapeTrace, model) -> Context:
    ctx = Context(B=trace.sizes.get("B"), T=trace.sizes.get("T"), model=model)
    failed = trace.failed
    if failed is not None:
        ctx.where, ctx.kind = failed.name, failed.type
        ctx.inputs, ctx.input_axes = list(failed.inputs), list(failed.input_axes)
    ctx.calls = [(row.type, tuple(row.inputs[0])) for row in trace.rows if row.raised and row.inputs]
    for row in trace.rows:
        for shape, axes in zip(row.outputs, row.output_axes):
            ctx.recent.append((row.name, shape, axes))
    return ctx


class Watcher:
    """Global module hooks while :func:`explain_shapes` runs: which calls are open, what came out.

    Much lighter than a full trace (no tensor is inspected beyond its shape), so it can stay on
    around a whole training loop.
    """

    def __init__(self) -> None:
        self.open: list[tuple[nn.Module, list[tuple]]] = []
        self.recent: deque = deque(maxlen=64)
        self.root: nn.Module | None = None
        self.root_input: tuple | None = None

    def __enter__(self):
        self.handles = [module_hooks.register_module_forward_pre_hook(self.pre),
                        module_hooks.register_module_forward_hook(self.post)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()

    def pre(self, module, args):
        shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
        if not self.open and not isinstance(module, _Loss):  # a new top-level call: the model itself
            self.root, self.root_input = module, (shapes[0] if shapes else None)
            self.recent.clear()
        self.open.append((module, shapes))

    def post(self, module, args, output):
        if self.open and self.open[-1][0] is module:
            self.open.pop()
        tensors = [output] if isinstance(output, torch.Tensor) else [
            t for t in (output if isinstance(output, (tuple, list)) else ()) if isinstance(t, torch.Tensor)]
        for t in tensors:
            self.recent.append((module, tuple(t.shape)))

    def context(self, model) -> Context:
        model = model or self.root
        names = {id(m): n for n, m in model.named_modules()} if model is not None else {}
        ctx = Context(model=model, calls=[(type(m).__name__, shapes[0]) for m, shapes in self.open if shapes])
        if self.open:
            module, shapes = self.open[-1]
            ctx.where, ctx.kind = names.get(id(module), type(module).__name__), type(module).__name__
            ctx.module = module
            ctx.inputs, ctx.input_axes = shapes, [None] * len(shapes)
        if self.root_input is not None:
            axes = model_input_axes(self.root, len(self.root_input))
            if axes:
                for name, size in zip(axes, self.root_input):
                    if name == "B":
                        ctx.B = size
                    elif name == "T":
                        ctx.T = size
        ctx.recent = [(names.get(id(m), type(m).__name__), s, None) for m, s in self.recent]
        return ctx


# --- writing shapes and numbers ---------------------------------------------------------------


def ints(text: str) -> list[int]:
    return [int(v) for v in re.findall(r"-?\d+", text)]


def times(*factors) -> str:
    return " x ".join(str(f) for f in factors)


def show(shape, ctx: Context, fallback=None) -> str:
    axes = ctx.axes_of(shape)
    if axes is None and fallback is not None:
        axes = fallback
    return format_shape(shape, axes)


def map_source(size: int, ctx: Context) -> str | None:
    """Where ``size`` features per row come from: the last C x H x W map made before the error."""
    for name, shape, axes in reversed(ctx.recent):
        if len(shape) >= 4 and math.prod(shape[-3:]) == size:
            C, H, W = shape[-3:]
            lead = format_shape(shape, axes)
            return (f"{size} = C x H x W = {times(C, H, W)}: the feature map {lead} made by "
                    f"{name or 'the model'}, flattened per frame")
    return None


def guess_map(size: int) -> str | None:
    """A plausible C x H x W for ``size``, said as an example: the smallest square grid (from 3x3)
    with a power-of-two channel count, as the last block of a small CNN usually makes."""
    for hw in range(3, int(math.isqrt(size)) + 1):
        c = size // (hw * hw)
        if c * hw * hw == size and c >= 4 and (c & (c - 1)) == 0:
            return f"for example {times(c, hw, hw)}"
    return None


def where_prefix(ctx: Context) -> str:
    if ctx.where is None:
        return ""
    return f"In {ctx.where or 'the model'} ({ctx.kind}): "


def find_prefix(ctx: Context, kind, **attributes) -> str:
    """``"In classifier (Linear): "`` when ``model=`` has exactly one such module and no trace said where."""
    if ctx.where is not None or ctx.model is None:
        return where_prefix(ctx)
    found = [(name, m) for name, m in ctx.model.named_modules()
             if isinstance(m, kind) and all(getattr(m, k, None) == v for k, v in attributes.items())]
    if len(found) != 1:
        return ""
    name, module = found[0]
    return f"In {name or 'the model'} ({type(module).__name__}): "


def context_of(error: BaseException, model, trace) -> Context:
    trace = trace if trace is not None else getattr(error, "trace", None)
    if isinstance(trace, ShapeTrace):
        return context_from_trace(trace, model)
    return Context(model=model, calls=running_calls(error))


def running_calls(error: BaseException) -> list[tuple]:
    """(class name, input shape) of each module whose ``forward`` is on the traceback of ``error``
    (and of the torch error it was translated from), outermost first: where it failed, when no
    trace or watcher recorded it. The input is ``forward``'s first argument, if a tensor."""
    calls, seen = [], set()
    for e in (error, error.__cause__):
        tb = e.__traceback__ if e is not None else None
        while tb is not None:
            frame, code = tb.tb_frame, tb.tb_frame.f_code
            module = frame.f_locals.get("self")
            x = frame.f_locals.get(code.co_varnames[1]) if code.co_argcount > 1 else None
            if isinstance(module, nn.Module) and code.co_name == "forward" and isinstance(x, torch.Tensor) \
                    and id(module) not in seen:
                seen.add(id(module))
                calls.append((type(module).__name__, tuple(x.shape)))
            tb = tb.tb_next
    return calls

"""The tracer: forward hooks on every module (the torchinfo way, removed in a ``finally``) build a
tree of calls with their shapes, while the function-mode :class:`~.functions.Labeller` it
extends labels every tensor made between and inside the modules.

A module called again and again with the same shapes (``TimeDistributed``'s loop mode, a cell
stepped over T) stays one row with a count instead of T copies.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from ..axes import model_input_axes, parse_axes, recurrent_contract
from ..checks import check_number
from ..layers.time_distributed import TimeDistributed
from ..modes import eval_mode
from . import labels as lab
from . import recurrent
from .functions import Labeller
from .result import ShapeTrace, TraceRow, TraceWarning

__all__ = ["trace_shapes"]


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

    def same_call(self, module, shapes) -> bool:
        return self.module is module and [s for _, s, _ in self.inputs] == shapes


class _Tracer(Labeller):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.names = {}
        for name, module in model.named_modules():
            self.names.setdefault(id(module), name)
        self.root = _Node(None, "", -1, [])
        self.stack = [self.root]

    @property
    def where(self) -> str:
        return self.stack[-1].name if len(self.stack) > 1 else ""

    def label_inputs(self, model, inputs, axes) -> None:
        """Label the model's inputs: as ``axes`` says, else the first one by its rank."""
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

    # --- module hooks ---

    def pre_hook(self, module, args, kwargs):
        found = [(p, t) for i, a in enumerate(args) for p, t in recurrent.tensors(a, f"[{i}]")]
        found += [(p, t) for key, v in kwargs.items() for p, t in recurrent.tensors(v, key)]
        names = recurrent.io_names(module, [p for p, _ in found], output=False)
        labels = [self.get(t) for _, t in found]
        contract = recurrent_contract(module)
        packed = bool(args) and isinstance(args[0], PackedSequence)
        if contract is not None and found and (packed or len(found) > 1):
            labels = recurrent.input_labels(module, found, labels, packed)
        inputs = [(n, tuple(t.shape), lab) for n, (_, t), lab in zip(names, found, labels)]

        node = self._child(self.stack[-1], module, inputs)
        if node.calls == 1 and contract is not None and contract.sequence and found and not packed:
            warning = recurrent.recurrent_input_warning(module, found[0][1], labels[0], self.sizes)
            if warning is not None:
                self.warn(warning[0], node.name, warning[1])
        self.stack.append(node)

    def _child(self, parent: _Node, module, inputs) -> _Node:
        shapes = [s for _, s, _ in inputs]
        kids = parent.children
        # A parent called again (loop mode) calls its children again in the same order: count
        # those calls on the rows already there instead of adding T copies.
        if parent.cursor < len(kids):
            candidate = kids[parent.cursor]
            if candidate.same_call(module, shapes):
                parent.cursor += 1
                candidate.calls += 1
                candidate.cursor = 0
                return candidate
        elif kids and kids[-1].done and kids[-1].same_call(module, shapes):
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
        found = list(recurrent.tensors(output, ""))
        packed = bool(args) and isinstance(args[0], PackedSequence)
        x = args[0].data if packed else args[0] if args and isinstance(args[0], torch.Tensor) else None
        x_labels = self.get(x) if x is not None else None
        labels = [self.get(t) for _, t in found]
        if recurrent_contract(module) is not None and x is not None and found:
            rule = recurrent.output_labels(module, x_labels, tuple(x.shape), len(found), packed)
            labels = rule + labels[len(rule):]
        elif isinstance(module, TimeDistributed) and x_labels is not None and len(found) == 1:
            y_labels = labels[0] or (None,) * found[0][1].dim()
            labels = [tuple(x_labels[:2]) + tuple(y_labels[2:])]  # (B, T) around whatever each frame became
        for (_, t), labels_t in zip(found, labels):
            self.set(t, labels_t)
        if node is not None and not node.done:
            names = recurrent.io_names(module, [p for p, _ in found], output=True)
            node.outputs = [(n, tuple(t.shape), lab) for n, (_, t), lab in zip(names, found, labels)]
            node.done = True

    def result(self, depth: int | None, error: BaseException | None = None) -> ShapeTrace:
        """The rows recorded so far (those reached, when ``error`` stopped the forward)."""
        unfinished = {id(n) for n in self.stack[1:]} if error is not None else set()
        rows = []
        for node in self.root.preorder():
            if node is self.root or (depth is not None and node.depth > depth):
                continue
            rows.append(TraceRow(
                name=node.name, type=type(node.module).__name__, depth=node.depth,
                inputs=[s for _, s, _ in node.inputs], outputs=[s for _, s, _ in node.outputs],
                input_names=[n for n, _, _ in node.inputs], output_names=[n for n, _, _ in node.outputs],
                input_axes=[lab.names(labels, len(s)) for _, s, labels in node.inputs],
                output_axes=[lab.names(labels, len(s)) for _, s, labels in node.outputs],
                calls=node.calls, raised=id(node) in unfinished,
            ))
        warnings = [TraceWarning(kind, module, message) for kind, module, message in self.found]
        return ShapeTrace(rows, warnings, dict(self.sizes), error)


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
    if depth is not None:
        check_number(depth, "depth", integer=True, low=0, owner="trace_shapes")
    tracer = _Tracer(model)
    tracer.label_inputs(model, inputs, axes)
    handles = []
    try:
        with eval_mode(model):              # every module's own mode comes back afterwards
            for m in model.modules():
                handles.append(m.register_forward_pre_hook(tracer.pre_hook, with_kwargs=True))
                handles.append(m.register_forward_hook(tracer.post_hook, with_kwargs=True))
            model.train(bool(train))
            with torch.no_grad(), tracer:
                model(*inputs, **kwargs)
    except Exception as error:
        try:
            error.trace = tracer.result(depth, error)
        except Exception:  # some exception types refuse new attributes; the error matters more
            pass
        raise
    finally:
        for h in handles:
            h.remove()
    return tracer.result(depth)



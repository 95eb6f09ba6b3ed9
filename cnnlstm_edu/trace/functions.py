"""The function-mode labeller: axis labels that follow the data through every tensor operation.

A ``torch.overrides.TorchFunctionMode`` sees each torch call made while the model runs, between
and inside its modules. For each result it looks up the operation in :data:`RULES` (a reshape, an
index, a permute, a reduction, a convolution...) and labels the result's axes from its input's;
an operation with no rule keeps the labels of an input of the same shape (elementwise work: ReLU,
dropout, +). Labels are a courtesy: a rule that fails leaves the result unlabelled and never
breaks the user's forward.
"""

from __future__ import annotations

import math
import re
import weakref
from typing import Callable, NamedTuple

import torch
from torch.overrides import TorchFunctionMode

from ..axes import BATCH_ATOMS, axis_name, format_shape
from . import labels as lab
from .recurrent import PACKED

__all__ = ["Call", "Labeller", "RULES"]


class Call(NamedTuple):
    """One torch call whose first argument is a labelled tensor."""

    name: str                  # the function's name: "reshape", "__getitem__", "conv2d"...
    args: tuple
    kwargs: dict
    labels: tuple              # the labels of args[0]
    in_shape: tuple
    out: torch.Tensor


class Labeller(TorchFunctionMode):
    """Keeps a label per tensor (by identity, weakly) and follows them through torch calls."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: dict[int, tuple] = {}         # id(tensor) -> (weakref, labels)
        self.sizes: dict[str, int] = {}            # B and T, from the model's input
        self.found: list[tuple[str, str, str]] = []   # (kind, module, message) of each warning

    @property
    def where(self) -> str:
        """The qualified name of the module running now ("" for the model itself)."""
        return ""

    # labels, keyed by tensor identity; a weak reference makes a recycled id harmless
    def get(self, t: torch.Tensor):
        entry = self.labels.get(id(t))
        if entry is None or entry[0]() is not t or len(entry[1]) != t.dim():
            return None
        return entry[1]

    def set(self, t: torch.Tensor, labels) -> None:
        if labels is not None and len(labels) == t.dim() and any(a is not None for a in labels):
            self.labels[id(t)] = (weakref.ref(t), tuple(labels))

    def warn(self, kind: str, module: str, message: str) -> None:
        if (kind, module, message) not in self.found:
            self.found.append((kind, module, message))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        try:
            name = getattr(func, "__name__", "")
            if isinstance(out, torch.Tensor):
                self.set(out, self.follow(name, args, kwargs, out))
            elif name in ("_pack_padded_sequence", "_pad_packed_sequence"):
                for t, labels in zip(out, self._packing(name, args, kwargs)):
                    self.set(t, labels)
        except Exception:  # labels are a courtesy: never let them break the user's forward
            pass
        return out

    def follow(self, name: str, args, kwargs, out: torch.Tensor):
        """The labels of ``out``, the result of the torch function ``name`` called with ``args``."""
        if name in ("stack", "cat", "concat", "concatenate"):
            return self._join(name, args, kwargs, out)
        src = args[0] if args and isinstance(args[0], torch.Tensor) else None
        labels = self.get(src) if src is not None else None
        rule = rule_for(name)
        if labels is None or rule is None:
            return self.same_shape(args, out)
        return rule(self, Call(name, args, kwargs, labels, tuple(src.shape), out))

    def same_shape(self, args, out):
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


# --- reshapes: where B and T fold together, come apart, or get swapped by mistake ------------


def _reshape(labeller: Labeller, call: Call):
    labels, in_shape, out_shape = call.labels, call.in_shape, tuple(call.out.shape)

    def is_batch(axis):
        return labels[axis] is not None and set(labels[axis]) <= set(BATCH_ATOMS)

    # (B=3, T=1, C=1, ...) -> (3, 1, ...): the T=1 folds with B, and C=1 stays C.
    groups = lab.reshape_groups(in_shape, out_shape, lambda axis: is_batch(axis) and is_batch(axis - 1))
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
        if ins and outs:
            _regroup(labeller, call, ins, outs, result)
    return tuple(result)

def _regroup(labeller: Labeller, call: Call, ins, outs, result) -> None:
    """Label the axes ``outs`` that a reshape made from the input axes ``ins``."""
    out_shape = tuple(call.out.shape)
    units = _units(labeller.sizes, [(call.labels[i], call.in_shape[i]) for i in ins])
    sizes = [out_shape[j] for j in outs]
    split = lab.split(units, sizes)
    if split is not None:
        for j, axis in zip(outs, split):
            result[j] = axis
        return
    atoms = [a for a, n in units if n > 1]
    if len(atoms) == len(units) == 2 and sorted(atoms) == [("B",), ("T",)] \
            and lab.split(units[::-1], sizes) is not None:
        _warn_swap(labeller, call, ins, tuple(a[0] for a in atoms))
    elif len(units) == 1 and units[0][0] == ("F",) and len([n for n in sizes if n != 1]) == 3:
        grid = iter((("C",), ("H",), ("W",)))          # a feature vector unflattened into a map
        for j in outs:
            result[j] = next(grid) if out_shape[j] != 1 else None

def _units(sizes: dict, axes):
    """Break the axes of a reshape group into the smallest pieces whose sizes are known.

    A folded axis ``B*T=8`` becomes ``B=2`` and ``T=4`` (when both sizes are known), so that it
    can be cut again; any other axis stays one piece with its own size.
    """
    units = []
    for label, size in axes:
        known = [sizes.get(a) for a in label] if label is not None and len(label) > 1 else [None]
        if all(known) and math.prod(known) == size:
            units += [((a,), s) for a, s in zip(label, known)]
        else:
            units.append((label, size))
    return units

def _warn_swap(labeller: Labeller, call: Call, ins, merged) -> None:
    B, T = labeller.sizes["B"], labeller.sizes["T"]
    src = format_shape(call.in_shape, [axis_name(a) for a in call.labels])
    if merged == ("T", "B"):
        fix = ("unfold in the order the data lies, then swap the axes: "
               f"x.view(T, B, ...).transpose(0, 1)" if len(ins) == 1 else
               f"move the data instead: x.transpose({ins[0]}, {ins[1]})")
        got = "(B, T, ...)"
    else:
        fix = ("unfold as (B, T, ...) first, then swap the axes with transpose(0, 1)" if len(ins) == 1 else
               f"move the data instead: x.transpose({ins[0]}, {ins[1]})")
        got = "(T, B, ...)"
    labeller.warn("view_swap", labeller.where,
              f"{call.name} turned {src} into {tuple(call.out.shape)}, shaped like {got} with B={B}, T={T}. "
              f"A view or reshape only regroups the numbers in memory order, so it does not swap B "
              f"and T: each 'clip' of the result mixes steps of different clips. To swap them, {fix}.")


# --- the rules: one per kind of operation --------------------------------------------------------


def _permute(labeller: Labeller, call: Call):
    args = call.args
    dims = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
    return tuple(call.labels[d] for d in (tuple(dims) or tuple(call.kwargs["dims"])))


def _movedim(labeller: Labeller, call: Call):
    args, labels = call.args, call.labels
    if not (len(args) == 3 and all(isinstance(d, int) for d in args[1:])):
        return labeller.same_shape(args, call.out)
    result = list(labels)
    result.insert(args[2] % len(labels), result.pop(args[1] % len(labels)))
    return tuple(result)


def _transpose(labeller: Labeller, call: Call):
    args = call.args
    d0, d1 = (args[1], args[2]) if len(args) > 2 else (call.kwargs["dim0"], call.kwargs["dim1"])
    result = list(call.labels)
    result[d0], result[d1] = result[d1], result[d0]
    return tuple(result)


def _linear(labeller: Labeller, call: Call):
    return call.labels[:-1] + (("F",),) if call.out.dim() == len(call.in_shape) else None


def _resample(labeller: Labeller, call: Call):
    out_shape = tuple(call.out.shape)
    if len(out_shape) < 3:
        return labeller.same_shape(call.args, call.out)
    return lab.feature_map(call.labels, call.in_shape, out_shape, len(out_shape) - 2)


_FEATURE_MAP = re.compile(r"(conv(_transpose)?|max_pool|avg_pool|adaptive_(avg|max)_pool|lp_pool)([123])d")

Rule = Callable[[Labeller, Call], "tuple | None"]

RULES: dict[str, Rule] = {
    **dict.fromkeys(("squeeze", "unsqueeze"), lambda _, c: lab.align_ones(c.labels, c.in_shape, tuple(c.out.shape))),
    **dict.fromkeys(("view", "reshape", "flatten", "unflatten", "view_as", "reshape_as"), _reshape),
    "permute": _permute,
    **dict.fromkeys(("movedim", "moveaxis"), _movedim),
    **dict.fromkeys(lab.REDUCTIONS, lambda _, c: lab.reduce(c.labels, c.args, c.kwargs, c.out.dim())),
    **dict.fromkeys(("transpose", "swapaxes", "swapdims"), _transpose),
    "__getitem__": lambda _, c: lab.index(c.labels, c.in_shape, c.args[1], tuple(c.out.shape)),
    "linear": _linear,
    **dict.fromkeys(("interpolate", "upsample", "pad"), _resample),
}
"""How each torch function moves the axes, by the function's name (convolutions and pooling,
``conv2d``, ``max_pool2d``..., are found by :func:`rule_for`)."""


def rule_for(name: str) -> Rule | None:
    """The rule for the torch function ``name``, or None (then the labels of a same-shaped input).

    >>> rule_for("reshape") is _reshape, rule_for("relu")
    (True, None)
    """
    rule = RULES.get(name)
    match = _FEATURE_MAP.match(name) if rule is None else None
    if match:
        spatial = int(match.group(4))
        return lambda _, c: lab.feature_map(c.labels, c.in_shape, tuple(c.out.shape), spatial)
    return rule

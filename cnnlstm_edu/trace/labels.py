"""Axis labels through tensor operations: pure functions from the labels and shapes of an input
to the labels of the result.

A label is a tuple of "atoms" (see :mod:`cnnlstm_edu.axes`): ``("B",)`` is the batch,
``("B", "T")`` the folded ``B*T`` axis, None an axis whose meaning is unknown. A tensor's labels
are one such entry per axis. Each function here answers one question: after this ``reshape``,
index, ``squeeze``, reduction or convolution, which axis is which? None means "not known", never
a guess.
"""

from __future__ import annotations

import math

import torch

from ..axes import BATCH_ATOMS, axis_name

__all__ = ["REDUCTIONS", "align_ones", "feature_map", "index", "merge", "names", "reduce", "reshape_groups",
           "split"]

REDUCTIONS = ("sum", "mean", "amax", "amin", "std", "var", "prod", "logsumexp", "nansum", "nanmean")


def names(labels, rank: int) -> tuple[str | None, ...]:
    """The printed names of a tensor's labels (all None when it has none).

    >>> names((("B", "T"), None), 2), names(None, 2)
    (('B*T', None), (None, None))
    """
    return tuple(axis_name(a) for a in labels) if labels else (None,) * rank


def merge(axes):
    """The label of one axis made by merging ``axes`` (all known), e.g. B, T -> B*T; C, H, W -> F.

    >>> merge([("B",), ("T",)]), merge([("C",), ("H",), ("W",)]), merge([("B",), None])
    (('B', 'T'), ('F',), None)
    """
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


def reshape_groups(src, dst, joins_previous=lambda axis: False):
    """Pair the axes of ``src`` and ``dst`` that a reshape maps onto each other.

    Returns ``[(src_axes, dst_axes), ...]``, or None when the sizes cannot be paired (empty tensors).
    Size-1 axes make the pairing ambiguous; ``joins_previous(axis)`` says whether a size-1 source
    axis belongs to the group before it (T=1 folding into B*T) rather than to the next one.

    >>> reshape_groups((2, 4, 288), (8, 288))
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


def split(units, sizes):
    """Deal ``units`` ((label, size) pieces, in memory order) out to axes of ``sizes``, or None.

    >>> split([(("B",), 2), (("T",), 4), (("F",), 72)], [2, 288])     # (B*T, F) viewed as (B, -1)
    [('B',), ('T', 'F')]
    >>> split([(("T",), 4), (("B",), 2)], [2, 4]) is None              # T*B cannot become (B, T)
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
        out.append(group[0] if len(group) == 1 else merge(group))
    return out if k == len(units) else None


def index(labels, shape, key, out_shape):
    """Labels after basic indexing: an int drops its axis (``x[:, -1]`` drops T), a slice keeps it.

    >>> index((("B",), ("T",), ("H",)), (2, 4, 16), (slice(None), -1), (2, 16))
    (('B',), ('H',))
    """
    key = key if isinstance(key, tuple) else (key,)
    if any(isinstance(i, (torch.Tensor, list, bool)) for i in key):
        return None  # advanced indexing: the result's axes are not simply the input's
    used = sum(1 for i in key if i is not None and i is not Ellipsis)
    expanded = []
    for i in key:
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


def align_ones(labels, in_shape, out_shape):
    """Labels after ``squeeze``/``unsqueeze``: every axis keeps its name, size-1 axes come and go.

    >>> align_ones((("B",), ("F",)), (2, 72), (2, 1, 72))
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


def reduce(labels, args, kwargs, out_rank):
    """Labels after a reduction over some axes: ``x.mean(1)`` on (B, T, F) averages T away.

    >>> reduce((("B",), ("T",), ("F",)), (None, 1), {}, 2)
    (('B',), ('F',))
    """
    dims = args[1] if len(args) > 1 and not isinstance(args[1], bool) else kwargs.get("dim")
    if dims is None:
        return None
    dims = {d % len(labels) for d in ((dims,) if isinstance(dims, int) else dims)}
    keep = len(args) > 2 and args[2] is True or kwargs.get("keepdim", False)
    result = tuple(None if k in dims else a for k, a in enumerate(labels)) if keep else \
        tuple(a for k, a in enumerate(labels) if k not in dims)
    return result if len(result) == out_rank else None


def feature_map(labels, in_shape, out_shape, spatial: int):
    """Labels after a convolution or pooling over ``spatial`` axes: batch kept, then C and the grid.

    >>> feature_map((("B", "T"), ("C",), ("H",), ("W",)), (8, 1, 14, 14), (8, 4, 7, 7), 2)
    (('B', 'T'), ('C',), ('H',), ('W',))
    """
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

"""Recurrent layers in the trace: which member of their results is ``output``, ``h_n`` or ``c_n``,
the labels those members get by the layer's contract, and the layouts PyTorch accepts without a
word but almost surely by mistake (an unbatched 2-D input, a time-major tensor in a batch-first
layer).

The contracts themselves (sequence or cell, vectors or maps, an LSTM's ``c``) live in
:mod:`cnnlstm_edu.axes`; this module applies them to the tensors a module hook sees.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from ..axes import axis_name, format_shape, recurrent_contract

__all__ = ["PACKED", "input_labels", "io_names", "output_labels", "recurrent_input_warning", "tensors"]

PACKED = ("sum(T)",)        # the rows of a PackedSequence's data: every step of every sequence


def tensors(obj, path: str):
    """Every tensor inside ``obj`` (tuples, lists, dicts, named tuples), in order, with its path.

    A ``PackedSequence`` is one sequence: its ``data`` and ``batch_sizes``; the sort permutations
    are bookkeeping, not shapes a learner needs.

    >>> [p for p, _ in tensors((torch.zeros(2), (torch.zeros(1), torch.zeros(1))), "")]
    ['[0]', '[1][0]', '[1][1]']
    """
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, PackedSequence):
        yield f"{path}.data", obj.data
        yield f"{path}.batch_sizes", obj.batch_sizes
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):
        for name, item in zip(obj._fields, obj):
            yield from tensors(item, f"{path}.{name}")
    elif isinstance(obj, (tuple, list)):
        for i, item in enumerate(obj):
            yield from tensors(item, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from tensors(item, f"{path}[{key!r}]")


def io_names(module, paths: list[str], output: bool) -> list[str]:
    """``["output", "h_n", "c_n"]`` for an LSTM's results; the tensor paths elsewhere.

    >>> io_names(nn.LSTM(3, 5), ["[0].data", "[0].batch_sizes", "[1][0]", "[1][1]"], output=True)
    ['output.data', 'output.batch_sizes', 'h_n', 'c_n']
    """
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


def output_labels(module, x_labels, x_shape, n_outputs, packed=False):
    """Labels for a recurrent layer's results, by its contract, from how it reads its input.

    An axis keeps the label it had in the input (the truth about where the data came from);
    where the input's label is unknown, the layer's own reading (B, T) is used. A packed input
    gives a packed output, ``data`` (sum(T), H) and ``batch_sizes`` (T,), and batched states.

    >>> output_labels(nn.GRU(3, 5, batch_first=True), None, (2, 4, 3), 2)
    [(('B',), ('T',), ('H',)), (('L',), ('B',), ('H',))]
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


def input_labels(module, found, labels, packed: bool):
    """The labels of a recurrent layer's inputs: the states h_0 and c_0, usually made inside
    forward or by the caller, labelled by the contract where nothing labelled them before."""
    if packed:
        # The data's rows are the steps of every sequence; its features are the layer's input.
        state = output_labels(module, None, (), len(found) + 1, packed=True)
        data = labels[0] or (PACKED,) + (("F",),) * (found[0][1].dim() - 1)
        return [data, labels[1] or state[1]] + [lab or s for lab, s in zip(labels[2:], state[2:])]
    state = output_labels(module, labels[0], tuple(found[0][1].shape), len(found))
    return [labels[0]] + [lab or s for lab, s in zip(labels[1:], state[1:])]


def recurrent_input_warning(module, x: torch.Tensor, labels, sizes: dict) -> tuple[str, str] | None:
    """``(kind, message)`` when a sequence layer's input is laid out as it almost surely was not
    meant: 2-D (one unbatched sequence), or time-major against ``batch_first`` (or the reverse)."""
    kind = type(module).__name__
    shown = format_shape(x.shape, [axis_name(a) for a in labels] if labels else None)
    if isinstance(module, nn.RNNBase) and x.dim() == 2:
        what = ("the batch axis B" if labels and labels[0] == ("B",) else "its first axis")
        return ("unbatched",
                f"{kind} got a 2-D input {shown}. PyTorch reads a 2-D tensor as ONE unbatched "
                f"sequence (T, F), so {what} ({x.shape[0]}) is being read as {x.shape[0]} time "
                "steps of a single sequence. Give it (B, T, F): keep the time axis when you "
                "reshape (x.view(B, T, -1), unfold_time), or x.unsqueeze(1) for one step per sample.")
    if x.dim() != recurrent_contract(module).batched_rank:
        return None
    first, second = (labels[0], labels[1]) if labels else (None, None)
    B, T = sizes.get("B"), sizes.get("T")
    # Sizes decide only when the labels are silent and B and T cannot be confused.
    by_size = first is None and second is None and B and T and B != T
    time_major = (first, second) == (("T",), ("B",)) or (by_size and x.shape[:2] == (T, B))
    batch_major = (first, second) == (("B",), ("T",)) or (by_size and x.shape[:2] == (B, T))
    perm = "(1, 0, 2)" if x.dim() == 3 else "(1, 0, 2, 3, 4)"
    n0, n1 = x.shape[0], x.shape[1]
    if module.batch_first and time_major:
        how = "is time-major" if not by_size else f"looks time-major: its sizes are (T={n0}, B={n1}, ...)"
        return ("time_major",
                f"{kind} has batch_first=True, so it reads (B, T, ...), but its input {shown} {how}. "
                f"It will treat the {n0} steps as clips and the {n1} clips as steps. Move the data "
                f"with x.permute{perm} (a view or reshape would only relabel it), or build the layer "
                "with batch_first=False.")
    if not module.batch_first and batch_major:
        how = "is batch-major" if not by_size else f"looks batch-major: its sizes are (B={n0}, T={n1}, ...)"
        return ("batch_major",
                f"{kind} has batch_first=False (nn.LSTM's default), so it reads (T, B, ...), but its "
                f"input {shown} {how}. It will treat the {n0} clips as time steps and the {n1} steps "
                f"as the batch. Build it with batch_first=True, or pass x.permute{perm}.")
    return None

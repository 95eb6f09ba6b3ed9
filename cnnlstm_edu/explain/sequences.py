"""Diagnoses of the mistakes made where features meet a sequence: a ``Linear`` or an LSTM whose
``in_features``/``input_size`` does not match, steps flattened into one vector, feature maps fed
to an LSTM, an initial state of the wrong batch, an LSTM output used without picking a step (the
loss meets a time axis), tensors whose B and T disagree, an index into an axis that is gone.

Each diagnosis takes torch's message and the :class:`~.context.Context` and returns advice with
the numbers and the fix, or None when the error is not its mistake.
"""

from __future__ import annotations

import re

from torch import nn

from ..axes import format_shape, guess_axes
from .context import Context, find_prefix, guess_map, ints, map_source, show, where_prefix

__all__ = ["broadcast", "index_rank", "loss_time_axis", "matmul_features", "rnn_input", "rnn_rank", "rnn_state"]


def matmul_features(msg: str, ctx: Context) -> str | None:
    m = re.search(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)", msg)
    if not m:
        return None
    R, G, I, O = map(int, m.groups())
    layer = f"Linear(in_features={I}, out_features={O})"
    text = (f"{find_prefix(ctx, nn.Linear, in_features=I, out_features=O)}{layer} reads rows of {I} features, "
            f"but its input has {G} features per row "
            f"({R} rows).")
    x = ctx.inputs[0] if ctx.inputs else None
    axes = ctx.axes_of(x) if x is not None else None
    last = axes[-1] if axes else None
    k = G // I if G % I == 0 else None
    if k and k > 1 and (last in ("T*H", "T*F") or (last is None and ctx.T == k)):
        shown = format_shape(x, axes) if x is not None else f"({R}, {G})"
        return (text + f" {G} = {k} x {I}: T={k} steps of H={I} each, so the time axis of an LSTM "
                f"output (B, T, H) was flattened into the features {shown}, and the head that wants "
                f"one vector per clip (B, H) got all {k} steps.\nFix: pick a step before the head, "
                f"output[:, -1] -> (B, H) = ({R}, {I}) (or h_n[-1]); if you do want every step, "
                f"build the Linear with in_features={G}.")
    source = map_source(G, ctx)
    where = (f" That is {source}." if source else
             f" If it comes from flattening a feature map, {G} = C x H x W"
             + (f" ({guess_map(G)})" if guess_map(G) else "") + ".")
    fix = f"\nFix: build the layer with in_features={G} (or size it from the CNN, e.g. FrameCNN.out_shape)."
    if k and k > 1 and ctx.T is None:
        fix += (f" If this Linear reads an LSTM output, note {G} = {k} x {I}: a time axis of {k} "
                "flattened into the features; pick a step with output[:, -1] instead.")
    return text + where + fix


def rnn_input(msg: str, ctx: Context) -> str | None:
    """An LSTM/GRU/RNN built for one input_size that got another (or steps flattened into one)."""
    layer = ctx.kind or "the LSTM"
    if (m := re.search(r"input\.size\(-1\) must be equal to input_size\. Expected (\d+), got (\d+)", msg)):
        E, G = map(int, m.groups())
        x = ctx.inputs[0] if ctx.inputs else None
        # Without labels, call the axes (B, T, F) only if the layer itself reads them that way.
        reads = ("B", "T", "F") if getattr(ctx.module, "batch_first", False) and x is not None and len(x) == 3 else None
        shown = f" {show(x, ctx, reads)}" if x is not None else ""
        head = find_prefix(ctx, nn.RNNBase, input_size=E)
        k = G // E if G > E and G % E == 0 else None
        if k and x is not None and len(x) == 2:
            # Seed 004's "expected ndim=3, found ndim=2": the steps were flattened into one vector.
            return (f"{head}{layer} reads a sequence (B, T, F) with F = input_size = {E}, but got the 2-D "
                    f"tensor {show(x, ctx)}: {G} = {k} x {E}, so {k} steps of {E} features were flattened "
                    f"into one vector per sample and the time axis is gone (Keras says 'expected ndim=3, "
                    f"found ndim=2').\nFix: keep the time axis, x.reshape({x[0]}, {k}, {E}) -> (B, T, F) "
                    f"(flatten_spatial(maps) instead of maps.flatten(1)). Do not build the layer with "
                    f"input_size={G}: PyTorch reads a 2-D input as ONE unbatched sequence and would run "
                    f"without an error.")
        source = map_source(G, ctx)
        where = (f" That is {source}." if source else
                 f" If it is a flattened map, {G} = C x H x W ({guess_map(G)})." if guess_map(G) else "")
        fix = f"\nFix: build it with input_size={G}."
        if k and x is None:
            fix += (f" But if the input is 2-D, (B, {G}) with {G} = {k} x {E}, the time axis was flattened "
                    f"away: reshape to (B, {k}, {E}) instead, since a layer built for {G} would read a 2-D "
                    "input as one unbatched sequence without complaint.")
        return (f"{head}{layer} was built with input_size={E}, but each step of its input"
                f"{shown} has F={G} features: the last axis of (B, T, F) must equal input_size.{where}" + fix)
    return None


def rnn_rank(msg: str, ctx: Context) -> str | None:
    """A recurrent layer or cell given a tensor of the wrong rank: maps, folded frames, a sequence to a cell."""
    if (m := re.search(r"(\w+): Expected input to be (\d)D or (\d)D, got (\d)D instead", msg)):
        kind, rank = m.group(1), int(m.group(4))
        if kind.endswith("Cell"):
            return (f"{where_prefix(ctx)}{kind} takes one time step, (B, F), but got a {rank}-D tensor. Loop over "
                    f"the steps with x[:, t], or use the sequence layer ({kind[:-4]}) for the whole (B, T, F).")
        x = ctx.inputs[0] if ctx.inputs else None
        shown = f" {show(x, ctx, guess_axes(len(x), frames='N'))}" if x is not None else ""
        shown = f"the {rank}-D tensor{shown}" if shown else f"a {rank}-D tensor"
        if rank == 5:
            return (f"{where_prefix(ctx)}{kind} reads a sequence of vectors (B, T, F), but got {shown}: "
                    "one feature map (C, H, W) per frame. The seed-004 mistake in reverse ('expected ndim=3').\n"
                    "Fix: flatten each frame, flatten_spatial(x) -> (B, T, C*H*W), with input_size = C*H*W; "
                    "or keep the maps and use ConvLSTM.")
        if rank == 4:
            return (f"{where_prefix(ctx)}{kind} reads (B, T, F), but got {shown}: frames still folded "
                    "(B*T, C, H, W), or maps without their time axis.\nFix: unfold_time(x, steps=T) to get "
                    "(B, T, ...) back, then flatten_spatial(x) -> (B, T, C*H*W).")
        return (f"{where_prefix(ctx)}{kind} reads (B, T, F) (or one unbatched sequence (T, F)), but got "
                f"{shown}. Give it a batch and a time axis.")
    return None


def rnn_state(msg: str, ctx: Context) -> str | None:
    """An initial state (h_0, c_0) of the wrong shape: another batch, (B, L, H), no layer axis."""
    if (m := re.search(r"Expected hidden(?:\[0\])? size \((\d+), (\d+), (\d+)\), got \[(\d+), (\d+), (\d+)\]", msg)):
        want, got = tuple(map(int, m.groups()[:3])), tuple(map(int, m.groups()[3:]))
        L, B, H = want
        why = (f" It looks like (B, L, H): the state is (num_layers, B, H) even with batch_first=True."
               if got == (B, L, H) else
               f" Its batch axis is {got[1]}, not B={B}: a state kept from a batch of another size "
               "(often the last, smaller batch of an epoch).")
        return (f"{where_prefix(ctx)}the initial state h_0 must be (L, B, H) = {format_shape(want, ('L', 'B', 'H'))} "
                f"for this input, but it is {format_shape(got)}.{why}\nFix: pass state=None to start from "
                "zeros (Stateful.reset_state() at a new video), or build h_0 as torch.zeros(L, B, H).")
    if (m := re.search(r"For batched 3-D input, hx and cx should also be 3-D but got \((\d)-D, (\d)-D\)", msg)):
        return (f"{where_prefix(ctx)}the state (h_0, c_0) must be 3-D, (L, B, H), for a batched input; it is "
                f"{m.group(1)}-D. Add the layer axis: (h.unsqueeze(0), c.unsqueeze(0)).")
    return None


def loss_time_axis(msg: str, ctx: Context) -> str | None:
    T = ctx.T
    t_text = f"T={T}" if T else "T"
    pick = ("\nFix: pick a step before the classifier, out[:, -1] -> (B, H) (or h_n[-1]), so the logits "
            "are (B, classes); for a label at every step instead, use "
            "loss(logits.flatten(0, 1), target.flatten()) with a target (B, T).")
    if (m := re.search(r"Expected target size \[(\d+), (\d+)\], got \[([\d, ]*)\]", msg)):
        N, K = int(m.group(1)), int(m.group(2))
        got = ints(m.group(3))
        logits = f"({N}, {T if T else '?'}, {K})"
        if len(got) == 1:
            return (f"{where_prefix(ctx)}the loss got 3-D logits {logits} and one label per clip ({got[0]},). "
                    f"cross_entropy reads a 3-D input as (N, classes, positions), so it wanted a target "
                    f"({N}, {K}). The logits still have the time axis: an LSTM output (B, {t_text}, H) went "
                    f"into the classifier without picking a step, giving (B, {t_text}, classes)." + pick)
        return (f"{where_prefix(ctx)}the loss got 3-D logits {logits} and a target {format_shape(got)}. "
                "cross_entropy wants the classes on axis 1, (B, classes, T), not last.\nFix: "
                "loss(logits.transpose(1, 2), target), or loss(logits.flatten(0, 1), target.flatten()).")
    if (m := re.search(r"Expected input batch_size \((\d+)\) to match target batch_size \((\d+)\)", msg)):
        n_in, n_target = map(int, m.groups())
        if n_in % n_target == 0 and n_in > n_target:
            k = n_in // n_target
            t = "the time axis T" if T in (None, k) else f"an axis of {k} (T is {T})"
            return (f"{where_prefix(ctx)}the logits have {n_in} = {n_target} x {k} rows but the target has "
                    f"{n_target}: one row per step (B*T), one label per clip (B={n_target}). So {t} went "
                    f"into the batch before the classifier." + pick)
        return (f"{where_prefix(ctx)}the logits have {n_in} rows, the target {n_target}: the loss needs one label "
                "per row. Check which axis of the logits is the batch.")
    if (m := re.search(r"Target size \(torch\.Size\(\[([\d, ]*)\]\)\) must be the same as input size \(torch\.Size\(\[([\d, ]*)\]\)\)", msg)):
        target, logits = ints(m.group(1)), ints(m.group(2))
        extra = (f" The logits {format_shape(logits)} have one more axis than the target: probably the time "
                 "axis of an LSTM output." + pick if len(logits) == len(target) + 1 else "")
        return (f"{where_prefix(ctx)}the loss needs the target shaped like the logits, {format_shape(logits)}, but it "
                f"is {format_shape(target)}.{extra}")
    return None


def broadcast(msg: str, ctx: Context) -> str | None:
    m = re.search(r"The size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at non-singleton dimension (\d+)", msg)
    if not m:
        return None
    a, b, dim = map(int, m.groups())
    text = (f"{where_prefix(ctx)}an elementwise operation (+, *, a loss) met two tensors whose axis {dim} differs: "
            f"{a} against {b}. Broadcasting needs equal sizes, or 1.")
    if ctx.B and ctx.T and ctx.B != ctx.T and {a, b} == {ctx.B, ctx.T}:
        text += (f" Here {ctx.T} is T and {ctx.B} is B: one tensor is (B, T, ...) and the other (T, B, ...) "
                 "or has no time axis (a prediction per step against a target per clip?).")
    return text


def index_rank(msg: str, ctx: Context) -> str | None:
    if (m := re.search(r"too many indices for tensor of dimension (\d+)", msg)):
        n = int(m.group(1))
        return (f"{where_prefix(ctx)}an index like x[:, -1] asked for more axes than the tensor's {n}. If it picks "
                "the last step of an LSTM output, that output has no time axis any more: h_n[-1] and "
                "out[:, -1] are already (B, H), and an LSTM fed a 2-D input returns a 2-D output.")
    if (m := re.search(r"Dimension out of range \(expected to be in range of \[(-?\d+), (-?\d+)\], but got (-?\d+)\)", msg)):
        lo, hi, got = map(int, m.groups())
        return (f"{where_prefix(ctx)}the code asks for axis {got} of a tensor with {hi + 1} axes (valid: {lo} to "
                f"{hi}). An axis is missing: often the time axis (picked away or never unfolded) or the "
                "channel axis of grey frames.")
    return None

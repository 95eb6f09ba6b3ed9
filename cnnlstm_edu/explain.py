"""explain: the classic CNN -> LSTM shape mistakes, said in plain words with the numbers and the fix.

PyTorch's messages are exact but speak in sizes: ``shape '[8, 1568]' is invalid for input of
size 50176``. A learner needs the axes: *50176 = 8 x 4 x 1568, the time axis T=4 was lost*.
These are the mistakes of seed 004 (Keras' "total size of new array must be unchanged",
"expected ndim=3, found ndim=2", "expected ndim=4, found ndim=5") and their PyTorch cousins:

- a video ``(B, T, C, H, W)`` fed to ``Conv2d``/``MaxPool2d``/``BatchNorm2d``, which take frames;
- a reshape that drops the time axis;
- a ``Linear`` or an LSTM whose ``in_features``/``input_size`` does not match the flattened map;
- an LSTM output ``(B, T, H)`` fed on without picking a step;
- channels-last frames, a state ``(h_0, c_0)`` of the wrong batch, a loss that meets a time axis.

:func:`explain` reads the error message (the wording of torch 2.x) and, when it has them, the
shapes recorded around the failing call: a partial :class:`~cnnlstm_edu.trace.ShapeTrace`
(``trace_shapes`` attaches one to the exception as ``error.trace``), or the module calls that
:func:`explain_shapes` watched. An error it does not recognise gets an honest "not recognised",
never a guess dressed up as a diagnosis.
"""

from __future__ import annotations

import math
import re
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.modules import module as module_hooks
from torch.nn.modules.loss import _Loss

from .shapes import ShapeError
from .axes import format_shape, guess_axes, model_input_axes
from .trace import ShapeTrace

__all__ = ["explain", "explain_shapes"]


# --- what is known around the error -----------------------------------------------------------


@dataclass
class _Context:
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


def _context_from_trace(trace: ShapeTrace, model) -> _Context:
    ctx = _Context(B=trace.sizes.get("B"), T=trace.sizes.get("T"), model=model)
    failed = trace.failed
    if failed is not None:
        ctx.where, ctx.kind = failed.name, failed.type
        ctx.inputs, ctx.input_axes = list(failed.inputs), list(failed.input_axes)
    ctx.calls = [(row.type, tuple(row.inputs[0])) for row in trace.rows if row.raised and row.inputs]
    for row in trace.rows:
        for shape, axes in zip(row.outputs, row.output_axes):
            ctx.recent.append((row.name, shape, axes))
    return ctx


class _Watcher:
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

    def context(self, model) -> _Context:
        model = model or self.root
        names = {id(m): n for n, m in model.named_modules()} if model is not None else {}
        ctx = _Context(model=model, calls=[(type(m).__name__, shapes[0]) for m, shapes in self.open if shapes])
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


def _ints(text: str) -> list[int]:
    return [int(v) for v in re.findall(r"-?\d+", text)]


def _times(*factors) -> str:
    return " x ".join(str(f) for f in factors)


def _show(shape, ctx: _Context, fallback=None) -> str:
    axes = ctx.axes_of(shape)
    if axes is None and fallback is not None:
        axes = fallback
    return format_shape(shape, axes)


def _map_source(size: int, ctx: _Context) -> str | None:
    """Where ``size`` features per row come from: the last C x H x W map made before the error."""
    for name, shape, axes in reversed(ctx.recent):
        if len(shape) >= 4 and math.prod(shape[-3:]) == size:
            C, H, W = shape[-3:]
            lead = format_shape(shape, axes)
            return (f"{size} = C x H x W = {_times(C, H, W)}: the feature map {lead} made by "
                    f"{name or 'the model'}, flattened per frame")
    return None


def _guess_map(size: int) -> str | None:
    """A plausible C x H x W for ``size``, said as an example: the smallest square grid (from 3x3)
    with a power-of-two channel count, as the last block of a small CNN usually makes."""
    for hw in range(3, int(math.isqrt(size)) + 1):
        c = size // (hw * hw)
        if c * hw * hw == size and c >= 4 and (c & (c - 1)) == 0:
            return f"for example {_times(c, hw, hw)}"
    return None


def _where(ctx: _Context) -> str:
    if ctx.where is None:
        return ""
    return f"In {ctx.where or 'the model'} ({ctx.kind}): "


def _find(ctx: _Context, kind, **attributes) -> str:
    """``"In classifier (Linear): "`` when ``model=`` has exactly one such module and no trace said where."""
    if ctx.where is not None or ctx.model is None:
        return _where(ctx)
    found = [(name, m) for name, m in ctx.model.named_modules()
             if isinstance(m, kind) and all(getattr(m, k, None) == v for k, v in attributes.items())]
    if len(found) != 1:
        return ""
    name, module = found[0]
    return f"In {name or 'the model'} ({type(module).__name__}): "


# --- the diagnoses: each returns advice, or None when the error is not its mistake -------------

_OPS = {"conv": "Conv", "conv_transpose": "ConvTranspose", "max_pool": "MaxPool", "avg_pool": "AvgPool",
        "adaptive_avg_pool": "AdaptiveAvgPool", "adaptive_max_pool": "AdaptiveMaxPool"}


def _frame_layer_rank(msg: str, ctx: _Context):
    """``(layer, batched rank, input shape or None, input rank)`` when a frame layer got the wrong rank."""
    inp = tuple(ctx.inputs[0]) if ctx.inputs else None
    if (m := re.search(r"Expected (\d)D \(unbatched\) or (\d)D \(batched\) input to (\w+?)(\d)d, "
                       r"but got input of size: \[([\d, ]*)\]", msg)):
        shape = tuple(_ints(m[5]))
        return f"{_OPS.get(m[3], m[3])}{m[4]}d", int(m[2]), shape, len(shape)
    if (m := re.search(r"(?:(\w+?)(\d)d: )?Expected (\d)D or (\d)D \(batch mode\) tensor with optional 0 dim "
                       r"batch size for input, but got:\s*\[([\d, ]*)\]", msg)):
        shape = tuple(_ints(m[5]))
        layer = f"{_OPS.get(m[1], m[1])}{m[2]}d" if m[1] else "AvgPool2d"
        return layer, int(m[4]), shape, len(shape)
    if (m := re.search(r"(adaptive_\w+?)(\d)d\(\): Expected (\d)D or (\d)D tensor, but got \[([\d, ]*)\]", msg)):
        shape = tuple(_ints(m[5]))
        return f"{_OPS.get(m[1], m[1])}{m[2]}d", int(m[4]), shape, len(shape)
    if "non-empty 3D or 4D (batch mode) tensor expected for input" in msg:
        return "MaxPool2d", 4, inp, len(inp) if inp else None
    if (m := re.search(r"expected (?:\dD or )?(\d)D input \(got (\d)D input\)", msg)):
        return "BatchNorm", int(m[1]), inp, int(m[2])
    return None


def _video_into_frame_layer(msg: str, ctx: _Context) -> str | None:
    found = _frame_layer_rank(msg, ctx)
    if found is None:
        return None
    layer, batched, shape, rank = found
    layer = ctx.kind or layer
    if rank == batched + 1 and rank >= 4:
        if shape is None:
            return (f"{_where(ctx)}{layer} takes a batch of frames, {batched}-D like (N, C, H, W), but got a "
                    f"{rank}-D tensor: most likely a video (B, T, C, H, W). A CNN never sees a video, only "
                    "frames.\nFix: fold time into the batch, fold_time(x) -> (B*T, C, H, W), and unfold "
                    "the CNN's output with unfold_time(y, steps=T); TimeDistributed(cnn) does both.")
        B, T = shape[:2]
        video_axes = ("B", "T", "C", "H", "W") if rank == 5 else ("B", "T") + (None,) * (rank - 2)
        frame_axes = ("B*T", "C", "H", "W") if rank == 5 else ("B*T",) + (None,) * (rank - 2)
        return (f"{_where(ctx)}{layer} takes a batch of frames, {batched}-D like (N, C, H, W), but it got "
                f"the {rank}-D tensor {format_shape(shape, video_axes)}: a batch of B={B} clips of T={T} "
                f"frames. A CNN never sees a video, only frames (Keras says 'expected ndim={batched}, "
                f"found ndim={rank}').\n"
                f"Fix: fold time into the batch, frames = fold_time(x) -> "
                f"{format_shape((B * T,) + shape[2:], frame_axes)}, run the CNN, and unfold its output "
                f"with unfold_time(y, steps={T}) -> (B={B}, T={T}, ...). TimeDistributed(cnn) does both.")
    if shape is None and rank is None:
        return (f"{_where(ctx)}{layer} takes 3-D (C, H, W) or 4-D (N, C, H, W) input and got neither. If it "
                "is a video (B, T, C, H, W), fold time into the batch first: fold_time(x), or wrap the "
                "CNN in TimeDistributed(cnn). (Run the model under explain_shapes() or trace_shapes() to "
                "see the shape.)")
    shown = format_shape(shape) if shape is not None else f"{rank}-D"
    return (f"{_where(ctx)}{layer} takes {batched - 1}-D (unbatched) or {batched}-D (batched) input, but got "
            f"a tensor {shown}. For frames it wants (N, C, H, W): check which axis is missing or extra.")


def _reshape_size(msg: str, ctx: _Context) -> str | None:
    m = re.search(r"shape '\[([-\d, ]*)\]' is invalid for input of size (\d+)", msg)
    if not m:
        return None
    target, N = _ints(m.group(1)), int(m.group(2))
    asked = "[" + ", ".join(map(str, target)) + "]"
    head = f"{_where(ctx)}the reshape to {asked} does not fit a tensor of {N} numbers"
    known = [s for s in target if s != -1]
    P = math.prod(known) if known else 1
    T = ctx.T
    if -1 not in target and N % P == 0 and N > P and len(target) >= 2:
        k = N // P
        B, rest = target[0], target[1:]
        factors = _times(B, k, *rest)
        if T is None or k == T:
            who = (f"the time axis T={k}" if T == k else
                   f"an axis of {k}: in a CNN-LSTM almost always the time axis T={k}")
            return (f"{head}: {N} = {factors}, but the shape keeps only {_times(*target)} = {P}. "
                    f"A factor of {k} is missing, {who}, folded into the batch (B*T = {B * k} rows) "
                    f"or flattened away.\nFix: keep the time axis, reshape to (B, T, -1) = "
                    f"({B}, {k}, {math.prod(rest)}): x.reshape({B}, {k}, -1), which is flatten_spatial(x) for "
                    f"a (B, T, C, H, W) map; if the frames are still folded as (B*T, ...), unfold them "
                    f"first with unfold_time(x, steps={k}).")
        return (f"{head}: {N} = {factors}, but the shape keeps only {P}: a factor of {k} is missing "
                f"(not the time axis, which is T={T}).\nFix: let PyTorch compute one size, "
                f"x.reshape({target[0]}, -1), and check the shapes with trace_shapes.")
    if -1 not in target and P > N and P % N == 0:
        k = P // N
        return (f"{head}: the shape asks for {_times(*target)} = {P} numbers, {k} times more than there "
                f"are. If {k} is the time axis T, this tensor no longer has one: it was picked (x[:, -1]) "
                f"or reduced away before.\nFix: reshape what the tensor holds, e.g. "
                f"x.reshape({target[0]}, -1) -> ({target[0]}, {N // target[0] if target[0] and N % target[0] == 0 else '...'}).")
    if -1 in target and N % P:
        head += (f": the sizes it fixes, {_times(*known)} = {P}, do not divide {N}, so no size for -1 "
                 "makes it fit")
    # Find the longest leading part of the shape that divides the size: the rest is one axis.
    for cut in range(len(target) - 1, 0, -1):
        lead = target[:cut]
        if -1 in lead:
            continue
        lp = math.prod(lead)
        if lp and N % lp == 0:
            per = N // lp
            src = _map_source(per, ctx) or _guess_map(per)
            rest = "" if -1 in target else f", not {_times(*target[cut:])}"
            return (f"{head}: after {_times(*lead)}, each row holds {N} / {lp} = {per} numbers{rest}."
                    f"\nFix: let PyTorch compute it, "
                    f"x.reshape({', '.join(map(str, lead))}, -1) -> ({', '.join(map(str, lead))}, {per})"
                    + (f" ({src})." if src else "."))
    return f"{head}: {N} is not a multiple of {P}, so no size for -1 makes it fit. Check the sizes with trace_shapes."


def _matmul_features(msg: str, ctx: _Context) -> str | None:
    m = re.search(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)", msg)
    if not m:
        return None
    R, G, I, O = map(int, m.groups())
    layer = f"Linear(in_features={I}, out_features={O})"
    text = (f"{_find(ctx, nn.Linear, in_features=I, out_features=O)}{layer} reads rows of {I} features, "
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
    source = _map_source(G, ctx)
    where = (f" That is {source}." if source else
             f" If it comes from flattening a feature map, {G} = C x H x W"
             + (f" ({_guess_map(G)})" if _guess_map(G) else "") + ".")
    fix = f"\nFix: build the layer with in_features={G} (or size it from the CNN, e.g. FrameCNN.out_shape)."
    if k and k > 1 and ctx.T is None:
        fix += (f" If this Linear reads an LSTM output, note {G} = {k} x {I}: a time axis of {k} "
                "flattened into the features; pick a step with output[:, -1] instead.")
    return text + where + fix


def _rnn_input(msg: str, ctx: _Context) -> str | None:
    layer = ctx.kind or "the LSTM"
    if (m := re.search(r"input\.size\(-1\) must be equal to input_size\. Expected (\d+), got (\d+)", msg)):
        E, G = map(int, m.groups())
        x = ctx.inputs[0] if ctx.inputs else None
        # Without labels, call the axes (B, T, F) only if the layer itself reads them that way.
        reads = ("B", "T", "F") if getattr(ctx.module, "batch_first", False) and x is not None and len(x) == 3 else None
        shown = f" {_show(x, ctx, reads)}" if x is not None else ""
        head = _find(ctx, nn.RNNBase, input_size=E)
        k = G // E if G > E and G % E == 0 else None
        if k and x is not None and len(x) == 2:
            # Seed 004's "expected ndim=3, found ndim=2": the steps were flattened into one vector.
            return (f"{head}{layer} reads a sequence (B, T, F) with F = input_size = {E}, but got the 2-D "
                    f"tensor {_show(x, ctx)}: {G} = {k} x {E}, so {k} steps of {E} features were flattened "
                    f"into one vector per sample and the time axis is gone (Keras says 'expected ndim=3, "
                    f"found ndim=2').\nFix: keep the time axis, x.reshape({x[0]}, {k}, {E}) -> (B, T, F) "
                    f"(flatten_spatial(maps) instead of maps.flatten(1)). Do not build the layer with "
                    f"input_size={G}: PyTorch reads a 2-D input as ONE unbatched sequence and would run "
                    f"without an error.")
        source = _map_source(G, ctx)
        where = (f" That is {source}." if source else
                 f" If it is a flattened map, {G} = C x H x W ({_guess_map(G)})." if _guess_map(G) else "")
        fix = f"\nFix: build it with input_size={G}."
        if k and x is None:
            fix += (f" But if the input is 2-D, (B, {G}) with {G} = {k} x {E}, the time axis was flattened "
                    f"away: reshape to (B, {k}, {E}) instead, since a layer built for {G} would read a 2-D "
                    "input as one unbatched sequence without complaint.")
        return (f"{head}{layer} was built with input_size={E}, but each step of its input"
                f"{shown} has F={G} features: the last axis of (B, T, F) must equal input_size.{where}" + fix)
    if (m := re.search(r"(\w+): Expected input to be (\d)D or (\d)D, got (\d)D instead", msg)):
        kind, rank = m.group(1), int(m.group(4))
        if kind.endswith("Cell"):
            return (f"{_where(ctx)}{kind} takes one time step, (B, F), but got a {rank}-D tensor. Loop over "
                    f"the steps with x[:, t], or use the sequence layer ({kind[:-4]}) for the whole (B, T, F).")
        x = ctx.inputs[0] if ctx.inputs else None
        shown = f" {_show(x, ctx, guess_axes(len(x), frames='N'))}" if x is not None else ""
        shown = f"the {rank}-D tensor{shown}" if shown else f"a {rank}-D tensor"
        if rank == 5:
            return (f"{_where(ctx)}{kind} reads a sequence of vectors (B, T, F), but got {shown}: "
                    "one feature map (C, H, W) per frame. The seed-004 mistake in reverse ('expected ndim=3').\n"
                    "Fix: flatten each frame, flatten_spatial(x) -> (B, T, C*H*W), with input_size = C*H*W; "
                    "or keep the maps and use ConvLSTM.")
        if rank == 4:
            return (f"{_where(ctx)}{kind} reads (B, T, F), but got {shown}: frames still folded "
                    "(B*T, C, H, W), or maps without their time axis.\nFix: unfold_time(x, steps=T) to get "
                    "(B, T, ...) back, then flatten_spatial(x) -> (B, T, C*H*W).")
        return (f"{_where(ctx)}{kind} reads (B, T, F) (or one unbatched sequence (T, F)), but got "
                f"{shown}. Give it a batch and a time axis.")
    if (m := re.search(r"Expected hidden(?:\[0\])? size \((\d+), (\d+), (\d+)\), got \[(\d+), (\d+), (\d+)\]", msg)):
        want, got = tuple(map(int, m.groups()[:3])), tuple(map(int, m.groups()[3:]))
        L, B, H = want
        why = (f" It looks like (B, L, H): the state is (num_layers, B, H) even with batch_first=True."
               if got == (B, L, H) else
               f" Its batch axis is {got[1]}, not B={B}: a state kept from a batch of another size "
               "(often the last, smaller batch of an epoch).")
        return (f"{_where(ctx)}the initial state h_0 must be (L, B, H) = {format_shape(want, ('L', 'B', 'H'))} "
                f"for this input, but it is {format_shape(got)}.{why}\nFix: pass state=None to start from "
                "zeros (Stateful.reset_state() at a new video), or build h_0 as torch.zeros(L, B, H).")
    if (m := re.search(r"For batched 3-D input, hx and cx should also be 3-D but got \((\d)-D, (\d)-D\)", msg)):
        return (f"{_where(ctx)}the state (h_0, c_0) must be 3-D, (L, B, H), for a batched input; it is "
                f"{m.group(1)}-D. Add the layer axis: (h.unsqueeze(0), c.unsqueeze(0)).")
    return None


def _loss_time_axis(msg: str, ctx: _Context) -> str | None:
    T = ctx.T
    t_text = f"T={T}" if T else "T"
    pick = ("\nFix: pick a step before the classifier, out[:, -1] -> (B, H) (or h_n[-1]), so the logits "
            "are (B, classes); for a label at every step instead, use "
            "loss(logits.flatten(0, 1), target.flatten()) with a target (B, T).")
    if (m := re.search(r"Expected target size \[(\d+), (\d+)\], got \[([\d, ]*)\]", msg)):
        N, K = int(m.group(1)), int(m.group(2))
        got = _ints(m.group(3))
        logits = f"({N}, {T if T else '?'}, {K})"
        if len(got) == 1:
            return (f"{_where(ctx)}the loss got 3-D logits {logits} and one label per clip ({got[0]},). "
                    f"cross_entropy reads a 3-D input as (N, classes, positions), so it wanted a target "
                    f"({N}, {K}). The logits still have the time axis: an LSTM output (B, {t_text}, H) went "
                    f"into the classifier without picking a step, giving (B, {t_text}, classes)." + pick)
        return (f"{_where(ctx)}the loss got 3-D logits {logits} and a target {format_shape(got)}. "
                "cross_entropy wants the classes on axis 1, (B, classes, T), not last.\nFix: "
                "loss(logits.transpose(1, 2), target), or loss(logits.flatten(0, 1), target.flatten()).")
    if (m := re.search(r"Expected input batch_size \((\d+)\) to match target batch_size \((\d+)\)", msg)):
        n_in, n_target = map(int, m.groups())
        if n_in % n_target == 0 and n_in > n_target:
            k = n_in // n_target
            t = "the time axis T" if T in (None, k) else f"an axis of {k} (T is {T})"
            return (f"{_where(ctx)}the logits have {n_in} = {n_target} x {k} rows but the target has "
                    f"{n_target}: one row per step (B*T), one label per clip (B={n_target}). So {t} went "
                    f"into the batch before the classifier." + pick)
        return (f"{_where(ctx)}the logits have {n_in} rows, the target {n_target}: the loss needs one label "
                "per row. Check which axis of the logits is the batch.")
    if (m := re.search(r"Target size \(torch\.Size\(\[([\d, ]*)\]\)\) must be the same as input size \(torch\.Size\(\[([\d, ]*)\]\)\)", msg)):
        target, logits = _ints(m.group(1)), _ints(m.group(2))
        extra = (f" The logits {format_shape(logits)} have one more axis than the target: probably the time "
                 "axis of an LSTM output." + pick if len(logits) == len(target) + 1 else "")
        return (f"{_where(ctx)}the loss needs the target shaped like the logits, {format_shape(logits)}, but it "
                f"is {format_shape(target)}.{extra}")
    return None


def _conv_channels(msg: str, ctx: _Context) -> str | None:
    m = re.search(r"weight of size \[([\d, ]*)\], expected input\[([\d, ]*)\] to have (\d+) channels, but got (\d+) channels", msg)
    if not m:
        return None
    weight, shape, want, got = _ints(m.group(1)), tuple(_ints(m.group(2))), int(m.group(3)), int(m.group(4))
    spatial = min(max(len(weight) - 2, 1), 3)
    layer = ctx.kind or f"Conv{spatial}d"
    reads = ("N", "C") + ("D", "H", "W")[3 - spatial:]              # Conv2d: (N, C, H, W)
    head = (f"{_where(ctx)}{layer} was built with in_channels={want}, but axis 1 of its input "
            f"{format_shape(shape)} (read as ({', '.join(reads)})) has {got} channels.")
    if spatial == 3 and len(shape) == 5 and shape[2] == want:
        B, T, C, H, W = shape
        return (head + f" Axis 2 is {want}: this is a video (B, T, C, H, W) = {format_shape(shape, 'B T C H W')}, "
                f"but {layer} reads (N, C, D, H, W), channels before the time (depth) axis, so it took "
                f"T={T} for the channels.\nFix: move the channels in front of time, x.permute(0, 2, 1, 3, 4) -> "
                f"(B, C, T, H, W) = {format_shape((B, C, T, H, W), 'B C T H W')}.")
    video = _wrapped_video(ctx, shape)
    if shape[-1] == want and spatial == 2 and video is not None:
        return _channels_last_video(video, want, ctx)
    if shape[-1] == want and len(shape) == spatial + 2:
        lead = ("N",) + ("D", "H", "W")[3 - spatial:] + ("C",)
        perm = ", ".join(map(str, (0, spatial + 1) + tuple(range(1, spatial + 1))))
        video_fix = "; for a video (B, T, H, W, C), x.permute(0, 1, 4, 2, 3)" if spatial == 2 else ""
        return (head + f" The last axis is {want}: the frames are channels-last ({', '.join(lead)}), as Keras, "
                f"NumPy and PIL store them.\nFix: x.permute({perm}) -> ({', '.join(reads)}){video_fix}.")
    if ctx.T is not None and got == ctx.T and len(shape) == 4:
        return (head + f" Axis 1 has T={got}: the time axis is being read as channels, as for frames "
                f"(B, T, H, W) without a channel axis.\nFix: add C=1 and fold time: x.unsqueeze(2) -> "
                "(B, T, 1, H, W), then fold_time or TimeDistributed.")
    if shape[0] == 1 and ctx.inputs and len(ctx.inputs[0]) == 3:
        return (head + f" The input {format_shape(ctx.inputs[0])} is 3-D, which PyTorch reads as ONE image "
                "(C, H, W): a batch of grey frames (N, H, W) without a channel axis.\nFix: x.unsqueeze(1) -> (N, 1, H, W).")
    return head + f"\nFix: build it with in_channels={got}, or check the out_channels of the layer before."


def _wrapped_video(ctx: _Context, frames: tuple) -> tuple | None:
    """The (B, T, ...) input of the TimeDistributed that folded ``frames`` (B*T, ...), if one did."""
    for kind, shape in reversed(ctx.calls):
        if kind == "TimeDistributed" and len(shape) == len(frames) + 1 and shape[2:] == frames[1:] \
                and shape[0] * shape[1] == frames[0]:
            return shape
    return None


def _channels_last_video(video: tuple, C: int, ctx: _Context) -> str:
    """A channels-last video (B, T, H, W, C) that TimeDistributed folded into frames for a Conv2d."""
    B, T, H, W, _ = video
    return (f"{_where(ctx)}TimeDistributed got the video {format_shape(video, 'B T H W C')}: channels-last "
            f"frames (H, W, C), as Keras, NumPy and PIL store them. It hands {ctx.kind or 'the conv'} the frames "
            f"{format_shape((B * T, H, W, C), 'B*T H W C')}, which reads axis 1 as the channels, so it "
            f"finds {H} channels where it was built for {C}.\nFix: put the channels first in each frame "
            f"before TimeDistributed, x.permute(0, 1, 4, 2, 3) -> (B, T, C, H, W) = "
            f"{format_shape((B, T, C, H, W), 'B T C H W')}.")


def _broadcast(msg: str, ctx: _Context) -> str | None:
    m = re.search(r"The size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at non-singleton dimension (\d+)", msg)
    if not m:
        return None
    a, b, dim = map(int, m.groups())
    text = (f"{_where(ctx)}an elementwise operation (+, *, a loss) met two tensors whose axis {dim} differs: "
            f"{a} against {b}. Broadcasting needs equal sizes, or 1.")
    if ctx.B and ctx.T and ctx.B != ctx.T and {a, b} == {ctx.B, ctx.T}:
        text += (f" Here {ctx.T} is T and {ctx.B} is B: one tensor is (B, T, ...) and the other (T, B, ...) "
                 "or has no time axis (a prediction per step against a target per clip?).")
    return text


def _index_rank(msg: str, ctx: _Context) -> str | None:
    if (m := re.search(r"too many indices for tensor of dimension (\d+)", msg)):
        n = int(m.group(1))
        return (f"{_where(ctx)}an index like x[:, -1] asked for more axes than the tensor's {n}. If it picks "
                "the last step of an LSTM output, that output has no time axis any more: h_n[-1] and "
                "out[:, -1] are already (B, H), and an LSTM fed a 2-D input returns a 2-D output.")
    if (m := re.search(r"Dimension out of range \(expected to be in range of \[(-?\d+), (-?\d+)\], but got (-?\d+)\)", msg)):
        lo, hi, got = map(int, m.groups())
        return (f"{_where(ctx)}the code asks for axis {got} of a tensor with {hi + 1} axes (valid: {lo} to "
                f"{hi}). An axis is missing: often the time axis (picked away or never unfolded) or the "
                "channel axis of grey frames.")
    return None


_DIAGNOSES = (_video_into_frame_layer, _reshape_size, _matmul_features, _rnn_input, _loss_time_axis,
              _conv_channels, _broadcast, _index_rank)


def _diagnose(error: BaseException, ctx: _Context) -> str | None:
    if isinstance(error, ShapeError):
        # Ours already say what was expected and what to do, except those translated from a
        # torch error inside a wrapper (TimeDistributed, Stateful): they keep torch's words, and
        # a diagnosis of those words, made with the wrapper's input in view, says more.
        cause = error.__cause__
        translated = _diagnose(cause, ctx) if isinstance(cause, RuntimeError) else None
        return translated or str(error)
    msg = str(error)
    for diagnose in _DIAGNOSES:
        advice = diagnose(msg, ctx)
        if advice:
            return advice[0].upper() + advice[1:]
    return None


def _context(error: BaseException, model, trace) -> _Context:
    trace = trace if trace is not None else getattr(error, "trace", None)
    if isinstance(trace, ShapeTrace):
        return _context_from_trace(trace, model)
    return _Context(model=model, calls=_running_calls(error))


def _running_calls(error: BaseException) -> list[tuple]:
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


def explain(error: BaseException, model: nn.Module | None = None, trace: ShapeTrace | None = None) -> str:
    """Say in plain words what shape mistake ``error`` is, with the numbers and the fix.

    ``trace`` (or the ``error.trace`` that :func:`~cnnlstm_edu.trace.trace_shapes` attaches)
    tells which module failed and the axes of its input, so the advice can name them.

    >>> try:
    ...     torch.zeros(32, 32, 7, 7).view(8, 1568)     # (B*T, C, H, W) with B=8, T=4
    ... except RuntimeError as e:
    ...     print(explain(e))
    The reshape to [8, 1568] does not fit a tensor of 50176 numbers: 50176 = 8 x 4 x 1568, but ...
    Fix: keep the time axis, reshape to (B, T, -1) = (8, 4, 1568): x.reshape(8, 4, -1), ...
    >>> print(explain(KeyError("lstm")))
    explain() does not recognise this as one of the shape mistakes it knows ...
    """
    if not isinstance(error, BaseException):
        raise TypeError(f"explain takes the exception a model call raised, got {type(error).__name__}")
    advice = _diagnose(error, _context(error, model, trace))
    if advice is not None:
        return advice
    return (f"explain() does not recognise this as one of the shape mistakes it knows (a video into a "
            f"frame layer, a reshape that loses an axis, in_features/input_size mismatches, an LSTM output "
            f"used without picking a step, channels-last frames, a state of the wrong batch), so it will "
            f"not guess. PyTorch said: {type(error).__name__}: {error}\nTo see every shape up to the "
            "failing call, run trace_shapes(model, x) and print the trace attached to the error "
            "(error.trace).")


@contextmanager
def explain_shapes(model: nn.Module | None = None):
    """Re-raise a shape error from the block as a :class:`ShapeError` that explains it.

    Errors :func:`explain` does not recognise pass through unchanged; the original stays
    attached as ``__cause__``. While the block runs, light global module hooks record which
    module is being called, so the advice can name it (``model`` gives the qualified names).

    >>> model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU())
    >>> with explain_shapes():
    ...     model(torch.zeros(2, 4, 1, 14, 14))             # (B, T, C, H, W) into a Conv2d
    Traceback (most recent call last):
        ...
    cnnlstm_edu.shapes.ShapeError: In 0 (Conv2d): Conv2d takes a batch of frames, 4-D like (N, C, H, W), but it got the 5-D tensor (B=2, T=4, C=1, H=14, W=14): ...
    """
    watcher = _Watcher()
    try:
        with watcher:
            yield
    except (RuntimeError, ValueError, IndexError) as error:
        if isinstance(error, ShapeError) and not isinstance(error.__cause__, RuntimeError):
            raise
        trace = getattr(error, "trace", None)
        ctx = _context_from_trace(trace, model) if isinstance(trace, ShapeTrace) else watcher.context(model)
        advice = _diagnose(error, ctx)
        if advice is None or advice == str(error):
            raise
        explained = ShapeError(advice)
        if trace is not None:
            explained.trace = trace
        raise explained from error

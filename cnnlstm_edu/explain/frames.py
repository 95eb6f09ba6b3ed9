"""Diagnoses of the mistakes made where frames meet a CNN: a video fed to a frame layer, a
reshape that loses the time axis, a conv whose channels are not where it reads them (channels-last
frames, a video into ``Conv3d`` with time before the channels, grey frames without a channel axis).

Each diagnosis takes torch's message and the :class:`~.context.Context` and returns advice with
the numbers and the fix, or None when the error is not its mistake.
"""

from __future__ import annotations

import math
import re

from ..axes import format_shape
from .context import Context, guess_map, ints, map_source, times, where_prefix

__all__ = ["conv_channels", "reshape_size", "video_into_frame_layer"]


_OPS = {"conv": "Conv", "conv_transpose": "ConvTranspose", "max_pool": "MaxPool", "avg_pool": "AvgPool",
        "adaptive_avg_pool": "AdaptiveAvgPool", "adaptive_max_pool": "AdaptiveMaxPool"}


def _frame_layer_rank(msg: str, ctx: Context):
    """``(layer, batched rank, input shape or None, input rank)`` when a frame layer got the wrong rank."""
    inp = tuple(ctx.inputs[0]) if ctx.inputs else None
    if (m := re.search(r"Expected (\d)D \(unbatched\) or (\d)D \(batched\) input to (\w+?)(\d)d, "
                       r"but got input of size: \[([\d, ]*)\]", msg)):
        shape = tuple(ints(m[5]))
        return f"{_OPS.get(m[3], m[3])}{m[4]}d", int(m[2]), shape, len(shape)
    if (m := re.search(r"(?:(\w+?)(\d)d: )?Expected (\d)D or (\d)D \(batch mode\) tensor with optional 0 dim "
                       r"batch size for input, but got:\s*\[([\d, ]*)\]", msg)):
        shape = tuple(ints(m[5]))
        layer = f"{_OPS.get(m[1], m[1])}{m[2]}d" if m[1] else "AvgPool2d"
        return layer, int(m[4]), shape, len(shape)
    if (m := re.search(r"(adaptive_\w+?)(\d)d\(\): Expected (\d)D or (\d)D tensor, but got \[([\d, ]*)\]", msg)):
        shape = tuple(ints(m[5]))
        return f"{_OPS.get(m[1], m[1])}{m[2]}d", int(m[4]), shape, len(shape)
    if "non-empty 3D or 4D (batch mode) tensor expected for input" in msg:
        return "MaxPool2d", 4, inp, len(inp) if inp else None
    if (m := re.search(r"expected (?:\dD or )?(\d)D input \(got (\d)D input\)", msg)):
        return "BatchNorm", int(m[1]), inp, int(m[2])
    return None


def video_into_frame_layer(msg: str, ctx: Context) -> str | None:
    found = _frame_layer_rank(msg, ctx)
    if found is None:
        return None
    layer, batched, shape, rank = found
    layer = ctx.kind or layer
    if rank == batched + 1 and rank >= 4:
        if shape is None:
            return (f"{where_prefix(ctx)}{layer} takes a batch of frames, {batched}-D like (N, C, H, W), but got a "
                    f"{rank}-D tensor: most likely a video (B, T, C, H, W). A CNN never sees a video, only "
                    "frames.\nFix: fold time into the batch, fold_time(x) -> (B*T, C, H, W), and unfold "
                    "the CNN's output with unfold_time(y, steps=T); TimeDistributed(cnn) does both.")
        B, T = shape[:2]
        video_axes = ("B", "T", "C", "H", "W") if rank == 5 else ("B", "T") + (None,) * (rank - 2)
        frame_axes = ("B*T", "C", "H", "W") if rank == 5 else ("B*T",) + (None,) * (rank - 2)
        return (f"{where_prefix(ctx)}{layer} takes a batch of frames, {batched}-D like (N, C, H, W), but it got "
                f"the {rank}-D tensor {format_shape(shape, video_axes)}: a batch of B={B} clips of T={T} "
                f"frames. A CNN never sees a video, only frames (Keras says 'expected ndim={batched}, "
                f"found ndim={rank}').\n"
                f"Fix: fold time into the batch, frames = fold_time(x) -> "
                f"{format_shape((B * T,) + shape[2:], frame_axes)}, run the CNN, and unfold its output "
                f"with unfold_time(y, steps={T}) -> (B={B}, T={T}, ...). TimeDistributed(cnn) does both.")
    if shape is None and rank is None:
        return (f"{where_prefix(ctx)}{layer} takes 3-D (C, H, W) or 4-D (N, C, H, W) input and got neither. If it "
                "is a video (B, T, C, H, W), fold time into the batch first: fold_time(x), or wrap the "
                "CNN in TimeDistributed(cnn). (Run the model under explain_shapes() or trace_shapes() to "
                "see the shape.)")
    shown = format_shape(shape) if shape is not None else f"{rank}-D"
    return (f"{where_prefix(ctx)}{layer} takes {batched - 1}-D (unbatched) or {batched}-D (batched) input, but got "
            f"a tensor {shown}. For frames it wants (N, C, H, W): check which axis is missing or extra.")


def reshape_size(msg: str, ctx: Context) -> str | None:
    m = re.search(r"shape '\[([-\d, ]*)\]' is invalid for input of size (\d+)", msg)
    if not m:
        return None
    target, N = ints(m.group(1)), int(m.group(2))
    asked = "[" + ", ".join(map(str, target)) + "]"
    head = f"{where_prefix(ctx)}the reshape to {asked} does not fit a tensor of {N} numbers"
    known = [s for s in target if s != -1]
    P = math.prod(known) if known else 1
    T = ctx.T
    if -1 not in target and N % P == 0 and N > P and len(target) >= 2:
        k = N // P
        B, rest = target[0], target[1:]
        factors = times(B, k, *rest)
        if T is None or k == T:
            who = (f"the time axis T={k}" if T == k else
                   f"an axis of {k}: in a CNN-LSTM almost always the time axis T={k}")
            return (f"{head}: {N} = {factors}, but the shape keeps only {times(*target)} = {P}. "
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
        return (f"{head}: the shape asks for {times(*target)} = {P} numbers, {k} times more than there "
                f"are. If {k} is the time axis T, this tensor no longer has one: it was picked (x[:, -1]) "
                f"or reduced away before.\nFix: reshape what the tensor holds, e.g. "
                f"x.reshape({target[0]}, -1) -> ({target[0]}, {N // target[0] if target[0] and N % target[0] == 0 else '...'}).")
    if -1 in target and N % P:
        head += (f": the sizes it fixes, {times(*known)} = {P}, do not divide {N}, so no size for -1 "
                 "makes it fit")
    # Find the longest leading part of the shape that divides the size: the rest is one axis.
    for cut in range(len(target) - 1, 0, -1):
        lead = target[:cut]
        if -1 in lead:
            continue
        lp = math.prod(lead)
        if lp and N % lp == 0:
            per = N // lp
            src = map_source(per, ctx) or guess_map(per)
            rest = "" if -1 in target else f", not {times(*target[cut:])}"
            return (f"{head}: after {times(*lead)}, each row holds {N} / {lp} = {per} numbers{rest}."
                    f"\nFix: let PyTorch compute it, "
                    f"x.reshape({', '.join(map(str, lead))}, -1) -> ({', '.join(map(str, lead))}, {per})"
                    + (f" ({src})." if src else "."))
    return f"{head}: {N} is not a multiple of {P}, so no size for -1 makes it fit. Check the sizes with trace_shapes."


def conv_channels(msg: str, ctx: Context) -> str | None:
    m = re.search(r"weight of size \[([\d, ]*)\], expected input\[([\d, ]*)\] to have (\d+) channels, but got (\d+) channels", msg)
    if not m:
        return None
    weight, shape, want, got = ints(m.group(1)), tuple(ints(m.group(2))), int(m.group(3)), int(m.group(4))
    spatial = min(max(len(weight) - 2, 1), 3)
    layer = ctx.kind or f"Conv{spatial}d"
    reads = ("N", "C") + ("D", "H", "W")[3 - spatial:]              # Conv2d: (N, C, H, W)
    head = (f"{where_prefix(ctx)}{layer} was built with in_channels={want}, but axis 1 of its input "
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


def _wrapped_video(ctx: Context, frames: tuple) -> tuple | None:
    """The (B, T, ...) input of the TimeDistributed that folded ``frames`` (B*T, ...), if one did."""
    for kind, shape in reversed(ctx.calls):
        if kind == "TimeDistributed" and len(shape) == len(frames) + 1 and shape[2:] == frames[1:] \
                and shape[0] * shape[1] == frames[0]:
            return shape
    return None


def _channels_last_video(video: tuple, C: int, ctx: Context) -> str:
    """A channels-last video (B, T, H, W, C) that TimeDistributed folded into frames for a Conv2d."""
    B, T, H, W, _ = video
    return (f"{where_prefix(ctx)}TimeDistributed got the video {format_shape(video, 'B T H W C')}: channels-last "
            f"frames (H, W, C), as Keras, NumPy and PIL store them. It hands {ctx.kind or 'the conv'} the frames "
            f"{format_shape((B * T, H, W, C), 'B*T H W C')}, which reads axis 1 as the channels, so it "
            f"finds {H} channels where it was built for {C}.\nFix: put the channels first in each frame "
            f"before TimeDistributed, x.permute(0, 1, 4, 2, 3) -> (B, T, C, H, W) = "
            f"{format_shape((B, T, C, H, W), 'B T C H W')}.")

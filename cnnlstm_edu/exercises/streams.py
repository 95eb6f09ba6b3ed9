"""Lesson 06's exercises on carrying the state: ``stream_videos`` (with :class:`~cnnlstm_edu.Stateful`)
and ``carry_state`` (by hand, with ``nn.LSTM``'s ``(h, c)``).

Both are checked against the LSTM run on each whole video from zeros, the identity the lesson
proves. A stream that never resets, or resets between the frames of one video, and a chunked
run that drops the state, each give numbers the check recomputes and names.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import Stateful
from .core import Exercise, Wrong, call, expect_tensor, generator, max_gap, seeded

__all__ = ["EXERCISES", "carry_state", "stream_videos"]

_TOL = 1e-5


def stream_videos(stream: Stateful, videos: torch.Tensor) -> torch.Tensor:
    """Play videos (N, T, F) one after another through ``stream``, frame by frame -> outputs (N, T, H)."""
    outputs = []
    for video in videos:                                   # (T, F): one video
        stream.reset_state()                               # a new video starts from zeros
        frames = [stream(frame.view(1, 1, -1)) for frame in video]  # T outputs of (1, 1, H)
        outputs.append(torch.cat(frames, dim=1)[0])        # (T, H)
    return torch.stack(outputs)                            # (N, T, H)


def carry_state(lstm: nn.LSTM, x: torch.Tensor, chunk: int) -> torch.Tensor:
    """Run a batch-first ``lstm`` over x (B, T, F) ``chunk`` frames at a time, carrying (h, c) -> (B, T, H)."""
    state, outputs = None, []
    for piece in x.split(chunk, dim=1):                    # (B, <=chunk, F)
        out, state = lstm(piece, state)                    # the next chunk starts where this one ended
        outputs.append(out)
    return torch.cat(outputs, dim=1)                       # (B, T, H)


def _check_stream(answer) -> str:
    for seed, (N, T) in enumerate(((3, 5), (2, 4))):
        lstm = seeded(nn.LSTM(3, 4, batch_first=True), 600 + seed, scale=0.5)
        videos = torch.randn(N, T, 3, generator=generator(610 + seed))
        case = f"{N} videos of {T} frames, (N={N}, T={T}, F=3)"
        with torch.no_grad():
            want = lstm(videos)[0]                                          # each video alone, from zeros
            never_reset = lstm(videos.reshape(1, N * T, 3))[0].reshape(N, T, 4)
            every_frame = lstm(videos.reshape(N * T, 1, 3))[0].reshape(N, T, 4)
        out = expect_tensor(call(answer, Stateful(lstm), videos.clone(), case=case), "What stream_videos returns")
        if tuple(out.shape) != (N, T, 4):
            raise Wrong(f"On {case} stream_videos should give the output after every frame, (N={N}, T={T}, H=4), "
                        f"but yours gives {tuple(out.shape)}.")
        if max_gap(out, want) <= _TOL:
            continue
        if max_gap(out, never_reset) <= _TOL:
            raise Wrong(f"On {case} video 0 is right, but video 1 starts from the state video 0 ended with: its first "
                        f"frame is off by {max_gap(out[1, 0], want[1, 0]):.3g}. Call stream.reset_state() at the start "
                        "of each video.")
        if max_gap(out, every_frame) <= _TOL:
            raise Wrong(f"On {case} every frame starts from zeros: you reset between the frames of one video, so the "
                        "LSTM remembers nothing and each output sees one frame. Reset once per video, before its "
                        "first frame.")
        raise Wrong(f"On {case} your outputs differ from each video run whole from zeros by up to "
                    f"{max_gap(out, want):.3g}.")
    return ("Right: frame by frame, with the state carried inside one video and reset between videos, gives the "
            "same numbers as each whole video at once. That is deployment: the frames come one at a time.")


def _check_carry(answer) -> str:
    for seed, (B, T, chunk) in enumerate(((2, 7, 3), (3, 6, 2), (1, 5, 5))):
        lstm = seeded(nn.LSTM(3, 4, batch_first=True), 620 + seed, scale=0.5)
        x = torch.randn(B, T, 3, generator=generator(630 + seed))
        case = f"x of shape (B={B}, T={T}, F=3) in chunks of {chunk}"
        with torch.no_grad():
            want = lstm(x)[0]
            dropped = torch.cat([lstm(piece)[0] for piece in x.split(chunk, dim=1)], dim=1)
        out = call(answer, lstm, x.clone(), chunk, case=case, on_error=_cat_hint)
        out = expect_tensor(out, "What carry_state returns")
        if tuple(out.shape) != (B, T, 4) and out.dim() == 3 and out.shape[0] > B and out.shape[1] <= chunk:
            raise Wrong(f"On {case} you returned {tuple(out.shape)}: the chunks were joined on the batch axis. "
                        "They are pieces of time: torch.cat(outputs, dim=1) -> (B, T, H).")
        if tuple(out.shape) != (B, T, 4):
            raise Wrong(f"On {case} carry_state should give (B={B}, T={T}, H=4), but yours gives {tuple(out.shape)}.")
        if max_gap(out, want) <= _TOL:
            continue
        if max_gap(out, dropped) <= _TOL:
            raise Wrong(f"On {case} your first {chunk} steps are right and step {chunk} is off by "
                        f"{max_gap(out[:, chunk], want[:, chunk]):.3g}: each chunk started from zeros. Pass the "
                        "(h, c) the last chunk returned: out, state = lstm(piece, state).")
        raise Wrong(f"On {case} your output differs from the whole sequence's by up to {max_gap(out, want):.3g}.")
    return ("Right: chunk by chunk, with (h, c) handed on, equals the whole sequence. Stateful does exactly this "
            "for you, and detach_state() cuts the graph between chunks for truncated backpropagation.")


def _cat_hint(error: BaseException) -> str | None:
    if "except in dimension 0" in str(error):
        return ("The chunks were joined on the batch axis (dim 0), where the last, shorter chunk cannot fit. They "
                "are pieces of time: torch.cat(outputs, dim=1) -> (B, T, H).")
    return None


_STREAM_SKELETON = '''\
def stream_videos(stream, videos):
    """Play videos (N, T, F) one after another through `stream` (a Stateful LSTM, batch_first),
    one frame (1, 1, F) per call, as a camera would deliver them. Return the output after
    every frame, (N, T, H)."""
    ...  # your code here'''

_CARRY_SKELETON = '''\
def carry_state(lstm, x, chunk):
    """Run the batch-first nn.LSTM `lstm` over x (B, T, F), `chunk` frames per call,
    handing the state (h, c) from one call to the next. Return the output (B, T, H)."""
    ...  # your code here'''

EXERCISES = (
    Exercise(
        name="stream_videos", lesson=6,
        title="Stream videos frame by frame through a Stateful LSTM: carry the state within a video, reset between.",
        skeleton=_STREAM_SKELETON,
        hint="For each video: stream.reset_state(), then one call per frame with frame.view(1, 1, -1). "
             "Collect the outputs and stack them to (N, T, H).",
        reference=stream_videos, grade=_check_stream),
    Exercise(
        name="carry_state", lesson=6,
        title="Feed an nn.LSTM a sequence in chunks, handing (h, c) on by hand: the same output as whole.",
        skeleton=_CARRY_SKELETON,
        hint="x.split(chunk, dim=1) gives the chunks; out, state = lstm(piece, state) starts each where the "
             "last one ended (state=None the first time). torch.cat the outputs on dim 1.",
        reference=carry_state, grade=_check_carry),
)

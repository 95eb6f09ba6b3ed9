"""Lesson 02's exercises: ``loop_frames`` (TimeDistributed's loop mode by hand) and ``to_batch_first``
(the view-is-not-permute trap).

``loop_frames`` is checked against ``TimeDistributed(module, mode="fold")``: the lesson's claim
that both modes give the same numbers, made by the learner's own loop. ``to_batch_first`` is
checked against ``x.transpose(0, 1)``; a ``view``/``reshape`` gets the shape right and the
values wrong, which is exactly what the check says.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import TimeDistributed
from .core import Exercise, Wrong, call, expect_tensor, generator, max_gap, seeded

__all__ = ["EXERCISES", "loop_frames", "to_batch_first"]

_LOOP_CASES = ((2, 3), (3, 2), (3, 3))   # (B, T): B == T last, where a swap keeps the shape
_TOL = 1e-5


def loop_frames(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply ``module`` to each time step of x (B, T, ...) and stack: TimeDistributed's loop mode."""
    T = x.shape[1]
    steps = [module(x[:, t]) for t in range(T)]  # T tensors of (B, ...out): frame t of every clip
    return torch.stack(steps, dim=1)             # (B, T, ...out)


def to_batch_first(x: torch.Tensor) -> torch.Tensor:
    """(T, B, F) -> (B, T, F), every value moving with its clip and its step."""
    return x.transpose(0, 1)  # (B, T, F): axes swapped, data untouched


def _frame_cnn(seed: int) -> nn.Module:
    cnn = nn.Sequential(nn.Conv2d(2, 3, kernel_size=3, padding=1), nn.ReLU(), nn.Flatten())  # (N, 2, 4, 5) -> (N, 60)
    return seeded(cnn, seed)


def _check_loop(answer) -> str:
    for seed, (B, T) in enumerate(_LOOP_CASES):
        cnn = _frame_cnn(200 + seed)
        x = torch.randn(B, T, 2, 4, 5, generator=generator(210 + seed))
        with torch.no_grad():
            want = TimeDistributed(cnn, mode="fold")(x)  # (B, T, 60)
        case = f"x of shape (B={B}, T={T}, C=2, H=4, W=5) and a frame CNN giving 60 features"
        out = expect_tensor(call(answer, cnn, x.clone(), case=case, on_error=lambda e, B=B: _index_hint(e, B)),
                            "What loop_frames returns")
        if tuple(out.shape) == (T, B, 60) and B != T:
            raise Wrong(f"On {case} you returned (T, B, F) = {tuple(out.shape)}: you stacked on dim 0. The result "
                        "is batch first like the input: torch.stack(steps, dim=1) -> (B, T, F).")
        if tuple(out.shape) == (B, T * 60):
            raise Wrong(f"On {case} you returned {tuple(out.shape)}: torch.cat joined the frames' features end to "
                        "end. torch.stack(steps, dim=1) makes a new time axis: (B, T, F).")
        if tuple(out.shape) != (B, T, 60):
            raise Wrong(f"On {case} loop_frames should give (B={B}, T={T}, F=60), but yours gives {tuple(out.shape)}.")
        if max_gap(out, want) <= _TOL:
            continue
        if max_gap(out, want.transpose(0, 1)) <= _TOL:
            raise Wrong(f"On {case} (B = T) your out[b, t] is frame b of clip t: clips and steps are swapped. "
                        "Frame t of every clip is x[:, t] (x[t] is clip t), and the steps stack on dim 1.")
        raise Wrong(f"On {case} your numbers differ from fold mode's by up to {max_gap(out, want):.3g}: the loop "
                    "should call the module on x[:, t], frame t of every clip, and stack on dim 1.")
    return (f"Right: on {len(_LOOP_CASES)} hidden cases your loop gives fold mode's numbers: one module, T calls, "
            "the same answer as one call on B*T frames. That is the tf.map_fn way of seed 000.")


def _index_hint(error: BaseException, B: int) -> str | None:
    if isinstance(error, IndexError):
        return (f"x[t] is clip t, and there are only B = {B} clips: frame t of every clip is x[:, t], "
                "a (B, C, H, W) batch the module can take.")
    return None


def _check_batch_first(answer) -> str:
    for seed, (T, B, F) in enumerate(((3, 2, 4), (2, 5, 3), (4, 4, 2))):
        x = torch.randn(T, B, F, generator=generator(220 + seed))
        case = f"x of shape (T={T}, B={B}, F={F})"
        out = expect_tensor(call(answer, x.clone(), case=case), "What to_batch_first returns")
        if tuple(out.shape) != (B, T, F):
            raise Wrong(f"On {case} to_batch_first should give (B={B}, T={T}, F={F}), but yours gives "
                        f"{tuple(out.shape)}." + (" x.T reverses every axis; swap only the first two: "
                                                  "x.transpose(0, 1)." if tuple(out.shape) == (F, B, T) else ""))
        if torch.equal(out, x.transpose(0, 1)):
            continue
        if torch.equal(out, x.reshape(B, T, F)):
            raise Wrong(f"On {case} the shape is right but the values are scrambled: view/reshape only relabels "
                        "the same memory, so your clip 0 holds the first T rows of x in storage order (steps of "
                        "several clips). Moving an axis is a permute: x.transpose(0, 1) or x.permute(1, 0, 2).")
        raise Wrong(f"On {case} out[b, t] should be x[t, b]; yours is not.")
    return ("Right: your out[b, t] is x[t, b] on every hidden case. A transpose moves the axes and keeps "
            "each value with its clip and step; a view would only have relabelled them.")


_LOOP_SKELETON = '''\
def loop_frames(module, x):
    """Apply module to each time step of x (B, T, C, H, W) and stack the results to (B, T, ...):
    TimeDistributed's loop mode, written by you."""
    ...  # your code here'''

_BATCH_FIRST_SKELETON = '''\
def to_batch_first(x):
    """(T, B, F), as nn.LSTM returns by default, -> (B, T, F), the same values."""
    ...  # your code here'''

EXERCISES = (
    Exercise(
        name="loop_frames", lesson=2,
        title="Write TimeDistributed's loop mode: one module call per time step, stacked to (B, T, ...).",
        skeleton=_LOOP_SKELETON,
        hint="Frame t of every clip is x[:, t], shape (B, C, H, W). Call the module on each, then "
             "torch.stack the T results on dim 1.",
        reference=loop_frames, grade=_check_loop),
    Exercise(
        name="to_batch_first", lesson=2,
        title="Turn a time-major (T, B, F) tensor into (B, T, F) without scrambling it.",
        skeleton=_BATCH_FIRST_SKELETON,
        hint="A view gives the right shape and the wrong values (section 4 of this lesson). Swap the axes instead.",
        reference=to_batch_first, grade=_check_batch_first),
)

"""Lesson 01's exercises on the one reshape of a CNN-LSTM: ``fold_frames`` and ``unfold_features``.

Each is checked against :func:`cnnlstm_edu.fold_time` / :func:`cnnlstm_edu.unfold_time` on hidden
shapes (B and T different, so a (T, B) order cannot hide, and once equal, so it cannot hide in
the values either), and the classic mistakes get their own words.
"""

from __future__ import annotations

import torch

from ..shapes import fold_time
from .core import Exercise, Wrong, call, expect_tensor, generator

__all__ = ["EXERCISES", "fold_frames", "unfold_features"]

# Hidden cases (B, T, C, H, W): B != T first, so a swapped order shows in the shape or the rows.
_FOLD_CASES = ((2, 3, 1, 4, 5), (3, 2, 2, 3, 3), (4, 4, 3, 2, 2), (1, 5, 1, 2, 3))
_UNFOLD_CASES = ((2, 3, 6), (3, 5, 4), (4, 4, 3), (1, 2, 5))  # (B, T, F)


def fold_frames(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B*T, C, H, W), frame t of clip b at row b*T + t."""
    B, T, C, H, W = x.shape
    return x.reshape(B * T, C, H, W)  # (B*T, C, H, W): clip 0's frames first, then clip 1's...


def unfold_features(y: torch.Tensor, T: int) -> torch.Tensor:
    """(B*T, F) -> (B, T, F): undo fold_frames on the CNN's per-frame features."""
    BT, F = y.shape
    return y.reshape(BT // T, T, F)  # (B, T, F): // keeps B an int


def _frame_of_each_row(out: torch.Tensor, x: torch.Tensor) -> list[tuple[int, int] | None]:
    """For each row of ``out``, the (clip, frame) of ``x`` it equals, or None."""
    B, T = x.shape[:2]
    frames = {tuple(x[b, t].flatten().tolist()): (b, t) for b in range(B) for t in range(T)}
    return [frames.get(tuple(row.flatten().tolist())) for row in out]


def _check_fold(answer) -> str:
    for seed, shape in enumerate(_FOLD_CASES):
        B, T, C, H, W = shape
        x = torch.randn(shape, generator=generator(seed))
        case = f"x of shape (B={B}, T={T}, C={C}, H={H}, W={W})"
        out = expect_tensor(call(answer, x.clone(), case=case, on_error=_sizes_hint), "What fold_frames returns")
        want = (B * T, C, H, W)
        if tuple(out.shape) != want:
            raise Wrong(_fold_shape_feedback(tuple(out.shape), shape, case))
        rows = _frame_of_each_row(out, x)
        if None in rows:
            r = rows.index(None)
            raise Wrong(
                f"On {case}, row {r} of your result is not any frame of x: the pixels inside the frames were "
                "rearranged. A view or reshape after a permute/transpose, or one that ignores C, H, W, "
                "mixes pixels of different frames. Fold straight from (B, T, C, H, W): "
                "x.reshape(B * T, C, H, W).")
        if T > 1 and B > 1 and rows == [(r % B, r // B) for r in range(B * T)]:
            raise Wrong(
                f"Your rows are ordered (T, B); fold_time's are (B, T): frame 1 of clip 0 is row 1, not row {B} "
                f"(on {case}). You swapped B and T before folding (a transpose, or stacking frame by frame); "
                "fold without it: x.reshape(B * T, C, H, W), so clip 0's frames come first, then clip 1's.")
        for r, (b, t) in enumerate(rows):
            if r != b * T + t:
                raise Wrong(
                    f"On {case}, row {r} of your result holds frame {t} of clip {b}; fold_time puts that frame at "
                    f"row b*T + t = {b * T + t}, and frame {r % T} of clip {r // T} at row {r}.")
    return (f"Right: on {len(_FOLD_CASES)} hidden shapes your rows are in fold_time's order, frame t of clip b "
            "at row b*T + t, so unfold_time(y, steps=T) puts every frame back where it came from.")


def _sizes_hint(error: BaseException) -> str | None:
    if "invalid for input of size" in str(error):
        return ("The hidden cases are not the lesson's sizes: read them from the tensor "
                "(B, T, C, H, W = x.shape) instead of writing numbers.")
    return None


def _fold_shape_feedback(got: tuple, shape: tuple, case: str) -> str:
    B, T, C, H, W = shape
    want = f"(B*T={B * T}, C={C}, H={H}, W={W})"
    if got == shape:
        return (f"On {case} you returned a 5-D tensor of the same shape: nothing was folded. "
                f"A Conv2d needs {want}: merge the first two axes.")
    if got == (B, C, H, W):
        return (f"On {case} you returned {got}: one frame per clip. Folding keeps every frame: "
                f"the result has B*T = {B * T} rows, {want}.")
    if got == (T * B * C, H, W) or got == (B * T * C, H, W):
        return (f"On {case} you returned {got}: you folded the channels into the batch too. "
                f"Each row must stay a whole frame (C, H, W): {want}.")
    if got == (T, B, C, H, W):
        return f"On {case} you returned {got}: you swapped B and T but did not fold. Fold (B, T) into one axis: {want}."
    return f"On {case} fold_frames should give {want}, but yours gives {got}."


def _check_unfold(answer) -> str:
    for seed, (B, T, F) in enumerate(_UNFOLD_CASES):
        x = torch.randn(B, T, F, generator=generator(100 + seed))
        y = fold_time(x)  # (B*T, F), the rows the learner gets
        case = f"y of shape (B*T={B * T}, F={F}) and T={T}"
        out = call(answer, y.clone(), T, case=case, on_error=lambda e, B=B, T=T: _unfold_error(e, B, T))
        out = expect_tensor(out, "What unfold_features returns")
        if tuple(out.shape) != (B, T, F):
            raise Wrong(_unfold_shape_feedback(tuple(out.shape), (B, T, F), case))
        if torch.equal(out, x):
            continue
        if torch.equal(out, y.reshape(T, B, F).transpose(0, 1)):
            raise Wrong(
                f"On {case} your clip b holds rows b, b+B, b+2B, ... of y: that is unfolding a (T, B) order. "
                f"fold_time's rows are (B, T): clip 0 is rows 0..{T - 1}, clip 1 rows {T}..{2 * T - 1}. "
                "Reshape straight to (B, T, F), with no transpose.")
        raise Wrong(f"On {case} the shape is right, but the values are not where unfold_time puts them: "
                    f"out[b, t] should be y[b*T + t].")
    return (f"Right: on {len(_UNFOLD_CASES)} hidden shapes out[b, t] is y[b*T + t], the exact inverse of "
            "fold_frames: each clip gets its own T frames back.")


def _unfold_error(error: BaseException, B: int, T: int) -> str | None:
    text = str(error)
    if isinstance(error, TypeError) and "float" in text:
        return (f"A size must be an int, but y.shape[0] / T is a float ({B * T} / {T} = {float(B)} in Python 3). "
                "Divide with //: B = y.shape[0] // T.")
    if "invalid for input of size" in text:
        return (f"This case has T={T}, and B is whatever y.shape[0] // T gives: use the T you are passed "
                "and compute B, rather than writing the lesson's numbers.")
    return None


def _unfold_shape_feedback(got: tuple, want: tuple, case: str) -> str:
    B, T, F = want
    if got == (T, B, F):
        return (f"On {case} you returned (T, B, F) = {got}: time first. The rows of y are (B, T) "
                f"(clip by clip), so the result is (B={B}, T={T}, F={F}).")
    if got == (B * T, F):
        return f"On {case} you returned y's own shape {got}: give it back its time axis, (B={B}, T={T}, F={F})."
    return f"On {case} unfold_features should give (B={B}, T={T}, F={F}), but yours gives {got}."


_FOLD_SKELETON = '''\
def fold_frames(x):
    """(B, T, C, H, W) -> (B*T, C, H, W), frame t of clip b at row b*T + t, as fold_time does."""
    ...  # your code here'''

_UNFOLD_SKELETON = '''\
def unfold_features(y, T):
    """(B*T, F) -> (B, T, F): give the CNN's per-frame features their time axis back."""
    ...  # your code here'''

EXERCISES = (
    Exercise(
        name="fold_frames", lesson=1,
        title="Fold time into the batch by hand: (B, T, C, H, W) -> (B*T, C, H, W), in fold_time's order.",
        skeleton=_FOLD_SKELETON,
        hint=("Read the five sizes from x.shape, then one reshape merges the first two axes. In memory, "
              "clip 0's T frames come first, so merging (B, T) needs no transpose."),
        reference=fold_frames, grade=_check_fold),
    Exercise(
        name="unfold_features", lesson=1,
        title="Undo the fold on the CNN's output: (B*T, F) and T -> (B, T, F).",
        skeleton=_UNFOLD_SKELETON,
        hint="B is not given: it is y.shape[0] // T (integer division). Then reshape to (B, T, F).",
        reference=unfold_features, grade=_check_unfold),
)

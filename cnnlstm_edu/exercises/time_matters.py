"""Lesson 07's exercises (does time matter?): ``average_over_time``, ``shuffle_test`` and ``motion_direction``.

``average_over_time`` is the forward pass of the ``frame_average`` baseline, checked against the
per-frame CNN run on every frame, averaged over T and classified. ``shuffle_test`` measures how
much a model's answer moves when the frames are put in another order: checked on an order-blind
model (the answer must not move) and on an LSTM (it must), both in training mode with dropout,
which the test has to switch off. ``motion_direction`` reads the direction label from two
frames, as the lesson's ``direction`` task numbers them; the sign of the rows and the order of
the frames each get their own words.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..data.tasks import DIRECTIONS, opposite
from ..modes import eval_mode
from ..shapes import fold_time, unfold_time
from .core import Exercise, Wrong, call, describe_value, expect_tensor, generator, matching_slip, max_gap, seeded

__all__ = ["EXERCISES", "average_over_time", "motion_direction", "shuffle_test"]

_TOL = 1e-5


def average_over_time(cnn: nn.Module, head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """frame_average's forward: x (B, T, C, H, W) -> the CNN on every frame, averaged over T, classified: (B, K)."""
    B, T = x.shape[:2]
    frames = fold_time(x)                             # (B*T, C, H, W): one batch of every clip's frames
    feats = unfold_time(cnn(frames), steps=T)         # (B*T, F) -> (B, T, F)
    return head(feats.mean(dim=1))                    # (B, F) -> (B, K): the order of the frames is gone


def shuffle_test(model: nn.Module, x: torch.Tensor, order: torch.Tensor) -> float:
    """The largest change of model(x) (logits, eval mode) when every clip's frames are put in ``order``."""
    with eval_mode(model), torch.no_grad():           # dropout off: only the order may change the answer
        before = model(x)                             # (B, K)
        after = model(x[:, order])                    # (B, K): axis 1 is T, so each clip keeps its own frames
    return (after - before).abs().max().item()


def motion_direction(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Two frames (N, H, W) of one moving digit each -> its direction label (N,), numbered as DIRECTIONS."""
    N, H, W = first.shape
    rows = torch.arange(H, dtype=torch.float32).view(1, H, 1)
    cols = torch.arange(W, dtype=torch.float32).view(1, 1, W)

    def centre(frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frame = frame.float()
        mass = frame.sum(dim=(1, 2))                                        # (N,)
        return (frame * rows).sum(dim=(1, 2)) / mass, (frame * cols).sum(dim=(1, 2)) / mass

    (y0, x0), (y1, x1) = centre(first), centre(second)
    angle = torch.atan2(-(y1 - y0), x1 - x0)        # rows grow downwards: "up" is a smaller row
    return torch.round(angle / (math.pi / 4)).long() % 8   # 45-degree sectors, counter-clockwise from "right"


# ---------------------------------------------------------------- average_over_time

def _frame_cnn(C: int, F: int, seed: int) -> nn.Sequential:
    """A tiny per-frame CNN: (N, C, H, W) -> (N, F). Conv2d refuses a 5-D video, as a real one does."""
    return seeded(nn.Sequential(nn.Conv2d(C, F, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
                  seed, scale=0.5)


def _check_average(answer) -> str:
    for seed, (B, T, C, K) in enumerate(((3, 5, 1, 4), (2, 4, 2, 3), (4, 4, 1, 5))):
        cnn, head = _frame_cnn(C, 6, 700 + seed), seeded(nn.Linear(6, K), 710 + seed)
        x = torch.randn(B, T, C, 7, 7, generator=generator(720 + seed))
        case = f"x of shape (B={B}, T={T}, C={C}, H=7, W=7) with K={K} classes"
        with torch.no_grad():
            feats = cnn(x.reshape(B * T, C, 7, 7)).reshape(B, T, 6)        # (B, T, F)
            want = head(feats.mean(1))
        out = expect_tensor(call(answer, cnn, head, x.clone(), case=case), "What average_over_time returns")
        if tuple(out.shape) == (B, T, K):
            raise Wrong(f"On {case} you returned {tuple(out.shape)}: an answer for every frame. frame_average gives "
                        f"one answer per clip: average over the time axis (dim 1) to get (B={B}, K={K}).")
        if tuple(out.shape) != (B, K):
            raise Wrong(f"On {case} average_over_time should give (B={B}, K={K}), but yours gives {tuple(out.shape)}.")
        if max_gap(out, want) <= _TOL:
            continue
        raise Wrong(_average_feedback(out, cnn, head, x, feats, case))
    return ("Right: one CNN for every frame, its features averaged over T, then classified. Averaging per-frame "
            "logits gives the same numbers, since the classifier is linear. Either way a clip and its reversal "
            "get the same answer: the order of the frames never reaches the classifier.")


def _average_feedback(out, cnn, head, x, feats, case) -> str:
    B, T = x.shape[:2]
    with torch.no_grad():
        slips = [
            (head(feats.sum(1)),
             "you summed the frames' features instead of averaging them: the answer then grows with T, so a "
             "model trained on 6-frame clips reads a 12-frame clip as twice as sure. Use .mean(dim=1)"),
            (head(feats[:, -1]), "that is last_frame's answer: you classified the last frame only. Average the "
                                 "features of all T frames first"),
            (head(cnn(x.reshape(B * T, *x.shape[2:])).reshape(T, B, -1).mean(0)),
             f"your clips are mixed: the rows of the folded batch are (B, T), clip by clip, but you unfolded them "
             f"as (T, B), so clip 0 got rows 0, {B}, {2 * B}, ... Unfold with .reshape(B, T, F) (or unfold_time)"),
            (head(cnn(x.mean(1))),
             "you averaged the frames' pixels, then ran the CNN once: a blurred overlay of the clip. frame_average "
             "runs the CNN on every frame and averages what it says (the features), not the pixels"),
        ]
    why = matching_slip(out, slips, _TOL)
    if why:
        return f"On {case}, {why}."
    return f"On {case} your logits differ from frame_average's by up to {max_gap(out, head(feats.mean(1))):.3g}."


# ---------------------------------------------------------------- shuffle_test

class _OrderBlind(nn.Module):
    """Frame features averaged over time: no order. Dropout makes two training-mode calls differ."""

    def __init__(self, F: int, K: int, seed: int) -> None:
        super().__init__()
        self.frame, self.dropout, self.head = nn.Linear(F, 6), nn.Dropout(0.5), nn.Linear(6, K)
        seeded(self, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:                  # x: (B, T, F)
        return self.head(self.dropout(self.frame(x).tanh().mean(dim=1)))  # (B, K)


class _Recurrent(nn.Module):
    """An LSTM read after the last frame: the order matters."""

    def __init__(self, F: int, K: int, seed: int) -> None:
        super().__init__()
        self.lstm, self.dropout, self.head = nn.LSTM(F, 6, batch_first=True), nn.Dropout(0.5), nn.Linear(6, K)
        seeded(self, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:                  # x: (B, T, F)
        return self.head(self.dropout(self.lstm(x)[0][:, -1]))          # (B, K)


def _as_number(value, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    hint = " (a tensor: reduce it to one number, .abs().max().item())" if isinstance(value, torch.Tensor) else ""
    raise Wrong(f"{what} should be one number, the largest change, but it is {describe_value(value)}{hint}.")


def _check_shuffle(answer) -> str:
    # B > T, B == T (where x[order] reorders the clips without an error) and B < T.
    for seed, (B, T) in enumerate(((5, 3), (4, 4), (2, 6))):
        order = torch.randperm(T, generator=generator(730 + seed))
        x = torch.randn(B, T, 4, generator=generator(740 + seed))
        for model in (_OrderBlind(4, 3, 750 + seed), _Recurrent(4, 3, 760 + seed)):
            blind = isinstance(model, _OrderBlind)
            case = f"{'an order-blind model' if blind else 'an LSTM'} and x of shape (B={B}, T={T}, F=4)"
            with torch.no_grad(), eval_mode(model):
                want = (model(x[:, order]) - model(x)).abs().max().item()
                clips_moved = (model(x[order]) - model(x)).abs().max().item() if B == T else None
            got = _as_number(call(answer, model, x.clone(), order.clone(), case=case, on_error=_clip_axis_hint),
                             "What shuffle_test returns")
            if not model.training:
                raise Wrong(f"On {case} your test left the model in eval mode. Switch dropout off for the test and "
                            "back on after it: `with eval_mode(model):` (cnnlstm_edu.modes) restores the mode it "
                            "found.")
            if abs(got - want) <= _TOL:
                continue
            if blind and got > _TOL and want <= _TOL and clips_moved is None:
                raise Wrong(f"On {case} your test says the order changed the answer by {got:.3g}, but this model "
                            "averages over time and cannot see the order: dropout was on, so two calls drop different "
                            "units. Run both calls in eval mode (`with eval_mode(model):`).")
            if clips_moved is not None and abs(got - clips_moved) <= _TOL:
                raise Wrong(f"On {case} you reordered the clips, x[order]: axis 0 is B. Reorder the frames of every "
                            "clip, along axis 1: x[:, order].")
            raise Wrong(f"On {case} the largest change is {want:.3g}; your test says {got:.3g}.")
    return ("Right: the order-blind model's answer does not move when its frames are shuffled, the LSTM's does. A "
            "shuffle test is the quickest way to ask any trained model whether it uses the order of the frames.")


def _clip_axis_hint(error: BaseException) -> str | None:
    text = str(error)
    if (isinstance(error, IndexError) and "out of bounds" in text) or "non-singleton dimension 0" in text:
        return ("x[order] reorders the clips (axis 0 is B), not the frames: here B and T differ, so the clips "
                "no longer line up with model(x)'s. Reorder the frames of every clip, along axis 1: x[:, order].")
    return None


# ---------------------------------------------------------------- motion_direction

def _moving_pairs(seed: int, size: int, speed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One random 4x4 blob per direction, twice, away from the edges: frames (16, size, size) x 2, labels (16,)."""
    g = generator(seed)
    labels = torch.arange(16) % 8
    first, second = torch.zeros(16, size, size), torch.zeros(16, size, size)
    steps = {k: (round(-math.sin(k * math.pi / 4)), round(math.cos(k * math.pi / 4))) for k in range(8)}  # (dy, dx)
    for n, k in enumerate(labels.tolist()):
        blob = torch.rand(4, 4, generator=g) + 0.2
        r, c = (int(v) for v in torch.randint(speed, size - 4 - speed, (2,), generator=g))
        dy, dx = steps[k]
        first[n, r:r + 4, c:c + 4] = blob
        second[n, r + speed * dy:r + speed * dy + 4, c + speed * dx:c + speed * dx + 4] = blob
    return first, second, labels


def _check_direction(answer) -> str:
    for seed, (size, speed) in enumerate(((12, 1), (17, 2))):
        first, second, labels = _moving_pairs(770 + seed, size, speed)
        case = f"16 pairs of {size}x{size} frames, a blob moving {speed} px per frame"
        out = expect_tensor(call(answer, first.clone(), second.clone(), case=case), "What motion_direction returns")
        if tuple(out.shape) != (16,):
            raise Wrong(f"On {case} motion_direction should give one label per pair, shape (16,), but yours gives "
                        f"{tuple(out.shape)}.")
        if out.is_floating_point() or out.dtype == torch.bool:
            raise Wrong(f"On {case} your labels are {out.dtype}: a label is a whole number 0..7. Round the angle to "
                        "the nearest multiple of 45 degrees, then .long() % 8.")
        if torch.equal(out, labels):
            continue
        raise Wrong(_direction_feedback(out, labels, case))
    return ("Right: two frames are enough. One frame shows where the digit is, which says nothing about where it is "
            "going; the difference between two frames is the motion. That is what conv3d's 3-frame kernels and "
            "the LSTM's state give a model, and what frame_average and last_frame never see.")


def _direction_feedback(out: torch.Tensor, labels: torch.Tensor, case: str) -> str:
    named = lambda k: DIRECTIONS[int(k)]  # noqa: E731
    slips = [
        (torch.tensor([opposite(k) for k in labels.tolist()]),
         "every label is the opposite direction: you took first minus second. The motion is where the digit is now "
         "minus where it was: second - first"),
        ((8 - labels) % 8,
         "up and down are swapped (up-right came out as down-right): rows grow downwards, so moving up makes the row "
         "smaller. Use -(row difference) as the upward component"),
        ((2 - labels) % 8,
         "x and y are swapped (right came out as up): atan2 takes (y, x), the upward component first"),
    ]
    why = matching_slip(out, slips, tol=0)
    if why:
        return f"On {case}, {why}."
    n = int((out != labels).nonzero()[0, 0])
    return (f"On {case} pair {n} moves {named(labels[n])} (label {int(labels[n])}), but you said "
            f"{int(out[n])}" + (f" ({named(out[n])})." if 0 <= int(out[n]) < 8 else "."))


_AVERAGE_SKELETON = '''\
def average_over_time(cnn, head, x):
    """frame_average's forward pass: x (B, T, C, H, W) -> logits (B, K).
    `cnn` maps frames (N, C, H, W) to features (N, F); `head` maps (B, F) to (B, K).
    Run the CNN on every frame, average the features over time, classify."""
    ...  # your code here'''

_SHUFFLE_SKELETON = '''\
def shuffle_test(model, x, order):
    """How much does `model`'s answer move when the frames are reordered?
    x is (B, T, F); `order` is a permutation of range(T). Put every clip's frames in `order`,
    and return the largest absolute change of the logits, as a float.
    The model arrives in training mode (with dropout): test it in eval mode, and leave it as it was."""
    ...  # your code here'''

_DIRECTION_SKELETON = '''\
def motion_direction(first, second):
    """Two frames (N, H, W), one moving digit in each pair, -> the direction label (N,) of its motion:
    0 right, 1 up-right, 2 up, 3 up-left, 4 left, 5 down-left, 6 down, 7 down-right
    (counter-clockwise from "right", as DIRECTIONS)."""
    ...  # your code here'''

EXERCISES = (
    Exercise(
        name="average_over_time", lesson=7,
        title="Write frame_average's forward pass: the CNN on every frame, its features averaged over time, "
              "classified.",
        skeleton=_AVERAGE_SKELETON,
        hint="Fold time into the batch for the CNN (fold_time, or x.flatten(0, 1)), unfold its output to (B, T, F), "
             "then .mean(dim=1) and the head.",
        reference=average_over_time, grade=_check_average),
    Exercise(
        name="shuffle_test", lesson=7,
        title="Shuffle the frames and measure how far a model's answer moves: does it use the order at all?",
        skeleton=_SHUFFLE_SKELETON,
        hint="x[:, order] reorders the time axis. Compare model(x) with model(x[:, order]) inside "
             "`with eval_mode(model), torch.no_grad():` (from cnnlstm_edu.modes import eval_mode).",
        reference=shuffle_test, grade=_check_shuffle),
    Exercise(
        name="motion_direction", lesson=7,
        title="Read the direction of motion from two frames: what no single frame can tell.",
        skeleton=_DIRECTION_SKELETON,
        hint="Find the digit's centre in each frame (the mean row and column, weighted by the pixels). The step "
             "between the centres gives an angle: torch.atan2(up, right), with up = -(row difference). "
             "Round it to a multiple of 45 degrees.",
        reference=motion_direction, grade=_check_direction),
)

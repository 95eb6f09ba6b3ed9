"""Lesson 09's exercises on real clips: ``sample_frames``, ``last_valid`` and ``freeze_encoder``.

- ``sample_frames`` is :func:`cnnlstm_edu.data.clips.sample_indices` with the loop rule: T frame
  indices spread uniformly over a clip, its first and last frame kept, a short clip played again.
- ``last_valid`` reads each padded clip's output at its own last real frame: checked on a real
  ``nn.LSTM``'s outputs, where it equals ``h_n`` of the packed sequence.
- ``freeze_encoder`` is seed 002's Keras ``trainable = False`` in PyTorch: no parameter learns,
  and BatchNorm keeps the statistics it was trained with.

Each check recomputes the classic slips (the pad rule or a frozen last frame instead of a loop, a
last index past the end, step T-1 for every clip, ``requires_grad`` set on the module) and names
the one that matches.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from .core import Exercise, Wrong, call, describe_value, expect_tensor, generator, max_gap, seeded

__all__ = ["EXERCISES", "freeze_encoder", "last_valid", "sample_frames"]


def sample_frames(available: int, T: int) -> list[int]:
    """T frame indices of a clip of ``available`` frames: uniform, first and last kept; shorter clips loop."""
    if available < T:
        return [t % available for t in range(T)]                        # play it again from the start
    return [round(t * (available - 1) / (T - 1)) for t in range(T)]     # the nearest frame to each position


def last_valid(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """outputs (B, T, H) of padded clips and their real lengths (B,) -> each clip's last real output (B, H)."""
    B = outputs.shape[0]
    return outputs[torch.arange(B), lengths - 1]                        # (B, H): clip b at step lengths[b] - 1


def freeze_encoder(encoder: nn.Module) -> nn.Module:
    """Freeze a frame CNN as Keras' trainable = False does, and return it."""
    encoder.requires_grad_(False)        # no gradient: the optimizer leaves every weight as it is
    encoder.eval()                       # BatchNorm runs on (and keeps) its running statistics
    return encoder


# ---------------------------------------------------------------- sample_frames

# (available, T): longer clips first, then one exactly T long, then the short ones that loop.
_SAMPLE_CASES = ((100, 8), (10, 4), (31, 16), (9, 2), (7, 7), (3, 5), (2, 7))


def _as_indices(got, case: str) -> list:
    """The answer as a list of Python numbers, or Wrong saying what it is instead."""
    if isinstance(got, torch.Tensor) or type(got).__module__ == "numpy":
        got = got.tolist() if getattr(got, "ndim", 1) == 1 else got
    if not isinstance(got, (list, tuple, range)):
        raise Wrong(f"sample_frames should return a list of frame indices, but on {case} it returned "
                    f"{describe_value(got)}.")
    values = [v.item() if isinstance(v, torch.Tensor) and v.dim() == 0 else v for v in got]
    odd = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Real)]
    if odd:
        raise Wrong(f"On {case} your list holds {describe_value(odd[0])}: each entry should be one frame "
                    "index, an int.")
    values = [int(v) if isinstance(v, numbers.Integral) else v for v in values]    # numpy's ints too
    floats = [float(v) for v in values if not isinstance(v, int)]
    if floats and any(v != int(v) for v in floats):
        raise Wrong(f"On {case} your indices include {next(v for v in floats if v != int(v))}: a position between "
                    "two frames. Round each position to the nearest frame: round(t * (available - 1) / (T - 1)).")
    if floats:
        raise Wrong(f"On {case} your indices are floats ({floats[0]!r}, ...): a frame index must be an int (a "
                    "tensor can't be indexed with 2.0). int(round(x)), or .round().astype(int) on a numpy array.")
    return values


def _check_sample(answer) -> str:
    for available, T in _SAMPLE_CASES:
        case = f"a clip of {available} frames, T={T}"
        got = _as_indices(call(answer, available, T, case=case, on_error=_zero_step_hint), case)
        if available < T:
            _judge_short(got, available, T, case)
        else:
            _judge_long(got, available, T, case)
    return ("Right: a long clip is sampled at the nearest frame to each of T evenly spaced positions, first and "
            "last frame included, and a short one plays again from its start. That is video_folder's "
            "short='loop'; with short='pad' a short clip is kept once and its length goes to the mask.")


def _judge_long(got: list, available: int, T: int, case: str) -> None:
    exact = [t * (available - 1) / (T - 1) for t in range(T)]          # the evenly spaced positions
    if len(got) != T:
        stepped = len(range(0, available, max(1, available // T)))
        why = (f" A fixed step of available // T = {available // T} fits {stepped} indices into {available} "
               "frames, not T: the spacing is (available - 1) / (T - 1), a fraction, rounded at each index."
               if len(got) == stepped else "")
        raise Wrong(f"On {case} sample_frames should give T={T} indices, but yours gives {len(got)}.{why}")
    if max(got) >= available or min(got) < 0:
        bad = max(got) if max(got) >= available else min(got)
        raise Wrong(f"On {case} your index {bad} is not a frame: a clip of {available} frames has frames 0.."
                    f"{available - 1}. Spread the T positions over 0..available - 1, both ends included.")
    if got[-1] != available - 1:
        no_end = [math.floor(t * available / T) for t in range(T)]
        why = (" You spaced them by available / T, as if a frame after the last one existed (linspace with "
               "endpoint=False): the spacing that keeps both ends is (available - 1) / (T - 1)."
               if got == no_end else "")
        raise Wrong(f"On {case} your last index is {got[-1]}, so the clip's last frame ({available - 1}) is never "
                    f"seen: how a motion ends is often what tells it apart.{why}")
    for t, (g, x) in enumerate(zip(got, exact)):
        if abs(g - x) > 0.5 + 1e-9:
            floor = got == [math.floor(v + 1e-9) for v in exact]
            why = (" You rounded every position down (int() truncates): take the nearest frame, round()."
                   if floor else f" The nearest frame to that position is {round(x)}.")
            raise Wrong(f"On {case} index {t} is {g}, but evenly spaced positions put it at "
                        f"{t} x ({available} - 1) / ({T} - 1) = {x:.2f}.{why}")


def _judge_short(got: list, available: int, T: int, case: str) -> None:
    want = [t % available for t in range(T)]
    if got == want:
        return
    if got == list(range(available)):
        raise Wrong(f"On {case} you kept the clip once, {available} indices: that is the pad rule (short='pad', "
                    f"with a mask). This exercise asks for the loop rule: T={T} indices, the clip played again "
                    "from its start, t % available.")
    if len(got) == T and got == [min(t, available - 1) for t in range(T)]:
        raise Wrong(f"On {case} your clip stops on its last frame and stays there ({got}): a frozen picture "
                    "says the motion stopped. The loop rule plays it again from the start: t % available.")
    if len(got) == T and got == sorted(got) and set(got) == set(range(available)):
        raise Wrong(f"On {case} you stretched the clip ({got}: each frame repeated, slow motion), which changes "
                    "its speed. The loop rule plays it again at its own speed: t % available.")
    if len(got) != T:
        raise Wrong(f"On {case} sample_frames should give T={T} indices, but yours gives {len(got)}.")
    raise Wrong(f"On {case} you gave {got}; a clip shorter than T loops: {want}.")


def _zero_step_hint(error: BaseException) -> str | None:
    if isinstance(error, (ZeroDivisionError, ValueError)) and ("zero" in str(error) or "step" in str(error)):
        return ("On a clip shorter than T, available // T is 0. Handle that case first: "
                "if available < T, loop the clip with t % available.")
    return None


# ---------------------------------------------------------------- last_valid

# (B, T, H, lengths): the first case has a full-length clip, so an index of `lengths` runs past the end.
_LAST_CASES = ((3, 5, 4, (5, 2, 3)), (4, 6, 3, (1, 6, 4, 2)), (2, 3, 5, (2, 3)))


def _lstm_outputs(seed: int, B: int, T: int, H: int, lengths: torch.Tensor):
    """A seeded nn.LSTM over padded clips: its output at every step, and h_n of the packed sequence."""
    lstm = seeded(nn.LSTM(3, H, batch_first=True), 900 + seed, scale=0.5)
    feats = torch.randn(B, T, 3, generator=generator(910 + seed))
    for b, n in enumerate(lengths.tolist()):
        feats[b, n:] = 0.0                                      # black padding frames after the clip
    packed = nn.utils.rnn.pack_padded_sequence(feats, lengths, batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        outputs = lstm(feats)[0]                                # (B, T, H): the padding read too
        h_n = lstm(packed)[1][0][-1]                            # (B, H): each clip's own last frame
    return outputs, h_n


def _check_last(answer) -> str:
    for seed, (B, T, H, lengths) in enumerate(_LAST_CASES):
        lengths = torch.tensor(lengths)
        outputs, want = _lstm_outputs(seed, B, T, H, lengths)
        case = f"outputs of shape (B={B}, T={T}, H={H}), lengths {lengths.tolist()}"
        got = call(answer, outputs.clone(), lengths.clone(), case=case,
                   on_error=lambda e, T=T: _past_end_hint(e, T))
        got = expect_tensor(got, "What last_valid returns")
        if tuple(got.shape) == (B, B, H):
            raise Wrong(f"On {case} you returned {tuple(got.shape)}: outputs[:, lengths - 1] takes every listed step "
                        "from every clip. Pair clip b with its own length: outputs[torch.arange(B), lengths - 1].")
        if tuple(got.shape) == (B, 1, H):
            raise Wrong(f"On {case} you returned {tuple(got.shape)}: drop the step axis, (B={B}, H={H}).")
        if tuple(got.shape) != (B, H):
            raise Wrong(f"On {case} last_valid should give one vector per clip, (B={B}, H={H}), but yours gives "
                        f"{tuple(got.shape)}.")
        if max_gap(got, want) <= 1e-6:
            continue
        short = int(lengths.argmin())
        if max_gap(got, outputs[:, -1]) <= 1e-6:
            raise Wrong(f"On {case} you took step T-1 for every clip: for clip {short}, {int(lengths[short])} "
                        f"frames long, that is the state after {T - int(lengths[short])} black padding frames. "
                        "Each clip's last real frame is at index lengths[b] - 1.")
        early = outputs[torch.arange(B), (lengths - 2).clamp(min=0)]
        if max_gap(got, early) <= 1e-6:
            raise Wrong(f"On {case} you are one step early: a clip of n frames has its last real frame at index "
                        "n - 1, and you took n - 2.")
        mask = (torch.arange(T)[None, :] < lengths[:, None]).unsqueeze(-1)          # (B, T, 1)
        mean = (outputs * mask).sum(1) / lengths[:, None]
        if max_gap(got, mean) <= 1e-5:
            raise Wrong(f"On {case} you averaged the real steps. The classifier reads the state after the clip's "
                        "last real frame, which already holds everything before it: outputs[b, lengths[b] - 1].")
        raise Wrong(f"On {case} your vectors differ from each clip's output at its last real frame by up to "
                    f"{max_gap(got, want):.3g}.")
    return ("Right: on hidden LSTM outputs your vectors are each clip's state after its own last frame, exactly "
            "h_n of pack_padded_sequence, which CNNLSTM(x, lengths=...) reads. The padding never counts.")


def _past_end_hint(error: BaseException, T: int) -> str | None:
    if isinstance(error, IndexError) and f"index {T} is out of bounds" in str(error):
        return (f"A clip as long as the batch (T={T} frames) has its last frame at index {T - 1}: lengths count "
                "frames from 1, indices from 0. Take lengths - 1.")
    return None


# ---------------------------------------------------------------- freeze_encoder


def _encoders():
    """Two frame CNNs with BatchNorm, in training mode, as a fresh model's encoder is."""
    from ..models.encoders import FrameCNN

    plain = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
    return (("FrameCNN(1, (4, 8), 16)", seeded(FrameCNN(1, (4, 8), 16), 920)),
            ("Conv2d-BatchNorm2d-ReLU x 2", seeded(plain, 921)))


def _check_freeze(answer) -> str:
    for seed, (case, encoder) in enumerate(_encoders()):
        encoder.train()
        before = {name: t.detach().clone() for name, t in encoder.state_dict().items()}
        got = call(answer, encoder, case=case, grad=True)
        if got is not encoder:
            what = (f"a new {type(got).__name__}, whose weights are not the pretrained ones"
                    if isinstance(got, nn.Module) else describe_value(got))
            raise Wrong(f"freeze_encoder should freeze the encoder it is given and return it; it returned {what}.")
        learning = [name for name, p in encoder.named_parameters() if p.requires_grad]
        if len(learning) == len(list(encoder.parameters())):
            raise Wrong(_still_learning(encoder, case))
        if learning:
            norms = {name for m_name, m in encoder.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                     for name in (f"{m_name}.weight", f"{m_name}.bias")}
            why = (" They are BatchNorm's scale and shift: freeze every parameter, encoder.requires_grad_(False)."
                   if set(learning) <= norms else "")
            raise Wrong(f"On {case} these parameters still learn: {', '.join(learning)}.{why}")
        changed = [name for name, t in encoder.state_dict().items() if not torch.equal(t, before[name])]
        if changed:
            raise Wrong(f"On {case} freezing changed {changed[0]}: a frozen encoder keeps the weights it was given.")
        with torch.no_grad():
            encoder(torch.rand(4, 1, 16, 16, generator=generator(930 + seed)) * 3)     # a training batch
        moved = [name for name, t in encoder.state_dict().items() if not torch.equal(t, before[name])]
        if moved:
            raise Wrong(f"On {case} no weight learns, but one training batch moved {moved[0]}: BatchNorm is still in "
                        "training mode and updates its running statistics on every batch, so the 'frozen' features "
                        "drift. A frozen Keras layer runs in inference mode: call encoder.eval() too.")
    return ("Right: no parameter gets a gradient and BatchNorm keeps its statistics. Mind model.train(): it puts "
            "every submodule back in training mode; CNNLSTM(trainable=False) overrides train() to keep the "
            "frozen encoder in eval mode, as Keras does.")


def _still_learning(encoder: nn.Module, case: str) -> str:
    if getattr(encoder, "requires_grad", None) is False:
        return (f"On {case} every parameter still requires grad. encoder.requires_grad = False only adds an "
                "attribute to the module, which nothing reads: the flag lives on each parameter. Call "
                "encoder.requires_grad_(False) (with the underscore), or set p.requires_grad = False for each "
                "p in encoder.parameters().")
    if not encoder.training:
        return (f"On {case} every parameter still requires grad: eval() changes how BatchNorm and Dropout run, "
                "not what learns, so the optimizer would still move every weight. Add "
                "encoder.requires_grad_(False).")
    return (f"On {case} every parameter still requires grad, so the optimizer would move them all. "
            "encoder.requires_grad_(False) switches them off.")


_SAMPLE_SKELETON = '''\
def sample_frames(available, T):
    """The indices of T frames to keep from a clip of `available` frames (T >= 2):
    spread evenly from the first frame to the last (both kept), each the nearest whole frame.
    A clip shorter than T loops: after its last frame it plays again from frame 0.
    Return a list of T ints."""
    ...  # your code here'''

_LAST_SKELETON = '''\
def last_valid(outputs, lengths):
    """outputs (B, T, H): an LSTM's output at every step of B clips padded to T frames;
    lengths (B,): how many frames of each clip are real (1..T).
    Return (B, H): each clip's output at its own last real frame."""
    ...  # your code here'''

_FREEZE_SKELETON = '''\
def freeze_encoder(encoder):
    """Freeze the frame CNN `encoder` (an nn.Module with BatchNorm) as Keras'
    trainable = False does: no parameter learns, and BatchNorm keeps the running
    statistics it was trained with. Return the encoder."""
    ...  # your code here'''

EXERCISES = (
    Exercise(
        name="sample_frames", lesson=9,
        title="Pick T frames of a clip: evenly spaced, first and last kept; a clip shorter than T loops.",
        skeleton=_SAMPLE_SKELETON,
        hint=("Frame t of T sits at position t * (available - 1) / (T - 1): 0 for the first, available - 1 for the "
              "last. round() it to the nearest frame. If available < T, return [t % available for t in range(T)]."),
        reference=sample_frames, grade=_check_sample),
    Exercise(
        name="last_valid", lesson=9,
        title="Read each padded clip's output at its own last real frame, not at step T-1.",
        skeleton=_LAST_SKELETON,
        hint=("Index two axes at once with two tensors of B entries: clip b and step lengths[b] - 1, "
              "outputs[torch.arange(B), lengths - 1]."),
        reference=last_valid, grade=_check_last),
    Exercise(
        name="freeze_encoder", lesson=9,
        title="Freeze a pretrained frame CNN, Keras' trainable = False in PyTorch: nothing learns, BatchNorm stays put.",
        skeleton=_FREEZE_SKELETON,
        hint=("Two lines: encoder.requires_grad_(False) turns off every parameter's gradient, and encoder.eval() "
              "makes BatchNorm use its running statistics instead of updating them. Then return encoder."),
        reference=freeze_encoder, grade=_check_freeze),
)

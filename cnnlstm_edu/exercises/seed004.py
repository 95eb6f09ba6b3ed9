"""Lesson 01's ``fix_seed004``: rebuild seed 004's Keras model so that it keeps the time axis.

Seed 004 (a Stack Overflow question) feeds MNIST quadrant clips ``(N, 4, 1, 56, 14)`` to
``Conv2D(32) -> Conv2D(32) -> MaxPool -> Reshape -> Dropout -> LSTM(5) -> Dense(50) -> Dense(10)``.
Its conv layers were built for one frame ``(1, 56, 14)``, so the model had no time axis at all:
each reshape it tried either did not fit the (32, 26, 5) map or handed the LSTM a 2-D tensor
("expected ndim=3, found ndim=2"). The answer it was given, and this exercise's: run the CNN on
every frame (TimeDistributed), then the LSTM over the T feature vectors.

The check trains nothing. It runs the learner's model in eval mode on hidden clips and watches
its layers with forward hooks: the first Conv2d must see single frames ``(N, 1, 56, 14)``, the
recurrent layer must step through T steps, a clip's logits must not depend on the other clips
of the batch, every frame must count, and clips of other lengths must work too.
"""

from __future__ import annotations

import torch
from torch import nn

from ..axes import recurrent_contract
from ..layers import TimeDistributed
from ..modes import eval_mode
from .core import Exercise, NotAnswered, Wrong, call, describe_value, generator, max_gap

__all__ = ["EXERCISES", "Seed004Fixed"]

FRAME = (1, 56, 14)       # seed 004's frame: the four 14x14 quadrant sequences stacked along the height
CLASSES = 10
SEED_FEATURES = 32 * 26 * 5  # its conv map per frame: (32, 26, 5) after two valid 3x3 convs and a 2x2 pool


class Seed004Fixed(nn.Module):
    """Seed 004's layers, with the CNN applied to each frame and the LSTM over time."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn = TimeDistributed(nn.Sequential(          # one CNN, every frame
            nn.Conv2d(1, 32, kernel_size=3), nn.ReLU(),    # "valid": (32, 54, 12)
            nn.Conv2d(32, 32, kernel_size=3), nn.ReLU(),   # (32, 52, 10)
            nn.MaxPool2d(2),                               # (32, 26, 5): the map seed 004 found
            nn.Flatten(),                                  # 4160 features per frame, T kept apart
        ))
        self.dropout = nn.Dropout(0.25)
        self.lstm = nn.LSTM(32 * 26 * 5, 5, batch_first=True)
        self.dense = nn.Linear(5, 50)
        self.classify = nn.Linear(50, 10)                  # logits: CrossEntropyLoss applies the softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T = x.shape[:2]                                 # (B, T, 1, 56, 14)
        feats = self.cnn(x)                                # (B, T, 4160)
        out, _ = self.lstm(self.dropout(feats))            # (B, T, 5)
        return self.classify(self.dense(out[:, -1]))       # (B, 10): read after the last frame


def _as_model(answer) -> nn.Module:
    if answer is None or answer is Ellipsis:
        raise NotAnswered("no model yet")
    if isinstance(answer, type) and issubclass(answer, nn.Module):
        answer = call(answer, case="building your model with no arguments")
    if not isinstance(answer, nn.Module):
        raise Wrong(f"fix_seed004 expects an nn.Module (or its class), but got {describe_value(answer)}.")
    return answer


class _Watch:
    """Forward hooks on every layer of a model: which Conv2d and recurrent layers saw which inputs."""

    def __init__(self, model: nn.Module) -> None:
        self.convs, self.recurrent = [], []
        self.handles = []
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                self.handles.append(module.register_forward_hook(self._record(self.convs)))
            elif recurrent_contract(module) is not None:
                self.handles.append(module.register_forward_hook(self._record(self.recurrent)))

    @staticmethod
    def _record(calls: list):
        def hook(module, inputs, output):
            if inputs and isinstance(inputs[0], torch.Tensor):
                calls.append((module, tuple(inputs[0].shape)))
        return hook

    def __enter__(self) -> "_Watch":
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()


def _logits(model: nn.Module, x: torch.Tensor, case: str, on_error=lambda error: None) -> torch.Tensor:
    out = call(model, x, case=case, on_error=on_error)
    B = x.shape[0]
    T = x.shape[1]
    if not isinstance(out, torch.Tensor):
        raise Wrong(f"On {case} your model returned {describe_value(out)}; it should return the logits, "
                    f"a tensor of shape (B={B}, {CLASSES}).")
    got = tuple(out.shape)
    if got == (B, CLASSES):
        return out
    if got == (B * T, CLASSES):
        raise Wrong(f"On {case} your model returns {got}: one row per frame, B*T = {B * T}. The frames are "
                    f"still folded: unfold to (B, T, F) before the LSTM, and classify each clip once.")
    if got == (B, T, CLASSES):
        raise Wrong(f"On {case} your model returns {got}: logits after every frame. The answer is the "
                    "belief after the last one: use the LSTM's output at the last step, out[:, -1].")
    raise Wrong(f"On {case} your model should return (B={B}, {CLASSES}) logits, but it returns {got}.")


def _check_layers(watch: _Watch, B: int, T: int) -> str:
    if not watch.convs:
        raise Wrong("Your model has no Conv2d that the clip went through: seed 004's model runs two 3x3 "
                    "convolutions on every frame before the LSTM.")
    first, shape = watch.convs[0]
    first_calls = [s for m, s in watch.convs if m is first]
    frames = sum(s[0] for s in first_calls)
    if len(shape) == 4 and shape[1] == T and shape[1] != FRAME[0]:
        raise Wrong(f"Your first Conv2d takes {shape}: the {T} frames arrive as {T} input channels "
                    f"(in_channels={first.in_channels}). That mixes time in the very first layer, so the LSTM "
                    "gets nothing to step through. Seed 004's conv takes one frame (1, 56, 14): fold time "
                    "into the batch (TimeDistributed) and keep in_channels=1.")
    if len(shape) != 4 or shape[1:] != FRAME or frames != B * T:
        raise Wrong(f"Your first Conv2d saw {', '.join(map(str, first_calls))}; a per-frame CNN sees each of "
                    f"the B*T = {B * T} frames as (1, 56, 14): all at once (fold, ({B * T}, 1, 56, 14)) or "
                    f"one step at a time (loop, {T} calls of ({B}, 1, 56, 14)).")
    if not watch.recurrent:
        raise Wrong("Your model has no recurrent layer that the clip went through (nn.LSTM, nn.GRU, nn.RNN, "
                    "a cell...): seed 004's LSTM(5) is what reads the frames in order.")
    layer, seen = watch.recurrent[0]
    if recurrent_contract(layer).sequence:
        return _sequence_steps(layer, seen, B, T)
    steps = sum(1 for m, _ in watch.recurrent if m is layer)
    if steps != T:
        raise Wrong(f"Your {type(layer).__name__} was called {steps} times for T = {T} frames: a cell takes one "
                    "step per frame.")
    return f"{type(layer).__name__}, {T} steps of {seen[-1]} features"


def _sequence_steps(layer: nn.Module, seen: tuple, B: int, T: int) -> str:
    name = type(layer).__name__
    if len(seen) == 2:
        raise Wrong(f"Your {name} got a 2-D tensor {seen}: PyTorch reads that as ONE unbatched sequence of "
                    f"{seen[0]} steps, so your {B} clips became time steps of one clip (Keras refused this "
                    "with 'expected ndim=3, found ndim=2'). Give it (B, T, F): the features of each frame, "
                    "one step per frame.")
    steps = seen[1] if getattr(layer, "batch_first", True) else seen[0]
    if steps == 1 and T > 1:
        raise Wrong(f"Your {name} consumed 1 step of {seen[-1]} features: you flattened the {T} frames into "
                    f"the features, so there is no sequence left to read, and which frame came first is left to a "
                    "dense layer's weights. Keep T as its own axis: (B, T, F), F features per frame.")
    if steps != T:
        raise Wrong(f"Your {name} stepped through {steps} steps, got {seen}; the clip has T = {T} frames, "
                    f"so it should step {T} times, one per frame.")
    return f"{name}, {T} steps of {seen[-1]} features"


def _fixed_length(error: BaseException, T: int, other: int) -> str:
    """Feedback for a model that runs on 4-frame clips and fails on others."""
    return (f"Your model works on clips of T={T} frames only; this one has {other}. Somewhere the {T} is written "
            f"in (a reshape to (B, {T}, ...), a Linear sized for {T} frames): read it from the input, "
            "B, T = x.shape[:2]. The LSTM itself takes any number of steps.")


def _check_clips_apart(model: nn.Module, x: torch.Tensor, logits: torch.Tensor) -> None:
    """A clip's logits are the same alone and in a batch in another order: the clips never mix."""
    B, T = x.shape[:2]
    alone = _logits(model, x[:1], f"clip 0 alone, (B=1, T={T}, C=1, H=56, W=14)")[0]
    flipped = _logits(model, x.flip(0), f"the same {B} clips in reverse order").flip(0)
    for where, got, want in (("alone", alone, logits[0]), ("in another order", flipped, logits)):
        if max_gap(got, want) > 1e-4:
            raise Wrong(
                f"The logits of a clip change when it comes {where} (by up to {max_gap(got, want):.3g}): your "
                "model mixes the clips of a batch. Usually a reshape that reads the folded rows in (T, B) order, "
                "or a flatten from axis 0. Each clip must be classified from its own frames only.")


def _check_every_frame(model: nn.Module, clip: torch.Tensor, g: torch.Generator) -> None:
    """Changing any one frame of a clip changes its logits: the model reads every frame."""
    T = clip.shape[1]
    changed = clip.repeat(T + 1, 1, 1, 1, 1)         # (T+1, T, 1, 56, 14): copy t gets a new frame t, the last none
    for t in range(T):
        changed[t, t] = torch.randn(*FRAME, generator=g)
    out = _logits(model, changed, f"one clip with one frame changed, {T} ways")
    for t in range(T):
        # Compared within one batch: the same rows go through the same kernels, so an unread frame
        # changes nothing at all, while a read one moves the logits far more than rounding does.
        if max_gap(out[t], out[T]) <= 1e-6:
            raise Wrong(f"Your logits do not change when frame {t} changes: the model never looks at it. "
                        "The LSTM must read every frame's features, one step per frame, and the answer is read "
                        "after the last one.")


def _check_seed004(answer) -> str:
    model = _as_model(answer)
    g = generator(4)
    with eval_mode(model):                       # dropout off: the same clip must give the same logits
        B, T = 3, 4
        x = torch.randn(B, T, *FRAME, generator=g)
        case = f"a batch of {B} clips, (B={B}, T={T}, C=1, H=56, W=14)"
        with _Watch(model) as watch:
            logits = _logits(model, x, case)
        recurrent = _check_layers(watch, B, T)
        _check_clips_apart(model, x, logits)
        _check_every_frame(model, x[:1], g)
        for other in (2, 6):
            y = torch.randn(1, other, *FRAME, generator=g)
            _logits(model, y, f"a clip of T={other} frames, (B=1, T={other}, C=1, H=56, W=14)",
                    on_error=lambda error, other=other: _fixed_length(error, T, other))
    return (f"Right: your CNN sees each frame as (1, 56, 14), your {recurrent} (seed 004's layers give "
            f"{SEED_FEATURES} = 32 x 26 x 5), a clip's logits depend on its own {T} frames, every one of them, "
            "and clips of 2 and 6 frames work too. That is seed 004's model with its time axis kept.")


_SKELETON = '''\
class Seed004Fixed(nn.Module):
    """Seed 004's layers: Conv2d(1, 32, 3), ReLU, Conv2d(32, 32, 3), ReLU, MaxPool2d(2),
    flatten, Dropout(0.25), LSTM(5), Linear(5, 50), Linear(50, 10). Keep the time axis."""

    def __init__(self):
        super().__init__()
        ...  # your layers here

    def forward(self, x):  # x: (B, 4, 1, 56, 14)
        ...  # your code here: return (B, 10) logits'''

EXERCISES = (
    Exercise(
        name="fix_seed004", lesson=1,
        title=("Seed 004's conv layers were built for one frame, (1, 56, 14), so its model had no time axis at all: "
               "no reshape could give the LSTM a sequence. Rebuild it with the same layers so that it keeps T: "
               "(B, 4, 1, 56, 14) -> (B, 10) logits."),
        skeleton=_SKELETON,
        hint=("The conv layers take one frame, (1, 56, 14): wrap them with TimeDistributed (or fold_time and "
              "unfold_time around them). Flatten each frame's (32, 26, 5) map to 4160 features, so the LSTM "
              "gets (B, T, 4160) with batch_first=True; classify from its last step."),
        reference=Seed004Fixed, grade=_check_seed004),
)

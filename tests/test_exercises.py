"""cnnlstm_edu.exercises: every model answer passes, every classic mistake gets its own words, a skeleton
is "not answered yet", and no answer can throw a traceback out of check (issue 17)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlstm_edu import fold_time
from cnnlstm_edu.exercises import EXERCISES, Result, check, exercise, hint, names, skeleton, solution
from cnnlstm_edu.exercises.cells import lesson_cells, render_markdown
from cnnlstm_edu.layers import TimeDistributed
from cnnlstm_edu.modes import eval_mode
from test_exercises_clips import WRONG as CLIPS_WRONG  # lesson 09's mistakes, written beside its identities

# ---------------------------------------------------------------- wrong answers, one mistake each


def fold_time_major(x):
    B, T, C, H, W = x.shape
    return x.transpose(0, 1).reshape(B * T, C, H, W)


def fold_lesson_sizes(x):
    return x.view(-1, 1, 14, 14)


def lstm_tf_order(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, g, f, o = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)  # TensorFlow 1's i, j, f, o
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def lstm_one_bias(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = (x @ w_ih.T + b_ih + h @ w_hh.T).chunk(4, dim=1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def lstm_no_tanh(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c, c


def lstm_swapped_return(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return c, o.sigmoid() * c.tanh()


def lstm_untransposed(x, h, c, w_ih, w_hh, b_ih, b_hh):
    return x @ w_ih, c


def _frame_cnn() -> nn.Sequential:
    """A small per-frame CNN: (N, 1, 56, 14) -> (N, 8)."""
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


class TimeAsChannels(nn.Module):
    """The four frames as four input channels: early fusion, no sequence left."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3)
        self.lstm = nn.LSTM(8, 5, batch_first=True)
        self.head = nn.Linear(5, 10)

    def forward(self, x):
        feats = self.conv(x.squeeze(2)).mean(dim=(2, 3))        # (B, 8)
        return self.head(self.lstm(feats.unsqueeze(1))[0][:, -1])


class TimeIntoFeatures(nn.Module):
    """A per-frame CNN, then all T frames' features as one step."""

    def __init__(self):
        super().__init__()
        self.cnn = _frame_cnn()
        self.lstm = nn.LSTM(32, 5, batch_first=True)
        self.head = nn.Linear(5, 10)

    def forward(self, x):
        B, T = x.shape[:2]
        feats = self.cnn(fold_time(x)).reshape(B, 1, T * 8)      # (B, 1, T*F)
        return self.head(self.lstm(feats)[0][:, -1])


class SeedAsWritten(nn.Module):
    """Seed 004's model as the question wrote it: a frame CNN fed the whole video."""

    def __init__(self):
        super().__init__()
        self.cnn = _frame_cnn()
        self.lstm = nn.LSTM(8, 5)
        self.head = nn.Linear(5, 10)

    def forward(self, x):
        return self.head(self.lstm(self.cnn(x))[0])


class UnbatchedLSTM(nn.Module):
    """Features of the whole clip flattened to (B, T*F): nn.LSTM reads that as one unbatched sequence."""

    def __init__(self):
        super().__init__()
        self.cnn = _frame_cnn()
        self.lstm = nn.LSTM(32, 5)
        self.head = nn.Linear(5, 10)

    def forward(self, x):
        B, T = x.shape[:2]
        return self.head(self.lstm(self.cnn(fold_time(x)).reshape(B, -1))[0])


class MixedClips(nn.Module):
    """Unfolds the folded rows in (T, B) order: right shapes, clips mixed."""

    def __init__(self):
        super().__init__()
        self.cnn = _frame_cnn()
        self.lstm = nn.LSTM(8, 5, batch_first=True)
        self.head = nn.Linear(5, 10)

    def forward(self, x):
        B, T = x.shape[:2]
        feats = self.cnn(fold_time(x)).reshape(T, B, -1).transpose(0, 1)  # (B, T, F), rows misread
        return self.head(self.lstm(feats)[0][:, -1])


class FirstStep(nn.Module):
    """Reads the LSTM after the first frame: the later frames never count."""

    def __init__(self):
        super().__init__()
        self.cnn = TimeDistributed(_frame_cnn())
        self.lstm = nn.LSTM(8, 5, batch_first=True)
        self.head = nn.Linear(5, 10)

    def forward(self, x):
        return self.head(self.lstm(self.cnn(x))[0][:, 0])


class EveryStep(FirstStep):
    """Logits after every frame, (B, T, 10)."""

    def forward(self, x):
        return self.head(self.lstm(self.cnn(x))[0])


class FourFramesOnly(FirstStep):
    """Right, but for T = 4 only: the 4 is written into the reshape."""

    def forward(self, x):
        feats = self.cnn.module(fold_time(x)).reshape(-1, 4, 8)  # (B, 4, F)
        return self.head(self.lstm(feats)[0][:, -1])


def forget_both_biases(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for k in range(lstm.num_layers):
            getattr(lstm, f"bias_ih_l{k}")[H:2 * H] = 1.0
            getattr(lstm, f"bias_hh_l{k}")[H:2 * H] = 1.0
    return lstm


def forget_input_gate(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for k in range(lstm.num_layers):
            getattr(lstm, f"bias_ih_l{k}")[:H] = 1.0
            getattr(lstm, f"bias_hh_l{k}")[:H] = 0.0
    return lstm


def forget_first_layer(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        lstm.bias_ih_l0[H:2 * H] = 1.0
        lstm.bias_hh_l0[H:2 * H] = 0.0
    return lstm


def forget_without_no_grad(lstm):
    lstm.bias_ih_l0[lstm.hidden_size:2 * lstm.hidden_size] = 1.0
    return lstm


def stream_never_reset(stream, videos):
    return torch.stack([torch.cat([stream(f.view(1, 1, -1)) for f in video], dim=1)[0] for video in videos])


def stream_reset_each_frame(stream, videos):
    outputs = []
    for video in videos:
        frames = []
        for f in video:
            stream.reset_state()
            frames.append(stream(f.view(1, 1, -1)))
        outputs.append(torch.cat(frames, dim=1)[0])
    return torch.stack(outputs)


def carry_nothing(lstm, x, chunk):
    return torch.cat([lstm(piece)[0] for piece in x.split(chunk, dim=1)], dim=1)


def carry_on_batch_axis(lstm, x, chunk):
    state, outputs = None, []
    for piece in x.split(chunk, dim=1):
        out, state = lstm(piece, state)
        outputs.append(out)
    return torch.cat(outputs, dim=0)


# lesson 07
def average_summed(cnn, head, x):
    B, T = x.shape[:2]
    return head(cnn(x.flatten(0, 1)).reshape(B, T, -1).sum(dim=1))


def average_time_major(cnn, head, x):
    B, T = x.shape[:2]
    return head(cnn(x.flatten(0, 1)).reshape(T, B, -1).mean(dim=0))


def shuffle_with_dropout_on(model, x, order):
    return (model(x[:, order]) - model(x)).abs().max().item()


def shuffle_left_in_eval(model, x, order):
    model.eval()
    return (model(x[:, order]) - model(x)).abs().max().item()


def shuffle_the_clips(model, x, order):
    with eval_mode(model):
        return (model(x[order]) - model(x)).abs().max().item()


def direction_from(first, second, *, up_sign=-1, swap=False):
    rows = torch.arange(first.shape[1]).view(1, -1, 1).float()
    cols = torch.arange(first.shape[2]).view(1, 1, -1).float()
    y0, x0 = (first * rows).sum((1, 2)) / first.sum((1, 2)), (first * cols).sum((1, 2)) / first.sum((1, 2))
    y1, x1 = (second * rows).sum((1, 2)) / second.sum((1, 2)), (second * cols).sum((1, 2)) / second.sum((1, 2))
    up, right = up_sign * (y1 - y0), x1 - x0
    angle = torch.atan2(right, up) if swap else torch.atan2(up, right)
    return torch.round(angle / (math.pi / 4)).long() % 8


# lesson 08
def iou_unclamped(a, b):
    w = torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])
    inter = w[:, 0] * w[:, 1]
    area_a, area_b = (a[:, 2:] - a[:, :2]).prod(1), (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area_a + area_b - inter)


def iou_overlap_twice(a, b):
    inter = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0).prod(1)
    return inter / ((a[:, 2:] - a[:, :2]).prod(1) + (b[:, 2:] - b[:, :2]).prod(1))


def iou_pixel_inclusive(a, b):
    inter = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2]) + 1).clamp(min=0).prod(1)
    area_a, area_b = (a[:, 2:] - a[:, :2] + 1).prod(1), (b[:, 2:] - b[:, :2] + 1).prod(1)
    return inter / (area_a + area_b - inter)


def window_unshifted(boxes, windows, size):
    return boxes * size / (windows[:, 2:] - windows[:, :2]).repeat(1, 2)


def window_scale_inverted(boxes, windows, size):
    return (boxes - windows[:, :2].repeat(1, 2)) * (windows[:, 2:] - windows[:, :2]).repeat(1, 2) / size


def window_square(boxes, windows, size):
    return (boxes - windows[:, :2].repeat(1, 2)) * size / (windows[:, 2] - windows[:, 0])[:, None]


# lesson 10
def shard_contiguous_padded(n, rank, world_size):
    per_rank = math.ceil(n / world_size)
    return (list(range(n)) * 2)[rank * per_rank:(rank + 1) * per_rank]


def sum_of_gradients(grads, counts):
    return {name: sum(g[name] for g in grads) for name in grads[0]}


def mean_of_gradients(grads, counts):
    return {name: sum(g[name] for g in grads) / len(grads) for name in grads[0]}


def weighted_over_ranks(grads, counts):
    return {name: sum(g[name] * n for g, n in zip(grads, counts)) / len(counts) for name in grads[0]}


# (exercise, wrong answer, a phrase its message must contain): two or more per exercise
WRONG = [
    ("fold_frames", fold_time_major, "Your rows are ordered (T, B); fold_time's are (B, T): frame 1 of clip 0 is "
                                     "row 1, not row 2"),
    ("fold_frames", lambda x: x[:, 0], "one frame per clip"),
    ("fold_frames", lambda x: x.reshape(-1, *x.shape[3:]), "folded the channels into the batch"),
    ("fold_frames", fold_lesson_sizes, "not the lesson's sizes"),
    ("fold_frames", lambda x: x.permute(0, 1, 3, 4, 2).reshape(-1, *x.shape[2:]), "is not any frame of x"),
    ("unfold_features", lambda y, T: y.view(y.shape[0] / T, T, -1), "y.shape[0] / T is a float (6 / 3 = 2.0"),
    ("unfold_features", lambda y, T: y.view(T, -1, y.shape[1]), "you returned (T, B, F)"),
    ("unfold_features", lambda y, T: y.view(T, -1, y.shape[1]).transpose(0, 1), "unfolding a (T, B) order"),
    ("unfold_features", lambda y, T: y.view(-1, 4, y.shape[1]), "use the T you are passed"),
    ("fix_seed004", TimeAsChannels, "the 4 frames arrive as 4 input channels"),
    ("fix_seed004", TimeIntoFeatures, "consumed 1 step of 32 features"),
    ("fix_seed004", SeedAsWritten, "A CNN never sees a video"),
    ("fix_seed004", UnbatchedLSTM, "ONE unbatched sequence of 3 steps"),
    ("fix_seed004", MixedClips, "mixes the clips of a batch"),
    ("fix_seed004", FirstStep, "do not change when frame 1 changes"),
    ("fix_seed004", EveryStep, "logits after every frame"),
    ("fix_seed004", FourFramesOnly, "T=2 frames"),
    ("fix_seed004", nn.Linear, "building your model with no arguments"),
    ("loop_frames", lambda m, x: torch.stack([m(x[:, t]) for t in range(x.shape[1])]), "you stacked on dim 0"),
    ("loop_frames", lambda m, x: torch.cat([m(x[:, t]) for t in range(x.shape[1])], dim=1), "torch.cat joined"),
    ("loop_frames", lambda m, x: torch.stack([m(x[t]) for t in range(x.shape[1])], dim=1), "x[t] is clip t"),
    ("to_batch_first", lambda x: x.view(x.shape[1], x.shape[0], -1), "view/reshape only relabels"),
    ("to_batch_first", lambda x: x.permute(2, 1, 0), "x.T reverses every axis"),
    ("quadrant_frames", lambda im: im.reshape(-1, 4, 1, 14, 14), "a reshape does not cut quadrants"),
    ("quadrant_frames", lambda im: torch.stack([im[:, :14, :14], im[:, 14:, :14], im[:, :14, 14:], im[:, 14:, 14:]],
                                               1).unsqueeze(2), "in the order 1, 3, 2, 4"),
    ("quadrant_frames", lambda im: torch.stack([im[:, :14, :14], im[:, :14, 14:], im[:, 14:, :14], im[:, 14:, 14:]],
                                               1), "no channel axis"),
    ("last_step", lambda out: out[-1], "that is the last clip"),
    ("last_step", lambda out: out[:, 0], "the first step"),
    ("last_step", lambda out: out.mean(dim=1), "you averaged over the steps"),
    ("lstm_cell_step", lstm_tf_order, "TensorFlow 1's LSTMCell order"),
    ("lstm_cell_step", lstm_one_bias, "you left out bias_hh"),
    ("lstm_cell_step", lstm_no_tanh, "your h is o * c"),
    ("lstm_cell_step", lstm_swapped_return, "You returned (c, h)"),
    ("lstm_cell_step", lstm_untransposed, "x @ weight_ih.T"),
    ("lstm_cell_step", lambda *args: args[1], "should return two tensors"),
    ("convlstm_parameters", lambda C, F, k: 4 * F * (C + F) * k * k + 4 * F, "Keras' count"),
    ("convlstm_parameters", lambda C, F, k: F * (C + F) * k * k + 2 * F, "one gate's worth"),
    ("convlstm_parameters", lambda C, F, k: 4 * F * C * k * k + 8 * F, "left out the recurrent convolution"),
    ("convlstm_parameters", lambda C, F, k: 4 * F * (C + F) + 8 * F, "a dense nn.LSTM's count"),
    ("convlstm_parameters", lambda C, F, k: 4.0 * F, "should return an int"),
    ("forget_gate_bias", forget_both_biases, "forget gate starts at 2"),
    ("forget_gate_bias", forget_input_gate, "you set the input gate's bias"),
    ("forget_gate_bias", forget_first_layer, "layer 1's biases did not change"),
    ("forget_gate_bias", forget_without_no_grad, "inside `with torch.no_grad():`"),
    ("recurrent_weights", lambda m: [n for n, _ in m.named_parameters() if "weight" in n], "catches the CNN"),
    ("recurrent_weights", lambda m: [n for n, _ in m.named_parameters() if n.startswith("rnn.")],
     "decays the weights only"),
    ("recurrent_weights", lambda m: [n for n, _ in m.named_parameters() if "weight_hh" in n],
     "hidden-to-hidden ones only"),
    ("stream_videos", stream_never_reset, "Call stream.reset_state() at the start of each video"),
    ("stream_videos", stream_reset_each_frame, "you reset between the frames of one video"),
    ("carry_state", carry_nothing, "each chunk started from zeros"),
    ("carry_state", carry_on_batch_axis, "joined on the batch axis"),
    ("average_over_time", average_summed, "you summed the frames' features"),
    ("average_over_time", average_time_major, "your clips are mixed"),
    ("average_over_time", lambda cnn, head, x: head(cnn(x[:, -1])), "that is last_frame's answer"),
    ("average_over_time", lambda cnn, head, x: head(cnn(x).mean(1)), "fold time into the batch"),
    ("average_over_time", lambda cnn, head, x: head(cnn(x.mean(1))), "you averaged the frames' pixels"),
    ("shuffle_test", shuffle_with_dropout_on, "dropout was on"),
    ("shuffle_test", shuffle_left_in_eval, "left the model in eval mode"),
    ("shuffle_test", shuffle_the_clips, "x[order] reorders the clips"),
    ("shuffle_test", lambda model, x, order: model(x[:, order]) - model(x), "should be one number"),
    ("motion_direction", lambda first, second: direction_from(second, first), "every label is the opposite"),
    ("motion_direction", lambda first, second: direction_from(first, second, up_sign=1), "up and down are swapped"),
    ("motion_direction", lambda first, second: direction_from(first, second, swap=True), "x and y are swapped"),
    ("motion_direction", lambda first, second: direction_from(first, second).float(), "a label is a whole number"),
    ("box_iou", iou_unclamped, "Clamp the overlap's width and height at 0"),
    ("box_iou", iou_overlap_twice, "counts the overlap twice"),
    ("box_iou", iou_pixel_inclusive, "inclusive pixel indices"),
    ("into_window", window_unshifted, "you scaled without shifting"),
    ("into_window", window_scale_inverted, "your scale is upside down"),
    ("into_window", window_square, "you scaled y by the window's width"),
    ("into_window", lambda boxes, windows, size: boxes - windows[:, :2].repeat(1, 2), "did not resize"),
    ("scheduled_mix", lambda truth, own, p, coin: torch.where((coin < p)[:, None], truth, own.detach()),
     "truth and own are swapped"),
    ("scheduled_mix", lambda truth, own, p, coin: torch.where(coin < p, own.detach(), truth), "mix coordinates"),
    ("scheduled_mix", lambda truth, own, p, coin: torch.where((coin < p)[:, None], own, truth), "feed own.detach()"),
    ("scheduled_mix", lambda truth, own, p, coin: p * own.detach() + (1 - p) * truth, "you blended the boxes"),
    ("shard_indices", lambda n, rank, world_size: list(range(rank, n, world_size)), "your ranks get [4, 3, 3]"),
    ("shard_indices", lambda n, rank, world_size: list(range(n // world_size * world_size))[rank::world_size],
     "drop_last=True"),
    ("shard_indices", shard_contiguous_padded, "not one contiguous block per rank"),
    ("average_gradients", mean_of_gradients, "plain mean over the ranks"),
    ("average_gradients", sum_of_gradients, "you summed the ranks' gradients"),
    ("average_gradients", weighted_over_ranks, "divided by the number of ranks"),
    ("scaled_lr", lambda lr, base, per_rank, world: lr * per_rank / base, "you scaled by the batch of one rank"),
    ("scaled_lr", lambda lr, base, per_rank, world: lr * base / (per_rank * world), "upside down"),
    ("scaled_lr", lambda lr, base, per_rank, world: lr * math.sqrt(per_rank * world / base), "square-root rule"),
] + CLIPS_WRONG


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.name)
def test_the_reference_answer_passes(ex):
    result = check(ex.name, ex.reference)
    assert result.passed and result.answered, result.message
    assert result.message.startswith("Right")


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.name)
def test_the_solution_shown_is_code_that_passes(ex):
    namespace = dict(vars(__import__(ex.reference.__module__, fromlist=["_"])))  # the module's imports
    exec(solution(ex.name), namespace)
    assert check(ex.name, namespace[ex.reference.__name__]).passed


@pytest.mark.parametrize("name, answer, phrase", WRONG, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(WRONG)])
def test_a_typical_mistake_gets_its_own_message(name, answer, phrase):
    result = check(name, answer)
    assert not result.passed and result.answered
    assert phrase in result.message, result.message
    assert "Traceback" not in result.message


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.name)
def test_each_exercise_has_two_distinct_mistake_messages(ex):
    messages = {check(name, answer).message for name, answer, _ in WRONG if name == ex.name}
    assert len(messages) >= 2


def forget_by_replacing_a_bias(lstm):
    lstm.bias_ih_l0 = nn.Parameter(torch.zeros(3))    # a new parameter of the wrong size
    return lstm


def test_an_answer_that_trips_the_comparison_itself_still_gets_feedback():
    result = check("forget_gate_bias", forget_by_replacing_a_bias)
    assert not result.passed and result.answered
    assert "could not compare (RuntimeError" in result.message


def test_the_required_time_major_feedback_names_the_rows():
    # B=2 clips of T=3 frames: time-major puts frame 1 of clip 0 at row B = 2
    assert "frame 1 of clip 0 is row 1, not row 2" in check("fold_frames", fold_time_major).message


def test_a_shape_error_in_the_answer_is_explained_with_its_line():
    message = check("fix_seed004", SeedAsWritten).message
    assert "raised RuntimeError at line" in message and "self.head(self.lstm(self.cnn(x))[0])" in message
    assert "fold time into the batch" in message                 # explain()'s advice
    message = check("fold_frames", lambda x: {}["x"]).message     # not a shape error: Python's words
    assert "raised KeyError" in message


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.name)
def test_the_unfilled_skeleton_is_not_answered_yet(ex):
    results = []
    namespace = {"torch": torch, "nn": nn, "check": lambda name, answer: results.append(check(name, answer))}
    exec(skeleton(ex.name), namespace)                            # the two cells a lesson shows, as nbval runs them
    exec(ex.check_cell, namespace)
    [result] = results
    assert (result.passed, result.answered) == (False, False)
    assert result.message.startswith("Not answered yet")


class NoForward(nn.Module):
    pass


def unfinished(x):
    raise NotImplementedError("fill me in")


@pytest.mark.parametrize("name, answer", [("fold_frames", None), ("fold_frames", ...), ("fold_frames", unfinished),
                                          ("fix_seed004", NoForward), ("fix_seed004", NoForward())])
def test_skeleton_conventions_are_not_answered_yet(name, answer):
    result = check(name, answer)
    assert result.status == "unanswered" and not result.passed


def test_names_lists_two_to_four_exercises_per_lesson():
    by_lesson = names()
    assert sorted(by_lesson) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert all(2 <= len(v) <= 4 for v in by_lesson.values())
    assert {"fold_frames", "unfold_features", "fix_seed004"} <= set(by_lesson[1])
    assert "lstm_cell_step" in by_lesson[4]
    assert names(2) == by_lesson[2]
    with pytest.raises(ValueError, match="lessons are"):
        names(11)


@pytest.mark.parametrize("reveal", [check, hint, solution, skeleton])
def test_a_wrong_name_gets_a_message_listing_the_names(reveal):
    args = ("fold_frame", None) if reveal is check else ("fold_frame",)
    with pytest.raises(ValueError) as info:
        reveal(*args)
    message = str(info.value)
    assert "Did you mean 'fold_frames'?" in message
    assert all(e.name in message for e in EXERCISES)


def test_hint_and_solution_are_revealed_on_request():
    assert "//" in hint("unfold_features")
    assert "fold_frames" not in hint("fold_frames") or "reshape" in hint("fold_frames")
    code = solution("lstm_cell_step")
    assert code.startswith("def lstm_cell_step(") and "chunk(4" in code
    assert repr(code) == str(code)                               # shows as code, not as a quoted string
    assert exercise("fix_seed004").lesson == 1


def test_result_shows_as_a_coloured_box_in_jupyter_and_one_line_elsewhere():
    right, wrong = check("last_step", lambda out: out[:, -1]), check("last_step", lambda out: out[-1])
    unanswered = check("last_step", None)
    assert repr(right).startswith("✔ last_step: Right")
    assert repr(wrong).startswith("✘ last_step:")
    colours = [r._repr_html_() for r in (right, wrong, unanswered)]
    assert "#34a853" in colours[0] and "#d93025" in colours[1] and "#f9ab00" in colours[2]
    assert "<b>" not in Result("x", False, "<b>")._repr_html_().split("</b>", 1)[1]  # the message is escaped


def test_checks_are_repeatable_and_leave_global_state_alone():
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    first = [check(name, answer).message for name, answer, _ in WRONG[:12]]
    for ex in EXERCISES:
        check(ex.name, ex.reference)                             # fix_seed004 builds a model from its class
    assert first == [check(name, answer).message for name, answer, _ in WRONG[:12]]
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.get_num_threads() == threads


def test_docs_exercises_md_is_the_generated_page():
    # the coordinator pastes the lesson cells from this page: it must be what the package says
    page = Path(__file__).resolve().parent.parent / "docs" / "exercises.md"
    assert page.read_text(encoding="utf-8") == render_markdown(), \
        "rerun: python -m cnnlstm_edu.exercises.cells > docs/exercises.md"


def test_each_lesson_ends_with_an_intro_then_title_skeleton_and_check_per_exercise():
    for lesson, chosen in names().items():
        cells = lesson_cells(lesson)
        assert [kind for kind, _ in cells[:2]] == ["markdown", "code"]
        assert len(cells) == 2 + 3 * len(chosen)
        assert [source for kind, source in cells[4::3]] == [exercise(n).check_cell for n in chosen]
    with pytest.raises(ValueError, match="lessons are"):
        lesson_cells(11)


@pytest.mark.parametrize("lesson", sorted(names()))
def test_each_lesson_notebook_holds_its_exercise_cells_as_the_package_writes_them(lesson):
    # The cells are pasted, not generated at run time: a skeleton changed here must be pasted again.
    import json

    [path] = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob(f"{lesson:02d}_*.ipynb"))
    cells = [(c["cell_type"], "".join(c["source"])) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    want = lesson_cells(lesson)
    start = cells.index(want[0])
    assert cells[start:start + len(want)] == want, f"{path.name}: paste lesson_cells({lesson}) again"
    after = cells[start + len(want):]
    assert not after or after[0][1].startswith("## Summary"), f"{path.name}: the exercises come just before the Summary"

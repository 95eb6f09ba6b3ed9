"""Lesson 09's exercises (cnnlstm_edu.exercises.clips): each typical mistake gets its own message, and the
references agree with the library they teach (sample_indices, pack_padded_sequence, CNNLSTM(trainable=False)).

tests/test_exercises.py runs the checks every exercise shares over these three too: the reference
passes, the solution shown is code that passes, the unfilled skeleton is "not answered yet"."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnlstm_edu.data.clips import sample_indices
from cnnlstm_edu.exercises import check, exercise, names
from cnnlstm_edu.exercises.cells import lesson_cells
from cnnlstm_edu.exercises.clips import EXERCISES, freeze_encoder, last_valid, sample_frames
from cnnlstm_edu.models import CNNLSTM
from cnnlstm_edu.models.encoders import FrameCNN

# ---------------------------------------------------------------- wrong answers, one mistake each


def sample_pad_rule(available, T):
    return sample_indices(available, T, short="pad")


def sample_freeze_last(available, T):
    if available < T:
        return [min(t, available - 1) for t in range(T)]
    return sample_indices(available, T)


def sample_stretched(available, T):
    return np.linspace(0, available - 1, T).round().astype(int).tolist()


def sample_no_end(available, T):
    return [t * available // T for t in range(T)]


def sample_past_end(available, T):
    return [round(t * available / (T - 1)) for t in range(T)]


def sample_truncated(available, T):
    return [int(t * (available - 1) / (T - 1)) for t in range(T)]


def sample_unrounded(available, T):
    return np.linspace(0, available - 1, T).tolist()


def sample_fixed_step(available, T):
    return list(range(0, available, available // T))


def last_at_lengths(outputs, lengths):
    return outputs[torch.arange(len(lengths)), lengths]


def last_one_early(outputs, lengths):
    return outputs[torch.arange(len(lengths)), lengths - 2]


def last_mean(outputs, lengths):
    mask = (torch.arange(outputs.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1)
    return (outputs * mask).sum(1) / lengths[:, None]


def freeze_module_attribute(encoder):
    encoder.requires_grad = False          # an attribute nobody reads
    encoder.eval()
    return encoder


def freeze_eval_only(encoder):
    return encoder.eval()


def freeze_grads_only(encoder):
    return encoder.requires_grad_(False)


def freeze_convs_only(encoder):
    for m in encoder.modules():
        if isinstance(m, nn.Conv2d):
            m.requires_grad_(False)
    return encoder.eval()


def freeze_in_place_returns_nothing(encoder):
    encoder.requires_grad_(False)
    encoder.eval()


WRONG = [
    ("sample_frames", sample_pad_rule, "that is the pad rule"),
    ("sample_frames", sample_freeze_last, "stops on its last frame and stays there"),
    ("sample_frames", sample_stretched, "you stretched the clip"),
    ("sample_frames", sample_no_end, "as if a frame after the last one existed"),
    ("sample_frames", sample_past_end, "is not a frame: a clip of 100 frames has frames 0..99"),
    ("sample_frames", sample_truncated, "You rounded every position down"),
    ("sample_frames", sample_unrounded, "a position between two frames"),
    ("sample_frames", sample_fixed_step, "A fixed step of available // T = 12 fits 9 indices"),
    ("sample_frames", lambda available, T: np.linspace(0, available - 1, T).round(), "your indices are floats"),
    ("last_valid", lambda outputs, lengths: outputs[:, -1], "you took step T-1 for every clip"),
    ("last_valid", last_at_lengths, "lengths count frames from 1, indices from 0"),
    ("last_valid", last_one_early, "you are one step early"),
    ("last_valid", lambda outputs, lengths: outputs[:, lengths - 1], "Pair clip b with its own length"),
    ("last_valid", last_mean, "you averaged the real steps"),
    ("freeze_encoder", freeze_module_attribute, "only adds an attribute to the module"),
    ("freeze_encoder", freeze_eval_only, "eval() changes how BatchNorm and Dropout run, not what learns"),
    ("freeze_encoder", freeze_grads_only, "BatchNorm is still in training mode"),
    ("freeze_encoder", freeze_convs_only, "They are BatchNorm's scale and shift"),
    ("freeze_encoder", lambda encoder: FrameCNN(1, (4, 8), 16).requires_grad_(False).eval(),
     "should freeze the encoder it is given and return it"),
]


# tests/test_exercises.py runs WRONG with every lesson's mistakes (each gets its phrase, two distinct
# messages per exercise); here, the stronger claim for this lesson: no two of its mistakes share one.
@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.name)
def test_each_exercise_has_distinct_messages_for_its_mistakes(ex):
    mine = [answer for name, answer, _ in WRONG if name == ex.name]
    messages = {check(ex.name, answer).message for answer in mine}
    assert len(mine) >= 2 and len(messages) == len(mine)


def test_an_answer_that_modifies_in_place_but_returns_nothing_is_told_to_return():
    result = check("freeze_encoder", freeze_in_place_returns_nothing)
    assert not result.answered and "don't forget the `return`" in result.message


def test_the_lesson_has_these_three_and_its_cells_end_with_their_checks():
    assert names(9) == ["sample_frames", "last_valid", "freeze_encoder"]
    assert all(exercise(n).lesson == 9 for n in names(9))
    cells = lesson_cells(9)
    assert [source for _, source in cells[4::3]] == [exercise(n).check_cell for n in names(9)]


@pytest.mark.parametrize("available, T", [(10, 4), (100, 8), (8, 8), (17, 5), (3, 5), (1, 4), (2, 9)])
def test_sample_frames_is_the_loop_rule_of_the_library(available, T):
    assert sample_frames(available, T) == sample_indices(available, T, short="loop")


def test_last_valid_is_h_n_of_the_packed_sequence_and_what_cnn_lstm_reads():
    torch.manual_seed(0)
    model = CNNLSTM(frame_size=14, num_classes=3, hidden_size=6).eval()
    x, lengths = torch.rand(3, 5, 1, 14, 14), torch.tensor([5, 1, 3])
    with torch.no_grad():
        feats = model.encoder(x)                                        # (B, T, F)
        outputs = model.lstm(feats)[0]                                  # (B, T, hidden): padding read
        packed = model(x, lengths=lengths)                              # (B, classes)
        torch.testing.assert_close(model.classifier(last_valid(outputs, lengths)), packed)


def test_freeze_encoder_does_what_trainable_false_does():
    frozen = CNNLSTM(frame_size=16, num_classes=2, encoder="mnist", trainable=False)
    mine = freeze_encoder(CNNLSTM(frame_size=16, num_classes=2, encoder="mnist").encoder)
    assert [p.requires_grad for p in mine.parameters()] == [p.requires_grad for p in frozen.encoder.parameters()]
    assert mine.training == frozen.encoder.training is False

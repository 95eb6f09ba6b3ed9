"""Seed 003's tricks as fit() options: each one tested for its effect, not just accepted."""

import math

import pytest
import torch

from cnnlstm_edu.data import quadrant_sequences
from cnnlstm_edu.models import CNNLSTM, NextFrame, NextFrameObjective, build_model
from cnnlstm_edu.models.streaming import FrameStreamer
from cnnlstm_edu.train import Classification, Curriculum, fit, parameter_groups


@pytest.fixture(scope="module")
def quadrants(digits):
    images, labels = digits
    return quadrant_sequences(images), labels           # (1024, 4, 1, 14, 14), (1024,)


def tiny_cnn_lstm(seed=0, **kw):
    torch.manual_seed(seed)
    return CNNLSTM(channels=(4, 8), hidden_size=16, **kw)


# --- weight decay on the recurrent weights only ---------------------------------------------

@pytest.mark.parametrize("name,expected", [
    ("cnn_lstm", {"lstm.weight_ih_l0", "lstm.weight_hh_l0"}),
    ("cnn_convlstm", {"convlstm.weight_ih_l0", "convlstm.weight_hh_l0"}),
    ("next_frame", {"rnn.weight_ih_l0", "rnn.weight_hh_l0"}),
])
def test_recurrent_group_holds_recurrent_weights_and_no_bias_no_cnn(name, expected):
    groups = {g["name"]: g for g in parameter_groups(build_model(name), 0.0, 1e-2)}
    assert set(groups["recurrent layers' weights (ih and hh)"]["names"]) == expected
    others = groups["everything else"]["names"]
    assert any("bias" in n for n in others) and any("encoder" in n for n in others)


def test_recurrent_weight_decay_moves_only_recurrent_weights(quadrants):
    # One AdamW step from the same weights on the same batch: the two runs differ by exactly
    # the decoupled decay term -lr * wd * w, and only on the recurrent weights.
    x, y = quadrants[0][:64], quadrants[1][:64]
    runs = []
    for wd in (0.0, 0.5):
        m = tiny_cnn_lstm()
        start = {k: v.clone() for k, v in m.state_dict().items()}
        events = list(fit(m, (x, y), epochs=1, batch_size=64, recurrent_weight_decay=wd, device="cpu",
                          log_every=1))
        runs.append((m.state_dict(), start, events))
    (a, start, _), (b, _, events) = runs
    lr = [e for e in events if e.kind == "step"][0].lr
    assert events[0].extra["param_groups"][0] == {"name": "recurrent layers' weights (ih and hh)", "weight_decay": 0.5,
                                                  "parameters": ["lstm.weight_ih_l0", "lstm.weight_hh_l0"]}
    for k in a:
        if k.startswith("lstm.weight"):
            torch.testing.assert_close(b[k] - a[k], -lr * 0.5 * start[k], rtol=1e-3, atol=1e-7)
        elif not k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(a[k], b[k]), k


# --- gradient clipping -------------------------------------------------------------------------

def test_clipping_caps_the_step_and_events_report_the_norm_before_clipping(quadrants):
    x, y = quadrants[0][:64], quadrants[1][:64]
    m = tiny_cnn_lstm()
    before = [p.detach().clone() for p in m.parameters()]
    events = list(fit(m, (x, y), epochs=1, batch_size=64, optimizer="sgd", lr=0.1, clip_grad=0.01,
                      device="cpu", log_every=1))
    step = [e for e in events if e.kind == "step"][0]
    # SGD's first step moves the weights by lr * (clipped gradient): its norm is the limit.
    moved = torch.cat([(b - p.detach()).flatten() for b, p in zip(before, m.parameters())]).norm()
    assert moved.item() / step.lr == pytest.approx(0.01, rel=1e-3)
    assert step.grad_norm > 0.01 and step.grad_norm_max == step.grad_norm


def test_grad_norm_max_covers_every_step_between_events(quadrants):
    events = list(fit(tiny_cnn_lstm(), quadrants, epochs=1, batch_size=64, device="cpu", log_every=4))
    steps = [e for e in events if e.kind == "step"]
    assert all(e.grad_norm_max >= e.grad_norm > 0 for e in steps)


# --- dropout --------------------------------------------------------------------------------

def test_dropout_acts_on_the_lstm_input_in_training_only(quadrants):
    m = tiny_cnn_lstm(dropout=0.5)
    x = quadrants[0][:8].float() / 255
    m.train()
    assert not torch.equal(m(x), m(x))                # random masks
    m.eval()
    assert torch.equal(m(x), m(x))
    seen = []
    m.lstm.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    m.train()
    m(x)
    assert (seen[0] == 0).float().mean() > 0.3          # about half the LSTM's inputs dropped


# --- the unroll curriculum ---------------------------------------------------------------------

class Recording(Classification):
    def __init__(self):
        self.shapes = []

    def loss(self, model, x, y, **kw):
        self.shapes.append((x.shape[0], kw["unroll"]))
        return super().loss(model, x, y, **kw)


def test_curriculum_doubles_unroll_and_halves_batch_at_plateaus(quadrants):
    # min_delta=1 makes every check a plateau, so the schedule runs at once: 1 -> 2 -> 4 steps.
    curriculum = Curriculum(start_unroll=1, patience=1, min_delta=1.0, check_every=2, val_size=200)
    objective = Recording()
    events = list(fit(tiny_cnn_lstm(), quadrants, epochs=2, batch_size=16, curriculum=curriculum,
                      objective=objective, device="cpu", log_every=1))
    changes = [(e.unroll, e.batch_size) for e in events if e.kind == "curriculum"]
    assert changes == [(2, 32), (4, 16)]
    largest = {}
    for batch, unroll in objective.shapes:           # the last batch of an epoch may be partial
        largest[unroll] = max(largest.get(unroll, 0), batch)
    assert largest == {1: 64, 2: 32, 4: 16}
    steps = [e for e in events if e.kind == "step"]
    assert steps[0].unroll == 1 and steps[-1].unroll == 4


def test_curriculum_waits_while_the_validation_loss_improves(quadrants):
    curriculum = Curriculum(start_unroll=2, patience=50, check_every=5, val_size=200)
    events = list(fit(tiny_cnn_lstm(), quadrants, epochs=1, batch_size=32, curriculum=curriculum, device="cpu"))
    assert not [e for e in events if e.kind == "curriculum"]
    assert events[-1].unroll == 2


# --- scheduled sampling ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def videos():
    from cnnlstm_edu.data.moving_mnist import moving_mnist
    return moving_mnist(96, seq_len=10, seed=0), moving_mnist(16, seq_len=10, split="test", seed=1)


def small_next_frame():
    torch.manual_seed(0)
    return NextFrame(channels=(4, 8), hidden_channels=8)


def test_scheduled_sampling_probability_rises_linearly(videos):
    train, test = videos
    events = list(fit(small_next_frame(), (train, None), (test[:4], None), epochs=2, batch_size=16,
                      sampling="scheduled", sampling_max=0.6, objective=NextFrameObjective(), device="cpu",
                      log_every=1))
    steps = [e for e in events if e.kind == "step"]
    ps = [e.sampling_p for e in steps]
    assert len(ps) == 12 and ps == sorted(ps) and ps[0] == 0 and 0.5 < ps[-1] <= 0.6
    for e in steps:  # p = max * (samples seen before the step) / (all samples)
        assert e.sampling_p == pytest.approx(0.6 * (e.step - 1) * 16 / (2 * 96), abs=1e-9)


def test_teacher_forcing_never_samples(videos):
    train, test = videos
    events = list(fit(small_next_frame(), (train, None), (test, None), epochs=1, batch_size=16,
                      sampling="teacher_forcing", objective=NextFrameObjective(), device="cpu", log_every=1))
    assert all(e.sampling_p == 0 for e in events)
    end = events[-1].extra["test"]
    assert end["test_mse"] > 0 and end["copy_last_mse"] > 0 and len(end["mse_per_step"]) == 5


def test_scheduled_sampling_with_curriculum_steps_up_by_a_quarter(videos):
    train, test = videos
    curriculum = Curriculum(start_unroll=2, patience=1, min_delta=1.0, check_every=2, val_size=16)
    events = list(fit(small_next_frame(), (train, None), (test, None), epochs=2, batch_size=4,
                      sampling="scheduled", sampling_max=1.0, curriculum=curriculum,
                      objective=NextFrameObjective(), device="cpu", log_every=1))
    ps = [(e.unroll, e.sampling_p) for e in events if e.kind == "curriculum"]
    assert ps == [(4, 0.25), (8, 0.5), (10, 0.75)]


# --- nonsense is refused ----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    ({"sampling": "scheduled"}, "nothing to feed back"),
    ({"sampling": "teacher_forcing"}, "nothing to feed back"),
    ({"sampling": "sometimes"}, "sampling must be"),
    ({"curriculum": Curriculum(start_unroll=4)}, "shorter than the sequences"),
    ({"curriculum": Curriculum(start_unroll=0)}, "at least 1"),
    ({"clip_grad": 0}, "clip_grad must be a finite number above 0"),
    ({"curriculum": Curriculum(patience=0)}, "curriculum: patience must be a positive int"),
    ({"optimizer": "lbfgs"}, "adamw"),
    ({"sampling_max": 1.5}, "probability"),
])
def test_senseless_options_are_refused(quadrants, kwargs, match):
    with pytest.raises(ValueError, match=match):
        next(fit(tiny_cnn_lstm(), quadrants, epochs=1, device="cpu", **kwargs))


# --- train versus deploy state (seed 003, point 5) ---------------------------------------------

def test_streaming_one_frame_at_a_time_equals_the_batched_model(quadrants):
    m = tiny_cnn_lstm().eval()
    x = quadrants[0][:5].float() / 255                   # (B, T, C, H, W)
    stream = FrameStreamer(m)
    beliefs = torch.stack([stream(x[:, t]) for t in range(4)], dim=1)
    torch.testing.assert_close(beliefs, m(x, all_steps=True))


def test_forgetting_the_reset_between_videos_changes_the_answer(quadrants):
    m = tiny_cnn_lstm().eval()
    first, second = (quadrants[0][i:i + 1].float() / 255 for i in (0, 1))
    stream = FrameStreamer(m)
    for t in range(4):
        stream(first[:, t])
    stale = [stream(second[:, t]) for t in range(4)][-1]   # no reset: read as frames 5..8
    stream.reset()
    fresh = [stream(second[:, t]) for t in range(4)][-1]
    torch.testing.assert_close(fresh, m(second))
    assert not torch.allclose(stale, fresh, atol=1e-4)


def test_streamer_rejects_clips_and_non_sequence_models():
    stream = FrameStreamer(tiny_cnn_lstm())
    with pytest.raises(ValueError, match="one frame per call"):
        stream(torch.zeros(1, 4, 1, 14, 14))
    with pytest.raises(TypeError, match="CNNLSTM"):
        FrameStreamer(torch.nn.Linear(2, 2))


# --- held-out losses run in eval mode (issue 13, item 20) --------------------------------------

@pytest.mark.parametrize("objective, make, data", [
    (Classification(), lambda: tiny_cnn_lstm(dropout=0.5), "quadrants"),
    (NextFrameObjective(), small_next_frame, "videos"),
])
def test_validation_loss_is_measured_in_eval_mode(objective, make, data, request):
    # Dropout must not add noise to the plateau test, and BatchNorm's running statistics must not
    # learn from the held-out slice; the model comes back in training mode.
    x, y = request.getfixturevalue(data)
    x, y = (x[:32], y[:32]) if data == "quadrants" else (x[:8], None)
    m = make().train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    losses = [objective.validation_loss(m, x, y, torch.device("cpu"), unroll=2) for _ in range(2)]
    assert losses[0] == losses[1] and m.training and all(mod.training for mod in m.modules())
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())

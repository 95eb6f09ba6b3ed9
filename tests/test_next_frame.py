"""Moving MNIST and the next-frame ConvLSTM: determinism, sampling identities, metrics."""

import pytest
import torch

from cnnlstm_edu.data import load_mnist
from cnnlstm_edu.data.moving_mnist import moving_mnist
from cnnlstm_edu.models import NextFrame, NextFrameObjective


def test_moving_mnist_is_deterministic_per_seed():
    a = moving_mnist(6, seq_len=8, seed=3)
    assert torch.equal(a, moving_mnist(6, seq_len=8, seed=3))
    assert not torch.equal(a, moving_mnist(6, seq_len=8, seed=4))
    assert a.shape == (6, 8, 1, 32, 32) and a.dtype == torch.uint8


@pytest.mark.parametrize("split,other", [("train", "test"), ("test", "train")])
def test_digits_come_from_their_own_split(split, other):
    # A 28x28 digit in a 28x28 frame cannot move: each frame is one MNIST image, untouched.
    frames = moving_mnist(5, seq_len=1, size=28, digit_size=28, split=split, seed=0)[:, 0, 0]
    own = load_mnist(split)[0]
    foreign = load_mnist(other)[0]
    for f in frames:
        assert (own == f).flatten(1).all(1).any()
        assert not (foreign == f).flatten(1).all(1).any()


def test_digits_move_and_stay_inside_the_frame():
    v = moving_mnist(20, seq_len=30, size=32, digit_size=14, speed=(2.0, 2.0), seed=0)
    mass = v.float().sum(dim=(2, 3, 4))                        # (N, T): ink per frame
    # The whole digit is always visible (it bounces, never leaves), so the ink is constant.
    torch.testing.assert_close(mass, mass[:, :1].expand_as(mass))
    assert not torch.equal(v[:, 0], v[:, 1])


def test_classic_layout_and_overlap_rule():
    v = moving_mnist(3, seq_len=20, size=64, num_digits=2, digit_size=28, seed=0)
    assert v.shape == (3, 20, 1, 64, 64)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_sequences": 0}, "num_sequences"), ({"digit_size": 40}, "do not fit"),
    ({"speed": (3, 1)}, "speed"), ({"split": "val"}, "split"),
])
def test_moving_mnist_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        moving_mnist(**{"num_sequences": 2, **kwargs})


@pytest.fixture
def model():
    torch.manual_seed(0)
    return NextFrame(channels=(4, 8), hidden_channels=8).eval()


def test_teacher_forcing_is_one_batched_pass(model):
    video = torch.rand(2, 6, 1, 32, 32)
    preds, _ = model.step(video[:, :-1])
    torch.testing.assert_close(model.rollout(video, sampling_p=0.0), preds)


def test_always_sampling_is_the_autoregressive_forecast(model):
    # With p = 1 every input after the first is the model's own previous prediction: exactly
    # what deployment does from a one-frame context.
    video = torch.rand(2, 6, 1, 32, 32)
    with torch.no_grad():
        sampled = model.rollout(video, sampling_p=1.0)
    torch.testing.assert_close(sampled, model.forecast(video[:, :1], horizon=5))


def test_forecast_reads_the_context_then_feeds_itself(model):
    video = torch.rand(2, 8, 1, 32, 32)
    pred = model(video[:, :5], horizon=3)
    assert pred.shape == (2, 3, 1, 32, 32) and 0 <= pred.min() and pred.max() <= 1
    # The first forecast depends on the context only through the model's state.
    preds, _ = model.step(video[:, :5])
    torch.testing.assert_close(pred[:, 0], preds[:, -1])


def test_a_one_hot_motion_kernel_shifts_the_frame_exactly(model):
    # Force the head to "move everything one pixel right, keep all of it": the prediction must
    # be the input shifted, pixel for pixel. This is why forecasts stay sharp when fed back.
    M, K = model.config.motion_size, model.config.num_motions
    with torch.no_grad():
        model.motion.weight.zero_()
        bias = torch.full((K, M, M), -1e4)
        bias[:, M // 2, M // 2 - 1] = 1e4        # cross-correlation: read from the left neighbour
        model.motion.bias.copy_(bias.flatten())
        model.masks.weight.zero_()
        model.masks.bias.copy_(torch.tensor([1e4] + [-1e4] * K))
        frames = torch.rand(2, 3, 1, 32, 32)
        preds, _ = model.step(frames)
    torch.testing.assert_close(preds[..., 1:], frames[..., :-1])
    assert preds[..., 0].abs().max() == 0


def test_objective_metrics_against_hand_computation(model):
    clips = moving_mnist(4, seq_len=10, split="test", seed=0)
    metrics = NextFrameObjective(context=5, horizon=5).evaluate(model, clips, None, "cpu")
    x = clips.float() / 255
    copy = (x[:, 4:5] - x[:, 5:]).square().mean().item()
    mse = (model.forecast(x[:, :5], 5) - x[:, 5:]).square().mean().item()
    assert metrics["copy_last_mse"] == pytest.approx(copy, rel=1e-5)
    assert metrics["test_mse"] == pytest.approx(mse, rel=1e-5)
    assert len(metrics["mse_per_step"]) == 5


def test_next_frame_bad_input(model):
    with pytest.raises(ValueError, match=r"expected \(B, T, C=1, H=32, W=32\)"):
        model(torch.zeros(2, 5, 1, 28, 28))
    with pytest.raises(ValueError, match="divisible by 4"):
        NextFrame(frame_size=30)
    with pytest.raises(ValueError, match="odd"):
        NextFrame(motion_size=6)
    with pytest.raises(ValueError, match="probability"):
        model.rollout(torch.zeros(1, 3, 1, 32, 32), sampling_p=2)

"""The baseline models of issue 15: shapes, and the identities that define them.

frame_average is order-blind (reversing or shuffling time changes nothing), last_frame reads
the last frame only, whole_image is a CNN on the tiled digit whatever the quadrant order, and
every all_steps belief is the model run on the frames seen so far.
"""

from __future__ import annotations

import pytest
import torch

from cnnlstm_edu.data import quadrant_sequences
from cnnlstm_edu.models.baselines import (Conv3D, Conv3DConfig, FrameAverage, LastFrame,
                                          PerFrameConfig, WholeImage, WholeImageConfig)
from cnnlstm_edu.shapes import ShapeError
from cnnlstm_edu.train import fit

SEQUENCE_MODELS = [
    lambda **kw: FrameAverage(PerFrameConfig(**kw)),
    lambda **kw: LastFrame(PerFrameConfig(**kw)),
    lambda **kw: Conv3D(Conv3DConfig(**kw)),
]
IDS = ["frame_average", "last_frame", "conv3d"]


def _clips(B=3, T=5, size=16, seed=0):
    return torch.rand(B, T, 1, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("make", SEQUENCE_MODELS, ids=IDS)
@pytest.mark.parametrize("T, size, classes", [(4, 14, 10), (8, 32, 8), (1, 16, 3)])
def test_shapes(make, T, size, classes):
    torch.manual_seed(0)
    model = make(frame_size=size, num_classes=classes).eval()
    x = _clips(T=T, size=size)
    assert model(x).shape == (3, classes)
    assert model(x, all_steps=True).shape == (3, T, classes)


@pytest.mark.parametrize("make", SEQUENCE_MODELS, ids=IDS)
def test_all_steps_is_the_model_on_the_frames_seen_so_far(make):
    torch.manual_seed(0)
    model = make(frame_size=16, num_classes=4).eval()
    x = _clips(T=4)
    beliefs = model(x, all_steps=True)                                  # (B, T, classes)
    for t in range(4):
        torch.testing.assert_close(beliefs[:, t], model(x[:, :t + 1]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("training", [False, True])
def test_frame_average_is_invariant_to_time_order(training):
    torch.manual_seed(0)
    model = FrameAverage(frame_size=16, num_classes=8).train(training)
    x = _clips(T=6)
    out = model(x)
    torch.testing.assert_close(model(x.flip(1)), out, atol=1e-6, rtol=1e-6)       # reversed
    torch.testing.assert_close(model(x[:, [3, 0, 5, 1, 4, 2]]), out, atol=1e-6, rtol=1e-6)  # shuffled


def test_conv3d_is_an_ordinary_module_that_fit_moves_without_help():
    # No override of .to: fit gives channels-last to 4-D weights only (train.place_model).
    assert "to" not in vars(Conv3D)
    model = Conv3D(frame_size=16, num_classes=8)
    x, y = _clips(B=8, T=4), torch.randint(0, 8, (8,))
    assert list(fit(model, (x, y), None, epochs=1, batch_size=8, device="cpu"))[-1].kind == "end"
    assert model.blocks[0][0].weight.is_contiguous()                    # 5-D: left as it was


def test_conv3d_and_cnn_lstm_style_models_are_not_order_blind():
    torch.manual_seed(0)
    model = Conv3D(frame_size=16, num_classes=8).eval()
    x = _clips(T=6)
    assert not torch.allclose(model(x.flip(1)), model(x), atol=1e-4)


@pytest.mark.parametrize("training", [False, True])
def test_last_frame_reads_only_the_last_frame(training):
    torch.manual_seed(0)
    model = LastFrame(frame_size=16, num_classes=8).train(training)
    x = _clips(T=5)
    other = torch.cat([_clips(T=4, seed=1), x[:, -1:]], dim=1)          # all but the last replaced
    assert torch.equal(model(other), model(x))
    assert torch.equal(model(x), model(x[:, -1:]))                      # or dropped


def test_whole_image_is_a_cnn_on_the_tiled_digit_whatever_the_order():
    torch.manual_seed(0)
    images = torch.rand(4, 28, 28)
    straight = WholeImage(WholeImageConfig(order="1234")).eval()
    backwards = WholeImage(WholeImageConfig(order="4321")).eval()
    backwards.load_state_dict(straight.state_dict())                     # same weights
    a = straight(quadrant_sequences(images, "1234"))
    b = backwards(quadrant_sequences(images, "4321"))
    assert torch.equal(a, b)
    torch.testing.assert_close(a, straight.classifier(straight.cnn(images[:, None])))


def test_whole_image_refuses_anything_but_quadrants():
    model = WholeImage()
    with pytest.raises(ShapeError, match="whole_image is for MNIST quadrants only"):
        model(torch.rand(2, 8, 1, 32, 32))                              # direction clips
    with pytest.raises(ValueError, match="all_steps=True is for the sequence models"):
        model(torch.rand(2, 4, 1, 14, 14), all_steps=True)
    with pytest.raises(ValueError, match="order must be a permutation of '1234'"):
        WholeImage(order="1243x")


@pytest.mark.parametrize("make", SEQUENCE_MODELS, ids=IDS)
def test_bad_inputs_are_named(make):
    model = make(frame_size=16, num_classes=8)
    with pytest.raises(ShapeError, match=r"input: expected \(B, T, C=1, H=16, W=16\), got "
                                         r"\(2, 4, 1, 32, 32\).*frame_size=32"):
        model(torch.rand(2, 4, 1, 32, 32))
    with pytest.raises(ShapeError, match="that is 4 axes, not 5"):
        model(torch.rand(2, 1, 16, 16))
    with pytest.raises(TypeError, match="uint8"):
        model(torch.zeros(2, 4, 1, 16, 16, dtype=torch.uint8))


@pytest.mark.parametrize("cls", [FrameAverage, LastFrame, Conv3D, WholeImage])
def test_num_classes_must_be_positive(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__}: num_classes must be a positive int, got 0"):
        cls(num_classes=0)


@pytest.mark.parametrize("make", SEQUENCE_MODELS + [lambda **kw: WholeImage(num_classes=kw["num_classes"])],
                         ids=IDS + ["whole_image"])
def test_fit_trains_each_baseline(make):
    torch.manual_seed(0)
    model = make(frame_size=14, num_classes=10)
    x, y = torch.rand(48, 4, 1, 14, 14), torch.randint(0, 10, (48,))
    events = list(fit(model, (x, y), (x, y), epochs=2, batch_size=16, device="cpu"))
    assert events[-1].kind == "end" and 0.0 <= events[-1].test_acc <= 1.0
    steps = [e for e in events if e.kind == "step"]
    assert steps and all(e.loss > 0 for e in steps)

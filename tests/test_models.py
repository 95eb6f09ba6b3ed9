"""CNNLSTM: shapes, the per-step view, the fold/loop equivalence inside a model, bad input."""

import pytest
import torch
from torch import nn

from cnnlstm_edu import ShapeError
from cnnlstm_edu.models import CNNLSTM, CNNLSTMConfig, FrameCNN, build_model, model_config


@pytest.mark.parametrize("B,T", [(1, 1), (3, 4), (2, 7)])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_cnn_lstm_shapes(B, T, num_layers):
    model = CNNLSTM(CNNLSTMConfig(channels=(4, 8), hidden_size=16, num_layers=num_layers)).eval()
    x = torch.randn(B, T, 1, 14, 14)
    assert model(x).shape == (B, 10)
    assert model(x, all_steps=True).shape == (B, T, 10)


def test_last_step_of_all_steps_is_the_prediction():
    model = CNNLSTM(channels=(4, 8), hidden_size=16).eval()
    x = torch.randn(3, 4, 1, 14, 14)
    torch.testing.assert_close(model(x, all_steps=True)[:, -1], model(x))


def test_belief_after_k_steps_only_depends_on_the_first_k_frames():
    # An LSTM reads left to right: changing frame 3 must not change what it believed after 2.
    model = CNNLSTM(channels=(4, 8), hidden_size=16).eval()
    x = torch.randn(2, 4, 1, 14, 14)
    x2 = x.clone()
    x2[:, 2:] = torch.randn(2, 2, 1, 14, 14)
    a, b = model(x, all_steps=True), model(x2, all_steps=True)
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2:], b[:, 2:])


def test_fold_and_loop_models_agree_with_the_same_weights():
    fold = CNNLSTM(channels=(4, 8), hidden_size=16, td_mode="fold").eval()
    loop = CNNLSTM(channels=(4, 8), hidden_size=16, td_mode="loop").eval()
    loop.load_state_dict(fold.state_dict())
    x = torch.randn(3, 4, 1, 14, 14)
    torch.testing.assert_close(fold(x), loop(x))


def test_the_lstm_input_size_is_the_flattened_feature_map():
    model = CNNLSTM(channels=(16, 32))
    assert model.lstm.input_size == 32 * 3 * 3


def test_config_overrides_and_registry_roundtrip():
    model = build_model("cnn_lstm", hidden_size=12, channels=[4, 8])
    name, config = model_config(model)
    assert name == "cnn_lstm" and config["hidden_size"] == 12
    assert build_model(name, **config).config == model.config


@pytest.mark.parametrize("shape,match", [
    ((2, 1, 14, 14), r"expected \(B, T, C=1, H=14, W=14\), got \(2, 1, 14, 14\)"),
    ((2, 4, 3, 14, 14), r"axis C is 3, not 1"),
    ((2, 4, 1, 28, 28), r"axis H is 28, not 14"),
])
def test_cnn_lstm_bad_input(shape, match):
    with pytest.raises(ShapeError, match=match):
        CNNLSTM()(torch.zeros(shape))


def test_build_model_errors():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        build_model("resnet")
    with pytest.raises(ValueError, match="unknown config field"):
        build_model("cnn_lstm", hidden=3)
    with pytest.raises(ValueError, match="not a registered model"):
        model_config(nn.Linear(2, 2))


def test_frame_cnn_checks():
    with pytest.raises(ShapeError, match="TimeDistributed"):
        FrameCNN()(torch.zeros(2, 4, 1, 14, 14))
    with pytest.raises(ValueError, match="at least 8 pixels"):
        FrameCNN(1, (4, 4, 4), frame_size=6)
    with pytest.raises(ValueError, match="positive"):
        FrameCNN(1, (0, 4))

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


@pytest.mark.parametrize("name", ["cnn_lstm", "cnn_convlstm", "next_frame", "whole_image", "frame_average",
                                  "last_frame", "conv3d", "tracker"])
def test_every_name_of_the_design_is_registered_and_rebuilds_from_its_config(name):
    from cnnlstm_edu.models import MODELS

    assert name in MODELS
    model = build_model(name)
    again_name, config = model_config(model)
    assert again_name == name and type(build_model(name, **config)) is type(model)
    assert build_model(name, **config).config == model.config


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


# --- CNN-ConvLSTM, backbones, parameter counts ---------------------------------------------

from cnnlstm_edu.layers.convlstm import ConvLSTM  # noqa: E402
from cnnlstm_edu.models import (CNNConvLSTM, TorchvisionBackbone, count_parameters,  # noqa: E402
                                recurrent_parameters)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_cnn_convlstm_shapes_and_per_step_view(num_layers):
    model = CNNConvLSTM(channels=(4, 8), hidden_channels=6, num_layers=num_layers).eval()
    x = torch.randn(3, 4, 1, 14, 14)
    assert model(x).shape == (3, 10)
    steps = model(x, all_steps=True)
    assert steps.shape == (3, 4, 10)
    torch.testing.assert_close(steps[:, -1], model(x))
    # The ConvLSTM keeps the map: (B, T, F, H', W') = (3, 4, 6, 3, 3) reaches the classifier.
    assert model.classifier.in_features == 6 * 3 * 3


def test_cnn_convlstm_fold_equals_loop():
    fold = CNNConvLSTM(channels=(4, 8), hidden_channels=6).eval()
    loop = CNNConvLSTM(channels=(4, 8), hidden_channels=6, td_mode="loop").eval()
    loop.load_state_dict(fold.state_dict())
    x = torch.randn(2, 4, 1, 14, 14)
    torch.testing.assert_close(fold(x), loop(x))


def test_cnn_convlstm_bad_input():
    with pytest.raises(ShapeError, match=r"expected \(B, T, C=1, H=14, W=14\)"):
        CNNConvLSTM()(torch.zeros(2, 1, 14, 14))
    with pytest.raises(ValueError, match="in_channels must be 3"):
        CNNConvLSTM(backbone="resnet18")


@pytest.mark.parametrize("name,channels", [("mobilenet_v3_small", 576), ("resnet18", 512)])
def test_torchvision_backbone_per_frame(name, channels):
    backbone = TorchvisionBackbone(name).eval()
    assert backbone.out_channels == channels
    assert not any("classifier" in n or n.startswith("fc") for n, _ in backbone.named_parameters())
    video = torch.randn(2, 3, 3, 64, 64)                                 # (B, T, 3, H, W)
    from cnnlstm_edu import TimeDistributed
    maps = TimeDistributed(backbone)(video)
    assert maps.shape == (2, 3, channels, 2, 2)
    out, (h_n, _) = ConvLSTM(channels, 8, 3)(maps)                      # seed 002's pipeline
    assert out.shape == (2, 3, 8, 2, 2) and h_n.shape == (1, 2, 8, 2, 2)


def test_backbone_without_network_fails_fast_with_advice(monkeypatch):
    import urllib.error

    import torchvision.models._api as weights_api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    # Where torchvision's weights enum looks the downloader up; the test never touches a network.
    monkeypatch.setattr(weights_api, "load_state_dict_from_url", offline)
    monkeypatch.setenv("TORCH_HOME", "/nonexistent-torch-home")
    with pytest.raises(RuntimeError, match="weights=None"):
        TorchvisionBackbone("resnet18", weights="DEFAULT")
    with pytest.raises(ValueError, match="unknown backbone"):
        TorchvisionBackbone("vgg16")


@pytest.mark.parametrize("C,H,W,hidden,k", [(32, 3, 3, 128, 3), (8, 7, 5, 16, 1), (4, 6, 6, 10, (3, 5))])
def test_recurrent_parameter_formulas_match_the_modules(C, H, W, hidden, k):
    counts = recurrent_parameters(C, H, W, hidden, kernel_size=k)
    assert counts["lstm"] == count_parameters(nn.LSTM(C * H * W, hidden))
    assert counts["convlstm"] == count_parameters(ConvLSTM(C, hidden, k))


def test_convlstm_gates_are_far_cheaper_than_dense_gates_on_a_map():
    # Seed 002's claim, in numbers: a 7x7x1024 MobileNet map into 256 units.
    counts = recurrent_parameters(1024, 7, 7, hidden=256)
    assert counts["lstm"] > 4 * counts["convlstm"]
    # Only the dense version grows with the map's area.
    bigger = recurrent_parameters(1024, 14, 14, hidden=256)
    assert bigger["convlstm"] == counts["convlstm"] and bigger["lstm"] > 3.9 * counts["lstm"]

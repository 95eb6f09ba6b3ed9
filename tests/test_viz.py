"""viz: the probe records what the model computes; figures and arrays have the promised shapes."""

import math

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from cnnlstm_edu.models import build_model
from cnnlstm_edu.train import fit
from cnnlstm_edu.viz import (Probe, activation_mosaic, confusion_matrix, heatmap_image, plot_activations,
                             plot_beliefs, plot_confusion, plot_curves, plot_examples, plot_gates, plot_hidden,
                             probe, recurrent_layer)

matplotlib.use("Agg")


def _model(name, **config):
    torch.manual_seed(0)
    return build_model(name, **config)


@pytest.mark.parametrize("name, hidden", [("cnn_lstm", 128), ("cnn_convlstm", 32 * 3 * 3)])
@pytest.mark.parametrize("td_mode", ["fold", "loop"])
def test_probe_records_the_models_own_numbers(name, hidden, td_mode):
    model = _model(name, td_mode=td_mode)
    x = torch.rand(1, 4, 1, 14, 14)                       # (B, T, C, H, W)
    model.train()
    p = probe(model, x)
    assert model.training, "probe must give the model its mode back"
    assert [tuple(m.shape) for m in p.maps] == [(4, 16, 7, 7), (4, 32, 3, 3)]
    assert tuple(p.hidden.shape) == (4, hidden)
    model.eval()
    with torch.no_grad():
        expected = model(x, all_steps=True).softmax(-1)[0]     # (T, classes)
    torch.testing.assert_close(p.probs, expected)
    # The last block's maps are what the recurrent layer was fed (flattened for the LSTM).
    with torch.no_grad():
        feats = model.encoder(x)[0]                            # (T, F) or (T, C', H', W')
    torch.testing.assert_close(p.maps[-1].reshape(4, -1), feats.reshape(4, -1))
    # No hook stays behind.
    assert all(not m._forward_hooks for m in model.modules())


def test_probe_hidden_is_the_lstm_output():
    model = _model("cnn_lstm").eval()
    x = torch.rand(4, 1, 14, 14)                          # (T, C, H, W): no batch axis
    p = probe(model, x)
    with torch.no_grad():
        h, _ = model.lstm(model.encoder(x.unsqueeze(0)))  # (1, T, hidden)
    torch.testing.assert_close(p.hidden, h[0])
    assert p.prediction == int(p.probs[-1].argmax())


def test_probe_takes_uint8_frames_like_training():
    model = _model("cnn_lstm").eval()
    x = torch.randint(0, 256, (4, 1, 14, 14), dtype=torch.uint8)
    torch.testing.assert_close(probe(model, x).probs, probe(model, x.float() / 255).probs)


@pytest.mark.parametrize("shape", [(2, 4, 1, 14, 14), (14, 14), (1, 1, 4, 1, 14, 14)])
def test_probe_rejects_anything_but_one_sequence(shape):
    with pytest.raises(ValueError, match="one sequence"):
        probe(_model("cnn_lstm"), torch.rand(*shape))


def test_recurrent_layer_found_by_type():
    assert isinstance(recurrent_layer(_model("cnn_lstm")), torch.nn.LSTM)
    assert recurrent_layer(torch.nn.Linear(2, 3)) is None


@pytest.mark.parametrize("channels", [1, 4, 8, 16])
def test_activation_mosaic_layout(channels):
    p = probe(_model("cnn_lstm"), torch.rand(4, 1, 14, 14))
    img = activation_mosaic(p, channels=channels, cell=42, gap=4, group_gap=14)
    groups = [1, min(channels, 16), min(channels, 32)]            # frame, block 1, block 2
    width = sum(n * 42 + (n - 1) * 4 for n in groups) + 14 * 2
    assert img.shape == (4 * 42 + 3 * 4, width, 3) and img.dtype == np.uint8


def test_activation_mosaic_shares_a_channels_scale_across_frames():
    # Channel 0 is bright in frame 0 and dim in frame 1: the dim frame must look dimmer.
    maps = torch.zeros(2, 1, 3, 3)
    maps[0] = 10.0
    maps[1] = 1.0
    p = Probe(torch.zeros(2, 1, 14, 14), [maps], torch.zeros(2, 4), torch.full((2, 10), 0.1))
    img = activation_mosaic(p, cell=42, gap=4, group_gap=14)
    x0 = 42 + 14                                                   # first map cell, after the frame
    bright, dim = img[21, x0 + 21], img[46 + 21, x0 + 21]
    assert not np.array_equal(bright, dim)


def test_heatmap_image():
    img = heatmap_image(torch.tensor([[-1.0, 0.0, 1.0]]), width=30, row_height=5)
    assert img.shape == (5, 30, 3)
    blue, white, red = img[0, 0], img[0, 15], img[0, 29]
    assert blue[2] > blue[0] and red[0] > red[2] and white.min() > 200
    with pytest.raises(ValueError, match="rows, cols"):
        heatmap_image(torch.zeros(3))


def test_confusion_matrix_counts():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    preds = torch.tensor([0, 1, 1, 2, 0, 2])
    cm = confusion_matrix(labels, preds, num_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert cm.sum() == 6 and cm.trace() == (labels == preds).sum()
    with pytest.raises(ValueError, match="differ"):
        confusion_matrix(labels, preds[:3])


def test_figures_are_figures_built_without_pyplot():
    p = probe(_model("cnn_lstm"), torch.rand(4, 1, 14, 14))
    x, y = torch.rand(64, 4, 1, 14, 14), torch.randint(0, 10, (64,))
    events = list(fit(_model("cnn_lstm", channels=(4, 8), hidden_size=8), (x, y), (x, y), epochs=1,
                      batch_size=16, log_every=1, device="cpu"))
    figures = [plot_activations(p, order="4321"), plot_hidden(p.hidden, order="4321"),
               plot_beliefs(p.probs, order="4321", label=3), plot_curves(events),
               plot_confusion(confusion_matrix(y, y)), plot_examples(torch.zeros(3, 28, 28), [1, 2, 3])]
    from cnnlstm_edu.layers.lstm import LSTM
    _, _, gates = LSTM(3, 5)(torch.randn(2, 4, 3), return_gates=True)
    figures.append(plot_gates(gates))
    for fig in figures:
        assert isinstance(fig, Figure)
        fig.canvas.draw()                      # renders with Agg: nothing raises
    curves = figures[3]
    train_line, test_line = curves.axes[1].get_lines()[:2]
    assert len(train_line.get_xdata()) == 4 and len(test_line.get_xdata()) == 1   # 4 steps; the end
    assert [t.get_text() for t in curves.axes[0].get_legend().get_texts()] == ["train", "test"]


def test_plot_curves_skips_missing_values():
    fig = plot_curves([{"epoch": 0.5, "loss": 1.0, "accuracy": math.nan}, {"epoch": 1.0, "test_acc": 0.9}])
    acc = fig.axes[1]
    assert [len(line.get_xdata()) for line in acc.get_lines()] == [1]   # only the test point

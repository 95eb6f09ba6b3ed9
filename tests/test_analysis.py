"""analysis: probes, beliefs and metrics, computed apart from drawing; bad inputs are refused."""

import pytest
import torch
from torch import nn

from cnnlstm_edu.analysis import accuracy_per_step, beliefs, confusion_matrix, probe, recurrent_layer
from cnnlstm_edu.models import build_model


@pytest.mark.parametrize("name, kind", [("cnn_lstm", nn.LSTM), ("cnn_convlstm", "ConvLSTM")])
def test_recurrent_layer_is_the_sequence_layer(name, kind):
    layer = recurrent_layer(build_model(name))
    assert type(layer).__name__ == (kind if isinstance(kind, str) else kind.__name__)


def test_a_cell_is_not_a_sequence_layer():
    assert recurrent_layer(nn.Sequential(nn.LSTMCell(3, 4))) is None


def test_probe_beliefs_match_the_model_and_its_mode_comes_back():
    torch.manual_seed(0)
    model = build_model("cnn_lstm").train()
    seq = torch.rand(4, 1, 14, 14)                                  # (T, C, H, W)
    p = probe(model, seq)
    assert model.training
    with torch.no_grad():
        want = model.eval()(seq[None], all_steps=True)[0].softmax(-1)   # (T, classes)
    torch.testing.assert_close(p.probs, want)
    torch.testing.assert_close(beliefs(model, seq[None])[0], want)
    assert p.hidden.shape == (4, 128) and p.prediction == int(want[-1].argmax())


def test_probe_restores_the_mode_and_removes_its_hooks_on_error():
    model = build_model("cnn_lstm").train()
    with pytest.raises(Exception):
        probe(model, torch.rand(4, 2, 14, 14))                      # two channels: the CNN refuses
    assert model.training
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("seq", [torch.rand(2, 4, 1, 14, 14), torch.rand(14, 14)])
def test_probe_wants_one_sequence(seq):
    with pytest.raises(ValueError, match="probe: expected one sequence"):
        probe(build_model("cnn_lstm"), seq)


def test_accuracy_per_step():
    preds = torch.tensor([[1, 2, 3], [0, 2, 3], [3, 3, 3]])        # (N, T)
    torch.testing.assert_close(accuracy_per_step(preds, torch.tensor([0, 2, 3])),
                               torch.tensor([1 / 3, 2 / 3, 1 / 3]))
    with pytest.raises(ValueError, match=r"preds \(N, T\).*got preds \(3, 3\) and labels \(2,\)"):
        accuracy_per_step(preds, torch.tensor([0, 1]))


def test_confusion_matrix_counts_and_refuses_classes_out_of_range():
    cm = confusion_matrix(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 2, 2, 2]), num_classes=3)
    assert cm.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 2]]
    # Before: label 0 predicted as 3 with num_classes=3 was counted as label 1 predicted as 0.
    with pytest.raises(ValueError, match=r"preds must be classes 0 to 2 \(num_classes=3\), got 3"):
        confusion_matrix(torch.tensor([0]), torch.tensor([3]), num_classes=3)
    with pytest.raises(ValueError, match="labels must be classes 0 to 2"):
        confusion_matrix(torch.tensor([-1]), torch.tensor([0]), num_classes=3)
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        confusion_matrix(torch.tensor([0]), torch.tensor([0]), num_classes=0)

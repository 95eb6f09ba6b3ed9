"""train.predict: the classes (or logits) a classifier gives, after the last step or after every step."""

import pytest
import torch

from cnnlstm_edu.models import build_model
from cnnlstm_edu.train import predict


@pytest.mark.parametrize("name", ["cnn_lstm", "cnn_convlstm"])
def test_predict_matches_the_model_and_restores_its_mode(name):
    torch.manual_seed(0)
    model = build_model(name).train()
    x = torch.randint(0, 256, (7, 4, 1, 14, 14), dtype=torch.uint8)   # (N, T, C, H, W), uint8 as stored
    classes = predict(model, x, batch_size=3)                          # batches of 3, 3, 1
    steps = predict(model, x, batch_size=3, all_steps=True)
    logits = predict(model, x, logits=True, all_steps=True)
    assert model.training
    assert classes.shape == (7,) and steps.shape == (7, 4) and logits.shape == (7, 4, 10)
    model.eval()
    with torch.no_grad():
        want = model(x.float() / 255, all_steps=True)                  # (N, T, classes)
    torch.testing.assert_close(logits, want)
    assert torch.equal(steps, want.argmax(-1))
    assert torch.equal(classes, want[:, -1].argmax(-1))               # the last step is the prediction


def test_predict_refuses_a_video_for_the_wrong_model():
    with pytest.raises(ValueError):
        predict(build_model("cnn_lstm"), torch.rand(2, 4, 1, 28, 28))

"""The shipped MNIST frame CNN: what weights/README.md claims, and seed 002's trainable switch
(frozen: features computed once, weights untouched; fine-tuned: the same CNN, trained)."""

from importlib import resources

import pytest
import torch

from cnnlstm_edu import load_checkpoint, save_checkpoint
from cnnlstm_edu.models import (CNNLSTM, FeatureHead, build_model, frame_features, load_digit_classifier,
                                mnist_frame_cnn)
from cnnlstm_edu.modes import eval_mode
from cnnlstm_edu.train import evaluate, fit


def test_the_shipped_weights_are_small_and_as_accurate_as_their_readme_says(digits):
    path = resources.files("cnnlstm_edu").joinpath("weights", "mnist_frame_cnn.safetensors")
    assert path.is_file() and path.stat().st_size < 500_000
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    readme = resources.files("cnnlstm_edu").joinpath("weights", "README.md").read_text()
    assert f"{float(meta['test_accuracy']) * 100:.2f} %" in readme and meta["torch"] in readme
    images, labels = digits                                         # 1024 MNIST test digits
    _, acc = evaluate(load_digit_classifier(), images[:, None].float() / 255, labels)
    assert acc >= 0.98, f"the shipped classifier gets {acc:.3f} on 1024 test digits"


def test_the_pretrained_cnn_fits_any_frame_size_and_reads_colour_as_its_grey(digits):
    grey = digits[0][:4, None].float() / 255                           # (N, 1, 28, 28)
    with torch.no_grad():
        one, three = mnist_frame_cnn(1, 28).eval(), mnist_frame_cnn(3, 28).eval()
        torch.testing.assert_close(three(grey.expand(-1, 3, -1, -1)), one(grey))
        assert mnist_frame_cnn(1, (40, 32))(torch.zeros(2, 1, 40, 32)).shape == (2, 32 * 10 * 8)
    with pytest.raises(ValueError, match="in_channels must be 1 .* got 2"):
        mnist_frame_cnn(2)


def test_cnn_lstm_with_the_mnist_encoder_starts_from_the_shipped_weights():
    model = CNNLSTM(encoder="mnist", frame_size=28, num_classes=3)
    shipped = load_digit_classifier().cnn.state_dict()
    for name, tensor in model.encoder.module.state_dict().items():
        assert torch.equal(tensor, shipped[name]), name


@pytest.mark.parametrize("trainable", [False, True])
def test_frozen_keeps_the_frame_cnn_as_shipped_and_fine_tuned_trains_it(trainable, video):
    torch.manual_seed(0)
    model = CNNLSTM(encoder="mnist", trainable=trainable, frame_size=14, num_classes=2, hidden_size=8)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}  # BatchNorm statistics too
    x, y = video(b=16, t=3), torch.arange(16) % 2
    list(fit(model, (x, y), epochs=2, batch_size=8, device="cpu"))
    after = model.encoder.state_dict()
    unchanged = [torch.equal(before[k], after[k]) for k in before if "num_batches" not in k]
    assert all(unchanged) if not trainable else not all(unchanged)
    assert all(p.requires_grad == trainable for p in model.encoder.parameters())
    model.train()
    assert model.encoder.training == trainable                  # frozen BatchNorm stays in eval mode


def test_frozen_features_computed_once_give_the_whole_models_answer(video):
    torch.manual_seed(0)
    model = CNNLSTM(encoder="mnist", trainable=False, frame_size=14, num_classes=4, hidden_size=8)
    x = video(b=5, t=3)
    feats = frame_features(model, x, batch_size=2)                 # (N, T, F), in batches
    assert feats.shape == (5, 3, 32 * 3 * 3)
    head = FeatureHead(model)
    with eval_mode(model), torch.no_grad():
        torch.testing.assert_close(head(feats), model(x))
        torch.testing.assert_close(head(feats, all_steps=True), model(x, all_steps=True))
    trained = list(fit(head, (feats, torch.arange(5) % 4), epochs=1, batch_size=5, device="cpu"))
    assert trained[-1].kind == "end"
    assert model.lstm.weight_ih_l0 is head.lstm.weight_ih_l0       # the head trains the model itself


def test_a_frozen_pretrained_model_survives_a_checkpoint(tmp_path, video):
    model = CNNLSTM(encoder="mnist", trainable=False, frame_size=(14, 12), num_classes=3, hidden_size=8)
    save_checkpoint(model, tmp_path / "m.safetensors")
    loaded, _ = load_checkpoint(tmp_path / "m.safetensors")
    assert loaded.config == model.config and not loaded.config.trainable
    x = video(b=2, t=3, h=14, w=12)
    with eval_mode(model), eval_mode(loaded), torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_a_torchvision_backbone_is_pooled_to_one_vector_per_frame():
    model = build_model("cnn_lstm", encoder="mobilenet_v3_small", in_channels=3, frame_size=64,
                        num_classes=2, hidden_size=8)           # weights=None: untrained, no network
    assert model.lstm.input_size == 576
    assert model(torch.rand(1, 2, 3, 64, 64)).shape == (1, 2)


@pytest.mark.parametrize("options, pattern", [
    ({"encoder": "mnist", "channels": (8, 16)}, r"encoder='mnist' is the shipped CNN with channels=\(16, 32\)"),
    ({"encoder": "alexnet9"}, "unknown encoder 'alexnet9'"),
    ({"encoder": "resnet18", "in_channels": 1}, "reads RGB frames; got in_channels=1"),
    ({"trainable": "no"}, "trainable must be True or False"),
])
def test_bad_encoder_choices_are_refused_with_the_value(options, pattern):
    with pytest.raises(ValueError, match=pattern):
        CNNLSTM(**options)
    with pytest.raises(ValueError, match="weights= is for torchvision encoders"):
        CNNLSTM(weights="DEFAULT")


def test_frozen_features_are_cached_on_disk_keyed_on_clips_and_weights(tmp_path, video, monkeypatch):
    model = CNNLSTM(encoder="mnist", trainable=False, frame_size=14, num_classes=2, hidden_size=8)
    x = video(b=3, t=2)
    first = frame_features(model, x, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("features-*.safetensors"))) == 1

    def no_encoder(*args, **kwargs):
        raise AssertionError("the encoder ran although the features are cached")

    monkeypatch.setattr(model.encoder, "forward", no_encoder)
    assert torch.equal(frame_features(model, x, cache_dir=tmp_path), first)
    with pytest.raises(AssertionError, match="encoder ran"):
        frame_features(model, x + 1, cache_dir=tmp_path)             # other clips: computed
    monkeypatch.undo()
    with torch.no_grad():
        model.encoder.module.blocks[0][0].weight.add_(1)             # other weights: computed
    assert not torch.equal(frame_features(model, x, cache_dir=tmp_path), first)
    assert len(list(tmp_path.glob("features-*.safetensors"))) == 2

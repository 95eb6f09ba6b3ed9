"""A CNN-LSTM learns a folder of real clips (.mp4, .gif, frame folders), and variable-length
clips done right: packed by their lengths, the padding can't change the answer."""

import pytest
import torch

from cnnlstm_edu.data import video_folder, write_sample_clips
from cnnlstm_edu.models import CNNLSTM, FeatureHead, MaskedClassification, frame_features, with_lengths
from cnnlstm_edu.models.variable_length import keras_style_last_state, lengths_mask
from cnnlstm_edu.modes import eval_mode
from cnnlstm_edu.train import fit


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    """3 motion classes x 30 clips, 10 of each format, 8 frames of 32x32, read grey."""
    root = write_sample_clips(tmp_path_factory.mktemp("motion") / "clips", per_class=30, frames=8)
    return video_folder(root, frames=8, size=32, channels=1, progress=False)


def test_a_cnn_lstm_trained_on_a_folder_of_real_clips_classifies_held_out_clips(motion):
    train, test = motion.split(test_fraction=0.25, seed=0)
    assert len(test) == 24 and {f.rsplit(".", 1)[-1] if "." in f else "png" for f in test.files} == \
        {"mp4", "gif", "png"}
    torch.manual_seed(0)
    model = CNNLSTM(frame_size=32, num_classes=3, hidden_size=64)
    events = list(fit(model, (train.clips, train.labels), (test.clips, test.labels), epochs=7,
                      batch_size=16, lr=4e-3, device="cpu", seed=0, eval_every_epoch=False))
    assert events[-1].test_acc >= 0.9, f"held-out accuracy {events[-1].test_acc:.3f}"


def test_packed_lengths_make_the_padding_invisible_and_without_them_it_is_not(video):
    torch.manual_seed(0)
    model = CNNLSTM(frame_size=14, num_classes=5, hidden_size=16)
    x = video(b=3, t=6)                                            # (B, T, C, H, W)
    lengths = torch.tensor([6, 2, 4])
    garbage = x.clone()
    for b, n in enumerate(lengths):
        garbage[b, n:] = torch.randn_like(garbage[b, n:]) * 5      # anything at all past the end
    with eval_mode(model), torch.no_grad():
        packed = model(garbage, lengths=lengths)                   # (B, classes)
        steps = model(garbage, all_steps=True, lengths=lengths)    # (B, T, classes)
        for b, n in enumerate(lengths.tolist()):
            alone = model(x[b:b + 1, :n])                          # the clip without any padding
            torch.testing.assert_close(packed[b:b + 1], alone)
            torch.testing.assert_close(steps[b, :n], model(x[b:b + 1, :n], all_steps=True)[0])
            assert torch.equal(steps[b, n:], steps[b, n - 1].expand_as(steps[b, n:]))   # belief stays
        unmasked = model(garbage)                                  # the wrong answer: reads the padding
        assert not torch.allclose(unmasked[1:], packed[1:], atol=1e-3)
        torch.testing.assert_close(unmasked[0], packed[0])         # a full-length clip: no difference
        torch.testing.assert_close(model(x, lengths=torch.full((3,), 6)), model(x))


@pytest.mark.parametrize("num_layers", [1, 2])
def test_packing_and_keras_style_masking_give_the_same_last_state(num_layers):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 7, num_layers=num_layers, batch_first=True)
    feats, lengths = torch.randn(4, 6, 5), torch.tensor([6, 1, 3, 5])
    packed = torch.nn.utils.rnn.pack_padded_sequence(feats, lengths, batch_first=True, enforce_sorted=False)
    _, (h_n, _) = lstm(packed)
    with torch.no_grad():
        torch.testing.assert_close(keras_style_last_state(lstm, feats, lengths_mask(lengths, 6)), h_n[-1])


@pytest.mark.parametrize("lengths, pattern", [
    (torch.tensor([2, 0]), r"lengths must lie in 1..T=4"), (torch.tensor([5, 1]), r"lengths must lie in 1..T=4"),
    (torch.tensor([2.0, 3.0]), "whole numbers"), (torch.tensor([2, 3, 4]), r"shape \(2,\)"),
])
def test_bad_lengths_are_refused_with_the_values(video, lengths, pattern):
    with pytest.raises(ValueError, match=pattern):
        CNNLSTM()(video(b=2, t=4), lengths=lengths)


def test_masked_training_on_padded_clips_of_different_lengths(tmp_path):
    root = write_sample_clips(tmp_path / "v", per_class=12, frames=8, min_frames=3, formats=("gif",))
    data = video_folder(root, frames=8, size=32, channels=1, short="pad", progress=False)
    assert len(set(data.lengths.tolist())) > 1
    train, test = data.split(0.25)
    torch.manual_seed(0)
    model = CNNLSTM(frame_size=32, num_classes=3, hidden_size=16, encoder="mnist", trainable=False)
    head = FeatureHead(model)
    feats, test_feats = frame_features(model, train.clips), frame_features(model, test.clips)
    objective = MaskedClassification()
    events = list(fit(head, (feats, with_lengths(train.labels, train.lengths)),
                      (test_feats, with_lengths(test.labels, test.lengths)), epochs=3, batch_size=9,
                      device="cpu", objective=objective))
    # the objective's accuracy is the model's, clip by clip, each clip cut to its own length
    with eval_mode(model), torch.no_grad():
        alone = [int(model(test.clips[i:i + 1, :n].float() / 255).argmax()) for i, n in
                 enumerate(test.lengths.tolist())]
    expected = (torch.tensor(alone) == test.labels).float().mean().item()
    assert events[-1].test_acc == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"with_lengths\(labels, lengths\) of shape \(N, 2\)"):
        list(fit(head, (feats, train.labels), epochs=1, objective=objective))
    with pytest.raises(ValueError, match=r"lengths run from 1 to 9; they must lie in 1..T=8"):
        list(fit(head, (feats, with_lengths(train.labels, torch.arange(len(feats)) % 9 + 1)), epochs=1,
                 objective=objective))

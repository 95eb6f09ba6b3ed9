"""stream_accuracy: with a reset it scores each clip on its own; without, a stream is one long clip."""

import pytest
import torch

from cnnlstm_edu.models import CNNConvLSTM, CNNLSTM
from cnnlstm_edu.models.streaming import FrameStreamer
from cnnlstm_edu.stream_accuracy import stream_accuracy

V, S, T = 3, 5, 4          # videos per stream, streams, frames per video


@pytest.fixture(scope="module")
def clips_and_labels():
    torch.manual_seed(0)
    return torch.rand(V * S, T, 1, 14, 14), torch.randint(0, 10, (V * S,))   # (N, T, C, H, W), (N,)


@pytest.mark.parametrize("model_class", [CNNLSTM, CNNConvLSTM])
def test_with_reset_every_video_is_scored_on_its_own(model_class, clips_and_labels):
    clips, labels = clips_and_labels
    torch.manual_seed(1)
    model = model_class().eval()
    with torch.no_grad():
        right = (model(clips).argmax(-1) == labels).float()                  # (N,)
    expected = right.view(V, S).mean(1)                                       # video k of stream s is clip k*S + s
    assert torch.allclose(stream_accuracy(FrameStreamer(model), clips, labels, videos_per_stream=V), expected)


@pytest.mark.parametrize("model_class", [CNNLSTM, CNNConvLSTM])
def test_without_reset_a_stream_is_one_long_clip(model_class, clips_and_labels):
    clips, labels = clips_and_labels
    torch.manual_seed(2)
    model = model_class().eval()
    streams = clips.view(V, S, T, 1, 14, 14).transpose(0, 1).reshape(S, V * T, 1, 14, 14)   # (S, V*T, C, H, W)
    with torch.no_grad():
        beliefs = model(streams, all_steps=True)                               # (S, V*T, classes)
    last_frames = beliefs[:, T - 1::T].argmax(-1)                              # (S, V): after each video's last frame
    expected = (last_frames == labels.view(V, S).T).float().mean(0)            # (V,)
    got = stream_accuracy(FrameStreamer(model), clips, labels, videos_per_stream=V, reset=False)
    assert torch.allclose(got, expected)


def test_the_first_video_is_the_same_with_or_without_reset(clips_and_labels):
    clips, labels = clips_and_labels
    streamer = FrameStreamer(CNNLSTM().eval())
    kept = stream_accuracy(streamer, clips, labels, videos_per_stream=V, reset=False)
    assert kept[0] == stream_accuracy(streamer, clips, labels, videos_per_stream=V)[0]


@pytest.mark.parametrize("change, message", [
    (dict(videos_per_stream=0), "videos_per_stream"),
    (dict(videos_per_stream=2.5), "videos_per_stream"),
    (dict(videos_per_stream=4), "do not make streams of videos_per_stream=4"),
    (dict(reset="yes"), "reset must be True or False"),
    (dict(clips=(torch.rand(V * S, T, 1, 14, 14) * 255).to(torch.uint8)), "expected floating-point values"),
    (dict(clips=torch.rand(V * S, 1, 14, 14)), "stream_accuracy clips: expected"),
    (dict(labels=torch.zeros(V * S)), "labels must be class indices"),
    (dict(labels=torch.zeros(V * S - 1, dtype=torch.long)), "stream_accuracy labels"),
    (dict(streamer=CNNLSTM()), "streamer must be a FrameStreamer"),
])
def test_bad_inputs_are_refused_by_name(change, message, clips_and_labels):
    clips, labels = clips_and_labels
    args = dict(streamer=FrameStreamer(CNNLSTM().eval()), clips=clips, labels=labels, videos_per_stream=V)
    args.update(change)
    with pytest.raises((ValueError, TypeError), match=message):
        stream_accuracy(args.pop("streamer"), args.pop("clips"), args.pop("labels"), **args)

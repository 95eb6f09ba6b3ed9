"""explain / explain_shapes: each classic mistake said with its axes, its numbers and a fix that works."""

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as module_hooks

from cnnlstm_edu import ShapeError, TimeDistributed, explain, explain_shapes, fold_time, trace_shapes
from cnnlstm_edu.models.encoders import FrameCNN

B, T = 8, 4


def error_of(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the test wants whatever PyTorch raises
        return e
    raise AssertionError("expected an error")


def shape_error_of(fn):
    """The ShapeError that explain_shapes makes of ``fn``'s error (it records the module calls)."""
    with pytest.raises(ShapeError) as info:
        with explain_shapes():
            fn()
    return info.value


# --- the mistakes: small models that make them -----------------------------------------------------


class NoTimeDistributed(nn.Module):
    """Seed 004: a Conv2d fed the whole (B, T, C, H, W) clip ("expected ndim=4, found ndim=5")."""

    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.MaxPool2d(2))

    def forward(self, x):
        return self.cnn(x)


class DropsTime(nn.Module):
    """Seed 004: a reshape that forgets the time axis ("total size of new array must be unchanged")."""

    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.MaxPool2d(2))   # -> (32, 7, 7)

    def forward(self, x):
        maps = self.cnn(fold_time(x))         # (B*T, 32, 7, 7)
        return maps.view(x.shape[0], 1568)    # wrong: (B, T, -1)


class WrongInFeatures(nn.Module):
    def __init__(self, in_features=288):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.MaxPool2d(2), nn.Flatten(),
                                 nn.Linear(in_features, 64))

    def forward(self, x):
        return self.cnn(fold_time(x))


class WrongInputSize(nn.Module):
    def __init__(self, input_size=1568):
        super().__init__()
        self.encoder = TimeDistributed(FrameCNN(1, (16, 32), 14))          # 32 x 3 x 3 = 288 per frame
        self.lstm = nn.LSTM(input_size, 64, batch_first=True)

    def forward(self, x):
        return self.lstm(self.encoder(x))[0]


class NoStepPicked(nn.Module):
    """(B, T, H) into a head that wants (B, H): the Flatten quietly merges T into the features."""

    def __init__(self, pick=False):
        super().__init__()
        self.pick = pick
        self.encoder = TimeDistributed(FrameCNN(1, (4, 8), 14))
        self.lstm = nn.LSTM(72, 64, batch_first=True)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        out, _ = self.lstm(self.encoder(x))   # (B, T, H)
        return self.head(out[:, -1] if self.pick else out)


def must_mention(text, *parts):
    for part in parts:
        assert part in text, f"{part!r} not in:\n{text}"


# --- each mistake, without and with context --------------------------------------------------------


def test_video_into_conv2d(video):
    advice = explain(error_of(lambda: nn.Conv2d(1, 8, 3)(video(B))))
    must_mention(advice, "Conv2d", "(B=8, T=4, C=1, H=14, W=14)", "fold_time(x) -> (B*T=32, C=1, H=14, W=14)",
                 "unfold_time(y, steps=4)", "TimeDistributed(cnn)", "expected ndim=4, found ndim=5")


def test_video_into_maxpool2d_names_the_shape_when_the_call_was_watched(video):
    pool = nn.Sequential(nn.MaxPool2d(2))
    assert "fold_time" in explain(error_of(lambda: pool(video(B))))      # no shape in PyTorch's message
    must_mention(str(shape_error_of(lambda: pool(video(B)))), "In 0 (MaxPool2d)", "(B=8, T=4, C=1, H=14, W=14)")


@pytest.mark.parametrize("layer", [nn.BatchNorm2d(1), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(2)])
def test_video_into_other_frame_layers(video, layer):
    must_mention(str(shape_error_of(lambda: nn.Sequential(layer)(video(B)))), "B=8", "T=4", "fold_time")


def test_video_into_the_cnn_of_a_model_via_trace(video):
    e = error_of(lambda: trace_shapes(NoTimeDistributed(), video(B)))
    must_mention(explain(e), "In cnn.0 (Conv2d)", "(B=8, T=4, C=1, H=14, W=14)")


def test_reshape_that_drops_the_time_axis(video):
    advice = explain(error_of(lambda: torch.zeros(B * T, 32, 7, 7).view(B, 1568)))
    must_mention(advice, "50176 = 8 x 4 x 1568", "time axis T=4", "(B, T, -1) = (8, 4, 1568)")
    with_trace = explain(error_of(lambda: trace_shapes(DropsTime(), video(B))))
    must_mention(with_trace, "In the model (DropsTime)", "the time axis T=4", "x.reshape(8, 4, -1)")
    torch.zeros(B * T, 32, 7, 7).reshape(8, 4, -1)  # the advice's shape fits


def test_reshape_whose_last_size_is_wrong_gets_the_right_one():
    advice = explain(error_of(lambda: torch.zeros(B * T, 32, 7, 7).view(8, 4, 1600)))
    must_mention(advice, "50176 / 32 = 1568", "x.reshape(8, 4, -1) -> (8, 4, 1568)")


def test_linear_in_features_and_where_they_come_from(video):
    plain = explain(error_of(lambda: nn.Linear(288, 10)(torch.randn(B, 1568))))
    must_mention(plain, "in_features=1568", "C x H x W")
    watched = str(shape_error_of(lambda: WrongInFeatures()(video(B))))
    must_mention(watched, "In cnn.3 (Linear)", "in_features=1568", "1568 = C x H x W = 32 x 7 x 7", "cnn.1")
    traced = explain(error_of(lambda: trace_shapes(WrongInFeatures(), video(B))))
    must_mention(traced, "(B*T=32, C=32, H=7, W=7)")
    assert WrongInFeatures(in_features=1568)(video(B)).shape == (B * T, 64)   # the fix works


def test_lstm_input_size(video):
    plain = explain(error_of(lambda: nn.LSTM(1568, 64, batch_first=True)(torch.randn(B, T, 288))))
    must_mention(plain, "input_size=1568", "F=288", "input_size=288")
    traced = explain(error_of(lambda: trace_shapes(WrongInputSize(), video(B))))
    must_mention(traced, "In lstm (LSTM)", "(B=8, T=4, F=288)", "288 = C x H x W = 32 x 3 x 3", "input_size=288")
    assert WrongInputSize(input_size=288)(video(B)).shape == (B, T, 64)


def test_lstm_fed_steps_flattened_into_one_vector():
    # Seed 004's "expected ndim=3, found ndim=2": maps.flatten(1) gives (B, T*F). The naive fix,
    # input_size=T*F, would run silently (a 2-D input is one unbatched sequence), so the advice
    # must point at the lost time axis instead.
    lstm = nn.LSTM(288, 16, batch_first=True)
    flat = torch.randn(B, T * 288)                                   # (B, T*F)
    watched = str(shape_error_of(lambda: lstm(flat)))
    must_mention(watched, f"{T * 288} = {T} x 288", "time axis is gone", "expected ndim=3, found ndim=2",
                 f"x.reshape({B}, {T}, 288)", f"Do not build the layer with input_size={T * 288}")
    assert lstm(flat.reshape(B, T, 288))[0].shape == (B, T, 16)     # the fix works
    plain = explain(error_of(lambda: lstm(flat)))
    must_mention(plain, f"input_size={T * 288}", f"if the input is 2-D, (B, {T * 288})", f"(B, {T}, 288)")
    # A 3-D input keeps the old advice: nothing was flattened across steps.
    sized = str(shape_error_of(lambda: lstm(torch.randn(B, T, 576))))
    assert "2-D" not in sized and "input_size=576" in sized


def test_lstm_output_fed_on_without_picking_a_step(video):
    traced = explain(error_of(lambda: trace_shapes(NoStepPicked(), video(B))))
    must_mention(traced, "In head.1 (Linear)", "256 = 4 x 64", "T=4", "(B=8, T*F=256)", "output[:, -1]")
    watched = str(shape_error_of(lambda: NoStepPicked()(video(B))))
    must_mention(watched, "256 = 4 x 64", "output[:, -1] -> (B, H) = (8, 64)")
    assert NoStepPicked(pick=True)(video(B)).shape == (B, 10)


def test_logits_with_a_time_axis_reach_the_loss(video):
    model = NoStepPicked()
    model.head = nn.Linear(64, 10)   # quietly (B, T, 10)
    target = torch.zeros(B, dtype=torch.long)
    watched = str(shape_error_of(lambda: F.cross_entropy(model(video(B)), target)))
    must_mention(watched, "(8, 4, 10)", "(B, T=4, classes)", "out[:, -1]")
    folded = explain(error_of(lambda: F.cross_entropy(torch.randn(B * T, 10), target)))
    must_mention(folded, "32 = 8 x 4", "B*T", "time axis T")


def test_lstm_given_feature_maps():
    advice = explain(error_of(lambda: nn.LSTM(288, 64, batch_first=True)(torch.randn(B, T, 32, 3, 3))))
    must_mention(advice, "(B, T, F)", "flatten_spatial(x) -> (B, T, C*H*W)", "ConvLSTM")


def test_channels_last_frames():
    advice = explain(error_of(lambda: nn.Conv2d(1, 8, 3)(torch.randn(B, 14, 14, 1))))
    must_mention(advice, "in_channels=1", "channels-last (N, H, W, C)", "x.permute(0, 3, 1, 2)")


def test_state_of_the_wrong_batch():
    lstm = nn.LSTM(3, 64, batch_first=True)
    advice = explain(error_of(lambda: lstm(torch.randn(B, T, 3), (torch.zeros(1, 4, 64),) * 2)))
    must_mention(advice, "(L=1, B=8, H=64)", "batch axis is 4", "state=None")
    swapped = nn.LSTM(3, 64, num_layers=2, batch_first=True)
    advice = explain(error_of(lambda: swapped(torch.randn(B, T, 3), (torch.zeros(B, 2, 64),) * 2)))
    must_mention(advice, "(B, L, H)", "even with batch_first=True")


def test_every_explanation_names_axes(video):
    errors = [
        error_of(lambda: nn.Conv2d(1, 8, 3)(video(B))),
        error_of(lambda: torch.zeros(B * T, 32, 7, 7).view(B, 1568)),
        error_of(lambda: nn.Linear(288, 10)(torch.randn(B, 1568))),
        error_of(lambda: nn.LSTM(1568, 64, batch_first=True)(torch.randn(B, T, 288))),
        error_of(lambda: F.cross_entropy(torch.randn(B, T, 10), torch.zeros(B, dtype=torch.long))),
    ]
    for e in errors:
        assert re.search(r"\b(B|T|C x H x W|F)\b", explain(e)), explain(e)


# --- explain_shapes: what passes, what is re-raised, what is left behind --------------------------------


def test_explain_shapes_reraises_from_the_original(video):
    error = shape_error_of(lambda: nn.Conv2d(1, 8, 3)(video(B)))
    assert isinstance(error, ValueError) and isinstance(error.__cause__, RuntimeError)
    assert "conv2d" in str(error.__cause__)


def test_unrecognised_errors_pass_through_unchanged():
    original = RuntimeError("CUDA error: device-side assert triggered")
    with pytest.raises(RuntimeError) as info:
        with explain_shapes():
            raise original
    assert info.value is original
    ours = ShapeError("already plain")
    with pytest.raises(ShapeError) as info:
        with explain_shapes():
            raise ours
    assert info.value is ours


def test_explain_shapes_removes_its_global_hooks(video):
    before = (len(module_hooks._global_forward_pre_hooks), len(module_hooks._global_forward_hooks))
    with explain_shapes():
        nn.Linear(3, 2)(torch.randn(1, 3))
    shape_error_of(lambda: nn.Conv2d(1, 8, 3)(video(B)))
    assert (len(module_hooks._global_forward_pre_hooks), len(module_hooks._global_forward_hooks)) == before


def test_unrecognised_error_gets_an_honest_answer():
    advice = explain(KeyError("lstm"))
    must_mention(advice, "does not recognise", "will not guess", "KeyError: 'lstm'", "trace_shapes")


def test_explain_takes_an_explicit_trace(video):
    e = error_of(lambda: trace_shapes(WrongInputSize(), video(B)))
    trace = e.trace
    del e.trace
    assert "In lstm" not in explain(e)
    assert "In lstm (LSTM)" in explain(e, trace=trace)


def test_model_names_the_layer_when_nothing_else_does():
    model = WrongInputSize(input_size=288)
    e = error_of(lambda: model.lstm(torch.randn(B, T, 100)))
    assert explain(e).startswith("The LSTM was built with input_size=288")
    assert explain(e, model=model).startswith("In lstm (LSTM): the LSTM was built with input_size=288")


def test_explain_rejects_what_is_not_an_error():
    with pytest.raises(TypeError, match="exception"):
        explain("shape '[8, 1568]' is invalid for input of size 50176")


# --- layouts that get their own advice (issue 13, item 18) ---------------------------------------------


@pytest.mark.parametrize("C", [1, 3])
def test_a_video_fed_to_conv3d_is_told_to_move_time_behind_the_channels(C):
    x = torch.randn(2, 4, C, 14, 14)                        # (B, T, C, H, W); Conv3d wants (B, C, T, H, W)
    model = nn.Sequential(nn.Conv3d(C, 8, 3))
    for advice in (explain(error_of(lambda: model[0](x))),
                   explain(error_of(lambda: trace_shapes(model, x))),
                   str(shape_error_of(lambda: model(x)))):
        fix = advice.split("Fix:")[1]
        assert "Conv3d" in advice and "x.permute(0, 2, 1, 3, 4)" in fix and "unsqueeze" not in advice
        assert "(B=2, C=" + str(C) + ", T=4, H=14, W=14)" in fix


def test_channels_last_video_through_time_distributed_is_told_to_permute():
    model = TimeDistributed(nn.Conv2d(3, 8, 3))
    x = torch.randn(2, 4, 14, 14, 3)                        # (B, T, H, W, C): channels last
    for advice in (explain(error_of(lambda: model(x))),
                   explain(error_of(lambda: trace_shapes(model, x))),
                   str(shape_error_of(lambda: model(x)))):
        fix = advice.split("Fix:")[1]
        assert "channels-last" in advice and "x.permute(0, 1, 4, 2, 3)" in fix and "(B, T, C, H, W)" in fix
        assert "in_channels" not in fix and "C=14" not in advice and "W=3" not in advice

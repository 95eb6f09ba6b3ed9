"""trace_shapes: rows of every kind, axes that follow the data, warnings, hooks always removed."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn

from cnnlstm_edu import ConvLSTM, ShapeTrace, TimeDistributed, fold_time, trace_shapes
from cnnlstm_edu.__main__ import main
from cnnlstm_edu.models import build_model
from cnnlstm_edu.models.encoders import FrameCNN
from cnnlstm_edu.trace import AXIS_COLORS, WARNING_KINDS, format_shape

B, T = 2, 4


def small_cnn_lstm(**config):
    return build_model("cnn_lstm", channels=(4, 8), hidden_size=16, **config)


def all_hooks(model):
    return [h for m in model.modules() for h in (*m._forward_hooks, *m._forward_pre_hooks)]


# --- golden text: the trace reads like a diagram of seed 000's pipeline -------------------------


def test_cnn_lstm_golden(video, golden):
    trace = trace_shapes(build_model("cnn_lstm", channels=(16, 32), hidden_size=128), video())
    golden("trace_cnn_lstm", str(trace))


def test_cnn_convlstm_golden(video, golden):
    model = build_model("cnn_convlstm", channels=(4, 8), hidden_channels=8)
    golden("trace_cnn_convlstm", str(trace_shapes(model, video(), depth=2)))


def test_loop_mode_golden(video, golden):
    golden("trace_cnn_lstm_loop", str(trace_shapes(small_cnn_lstm(td_mode="loop"), video(), depth=3)))


def test_cnn_lstm_reads_like_the_pipeline(video):
    trace = trace_shapes(small_cnn_lstm(), video())
    assert trace["encoder"].format_inputs() == ["(B=2, T=4, C=1, H=14, W=14)"]
    assert trace["encoder.module"].format_inputs() == ["(B*T=8, C=1, H=14, W=14)"]   # fold
    assert trace["encoder.module"].format_outputs() == ["(B*T=8, F=72)"]
    assert trace["encoder"].format_outputs() == ["(B=2, T=4, F=72)"]                 # unfold
    assert trace["lstm"].format_outputs() == ["(B=2, T=4, H=16)", "(L=1, B=2, H=16)", "(L=1, B=2, H=16)"]
    assert trace["classifier"].format_inputs() == ["(B=2, H=16)"]                    # x[:, -1]
    assert trace.sizes == {"B": 2, "T": 4} and trace.warnings == []


# --- row kinds ----------------------------------------------------------------------------------


def test_tensor_row(video):
    row = trace_shapes(small_cnn_lstm(), video())["encoder.module.blocks.0.0"]
    assert (row.type, row.depth, row.calls, row.raised) == ("Conv2d", 5, 1, False)
    assert row.inputs == [(8, 1, 14, 14)] and row.outputs == [(8, 4, 14, 14)]
    assert row.input_names == ["input"] and row.output_names == ["output"]
    assert row.output_axes == [("B*T", "C", "H", "W")]


@pytest.mark.parametrize("rnn,names", [
    (nn.LSTM(3, 5, num_layers=2, batch_first=True), ["output", "h_n", "c_n"]),
    (nn.GRU(3, 5, batch_first=True), ["output", "h_n"]),
])
def test_tuple_row_lists_every_member(rnn, names):
    row = trace_shapes(rnn, torch.randn(B, T, 3))[""]
    L = rnn.num_layers
    assert row.output_names == names
    assert row.outputs == [(B, T, 5)] + [(L, B, 5)] * (len(names) - 1)
    assert row.output_axes == [("B", "T", "H")] + [("L", "B", "H")] * (len(names) - 1)


def test_state_inputs_are_named_and_labelled():
    lstm = nn.LSTM(3, 5, batch_first=True)
    state = (torch.zeros(1, B, 5), torch.zeros(1, B, 5))
    row = trace_shapes(lstm, torch.randn(B, T, 3), state)[""]
    assert row.input_names == ["input", "h_0", "c_0"]
    assert row.format_inputs() == ["(B=2, T=4, F=3)", "(L=1, B=2, H=5)", "(L=1, B=2, H=5)"]


def test_convlstm_row_has_the_nn_lstm_contract(video):
    row = trace_shapes(ConvLSTM(1, 6, 3, num_layers=2), video())[""]
    assert row.output_names == ["output", "h_n", "c_n"]
    assert row.output_axes == [("B", "T", "F", "H", "W")] + [("L", "B", "F", "H", "W")] * 2
    assert row.outputs == [(B, T, 6, 14, 14)] + [(2, B, 6, 14, 14)] * 2


def test_generic_tuple_and_dict_outputs_are_flattened_in_order():
    class Split(nn.Module):
        def forward(self, x):
            return x[:, 0], (x, {"last": x[:, -1]})

    row = trace_shapes(Split(), torch.randn(B, T, 3))[""]
    assert row.outputs == [(B, 3), (B, T, 3), (B, 3)]
    assert row.output_names == ["[0]", "[1][0]", "[1][1]['last']"]


@pytest.mark.parametrize("steps", [3, 5])
def test_loop_mode_is_one_row_per_module_with_a_count(video, steps):
    trace = trace_shapes(small_cnn_lstm(td_mode="loop"), video(t=steps))
    inner = [r for r in trace.rows if r.name.startswith("encoder.module")]
    assert len({r.name for r in inner}) == len(inner)             # no copies
    assert all(r.calls == steps for r in inner)                    # each called once per step
    assert trace["encoder.module"].format_inputs() == ["(B=2, C=1, H=14, W=14)"]   # x[:, t]
    assert trace["encoder"].output_axes == [("B", "T", "F")]
    assert "FrameCNN x" + str(steps) in str(trace)


def test_fold_and_loop_traces_agree_outside_the_encoder(video):
    fold, loop = (trace_shapes(small_cnn_lstm(td_mode=m), video()) for m in ("fold", "loop"))
    for name in ("", "encoder", "lstm", "classifier"):
        assert fold[name].outputs == loop[name].outputs
        assert fold[name].output_axes == loop[name].output_axes


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_depth_limits_nesting(video, depth):
    full = trace_shapes(small_cnn_lstm(), video())
    rows = trace_shapes(small_cnn_lstm(), video(), depth=depth).rows
    assert [r.name for r in rows] == [r.name for r in full.rows if r.depth <= depth]
    assert ("encoder.module" in [r.name for r in rows]) == (depth >= 2)


# --- axis labels ----------------------------------------------------------------------------------


def test_when_b_equals_t_structure_decides_not_sizes(video):
    trace = trace_shapes(small_cnn_lstm(), video(b=3, t=3))
    assert trace["encoder.module"].input_axes == [("B*T", "C", "H", "W")]
    assert trace["lstm"].input_axes == [("B", "T", "F")]
    assert trace["lstm"].output_axes[1] == ("L", "B", "H")


@pytest.mark.parametrize("b,t", [(1, 3), (3, 1)])
def test_a_batch_or_a_clip_of_one_still_folds_to_b_times_t(video, b, t):
    trace = trace_shapes(small_cnn_lstm(), video(b=b, t=t))
    assert trace["encoder.module"].input_axes == [("B*T", "C", "H", "W")]
    assert trace["encoder"].output_axes == [("B", "T", "F")]


def test_squeeze_unsqueeze_and_reductions_keep_names():
    class Steps(nn.Module):
        def forward(self, x):                          # (B, T, F)
            return x.mean(1).unsqueeze(1), x[:1].squeeze(0), x.permute(2, 0, 1)

    row = trace_shapes(Steps(), torch.randn(B, T, 3))[""]
    assert row.output_axes == [("B", None, "F"), ("T", "F"), ("F", "B", "T")]


def test_axes_can_be_given_and_unknown_axes_stay_bare():
    conv = nn.Conv2d(3, 8, 3)
    assert trace_shapes(conv, torch.randn(4, 3, 9, 9), axes="N C H W")[""].input_axes == [("N", "C", "H", "W")]
    mixer = nn.Linear(6, 2)
    row = trace_shapes(mixer, torch.randn(5, 6, 6, 6, 6, 6))[""]   # 6-D: no guess
    assert row.output_axes == [(None,) * 6]
    assert format_shape(row.outputs[0], row.output_axes[0]) == "(5, 6, 6, 6, 6, 2)"


def test_bad_arguments(video):
    with pytest.raises(ValueError, match="names 3 axes"):
        trace_shapes(nn.Identity(), video(), axes="B T F")
    with pytest.raises(TypeError, match="nn.Module"):
        trace_shapes(lambda x: x, video())
    for depth in (-1, 1.5, "2", True):
        with pytest.raises(ValueError, match=r"trace_shapes: depth must be a whole number of at least 0"):
            trace_shapes(nn.Identity(), video(), depth=depth)


# --- warnings: legal code that is almost surely wrong ---------------------------------------------


class Unbatched(nn.Module):
    """Seed 004's mistake: flatten every frame's features together, so the LSTM gets (B, T*F)."""

    def __init__(self):
        super().__init__()
        self.cnn = TimeDistributed(FrameCNN(1, (4, 8), 14))
        self.lstm = nn.LSTM(4 * 72, 16, batch_first=True)

    def forward(self, x):
        return self.lstm(self.cnn(x).flatten(1))[0]  # (B, T*F): the time axis is gone


class TimeMajor(nn.Module):
    def __init__(self, batch_first=True):
        super().__init__()
        self.lstm = nn.LSTM(3, 16, batch_first=batch_first)

    def forward(self, x):
        return self.lstm(x.transpose(0, 1) if self.lstm.batch_first else x)[0]


class ViewSwap(nn.Module):
    """Frames folded time-major, then unfolded as if batch-major: a view where a permute belongs."""

    def __init__(self):
        super().__init__()
        self.cnn = FrameCNN(1, (4, 8), 14)
        self.lstm = nn.LSTM(72, 16, batch_first=True)

    def forward(self, x):
        b, t = x.shape[:2]
        frames = fold_time(x.transpose(0, 1))    # (T*B, C, H, W)
        feats = self.cnn(frames)                 # (T*B, F)
        return self.lstm(feats.view(b, t, -1))[0]  # wrong: view(T, B, -1).transpose(0, 1)


@pytest.mark.parametrize("model,x,kind,where", [
    (Unbatched(), torch.randn(B, T, 1, 14, 14), "unbatched", "lstm"),
    (TimeMajor(), torch.randn(B, T, 3), "time_major", "lstm"),
    (TimeMajor(batch_first=False), torch.randn(B, T, 3), "batch_major", "lstm"),
    (ViewSwap(), torch.randn(B, T, 1, 14, 14), "view_swap", ""),
])
def test_each_warning(model, x, kind, where):
    trace = trace_shapes(model, x)
    assert [(w.kind, w.module) for w in trace.warnings] == [(kind, where)]
    assert kind in WARNING_KINDS
    assert str(trace).count("warning: ") == 1


def test_warnings_golden(video, golden):
    golden("trace_warnings", "\n\n".join(str(trace_shapes(m, x, depth=1)) for m, x in [
        (Unbatched(), video()), (TimeMajor(), torch.randn(B, T, 3)),
        (TimeMajor(batch_first=False), torch.randn(B, T, 3)), (ViewSwap(), video())]))


def test_the_view_swap_warning_is_about_a_real_difference(video):
    feats = torch.arange(T * B * 3.0).view(T * B, 3)            # row t*B + b: time-major
    wrong = feats.view(B, T, 3)
    right = feats.view(T, B, 3).transpose(0, 1)
    assert not torch.equal(wrong, right)
    assert trace_shapes(ViewSwap(), video()).warnings[0].message.count("transpose(0, 1)") == 1


def test_sizes_alone_warn_only_when_b_and_t_differ():
    class Fresh(nn.Module):
        """Feeds the LSTM a tensor made from scratch, so only its sizes can tell T from B."""

        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, 4, batch_first=True)

        def forward(self, x):
            return self.lstm(torch.zeros(x.shape[1], x.shape[0], 3))[0]   # (T, B, F) sizes

    assert [w.kind for w in trace_shapes(Fresh(), torch.randn(2, 4, 3)).warnings] == ["time_major"]
    assert trace_shapes(Fresh(), torch.randn(3, 3, 3)).warnings == []      # B == T: say nothing
    assert [w.kind for w in trace_shapes(TimeMajor(), torch.randn(3, 3, 3)).warnings] == ["time_major"]


def test_correct_models_raise_no_warnings(video):
    for model in (small_cnn_lstm(), build_model("cnn_convlstm", channels=(4, 8), hidden_channels=8)):
        assert trace_shapes(model, video()).warnings == []


# --- hooks, modes and state are left as they were ---------------------------------------------------


def test_hooks_removed_and_mode_restored_after_success(video):
    model = small_cnn_lstm().train()
    stats = model.encoder.module.blocks[0][2].running_mean.clone()
    trace_shapes(model, video())
    assert all_hooks(model) == [] and model.training and model.encoder.module.training
    assert torch.equal(stats, model.encoder.module.blocks[0][2].running_mean)   # BatchNorm untouched


def test_hooks_removed_after_an_exception_and_the_partial_trace_is_attached(video):
    model = small_cnn_lstm()
    model.lstm = nn.LSTM(100, 8, batch_first=True)        # 72 features arrive
    with pytest.raises(RuntimeError, match="input_size") as info:
        trace_shapes(model, video())
    assert all_hooks(model) == []
    trace = info.value.trace
    assert isinstance(trace, ShapeTrace) and trace.error is info.value
    assert trace.failed.name == "lstm" and trace.failed.inputs == [(B, T, 72)]
    assert trace[""].raised and not trace["encoder"].raised
    assert "(raised)" in str(trace) and "raised in lstm" in str(trace)


class WrongInputSize(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = TimeDistributed(FrameCNN(1, (4, 8), 14))   # 72 features per frame
        self.lstm = nn.LSTM(100, 8, batch_first=True)

    def forward(self, x):
        return self.lstm(self.encoder(x))[0]


def test_partial_trace_golden(video, golden):
    with pytest.raises(RuntimeError) as info:
        trace_shapes(WrongInputSize(), video(), depth=2)
    golden("trace_partial", str(info.value.trace))


def test_a_forward_that_catches_its_own_error_still_traces():
    class Careful(nn.Module):
        def __init__(self):
            super().__init__()
            self.bad, self.good = nn.Linear(5, 2), nn.Linear(3, 2)

        def forward(self, x):
            try:
                return self.bad(x)
            except RuntimeError:
                return self.good(x)

    trace = trace_shapes(Careful(), torch.randn(B, 3))
    assert trace[""].outputs == [(B, 2)] and trace["good"].outputs == [(B, 2)]


# --- views: HTML, plot, CLI ----------------------------------------------------------------------------


def test_html_colours_time_and_fold(video):
    page = trace_shapes(small_cnn_lstm(), video())._repr_html_()
    assert page.startswith("<table") and page.count("<tr>") >= 10
    assert AXIS_COLORS["time"] in page and AXIS_COLORS["folded"] in page and "B*T=8" in page


def test_plot_draws_one_box_per_stage_with_fold_and_unfold(video):
    trace = trace_shapes(small_cnn_lstm(), video())
    titles = [stage.title for stage in trace.stages()]
    assert titles[:4] == ["input", "fold (B, T) -> B*T", "encoder.module: FrameCNN", "unfold B*T -> (B, T)"]
    assert titles[-1] == "classifier: Linear" and "lstm: LSTM" in titles
    assert len(titles) == len(trace.stages(depth=1)) + 2       # depth 1: the encoder is one box
    fig = trace.plot()
    colours = {matplotlib.colors.to_hex(p.get_facecolor()) for p in fig.axes[0].patches}
    assert {AXIS_COLORS["time"], AXIS_COLORS["folded"], AXIS_COLORS["batch"]} <= colours
    loop = trace_shapes(small_cnn_lstm(td_mode="loop"), video())
    assert loop.stages()[1].title == "loop: x[:, t], 4 calls"


def test_cli_prints_the_trace(capsys):
    assert main(["trace", "--model", "cnn_lstm", "--batch", "3", "--steps", "5", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "(B=3, T=5, C=1, H=14, W=14)" in out and "h_n" in out and "c_n" in out


# --- packed sequences (issue 13, item 17) --------------------------------------------------------------


class PackedRNN(nn.Module):
    """Variable-length clips the torch way: pack, run the RNN, pad back, classify from h_n."""

    def __init__(self, rnn: type = nn.LSTM, with_state: bool = False):
        super().__init__()
        self.rnn = rnn(8, 16, batch_first=True)
        self.head = nn.Linear(16, 3)
        self.with_state = with_state

    def forward(self, x, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        state = None
        if self.with_state:
            h = torch.zeros(1, x.shape[0], 16)
            state = (h, h.clone()) if isinstance(self.rnn, nn.LSTM) else h
        out, state = self.rnn(packed, state)
        padded, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
        h_n = state[0] if isinstance(state, tuple) else state
        return self.head(h_n[-1]), padded


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU])
def test_a_packed_sequence_is_one_labelled_input(rnn, with_state):
    trace = trace_shapes(PackedRNN(rnn, with_state), torch.randn(3, 5, 8), torch.tensor([5, 3, 4]))
    row = trace["rnn"]
    states = ["h_0", "c_0"][: 2 if rnn is nn.LSTM else 1] if with_state else []
    assert row.input_names == ["input.data", "input.batch_sizes"] + states
    assert row.format_inputs() == ["(sum(T)=12, F=8)", "(T=5)"] + ["(L=1, B=3, H=16)"] * len(states)
    n_states = 2 if rnn is nn.LSTM else 1
    assert row.output_names == ["output.data", "output.batch_sizes", "h_n", "c_n"][: 2 + n_states]
    assert row.format_outputs() == ["(sum(T)=12, H=16)", "(T=5)"] + ["(L=1, B=3, H=16)"] * n_states
    assert trace["head"].format_inputs() == ["(B=3, H=16)"]            # h_n[-1]
    assert trace[""].format_outputs()[1] == "(B=3, T=5, H=16)"          # pad_packed_sequence undoes the packing
    assert trace.warnings == []                                         # no "unbatched" warning
    assert "sum(T) steps of every sequence, packed" in str(trace)


def test_packed_golden(golden):
    torch.manual_seed(0)
    trace = trace_shapes(PackedRNN(nn.LSTM, with_state=True), torch.randn(3, 5, 8), torch.tensor([5, 3, 4]))
    golden("trace_packed", str(trace))


def test_pipeline_figure_shows_as_png_without_a_display_hook(video):
    # The lessons show trace.plot() as a picture; nothing registers a display hook at import,
    # so the figure carries its own PNG representation.
    fig = trace_shapes(build_model("cnn_lstm"), video()).plot()
    assert fig._repr_png_()[:4] == b"\x89PNG"

"""ConvLSTM and ConvLSTMCell: shapes, the identity with nn.LSTM, gradients, dropout, bad inputs."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from cnnlstm_edu.layers.convlstm import ConvLSTM, ConvLSTMCell, conv2d_padded, same_padding
from cnnlstm_edu.shapes import ShapeError

B, T, C, H, W, F = 2, 3, 3, 6, 5, 4


def _clip(batch_first=True, b=B, t=T, c=C, h=H, w=W):
    x = torch.randn(b, t, c, h, w)  # (B, T, C, H, W)
    return x if batch_first else x.transpose(0, 1).contiguous()  # (T, B, C, H, W)


@pytest.mark.parametrize("kernel_size", [1, 3, (3, 5), 2, 4, (2, 3)])
@pytest.mark.parametrize("num_layers, padding", [(1, "same"), (2, "same"), (1, "valid")])  # valid: 1 layer only
@pytest.mark.parametrize("batch_first", [True, False])
def test_shapes(kernel_size, num_layers, batch_first, padding):
    rnn = ConvLSTM(C, F, kernel_size, num_layers=num_layers, batch_first=batch_first, padding=padding)
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    Ho, Wo = (H, W) if padding == "same" else (H - kh + 1, W - kw + 1)
    assert rnn.output_size(H, W) == (Ho, Wo)

    output, (h_n, c_n) = rnn(_clip(batch_first))
    time_major = (T, B) if not batch_first else (B, T)
    assert output.shape == (*time_major, F, Ho, Wo)
    assert h_n.shape == c_n.shape == (num_layers, B, F, Ho, Wo)
    last = output[-1] if not batch_first else output[:, -1]
    assert_close(last, h_n[-1])


def test_parameter_names_and_layout_match_nn_lstm():
    rnn = ConvLSTM(C, F, (3, 5), num_layers=2)
    ref = nn.LSTM(C, F, num_layers=2)
    assert list(rnn.state_dict()) == list(ref.state_dict())
    for name, p in rnn.named_parameters():
        q = ref.get_parameter(name)
        assert p.shape[: q.dim()] == q.shape, name  # (4F, C_in) then the kernel (kh, kw)
    assert rnn.weight_ih_l0.shape == (4 * F, C, 3, 5)
    assert rnn.weight_hh_l1.shape == (4 * F, F, 3, 5)
    assert rnn.bias_ih_l1.shape == (4 * F,)


def test_init_is_uniform_like_nn_lstm():
    rnn = ConvLSTM(C, 16, 3, num_layers=2, peephole=True)
    bound = 1 / 16**0.5
    for name, p in rnn.named_parameters():
        assert p.abs().max() <= bound, name
        assert p.abs().max() > bound / 2, name  # not zeros or a tiny init


def test_no_bias():
    rnn = ConvLSTM(C, F, 3, num_layers=2, bias=False)
    assert not [n for n, _ in rnn.named_parameters() if "bias" in n]
    assert list(rnn.state_dict()) == list(nn.LSTM(C, F, num_layers=2, bias=False).state_dict())
    assert rnn(_clip())[0].shape == (B, T, F, H, W)


def _lstm_to_convlstm(ref: nn.LSTM) -> dict:
    # (4F, C) -> (4F, C, 1, 1): the only difference between a dense and a 1x1 convolution weight.
    return {k: v.reshape(*v.shape, 1, 1) if k.startswith("weight") else v for k, v in ref.state_dict().items()}


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("input_conv", ["per_step", "hoisted"])
def test_1x1_convlstm_on_1x1_frames_is_nn_lstm(num_layers, with_state, batch_first, input_conv):
    torch.manual_seed(0)
    I, Hd, b, t = 5, 7, 3, 6
    ref = nn.LSTM(I, Hd, num_layers=num_layers, batch_first=batch_first)
    rnn = ConvLSTM(I, Hd, kernel_size=1, num_layers=num_layers, batch_first=batch_first)
    rnn.input_conv = input_conv
    rnn.load_state_dict(_lstm_to_convlstm(ref))

    seq = torch.randn(b, t, I) if batch_first else torch.randn(t, b, I)
    clip = seq[..., None, None]  # (B, T, I, 1, 1): each feature vector becomes a 1x1 frame
    if with_state:
        h0, c0 = torch.randn(num_layers, b, Hd), torch.randn(num_layers, b, Hd)
        want, (want_h, want_c) = ref(seq, (h0, c0))
        got, (got_h, got_c) = rnn(clip, (h0[..., None, None], c0[..., None, None]))
    else:
        want, (want_h, want_c) = ref(seq)
        got, (got_h, got_c) = rnn(clip)
    assert_close(got[..., 0, 0], want)
    assert_close(got_h[..., 0, 0], want_h)
    assert_close(got_c[..., 0, 0], want_c)


def test_each_pixel_is_an_independent_lstm_for_1x1_kernels():
    ref = nn.LSTM(C, F, batch_first=True)
    rnn = ConvLSTM(C, F, kernel_size=1)
    rnn.load_state_dict(_lstm_to_convlstm(ref))
    x = _clip()
    got, _ = rnn(x)
    seq = x.permute(0, 3, 4, 1, 2).reshape(B * H * W, T, C)  # (B*H*W, T, C): one sequence per pixel
    want, _ = ref(seq)                                       # (B*H*W, T, F)
    assert_close(got, want.reshape(B, H, W, T, F).permute(0, 3, 4, 1, 2))


@pytest.mark.parametrize("kernel_size", [3, 2, (2, 3)])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("peephole", [False, True])
@pytest.mark.parametrize("input_conv", ["per_step", "hoisted"])
def test_sequence_equals_looping_the_cell(kernel_size, padding, peephole, input_conv):
    rnn = ConvLSTM(C, F, kernel_size, padding=padding, peephole=peephole)
    rnn.input_conv = input_conv
    cell = ConvLSTMCell(C, F, kernel_size, padding=padding, peephole=peephole)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in rnn.state_dict().items()})
    x = _clip()
    Ho, Wo = rnn.output_size(H, W)
    h0, c0 = torch.randn(1, B, F, Ho, Wo), torch.randn(1, B, F, Ho, Wo)
    for state in (None, (h0, c0)):
        output, (h_n, c_n) = rnn(x, state)
        s = None if state is None else (h0[0], c0[0])
        for t in range(T):
            s = cell(x[:, t], s)
            assert_close(output[:, t], s[0])
        assert_close(h_n[0], s[0])
        assert_close(c_n[0], s[1])


@pytest.mark.parametrize(
    "kernel_size, num_layers, padding, peephole, batch_first",
    [(3, 2, "same", False, True), ((2, 3), 1, "same", True, False), (4, 1, "valid", False, True),
     ((3, 2), 1, "valid", True, True), (1, 2, "same", True, False)],
)
@pytest.mark.parametrize("with_state", [False, True])
def test_hoisted_and_per_step_input_convolutions_agree(kernel_size, num_layers, padding, peephole,
                                                       batch_first, with_state):
    # Two ways to compute the input half of the gates (one convolution over all frames before the
    # loop, or one over [x_t, h] inside it): the same numbers, gradients included.
    torch.manual_seed(0)
    rnn = ConvLSTM(C, F, kernel_size, num_layers=num_layers, padding=padding, peephole=peephole,
                   batch_first=batch_first)
    Ho, Wo = rnn.output_size(H, W)
    x = _clip(batch_first)
    state = (torch.randn(num_layers, B, F, Ho, Wo), torch.randn(num_layers, B, F, Ho, Wo)) if with_state else None
    results = []
    for input_conv in ("hoisted", "per_step"):
        rnn.input_conv = input_conv
        rnn.zero_grad()
        xg = x.clone().requires_grad_()
        output, (h_n, c_n) = rnn(xg, state)
        (output.sum() + c_n.sum()).backward()
        results.append((output, h_n, c_n, xg.grad, *(p.grad.clone() for p in rnn.parameters())))
    for a, b in zip(*results):
        assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_input_conv_auto_picks_per_step_on_cpu_and_rejects_unknown_values():
    rnn = ConvLSTM(C, F, 3)
    assert rnn.input_conv == "auto"
    assert not rnn._hoists(_clip())
    rnn.input_conv = "fused"
    with pytest.raises(ValueError, match="'auto', 'hoisted' or 'per_step', got 'fused'"):
        rnn(_clip())


def test_same_padding_puts_the_extra_pixel_at_the_end():
    assert same_padding((3, 3)) == (1, 1, 1, 1)
    assert same_padding((1, 1)) == (0, 0, 0, 0)
    assert same_padding((2, 2)) == (0, 1, 0, 1)
    assert same_padding((4, 5)) == (2, 2, 1, 2)
    # A 2x2 kernel that picks the top-left pixel of its window must return the input unchanged:
    # with the padding at the bottom/right, window (r, c) starts at pixel (r, c).
    x = torch.randn(1, 1, 4, 5)
    w = torch.zeros(1, 1, 2, 2)
    w[..., 0, 0] = 1
    assert_close(conv2d_padded(x, w, None, "same"), x)


def test_peephole_adds_per_channel_weights_and_changes_the_output():
    rnn = ConvLSTM(C, F, 3, num_layers=2, peephole=True)
    names = [n for n, _ in rnn.named_parameters() if n.startswith("weight_c")]
    assert names == [f"weight_c{g}_l{k}" for k in range(2) for g in "ifo"]
    assert rnn.weight_ci_l0.shape == (F, 1, 1)
    x = _clip()
    out = rnn(x)[0]
    with torch.no_grad():
        for n in names:
            rnn.get_parameter(n).zero_()
    plain = ConvLSTM(C, F, 3, num_layers=2)
    plain.load_state_dict({k: v for k, v in rnn.state_dict().items() if not k.startswith("weight_c")})
    assert_close(rnn(x)[0], plain(x)[0])  # zero peepholes = no peepholes
    assert not torch.allclose(out, plain(x)[0])


@pytest.mark.parametrize("peephole", [False, True])
@pytest.mark.parametrize("input_conv", ["per_step", "hoisted"])
def test_gradients_reach_input_state_and_every_parameter(peephole, input_conv):
    rnn = ConvLSTM(C, F, 3, num_layers=2, peephole=peephole)
    rnn.input_conv = input_conv
    x = _clip().requires_grad_()
    h0 = torch.randn(2, B, F, H, W, requires_grad=True)
    c0 = torch.randn(2, B, F, H, W, requires_grad=True)
    output, (h_n, c_n) = rnn(x, (h0, c0))
    (output.sum() + c_n.sum()).backward()
    for t in (x, h0, c0):
        assert t.grad is not None and t.grad.abs().sum() > 0
    for name, p in rnn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("input_conv", ["per_step", "hoisted"])
def test_gradcheck_double_precision(input_conv):
    rnn = ConvLSTM(2, 2, (2, 3), num_layers=2, peephole=True).double()
    rnn.input_conv = input_conv
    x = torch.randn(1, 2, 2, 2, 3, dtype=torch.double, requires_grad=True)  # (B, T, C, H, W), tiny
    assert torch.autograd.gradcheck(lambda x: rnn(x)[0], (x,))


def test_dropout_between_layers_only_in_training():
    rnn = ConvLSTM(C, F, 3, num_layers=2, dropout=0.5)
    x = _clip()
    rnn.eval()
    assert_close(rnn(x)[0], rnn(x)[0])
    rnn.train()
    torch.manual_seed(1)
    a = rnn(x)[0]
    torch.manual_seed(2)
    b = rnn(x)[0]
    assert not torch.allclose(a, b)
    # The same weights without dropout give the eval-mode numbers: dropout acts in training only.
    no_dropout = ConvLSTM(C, F, 3, num_layers=2)
    no_dropout.load_state_dict(rnn.state_dict())
    rnn.eval()
    assert_close(rnn(x)[0], no_dropout(x)[0])


def test_dropout_is_not_applied_after_the_last_layer():
    with pytest.warns(UserWarning, match="num_layers=1"):
        rnn = ConvLSTM(C, F, 3, dropout=0.9)
    rnn.train()
    x = _clip()
    assert_close(rnn(x)[0], rnn(x)[0])


def test_cell_shapes_and_zero_state():
    cell = ConvLSTMCell(C, F, (2, 3))
    x = torch.randn(B, C, H, W)
    h, c = cell(x)
    assert h.shape == c.shape == (B, F, H, W)
    zeros = torch.zeros(B, F, H, W)
    assert_close(cell(x, (zeros, zeros))[0], h)
    valid = ConvLSTMCell(C, F, (2, 3), padding="valid")
    assert valid(x)[0].shape == (B, F, H - 1, W - 2)
    assert [n for n, _ in cell.named_parameters()] == [n for n, _ in nn.LSTMCell(C, F).named_parameters()]


def test_works_in_double_and_on_noncontiguous_input():
    rnn = ConvLSTM(C, F, 3).double()
    x = _clip().double().transpose(3, 4).contiguous().transpose(3, 4)  # strided, not contiguous
    assert rnn(x)[0].dtype == torch.double


# --- bad input ----------------------------------------------------------------------------------


def test_4d_input_suggests_a_batch_axis():
    rnn = ConvLSTM(C, F, 3)
    with pytest.raises(ShapeError, match=r"\(B, T, C=3, H, W\).*\(3, 3, 6, 5\).*unsqueeze\(0\)"):
        rnn(torch.randn(T, C, H, W))


def test_wrong_channel_count_names_in_channels():
    rnn = ConvLSTM(C, F, 3)
    with pytest.raises(ShapeError, match=r"axis C is 6, not 3.*in_channels=3.*permute"):
        rnn(torch.randn(B, T, H, W, 6))


def test_time_major_error_names_time_major_axes():
    rnn = ConvLSTM(C, F, 3, batch_first=False)
    with pytest.raises(ShapeError, match=r"\(T, B, C=3, H, W\).*unsqueeze\(1\)"):
        rnn(torch.randn(T, C, H, W))


def test_empty_sequence_raises():
    with pytest.raises(ShapeError, match="at least one"):
        ConvLSTM(C, F, 3)(torch.randn(B, 0, C, H, W))


def test_non_tensor_input_raises_type_error():
    with pytest.raises(TypeError, match="torch.Tensor"):
        ConvLSTM(C, F, 3)([[1.0]])


@pytest.mark.parametrize("bad", ["h_batch", "c_grid", "layers", "single"])
def test_wrong_state_names_expected_and_received(bad):
    rnn = ConvLSTM(C, F, 3, num_layers=2)
    good = torch.zeros(2, B, F, H, W)
    state = {
        "h_batch": (torch.zeros(2, B + 1, F, H, W), good),
        "c_grid": (good, torch.zeros(2, B, F, H - 1, W)),
        "layers": (torch.zeros(1, B, F, H, W), torch.zeros(1, B, F, H, W)),
        "single": good,
    }[bad]
    with pytest.raises(ValueError, match=r"num_layers=2, B=2, F=4, H'=6, W'=5") as err:
        rnn(_clip(), state)
    if bad != "single":
        assert isinstance(err.value, ShapeError)
        assert "got (" in str(err.value)


def test_valid_state_uses_the_shrunk_grid():
    rnn = ConvLSTM(C, F, 3, padding="valid")
    with pytest.raises(ShapeError, match=r"H'=4, W'=3.*got \(1, 2, 4, 6, 5\)"):
        rnn(_clip(), (torch.zeros(1, B, F, H, W), torch.zeros(1, B, F, H, W)))
    out, state = rnn(_clip())
    assert rnn(_clip(), state)[0].shape == (B, T, F, H - 2, W - 2)


def test_valid_with_layers_raises_and_says_to_stack():
    with pytest.raises(ValueError, match="num_layers=1.*Stack single-layer ConvLSTMs"):
        ConvLSTM(C, F, 3, num_layers=2, padding="valid")


def test_valid_on_frames_smaller_than_the_kernel():
    with pytest.raises(ShapeError, match="smaller than the 5x5 kernel"):
        ConvLSTM(C, F, 5, padding="valid")(_clip(h=4))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(in_channels=0), "in_channels must be a positive int, got 0"),
        (dict(hidden_channels=-2), "hidden_channels must be a positive int, got -2"),
        (dict(hidden_channels=2.5), "hidden_channels must be a positive int"),
        (dict(kernel_size=0), "kernel_size must be positive"),
        (dict(kernel_size=(3, 0)), "kernel_size must be positive"),
        (dict(kernel_size=(3, 3, 3)), "an int or a pair"),
        (dict(num_layers=0), "num_layers must be a positive int, got 0"),
        (dict(padding="full"), "padding must be 'same'.*or 'valid'.*got 'full'"),
        (dict(dropout=1.5), r"dropout must be a probability in \[0, 1\], got 1.5"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    args = dict(in_channels=C, hidden_channels=F, kernel_size=3) | kwargs
    with pytest.raises(ValueError, match=match):
        ConvLSTM(**args)


def test_cell_bad_input():
    cell = ConvLSTMCell(C, F, 3)
    with pytest.raises(ShapeError, match=r"\(B, C=3, H, W\).*for a whole .*ConvLSTM"):
        cell(_clip())
    with pytest.raises(ShapeError, match=r"B=2, F=4, H'=6, W'=5.*got \(2, 4, 6, 6\)"):
        cell(torch.randn(B, C, H, W), (torch.zeros(B, F, H, H), torch.zeros(B, F, H, W)))
    with pytest.raises(ValueError, match="kernel_size"):
        ConvLSTMCell(C, F, (0, 1))


def test_padding_is_case_insensitive_like_keras():
    assert ConvLSTM(C, F, 3, padding="SAME").padding == "same"


def test_repr_mentions_the_configuration():
    text = repr(ConvLSTM(C, F, (3, 5), num_layers=2, padding="same", peephole=True))
    assert "kernel_size=(3, 5)" in text and "num_layers=2" in text and "peephole=True" in text


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("input_conv", ["per_step", "hoisted"])
def test_state_is_contiguous_and_output_reshapes_like_nn_lstm(batch_first, input_conv):
    # Inside, the layer runs time-major. Like nn.LSTM (whose batch-first output is a transposed
    # view too), it returns h_n, c_n contiguous and the output as a view.
    rnn = ConvLSTM(C, F, 3, num_layers=2, batch_first=batch_first)
    rnn.input_conv = input_conv
    output, (h_n, c_n) = rnn(_clip(batch_first), (torch.zeros(2, B, F, H, W), torch.zeros(2, B, F, H, W)))
    assert h_n.is_contiguous() and c_n.is_contiguous()
    assert output.reshape(-1).numel() == B * T * F * H * W
    assert output.contiguous().view(-1).numel() == B * T * F * H * W

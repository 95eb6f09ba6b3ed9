"""The from-scratch LSTMCell and LSTM equal nn.LSTMCell and nn.LSTM; peepholes and gates behave."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from cnnlstm_edu.layers.lstm import LSTM, LSTMCell, LSTMGates
from cnnlstm_edu.shapes import ShapeError


@pytest.mark.parametrize("input_size, hidden_size, batch", [(1, 1, 1), (3, 5, 2), (10, 20, 4), (7, 2, 3)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_state", [False, True])
def test_cell_equals_nn_lstmcell(input_size, hidden_size, batch, bias, with_state):
    torch.manual_seed(0)
    ref = nn.LSTMCell(input_size, hidden_size, bias=bias)
    cell = LSTMCell(input_size, hidden_size, bias=bias)
    cell.load_state_dict(ref.state_dict())  # same names and layout: loads as is
    x = torch.randn(batch, input_size)
    state = (torch.randn(batch, hidden_size), torch.randn(batch, hidden_size)) if with_state else None
    want_h, want_c = ref(x, state)
    got_h, got_c = cell(x, state)
    assert_close(got_h, want_h)
    assert_close(got_c, want_c)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("with_state", [False, True])
def test_sequence_equals_nn_lstm(batch_first, with_state):
    torch.manual_seed(1)
    I, Hd, B, T = 4, 6, 3, 7
    ref = nn.LSTM(I, Hd, batch_first=batch_first)
    lstm = LSTM(I, Hd, batch_first=batch_first)
    # nn.LSTM names its layer-0 weights weight_ih_l0 ...; the cell has no layer suffix.
    lstm.cell.load_state_dict({k.removesuffix("_l0"): v for k, v in ref.state_dict().items()})
    x = torch.randn(B, T, I) if batch_first else torch.randn(T, B, I)
    state = (torch.randn(1, B, Hd), torch.randn(1, B, Hd)) if with_state else None
    want, (want_h, want_c) = ref(x, state)
    got, (got_h, got_c) = lstm(x, state)
    assert got.shape == want.shape
    assert_close(got, want)
    assert_close(got_h, want_h)
    assert_close(got_c, want_c)


def test_gates_are_in_their_ranges_and_rebuild_the_state():
    torch.manual_seed(2)
    cell = LSTMCell(5, 8, peephole=True)
    x, h, c = torch.randn(4, 5) * 3, torch.randn(4, 8), torch.randn(4, 8)
    (h2, c2), gates = cell(x, (h, c), return_gates=True)
    assert isinstance(gates, LSTMGates)
    for name in "ifo":
        g = getattr(gates, name)
        assert g.shape == (4, 8)
        assert ((g > 0) & (g < 1)).all(), name
    assert ((gates.g > -1) & (gates.g < 1)).all()
    # The gates are the whole story: c' = f*c + i*g, h' = o*tanh(c').
    assert_close(c2, gates.f * c + gates.i * gates.g)
    assert_close(h2, gates.o * torch.tanh(c2))


def test_sequence_returns_gates_over_time():
    lstm = LSTM(3, 4, batch_first=False)
    x = torch.randn(6, 2, 3)  # (T, B, I)
    output, (h_n, c_n), gates = lstm(x, return_gates=True)
    assert output.shape == (6, 2, 4)
    assert h_n.shape == c_n.shape == (1, 2, 4)
    for g in gates:
        assert g.shape == (2, 6, 4)  # (B, T, H): time on axis 1 for plotting, whatever batch_first says
    assert_close(gates.o[:, -1] * torch.tanh(c_n[0]), h_n[0])


def test_peephole_parameters_change_the_output_and_get_gradients():
    torch.manual_seed(3)
    cell = LSTMCell(3, 5, peephole=True)
    assert cell.weight_ci.shape == cell.weight_cf.shape == cell.weight_co.shape == (5,)
    plain = LSTMCell(3, 5)
    plain.load_state_dict({k: v for k, v in cell.state_dict().items() if not k.startswith("weight_c")})
    x, state = torch.randn(2, 3), (torch.randn(2, 5), torch.randn(2, 5))
    h, c = cell(x, state)
    assert not torch.allclose(h, plain(x, state)[0])
    (h.sum() + c.sum()).backward()
    for name in ("weight_ci", "weight_cf", "weight_co"):
        grad = getattr(cell, name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_peephole_output_gate_sees_the_new_cell():
    # With every weight zero except w_co, o = σ(w_co ⊙ c'): the output gate reads the *new* cell.
    cell = LSTMCell(2, 3, peephole=True)
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()
        cell.weight_co.fill_(2.0)
    c_old = torch.full((1, 3), 4.0)
    (h, c), gates = cell(torch.zeros(1, 2), (torch.zeros(1, 3), c_old), return_gates=True)
    assert_close(c, 0.5 * c_old)  # f = σ(0) = 1/2, g = tanh(0) = 0
    assert_close(gates.o, torch.sigmoid(2.0 * c))


def test_gradients_flow_through_time():
    lstm = LSTM(3, 4, peephole=True)
    x = torch.randn(2, 5, 3, requires_grad=True)
    output, _ = lstm(x)
    output[:, -1].sum().backward()
    assert x.grad[:, 0].abs().sum() > 0  # the last output depends on the first step


def test_init_matches_nn_lstmcell_bound():
    cell = LSTMCell(3, 16, peephole=True)
    for name, p in cell.named_parameters():
        assert p.abs().max() <= 0.25, name


# --- bad input ----------------------------------------------------------------------------------


def test_cell_rejects_an_unbatched_vector_with_advice():
    with pytest.raises(ShapeError, match=r"\(B, I=3\).*got \(3,\).*unsqueeze\(0\)"):
        LSTMCell(3, 4)(torch.randn(3))


def test_cell_rejects_wrong_feature_size():
    with pytest.raises(ShapeError, match="axis I is 5, not 3"):
        LSTMCell(3, 4)(torch.randn(2, 5))


def test_cell_rejects_wrong_state():
    with pytest.raises(ShapeError, match=r"state c should be \(B=2, H=4\), got \(2, 5\)"):
        LSTMCell(3, 4)(torch.randn(2, 3), (torch.zeros(2, 4), torch.zeros(2, 5)))
    with pytest.raises(ValueError, match="pair"):
        LSTMCell(3, 4)(torch.randn(2, 3), torch.zeros(2, 4))


def test_sequence_rejects_bad_input_and_state():
    lstm = LSTM(3, 4)
    with pytest.raises(ShapeError, match=r"\(B, T, I=3\).*unsqueeze\(0\)"):
        lstm(torch.randn(5, 3))
    with pytest.raises(ShapeError, match=r"num_layers=1, B=2, H=4.*got \(2, 4\)"):
        lstm(torch.randn(2, 5, 3), (torch.zeros(2, 4), torch.zeros(2, 4)))


@pytest.mark.parametrize("args", [(0, 4), (3, -1), (3, 2.0)])
def test_bad_sizes(args):
    with pytest.raises(ValueError, match="must be a positive int"):
        LSTMCell(*args)

"""Stateful: chunked streaming equals the whole sequence; reset, detach and batch checks."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from cnnlstm_edu.layers.convlstm import ConvLSTM
from cnnlstm_edu.layers.stateful import Stateful
from cnnlstm_edu.shapes import ShapeError

T = 9


def make(kind: str):
    """A small recurrent layer and a matching (B=2, T, ...) batch-first input."""
    torch.manual_seed(0)
    if kind == "lstm":
        return nn.LSTM(3, 4, num_layers=2, batch_first=True), torch.randn(2, T, 3)
    if kind == "gru":
        return nn.GRU(3, 4, num_layers=2, batch_first=True), torch.randn(2, T, 3)
    if kind == "lstm_time_major":
        return nn.LSTM(3, 4), torch.randn(T, 2, 3)
    if kind == "convlstm":
        return ConvLSTM(2, 3, kernel_size=3, num_layers=2), torch.randn(2, T, 2, 4, 4)
    raise ValueError(kind)


KINDS = ["lstm", "gru", "lstm_time_major", "convlstm"]


def time_axis(rnn) -> int:
    return 1 if rnn.batch_first else 0


def run_in_chunks(rnn, x, sizes):
    stream = Stateful(rnn)
    axis = time_axis(rnn)
    parts = [stream(chunk) for chunk in x.split(list(sizes), dim=axis)]
    return torch.cat(parts, dim=axis), stream


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sizes", [(T,), (1,) * T, (4, 5), (2, 3, 4), (8, 1), (1, 7, 1)])
def test_chunks_equal_the_whole_sequence(kind, sizes):
    rnn, x = make(kind)
    whole, whole_state = rnn(x)
    chunked, stream = run_in_chunks(rnn, x, sizes)
    assert_close(chunked, whole)
    assert_close(stream.state, whole_state)  # tensor for GRU, (h, c) for LSTMs: compared as trees


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(KINDS), cuts=st.sets(st.integers(1, T - 1), max_size=T - 1))
def test_any_random_chunking_equals_the_whole_sequence(kind, cuts):
    rnn, x = make(kind)
    bounds = [0, *sorted(cuts), T]
    sizes = [b - a for a, b in zip(bounds, bounds[1:])]
    chunked, _ = run_in_chunks(rnn, x, sizes)
    assert_close(chunked, rnn(x)[0])


@pytest.mark.parametrize("kind", KINDS)
def test_reset_state_starts_from_zeros_again(kind):
    rnn, x = make(kind)
    stream = Stateful(rnn)
    first = stream(x)
    assert stream.state is not None
    assert not torch.allclose(stream(x), first)  # the second pass remembers the first
    stream.reset_state()
    assert stream.state is None
    assert_close(stream(x), first)


@pytest.mark.parametrize("kind", KINDS)
def test_detach_state_cuts_the_graph_but_keeps_the_values(kind):
    rnn, x = make(kind)
    axis = time_axis(rnn)
    early, late = (c.clone().requires_grad_() for c in x.split([4, T - 4], dim=axis))
    stream = Stateful(rnn)
    stream(early)
    before = stream.state
    stream.detach_state()
    assert_close(stream.state, before)
    leaves = [stream.state] if isinstance(stream.state, torch.Tensor) else list(stream.state)
    assert all(t.grad_fn is None and not t.requires_grad for t in leaves)
    stream(late).sum().backward()
    assert early.grad is None  # the graph stopped at the chunk boundary
    assert late.grad is not None and late.grad.abs().sum() > 0


def test_without_detach_the_gradient_reaches_earlier_chunks():
    rnn, x = make("lstm")
    early, late = (c.clone().requires_grad_() for c in x.split([4, T - 4], dim=1))
    stream = Stateful(rnn)
    stream(early)
    stream(late).sum().backward()
    assert early.grad is not None and early.grad.abs().sum() > 0


def test_truncated_bptt_training_loop_runs():
    rnn, x = make("convlstm")
    stream = Stateful(rnn)
    opt = torch.optim.SGD(rnn.parameters(), lr=0.01)
    for chunk in x.split(3, dim=1):
        opt.zero_grad()
        stream(chunk).pow(2).mean().backward()  # would fail on the 2nd chunk without detach_state
        opt.step()
        stream.detach_state()


@pytest.mark.parametrize("kind", KINDS)
def test_a_different_batch_size_asks_for_reset_state(kind):
    rnn, x = make(kind)
    stream = Stateful(rnn)
    stream(x)
    batch_axis = 0 if rnn.batch_first else 1
    smaller = x.narrow(batch_axis, 0, 1)
    with pytest.raises(ValueError, match=r"batch of 1 .* for 2 .*reset_state\(\)"):
        stream(smaller)
    stream.reset_state()
    assert stream(smaller).shape[batch_axis] == 1


def test_state_stays_out_of_the_state_dict():
    rnn, x = make("lstm")
    stream = Stateful(rnn)
    stream(x)
    assert list(stream.state_dict()) == [f"rnn.{k}" for k in rnn.state_dict()]


def test_wrapping_a_non_module_raises():
    with pytest.raises(TypeError, match="Stateful wraps a module"):
        Stateful(lambda x, s: (x, s))


# --- issue 13, item 15: a bidirectional layer cannot stream ------------------------------------


@pytest.mark.parametrize("layer", [nn.LSTM, nn.GRU, nn.RNN])
def test_a_bidirectional_layer_is_refused_at_construction(layer):
    rnn = layer(3, 4, batch_first=True, bidirectional=True)
    with pytest.raises(ValueError, match=r"bidirectional.*backward direction.*future frames"):
        Stateful(rnn)


def test_why_a_bidirectional_layer_is_refused_its_chunks_differ_from_the_whole():
    # What Stateful would have returned: the backward direction of the first chunk never saw
    # the frames after it, so its output is not the whole sequence's.
    torch.manual_seed(0)
    rnn, x = nn.LSTM(3, 4, batch_first=True, bidirectional=True), torch.randn(2, T, 3)
    first, state = rnn(x[:, :4])
    second, _ = rnn(x[:, 4:], state)
    assert not torch.allclose(torch.cat([first, second], dim=1), rnn(x)[0], atol=1e-3)


# --- issue 13, item 16: a cell streams like a loop over the cell -------------------------------


def make_cell(kind: str):
    """A recurrent cell and a matching (B=2, T, ...) chunk of steps."""
    from cnnlstm_edu.layers.convlstm import ConvLSTMCell
    from cnnlstm_edu.layers.lstm import LSTMCell

    torch.manual_seed(0)
    cells = {"lstm_cell": lambda: nn.LSTMCell(3, 4), "gru_cell": lambda: nn.GRUCell(3, 4),
             "rnn_cell": lambda: nn.RNNCell(3, 4), "our_lstm_cell": lambda: LSTMCell(3, 4)}
    if kind == "convlstm_cell":
        return ConvLSTMCell(2, 3, kernel_size=3), torch.randn(2, T, 2, 4, 4)
    return cells[kind](), torch.randn(2, T, 3)


CELLS = ["lstm_cell", "gru_cell", "rnn_cell", "our_lstm_cell", "convlstm_cell"]


def loop_over_cell(cell, x):
    """The reference: one cell call per step, the state carried by hand; h at every step."""
    state, hs = None, []
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)                   # h, or (h, c) for an LSTM cell
        hs.append(state if isinstance(state, torch.Tensor) else state[0])
    return torch.stack(hs, dim=1), state               # (B, T, H...), the last state


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("sizes", [(T,), (1,) * T, (4, 5), (2, 3, 4)])
def test_a_cell_streamed_in_chunks_equals_a_loop_over_the_cell(kind, sizes):
    cell, x = make_cell(kind)
    whole, last = loop_over_cell(cell, x)
    stream = Stateful(cell)
    parts = [stream(chunk) for chunk in x.split(list(sizes), dim=1)]
    assert [p.shape[1] for p in parts] == list(sizes)
    assert_close(torch.cat(parts, dim=1), whole)
    assert_close(stream.state, last)                   # h for GRU/RNN cells, (h, c) for LSTM cells


@pytest.mark.parametrize("kind", CELLS)
def test_a_cell_forgets_on_reset_and_checks_the_batch(kind):
    cell, x = make_cell(kind)
    stream = Stateful(cell)
    first = stream(x)
    assert not torch.allclose(stream(x), first)
    with pytest.raises(ValueError, match=r"batch of 1 .* for 2 .*reset_state\(\)"):
        stream(x[:1])
    stream.reset_state()
    assert_close(stream(x), first)


@pytest.mark.parametrize("kind", CELLS)
def test_a_cell_wants_a_chunk_of_steps_not_one_step(kind):
    cell, x = make_cell(kind)
    with pytest.raises(ShapeError, match=r"chunk of steps .*unsqueeze\(1\)"):
        Stateful(cell)(x[:, 0])                        # one step (B, ...): no time axis


def test_feed_in_chunks_takes_a_cell():
    from cnnlstm_edu.layers.stateful import feed_in_chunks

    cell, x = make_cell("gru_cell")
    assert_close(torch.cat(feed_in_chunks(cell, x, 4), dim=1), loop_over_cell(cell, x)[0])


def test_a_module_that_does_not_return_output_and_state_is_refused():
    class Doubler(nn.Module):
        def forward(self, x, state=None):
            return 2 * x                               # one tensor: no (output, state) pair

    with pytest.raises(TypeError, match=r"\(output, state\).*Doubler returned a Tensor"):
        Stateful(Doubler())(torch.randn(2, T, 3))

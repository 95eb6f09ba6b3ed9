"""feed_in_chunks: any chunking of a sequence gives the whole sequence's output; bad sizes are refused."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from cnnlstm_edu.layers.convlstm import ConvLSTM
from cnnlstm_edu.layers.stateful import feed_in_chunks


def make(kind: str):
    torch.manual_seed(0)
    if kind == "lstm":
        return nn.LSTM(3, 4, num_layers=2, batch_first=True), torch.randn(2, 9, 3), 1
    if kind == "lstm_time_major":
        return nn.LSTM(3, 4), torch.randn(9, 2, 3), 0
    if kind == "convlstm":
        return ConvLSTM(2, 3, kernel_size=3), torch.randn(2, 9, 2, 4, 4), 1
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["lstm", "lstm_time_major", "convlstm"])
@pytest.mark.parametrize("sizes", [1, 2, 4, 9, 20, [9], [2, 3, 4], [8, 1]])
def test_chunks_concatenate_to_the_whole_output(kind, sizes):
    rnn, x, axis = make(kind)
    parts = feed_in_chunks(rnn, x, sizes)
    expected = [len(c) for c in torch.arange(9).split(sizes)]      # e.g. 4 -> [4, 4, 1]
    assert [p.shape[axis] for p in parts] == expected
    assert_close(torch.cat(parts, dim=axis), rnn(x)[0])


@pytest.mark.parametrize("sizes", [0, -1, True, [4, 4], [4, 6], [0, 9], [4.5, 4.5]])
def test_bad_sizes_are_refused_with_the_length(sizes):
    rnn, x, _ = make("lstm")
    with pytest.raises(ValueError, match="feed_in_chunks"):
        feed_in_chunks(rnn, x, sizes)


def test_an_unbatched_sequence_is_refused():
    rnn = nn.LSTM(3, 4, batch_first=True)
    with pytest.raises(ValueError, match=r"\(B, T, I\)"):
        feed_in_chunks(rnn, torch.randn(9, 3), 3)

"""keras_state_dict and ConvLSTM.from_keras without Keras: the layout mapping and the refusals.

The numbers against Keras itself are in test_keras_parity.py.
"""

import numpy as np
import pytest
import torch

from cnnlstm_edu.layers.convlstm import ConvLSTM, keras_state_dict


def test_keras_state_dict_permutes_and_puts_the_bias_in_bias_ih():
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((3, 2, 4, 12)).astype("float32")       # (kh, kw, C, 4F)
    recurrent = rng.standard_normal((3, 2, 3, 12)).astype("float32")    # (kh, kw, F, 4F)
    bias = rng.standard_normal(12).astype("float32")
    state = keras_state_dict([[kernel, recurrent, bias]])
    assert state["weight_ih_l0"].shape == (12, 4, 3, 2)
    # Output channel o, input channel c, kernel position (y, x): the same number in both layouts.
    assert state["weight_ih_l0"][5, 1, 2, 0] == torch.tensor(kernel[2, 0, 1, 5])
    assert state["weight_hh_l0"][7, 2, 1, 1] == torch.tensor(recurrent[1, 1, 2, 7])
    assert torch.equal(state["bias_ih_l0"], torch.from_numpy(bias))
    assert not state["bias_hh_l0"].any()
    ConvLSTM(4, 3, (3, 2)).load_state_dict(state)


def test_keras_state_dict_stacks_layers_and_allows_no_bias():
    layer = [np.zeros((3, 3, 2, 8), "float32"), np.zeros((3, 3, 2, 8), "float32")]   # use_bias=False
    state = keras_state_dict([layer, layer])
    assert sorted(state) == ["weight_hh_l0", "weight_hh_l1", "weight_ih_l0", "weight_ih_l1"]
    ConvLSTM(2, 2, 3, num_layers=2, bias=False).load_state_dict(state)


@pytest.mark.parametrize("weights", [[np.zeros((3, 3, 2, 8))], [np.zeros((8, 2)), np.zeros((8, 2)), np.zeros(8)]])
def test_keras_state_dict_refuses_what_is_not_convlstm_weights(weights):
    with pytest.raises(ValueError, match="kernel"):
        keras_state_dict([weights])


class ConvLSTM2D:
    """Just enough of a Keras ConvLSTM2D (by name and attributes) for the checks."""

    name = "fake"
    built = True
    strides = dilation_rate = (1, 1)
    data_format = "channels_last"
    filters, kernel_size, padding, use_bias, go_backwards = 2, (3, 3), "same", True, False

    def __init__(self, recurrent_activation="sigmoid"):
        self.activation = np.tanh
        self.recurrent_activation = type("act", (), {"__name__": recurrent_activation})()

    def get_weights(self):
        return [np.zeros((3, 3, 1, 8), "float32"), np.zeros((3, 3, 2, 8), "float32"), np.zeros(8, "float32")]


def test_from_keras_builds_the_matching_layer():
    rnn = ConvLSTM.from_keras(ConvLSTM2D())
    assert (rnn.in_channels, rnn.hidden_channels, rnn.kernel_size, rnn.num_layers) == (1, 2, (3, 3), 1)
    assert torch.equal(rnn.bias_ih_l0, torch.zeros(8))


def test_from_keras_refuses_keras2_hard_sigmoid_and_other_layers():
    with pytest.raises(ValueError, match="hard_sigmoid"):
        ConvLSTM.from_keras(ConvLSTM2D("hard_sigmoid"))
    with pytest.raises(TypeError, match="ConvLSTM2D"):
        ConvLSTM.from_keras(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="no layers"):
        ConvLSTM.from_keras([])

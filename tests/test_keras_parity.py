"""ConvLSTM with weights copied from Keras ConvLSTM2D gives Keras' numbers.

How the two layouts line up (Keras 3, ``keras/src/layers/rnn/conv_lstm.py``):

* data: Keras is channels-last ``(B, T, H, W, C)``, we are ``(B, T, C, H, W)``; its states are
  ``(B, H', W', F)``, ours ``(num_layers, B, F, H', W')``.
* ``kernel`` ``(kh, kw, C, 4F)`` -> ``weight_ih`` ``(4F, C, kh, kw)``, a ``permute(3, 2, 0, 1)``;
  ``recurrent_kernel`` likewise -> ``weight_hh``. Keras stacks the gates i, f, c, o along the
  last axis, which is nn.LSTM's i, f, g, o: no reordering.
* one ``bias`` ``(4F,)`` -> ``bias_ih``, with ``bias_hh`` zero (only the sum matters).
* ``recurrent_activation`` is ``"sigmoid"`` in Keras 3 (Keras 2's ``ConvLSTM2D`` defaulted to
  ``"hard_sigmoid"``, so numbers from an old Keras 2 model differ unless it was changed).
* ``padding`` applies to the input convolution; the recurrent one is always ``"same"``. For an
  even kernel Keras puts the extra padding row/column at the bottom/right.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.testing import assert_close  # noqa: E402

keras = pytest.importorskip("keras")

from cnnlstm_edu.layers.convlstm import ConvLSTM, keras_state_dict  # noqa: E402

# Keras' numpy conversion trips a NumPy 2 deprecation inside Keras itself; it is not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

B, T, C, H, W, F = 2, 4, 3, 7, 6, 5
TOL = dict(atol=1e-5, rtol=1e-5)


def keras_weights_to_state_dict(keras_layers) -> dict:
    """The state dict of a ConvLSTM with one layer per Keras ``ConvLSTM2D`` in ``keras_layers``:
    the library's mapping (``keras_state_dict``), which these tests check against Keras."""
    return keras_state_dict(keras_layers)


def to_channels_last(x: torch.Tensor) -> np.ndarray:
    return x.movedim(-3, -1).numpy()  # (..., C, H, W) -> (..., H, W, C)


def from_channels_last(y) -> torch.Tensor:
    return torch.from_numpy(keras.ops.convert_to_numpy(y)).movedim(-1, -3)  # (..., H, W, F) -> (..., F, H, W)


def build_keras(num_layers, kernel_size, padding, randomize):
    """Keras ConvLSTM2D layers (stacked), built on our input shape, optionally with random weights."""
    layers, c_in = [], C
    rng = np.random.default_rng(0)
    for _ in range(num_layers):
        layer = keras.layers.ConvLSTM2D(
            F, kernel_size, padding=padding, return_sequences=True, return_state=True
        )
        layer.build((None, T, H, W, c_in))
        if randomize:
            # Keras' own init (orthogonal recurrent kernel, bias 1 on the forget gate only) is
            # tested below; random values also exercise every bias entry.
            layer.set_weights([rng.uniform(-0.4, 0.4, w.shape).astype("float32") for w in layer.get_weights()])
        layers.append(layer)
        c_in = F
    return layers


def run_keras(layers, x: torch.Tensor, state=None):
    """Feed ``x`` (B, T, C, H, W) through the stacked Keras layers; return ours-shaped results."""
    seq, hs, cs = to_channels_last(x), [], []
    for k, layer in enumerate(layers):
        initial = None if state is None else [to_channels_last(state[0][k]), to_channels_last(state[1][k])]
        seq, h, c = layer(seq, initial_state=initial)
        hs.append(from_channels_last(h))
        cs.append(from_channels_last(c))
    return from_channels_last(seq), torch.stack(hs), torch.stack(cs)


@pytest.mark.parametrize("kernel_size", [3, (3, 5), 2, 4, (2, 3), 1])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("input_conv", ["per_step", "hoisted"])
def test_one_layer_matches_keras(kernel_size, padding, input_conv):
    torch.manual_seed(0)
    layers = build_keras(1, kernel_size, padding, randomize=True)
    ours = ConvLSTM(C, F, kernel_size, padding=padding)
    ours.input_conv = input_conv
    ours.load_state_dict(keras_weights_to_state_dict(layers))
    x = torch.randn(B, T, C, H, W)
    want, want_h, want_c = run_keras(layers, x)
    got, (got_h, got_c) = ours(x)
    assert got.shape == want.shape
    assert_close(got, want, **TOL)
    assert_close(got_h, want_h, **TOL)
    assert_close(got_c, want_c, **TOL)


@pytest.mark.parametrize("kernel_size", [3, (2, 3)])
def test_keras_default_init_copies_over(kernel_size):
    # The user's story: a model trained in Keras, its weights loaded into PyTorch.
    keras.utils.set_random_seed(1)
    layers = build_keras(1, kernel_size, "same", randomize=False)
    ours = ConvLSTM(C, F, kernel_size)
    ours.load_state_dict(keras_weights_to_state_dict(layers))
    x = torch.randn(B, T, C, H, W)
    want, want_h, want_c = run_keras(layers, x)
    got, (got_h, got_c) = ours(x)
    assert_close(got, want, **TOL)
    assert_close(got_c, want_c, **TOL)


@pytest.mark.parametrize("kernel_size", [3, 4, (3, 2)])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("input_conv", ["per_step", "hoisted"])
def test_two_stacked_keras_layers_match_num_layers_2(kernel_size, with_state, input_conv):
    torch.manual_seed(2)
    layers = build_keras(2, kernel_size, "same", randomize=True)
    ours = ConvLSTM(C, F, kernel_size, num_layers=2)
    ours.input_conv = input_conv
    ours.load_state_dict(keras_weights_to_state_dict(layers))
    x = torch.randn(B, T, C, H, W)
    state = (torch.randn(2, B, F, H, W), torch.randn(2, B, F, H, W)) if with_state else None
    want, want_h, want_c = run_keras(layers, x, state)
    got, (got_h, got_c) = ours(x, state)
    assert_close(got, want, **TOL)
    assert_close(got_h, want_h, **TOL)
    assert_close(got_c, want_c, **TOL)


@pytest.mark.parametrize("kernel_size", [3, (2, 4)])
def test_initial_state_with_valid_padding(kernel_size):
    torch.manual_seed(3)
    layers = build_keras(1, kernel_size, "valid", randomize=True)
    ours = ConvLSTM(C, F, kernel_size, padding="valid", batch_first=False)
    ours.load_state_dict(keras_weights_to_state_dict(layers))
    Ho, Wo = ours.output_size(H, W)
    x = torch.randn(B, T, C, H, W)
    state = (torch.randn(1, B, F, Ho, Wo), torch.randn(1, B, F, Ho, Wo))
    want, want_h, want_c = run_keras(layers, x, state)
    got, (got_h, got_c) = ours(x.transpose(0, 1), state)  # time-major input, same numbers
    assert_close(got.transpose(0, 1), want, **TOL)
    assert_close(got_h, want_h, **TOL)
    assert_close(got_c, want_c, **TOL)


@pytest.mark.parametrize("num_layers, padding", [(1, "same"), (1, "valid"), (2, "same")])
def test_from_keras_builds_a_convlstm_with_keras_numbers(num_layers, padding):
    torch.manual_seed(4)
    layers = build_keras(num_layers, 3, padding, randomize=True)
    ours = ConvLSTM.from_keras(layers if num_layers > 1 else layers[0])
    assert (ours.in_channels, ours.hidden_channels, ours.num_layers, ours.padding) == (C, F, num_layers, padding)
    x = torch.randn(B, T, C, H, W)
    want, want_h, want_c = run_keras(layers, x)
    got, (got_h, got_c) = ours(x)
    assert_close(got, want, **TOL)
    assert_close(got_c, want_c, **TOL)


def test_from_keras_refuses_what_it_would_not_reproduce():
    unbuilt = keras.layers.ConvLSTM2D(F, 3)
    with pytest.raises(ValueError, match="no weights yet"):
        ConvLSTM.from_keras(unbuilt)
    hard = keras.layers.ConvLSTM2D(F, 3, recurrent_activation="hard_sigmoid")
    hard.build((None, T, H, W, C))
    with pytest.raises(ValueError, match="hard_sigmoid"):
        ConvLSTM.from_keras(hard)
    strided = keras.layers.ConvLSTM2D(F, 3, strides=2)
    strided.build((None, T, H, W, C))
    with pytest.raises(ValueError, match="strides"):
        ConvLSTM.from_keras(strided)
    a, b = build_keras(1, 3, "same", randomize=False)[0], keras.layers.ConvLSTM2D(F + 1, 3, padding="same")
    b.build((None, T, H, W, F))
    with pytest.raises(ValueError, match="identical layers"):
        ConvLSTM.from_keras([a, b])


def test_keras_recurrent_activation_is_sigmoid():
    # The parity above assumes Keras 3's default; if it ever changes, this says why the rest fails.
    layer = keras.layers.ConvLSTM2D(F, 3)
    assert layer.cell.recurrent_activation is keras.activations.sigmoid
    assert layer.cell.activation is keras.activations.tanh

"""Keras ``ConvLSTM2D`` weights in a :class:`~cnnlstm_edu.layers.convlstm.ConvLSTM`.

Keras' ``kernel`` ``(kh, kw, C, 4F)`` is our ``weight_ih`` permuted to ``(4F, C, kh, kw)``, its
``recurrent_kernel`` our ``weight_hh``; its gates i, f, c, o are ``nn.LSTM``'s i, f, g, o, so no
reordering; its single ``bias`` is our ``bias_ih + bias_hh``. :func:`keras_state_dict` does that
mapping; :func:`check_keras_layer` refuses a layer that computes something a ConvLSTM does not
(``ConvLSTM.from_keras`` uses both).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["keras_state_dict", "keras_arguments", "check_keras_layer"]


def keras_state_dict(keras_layers) -> dict[str, torch.Tensor]:
    """The :class:`ConvLSTM` state dict that holds the weights of Keras ``ConvLSTM2D`` layers.

    ``keras_layers`` is one layer or a list (a stack: layer ``k`` becomes ``*_l{k}``), each a
    built ``ConvLSTM2D`` or its ``get_weights()`` list ``[kernel, recurrent_kernel, bias]``.
    Keras' ``kernel`` ``(kh, kw, C, 4F)`` is ``weight_ih`` ``(4F, C, kh, kw)``, a permute; its
    gates i, f, c, o are ``nn.LSTM``'s i, f, g, o, so no reordering. Its one ``bias`` becomes
    ``bias_ih``, and ``bias_hh`` is zero: only their sum enters the gates.

    >>> import numpy as np
    >>> kernel = np.zeros((3, 3, 2, 4 * 5), dtype="float32")           # (kh, kw, C, 4F)
    >>> recurrent = np.zeros((3, 3, 5, 4 * 5), dtype="float32")        # (kh, kw, F, 4F)
    >>> state = keras_state_dict([[kernel, recurrent, np.zeros(20, dtype="float32")]])
    >>> {name: tuple(w.shape) for name, w in state.items()}
    {'weight_ih_l0': (20, 2, 3, 3), 'weight_hh_l0': (20, 5, 3, 3), 'bias_ih_l0': (20,), 'bias_hh_l0': (20,)}
    >>> from cnnlstm_edu.layers.convlstm import ConvLSTM
    >>> ConvLSTM(2, 5, kernel_size=3).load_state_dict(state)
    <All keys matched successfully>
    """
    layers = keras_layers if isinstance(keras_layers, (list, tuple)) else [keras_layers]
    # A bare weight list ([kernel, recurrent, bias]) for one layer is a list of arrays, not of layers.
    if layers and all(hasattr(w, "shape") for w in layers):
        layers = [layers]
    state = {}
    for k, layer in enumerate(layers):
        weights = layer.get_weights() if hasattr(layer, "get_weights") else layer
        weights = [torch.as_tensor(np.asarray(w, dtype=np.float32)) for w in weights]
        if len(weights) not in (2, 3) or weights[0].dim() != 4 or weights[1].dim() != 4:
            raise ValueError(
                f"keras_state_dict: layer {k} should hold [kernel (kh, kw, C, 4F), recurrent_kernel "
                f"(kh, kw, F, 4F), bias (4F,)], got shapes {[tuple(w.shape) for w in weights]}. "
                "Is it a built ConvLSTM2D? Call it once, or layer.build((None, T, H, W, C)), first."
            )
        kernel, recurrent = weights[0], weights[1]
        state[f"weight_ih_l{k}"] = kernel.permute(3, 2, 0, 1).contiguous()      # (4F, C, kh, kw)
        state[f"weight_hh_l{k}"] = recurrent.permute(3, 2, 0, 1).contiguous()   # (4F, F, kh, kw)
        if len(weights) == 3:
            state[f"bias_ih_l{k}"] = weights[2]                                   # (4F,)
            state[f"bias_hh_l{k}"] = torch.zeros_like(weights[2])
    return state


def check_keras_layer(layer, k: int) -> None:
    """Refuse, with the reason, a Keras layer whose numbers a ConvLSTM would not reproduce."""
    name = type(layer).__name__
    if name != "ConvLSTM2D":
        raise TypeError(f"ConvLSTM.from_keras: layer {k} is a {name}, expected keras.layers.ConvLSTM2D")
    problems = []
    if tuple(layer.strides) != (1, 1) or tuple(layer.dilation_rate) != (1, 1):
        problems.append(f"strides={tuple(layer.strides)} and dilation_rate={tuple(layer.dilation_rate)} (need 1)")
    if layer.data_format != "channels_last":
        problems.append(f"data_format={layer.data_format!r} (need 'channels_last', the default)")
    for what, fn, want in (("activation", layer.activation, "tanh"),
                           ("recurrent_activation", layer.recurrent_activation, "sigmoid")):
        if getattr(fn, "__name__", None) != want:
            problems.append(f"{what}={getattr(fn, '__name__', fn)!r} (need {want!r})")
    if getattr(layer, "go_backwards", False):
        problems.append("go_backwards=True (reverse the clip's time axis instead)")
    if problems:
        raise ValueError(f"ConvLSTM.from_keras: layer {k} ({layer.name}) computes something else: "
                         + "; ".join(problems) + ".")
    if not layer.built:
        raise ValueError(f"ConvLSTM.from_keras: layer {k} ({layer.name}) has no weights yet; call it "
                         "once, or layer.build((None, T, H, W, C)), first.")


def keras_arguments(keras_layers) -> tuple[dict, dict[str, torch.Tensor]]:
    """The ConvLSTM constructor arguments and state dict for built ``ConvLSTM2D`` layers (one, or
    a stack of identical ones), each layer checked first (:func:`check_keras_layer`).

    >>> import os; _ = os.environ.setdefault("KERAS_BACKEND", "torch")
    >>> import keras
    >>> layer = keras.layers.ConvLSTM2D(filters=8, kernel_size=3, padding="same")
    >>> layer.build((None, 5, 16, 16, 3))
    >>> kwargs, state = keras_arguments(layer)
    >>> kwargs
    {'in_channels': 3, 'hidden_channels': 8, 'kernel_size': (3, 3), 'num_layers': 1, 'bias': True, 'padding': 'same'}
    """
    layers = list(keras_layers) if isinstance(keras_layers, (list, tuple)) else [keras_layers]
    if not layers:
        raise ValueError("ConvLSTM.from_keras: got no layers; pass a ConvLSTM2D layer or a list of them.")
    for k, layer in enumerate(layers):
        check_keras_layer(layer, k)
    first = layers[0]
    filters, kernel, padding = first.filters, tuple(first.kernel_size), first.padding.lower()
    for k, layer in enumerate(layers[1:], start=1):
        if (layer.filters, tuple(layer.kernel_size), layer.padding.lower()) != (filters, kernel, padding):
            raise ValueError(
                f"ConvLSTM.from_keras: layer {k} has filters={layer.filters}, kernel_size="
                f"{tuple(layer.kernel_size)}, padding={layer.padding!r}, but layer 0 has "
                f"{filters}, {kernel}, {padding!r}. One ConvLSTM stacks identical layers; "
                "convert differing layers one at a time and chain the ConvLSTMs."
            )
    state = keras_state_dict(layers)
    kwargs = dict(in_channels=state["weight_ih_l0"].shape[1], hidden_channels=filters, kernel_size=kernel,
                  num_layers=len(layers), bias=bool(first.use_bias), padding=padding)
    return kwargs, state

"""ConvLSTM: an LSTM whose gates are convolutions, shaped like ``torch.nn.LSTM``.

Shi et al. 2015, "Convolutional LSTM Network: A Machine Learning Approach for Precipitation
Nowcasting" (https://arxiv.org/abs/1506.04214). A plain LSTM multiplies a feature *vector* by
weight matrices; a ConvLSTM convolves a feature *map* with kernels instead, so its hidden state
``h`` and cell ``c`` keep the grid ``(F, H, W)`` and every pixel remembers what moved through it.

It mirrors two well-known layers, so a learner can check it against both:

* ``torch.nn.LSTM``: the call ``(output, (h_n, c_n)) = rnn(x, state)``, the argument names, and
  the parameters ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` with
  the gates stacked in the order input, forget, cell (g), output. A 1x1 kernel on 1x1 frames
  *is* ``nn.LSTM``, and its state dict loads after a reshape ``(4F, C) -> (4F, C, 1, 1)``.
* Keras ``ConvLSTM2D``: ``padding="same"`` pads like TensorFlow (for an even kernel the extra
  row and column go to the bottom and right), ``padding="valid"`` shrinks the grid with the
  *input* convolution only, while the recurrent convolution always keeps it. Keras' ``kernel``
  ``(kh, kw, C, 4F)`` is our ``weight_ih`` permuted to ``(4F, C, kh, kw)``; its single ``bias`` is
  our ``bias_ih + bias_hh``. :func:`keras_state_dict` does this mapping and
  :meth:`ConvLSTM.from_keras` builds a ConvLSTM from Keras layers with their weights.

The equations, for every pixel (``*`` is a convolution, ``⊙`` an elementwise product)::

    i = σ(W_xi * x_t + b_xi + W_hi * h + b_hi)      input gate:  how much new to write
    f = σ(W_xf * x_t + b_xf + W_hf * h + b_hf)      forget gate: how much old to keep
    g = tanh(W_xg * x_t + b_xg + W_hg * h + b_hg)   candidate:   what to write
    o = σ(W_xo * x_t + b_xo + W_ho * h + b_ho)      output gate: how much to show
    c' = f ⊙ c + i ⊙ g
    h' = o ⊙ tanh(c')

Speed. The four gates come out of one convolution with ``4F`` output channels and are split
afterwards ("fused gates"), as cuDNN does for ``nn.LSTM``. For the input half ``W_x * x_t``,
which does not depend on the previous step, :class:`ConvLSTM` has two ways, with the same numbers
(``ConvLSTM.input_conv``):

* ``"hoisted"`` (the default on a GPU): one convolution over all T frames before the loop, time
  folded into the batch; inside the loop only the recurrent convolution remains. Fewer, bigger
  kernel launches: what a GPU wants.
* ``"per_step"`` (the default on a CPU): inside the loop, one convolution over ``[x_t, h]``
  stacked on the channel axis, so the input half is summed inside the convolution instead of in
  an extra pass over a ``(T, B, 4F, H, W)`` buffer. On a CPU that is faster
  (``benchmarks/convlstm_speed.md``).

Either way the first step from a zero state convolves ``x_0`` only: ``W_h * 0`` is zero.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlstm_edu.shapes import ShapeError, check_float, check_shape, describe, fold_time, unfold_time

__all__ = ["ConvLSTMCell", "ConvLSTM", "keras_state_dict"]

_PADDINGS = ("same", "valid")


# --- argument checks ------------------------------------------------------------------------


def _positive_int(value, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}.")
    return value


def _pair(kernel_size, owner: str) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(3, 5) -> (3, 5)``; anything else is an error that says what is allowed."""
    if isinstance(kernel_size, int) and not isinstance(kernel_size, bool):
        kernel_size = (kernel_size, kernel_size)
    try:
        kh, kw = kernel_size
    except (TypeError, ValueError):
        raise ValueError(
            f"{owner}: kernel_size must be an int or a pair (kh, kw) of ints, got {kernel_size!r}."
        ) from None
    for k in (kh, kw):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(
                f"{owner}: kernel_size must be positive ints, got {kernel_size!r}. "
                "A 1x1 kernel is the smallest (it makes a ConvLSTM an nn.LSTM per pixel)."
            )
    return kh, kw


def _padding_mode(padding, owner: str) -> str:
    mode = padding.lower() if isinstance(padding, str) else padding
    if mode not in _PADDINGS:
        raise ValueError(
            f"{owner}: padding must be 'same' (keep H, W) or 'valid' (no padding, as in Keras), "
            f"got {padding!r}."
        )
    return mode


# --- the math, written once and shared by ConvLSTMCell and ConvLSTM --------------------------


def same_padding(kernel_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The ``F.pad`` amounts ``(left, right, top, bottom)`` that keep H, W under a stride-1 conv.

    A kernel of size k needs ``k - 1`` extra rows in total. For an odd k they split evenly; for
    an even k TensorFlow and Keras put the odd one out at the *end* (bottom, right), and so do we.

    >>> same_padding((3, 3))
    (1, 1, 1, 1)
    >>> same_padding((2, 4))            # even kernels: one more at the bottom / right
    (1, 2, 0, 1)
    """
    kh, kw = kernel_size
    top, left = (kh - 1) // 2, (kw - 1) // 2
    return left, kw - 1 - left, top, kh - 1 - top


def conv2d_padded(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: str) -> torch.Tensor:
    """A stride-1 ``conv2d`` with Keras' ``'same'`` or ``'valid'`` padding, for any kernel shape.

    >>> x = torch.randn(2, 3, 7, 9)                         # (N, C, H, W)
    >>> w = torch.randn(8, 3, 2, 4)                         # (4F, C, kh, kw): an even, non-square kernel
    >>> conv2d_padded(x, w, None, "same").shape             # (N, 4F, H, W)
    torch.Size([2, 8, 7, 9])
    >>> conv2d_padded(x, w, None, "valid").shape            # (N, 4F, H-kh+1, W-kw+1)
    torch.Size([2, 8, 6, 6])
    """
    if padding == "valid":
        return F.conv2d(x, weight, bias)
    kh, kw = weight.shape[-2:]
    left, right, top, bottom = same_padding((kh, kw))
    if left == right and top == bottom:
        # Odd kernel: the convolution pads symmetrically by itself, without a padded copy of x.
        return F.conv2d(x, weight, bias, padding=(top, left))
    return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias)


def lstm_update(
    gates: torch.Tensor,
    c: torch.Tensor,
    peephole: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step from the summed gate pre-activations: ``(B, 4F, ...)`` and ``c`` -> ``(h', c')``.

    ``gates`` holds ``W_x * x_t + W_h * h + b`` for the four gates stacked as i, f, g, o (the
    ``nn.LSTM`` order). ``peephole`` is ``(w_ci, w_cf, w_co)``: the input and forget gates peek
    at the old cell, the output gate at the new one (Gers & Schmidhuber 2000).

    >>> gates = torch.zeros(2, 4 * 5, 3, 3)                  # (B, 4F, H, W), all gates half open
    >>> h, c = lstm_update(gates, torch.ones(2, 5, 3, 3))    # c' = 0.5 * 1 + 0.5 * tanh(0)
    >>> h.shape, c[0, 0, 0, 0].item()
    (torch.Size([2, 5, 3, 3]), 0.5)
    """
    i, f, g, o = gates.chunk(4, dim=1)  # each (B, F, ...)
    if peephole is not None:
        w_ci, w_cf, w_co = peephole
        i = i + w_ci * c
        f = f + w_cf * c
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    if peephole is not None:
        o = o + w_co * c
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def _init_uniform(module: nn.Module, hidden_channels: int) -> None:
    # nn.LSTM's own initialisation: every weight and bias ~ U(-1/sqrt(F), 1/sqrt(F)). It ignores
    # the kernel area, so a big kernel starts with big pre-activations; it is kept anyway so a
    # 1x1 ConvLSTM and an nn.LSTM start from the same distribution.
    bound = 1.0 / math.sqrt(hidden_channels)
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


# --- the single-step cell ---------------------------------------------------------------------


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step, the convolutional ``nn.LSTMCell``: ``(x_t, (h, c)) -> (h', c')``.

    Parameters are named like ``nn.LSTMCell``: ``weight_ih`` ``(4F, C, kh, kw)``, ``weight_hh``
    ``(4F, F, kh, kw)``, ``bias_ih`` and ``bias_hh`` ``(4F,)``, gates stacked i, f, g, o. With
    ``peephole=True`` there are also ``weight_ci``, ``weight_cf``, ``weight_co`` of shape
    ``(F, 1, 1)``: one peephole weight per channel, shared by all pixels (Shi et al. use one per
    pixel, ``(F, H, W)``, which would tie the layer to one frame size).

    ``state=None`` starts from zeros. Use :class:`ConvLSTM` for whole sequences: it is faster
    because it convolves all inputs at once.

    >>> cell = ConvLSTMCell(in_channels=3, hidden_channels=8, kernel_size=3)
    >>> x_t = torch.randn(2, 3, 16, 16)          # (B, C, H, W): one frame per clip
    >>> h, c = cell(x_t)                         # state=None: start from zeros
    >>> h.shape                                  # (B, F, H, W)
    torch.Size([2, 8, 16, 16])
    >>> h, c = cell(x_t, (h, c))                 # the next frame continues from (h, c)
    >>> cell.weight_ih.shape                     # (4F, C, kh, kw)
    torch.Size([32, 3, 3, 3])
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int | tuple[int, int],
        bias: bool = True,
        padding: str = "same",
        peephole: bool = False,
    ) -> None:
        super().__init__()
        owner = "ConvLSTMCell"
        self.in_channels = _positive_int(in_channels, "in_channels", owner)
        self.hidden_channels = _positive_int(hidden_channels, "hidden_channels", owner)
        self.kernel_size = _pair(kernel_size, owner)
        self.bias = bool(bias)
        self.padding = _padding_mode(padding, owner)
        self.peephole = bool(peephole)
        F_, kh, kw = hidden_channels, *self.kernel_size
        self.weight_ih = nn.Parameter(torch.empty(4 * F_, in_channels, kh, kw))
        self.weight_hh = nn.Parameter(torch.empty(4 * F_, F_, kh, kw))
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(4 * F_))
            self.bias_hh = nn.Parameter(torch.empty(4 * F_))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        if self.peephole:
            self.weight_ci = nn.Parameter(torch.empty(F_, 1, 1))
            self.weight_cf = nn.Parameter(torch.empty(F_, 1, 1))
            self.weight_co = nn.Parameter(torch.empty(F_, 1, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every parameter from ``U(-1/sqrt(F), 1/sqrt(F))``, as ``nn.LSTMCell`` does."""
        _init_uniform(self, self.hidden_channels)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(H', W')`` of ``h`` for ``(H, W)`` frames: unchanged for 'same', shrunk for 'valid'."""
        return _check_grid(height, width, self.kernel_size, self.padding, "ConvLSTMCell")

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_shape(
            x, "B C H W", what="ConvLSTMCell input", C=self.in_channels,
            hint="The cell takes one frame per clip; for a whole (B, T, C, H, W) clip use ConvLSTM.",
        )
        check_float(x, "ConvLSTMCell input", like=self.weight_ih)
        B, C, H, W = x.shape
        _check_pixels(x, "B C H W", "ConvLSTMCell input")
        Ho, Wo = _check_grid(H, W, self.kernel_size, self.padding, "ConvLSTMCell", tuple(x.shape))
        F_ = self.hidden_channels
        if state is None:
            h = c = x.new_zeros(B, F_, Ho, Wo)
        else:
            h, c = _unpack_state(state, (B, F_, Ho, Wo), "B F H' W'", "ConvLSTMCell", like=x)
        bias = None if self.bias_ih is None else self.bias_ih + self.bias_hh
        gates = conv2d_padded(x, self.weight_ih, bias, self.padding)  # (B, 4F, H', W')
        gates = gates + conv2d_padded(h, self.weight_hh, None, "same")  # (B, 4F, H', W')
        peephole = (self.weight_ci, self.weight_cf, self.weight_co) if self.peephole else None
        return lstm_update(gates, c, peephole)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.hidden_channels}, kernel_size={self.kernel_size}, padding={self.padding!r}"
        if not self.bias:
            s += ", bias=False"
        if self.peephole:
            s += ", peephole=True"
        return s


def _check_grid(H: int, W: int, kernel_size: tuple[int, int], padding: str, owner: str,
                shape: tuple[int, ...] | None = None) -> tuple[int, int]:
    """The output grid ``(H', W')``, or an error when 'valid' padding leaves nothing of the frame."""
    if padding == "same":
        return H, W
    kh, kw = kernel_size
    if H < kh or W < kw:
        raise ShapeError(
            f"{owner}: frames of H={H}, W={W}{f' (input {shape})' if shape else ''} are smaller than the {kh}x{kw} kernel, so "
            "padding='valid' leaves no pixel. Use padding='same', a smaller kernel, or bigger frames."
        )
    return H - kh + 1, W - kw + 1


def _check_pixels(x: torch.Tensor, axes: str, what: str) -> None:
    """Frames need at least one pixel: a convolution over an empty grid fails deep inside torch."""
    H, W = x.shape[-2:]
    if H == 0 or W == 0:
        raise ShapeError(f"{what}: expected ({', '.join(axes.split())}) with frames of at least 1x1 pixels, "
                         f"got {tuple(x.shape)} (H={H}, W={W}).")


def _unpack_state(state, expected: tuple[int, ...], axes: str, owner: str,
                  like: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Check that ``state`` is a pair ``(h, c)`` of tensors shaped ``expected`` (and, given the
    input ``like``, of its dtype and device); return it."""
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise ValueError(
            f"{owner}: state must be a pair (h, c) of tensors shaped {describe(expected, axes)}, "
            f"got {type(state).__name__}{'' if not isinstance(state, (tuple, list)) else f' of length {len(state)}'}. "
            "Pass state=None to start from zeros."
        )
    for name, s in zip("hc", state):
        if not isinstance(s, torch.Tensor):
            raise TypeError(f"{owner}: state {name} must be a torch.Tensor, got {type(s).__name__}.")
        if tuple(s.shape) != expected:
            raise ShapeError(
                f"{owner}: state {name} should be {describe(expected, axes)}, got {tuple(s.shape)}. "
                "It must match this input's batch and output grid; pass state=None to start "
                "from zeros, or the state that the previous call returned."
            )
        if like is not None:
            # The state meets the input in one convolution: same dtype, same device.
            check_float(s, f"{owner}: state {name}", like=like, like_name="the input",
                        fix="Pass the state that the previous call returned on this input, or state=None.")
    return state[0], state[1]


# --- the sequence layer ------------------------------------------------------------------------


class ConvLSTM(nn.Module):
    """A ConvLSTM over whole clips, with the call, arguments and parameter names of ``nn.LSTM``.

    ``x`` is ``(B, T, C, H, W)`` (``(T, B, C, H, W)`` with ``batch_first=False``). It returns
    ``(output, (h_n, c_n))``: ``output`` is the last layer's ``h`` at every step,
    ``(B, T, F, H', W')``; ``h_n`` and ``c_n`` are every layer's last ``h`` and ``c``,
    ``(num_layers, B, F, H', W')``. ``state=(h_0, c_0)``, shaped like ``(h_n, c_n)``, continues a
    sequence; ``None`` starts from zeros.

    Layer ``k`` owns ``weight_ih_l{k}`` ``(4F, C_k, kh, kw)``, ``weight_hh_l{k}``
    ``(4F, F, kh, kw)``, ``bias_ih_l{k}`` and ``bias_hh_l{k}`` ``(4F,)`` (gates i, f, g, o), all
    drawn from ``U(-1/sqrt(F), 1/sqrt(F))`` like ``nn.LSTM``; with ``peephole=True`` also
    ``weight_ci_l{k}``, ``weight_cf_l{k}``, ``weight_co_l{k}`` ``(F, 1, 1)`` (one peephole weight
    per channel; see :class:`ConvLSTMCell`). ``dropout`` acts between layers in training, never
    after the last one, as in ``nn.LSTM``. ``padding="valid"`` needs ``num_layers=1``.

    ``input_conv`` (an attribute, ``"auto"`` by default) picks how the input half of the gates is
    computed: ``"hoisted"`` (one convolution over all frames before the time loop, the GPU
    default) or ``"per_step"`` (one convolution over ``[x_t, h]`` per step, the CPU default).
    Both give the same numbers; see the module docstring.

    >>> rnn = ConvLSTM(in_channels=1, hidden_channels=16, kernel_size=3, num_layers=2)
    >>> x = torch.randn(4, 10, 1, 28, 28)        # (B, T, C, H, W)
    >>> output, (h_n, c_n) = rnn(x)
    >>> output.shape                             # (B, T, F, H, W): the last layer, every step
    torch.Size([4, 10, 16, 28, 28])
    >>> h_n.shape                                # (num_layers, B, F, H, W): every layer, last step
    torch.Size([2, 4, 16, 28, 28])
    >>> torch.equal(output[:, -1], h_n[-1])
    True
    >>> valid = ConvLSTM(1, 16, kernel_size=(3, 5), padding="valid")
    >>> valid(x)[0].shape                        # (B, T, F, H-kh+1, W-kw+1)
    torch.Size([4, 10, 16, 26, 24])
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int | tuple[int, int],
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        padding: str = "same",
        peephole: bool = False,
    ) -> None:
        super().__init__()
        owner = "ConvLSTM"
        self.in_channels = _positive_int(in_channels, "in_channels", owner)
        self.hidden_channels = _positive_int(hidden_channels, "hidden_channels", owner)
        self.kernel_size = _pair(kernel_size, owner)
        self.num_layers = _positive_int(num_layers, "num_layers", owner)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.padding = _padding_mode(padding, owner)
        self.peephole = bool(peephole)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"{owner}: dropout must be a probability in [0, 1], got {dropout!r}.")
        self.dropout = float(dropout)
        if self.dropout > 0 and num_layers == 1:
            warnings.warn(
                f"ConvLSTM: dropout={dropout} does nothing with num_layers=1: it acts between "
                "layers only, as in nn.LSTM. Add an nn.Dropout after the layer instead.",
                stacklevel=2,
            )
        if self.padding == "valid" and num_layers > 1:
            raise ValueError(
                f"ConvLSTM: padding='valid' needs num_layers=1, got num_layers={num_layers}. Every "
                "layer would shrink the grid again, so the layers' states could not share one "
                "(num_layers, B, F, H', W') tensor. Stack single-layer ConvLSTMs instead, e.g. "
                "nn.ModuleList([ConvLSTM(C, F, k, padding='valid'), ConvLSTM(F, F, k, padding='valid')])."
            )

        F_, kh, kw = hidden_channels, *self.kernel_size
        for k in range(num_layers):
            c_in = in_channels if k == 0 else hidden_channels
            # Registered on the module itself, not on a list of cells, so that the state-dict keys
            # are exactly nn.LSTM's: weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ...
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(4 * F_, c_in, kh, kw)))
            self.register_parameter(f"weight_hh_l{k}", nn.Parameter(torch.empty(4 * F_, F_, kh, kw)))
            if self.bias:
                self.register_parameter(f"bias_ih_l{k}", nn.Parameter(torch.empty(4 * F_)))
                self.register_parameter(f"bias_hh_l{k}", nn.Parameter(torch.empty(4 * F_)))
            if self.peephole:
                for gate in "ifo":
                    self.register_parameter(f"weight_c{gate}_l{k}", nn.Parameter(torch.empty(F_, 1, 1)))
        self.input_conv = "auto"
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every parameter from ``U(-1/sqrt(F), 1/sqrt(F))``, as ``nn.LSTM`` does."""
        _init_uniform(self, self.hidden_channels)

    @classmethod
    def from_keras(cls, keras_layers, batch_first: bool = True) -> "ConvLSTM":
        """A ConvLSTM with the sizes and weights of Keras ``ConvLSTM2D`` layers (one, or a stack).

        The layers must be built (called once, or ``layer.build(input_shape)``) and use what
        this ConvLSTM computes: stride and dilation 1, ``tanh`` activation, ``sigmoid``
        recurrent activation (Keras 3's default; Keras 2 defaulted to ``hard_sigmoid``), and,
        for a stack, the same filters, kernel and ``padding="same"``. Keras reads channels-last
        clips ``(B, T, H, W, C)``; the returned module reads ``(B, T, C, H, W)``.

        >>> import os; _ = os.environ.setdefault("KERAS_BACKEND", "torch")
        >>> import keras
        >>> layer = keras.layers.ConvLSTM2D(filters=8, kernel_size=3, padding="same", return_sequences=True)
        >>> x = torch.randn(2, 5, 3, 16, 16)                          # (B, T, C, H, W)
        >>> want = layer(x.permute(0, 1, 3, 4, 2).numpy())            # Keras: (B, T, H, W, F)
        >>> rnn = ConvLSTM.from_keras(layer)
        >>> rnn
        ConvLSTM(3, 8, kernel_size=(3, 3))
        >>> got, _ = rnn(x)                                           # (B, T, F, H, W)
        >>> want = torch.as_tensor(keras.ops.convert_to_numpy(want)).permute(0, 1, 4, 2, 3)
        >>> bool((got - want).abs().max() < 1e-5)
        True
        """
        layers = list(keras_layers) if isinstance(keras_layers, (list, tuple)) else [keras_layers]
        if not layers:
            raise ValueError("ConvLSTM.from_keras: got no layers; pass a ConvLSTM2D layer or a list of them.")
        for k, layer in enumerate(layers):
            _check_keras_layer(layer, k)
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
        in_channels = state["weight_ih_l0"].shape[1]
        rnn = cls(in_channels, filters, kernel, num_layers=len(layers), bias=bool(first.use_bias),
                  batch_first=batch_first, padding=padding)
        rnn.load_state_dict(state)
        return rnn

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(H', W')`` of the output for ``(H, W)`` frames.

        >>> ConvLSTM(3, 8, kernel_size=5, padding="valid").output_size(32, 32)
        (28, 28)
        """
        return _check_grid(height, width, self.kernel_size, self.padding, "ConvLSTM")

    def _check_input(self, x) -> None:
        axes = "B T C H W" if self.batch_first else "T B C H W"
        rank = x.dim() if isinstance(x, torch.Tensor) else None
        if rank == 4:
            hint = f"A single clip? Add a batch axis with x.unsqueeze({0 if self.batch_first else 1})."
        elif rank == 5:
            hint = (
                f"Axis C must be in_channels={self.in_channels}. Frames stored channels-last "
                "(..., H, W, C), as Keras does, need x.permute(0, 1, 4, 2, 3)."
            )
        else:
            hint = "A ConvLSTM reads clips of frames: one batch axis, one time axis, then C, H, W."
        check_shape(x, axes, what="ConvLSTM input", hint=hint, C=self.in_channels)
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ShapeError(
                f"ConvLSTM input: expected {axes} with at least one clip and one frame, got "
                f"{tuple(x.shape)}."
            )
        _check_pixels(x, axes, "ConvLSTM input")
        check_float(x, "ConvLSTM input", like=self.weight_ih_l0)

    def _layer_params(self, k: int):
        """Layer k's (w_ih, w_hh, bias, peephole), with the two biases already summed."""
        w_ih, w_hh = getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}")
        bias = getattr(self, f"bias_ih_l{k}") + getattr(self, f"bias_hh_l{k}") if self.bias else None
        peephole = tuple(getattr(self, f"weight_c{g}_l{k}") for g in "ifo") if self.peephole else None
        return w_ih, w_hh, bias, peephole

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        self._check_input(x)
        # Inside, time comes first, (T, B, ...), as in cuDNN's LSTM: step t is then seq[t].
        seq = x.transpose(0, 1) if self.batch_first else x                 # (T, B, C, H, W)
        T, B, C, H, W = seq.shape
        Ho, Wo = _check_grid(H, W, self.kernel_size, self.padding, "ConvLSTM", tuple(x.shape))
        L, F_ = self.num_layers, self.hidden_channels
        if state is None:
            h0 = c0 = None
        else:
            h0, c0 = _unpack_state(state, (L, B, F_, Ho, Wo), "num_layers B F H' W'", "ConvLSTM", like=x)
        run_layer = self._layer_hoisted if self._hoists(x) else self._layer_per_step

        h_n, c_n = [], []
        for k in range(L):
            if h0 is None:
                h, c = None, seq.new_zeros(B, F_, Ho, Wo)  # h=None: a zero state, see run_layer
            else:
                h, c = h0[k], c0[k]                                         # (B, F, H', W') each
            seq, (h, c) = run_layer(k, seq, h, c)                           # (T, B, F, H', W')
            h_n.append(h)
            c_n.append(c)
            if k < L - 1 and self.dropout > 0:
                seq = F.dropout(seq, self.dropout, self.training)

        # Like nn.LSTM's, the batch-first output is a view of the time-major one.
        output = seq.transpose(0, 1) if self.batch_first else seq          # (B, T, F, H', W') or (T, B, ...)
        return output, (torch.stack(h_n), torch.stack(c_n))                # (num_layers, B, F, H', W') each

    def _hoists(self, x: torch.Tensor) -> bool:
        if self.input_conv not in ("auto", "hoisted", "per_step"):
            raise ValueError(
                f"ConvLSTM.input_conv must be 'auto', 'hoisted' or 'per_step', got {self.input_conv!r}."
            )
        if self.input_conv == "auto":
            return x.device.type != "cpu"
        return self.input_conv == "hoisted"

    def _layer_hoisted(self, k: int, seq: torch.Tensor, h: torch.Tensor | None, c: torch.Tensor):
        """Layer k over the whole sequence, the input convolution done once for all frames."""
        w_ih, w_hh, bias, peephole = self._layer_params(k)
        T, B = seq.shape[:2]
        frames = fold_time(seq)                                             # (T*B, C_k, H, W), row t*B + b
        x_gates = conv2d_padded(frames, w_ih, bias, self.padding)           # (T*B, 4F, H', W')
        hs = []
        # split, not x_gates[t * B:...] in the loop: backward then gathers the steps' gradients in
        # one pass instead of writing each into its own zero-filled (T*B, 4F, H', W') tensor.
        for x_t_gates in x_gates.split(B):                                  # (B, 4F, H', W')
            gates = x_t_gates if h is None else x_t_gates + conv2d_padded(h, w_hh, None, "same")
            h, c = lstm_update(gates, c, peephole)                          # (B, F, H', W') each
            hs.append(h)
        return torch.stack(hs), (h, c)                                      # (T, B, F, H', W')

    def _layer_per_step(self, k: int, seq: torch.Tensor, h: torch.Tensor | None, c: torch.Tensor):
        """Layer k step by step, one convolution over [x_t, h] per step."""
        w_ih, w_hh, bias, peephole = self._layer_params(k)
        # [W_x | W_h] side by side: convolving [x_t, h] with it sums both halves in one pass.
        w_xh = torch.cat([w_ih, w_hh], dim=1)                               # (4F, C_k + F, kh, kw)
        hs = []
        for x_t in seq.unbind(0):                                           # (B, C_k, H, W)
            if h is None:  # zero state: W_h * h is zero, convolve x_t alone
                gates = conv2d_padded(x_t, w_ih, bias, self.padding)
            elif self.padding == "same":
                gates = conv2d_padded(torch.cat([x_t, h], dim=1), w_xh, bias, "same")
            else:  # 'valid' pads x_t and h differently: two convolutions
                gates = conv2d_padded(x_t, w_ih, bias, "valid") + conv2d_padded(h, w_hh, None, "same")
            h, c = lstm_update(gates, c, peephole)                          # (B, F, H', W') each
            hs.append(h)
        return torch.stack(hs), (h, c)                                      # (T, B, F, H', W')

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.hidden_channels}, kernel_size={self.kernel_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if not self.batch_first:
            s += ", batch_first=False"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.padding != "same":
            s += f", padding={self.padding!r}"
        if self.peephole:
            s += ", peephole=True"
        return s


# --- Keras ConvLSTM2D weights -------------------------------------------------------------------


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


def _check_keras_layer(layer, k: int) -> None:
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

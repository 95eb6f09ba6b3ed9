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
  :meth:`ConvLSTM.from_keras` builds a ConvLSTM from Keras layers with their weights
  (:mod:`cnnlstm_edu.layers.keras_convlstm`).

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

The single step is :class:`ConvLSTMCell` (:mod:`cnnlstm_edu.layers.convlstm_cell`); the arithmetic
both share is in :mod:`cnnlstm_edu.layers.conv_ops`. Both, and the Keras mapping, are importable
from here.
"""


from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_number
from ..shapes import ShapeError, check_float, check_shape, fold_time
from .conv_ops import (check_pixels, conv2d_padded, init_uniform, kernel_pair, lstm_update, output_grid,
                       padding_mode, same_padding)
from .convlstm_cell import ConvLSTMCell
from .keras_convlstm import keras_arguments, keras_state_dict
from .state import unpack_state

__all__ = ["ConvLSTMCell", "ConvLSTM", "keras_state_dict", "conv2d_padded", "same_padding", "lstm_update"]


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
        self.in_channels = check_number(in_channels, "in_channels", integer=True, low=1, owner=owner)
        self.hidden_channels = check_number(hidden_channels, "hidden_channels", integer=True, low=1, owner=owner)
        self.kernel_size = kernel_pair(kernel_size, owner)
        self.num_layers = check_number(num_layers, "num_layers", integer=True, low=1, owner=owner)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.padding = padding_mode(padding, owner)
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
        init_uniform(self, self.hidden_channels)

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
        kwargs, state = keras_arguments(keras_layers)
        rnn = cls(**kwargs, batch_first=batch_first)
        rnn.load_state_dict(state)
        return rnn

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(H', W')`` of the output for ``(H, W)`` frames.

        >>> ConvLSTM(3, 8, kernel_size=5, padding="valid").output_size(32, 32)
        (28, 28)
        """
        return output_grid(height, width, self.kernel_size, self.padding, "ConvLSTM")

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
        check_pixels(x, axes, "ConvLSTM input")
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
        Ho, Wo = output_grid(H, W, self.kernel_size, self.padding, "ConvLSTM", tuple(x.shape))
        L, F_ = self.num_layers, self.hidden_channels
        if state is None:
            h0 = c0 = None
        else:
            h0, c0 = unpack_state(state, (L, B, F_, Ho, Wo), "num_layers B F H' W'", "ConvLSTM", like=x)
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

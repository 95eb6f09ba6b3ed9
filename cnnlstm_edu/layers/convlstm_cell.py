"""ConvLSTMCell: one step of a convolutional LSTM, the convolutional ``nn.LSTMCell``.

Shi et al. 2015, "Convolutional LSTM Network" (https://arxiv.org/abs/1506.04214); the equations are
in :mod:`cnnlstm_edu.layers.convlstm`. A cell takes one frame per clip and the state ``(h, c)``,
and returns the next state: the loop over time is the caller's (:class:`Stateful` can run it over
chunks of frames). :class:`~cnnlstm_edu.layers.convlstm.ConvLSTM` runs whole sequences faster,
with the same arithmetic (:mod:`cnnlstm_edu.layers.conv_ops`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import check_number
from ..shapes import check_float, check_shape
from .conv_ops import check_pixels, conv2d_padded, init_uniform, kernel_pair, lstm_update, output_grid, padding_mode
from .state import unpack_state

__all__ = ["ConvLSTMCell"]


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
        self.in_channels = check_number(in_channels, "in_channels", integer=True, low=1, owner=owner)
        self.hidden_channels = check_number(hidden_channels, "hidden_channels", integer=True, low=1, owner=owner)
        self.kernel_size = kernel_pair(kernel_size, owner)
        self.bias = bool(bias)
        self.padding = padding_mode(padding, owner)
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
        init_uniform(self, self.hidden_channels)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(H', W')`` of ``h`` for ``(H, W)`` frames: unchanged for 'same', shrunk for 'valid'."""
        return output_grid(height, width, self.kernel_size, self.padding, "ConvLSTMCell")

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_shape(
            x, "B C H W", what="ConvLSTMCell input", C=self.in_channels,
            hint="The cell takes one frame per clip; for a whole (B, T, C, H, W) clip use ConvLSTM.",
        )
        check_float(x, "ConvLSTMCell input", like=self.weight_ih)
        B, C, H, W = x.shape
        check_pixels(x, "B C H W", "ConvLSTMCell input")
        Ho, Wo = output_grid(H, W, self.kernel_size, self.padding, "ConvLSTMCell", tuple(x.shape))
        F_ = self.hidden_channels
        if state is None:
            h = c = x.new_zeros(B, F_, Ho, Wo)
        else:
            h, c = unpack_state(state, (B, F_, Ho, Wo), "B F H' W'", "ConvLSTMCell", like=x)
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

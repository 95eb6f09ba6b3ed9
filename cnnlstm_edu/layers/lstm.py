"""An LSTM written out gate by gate, to read and to plot: nothing here is faster than ``nn.LSTM``.

Hochreiter & Schmidhuber 1997, "Long Short-Term Memory", with the forget gate of Gers,
Schmidhuber & Cummins 2000 and, optionally, the peephole connections of Gers & Schmidhuber 2000
("Recurrent nets that time and count"). ``torch.nn.LSTM`` hides the four gates inside one fused
kernel; here each gate is one line with its equation beside it, and ``return_gates=True`` hands
them back so a lesson can plot how much each unit lets in, keeps, and shows at every step.

The parameters are named and laid out as in ``nn.LSTMCell`` (``weight_ih`` ``(4H, I)``,
``weight_hh`` ``(4H, H)``, ``bias_ih``, ``bias_hh`` ``(4H,)``, gates stacked i, f, g, o), so
``LSTMCell.load_state_dict(nn.LSTMCell(...).state_dict())`` works and the outputs match.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from ..checks import check_number
from ..shapes import ShapeError, check_float, check_shape
from .state import unpack_state

__all__ = ["LSTMGates", "LSTMCell", "LSTM"]


class LSTMGates(NamedTuple):
    """The four gate activations of one step ``(B, H)``, or of a sequence ``(B, T, H)``."""

    i: torch.Tensor  #: input gate in (0, 1): how much of the candidate to write
    f: torch.Tensor  #: forget gate in (0, 1): how much of the old cell to keep
    g: torch.Tensor  #: candidate in (-1, 1): what to write
    o: torch.Tensor  #: output gate in (0, 1): how much of the cell to show as h


class LSTMCell(nn.Module):
    """One LSTM step in plain tensor operations: ``(x, (h, c)) -> (h', c')``.

    ``x`` is ``(B, I)``, ``h`` and ``c`` are ``(B, H)``; ``state=None`` starts from zeros. With
    ``peephole=True`` the input and forget gates also see the old cell ``c`` and the output gate
    the new one, through the diagonal weights ``weight_ci``, ``weight_cf``, ``weight_co`` ``(H,)``.

    >>> cell = LSTMCell(input_size=10, hidden_size=20)
    >>> x = torch.randn(3, 10)                           # (B, I)
    >>> h, c = cell(x)                                   # (B, H) each
    >>> (h, c), gates = cell(x, (h, c), return_gates=True)
    >>> gates.f.shape                                    # (B, H): one forget gate per unit
    torch.Size([3, 20])
    >>> bool(((gates.f > 0) & (gates.f < 1)).all())
    True
    >>> ref = nn.LSTMCell(10, 20)
    >>> cell.load_state_dict(ref.state_dict())           # same names, same layout
    <All keys matched successfully>
    >>> torch.allclose(cell(x)[0], ref(x)[0], atol=1e-6)
    True
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, peephole: bool = False) -> None:
        super().__init__()
        self.input_size = check_number(input_size, "input_size", integer=True, low=1, owner="LSTMCell")
        self.hidden_size = check_number(hidden_size, "hidden_size", integer=True, low=1, owner="LSTMCell")
        self.bias = bool(bias)
        self.peephole = bool(peephole)
        I, H = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * H, I))
        self.weight_hh = nn.Parameter(torch.empty(4 * H, H))
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(4 * H))
            self.bias_hh = nn.Parameter(torch.empty(4 * H))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        if self.peephole:
            self.weight_ci = nn.Parameter(torch.empty(H))
            self.weight_cf = nn.Parameter(torch.empty(H))
            self.weight_co = nn.Parameter(torch.empty(H))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter ~ ``U(-1/sqrt(H), 1/sqrt(H))``, exactly as ``nn.LSTMCell``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(
        self,
        x: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
        return_gates: bool = False,
    ):
        check_shape(
            x, "B I", what="LSTMCell input", I=self.input_size,
            hint="A single vector? Add a batch axis with x.unsqueeze(0). A whole sequence? Use LSTM.",
        )
        check_float(x, "LSTMCell input", like=self.weight_ih)
        B, I = x.shape
        H = self.hidden_size
        if state is None:
            h = c = x.new_zeros(B, H)
        else:
            h, c = unpack_state(state, (B, H), "B H", "LSTMCell", like=x)

        # Row blocks of the stacked weights, one per gate, in nn.LSTM's order i, f, g, o.
        W_ii, W_if, W_ig, W_io = self.weight_ih.chunk(4)  # (H, I) each
        W_hi, W_hf, W_hg, W_ho = self.weight_hh.chunk(4)  # (H, H) each
        if self.bias:
            b_ii, b_if, b_ig, b_io = self.bias_ih.chunk(4)  # (H,) each
            b_hi, b_hf, b_hg, b_ho = self.bias_hh.chunk(4)
        else:
            b_ii = b_if = b_ig = b_io = b_hi = b_hf = b_hg = b_ho = 0.0
        # Without peepholes the gates simply do not see c: a zero weight says exactly that.
        w_ci, w_cf, w_co = (self.weight_ci, self.weight_cf, self.weight_co) if self.peephole else (0.0,) * 3

        i = torch.sigmoid(x @ W_ii.T + b_ii + h @ W_hi.T + b_hi + w_ci * c)   # i = σ(W_ii x + b_ii + W_hi h + b_hi [+ w_ci ⊙ c])
        f = torch.sigmoid(x @ W_if.T + b_if + h @ W_hf.T + b_hf + w_cf * c)   # f = σ(W_if x + b_if + W_hf h + b_hf [+ w_cf ⊙ c])
        g = torch.tanh(x @ W_ig.T + b_ig + h @ W_hg.T + b_hg)                 # g = tanh(W_ig x + b_ig + W_hg h + b_hg)
        c = f * c + i * g                                                     # c' = f ⊙ c + i ⊙ g
        o = torch.sigmoid(x @ W_io.T + b_io + h @ W_ho.T + b_ho + w_co * c)   # o = σ(W_io x + b_io + W_ho h + b_ho [+ w_co ⊙ c'])
        h = o * torch.tanh(c)                                                 # h' = o ⊙ tanh(c')

        if return_gates:
            return (h, c), LSTMGates(i, f, g, o)
        return h, c

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.peephole:
            s += ", peephole=True"
        return s


class LSTM(nn.Module):
    """A one-layer LSTM that loops :class:`LSTMCell` over time, returning what ``nn.LSTM`` returns.

    ``x`` is ``(B, T, I)`` (``(T, B, I)`` with ``batch_first=False``); the result is
    ``(output, (h_n, c_n))`` with ``output`` ``(B, T, H)`` and ``h_n``, ``c_n`` ``(1, B, H)``,
    and with ``return_gates=True`` a third item: :class:`LSTMGates` of ``(B, T, H)`` tensors, the
    gates at every step (time on axis 1 whatever ``batch_first`` says, ready to plot).

    >>> lstm = LSTM(input_size=8, hidden_size=16)
    >>> x = torch.randn(4, 5, 8)                         # (B, T, I)
    >>> output, (h_n, c_n) = lstm(x)
    >>> output.shape, h_n.shape                          # (B, T, H), (num_layers=1, B, H)
    (torch.Size([4, 5, 16]), torch.Size([1, 4, 16]))
    >>> output, state, gates = lstm(x, return_gates=True)
    >>> gates.i.shape                                    # (B, T, H): the input gate over time
    torch.Size([4, 5, 16])
    """

    def __init__(
        self, input_size: int, hidden_size: int, batch_first: bool = True, peephole: bool = False, bias: bool = True
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.batch_first = bool(batch_first)
        self.cell = LSTMCell(input_size, hidden_size, bias=bias, peephole=peephole)

    def forward(
        self,
        x: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
        return_gates: bool = False,
    ):
        axes = "B T I" if self.batch_first else "T B I"
        check_shape(
            x, axes, what="LSTM input", I=self.input_size,
            hint=f"A single sequence? Add a batch axis with x.unsqueeze({0 if self.batch_first else 1}).",
        )
        check_float(x, "LSTM input", like=self.cell.weight_ih)
        if not self.batch_first:
            x = x.transpose(0, 1)  # (B, T, I)
        B, T, I = x.shape
        H = self.hidden_size
        if T == 0:
            raise ShapeError(f"LSTM input: expected ({', '.join(axes.split())}) with at least one time step, got {tuple(x.shape)}.")
        if state is not None:
            h0, c0 = unpack_state(state, (1, B, H), "num_layers B H", "LSTM", like=x)
            state = (h0[0], c0[0])  # (B, H) each: the cell has no layer axis

        hs, steps = [], []
        for t in range(T):
            state, gates = self.cell(x[:, t], state, return_gates=True)
            hs.append(state[0])
            steps.append(gates)
        output = torch.stack(hs, dim=1)  # (B, T, H)
        h, c = state
        h_n, c_n = h.unsqueeze(0), c.unsqueeze(0)  # (1, B, H): nn.LSTM's num_layers axis
        if not self.batch_first:
            output = output.transpose(0, 1)  # (T, B, H)
        if return_gates:
            gates = LSTMGates(*(torch.stack(g, dim=1) for g in zip(*steps)))  # each (B, T, H)
            return output, (h_n, c_n), gates
        return output, (h_n, c_n)

    def extra_repr(self) -> str:
        return f"batch_first={self.batch_first}"


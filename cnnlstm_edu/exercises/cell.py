"""The ``lstm_cell_step`` exercise: one LSTM step from the four gate equations, checked against ``nn.LSTMCell``.

The learner gets ``nn.LSTMCell``'s own tensors: ``weight_ih`` ``(4H, I)``, ``weight_hh``
``(4H, H)``, ``bias_ih`` and ``bias_hh`` ``(4H,)``, gates stacked i, f, g, o. When the numbers
are off, the check recomputes the step the ways learners usually get it wrong (another gate
order, TensorFlow 1's i, j, f, o among them; one bias left out; ``h = o * c``; ...) and names the
one that matches.
"""

from __future__ import annotations

from itertools import permutations

import torch
from torch import nn

from .core import Exercise, Wrong, call, describe_value, generator, max_gap, seeded

__all__ = ["EXERCISES", "lstm_cell_step"]

_CASES = ((3, 5, 4), (2, 3, 6), (1, 7, 2))  # (B, I, H): I != H, so a swapped weight cannot fit
_TOL = 1e-5


def lstm_cell_step(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """One step of nn.LSTMCell: x (B, I), h and c (B, H) -> the new (h, c)."""
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # (B, 4H): all four gates at once
    i, f, g, o = gates.chunk(4, dim=1)                              # (B, H) each, in nn.LSTM's order
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g                                               # keep some of the old cell, write some new
    h = o * torch.tanh(c)                                           # show some of the new cell
    return h, c


def _step(x, h, c, w_ih, w_hh, b_ih, b_hh, order="ifgo", squash_g=torch.tanh, tanh_c=True, h_from_old_c=False):
    """The step computed a chosen (possibly wrong) way, to recognise a learner's mistake."""
    blocks = dict(zip(order, (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)))
    i, f, o = torch.sigmoid(blocks["i"]), torch.sigmoid(blocks["f"]), torch.sigmoid(blocks["o"])
    g = squash_g(blocks["g"])
    c_new = f * c + i * g
    shown = c if h_from_old_c else c_new
    return o * (torch.tanh(shown) if tanh_c else shown), c_new


def _mistakes(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """(description, (h, c)) for each classic mistake, the most telling first."""
    zero = torch.zeros_like(b_ih)
    found = [
        ("you left out bias_hh: nn.LSTMCell adds both biases, bias_ih and bias_hh (Keras has one bias; "
         "PyTorch keeps cuDNN's two)", _step(x, h, c, w_ih, w_hh, b_ih, zero)),
        ("you left out bias_ih: nn.LSTMCell adds both biases, bias_ih and bias_hh",
         _step(x, h, c, w_ih, w_hh, zero, b_hh)),
        ("your h is o * c: the cell is squashed before it is shown, h' = o * tanh(c')",
         _step(x, h, c, w_ih, w_hh, b_ih, b_hh, tanh_c=False)),
        ("your candidate g went through a sigmoid: g is the value to write, in (-1, 1), so g = tanh(...)",
         _step(x, h, c, w_ih, w_hh, b_ih, b_hh, squash_g=torch.sigmoid)),
        ("your h shows the old cell: compute c' first, then h' = o * tanh(c') with the new c'",
         _step(x, h, c, w_ih, w_hh, b_ih, b_hh, h_from_old_c=True)),
    ]
    for order in ("".join(p) for p in permutations("ifgo")):
        if order == "ifgo":
            continue
        tf = " (TensorFlow 1's LSTMCell order i, j, f, o)" if order == "igfo" else ""
        found.append((f"your gates are taken in the order {', '.join(order)}{tf}; nn.LSTMCell stacks them "
                      "i, f, g, o: rows 0:H of the weights are i, H:2H f, 2H:3H g, 3H:4H o",
                      _step(x, h, c, w_ih, w_hh, b_ih, b_hh, order=order)))
    return found


def _matmul_hint(error: BaseException) -> str | None:
    if "mat1 and mat2" in str(error) or "size mismatch" in str(error):
        return ("weight_ih is (4H, I) and weight_hh is (4H, H), as nn.LSTMCell stores them: multiply by their "
                "transposes, x @ weight_ih.T and h @ weight_hh.T, to get (B, 4H).")
    return None


def _case(seed: int, B: int, I: int, H: int):
    cell = seeded(nn.LSTMCell(I, H), 400 + seed, scale=0.5)
    g = generator(450 + seed)
    x, h, c = torch.randn(B, I, generator=g), torch.randn(B, H, generator=g), torch.randn(B, H, generator=g)
    weights = tuple(p.detach().clone() for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh))
    with torch.no_grad():
        want = cell(x, (h, c))
    return (x, h, c) + weights, want


def _check_cell(answer) -> str:
    for seed, (B, I, H) in enumerate(_CASES):
        args, (h_want, c_want) = _case(seed, B, I, H)
        case = f"B={B}, I={I}, H={H}"
        got = call(answer, *(a.clone() for a in args), case=case, on_error=_matmul_hint)
        if not (isinstance(got, (tuple, list)) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
            raise Wrong(f"lstm_cell_step should return two tensors, (h, c), but returned {describe_value(got)}.")
        h_got, c_got = got
        if tuple(h_got.shape) != (B, H) or tuple(c_got.shape) != (B, H):
            raise Wrong(f"On {case} h and c should both be (B={B}, H={H}), but yours are {tuple(h_got.shape)} and "
                        f"{tuple(c_got.shape)}.")
        if max_gap(h_got, h_want) <= _TOL and max_gap(c_got, c_want) <= _TOL:
            continue
        if max_gap(h_got, c_want) <= _TOL and max_gap(c_got, h_want) <= _TOL:
            raise Wrong("You returned (c, h): the values are right, the order is not. nn.LSTMCell returns (h, c).")
        for words, (h_wrong, c_wrong) in _mistakes(*args):
            if max_gap(h_got, h_wrong) <= _TOL and max_gap(c_got, c_wrong) <= _TOL:
                raise Wrong(f"On {case}, {words}.")
        if max_gap(c_got, c_want) <= _TOL:
            raise Wrong(f"On {case} your c' is right but your h' is off by up to {max_gap(h_got, h_want):.3g}: "
                        "h' = o * tanh(c'), with o = sigmoid of the fourth block.")
        raise Wrong(f"On {case} your c' is off by up to {max_gap(c_got, c_want):.3g}: c' = f * c + i * g, with "
                    "i, f, o = sigmoid and g = tanh of the four blocks of x @ weight_ih.T + bias_ih + "
                    "h @ weight_hh.T + bias_hh.")
    return (f"Right: on {len(_CASES)} hidden cases your step matches nn.LSTMCell to {_TOL:g}, h' and c' alike. "
            "That is all an LSTM layer does, once per time step.")


_SKELETON = '''\
def lstm_cell_step(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """One LSTM step with nn.LSTMCell's tensors: x (B, I), h and c (B, H),
    weight_ih (4H, I), weight_hh (4H, H), bias_ih and bias_hh (4H,), gates stacked i, f, g, o.
    Returns the new (h, c)."""
    ...  # your code here'''

EXERCISES = (
    Exercise(
        name="lstm_cell_step", lesson=4,
        title="Write one LSTM step from the gate equations; it must match nn.LSTMCell.",
        skeleton=_SKELETON,
        hint=("All four gates come from one product: x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh is "
              "(B, 4H). Split it with .chunk(4, dim=1) into i, f, g, o; sigmoid for i, f, o, tanh for g; then "
              "c' = f * c + i * g and h' = o * tanh(c')."),
        reference=lstm_cell_step, grade=_check_cell),
)

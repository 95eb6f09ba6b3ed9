"""Lesson 04's ``convlstm_parameters``: count a ConvLSTM's parameters by hand.

Checked against ``sum(p.numel() for p in ConvLSTM(C, F, k).parameters())``. The usual slips
each give a number the check recognises: Keras' count (one bias, where PyTorch keeps
``bias_ih`` and ``bias_hh``), one gate instead of four, no recurrent kernel, a dense LSTM's
count, a 1x1 recurrent kernel.
"""

from __future__ import annotations

import operator

from ..layers import ConvLSTM
from .core import Exercise, Wrong, call, describe_value

__all__ = ["EXERCISES", "convlstm_parameters"]

_CASES = ((1, 8, 3), (3, 16, 5), (16, 4, 3), (2, 6, 1))  # (C, F, k)


def convlstm_parameters(in_channels: int, hidden_channels: int, kernel_size: int) -> int:
    """The parameters of ConvLSTM(in_channels, hidden_channels, kernel_size): one layer, biases on."""
    C, F, k = in_channels, hidden_channels, kernel_size
    weight_ih = 4 * F * C * k * k      # (4F, C, k, k): the input convolution of the four gates
    weight_hh = 4 * F * F * k * k      # (4F, F, k, k): the recurrent convolution, on h
    biases = 4 * F + 4 * F             # bias_ih and bias_hh, as nn.LSTM keeps them
    return weight_ih + weight_hh + biases


def _slips(C: int, F: int, k: int) -> list[tuple[int, str]]:
    """(count, what it means) for each classic miscount."""
    return [
        (4 * F * (C + F) * k * k + 4 * F,
         "that is Keras' count: ConvLSTM2D has one bias of 4F. This ConvLSTM, laid out like nn.LSTM, has two, "
         "bias_ih and bias_hh: 2 x 4F"),
        (F * (C + F) * k * k + 2 * F,
         "that is one gate's worth: there are four gates (i, f, g, o), each with its own kernels and biases, "
         "stacked as 4F output channels"),
        (4 * F * C * k * k + 8 * F,
         "you left out the recurrent convolution weight_hh (4F, F, k, k): the gates look at h as well as at x"),
        (4 * F * (C + F) + 8 * F,
         "that is a dense nn.LSTM's count on C inputs: in a ConvLSTM each weight is a k x k kernel"),
        (4 * F * (C * k * k + F) + 8 * F,
         "your recurrent kernel is 1x1: weight_hh is a k x k convolution too, (4F, F, k, k)"),
    ]


def _check_count(answer) -> str:
    counts = []  # (case, the learner's count, the true count, the slips' counts), every case first:
    for C, F, k in _CASES:  # one case alone can't tell two slips apart (C=1, k=3: dense = no weight_hh)
        case = f"in_channels={C}, hidden_channels={F}, kernel_size={k}"
        got = call(answer, C, F, k, case=case)
        try:
            if isinstance(got, bool):
                raise TypeError
            got = operator.index(got)
        except TypeError:
            raise Wrong(f"convlstm_parameters should return an int, but returned {describe_value(got)}.") from None
        want = sum(p.numel() for p in ConvLSTM(C, F, k).parameters())
        counts.append((case, got, want, _slips(C, F, k)))
    wrong = [(case, got, want, slips) for case, got, want, slips in counts if got != want]
    if wrong:
        for n in range(len(wrong[0][3])):
            if all(g == s[n][0] for _, g, _, s in wrong):
                # name the slip on a case where no other slip gives the same number
                case, got, want, slips = next((w for w in wrong if [c for c, _ in w[3]].count(w[1]) == 1), wrong[0])
                raise Wrong(f"For {case} you counted {got}, not {want}: {slips[n][1]}.")
        case, got, want, _ = wrong[0]
        raise Wrong(f"For {case} the ConvLSTM has {want} parameters; you counted {got}. List its tensors: "
                    "weight_ih (4F, C, k, k), weight_hh (4F, F, k, k), bias_ih (4F,), bias_hh (4F,).")
    return ("Right on every hidden case. Notice what is missing: the frame size. A ConvLSTM's weights are kernels "
            "shared over the grid, so a 64x64 frame costs no more parameters than a 14x14 one, while a dense "
            "LSTM on the flattened map grows with every pixel.")


_SKELETON = '''\
def convlstm_parameters(in_channels, hidden_channels, kernel_size):
    """How many parameters ConvLSTM(in_channels, hidden_channels, kernel_size) has
    (one layer, biases on, no peepholes). Count them from the tensors' shapes."""
    ...  # your code here'''

EXERCISES = (
    Exercise(
        name="convlstm_parameters", lesson=4,
        title="Count a one-layer ConvLSTM's parameters from the shapes of its four tensors.",
        skeleton=_SKELETON,
        hint="Four tensors, laid out like nn.LSTM's: weight_ih (4F, C, k, k), weight_hh (4F, F, k, k), "
             "bias_ih (4F,) and bias_hh (4F,).",
        reference=convlstm_parameters, grade=_check_count),
)

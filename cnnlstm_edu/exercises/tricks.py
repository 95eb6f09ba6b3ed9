"""Lesson 05's exercises on two of seed 003's tricks: ``forget_gate_bias`` and ``recurrent_weights``.

``forget_gate_bias`` starts an ``nn.LSTM`` with its forget gate open, as seed 003's
``forget_bias=1.0`` and Keras' ``unit_forget_bias=True`` do (Jozefowicz et al. 2015): checked
on every layer, with PyTorch's two biases in mind. ``recurrent_weights`` names the parameters
that get the recurrent-only weight decay, checked against
:func:`cnnlstm_edu.train.optim.parameter_groups`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..train.optim import parameter_groups
from .core import Exercise, Wrong, call, describe_value, seeded

__all__ = ["EXERCISES", "forget_gate_bias", "recurrent_weights"]


def forget_gate_bias(lstm: nn.LSTM) -> nn.LSTM:
    """Start every layer's forget gate at bias 1 (Keras' unit_forget_bias); leave the other gates alone."""
    H = lstm.hidden_size
    with torch.no_grad():                      # set a starting value: not a step to differentiate
        for k in range(lstm.num_layers):
            getattr(lstm, f"bias_ih_l{k}")[H:2 * H] = 1.0   # gates i, f, g, o: f is the second block
            getattr(lstm, f"bias_hh_l{k}")[H:2 * H] = 0.0   # PyTorch adds both biases: 1 + 0 = 1
    return lstm


def recurrent_weights(model: nn.Module) -> list[str]:
    """The names of the parameters that get the recurrent weight decay: the LSTM/GRU layers' weights."""
    recurrent = (nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell)
    return [f"{module_name}.{name}"
            for module_name, module in model.named_modules() if isinstance(module, recurrent)
            for name, _ in module.named_parameters(recurse=False) if name.startswith("weight")]


def _check_forget(answer) -> str:
    for seed, layers in enumerate((2, 1)):
        lstm = seeded(nn.LSTM(3, 4, num_layers=layers, batch_first=True), 500 + seed)
        before = {name: p.detach().clone() for name, p in lstm.named_parameters()}
        case = f"nn.LSTM(3, 4, num_layers={layers})"
        got = call(answer, lstm, case=case, grad=True, on_error=_leaf_hint)
        if got is not lstm:
            raise Wrong(f"forget_gate_bias should change the LSTM it is given and return it; it returned "
                        f"{describe_value(got)}.")
        _compare_biases(lstm, before, case)
    return ("Right: in every layer bias_ih + bias_hh is 1 on the forget gate's block, and nothing else moved. "
            "sigma(1) = 0.73: at the start the cell keeps about three quarters of its memory at each step, "
            "instead of about half, so gradients reach further back.")


def _compare_biases(lstm: nn.LSTM, before: dict, case: str) -> None:
    H = lstm.hidden_size
    blocks = {"i": slice(0, H), "f": slice(H, 2 * H), "g": slice(2 * H, 3 * H), "o": slice(3 * H, 4 * H)}
    for name, p in lstm.named_parameters():
        if name.startswith("weight") and not torch.equal(p, before[name]):
            raise Wrong(f"On {case} {name} changed: the trick sets the forget gate's bias only.")
    for k in range(lstm.num_layers):
        ih, hh = getattr(lstm, f"bias_ih_l{k}"), getattr(lstm, f"bias_hh_l{k}")
        total = (ih + hh).detach()
        old = (before[f"bias_ih_l{k}"] + before[f"bias_hh_l{k}"])
        if torch.allclose(total[blocks["f"]], torch.full((H,), 2.0)):
            raise Wrong(f"On {case} layer {k}'s forget gate starts at 2: PyTorch adds bias_ih and bias_hh, and you set "
                        "both to 1. sigma(2) = 0.88 instead of sigma(1) = 0.73: set one to 1 and the other to 0.")
        if torch.equal(total, old):
            raise Wrong(f"On {case} layer {k}'s biases did not change" + (
                ": every layer has its own bias_ih_l{k} and bias_hh_l{k}; loop over range(lstm.num_layers)."
                if k else "."))
        if torch.allclose(total[blocks["i"]], torch.ones(H)) and not torch.allclose(total[blocks["f"]], torch.ones(H)):
            raise Wrong(f"On {case} you set the input gate's bias (rows 0:H). The gates are stacked i, f, g, o: the "
                        "forget gate is rows H:2H.")
        if not torch.allclose(total[blocks["f"]], torch.ones(H)):
            raise Wrong(f"On {case} layer {k}'s forget gate bias is {total[blocks['f']].tolist()}, not 1: "
                        "bias_ih[H:2H] + bias_hh[H:2H] should be 1 for every unit.")
        for gate in "igo":
            if not torch.equal(total[blocks[gate]], old[blocks[gate]]):
                raise Wrong(f"On {case} the {gate} gate's bias changed too (layer {k}): the trick touches the "
                            "forget gate only, rows H:2H of each bias.")


def _leaf_hint(error: BaseException) -> str | None:
    if "leaf Variable" in str(error):
        return ("A parameter is a leaf that autograd tracks, so it cannot be written in place while gradients "
                "are on. Setting a starting value is not part of training: do it inside `with torch.no_grad():`.")
    return None


class _Frames(nn.Module):
    """A small CNN-LSTM-like model for the recurrent_weights cases."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten())
        self.rnn = rnn
        self.head = nn.Linear(4, 10)


def _check_recurrent(answer) -> str:
    for rnn in (nn.LSTM(8, 4, num_layers=2, batch_first=True), nn.GRU(8, 4, batch_first=True)):
        model = _Frames(rnn)
        case = f"a model with cnn, rnn = {rnn}, head"
        got = call(answer, model, case=case)
        if isinstance(got, str) or not all(isinstance(n, str) for n in _iterable(got)):
            raise Wrong(f"recurrent_weights should return a list of parameter names (str), got {describe_value(got)}.")
        got, want = set(got), set(parameter_groups(model)[0]["names"])
        if got == want:
            continue
        extra, missing = sorted(got - want), sorted(want - got)
        raise Wrong(_recurrent_feedback(extra, missing, case))
    return ("Right: the recurrent layers' weights, weight_ih and weight_hh of every layer, and nothing else. "
            "In Keras words that is kernel_regularizer plus recurrent_regularizer on the LSTM: Keras' "
            "'recurrent' weights are weight_hh alone.")


def _iterable(value) -> list:
    try:
        return list(value)
    except TypeError:
        return [None]


def _recurrent_feedback(extra: list[str], missing: list[str], case: str) -> str:
    if any("bias" in n for n in extra):
        return (f"On {case} your list holds {', '.join(n for n in extra if 'bias' in n)}: seed 003 decays the "
                "weights only. A bias shifts a gate, it does not scale the signal: decaying it pulls every gate "
                "towards half open, sigma(0) = 0.5, and undoes a forget bias of 1.")
    if extra:
        return (f"On {case} your list holds {', '.join(extra)}: those are not the recurrent layer's. Matching "
                "names with 'weight' catches the CNN and the head too; walk model.named_modules() and keep the "
                "LSTM/GRU ones.")
    if missing and all("weight_ih" in n for n in missing):
        return (f"On {case} you left out {', '.join(missing)}: in Keras, 'recurrent' weights are the "
                "hidden-to-hidden ones only, but this lesson's group is the whole recurrent layer's weights, "
                "the input-to-hidden weight_ih included.")
    return f"On {case} you left out {', '.join(missing)}: every layer of the recurrent module has its own weights."


_FORGET_SKELETON = '''\
def forget_gate_bias(lstm):
    """Start every layer's forget gate of nn.LSTM `lstm` at bias 1, as Keras' unit_forget_bias does;
    leave the other gates alone. Return the LSTM."""
    ...  # your code here'''

_RECURRENT_SKELETON = '''\
def recurrent_weights(model):
    """The names (as in model.named_parameters()) of the weights that get the recurrent weight decay:
    the LSTM/GRU layers' weights, not their biases, not the CNN's."""
    ...  # your code here'''

EXERCISES = (
    Exercise(
        name="forget_gate_bias", lesson=5,
        title="Open the forget gate at the start: bias 1 in every layer of an nn.LSTM (unit_forget_bias).",
        skeleton=_FORGET_SKELETON,
        hint="The biases are stacked i, f, g, o, H rows each, and PyTorch adds bias_ih_l{k} to bias_hh_l{k}. "
             "Write under torch.no_grad().",
        reference=forget_gate_bias, grade=_check_forget),
    Exercise(
        name="recurrent_weights", lesson=5,
        title="Name the parameters that the recurrent weight decay applies to.",
        skeleton=_RECURRENT_SKELETON,
        hint="Walk model.named_modules(); for each LSTM/GRU, its own parameters "
             "(named_parameters(recurse=False)) whose names start with 'weight'.",
        reference=recurrent_weights, grade=_check_recurrent),
)

"""The optimizer: recurrent weights in a group of their own (seed 003's weight decay), AdamW or SGD."""

from __future__ import annotations

import torch
from torch import nn

from ..axes import RECURRENT_TYPES

__all__ = ["make_optimizer", "parameter_groups"]


def parameter_groups(model: nn.Module, weight_decay: float = 0.0,
                     recurrent_weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups: recurrent layers' weights apart from everything else.

    A parameter is a *recurrent weight* when it belongs directly to an LSTM/GRU/RNN/ConvLSTM
    module (or cell) and its name starts with ``weight``: ``weight_ih_l0``, ``weight_hh_l0``,
    peephole weights. Biases and the CNN's weights go to the other group.

    >>> from cnnlstm_edu.models import build_model
    >>> groups = parameter_groups(build_model("cnn_lstm"), recurrent_weight_decay=1e-3)
    >>> [(g["name"], g["weight_decay"], g["names"]) for g in groups][0]
    ("recurrent layers' weights (ih and hh)", 0.001, ['lstm.weight_ih_l0', 'lstm.weight_hh_l0'])
    """
    recurrent: dict[int, str] = {}
    for module_name, module in model.named_modules():
        if isinstance(module, RECURRENT_TYPES):
            for name, p in module.named_parameters(recurse=False):
                if name.startswith("weight"):
                    recurrent[id(p)] = f"{module_name}.{name}" if module_name else name
    rec, other = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (rec if id(p) in recurrent else other).append((name, p))
    groups = [
        # not "recurrent weights": in Keras, recurrent_* is the hidden-to-hidden part alone
        {"name": "recurrent layers' weights (ih and hh)", "weight_decay": recurrent_weight_decay,
         "names": [n for n, _ in rec], "params": [p for _, p in rec]},
        {"name": "everything else", "weight_decay": weight_decay, "names": [n for n, _ in other],
         "params": [p for _, p in other]},
    ]
    return [g for g in groups if g["params"]]


def make_optimizer(groups: list[dict], kind: str, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """AdamW (fused on CUDA) or SGD with momentum 0.9 over ``groups``."""
    params = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in groups]
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    return torch.optim.AdamW(params, lr=lr, **({"fused": True} if device.type == "cuda" else {}))

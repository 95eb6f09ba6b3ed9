"""Switching a model to evaluation for a moment, and putting it back exactly as it was.

Dropout and BatchNorm behave differently in training and evaluation, so probes, predictions and
held-out losses must run in ``eval()``; and the caller's model must come back in the mode it was
in, module by module (a frozen BatchNorm inside a training model stays frozen), even when the
work in between raises. torchinfo does the same around its summary; this is that, once.

>>> import torch.nn as nn
>>> model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
>>> with eval_mode(model):
...     print(model.training, model[1].training)
False False
>>> model.training, model[1].training
(True, True)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch.nn as nn

__all__ = ["eval_mode"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run the ``with`` block with every module of ``model`` in eval mode; restore each one's own
    flag afterwards, also when the block raises.

    >>> import torch.nn as nn
    >>> model = nn.Sequential(nn.BatchNorm1d(2), nn.Linear(2, 2)).train()
    >>> _ = model[0].eval()                      # a frozen BatchNorm inside a training model
    >>> with eval_mode(model):
    ...     pass
    >>> model.training, model[0].training, model[1].training
    (True, False, True)
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training

"""What a trained classifier says: its predictions, and its loss and accuracy on held-out data."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..modes import eval_mode
from ..pixels import to_float
from .devices import autocast

__all__ = ["evaluate", "predict"]


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a classifier on ``(x, y)``, in eval mode, on the
    model's device (:func:`predict`'s logits); the model's train/eval mode is restored.

    >>> from cnnlstm_edu.models.cnn_lstm import CNNLSTM
    >>> loss, acc = evaluate(CNNLSTM(), torch.rand(6, 4, 1, 14, 14), torch.randint(0, 10, (6,)))
    >>> 0.0 <= acc <= 1.0 and loss > 0
    True
    """
    logits = predict(model, x, batch_size, logits=True)          # (N, classes), on the CPU
    y = y.cpu()
    return F.cross_entropy(logits, y).item(), (logits.argmax(-1) == y).float().mean().item()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000, all_steps: bool = False,
            logits: bool = False) -> torch.Tensor:
    """What a classifier says about every sequence of ``x`` ``(N, T, C, H, W)``, on the CPU.

    Predicted classes ``(N,)``; with ``all_steps=True`` the class after every step ``(N, T)``
    (the model must accept ``all_steps``, as ``CNNLSTM`` and ``CNNConvLSTM`` do); with
    ``logits=True`` float logits ``(N, classes)`` or ``(N, T, classes)`` instead of classes.
    Runs in eval mode on the model's device, in batches; the model's mode is restored.

    The accuracy after 1, 2, ..., T frames is then one line:

    >>> from cnnlstm_edu.models.cnn_lstm import CNNLSTM
    >>> model = CNNLSTM()
    >>> x, y = torch.rand(6, 4, 1, 14, 14), torch.randint(0, 10, (6,))
    >>> predict(model, x).shape, predict(model, x, all_steps=True).shape   # (N,), (N, T)
    (torch.Size([6]), torch.Size([6, 4]))
    >>> (predict(model, x, all_steps=True) == y[:, None]).float().mean(0).shape   # (T,)
    torch.Size([4])
    """
    device = next(model.parameters()).device
    out = []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb = to_float(x[i:i + batch_size].to(device, non_blocking=True))
            with autocast(device):
                z = (model(xb, all_steps=True) if all_steps else model(xb)).float()  # (b, [T,] classes)
            out.append((z if logits else z.argmax(-1)).cpu())
    return torch.cat(out)

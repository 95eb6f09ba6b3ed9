"""Objectives: what ``fit`` optimises per batch and what it reports on held-out data.

``fit`` knows nothing about labels, logits or frames: it asks its objective. Classification
(a label per sequence) lives here; next-frame prediction (``models.NextFrameObjective``) lives
beside its model; a new task (tracking, ...) brings its own class with the same members.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn import functional as F

from ..modes import eval_mode
from ..pixels import to_float
from .devices import autocast
from .evaluation import evaluate

__all__ = ["Classification", "Objective", "check_pair"]


@runtime_checkable
class Objective(Protocol):
    """What ``fit`` needs from a task.

    Two members are optional: ``check_data(data, what, model) -> (x, y)`` refuses data the task
    can't train on (by default ``fit`` only checks for a pair of tensors, :func:`check_pair`),
    and ``counts_correct = True`` says that ``loss``'s second value counts right answers, so
    step events carry an accuracy (by default they don't).
    """

    name: str                        # reported in the "start" event
    feeds_back_output: bool          # True when the model's output is its next input (scheduled sampling)

    def loss(self, model, x, y, *, unroll=None, sampling_p=0.0, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, correct)`` on one batch, in training mode."""

    def validation_loss(self, model, x, y, device, unroll=None) -> float:
        """The loss on a held-out slice, in eval mode (the curriculum's plateau test)."""

    def evaluate(self, model, x, y, device) -> dict:
        """Test metrics: at least ``test_loss``; ``test_acc`` where it means something."""


def check_pair(data, what: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``data`` as ``(x, y)`` tensors of one non-zero length (``y`` may be ``None``)."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{what}: expected a pair (x, y) of tensors, got {type(data).__name__}")
    x, y = data
    if not isinstance(x, torch.Tensor) or not (y is None or isinstance(y, torch.Tensor)):
        raise TypeError(f"{what}: expected (x, y) as torch tensors (y may be None for a next-frame "
                        f"model), got ({type(x).__name__}, {type(y).__name__})")
    if len(x) == 0 or y is not None and len(x) != len(y):
        raise ValueError(f"{what}: x and y must have the same, non-zero length; got {len(x)} "
                         f"and {None if y is None else len(y)}")
    return x, y


class Classification:
    """Cross-entropy on the last step's logits; a sequence label per clip.

    With an unroll curriculum the model reads only the first ``unroll`` steps of each clip
    and must already name its label: for MNIST quadrants, the digit from its first quarters.

    >>> isinstance(Classification(), Objective)
    True
    """

    name = "classification"
    feeds_back_output = False        # scheduled sampling makes no sense for it
    counts_correct = True

    def check_data(self, data, what: str, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Class labels as int64 ``(N,)``, in the model's range."""
        x, y = check_pair(data, what)
        if y is None or y.dtype not in (torch.int64, torch.int32, torch.uint8) or y.dim() != 1:
            raise TypeError(f"{what}: a classifier needs class labels y of shape (N,) = ({len(x)},), as "
                            f"int64, got {None if y is None else (y.dtype, tuple(y.shape))}. "
                            "Labels from load_mnist are already int64; y.long() converts others.")
        classes = getattr(getattr(model, "config", None), "num_classes", None)
        low, high = int(y.min()), int(y.max())
        if low < 0 or classes is not None and high >= classes:
            raise ValueError(f"{what}: labels run from {low} to {high}, but the model has "
                             f"{classes} classes (0 to {classes - 1 if classes else '?'}). Build the "
                             "model with num_classes large enough, or relabel.")
        return x, y.long()               # cross_entropy wants int64; a no-op when it already is

    def loss(self, model, x, y, *, unroll=None, sampling_p=0.0, generator=None):
        if unroll is not None:
            x = x[:, :unroll]                                   # (b, unroll, C, H, W)
        logits = model(x)                                       # (b, classes)
        loss = F.cross_entropy(logits.float(), y)
        return loss, (logits.detach().argmax(-1) == y).sum()

    def evaluate(self, model, x, y, device) -> dict:
        loss, acc = evaluate(model, x, y)
        return {"test_loss": loss, "test_acc": acc}

    def validation_loss(self, model, x, y, device, unroll=None) -> float:
        # Held out, so measured as deployed: no dropout noise, and BatchNorm's running
        # statistics don't learn from the slice the plateau test needs unseen.
        with eval_mode(model), torch.no_grad(), autocast(device):
            logits = model(to_float(x[:, :unroll] if unroll else x).to(device))
            return F.cross_entropy(logits.float(), y.to(device)).item()

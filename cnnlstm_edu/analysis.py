"""Analysis: what a CNN-LSTM computes on its way, as tensors; drawing them is :mod:`cnnlstm_edu.viz`'s job.

A learner looking inside a trained model asks three questions, and each has an answer here that
the notebooks, the app and the figures share:

- *What did it see, frame by frame?* :func:`probe` runs one sequence through the model once and
  records a :class:`Probe`: the frames, the CNN's feature maps of each (the activations), the
  recurrent layer's ``h`` after each step (the hidden states) and the class probabilities after
  each step (the beliefs). :func:`recurrent_layer` finds the layer whose ``h`` that is.
- *What does it believe after k frames, over a whole test set?* :func:`beliefs` (probabilities
  ``(N, T, classes)``) and :func:`accuracy_per_step` (accuracy after 1, 2, ..., T frames).
- *Which classes does it confuse?* :func:`confusion_matrix`.

Nothing here imports matplotlib; the figures of :mod:`cnnlstm_edu.viz` read these results.

>>> from cnnlstm_edu.models import build_model
>>> p = probe(build_model("cnn_lstm"), torch.rand(4, 1, 14, 14))   # (T, C, H, W): one digit's quadrants
>>> [tuple(m.shape) for m in p.maps]                                 # per conv block: (T, C', H', W')
[(4, 16, 7, 7), (4, 32, 3, 3)]
>>> tuple(p.hidden.shape), tuple(p.probs.shape)                      # (T, hidden), (T, classes)
((4, 128), (4, 10))
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from .axes import recurrent_contract
from .checks import check_number
from .modes import eval_mode
from .pixels import to_float

__all__ = ["Probe", "probe", "recurrent_layer", "beliefs", "accuracy_per_step", "confusion_matrix"]


def recurrent_layer(model: nn.Module) -> nn.Module | None:
    """The first recurrent *sequence* layer in ``model`` (``nn.LSTM``/``GRU``/``RNN``, ``ConvLSTM``,
    the from-scratch ``LSTM``): its output is ``h`` at every step. None when there is none.

    >>> from cnnlstm_edu.models import build_model
    >>> type(recurrent_layer(build_model("cnn_convlstm"))).__name__
    'ConvLSTM'
    >>> recurrent_layer(nn.Linear(3, 4)) is None
    True
    """
    for module in model.modules():
        contract = recurrent_contract(module)
        if contract is not None and contract.sequence:
            return module
    return None


@dataclass
class Probe:
    """One sequence seen by a model, everything recorded (batch axis dropped)."""

    frames: torch.Tensor                  # (T, C, H, W) the frames as the model read them, float
    maps: list[torch.Tensor]              # one per conv block: (T, C', H', W') its output per frame
    hidden: torch.Tensor                  # (T, D) the recurrent layer's h after each step, flattened
    probs: torch.Tensor                   # (T, classes) softmax of the classifier after each step
    block_names: list[str] = field(default_factory=list)   # e.g. ["block 1", "block 2"]

    def __post_init__(self) -> None:
        if not self.block_names:
            self.block_names = [f"block {i + 1}" for i in range(len(self.maps))]

    @property
    def prediction(self) -> int:
        """The class believed after the last frame."""
        return int(self.probs[-1].argmax())


@contextmanager
def _recording(blocks: list[nn.Module], rnn: nn.Module | None) -> Iterator[tuple[list, list]]:
    """Forward hooks that keep each block's output and the recurrent layer's output while the
    ``with`` block runs; removed afterwards, also on error."""
    maps: list[list[torch.Tensor]] = [[] for _ in blocks]
    hidden: list[torch.Tensor] = []

    def keep_map(i):
        # TimeDistributed's fold mode calls a block once on all T frames, loop mode T times on
        # one frame each: collecting a list and concatenating covers both.
        return lambda module, args, out: maps[i].append(out.detach().float().contiguous())

    handles = [b.register_forward_hook(keep_map(i)) for i, b in enumerate(blocks)]
    if rnn is not None:
        handles.append(rnn.register_forward_hook(lambda module, args, out: hidden.append(out[0].detach().float())))
    try:
        yield maps, hidden
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def probe(model: nn.Module, seq: torch.Tensor) -> Probe:
    """Run one sequence ``(T, C, H, W)`` (or ``(1, T, C, H, W)``) through ``model`` and record it.

    The model must accept ``all_steps=True`` (``CNNLSTM``, ``CNNConvLSTM``): the belief after
    every step comes from the classifier applied to every step's hidden state. Feature maps are
    taken from the conv blocks of ``model.encoder.module.blocks`` (the frame CNN inside
    ``TimeDistributed``) with forward hooks, so the forward pass is the model's own. The model
    runs in eval mode (BatchNorm with its running statistics) and gets its mode back after.
    uint8 frames are scaled to [0, 1] as in training.
    """
    if not isinstance(seq, torch.Tensor):
        raise TypeError(f"probe: expected one sequence as a tensor (T, C, H, W), got {type(seq).__name__}")
    if seq.dim() == 4:
        seq = seq.unsqueeze(0)                     # (1, T, C, H, W): a batch of one clip
    if seq.dim() != 5 or seq.shape[0] != 1:
        raise ValueError(f"probe: expected one sequence (T, C, H, W) or (1, T, C, H, W), got {tuple(seq.shape)}")
    x = to_float(seq.to(next(model.parameters()).device))
    T = x.shape[1]
    cnn = getattr(getattr(model, "encoder", None), "module", None)
    blocks = list(getattr(cnn, "blocks", []))
    rnn = recurrent_layer(model)
    with _recording(blocks, rnn) as (outputs, hidden), eval_mode(model):
        logits = model(x, all_steps=True)          # (1, T, classes)
    maps = [torch.cat(m).cpu() for m in outputs]   # each (T, C', H', W')
    if hidden:
        h = hidden[0]
        h = h[0] if getattr(rnn, "batch_first", True) else h[:, 0]   # (T, hidden) or (T, F, H', W')
        h = h.reshape(T, -1).cpu()                 # (T, D): a ConvLSTM's map read as one vector
    else:
        h = torch.zeros(T, 0)
    return Probe(frames=x[0].float().cpu(), maps=maps, hidden=h,
                 probs=logits[0].float().softmax(-1).cpu())


def beliefs(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Class probabilities after every step for each sequence of ``x`` ``(N, T, C, H, W)``:
    ``(N, T, classes)``, on the CPU, in eval mode (the model's mode is restored).

    >>> from cnnlstm_edu.models import build_model
    >>> p = beliefs(build_model("cnn_lstm"), torch.rand(3, 4, 1, 14, 14))
    >>> tuple(p.shape), bool(torch.allclose(p.sum(-1), torch.ones(3, 4)))
    ((3, 4, 10), True)
    """
    from .train import predict

    return predict(model, x, batch_size=batch_size, all_steps=True, logits=True).softmax(-1)


def accuracy_per_step(preds: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The accuracy after 1, 2, ..., T frames: ``preds`` ``(N, T)`` (the class after each step,
    e.g. ``predict(model, x, all_steps=True)``) against ``labels`` ``(N,)``; returns ``(T,)``.

    >>> accuracy_per_step(torch.tensor([[0, 1], [2, 1]]), torch.tensor([1, 1]))
    tensor([0., 1.])
    """
    preds, labels = torch.as_tensor(preds), torch.as_tensor(labels)
    if preds.dim() != 2 or labels.dim() != 1 or preds.shape[0] != labels.shape[0] or preds.shape[0] == 0:
        raise ValueError(f"accuracy_per_step: expected preds (N, T) and labels (N,) with the same N >= 1, "
                         f"got preds {tuple(preds.shape)} and labels {tuple(labels.shape)}")
    return (preds == labels[:, None]).float().mean(0)                      # (T,)


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """``cm[i, j]`` counts the samples of class ``i`` predicted as ``j``.

    >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), num_classes=2)
    tensor([[1, 0],
            [1, 1]])
    >>> confusion_matrix(torch.tensor([0, 2]), torch.tensor([0, 1]), num_classes=2)
    Traceback (most recent call last):
    ValueError: confusion_matrix: labels must be classes 0 to 1 (num_classes=2), got 2.
    """
    K = check_number(num_classes, "num_classes", integer=True, low=1, owner="confusion_matrix")
    labels, preds = torch.as_tensor(labels).long().cpu(), torch.as_tensor(preds).long().cpu()
    if labels.shape != preds.shape:
        raise ValueError(f"confusion_matrix: labels {tuple(labels.shape)} and preds {tuple(preds.shape)} differ")
    for name, v in (("labels", labels), ("preds", preds)):
        # A class outside 0..K-1 would land in another cell of the flat count: refuse it.
        bad = v[(v < 0) | (v >= K)]
        if bad.numel():
            raise ValueError(f"confusion_matrix: {name} must be classes 0 to {K - 1} (num_classes={K}), "
                             f"got {int(bad[0])}.")
    flat = torch.bincount(labels.flatten() * K + preds.flatten(), minlength=K * K)
    return flat.reshape(K, K)                                               # (true, predicted)

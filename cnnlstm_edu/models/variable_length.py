"""Clips of different lengths in one batch: padding, lengths, and the objective that trains on them.

A batch is one tensor, so clips of 6, 9 and 12 frames are padded to T = 12 with black frames.
An LSTM that reads the padding too ends its sequence on black frames: its last state, the one
the classifier reads, is about the padding, and a short clip is judged after several frames of
nothing. Two ways to do it right:

- PyTorch: ``pack_padded_sequence(feats, lengths)``; the LSTM runs each clip for its own
  length, and ``h_n`` is the state after each clip's *own* last frame. ``CNNLSTM(x, lengths=...)``
  does this.
- Keras: a ``Masking`` layer (or ``mask_zero``) marks the padded steps, and the LSTM carries its
  state through them unchanged: the same answer.

``fit`` hands an objective a pair ``(x, y)`` and indexes both with the same shuffled batch, so
the lengths travel inside ``y``: :func:`with_lengths` stacks labels and lengths into ``(N, 2)``,
and :class:`MaskedClassification` unstacks them.

>>> y = with_lengths(torch.tensor([2, 0]), torch.tensor([5, 3]))
>>> y.tolist()                        # (N, 2): label, length
[[2, 5], [0, 3]]
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..modes import eval_mode
from ..pixels import to_float

__all__ = ["MaskedClassification", "keras_style_last_state", "lengths_mask", "with_lengths"]


def with_lengths(labels: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Labels ``(N,)`` and real frame counts ``(N,)`` as one int64 target ``(N, 2)`` for ``fit``."""
    labels, lengths = torch.as_tensor(labels), torch.as_tensor(lengths)
    if labels.shape != lengths.shape or labels.dim() != 1:
        raise ValueError(f"with_lengths: labels and lengths must both be (N,), got "
                         f"{tuple(labels.shape)} and {tuple(lengths.shape)}")
    return torch.stack([labels.long(), lengths.long()], dim=1)     # (N, 2)


def lengths_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``(B, T)`` bool: True on each clip's real frames, False on its padding.

    >>> lengths_mask(torch.tensor([3, 1]), 4)
    tensor([[ True,  True,  True, False],
            [ True, False, False, False]])
    """
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]   # (B, T)


def keras_style_last_state(lstm: torch.nn.LSTM, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last layer's final ``h`` ``(B, hidden)``, Keras' way: step by step, and where ``mask``
    ``(B, T)`` is False the state is carried through unchanged (what ``Masking`` does to an LSTM).

    The slow, explicit twin of ``pack_padded_sequence``, for the lesson: both give each clip's
    state after its own last real frame (``tests/test_video_train.py`` checks they agree).
    """
    B, T = feats.shape[:2]
    L, Hd = lstm.num_layers, lstm.hidden_size
    h = feats.new_zeros(L, B, Hd)                                # (layers, B, hidden)
    c = feats.new_zeros(L, B, Hd)
    for t in range(T):
        _, (h_new, c_new) = lstm(feats[:, t:t + 1], (h, c))       # one step: (B, 1, F) in
        keep = mask[:, t].view(1, B, 1)                          # (1, B, 1): real frame here?
        h, c = torch.where(keep, h_new, h), torch.where(keep, c_new, c)
    return h[-1]                                                 # (B, hidden)


class MaskedClassification:
    """Cross-entropy on each clip's own last frame: ``fit(model, (x, with_lengths(y, lengths)), ...,
    objective=MaskedClassification())``. The model must take ``lengths=`` (``CNNLSTM`` does).

    Test metrics are the same as ``Classification``'s (``test_loss``, ``test_acc``).
    """

    name = "masked_classification"
    feeds_back_output = False
    counts_correct = True

    def __init__(self, batch_size: int = 256) -> None:
        self.batch_size = batch_size

    def check_data(self, data, what: str, model) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise TypeError(f"{what}: expected a pair (x, with_lengths(labels, lengths)), got {type(data).__name__}")
        x, y = data
        if not isinstance(y, torch.Tensor) or y.dim() != 2 or y.shape[1] != 2 or y.is_floating_point() \
                or not isinstance(x, torch.Tensor) or len(x) != len(y) or len(x) == 0 or x.dim() < 2:
            raise ValueError(f"{what}: MaskedClassification needs x (N, T, ...) and y = with_lengths(labels, "
                             f"lengths) of shape (N, 2), as integers; got x {getattr(x, 'shape', x)!r} and y "
                             f"{getattr(y, 'dtype', '')} {tuple(getattr(y, 'shape', ()))}")
        classes = getattr(getattr(model, "config", None), "num_classes", None)
        labels, lengths = y[:, 0], y[:, 1]
        if int(labels.min()) < 0 or classes is not None and int(labels.max()) >= classes:
            raise ValueError(f"{what}: labels run from {int(labels.min())} to {int(labels.max())}, but "
                             f"the model has {classes} classes")
        if int(lengths.min()) < 1 or int(lengths.max()) > x.shape[1]:
            raise ValueError(f"{what}: lengths run from {int(lengths.min())} to {int(lengths.max())}; "
                             f"they must lie in 1..T={x.shape[1]}")
        return x, y.long()

    def loss(self, model, x, y, *, unroll=None, sampling_p=0.0, generator=None):
        if unroll is not None:
            raise ValueError("MaskedClassification: an unroll curriculum cuts clips at a fixed step, "
                             "which their lengths already do; train without curriculum")
        labels, lengths = y[:, 0], y[:, 1]
        logits = model(x, lengths=lengths)                          # (b, classes)
        return F.cross_entropy(logits.float(), labels), (logits.detach().argmax(-1) == labels).sum()

    @torch.no_grad()
    def _logits(self, model, x, y, device) -> torch.Tensor:
        out = []
        with eval_mode(model):
            for i in range(0, len(x), self.batch_size):
                xb = to_float(x[i:i + self.batch_size].to(device))
                out.append(model(xb, lengths=y[i:i + self.batch_size, 1]).float().cpu())
        return torch.cat(out)                                        # (N, classes)

    def evaluate(self, model, x, y, device) -> dict:
        logits, labels = self._logits(model, x, y, device), y[:, 0].cpu()
        return {"test_loss": F.cross_entropy(logits, labels).item(),
                "test_acc": (logits.argmax(-1) == labels).float().mean().item()}

    def validation_loss(self, model, x, y, device, unroll=None) -> float:
        return F.cross_entropy(self._logits(model, x, y, device), y[:, 0].cpu()).item()

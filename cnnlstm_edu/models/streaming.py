"""FrameStreamer: deploy a CNN-LSTM one frame at a time, carrying the state between calls.

Seed 003, point 5: in training, every video starts from a zero state (the batch holds whole
clips); in deployment frames arrive one by one, and the recurrent state must be carried from
each frame to the next, and cleared when a new video starts. :class:`FrameStreamer` does the
deployment half with :class:`~cnnlstm_edu.layers.stateful.Stateful`: the CNN sees one frame,
the recurrent layer continues from where the last frame left it, the classifier says what the
model believes so far.

Fed the frames of a clip in order, it gives exactly the per-step predictions of the batched
model, ``model(x, all_steps=True)``. Forget :meth:`FrameStreamer.reset` between two videos and
the second video is read as the continuation of the first.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers.stateful import Stateful
from ..shapes import check_float, check_shape

__all__ = ["FrameStreamer"]


class FrameStreamer(nn.Module):
    """Wrap a trained ``CNNLSTM`` or ``CNNConvLSTM`` for frame-by-frame inference.

    >>> from cnnlstm_edu.models import CNNLSTM
    >>> model = CNNLSTM().eval()
    >>> clip = torch.randn(1, 4, 1, 14, 14)          # (B, T, C, H, W)
    >>> stream = FrameStreamer(model)
    >>> beliefs = [stream(clip[:, t]) for t in range(4)]   # one (B, C, H, W) frame per call
    >>> torch.allclose(torch.stack(beliefs, 1), model(clip, all_steps=True), atol=1e-5)
    True
    >>> stream.reset()                               # a new video starts from a zero state
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        rnn = getattr(model, "lstm", None) or getattr(model, "convlstm", None)
        if rnn is None or not hasattr(model, "encoder") or not hasattr(model, "classifier"):
            raise TypeError(f"FrameStreamer needs a CNNLSTM or CNNConvLSTM (encoder, lstm/convlstm, "
                            f"classifier), got {type(model).__name__}")
        self.model = model
        self.rnn = Stateful(rnn)

    def reset(self) -> None:
        """Start a new video: forget the state."""
        self.rnn.reset_state()

    @torch.no_grad()
    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        """One frame ``(B, C, H, W)`` in, logits ``(B, classes)`` after it out."""
        c = self.model.config
        check_shape(frame, "B C H W", what="FrameStreamer frame", C=c.in_channels,
                    hint="Feed one frame per call: clip[:, t], not the whole clip.")
        check_float(frame, "FrameStreamer frame")
        x = frame.unsqueeze(1)                       # (B, 1, C, H, W): a clip of one frame
        feats = self.model.encoder(x)                # (B, 1, F) or (B, 1, C', H', W')
        h = self.rnn(feats)[:, -1]                   # (B, hidden) or (B, F, H', W'): state carried on
        return self.model.classifier(h.flatten(1))   # (B, classes)

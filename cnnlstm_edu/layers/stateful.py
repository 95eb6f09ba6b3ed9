"""Stateful: keep a recurrent layer's state from one call to the next, for streaming video.

A recurrent layer called as ``output, state = rnn(x, state)`` forgets everything between calls
unless you carry ``state`` yourself. That is right in training on whole clips (every clip starts
from zeros) but wrong when a video arrives a few frames at a time, as in a webcam demo or a
long video cut into chunks: the frames of chunk 2 must see what chunk 1 left behind (seed 003,
point 5). Keras does this with ``stateful=True``; pytorch/examples' word language model carries
``hidden`` by hand and cuts its graph with ``repackage_hidden``. :class:`Stateful` wraps those two
habits around any module with the ``(output, state)`` contract: ``nn.LSTM``, ``nn.GRU``,
:class:`~cnnlstm_edu.layers.convlstm.ConvLSTM`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

__all__ = ["Stateful"]


def _map_tensors(fn: Callable[[torch.Tensor], Any], tree):
    """Apply ``fn`` to every tensor in a nest of tuples, lists and dicts (a GRU's state is one
    tensor, an LSTM's a pair ``(h, c)``): the wrapper never needs to know which."""
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, (tuple, list)):
        mapped = [_map_tensors(fn, t) for t in tree]
        return type(tree)(*mapped) if hasattr(tree, "_fields") else type(tree)(mapped)  # namedtuples too
    if isinstance(tree, dict):
        return {k: _map_tensors(fn, v) for k, v in tree.items()}
    return tree


def _first_tensor(tree) -> torch.Tensor | None:
    if isinstance(tree, torch.Tensor):
        return tree
    items = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, (tuple, list)) else ()
    for t in items:
        found = _first_tensor(t)
        if found is not None:
            return found
    return None


class Stateful(nn.Module):
    """Wrap ``rnn`` so that each call continues from the state the previous call ended with.

    Calling the wrapper returns the output tensor only; the state stays in ``.state``.
    ``reset_state()`` forgets it (the start of a new video); ``detach_state()`` keeps its values
    but cuts the autograd graph, so the next ``backward()`` stops at this chunk (truncated
    backpropagation through time). Feeding a clip in chunks gives the same output as feeding it
    whole:

    >>> rnn = nn.LSTM(input_size=3, hidden_size=5, batch_first=True)
    >>> stream = Stateful(rnn)
    >>> x = torch.randn(2, 10, 3)                        # (B, T, I): 2 videos, 10 frames
    >>> parts = [stream(x[:, :4]), stream(x[:, 4:])]     # 4 frames, then the other 6
    >>> whole, _ = rnn(x)
    >>> torch.allclose(torch.cat(parts, dim=1), whole, atol=1e-6)
    True
    >>> stream.state[0].shape                            # h_n: (num_layers, B, H)
    torch.Size([1, 2, 5])
    >>> stream.reset_state()                             # a new video starts from zeros
    >>> stream.state is None
    True

    In training, detach after each chunk's backward() (truncated backpropagation through time):

    >>> for chunk in x.split(5, dim=1):                  # (B, 5, I) each
    ...     loss = stream(chunk).pow(2).mean()
    ...     loss.backward()
    ...     stream.detach_state()                        # the next chunk's graph starts here

    The input's batch axis follows ``rnn.batch_first`` (``nn.LSTM`` defaults to ``False``); the
    state's batch axis is 1, as in ``nn.LSTM``, ``nn.GRU`` and ``ConvLSTM``
    ``(num_layers, B, ...)``.
    """

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        if not isinstance(rnn, nn.Module):
            raise TypeError(
                f"Stateful wraps a module called as output, state = rnn(x, state), got {type(rnn).__name__}."
            )
        self.rnn = rnn
        # Not a buffer: the state belongs to the video being watched, not to the model, so it
        # must stay out of state_dict() and checkpoints.
        self.state = None

    def reset_state(self) -> None:
        """Forget the state: the next call starts from zeros, as at the start of a new video."""
        self.state = None

    def detach_state(self) -> None:
        """Keep the state's values but cut its autograd graph (truncated backprop through time).

        Without this, every ``backward()`` would run back through all the chunks seen so far,
        growing slower and using more memory at each chunk (and failing on the second pass
        through a graph whose buffers are already freed).
        """
        self.state = _map_tensors(torch.Tensor.detach, self.state)

    def _batch_size(self, x: torch.Tensor) -> int | None:
        batch_first = getattr(self.rnn, "batch_first", True)
        if x.dim() < 3:  # nn.LSTM also accepts an unbatched (T, I) sequence: nothing to compare
            return None
        return x.shape[0] if batch_first else x.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.state is not None:
            stored = _first_tensor(self.state)
            B = self._batch_size(x)
            if stored is not None and B is not None and stored.dim() >= 2 and stored.shape[1] != B:
                raise ValueError(
                    f"Stateful: this call has a batch of {B} sequences but the stored state is for "
                    f"{stored.shape[1]} (state shape {tuple(stored.shape)}, batch on axis 1). A new "
                    "video or a different batch? Call reset_state() first, so it starts from zeros."
                )
        output, self.state = self.rnn(x, self.state)
        return output

    def extra_repr(self) -> str:
        return "state=None" if self.state is None else "state=carried"

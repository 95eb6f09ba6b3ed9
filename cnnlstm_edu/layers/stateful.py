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

import inspect
from typing import Any, Callable

import torch
from torch import nn

from ..shapes import ShapeError, check_float, describe, module_error

__all__ = ["Stateful", "feed_in_chunks"]


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


def _takes_two_arguments(module: nn.Module) -> bool:
    """Whether ``module(x, state)`` can be called at all (``nn.Linear`` takes only ``x``)."""
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):  # no signature to read: let the call decide
        return True
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return True
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params) >= 2


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
        if not _takes_two_arguments(rnn):
            raise TypeError(
                f"Stateful wraps a module called as output, state = rnn(x, state); "
                f"{type(rnn).__name__}.forward takes no state argument. Wrap a recurrent layer "
                "(nn.LSTM, nn.GRU, ConvLSTM) or a module of your own with that call."
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

    def _axes(self, x: torch.Tensor) -> str:
        """The input's axes as the wrapped layer reads them, e.g. ``(B=2, T=4, I=3)``."""
        batch_first = getattr(self.rnn, "batch_first", True)
        names = {2: ["T", "I"], 3: ["B", "T", "I"] if batch_first else ["T", "B", "I"],
                 5: ["B", "T", "C", "H", "W"] if batch_first else ["T", "B", "C", "H", "W"]}.get(x.dim())
        return describe(x.shape, names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"Stateful expects a tensor, a chunk of a sequence, got {type(x).__name__}")
        time_axis = 1 if getattr(self.rnn, "batch_first", True) and x.dim() >= 3 else 0
        if x.dim() >= 1 and x.shape[time_axis] == 0:
            raise ShapeError(
                f"Stateful: this chunk {self._axes(x)} has no time steps (axis {time_axis} is 0). "
                "Skip empty chunks; the state is kept for the next one."
            )
        stored = _first_tensor(self.state) if self.state is not None else None
        if stored is not None:
            B = self._batch_size(x)
            if B is not None and stored.dim() >= 2 and stored.shape[1] != B:
                raise ValueError(
                    f"Stateful: this chunk {self._axes(x)} has a batch of {B} sequences but the stored state is for "
                    f"{stored.shape[1]} (state shape {tuple(stored.shape)}, batch on axis 1). A new "
                    "video or a different batch? Call reset_state() first, so it starts from zeros."
                )
            if isinstance(self.rnn, nn.RNNBase) and (x.dim() == 2) != (stored.dim() == 2):
                raise ShapeError(
                    f"Stateful: this chunk {self._axes(x)} is {'un' if x.dim() == 2 else ''}batched, but "
                    f"the stored state {tuple(stored.shape)} was made by a "
                    f"{'batched' if x.dim() == 2 else 'single'} sequence. Keep one layout for a "
                    "whole stream, or call reset_state() to start a new one."
                )
            check_float(x, "Stateful: this chunk", like=stored, like_name="the stored state",
                        fix="Feed every chunk of a stream with one dtype and device (the model's), or "
                            "call reset_state() to start a new stream.")
        try:
            output, self.state = self.rnn(x, self.state)
        except RuntimeError as e:
            # nn.LSTM and friends speak of sizes only; say which chunk came and what was stored.
            held = "no stored state" if stored is None else f"the stored state {tuple(stored.shape)}"
            error = module_error(e, f"Stateful({type(self.rnn).__name__}) got the chunk {self._axes(x)}, "
                                    f"with {held}")
            if error is None:
                raise
            raise error from e
        return output

    def extra_repr(self) -> str:
        return "state=None" if self.state is None else "state=carried"


def feed_in_chunks(rnn: nn.Module, x: torch.Tensor, sizes: int | list[int]) -> list[torch.Tensor]:
    """Feed ``x`` to a fresh :class:`Stateful` ``rnn`` a chunk at a time, as a stream would arrive.

    ``sizes`` is a chunk length (every chunk that long, the last one shorter when it does not
    divide T) or a list of lengths that add up to T. Returns the output of each chunk, in order;
    concatenated on the time axis they are the output of the whole sequence.

    >>> rnn = nn.LSTM(input_size=3, hidden_size=5, batch_first=True)
    >>> x = torch.randn(2, 10, 3)                        # (B, T, I)
    >>> parts = feed_in_chunks(rnn, x, 4)                # chunks of 4, 4 and 2 frames
    >>> [tuple(p.shape) for p in parts]                  # (B, t, H) each
    [(2, 4, 5), (2, 4, 5), (2, 2, 5)]
    >>> torch.allclose(torch.cat(parts, dim=1), rnn(x)[0], atol=1e-6)
    True
    >>> [p.shape[1] for p in feed_in_chunks(rnn, x, [1, 6, 3])]
    [1, 6, 3]
    """
    time_axis = 1 if getattr(rnn, "batch_first", True) else 0
    if x.dim() < 3:
        raise ValueError(f"feed_in_chunks: expected a batch of sequences, at least (B, T, I), got {tuple(x.shape)}")
    T = x.shape[time_axis]
    if isinstance(sizes, int) and not isinstance(sizes, bool):
        if sizes < 1:
            raise ValueError(f"feed_in_chunks: a chunk needs at least 1 frame, got sizes={sizes}")
    else:
        sizes = [sizes] if isinstance(sizes, bool) else list(sizes)
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes) or sum(sizes) != T:
            raise ValueError(f"feed_in_chunks: chunk lengths must be positive ints adding up to T={T}, "
                             f"got {sizes} (sum {sum(s for s in sizes if isinstance(s, int))})")
    stream = Stateful(rnn)
    return [stream(chunk) for chunk in x.split(sizes, dim=time_axis)]

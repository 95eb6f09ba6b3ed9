"""Stateful: keep a recurrent layer's state from one call to the next, for streaming video.

A recurrent layer called as ``output, state = rnn(x, state)`` forgets everything between calls
unless you carry ``state`` yourself. That is right in training on whole clips (every clip starts
from zeros) but wrong when a video arrives a few frames at a time, as in a webcam demo or a
long video cut into chunks: the frames of chunk 2 must see what chunk 1 left behind (seed 003,
point 5). Keras does this with ``stateful=True``; pytorch/examples' word language model carries
``hidden`` by hand and cuts its graph with ``repackage_hidden``. :class:`Stateful` wraps those two
habits around any module with the ``(output, state)`` contract: ``nn.LSTM``, ``nn.GRU``,
:class:`~cnnlstm_edu.layers.convlstm.ConvLSTM`, and around one-step cells (``nn.LSTMCell``,
``nn.GRUCell``, ``nn.RNNCell``, ``LSTMCell``, ``ConvLSTMCell``), looped over each chunk's steps
as Keras' ``RNN(cell, stateful=True)`` does.

A bidirectional layer is refused: its backward direction reads a sequence from the end, so
no output can be computed before the last frame has arrived.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torch import nn

from ..axes import format_shape, recurrent_contract, sequence_axes
from ..shapes import ShapeError, check_float, translate_errors

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


def _is_cell(module: nn.Module) -> bool:
    """A one-step cell, called as ``state = cell(x_t, state)``: torch's three and ours."""
    contract = recurrent_contract(module)
    return contract is not None and not contract.sequence


def _refuse_bidirectional(rnn: nn.Module) -> None:
    """A bidirectional layer cannot stream: refuse it before it gives wrong chunks."""
    for name, module in rnn.named_modules():
        if getattr(module, "bidirectional", False) is True:
            where = f" (its {name})" if name else ""
            raise ValueError(
                f"Stateful cannot stream a bidirectional {type(module).__name__}{where}: its backward "
                "direction reads each sequence from the last frame to the first, so every output needs "
                "the future frames, which a stream has not received yet; a chunk's output would differ "
                "from the whole sequence's. Stream with bidirectional=False, or feed whole sequences "
                "to the bidirectional layer without Stateful."
            )


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

    A cell takes one step, so its chunks are ``(B, T, ...)`` (batch first) and the wrapper calls
    it once per step; its output is ``h`` at every step, and its state, as the cell's, is ``h``
    (``(h, c)`` for an LSTM cell):

    >>> cell = nn.GRUCell(input_size=3, hidden_size=5)
    >>> stream = Stateful(cell)
    >>> stream(x[:, :4]).shape                           # (B, t, H): h after each of the 4 steps
    torch.Size([2, 4, 5])
    >>> stream.state.shape                               # h: (B, H), a cell's state
    torch.Size([2, 5])
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
                "(nn.LSTM, nn.GRU, ConvLSTM), a cell (nn.LSTMCell, nn.GRUCell, ConvLSTMCell) or a "
                "module of your own with that call."
            )
        _refuse_bidirectional(rnn)
        self.rnn = rnn
        # Not a buffer: the state belongs to the video being watched, not to the model, so it
        # must stay out of state_dict() and checkpoints.
        self.state = None

    @property
    def is_cell(self) -> bool:
        """Whether the wrapped module is a one-step cell, looped over each chunk's steps."""
        return _is_cell(self.rnn)

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

    def _batch_first(self) -> bool:
        return getattr(self.rnn, "batch_first", True)  # a cell's chunks are batch first

    def _axes(self, x: torch.Tensor) -> str:
        """The input's axes as the wrapped layer reads them, e.g. ``(B=2, T=4, I=3)``."""
        contract = recurrent_contract(self.rnn)
        if self.is_cell and x.dim() == contract.batched_rank:  # by mistake, a single step
            return format_shape(x.shape, ("B", "C", "H", "W") if contract.grid else ("B", "I"))
        return format_shape(x.shape, sequence_axes(x.dim(), self._batch_first(), feature="I"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"Stateful expects a tensor, a chunk of a sequence, got {type(x).__name__}")
        stored = _first_tensor(self.state) if self.state is not None else None
        self._check_chunk(x, stored)
        # nn.LSTM and friends speak of sizes only; say which chunk came and what was stored.
        held = "no stored state" if stored is None else f"the stored state {tuple(stored.shape)}"
        with translate_errors(lambda: f"Stateful({type(self.rnn).__name__}) got the chunk {self._axes(x)}, "
                                      f"with {held}"):
            output, state = self._run_cell(x) if self.is_cell else self._run_layer(x)
        self.state = state
        return output

    def _run_layer(self, x: torch.Tensor):
        """One call of a sequence layer: ``(output, state) = rnn(x, state)``."""
        result = self.rnn(x, self.state)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            if isinstance(result, torch.Tensor):  # unpacking it would split its first axis in two
                got = f"a Tensor of shape {tuple(result.shape)}"
            elif isinstance(result, (tuple, list)):
                got = f"a {type(result).__name__} of {len(result)} items"
            else:
                got = f"a {type(result).__name__}"
            raise TypeError(
                f"Stateful wraps a module called as (output, state) = rnn(x, state), but "
                f"{type(self.rnn).__name__} returned {got}. Return the pair, as nn.LSTM does."
            )
        return result

    def _run_cell(self, x: torch.Tensor):
        """A cell over a chunk ``(B, T, ...)``, one step at a time: for a cell the state *is* the
        output (``h``, or ``(h, c)`` for an LSTM cell, whose output is ``h``)."""
        state, hs = self.state, []
        for x_t in x.unbind(1):                   # (B, ...): one step of every sequence
            state = self.rnn(x_t, state)          # h (B, H...) or (h, c)
            hs.append(state if isinstance(state, torch.Tensor) else state[0])
        return torch.stack(hs, dim=1), state      # (B, T, H...)

    def _check_chunk(self, x: torch.Tensor, stored: torch.Tensor | None) -> None:
        """Refuse, before the call, a chunk that would not continue the stored stream."""
        cell = self.is_cell
        if cell and x.dim() <= recurrent_contract(self.rnn).batched_rank:
            raise ShapeError(
                f"Stateful({type(self.rnn).__name__}): a cell takes one step at a time, so Stateful feeds it "
                f"a chunk of steps (B, T, ...) and loops over T; got {self._axes(x)}, a single step. Add "
                "the time axis with x.unsqueeze(1)."
            )
        time_axis = 1 if self._batch_first() and x.dim() >= 3 else 0
        if x.dim() >= 1 and x.shape[time_axis] == 0:
            raise ShapeError(
                f"Stateful: this chunk {self._axes(x)} has no time steps (axis {time_axis} is 0). "
                "Skip empty chunks; the state is kept for the next one."
            )
        if stored is None:
            return
        # The state's batch axis: 0 for a cell (B, H), 1 for a layer (num_layers, B, H).
        state_axis = 0 if cell else 1
        B = None if x.dim() < 3 else x.shape[0] if self._batch_first() else x.shape[1]
        if B is not None and stored.dim() > state_axis and stored.shape[state_axis] != B:
            raise ValueError(
                f"Stateful: this chunk {self._axes(x)} has a batch of {B} sequences but the stored state is for "
                f"{stored.shape[state_axis]} (state shape {tuple(stored.shape)}, batch on axis {state_axis}). A new "
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

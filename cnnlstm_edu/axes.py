"""Axes: the names of a video tensor's axes, how to guess them, how to write them; and what each
recurrent layer reads and returns.

This course reads every tensor through a handful of axis names: ``B`` clips in the batch, ``T``
time steps, ``B*T`` frames folded into one batch, ``C, H, W`` a frame's channels and grid, ``F``
features, ``L`` the layers of a recurrent state. Error messages, the shape trace and the explainer
all speak these names, so they are written down once, here:

- :func:`format_shape` writes a shape with its names, ``(B*T=8, C=1, H=14, W=14)``;
- :func:`sequence_axes` and :func:`guess_axes` say how a tensor of a given rank is usually read;
- :func:`axis_kind` sorts a name into batch, time, folded, layers or feature;
- :class:`Recurrent` and :func:`recurrent_contract` say what ``nn.LSTM``, ``nn.GRU``, their
  cells and this package's ``ConvLSTM`` and scratch ``LSTM`` take and give back: which member of
  the result tuple is ``output``, ``h_n`` and ``c_n``, and whether the steps are vectors or maps.

This module imports only torch. The package's own recurrent layers are looked up by name when
first asked for (:func:`recurrent_types`), so the layers may import this module freely.

>>> format_shape((2, 4, 1, 14, 14), sequence_axes(5))
'(B=2, T=4, C=1, H=14, W=14)'
>>> recurrent_contract(nn.LSTM(3, 5)).output_names
('output', 'h_n', 'c_n')
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from torch import nn

__all__ = ["AXIS_MEANINGS", "BATCH_ATOMS", "RECURRENT_TYPES", "Recurrent", "axis_kind", "axis_name",
           "format_shape", "guess_axes", "model_input_axes", "parse_axes", "recurrent_contract",
           "recurrent_types", "sequence_axes"]

# What each axis name means, in the order a legend lists them.
AXIS_MEANINGS = {
    "B": "clips in the batch", "T": "time steps", "B*T": "frames folded into one batch",
    "T*B": "frames folded time-major", "sum(T)": "steps of every sequence, packed (the sum of the lengths)",
    "C": "channels", "H": "height (in an LSTM's output: hidden size)",
    "W": "width", "F": "features", "L": "layers of an RNN state",
}

# Axes that count samples, steps or layers rather than features. A label of the trace is a tuple
# of such "atoms": ("B",) is the batch, ("B", "T") the folded B*T axis.
BATCH_ATOMS = ("B", "T", "L", "sum(T)")


# --- writing and reading axis names ----------------------------------------------------------


def format_shape(shape: Sequence[int], axes: str | Sequence[str | None] | None = None) -> str:
    """Write a shape with the names that are known: ``(B*T=8, C=1, H=14, W=14)``, ``(B=2, 10)``.

    ``axes`` is a space-separated string or a sequence with one name per axis (None or "" where
    the meaning is unknown); names that do not match the rank are ignored, never misapplied.

    >>> format_shape((8, 1, 14, 14), "B*T C H W")
    '(B*T=8, C=1, H=14, W=14)'
    >>> format_shape((2, 10), ("B", None))
    '(B=2, 10)'
    >>> format_shape((5,)), format_shape((8, 4), "B T C")
    ('(5,)', '(8, 4)')
    """
    shape = tuple(int(s) for s in shape)
    names = axes.split() if isinstance(axes, str) else list(axes) if axes is not None else []
    if len(names) != len(shape):
        names = [None] * len(shape)
    parts = [f"{a}={s}" if a else str(s) for a, s in zip(names, shape)]
    if len(parts) == 1 and not names[0]:
        return f"({parts[0]},)"
    return "(" + ", ".join(parts) + ")"


def axis_name(atoms: tuple[str, ...] | None) -> str | None:
    """The printed name of a label: ``("B", "T")`` is ``"B*T"``; None stays None.

    >>> axis_name(("B", "T")), axis_name(None)
    ('B*T', None)
    """
    return None if atoms is None else "*".join(atoms)


def parse_axes(text: str | Sequence[str | None], rank: int, which: str,
               owner: str = "trace_shapes") -> tuple[tuple[str, ...] | None, ...]:
    """Labels from names: ``"B T C H W"`` -> ``(("B",), ("T",), ...)``; ``"B*T"`` names a folded
    axis and ``"?"``, ``"_"`` or None an unknown one.

    >>> parse_axes("B*T C ?", 3, "input 0")
    (('B', 'T'), ('C',), None)
    """
    names = text.split() if isinstance(text, str) else list(text)
    if len(names) != rank:
        raise ValueError(f"{owner}: axes {text!r} names {len(names)} axes, but {which} has {rank}")
    return tuple(None if n in (None, "?", "_") else tuple(n.split("*")) for n in names)


def axis_kind(name: str | None) -> str:
    """The kind of an axis name, which decides its colour: ``"time"``, ``"folded"``, ``"batch"``...

    >>> axis_kind("T"), axis_kind("B*T"), axis_kind("sum(T)"), axis_kind("C"), axis_kind(None)
    ('time', 'folded', 'folded', 'feature', 'unknown')
    """
    if name is None:
        return "unknown"
    atoms = name.split("*")
    if (len(atoms) > 1 and "T" in atoms) or name == "sum(T)":
        return "folded"
    return {"B": "batch", "T": "time", "L": "layers"}.get(name, "feature")


# --- how a tensor of a given rank is usually read --------------------------------------------


def sequence_axes(rank: int, batch_first: bool = True, feature: str = "F") -> tuple[str | None, ...] | None:
    """The axes of a sequence of ``rank`` axes as a recurrent layer (or ``TimeDistributed``) reads it.

    ``(T, F)`` for one unbatched sequence; ``(B, T, F)`` or ``(T, B, F)`` for a batch of vectors;
    ``(B, T, C, H, W)`` for a video; for other ranks B and T, then axes of unknown meaning.
    ``feature`` names the vector axis (``"I"`` for a layer's input size). None below rank 2.

    >>> sequence_axes(3, batch_first=False), sequence_axes(2, feature="I")
    (('T', 'B', 'F'), ('T', 'I'))
    >>> sequence_axes(4)
    ('B', 'T', None, None)
    """
    if rank < 2:
        return None
    if rank == 2:
        return ("T", feature)
    lead = ("B", "T") if batch_first else ("T", "B")
    return lead + {1: (feature,), 3: ("C", "H", "W")}.get(rank - 2, (None,) * (rank - 2))


def guess_axes(rank: int, batch_first: bool = True, frames: str = "B") -> tuple[str, ...] | None:
    """What a tensor of ``rank`` axes most likely is in a CNN-LSTM, or None when nothing is likely.

    5-D a video ``(B, T, C, H, W)``, 4-D a batch of frames ``(B, C, H, W)`` (``frames`` names
    its batch axis: ``"N"`` where it may be folded frames), 3-D ``(B, T, F)``, 2-D ``(B, F)``.

    >>> guess_axes(5), guess_axes(4, frames="N"), guess_axes(6)
    (('B', 'T', 'C', 'H', 'W'), ('N', 'C', 'H', 'W'), None)
    """
    if rank in (3, 5):
        return sequence_axes(rank, batch_first)
    return {4: (frames, "C", "H", "W"), 2: ("B", "F")}.get(rank)


def model_input_axes(model: nn.Module, rank: int) -> tuple[str, ...] | None:
    """:func:`guess_axes` for the first input of ``model``: time-major when the model itself is a
    recurrent layer with ``batch_first=False`` (``nn.LSTM``'s default).

    >>> model_input_axes(nn.LSTM(3, 5), 3), model_input_axes(nn.Linear(3, 5), 3)
    (('T', 'B', 'F'), ('B', 'T', 'F'))
    """
    contract = recurrent_contract(model)
    time_major = contract is not None and contract.sequence and not getattr(model, "batch_first", True)
    return guess_axes(rank, batch_first=not time_major)


# --- recurrent layers: what they read and what they return -------------------------------------


@dataclass(frozen=True)
class Recurrent:
    """The calling convention of a recurrent layer, the same for torch's layers and ours.

    A *sequence* layer reads ``(B, T, ...)`` (or ``(T, B, ...)``) and returns
    ``(output, (h_n, c_n))``: ``output`` the last layer's h at every step, the states
    ``(L, B, ...)``. A *cell* reads one step ``(B, ...)`` and returns ``h`` (or ``(h, c)``).
    Steps are vectors (``nn.LSTM``: ``H``) or feature maps (``ConvLSTM``: ``F, H, W``).
    """

    sequence: bool       # a whole sequence per call, not one step
    grid: bool           # steps are feature maps (C, H, W), not vectors
    cell_state: bool     # an LSTM's c besides h

    @property
    def input_names(self) -> tuple[str, ...]:
        names = ("input", "h_0", "c_0") if self.sequence else ("input", "h", "c")
        return names if self.cell_state else names[:2]

    @property
    def output_names(self) -> tuple[str, ...]:
        names = ("output", "h_n", "c_n") if self.sequence else ("h", "c")
        return names if self.cell_state else names[:-1]

    @property
    def hidden_axes(self) -> tuple[str, ...]:
        """The axes of one sample's hidden state: ``(H,)`` for vectors, ``(F, H, W)`` for maps."""
        return ("F", "H", "W") if self.grid else ("H",)

    @property
    def batched_rank(self) -> int:
        """The rank of a batched input: (B, T, F) is 3, (B, T, C, H, W) 5, a cell's (B, F) 2."""
        return (2 if self.sequence else 1) + (3 if self.grid else 1)


_VECTOR_SEQUENCE = Recurrent(sequence=True, grid=False, cell_state=False)
# Where each recurrent class lives, by name, and its contract. The first match wins, so a class
# comes before its base (nn.LSTM before nn.RNNBase, which also covers GRU and RNN).
_CONTRACTS = (
    ("torch.nn", "LSTM", Recurrent(sequence=True, grid=False, cell_state=True)),
    ("torch.nn", "RNNBase", _VECTOR_SEQUENCE),
    ("torch.nn", "LSTMCell", Recurrent(sequence=False, grid=False, cell_state=True)),
    ("torch.nn", "RNNCellBase", Recurrent(sequence=False, grid=False, cell_state=False)),
    ("cnnlstm_edu.layers.convlstm", "ConvLSTM", Recurrent(sequence=True, grid=True, cell_state=True)),
    ("cnnlstm_edu.layers.convlstm_cell", "ConvLSTMCell", Recurrent(sequence=False, grid=True, cell_state=True)),
    ("cnnlstm_edu.layers.lstm", "LSTM", Recurrent(sequence=True, grid=False, cell_state=True)),
    ("cnnlstm_edu.layers.lstm", "LSTMCell", Recurrent(sequence=False, grid=False, cell_state=True)),
)


@cache
def _contract_table() -> tuple[tuple[type, Recurrent], ...]:
    # Imported on first use, not at import: the layers import this module.
    return tuple((getattr(importlib.import_module(where), name), contract) for where, name, contract in _CONTRACTS)


def recurrent_types() -> tuple[type[nn.Module], ...]:
    """Every recurrent layer and cell type, torch's and ours: what the trainer's recurrent-only
    weight decay selects, and what the app probes for the hidden state.

    >>> sorted(t.__name__ for t in recurrent_types())[:4]
    ['ConvLSTM', 'ConvLSTMCell', 'LSTM', 'LSTM']
    """
    return tuple(kind for kind, _ in _contract_table())


def recurrent_contract(module: nn.Module | type) -> Recurrent | None:
    """The :class:`Recurrent` contract of a layer (or layer type), or None if it is not recurrent.

    >>> recurrent_contract(nn.GRU(3, 5))
    Recurrent(sequence=True, grid=False, cell_state=False)
    >>> recurrent_contract(nn.Linear(3, 5)) is None
    True
    """
    kind = module if isinstance(module, type) else type(module)
    for base, contract in _contract_table():
        if issubclass(kind, base):
            return contract
    return None


def __getattr__(name: str):
    # RECURRENT_TYPES reads like a constant but is built on first access (see recurrent_types).
    if name == "RECURRENT_TYPES":
        return recurrent_types()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


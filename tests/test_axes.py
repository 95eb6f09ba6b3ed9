"""axes: one home for axis names and the recurrent contracts, the same answers everywhere."""

import ast
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlstm_edu import ConvLSTM, axes, layers
from cnnlstm_edu.axes import (RECURRENT_TYPES, axis_kind, format_shape, guess_axes, model_input_axes, parse_axes,
                              recurrent_contract, recurrent_types, sequence_axes)
from cnnlstm_edu.layers.convlstm import ConvLSTMCell
from cnnlstm_edu.layers.lstm import LSTM, LSTMCell
from cnnlstm_edu.shapes import describe


@pytest.mark.parametrize("shape, axes, text", [
    ((8, 1, 14, 14), "B*T C H W", "(B*T=8, C=1, H=14, W=14)"),
    ((2, 10), ("B", None), "(B=2, 10)"),
    ((2, 10), ("B", ""), "(B=2, 10)"),
    ((5,), None, "(5,)"),
    ((5,), ("F",), "(F=5)"),
    ((), None, "()"),
    ((8, 4), "B T C", "(8, 4)"),            # names that do not fit the rank are not applied
])
def test_format_shape_and_describe_agree(shape, axes, text):
    assert format_shape(shape, axes) == text == describe(shape, axes)


def test_parse_axes_reads_folded_and_unknown_axes_and_names_a_wrong_count():
    assert parse_axes(["B*T", "_", "F"], 3, "x") == (("B", "T"), None, ("F",))
    with pytest.raises(ValueError, match=r"trace_shapes: axes 'B T' names 2 axes, but x has 3"):
        parse_axes("B T", 3, "x")


@pytest.mark.parametrize("name, kind", [("B", "batch"), ("T", "time"), ("B*T", "folded"), ("T*B", "folded"),
                                        ("sum(T)", "folded"), ("L", "layers"), ("C", "feature"),
                                        ("B*F", "feature"), (None, "unknown")])
def test_axis_kind(name, kind):
    assert axis_kind(name) == kind


def test_sequence_and_guessed_axes():
    assert sequence_axes(5) == ("B", "T", "C", "H", "W")
    assert sequence_axes(5, batch_first=False) == ("T", "B", "C", "H", "W")
    assert sequence_axes(3, feature="I") == ("B", "T", "I")
    assert sequence_axes(2) == ("T", "F") and sequence_axes(1) is None
    assert sequence_axes(6) == ("B", "T", None, None, None, None)
    assert guess_axes(4) == ("B", "C", "H", "W") and guess_axes(4, frames="N")[0] == "N"
    assert guess_axes(2) == ("B", "F") and guess_axes(1) is None
    assert model_input_axes(nn.LSTM(3, 4), 3) == ("T", "B", "F")
    assert model_input_axes(ConvLSTM(1, 4, 3), 5) == ("B", "T", "C", "H", "W")
    assert model_input_axes(ConvLSTM(1, 4, 3, batch_first=False), 5)[:2] == ("T", "B")
    assert model_input_axes(nn.LSTMCell(3, 4), 2) == ("B", "F")       # a cell has no time axis to swap


@pytest.mark.parametrize("module, sequence, grid, outputs", [
    (nn.LSTM(3, 4), True, False, ("output", "h_n", "c_n")),
    (nn.GRU(3, 4), True, False, ("output", "h_n")),
    (nn.RNN(3, 4), True, False, ("output", "h_n")),
    (nn.LSTMCell(3, 4), False, False, ("h", "c")),
    (nn.GRUCell(3, 4), False, False, ("h",)),
    (nn.RNNCell(3, 4), False, False, ("h",)),
    (ConvLSTM(1, 4, 3), True, True, ("output", "h_n", "c_n")),
    (ConvLSTMCell(1, 4, 3), False, True, ("h", "c")),
    (LSTM(3, 4), True, False, ("output", "h_n", "c_n")),
    (LSTMCell(3, 4), False, False, ("h", "c")),
])
def test_every_recurrent_layer_has_its_contract(module, sequence, grid, outputs):
    contract = recurrent_contract(module)
    assert (contract.sequence, contract.grid, contract.output_names) == (sequence, grid, outputs)
    assert recurrent_contract(type(module)) == contract and isinstance(module, RECURRENT_TYPES)
    assert contract.hidden_axes == (("F", "H", "W") if grid else ("H",))
    assert contract.batched_rank == (2 if sequence else 1) + (3 if grid else 1)


def test_the_contract_matches_what_the_layer_returns():
    x = torch.randn(2, 5, 3)                                        # (B, T, F)
    output, (h_n, c_n) = nn.LSTM(3, 4, batch_first=True)(x)
    assert recurrent_contract(nn.LSTM(3, 4)).batched_rank == x.dim() == output.dim()
    frames = torch.randn(2, 5, 1, 6, 6)                              # (B, T, C, H, W)
    output, (h_n, c_n) = ConvLSTM(1, 4, 3)(frames)
    assert h_n.dim() == 2 + len(recurrent_contract(ConvLSTM).hidden_axes)   # (L, B, F, H, W)


def test_non_recurrent_modules_have_no_contract():
    for module in (nn.Linear(3, 4), nn.Conv2d(1, 2, 3), nn.Sequential(nn.LSTM(3, 4))):
        assert recurrent_contract(module) is None and not isinstance(module, RECURRENT_TYPES)


def test_one_list_of_recurrent_types():
    assert set(RECURRENT_TYPES) == set(recurrent_types())
    for kind in getattr(layers, "RECURRENT_TYPES", ()):            # the layers' name, if it keeps one
        assert recurrent_contract(kind) is not None


def test_axes_imports_only_torch_and_finds_the_layers_on_first_use():
    # The layers import axes; if axes imported the layers at import time, that would be a cycle.
    tree = ast.parse(Path(axes.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom)
                 if node.level == 0}
    relative = [node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.level > 0]
    assert relative == [] and imported - set(sys.stdlib_module_names) == {"torch"}

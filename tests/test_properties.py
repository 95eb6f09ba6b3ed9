"""Property tests: random shapes, dtypes, orders and chunkings thrown at the public API.

For every input, either the identity holds (fold/unfold round trip, quadrants re-tile to the
image, TimeDistributed fold == loop == a loop by hand, ConvLSTM fed in chunks through Stateful ==
fed whole, 1x1 ConvLSTM == nn.LSTM) or the call raises a ``ValueError`` / ``TypeError`` whose
message names the axes it expected and the shape (or dtype) it got. Anything else, an
``IndexError`` or a ``RuntimeError`` from deep inside torch, fails the test: hypothesis then
shrinks the input to the smallest one that does it.

Examples are few (``max_examples`` 40-80) so the file runs in seconds. With
``CNNLSTM_EDU_PROPERTY_COUNTS=path.json`` the inputs tried (good and bad, per API) are written
there; ``benchmarks/classroom.py`` reports them.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from cnnlstm_edu import ConvLSTM, ShapeError, Stateful, TimeDistributed, fold_time, unfold_time
from cnnlstm_edu.data import quadrant_sequences
from cnnlstm_edu.data.quadrants import tile_quadrants

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TRIED: Counter = Counter()       # (api, "identity" | "error: Type") -> examples


@pytest.fixture(scope="module", autouse=True)
def _write_counts():
    yield
    path = os.environ.get("CNNLSTM_EDU_PROPERTY_COUNTS")
    if path:
        rows = [{"api": api, "outcome": outcome, "examples": n} for (api, outcome), n in sorted(TRIED.items())]
        with open(path, "w") as f:
            json.dump(rows, f, indent=1)


def shape_pattern(shape) -> str:
    """A regex for ``shape`` as a message writes it: ``(2, 4, 1)`` or with names, ``(B=2, T=4, C=1)``."""
    sizes = [rf"(?:[\w*']+=)?{int(s)}" for s in shape]
    return r"\(" + r",\s*".join(sizes) + (r",?\)" if len(sizes) == 1 else r"\)")


def clear_error(api: str, error: Exception, shape, expected: str | list[str]) -> None:
    """``error`` is a ValueError/TypeError that names the received ``shape`` and the ``expected`` axes."""
    assert isinstance(error, (ValueError, TypeError)), f"{api}: raw {type(error).__name__}: {error}"
    message = str(error)
    assert re.search(shape_pattern(shape), message), f"{api}: the shape {tuple(shape)} is not named in: {message}"
    expected = [expected] if isinstance(expected, str) else expected
    assert any(e in message for e in expected), f"{api}: none of {expected} named in: {message}"
    outcome = f"error: {type(error).__name__}"
    TRIED[api, outcome] += 1
    event(f"{api} {outcome}")


def identity_held(api: str) -> None:
    TRIED[api, "identity"] += 1
    event(f"{api} identity")


def attempt(fn):
    """``(result, None)``, or ``(None, error)`` for a ValueError/TypeError. Other errors propagate."""
    try:
        return fn(), None
    except (ValueError, TypeError) as e:
        return None, e


small_shapes = st.lists(st.integers(0, 4), min_size=0, max_size=5)


# --- fold_time / unfold_time -----------------------------------------------------------------------


@SETTINGS
@given(shape=small_shapes)
def test_fold_then_unfold_is_the_identity_or_a_clear_error(shape):
    x = torch.randn(shape)
    folded, error = attempt(lambda: fold_time(x))
    if error is not None:
        assert x.dim() < 2
        return clear_error("fold_time", error, shape, "(B, T, ...)")
    B, T = shape[:2]
    assert folded.shape == (B * T, *shape[2:])
    back, error = attempt(lambda: unfold_time(folded, T))
    if error is not None:                 # T = 0: no number of steps can say where the clips were
        assert T == 0 and "steps" in str(error)
        TRIED["unfold_time", "error: ValueError"] += 1
        return
    assert torch.equal(back, x)
    identity_held("fold_time")


steps_values = st.one_of(st.integers(-2, 6), st.integers(1, 3), st.booleans(), st.floats(-2, 6), st.text(max_size=2), st.none(),
                         st.integers(1, 4).map(np.int64))


@SETTINGS
@given(shape=small_shapes, steps=steps_values)
def test_unfold_time_splits_the_first_axis_or_says_why_not(shape, steps):
    y = torch.randn(shape)
    out, error = attempt(lambda: unfold_time(y, steps))
    whole = isinstance(steps, (int, np.integer)) and not isinstance(steps, bool) and steps >= 1
    if error is not None:
        if not whole:                     # the message names what came instead of a step count
            assert "steps" in str(error) and repr(steps) in str(error)
            TRIED["unfold_time", f"error: {type(error).__name__}"] += 1
            return
        return clear_error("unfold_time", error, shape, ["B*T", "(B*T, ...)"])
    assert whole and y.dim() >= 1 and shape[0] % steps == 0
    assert out.shape == (shape[0] // steps, steps, *shape[1:])
    assert torch.equal(fold_time(out), y)
    identity_held("unfold_time")


# --- quadrant_sequences ------------------------------------------------------------------------------

image_shapes = st.one_of(
    st.tuples(st.integers(0, 3)).map(lambda n: (n[0], 28, 28)),
    st.tuples(st.integers(1, 3)).map(lambda n: (n[0], 28, 28)),
    st.tuples(st.integers(0, 3)).map(lambda n: (n[0], 1, 28, 28)),
    st.lists(st.sampled_from([1, 2, 3, 14, 27, 28, 29, 56]), min_size=0, max_size=5).map(tuple),
)
bad_orders = st.one_of(st.text("012345", max_size=5), st.integers(0, 5000), st.none())
orders = st.sampled_from([True, True, True, False]).flatmap(
    lambda good: st.permutations("1234").map("".join) if good else bad_orders)
dtypes = st.sampled_from([torch.uint8, torch.float32, torch.int64, torch.bool, torch.float16])


@SETTINGS
@given(shape=image_shapes, order=orders, dtype=dtypes, as_numpy=st.booleans())
def test_quadrants_retile_to_the_image_or_a_clear_error(shape, order, dtype, as_numpy):
    images = (torch.rand(shape) * 255).to(dtype)
    given_images = images.numpy() if as_numpy else images
    seq, error = attempt(lambda: quadrant_sequences(given_images, order))
    good_order = isinstance(order, str) and sorted(order) == list("1234")
    good_shape = len(shape) == 3 and shape[1:] == (28, 28) or len(shape) == 4 and shape[1:] == (1, 28, 28)
    if error is not None:
        assert not (good_order and good_shape)
        if not good_order:
            assert "order" in str(error) and repr(order) in str(error)
            TRIED["quadrant_sequences", f"error: {type(error).__name__}"] += 1
            return
        return clear_error("quadrant_sequences", error, shape, "(N, 28, 28)")
    assert good_order and good_shape
    flat = images.reshape(shape[0], 28, 28)                                # (N, 28, 28)
    assert seq.shape == (shape[0], 4, 1, 14, 14) and seq.dtype == images.dtype
    for t, q in enumerate(int(c) - 1 for c in order):                      # step t holds quadrant order[t]
        r, c = divmod(q, 2)
        assert torch.equal(seq[:, t, 0], flat[:, 14 * r:14 * r + 14, 14 * c:14 * c + 14])
    assert torch.equal(tile_quadrants(seq, order), flat)
    identity_held("quadrant_sequences")


# --- TimeDistributed ---------------------------------------------------------------------------------


@st.composite
def td_cases(draw):
    """A frame module and an input: half the time one that fits it, else one with a fault."""
    kind = draw(st.sampled_from(["conv", "conv_stack", "linear"]))
    B, T = draw(st.integers(0, 3)), draw(st.integers(1, 3))
    fault = draw(st.sampled_from([None, None, None, "module size", "frame rank", "dtype", "no time axis", "T=0"]))
    if kind == "linear":
        features = draw(st.integers(1, 4))
        module = nn.Linear(features + (fault == "module size"), 3)
        rest = draw(st.sampled_from([(features,), (2, features)])) if fault != "frame rank" else ()
    else:
        C, H, W = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
        k = draw(st.integers(1, min(H, W))) if fault != "module size" else draw(st.integers(1, 4))
        conv = nn.Conv2d(C + (fault == "module size" and draw(st.booleans())), 2, k)
        module = conv if kind == "conv" else nn.Sequential(conv, nn.ReLU(), nn.Flatten())
        rest = (C, H, W) if fault != "frame rank" else draw(st.sampled_from([(H, W), (C, H, W, 1)]))
    x = torch.randn(B, 0 if fault == "T=0" else T, *rest) * 3
    if fault == "dtype":
        x = x.to(draw(st.sampled_from([torch.int64, torch.uint8])))
    if fault == "no time axis":
        x = x.flatten(0, 1)
    return module.eval(), x


@SETTINGS
@given(case=td_cases())
def test_time_distributed_fold_equals_loop_or_a_clear_error(case):
    module, x = case
    fold, error = attempt(lambda: TimeDistributed(module, "fold")(x))
    loop, loop_error = attempt(lambda: TimeDistributed(module, "loop")(x))
    assert (error is None) == (loop_error is None), (error, loop_error)   # both run, or both refuse
    if error is not None:
        if isinstance(error, TypeError):
            assert str(x.dtype).split(".")[-1] in str(error) or "Long" in str(error) or "long" in str(error)
        return clear_error("TimeDistributed", error, x.shape, ["(B, T", "B*T="])
    B, T = x.shape[:2]
    with torch.no_grad():
        by_hand = [module(x[:, t]) for t in range(T)]                       # T x (B, ...out)
    assert fold.shape[:2] == (B, T) and fold.shape == loop.shape
    assert_close(fold, loop)
    assert_close(fold, torch.stack(by_hand, dim=1))
    identity_held("TimeDistributed")


# --- ConvLSTM, whole and in chunks through Stateful ------------------------------------------------


@st.composite
def convlstm_cases(draw):
    B, T = draw(st.integers(1, 2)), draw(st.integers(1, 5))
    C, F = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    kernel = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = draw(st.sampled_from(["same", "same", "valid"]))
    layers = 1 if padding == "valid" else draw(st.integers(1, 2))
    batch_first = draw(st.booleans())
    torch.manual_seed(draw(st.integers(0, 2**16)))
    rnn = ConvLSTM(C, F, kernel, num_layers=layers, batch_first=batch_first, padding=padding)
    rnn.input_conv = draw(st.sampled_from(["per_step", "hoisted"]))
    x = torch.randn(B, T, C, H, W) if batch_first else torch.randn(T, B, C, H, W)
    fault = draw(st.sampled_from([None, None, None, "channels", "rank", "dtype", "empty_grid", "state"]))
    if fault == "channels":
        x = torch.randn(*x.shape[:2], C + 1, H, W)
    elif fault == "rank":
        x = x[0]
    elif fault == "dtype":
        x = x.to(draw(st.sampled_from([torch.int64, torch.float64, torch.uint8])))
    elif fault == "empty_grid":
        x = x[..., :0, :]
    cuts = draw(st.sets(st.integers(1, max(T - 1, 1)), max_size=3)) if T > 1 else set()
    return rnn, x, fault, sorted(c for c in cuts if c < T)


@SETTINGS
@given(case=convlstm_cases())
def test_convlstm_in_chunks_equals_whole_or_a_clear_error(case):
    rnn, x, fault, cuts = case
    with torch.no_grad():
        whole, error = attempt(lambda: rnn(x))
        if error is not None:
            assert fault is not None or rnn.padding == "valid", error
            return clear_error("ConvLSTM", error, x.shape, ["(B, T, C", "(T, B, C", "kernel", "floating", "dtype"])
        output, (h_n, c_n) = whole
        if fault == "state":                       # a state made for another grid or batch
            bad = (h_n[:, :, :, :1], c_n[:, :, :, :1]) if h_n.shape[3] > 1 else (h_n[:, :0], c_n[:, :0])
            _, error = attempt(lambda: rnn(x, bad))
            assert error is not None
            return clear_error("ConvLSTM", error, bad[0].shape, ["num_layers", "B="])
        assert fault is None
        time_axis = 1 if rnn.batch_first else 0
        T = x.shape[time_axis]
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, T])]
        stream = Stateful(rnn)
        chunked = torch.cat([stream(chunk) for chunk in x.split(sizes, dim=time_axis)], dim=time_axis)
    assert_close(chunked, output)
    assert_close(stream.state, (h_n, c_n))
    identity_held("ConvLSTM+Stateful")


@settings(max_examples=40, deadline=None)
@given(I=st.integers(1, 4), H=st.integers(1, 4), layers=st.integers(1, 3), B=st.integers(1, 3),
       T=st.integers(1, 4), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_convlstm_1x1_is_nn_lstm(I, H, layers, B, T, bias, seed):
    torch.manual_seed(seed)
    lstm = nn.LSTM(I, H, num_layers=layers, bias=bias, batch_first=True)
    conv = ConvLSTM(I, H, kernel_size=1, num_layers=layers, bias=bias)
    # The same parameters, the matrices seen as 1x1 kernels: (4H, I) -> (4H, I, 1, 1).
    conv.load_state_dict({k: v.reshape(conv.state_dict()[k].shape) for k, v in lstm.state_dict().items()})
    x = torch.randn(B, T, I)
    with torch.no_grad():
        want, (h_want, c_want) = lstm(x)
        got, (h_got, c_got) = conv(x[..., None, None])                    # (B, T, I, 1, 1)
    assert_close(got[..., 0, 0], want)
    assert_close((h_got[..., 0, 0], c_got[..., 0, 0]), (h_want, c_want))
    identity_held("ConvLSTM 1x1 == nn.LSTM")


# --- Stateful around nn.LSTM / nn.GRU, with faults mid-stream ---------------------------------------


@st.composite
def stream_cases(draw):
    kind = draw(st.sampled_from([nn.LSTM, nn.GRU]))
    I, H, B, T = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(2, 6))
    batch_first = draw(st.booleans())
    torch.manual_seed(draw(st.integers(0, 2**16)))
    rnn = kind(I, H, num_layers=draw(st.integers(1, 2)), batch_first=batch_first)
    x = torch.randn(B, T, I) if batch_first else torch.randn(T, B, I)
    cut = draw(st.integers(1, T - 1))
    fault = draw(st.sampled_from([None, None, "features", "batch", "dtype", "empty", "unbatched"]))
    return rnn, x, cut, fault


@SETTINGS
@given(case=stream_cases())
def test_stateful_streams_equal_the_whole_or_a_fault_is_named(case):
    rnn, x, cut, fault = case
    t_axis = 1 if rnn.batch_first else 0
    first, second = x.split([cut, x.shape[t_axis] - cut], dim=t_axis)
    if fault == "features":
        second = torch.randn(*second.shape[:-1], second.shape[-1] + 1)
    elif fault == "batch":
        second = torch.cat([second, second], dim=1 - t_axis)
    elif fault == "dtype":
        second = second.double()
    elif fault == "empty":
        second = second.narrow(t_axis, 0, 0)
    elif fault == "unbatched":
        second = second.select(1 - t_axis, 0)                             # (t, I): one sequence
    stream = Stateful(rnn)
    with torch.no_grad():
        a = stream(first)
        b, error = attempt(lambda: stream(second))
        if fault is not None:
            assert error is not None, fault
            return clear_error("Stateful", error, second.shape, ["(B=", "(T=", "batch", "dtype", "state"])
        whole, state = rnn(x)
    assert_close(torch.cat([a, b], dim=t_axis), whole)
    assert_close(stream.state, state)
    identity_held("Stateful")


"""fold_time / unfold_time / flatten_spatial: identities and errors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlstm_edu import ShapeError, flatten_spatial, fold_time, unfold_time
from cnnlstm_edu.shapes import check_shape, describe, translate_errors


@pytest.mark.parametrize("shape", [(2, 4), (2, 4, 3), (3, 5, 1, 14, 14), (1, 1, 2, 3, 4, 5)])
def test_unfold_inverts_fold(shape):
    x = torch.randn(shape)
    folded = fold_time(x)
    assert folded.shape == (shape[0] * shape[1], *shape[2:])
    assert torch.equal(unfold_time(folded, steps=shape[1]), x)


def test_fold_puts_frame_t_of_clip_b_at_row_b_times_T_plus_t():
    B, T = 3, 5
    x = torch.randn(B, T, 2, 4, 4)
    folded = fold_time(x)
    for b in range(B):
        for t in range(T):
            assert torch.equal(folded[b * T + t], x[b, t])


def test_fold_is_a_view_for_contiguous_input():
    x = torch.randn(2, 3, 4)
    assert fold_time(x).data_ptr() == x.data_ptr()


@given(B=st.integers(1, 5), T=st.integers(1, 6), rest=st.lists(st.integers(1, 4), max_size=3))
@settings(max_examples=50, deadline=None)
def test_fold_unfold_roundtrip_property(B, T, rest):
    x = torch.randn(B, T, *rest)
    assert torch.equal(unfold_time(fold_time(x), T), x)


def test_flatten_spatial_keeps_time_and_merges_each_frame():
    x = torch.randn(2, 7, 5, 3, 3)
    y = flatten_spatial(x)
    assert y.shape == (2, 7, 45)
    assert torch.equal(y[1, 6], x[1, 6].flatten())


@pytest.mark.parametrize("bad", [torch.tensor(1.0), torch.zeros(3)])
def test_fold_time_rejects_tensors_without_a_time_axis(bad):
    with pytest.raises(ShapeError, match=r"\(B, T, \.\.\.\)"):
        fold_time(bad)


def test_fold_time_rejects_non_tensors():
    with pytest.raises(TypeError, match="torch.Tensor"):
        fold_time([[1, 2]])


def test_unfold_time_names_the_mismatch():
    with pytest.raises(ShapeError, match=r"B\*T = 10.*steps=4"):
        unfold_time(torch.zeros(10, 3), steps=4)


@pytest.mark.parametrize("steps", [0, -2, 2.0, True, "4"])
def test_unfold_time_rejects_bad_steps(steps):
    with pytest.raises(ValueError, match="steps"):
        unfold_time(torch.zeros(8, 3), steps=steps)


def test_shape_error_is_a_value_error():
    assert issubclass(ShapeError, ValueError)


def test_flatten_spatial_rejects_missing_axes():
    with pytest.raises(ShapeError, match=r"expected \(B, T, C, \.\.\.\), got \(4, 5\)"):
        flatten_spatial(torch.zeros(4, 5))


def test_check_shape_messages_name_axes_and_sizes():
    with pytest.raises(ShapeError, match=r"expected \(B, T, C=1, H, W\), got \(2, 1, 14, 14\): that is 4 axes, not 5"):
        check_shape(torch.zeros(2, 1, 14, 14), "B T C H W", C=1)
    with pytest.raises(ShapeError, match=r"axis H is 28, not 14\. use quadrants"):
        check_shape(torch.zeros(2, 4, 1, 28, 14), "B T C H W", H=14, hint="use quadrants")
    check_shape(torch.zeros(2, 4, 9), "B T ...")


def test_describe():
    assert describe((8, 4, 1), ["B", "T", "C"]) == "(B=8, T=4, C=1)"
    assert describe((8,)) == "(8,)"


def test_translate_errors_names_the_shape_and_chains_torchs_error():
    with pytest.raises(ShapeError, match=r"^frames \(B\*T=8, F=5\): Linear raised RuntimeError: .*8x5 and 3x2.*Fix it\.$") as info:
        with translate_errors("frames (B*T=8, F=5)", hint="Fix it."):
            torch.nn.Linear(3, 2)(torch.zeros(8, 5))
    assert isinstance(info.value.__cause__, RuntimeError)


def test_translate_errors_sorts_dtype_and_device_errors():
    with pytest.raises(TypeError, match=r"^frames: .*dtype.*x\.float\(\)"):
        with translate_errors("frames"):
            torch.nn.Linear(3, 2)(torch.zeros(8, 3, dtype=torch.float64))


@pytest.mark.parametrize("error", [RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                   RuntimeError("CUDA error: device-side assert triggered"),
                                   RuntimeError("something unrelated happened"), KeyError("x")])
def test_translate_errors_lets_other_errors_pass_unchanged(error):
    with pytest.raises(type(error)) as info:
        with translate_errors("frames"):
            raise error
    assert info.value is error


def test_translate_errors_explains_once_when_nested_and_builds_messages_only_on_error():
    calls = []

    def what(name):
        return lambda: calls.append(name) or name

    with translate_errors(what("outer")):
        torch.nn.Linear(3, 2)(torch.zeros(8, 3))           # fine: no message is built
    assert calls == []
    with pytest.raises(ShapeError, match=r"^inner: ") as info:
        with translate_errors(what("outer")), translate_errors(what("inner")):
            torch.nn.Linear(3, 2)(torch.zeros(8, 5))
    assert calls == ["inner"] and "outer" not in str(info.value)


@pytest.mark.parametrize("steps", [2**62, 2**63 - 1, 2**64])
def test_unfold_time_refuses_steps_no_tensor_can_hold(steps):
    # An empty (0, F) tensor divides by any steps; the (0, steps, F) result would overflow the strides.
    with pytest.raises(ShapeError, match=rf"steps={steps}"):
        unfold_time(torch.zeros(0, 3), steps=steps)
    assert unfold_time(torch.zeros(0, 3), steps=4).shape == (0, 4, 3)

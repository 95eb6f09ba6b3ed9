"""The recurrent state a caller hands back: checked once, the same way for every layer of the package.

``nn.LSTM`` takes ``state=(h_0, c_0)``; so do :class:`~cnnlstm_edu.layers.convlstm.ConvLSTM`,
:class:`~cnnlstm_edu.layers.lstm.LSTM` and the cells (``(h, c)``). A state of the wrong shape, dtype
or device fails deep inside a matrix product or a convolution, in words about sizes only;
:func:`unpack_state` refuses it first and names the axes it should have had.

>>> h, c = unpack_state((torch.zeros(2, 4), torch.zeros(2, 4)), (2, 4), "B H", "LSTMCell")
>>> unpack_state((torch.zeros(2, 4), torch.zeros(2, 5)), (2, 4), "B H", "LSTMCell")
Traceback (most recent call last):
cnnlstm_edu.shapes.ShapeError: LSTMCell: state c should be (B=2, H=4), got (2, 5). ...
"""

from __future__ import annotations

import torch

from ..shapes import ShapeError, check_float, describe

__all__ = ["unpack_state"]


def unpack_state(state, expected: tuple[int, ...], axes: str, owner: str,
                 like: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Check that ``state`` is a pair ``(h, c)`` of tensors shaped ``expected`` (named ``axes``
    in the messages) and, given the input ``like``, of its dtype and device; return it."""
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise ValueError(
            f"{owner}: state must be a pair (h, c) of tensors shaped {describe(expected, axes)}, "
            f"got {type(state).__name__}{'' if not isinstance(state, (tuple, list)) else f' of length {len(state)}'}. "
            "Pass state=None to start from zeros."
        )
    for name, s in zip("hc", state):
        if not isinstance(s, torch.Tensor):
            raise TypeError(f"{owner}: state {name} must be a torch.Tensor, got {type(s).__name__}.")
        if tuple(s.shape) != expected:
            raise ShapeError(
                f"{owner}: state {name} should be {describe(expected, axes)}, got {tuple(s.shape)}. "
                "It must match this input's batch and output grid; pass state=None to start "
                "from zeros, or the state that the previous call returned."
            )
        if like is not None:
            # The state meets the input in one convolution: same dtype, same device.
            check_float(s, f"{owner}: state {name}", like=like, like_name="the input",
                        fix="Pass the state that the previous call returned on this input, or state=None.")
    return state[0], state[1]

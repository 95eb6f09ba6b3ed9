"""explain: the classic CNN -> LSTM shape mistakes, said in plain words with the numbers and the fix.

PyTorch's messages are exact but speak in sizes: ``shape '[8, 1568]' is invalid for input of
size 50176``. A learner needs the axes: *50176 = 8 x 4 x 1568, the time axis T=4 was lost*.
These are the mistakes of seed 004 (Keras' "total size of new array must be unchanged",
"expected ndim=3, found ndim=2", "expected ndim=4, found ndim=5") and their PyTorch cousins:

- a video ``(B, T, C, H, W)`` fed to ``Conv2d``/``MaxPool2d``/``BatchNorm2d``, which take frames;
- a reshape that drops the time axis;
- a ``Linear`` or an LSTM whose ``in_features``/``input_size`` does not match the flattened map;
- an LSTM output ``(B, T, H)`` fed on without picking a step;
- channels-last frames, a state ``(h_0, c_0)`` of the wrong batch, a loss that meets a time axis.

:func:`explain` reads the error message (the wording of torch 2.x) and, when it has them, the
shapes recorded around the failing call: a partial :class:`~cnnlstm_edu.trace.ShapeTrace`
(``trace_shapes`` attaches one to the exception as ``error.trace``), or the module calls that
:func:`explain_shapes` watched. An error it does not recognise gets an honest "not recognised",
never a guess dressed up as a diagnosis.

The package: :mod:`.context` (what is known around the error), :mod:`.frames` and
:mod:`.sequences` (the diagnoses, one function per mistake), :mod:`.core` (:func:`explain`,
:func:`explain_shapes`).
"""

from .core import explain, explain_shapes

__all__ = ["explain", "explain_shapes"]

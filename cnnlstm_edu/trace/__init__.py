"""trace_shapes: run a model once and see every module's input and output shapes, axes named.

A CNN-LSTM is mostly reshapes that move the time axis into the batch and out again, and
PyTorch's messages give sizes, not meanings (``shape '[8, 1568]' is invalid for input of size
50176``). ``trace_shapes`` runs the model once with forward hooks on every module, the way
torchinfo does (and removes them in a ``finally``), and records in call order:

- every module's inputs and outputs, *every* member of a tuple included: an LSTM's ``output``,
  ``h_n`` and ``c_n`` each get a line, where torchinfo keeps only the first;
- the meaning of each axis where it can be known: ``B`` (clips), ``T`` (time steps), ``B*T``
  (frames folded into the batch), ``C``, ``H``, ``W``, ``F`` (features), ``L`` (layers of an
  RNN state), and ``H`` for the hidden size of an LSTM's output;
- one row with a count ``x4`` for a module called once per time step (``TimeDistributed``'s
  loop mode), where Keras' ``summary()`` shows only the wrapper and a plain hook list T copies.

How the axes are known: the model's input is labelled ``(B, T, C, H, W)`` (or what ``axes=``
says) and the labels then *follow the data*. A ``torch.overrides.TorchFunctionMode`` sees every
tensor operation during the trace, so a ``reshape`` that merges B and T makes an axis ``B*T``,
``flatten(1)`` turns ``(C, H, W)`` into one ``F``, ``x[:, -1]`` drops T and ``permute``
reorders. Recurrent layers label their results by their contract (``nn.LSTM``: ``output``
``(B, T, H)``, ``h_n`` ``(L, B, H)``). A size alone never names an axis when two axes could
share it: an axis whose meaning is unknown is printed as a bare number.

The same watcher reports code that PyTorch runs without complaint but that is almost surely
wrong (:data:`WARNING_KINDS`):

- ``unbatched``: a 2-D tensor reaches ``nn.LSTM``/``GRU``/``RNN``, which reads it as ONE
  sequence, so the batch becomes the time axis (seed 004's "expected ndim=3, found ndim=2",
  which PyTorch does not raise);
- ``time_major`` / ``batch_major``: a ``(T, B, ...)`` tensor reaches a ``batch_first=True``
  layer, or a ``(B, T, ...)`` one a ``batch_first=False`` layer (``nn.LSTM``'s default). The
  labels decide; when the tensor has none, its sizes do, but only if B and T differ;
- ``view_swap``: a ``view``/``reshape`` cuts a folded ``T*B`` axis (or a ``(T, B)`` pair) into
  sizes ``(B, T)``, or the other way round: the shape looks swapped but every "clip" now mixes
  steps of different clips. Found only where the labels reach (not through custom C++ ops,
  ``.data`` or ``numpy()`` round trips) and only if B and T differ.

The package is split the way torchinfo splits its summary:

- :mod:`cnnlstm_edu.axes`: axis names, guessing and formatting, the recurrent contracts;
- :mod:`.labels`: pure functions, the labels after a reshape, an index, a reduction...;
- :mod:`.recurrent`: which member of a recurrent layer's result is ``output``, ``h_n``, ``c_n``;
- :mod:`.functions`: the function-mode labeller, dispatching on a table of rules;
- :mod:`.tracer`: the module hooks and :func:`trace_shapes`;
- :mod:`.result`: :class:`TraceRow`, :class:`TraceWarning`, :class:`ShapeTrace`;
- :mod:`.render`: the text table, the HTML table and the figure.
"""

from ..axes import axis_kind, format_shape
from .render import AXIS_COLORS, Stage
from .result import WARNING_KINDS, ShapeTrace, TraceRow, TraceWarning
from .tracer import trace_shapes

__all__ = ["AXIS_COLORS", "ShapeTrace", "Stage", "TraceRow", "TraceWarning", "WARNING_KINDS", "axis_kind",
           "format_shape", "trace_shapes"]

"""Deployment: a streaming model as a one-step ONNX graph, its state fed in and read back out.

Seed 003, point 5, in a portable form: :func:`export_onnx` writes one step of the model, inputs
the frame then the state, outputs the result then the new state; :class:`OnnxStreamer` runs it
with onnxruntime, with the API of the library's ``FrameStreamer`` (``reset()``, then one call per
frame), and gives the same numbers:

>>> import tempfile, torch
>>> from cnnlstm_edu.models import CNNLSTM
>>> from cnnlstm_edu.models.streaming import FrameStreamer
>>> model = CNNLSTM(hidden_size=8, channels=(4,)).eval()
>>> path = export_onnx(model, tempfile.mkdtemp() + "/model.onnx")
>>> read_metadata(path)["inputs"], read_metadata(path)["outputs"]
(['frame', 'h', 'c'], ['logits', 'h_next', 'c_next'])
>>> onnx_stream, torch_stream = OnnxStreamer(path), FrameStreamer(model)
>>> clip = torch.rand(3, 4, 1, 14, 14)                  # (B, T, C, H, W)
>>> onnx_stream.reset()
>>> for t in range(4):
...     frame = clip[:, t]                              # (B, C, H, W)
...     diff = (onnx_stream(frame) - torch_stream(frame)).abs().max().item()
>>> diff < 1e-4, tuple(onnx_stream.state["h"].shape)     # the state: (num_layers, B, hidden)
(True, (1, 3, 8))

onnx, onnxscript and onnxruntime are imported only by the functions that need them.
"""

from .export import FORMAT, default_class_names, export_onnx, read_metadata
from .onnx_streamer import OnnxStreamer
from .steps import REFUSED, StateSpec, check_streamable, step_module

__all__ = ["FORMAT", "OnnxStreamer", "REFUSED", "StateSpec", "check_streamable", "default_class_names",
           "export_onnx", "read_metadata", "step_module"]

"""OnnxStreamer: run an exported one-step graph frame by frame with onnxruntime, carrying the state.

The same loop as seed 003's ``feed_dict``: each call feeds the frame and the state the last call
returned, and keeps the new state for the next one. It has the API of the library's
:class:`~cnnlstm_edu.models.streaming.FrameStreamer`: ``reset()`` at the start of a video,
``streamer(frame)`` for each frame, which returns the belief after it (the logits; the
forecast next frame for ``next_frame``; the box for ``tracker``). A frame may be a numpy array
or a torch tensor; the result is of the same kind.
"""

from __future__ import annotations

import os

import numpy as np

from .export import read_metadata

__all__ = ["OnnxStreamer"]


class OnnxStreamer:
    """Stream frames ``(B, C, H, W)`` through an ONNX file written by :func:`export_onnx`.

    The package's docstring (``cnnlstm_edu.deploy``) runs this against ``FrameStreamer``:

    >>> streamer = OnnxStreamer("model.onnx")                  # doctest: +SKIP
    >>> streamer.reset()                                       # doctest: +SKIP
    >>> beliefs = [streamer(clip[:, t]) for t in range(4)]     # doctest: +SKIP

    The tracker starts from the box a user draws: ``streamer.reset(box=first_box)``, ``(B, 4)``.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        import onnxruntime as ort

        from ..checks import check_number

        self.metadata = read_metadata(path)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = check_number(threads, "threads", integer=True, low=1,
                                                        owner="OnnxStreamer")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.frame_shape = tuple(self.metadata["preprocessing"]["frame"])   # (C, H, W)
        self.states = self.metadata["state"]
        self.state: dict[str, np.ndarray] | None = None
        self._given_box: np.ndarray | None = None

    @property
    def model(self) -> str:
        return self.metadata["model"]

    def reset(self, box=None) -> None:
        """Start a new video: forget the state. The tracker needs the first frame's ``box`` ``(B, 4)``."""
        self.state = None
        needs_box = any(s["init"] == "given" for s in self.states)
        if needs_box and box is None:
            raise ValueError(f"OnnxStreamer({self.model}): reset(box=...) needs the box to follow in "
                             "the first frame, (B, 4) pixels (x0, y0, x1, y1)")
        if box is not None and not needs_box:
            raise ValueError(f"OnnxStreamer({self.model}): reset takes no box; only the tracker starts "
                             "from one")
        if box is not None:
            box, _ = _as_numpy(box)
            if box.ndim != 2 or box.shape[1] != 4:
                raise ValueError(f"OnnxStreamer: box must be (B, 4) pixels (x0, y0, x1, y1), got "
                                 f"{tuple(box.shape)}")
            box = box.astype(np.float32)
        self._given_box = box

    def __call__(self, frame):
        """Feed one frame ``(B, C, H, W)`` (float32 in [0, 1]); return the belief after it."""
        array, as_torch = _as_numpy(frame)
        self._check(array)
        array = np.ascontiguousarray(array)          # clip[:, t] is a strided view
        if self.state is None:
            result = self._first(array)
        else:
            feeds = {"frame": array, **self.state}
            result, *new = self.session.run(None, feeds)
            self.state = {s["name"]: v for s, v in zip(self.states, new)}
        if as_torch:
            import torch
            return torch.from_numpy(result)
        return result

    feed = __call__

    def _first(self, frame: np.ndarray) -> np.ndarray:
        """The first frame of a video: the state starts as the metadata says (zeros, this frame,
        the given box); the tracker's first frame only fills it, as ``Tracker.track`` does."""
        B = frame.shape[0]
        if self._given_box is not None and self._given_box.shape[0] != B:
            raise ValueError(f"OnnxStreamer: the box given to reset() is for {self._given_box.shape[0]} "
                             f"videos, the frame {frame.shape} for {B} (axis 0, B)")
        start = {}
        for s in self.states:
            if s["init"] == "zeros":
                start[s["name"]] = np.zeros([B if a == "B" else n for a, n in zip(s["axes"], s["shape"])],
                                            dtype=np.float32)
            elif s["init"] == "first_frame":
                start[s["name"]] = frame
            elif s["init"] == "given":
                if self._given_box is None:
                    raise ValueError(f"OnnxStreamer({self.model}): call reset(box=...) before the first "
                                     "frame, with the box to follow, (B, 4)")
                start[s["name"]] = self._given_box
        if self.metadata["first_frame"] != "runs":
            self.state = start
            return self._given_box.copy()
        result, *new = self.session.run(None, {"frame": frame, **start})
        self.state = {s["name"]: v for s, v in zip(self.states, new)}
        return result

    def stream(self, clips, box=None):
        """Reset, feed every frame of ``clips`` ``(B, T, C, H, W)``, return the results ``(B, T, ...)``."""
        array, as_torch = _as_numpy(clips)
        if array.ndim != 5:
            raise ValueError(f"OnnxStreamer.stream: expected clips (B, T, C, H, W), got {tuple(array.shape)}")
        self.reset(box)
        out = np.stack([self(array[:, t]) for t in range(array.shape[1])], axis=1)
        if as_torch:
            import torch
            return torch.from_numpy(out)
        return out

    def _check(self, frame: np.ndarray) -> None:
        """Name the axis that is wrong, before onnxruntime's shape message can."""
        C, H, W = self.frame_shape
        if frame.ndim != 4:
            hint = " Feed one frame per call: clip[:, t], not the whole clip." if frame.ndim == 5 else ""
            raise ValueError(f"OnnxStreamer({self.model}): expected a frame (B, C={C}, H={H}, W={W}), "
                             f"got {frame.ndim} axes {tuple(frame.shape)}.{hint}")
        for axis, (name, want) in enumerate(zip("CHW", (C, H, W)), start=1):
            if frame.shape[axis] != want:
                raise ValueError(f"OnnxStreamer({self.model}): expected a frame (B, C={C}, H={H}, W={W}), "
                                 f"got {tuple(frame.shape)}: axis {axis} ({name}) is {frame.shape[axis]}, "
                                 f"not {want}")
        if frame.dtype != np.float32:
            fix = "divide uint8 pixels by 255" if frame.dtype == np.uint8 else "cast it with .astype(np.float32)"
            raise TypeError(f"OnnxStreamer({self.model}): the frame is {frame.dtype}; the model reads "
                            f"float32 pixels in [0, 1]: {fix}")
        if self.state is not None:
            stored = next(iter(self.state.values()))
            axis = self.states[0]["axes"].index("B")
            if stored.shape[axis] != frame.shape[0]:
                raise ValueError(f"OnnxStreamer({self.model}): this frame {tuple(frame.shape)} has a batch "
                                 f"of {frame.shape[0]} (axis 0, B), the stored state is for "
                                 f"{stored.shape[axis]} videos. A new video? Call reset() first.")


def _as_numpy(x) -> tuple[np.ndarray, bool]:
    """``(array, came_as_torch)``; numpy arrays pass through, torch tensors are copied to the CPU."""
    if isinstance(x, np.ndarray):
        return x, False
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy(), True
    raise TypeError(f"OnnxStreamer: expected a numpy array or a torch tensor, got {type(x).__name__}")

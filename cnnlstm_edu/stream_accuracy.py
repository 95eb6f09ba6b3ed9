"""Accuracy along a stream of videos, read with or without a reset between them (lesson 06).

Seed 003, point 5: in deployment the LSTM's state is carried from frame to frame and must be
reset to zeros when a new video starts. To see what forgetting that reset costs, play the test
clips as streams, several videos one after another per stream and many streams side by side
(one batch row each), and score every video after its last frame. With ``reset=True`` each
video starts from zeros, exactly as in training; with ``reset=False`` it starts from the state
the previous video of its stream left behind.

>>> from cnnlstm_edu.models import CNNLSTM
>>> from cnnlstm_edu.models.streaming import FrameStreamer
>>> torch.manual_seed(0)                                  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> model = CNNLSTM().eval()
>>> clips, labels = torch.rand(12, 4, 1, 14, 14), torch.randint(0, 10, (12,))   # (N, T, C, H, W), (N,)
>>> acc = stream_accuracy(FrameStreamer(model), clips, labels, videos_per_stream=3)
>>> tuple(acc.shape)                                     # one accuracy per place in the stream
(3,)
>>> with_reset = model(clips).argmax(-1) == labels   # (N,): each clip on its own
>>> torch.allclose(acc, with_reset.float().view(3, 4).mean(1))        # video k of stream s is clip k*S + s
True
>>> no_reset = stream_accuracy(FrameStreamer(model), clips, labels, videos_per_stream=3, reset=False)
>>> bool(no_reset[0] == acc[0])                          # the first video starts from zeros either way
True
"""

from __future__ import annotations

import torch

from .checks import check_number
from .shapes import check_float, check_shape

__all__ = ["stream_accuracy"]


@torch.no_grad()
def stream_accuracy(streamer, clips: torch.Tensor, labels: torch.Tensor, *, videos_per_stream: int,
                    reset: bool = True) -> torch.Tensor:
    """The accuracy on the k-th video of every stream, after its last frame: a ``(videos_per_stream,)`` tensor.

    ``streamer`` is a :class:`~cnnlstm_edu.models.streaming.FrameStreamer` (or anything with
    its API: ``reset()``, and one frame ``(B, C, H, W)`` in, logits ``(B, classes)`` out, such
    as :class:`~cnnlstm_edu.deploy.OnnxStreamer`). ``clips`` ``(N, T, C, H, W)`` float and
    ``labels`` ``(N,)`` are cut into ``S = N // videos_per_stream`` streams: video ``k`` of
    stream ``s`` is clip ``k * S + s``, so all streams play their k-th video at the same time,
    as one batch of ``S`` frames per call. ``reset=False`` carries the state from each video
    into the next of its stream; the first video starts from zeros either way.
    """
    check_number(videos_per_stream, "videos_per_stream", integer=True, low=1, owner="stream_accuracy")
    if not isinstance(reset, bool):
        raise TypeError(f"stream_accuracy: reset must be True or False, got {reset!r}")
    if not (callable(streamer) and callable(getattr(streamer, "reset", None))):
        raise TypeError(f"stream_accuracy: streamer must be a FrameStreamer (or have its reset() and one-frame call), "
                        f"got {type(streamer).__name__}")
    check_shape(clips, "N T C H W", what="stream_accuracy clips",
                hint="A batch of clips, e.g. quadrant_sequences(images) scaled to [0, 1].")
    check_float(clips, "stream_accuracy clips")
    N = clips.shape[0]
    check_shape(labels, "N", what="stream_accuracy labels", N=N, hint="One class index per clip.")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"stream_accuracy: labels must be class indices (an integer tensor), got {labels.dtype}")
    if N % videos_per_stream:
        raise ValueError(f"stream_accuracy: {N} clips do not make streams of videos_per_stream={videos_per_stream} "
                         f"videos each; pass clips[:{N - N % videos_per_stream}] (a multiple of {videos_per_stream})")
    S, T = N // videos_per_stream, clips.shape[1]
    videos = clips.view(videos_per_stream, S, *clips.shape[1:])   # (V, S, T, C, H, W): video k of every stream
    truth = labels.view(videos_per_stream, S)                      # (V, S)
    accuracy = torch.empty(videos_per_stream)
    streamer.reset()
    for k in range(videos_per_stream):
        if reset:
            streamer.reset()                                       # a new video: back to zeros
        for t in range(T):
            logits = torch.as_tensor(streamer(videos[k, :, t]))    # (S, classes): one frame of every stream
        accuracy[k] = (logits.argmax(-1).cpu() == truth[k].cpu()).float().mean()
    return accuracy

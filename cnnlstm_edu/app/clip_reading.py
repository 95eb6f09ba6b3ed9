"""Classify one uploaded clip with the model trained on the learner's clips, frame by frame.

The clip is read exactly as the training clips were (:func:`cnnlstm_edu.data.load_clip` with the
run's :class:`~.clip_settings.ClipFormat`), then fed one frame per step
(:func:`~.tryit.stream_beliefs`): the belief after each frame, the same as the model's own
``all_steps`` answer. Its activations come from :func:`~cnnlstm_edu.analysis.probe`.
"""

from __future__ import annotations

from pathlib import Path

from ..analysis import probe
from .clip_settings import CLIP_CAPS, ClipSettings
from .clip_store import ClipsRefused
from .session import Session
from .tryit import frames_strip, stream_beliefs
from .views import activation_image, beliefs_html, markdown_text

__all__ = ["read_one"]


def read_one(session: Session | None, path: Path | None, caps=CLIP_CAPS) -> tuple:
    """``(message, frames image, beliefs HTML, activations image)`` for the clip at ``path``, read by
    ``session``'s model; :class:`~.clip_store.ClipsRefused` with the reason when it can't be."""
    from ..data import load_clip

    model, settings = session.model_for_inference() if isinstance(session, Session) else (None, None)
    if model is None or not isinstance(settings, ClipSettings):
        raise ClipsRefused("there is no model trained on clips in this tab: upload clips (or use the sample) "
                           "and press **Train** first.")
    if path is None or not path.is_file():
        raise ClipsRefused("choose one clip: a video file (.mp4, .avi, .mov, .webm, .mkv) or an animated .gif.")
    if path.stat().st_size > caps.single_bytes:
        raise ClipsRefused(f"this clip is {path.stat().st_size:,} bytes; one clip may have at most "
                           f"{caps.single_bytes:,}.")
    fmt, task = settings.read, settings.app_task
    try:
        clip, _ = load_clip(path, **fmt.read_options(), max_side=caps.side, max_frames=caps.clip_frames)  # (T, C, H, W)
    except (ValueError, OSError) as e:
        reason = str(e).replace(str(path.parent) + "/", "")         # the server's folders are not the learner's
        raise ClipsRefused(f"this clip can't be read: {markdown_text(reason)}") from None
    probs = stream_beliefs(model, clip)                                 # (T, classes), one frame per step
    T = probs.shape[0]
    guess, first = int(probs[-1].argmax()), int(probs[0].argmax())
    name = lambda k: f"**{markdown_text(task.class_name(k))}**"        # noqa: E731
    message = (f"After all {T} frames it says {name(guess)} ({float(probs[-1, guess]):.0%}); after frame 1 "
               f"alone, {name(first)} ({float(probs[0, first]):.0%}; chance {1 / task.num_classes:.0%}). Read as "
               f"{fmt.describe()}, as the model's clips were. This tab's model ({markdown_text(settings.describe())}) "
               "reads it.")
    return (message, frames_strip(clip), beliefs_html(probs, None, None, task.classes),
            activation_image(probe(model, clip)))

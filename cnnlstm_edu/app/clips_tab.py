"""The "Your clips" tab: upload a .zip of class folders (or use the sample), train live, classify one clip.

The learner's clips go through the same machinery as the digits: :func:`~.training.train_updates`
with the clips as its data (:class:`~.clip_settings.ClipSettings` shaped like the Train tab's
settings), the same views (:func:`~.train_tab.run_views`, :func:`~.train_tab.run_view`), the
same session (one model per browser tab: training here replaces the Train tab's model, and the
other way round). What is new is the upload, bounded and unpacked by :mod:`.clip_store`, and
reading one clip frame by frame with the model trained here.

Every route of this tab can be called by any client on the network: the zip is refused, with
the reason, when it slips outside its folder, holds links, inflates past the cap, is not a zip
or holds fewer than two classes; every field is checked and named.
"""

from __future__ import annotations

import logging
import types
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from .clip_settings import COLOURS, ENCODERS, MAX_FRAMES, MAX_SECONDS, SIZE_RANGE, ClipFormat, ClipSettings
from .clip_store import ClipStore, ClipsRefused, sample_zip
from .fields import ChoiceField, NumberField
from .server import MAX_UPLOAD
from .session import Session, SessionRegistry
from .train_tab import (RunOutputs, RunTab, admission, press, run_controls, run_view, run_views, stop, stream_run,
                        warn)
from .views import beliefs_html, markdown_text

__all__ = ["ClipOutputs", "ClipsServer", "ClipsTab", "classify_clip", "clips_tab", "train_clips", "upload_clips",
           "use_sample", "wire_clips"]

log = logging.getLogger(__name__)
VIDEO_TYPES = [".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v", ".gif"]
INTRO = (f"### Your own clips\nA .zip (at most {MAX_UPLOAD.upper()}) with **one folder per class**, each holding "
         "short clips: video files (.mp4, .avi, .mov, .webm, .mkv), animated .gif files or folders of "
         "numbered frame images. No clips at hand? **Use the sample clips**: MNIST digits crossing "
         "the frame left, right or down, as real .mp4 files.")
NOTES = ("**Per-frame activations** of the first held-out clip: one row per frame, in the order the model "
         "reads them; the frame, then the first 8 feature maps of each conv block, each map on its own colour "
         "scale across the frames.",
         "**Belief after each frame**: what the model says after seeing 1, 2, ..., T frames of that clip.")


@dataclass
class ClipsTab(RunTab):
    archive: gr.File
    sample_btn: gr.Button
    sample_download: gr.DownloadButton
    summary: gr.Markdown
    frames: gr.Number
    size: gr.Number
    colour: gr.Radio
    encoder: gr.Radio
    budget: gr.Number
    clip: gr.File
    classify_btn: gr.Button
    clip_message: gr.Markdown
    clip_beliefs: gr.HTML
    clip_frames: gr.Image
    clip_activations: gr.Image

    def format_inputs(self) -> list:
        return [self.frames, self.size, self.colour]

    def settings_inputs(self) -> list:
        return [*self.format_inputs(), self.encoder, self.budget]


@dataclass
class ClipOutputs(RunOutputs):
    """What one update of a run on the clips changes (the Train tab's views), then the model's download."""

    download: Any = field(default_factory=gr.skip)


@dataclass
class ClipsServer:
    """What the tab's functions share across sessions: the sessions and the uploads' store."""

    registry: SessionRegistry
    store: ClipStore


def clips_tab(device: str = "auto") -> ClipsTab:
    """Lay out the tab (inside a ``gr.Tab``): the upload and settings left, the run's views right,
    then the confusion matrix, the mistakes and the single clip. ``device``: where runs train."""
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            gr.Markdown(INTRO)
            archive = gr.File(label="a .zip of class folders", file_types=[".zip"], type="filepath",
                              elem_id="clips-zip")
            with gr.Row():
                sample_btn = gr.Button("Use the sample clips", elem_id="clips-sample")
                sample_download = gr.DownloadButton("Download the sample zip", value=None, interactive=False,
                                                    size="sm", elem_id="clips-sample-download")
            summary = gr.Markdown("No clips yet.", elem_id="clips-summary")
            frames = NumberField(8, label="frames", precision=0,
                                 info=f"T, taken evenly from each clip (2-{MAX_FRAMES})")
            size = NumberField(24, label="frame size", precision=0,
                               info=f"H = W in pixels ({SIZE_RANGE[0]}-{SIZE_RANGE[1]})")
            colour = ChoiceField(list(COLOURS), value="grey", label="colour", elem_id="clips-colour")
            encoder = ChoiceField(list(ENCODERS), value=next(iter(ENCODERS)), label="frame encoder",
                                  info="the CNN that reads each frame: new, or the shipped one pretrained on "
                                       "MNIST digits, kept as it is or trained further", elem_id="clips-encoder")
            budget = NumberField(20, label="time budget (seconds)", info=f"of training (at most {MAX_SECONDS})")
            ticket, train_btn, stop_btn, status, download = run_controls(
                device, "Upload clips, then press **Train**.", "clips-")
        with gr.Column(scale=3):
            loss, accuracy, activations, hidden_img, beliefs, _, _ = run_views("clips-", NOTES, height=320)
    with gr.Row():
        final = gr.Markdown("", elem_id="clips-final")
    with gr.Row():
        confusion = gr.Plot(label="confusion matrix", format="png", elem_id="clips-confusion")
        mistakes = gr.Gallery(label="misclassified held-out clips, every frame at once (true -> predicted)",
                              columns=6, height=300, format="png", elem_id="clips-mistakes", elem_classes="pixelated")
    gr.Markdown("### Classify one clip\nWith the model trained above, read the same way as its clips; "
                "the belief after each frame.")
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            clip = gr.File(label="one clip (video or .gif)", file_types=VIDEO_TYPES, type="filepath",
                           elem_id="clips-one")
            classify_btn = gr.Button("Classify this clip", variant="primary", elem_id="clips-classify")
        with gr.Column(scale=3):
            clip_message = gr.Markdown("", elem_id="clips-one-message")
            clip_beliefs = gr.HTML(beliefs_html(None), elem_id="clips-one-beliefs")
            clip_frames = gr.Image(label="the frames", show_label=False, type="numpy", format="png",
                                   interactive=False, elem_classes="pixelated", elem_id="clips-one-frames")
            clip_activations = gr.Image(label="per-frame activations", show_label=False, type="numpy", format="png",
                                        interactive=False, elem_classes="pixelated", height=320,
                                        elem_id="clips-one-activations")
    return ClipsTab(archive=archive, sample_btn=sample_btn, sample_download=sample_download, summary=summary,
                    frames=frames, size=size, colour=colour, encoder=encoder, budget=budget, ticket=ticket,
                    train_btn=train_btn, stop_btn=stop_btn, status=status, download=download, loss=loss,
                    accuracy=accuracy, activations=activations, hidden_img=hidden_img, beliefs=beliefs,
                    final=final, confusion=confusion, mistakes=mistakes, clip=clip, classify_btn=classify_btn,
                    clip_message=clip_message, clip_beliefs=clip_beliefs, clip_frames=clip_frames,
                    clip_activations=clip_activations)


# --- the functions behind the buttons --------------------------------------------------------------


def _session_id(request) -> str:
    return getattr(request, "session_hash", None) or ""


def _file_path(value) -> Path | None:
    """What a file field hands over (a path; an API client may send a dict), as a Path."""
    if isinstance(value, dict):
        value = value.get("path")
    return Path(value) if isinstance(value, str) and value else None


def _summary(upload, prepared) -> str:
    classes = ", ".join(f"**{markdown_text(name)}** ({train} + {test})" for name, train, test in
                        zip(prepared.classes, prepared.train_counts, prepared.test_counts))
    text = (f"**{len(prepared.classes)} classes** from {markdown_text(upload.name)}: {classes} clips "
            f"(for training + held out). Read as {prepared.format.describe()}. Press **Train**.")
    if prepared.skipped:
        shown = "; ".join(markdown_text(s) for s in prepared.skipped[:3])
        more = " ..." if len(prepared.skipped) > 3 else ""
        text += f"\n\nSkipped {len(prepared.skipped)} unreadable clip(s): {shown}{more}"
    return text


def _in_use(session: Session):
    """Whether ``session`` trains now, without keeping the session alive."""
    ref = weakref.ref(session)
    return lambda: (s := ref()) is not None and s.running


def upload_clips(server: ClipsServer, session: Session | None, archive, frames, size, colour,
                 request: gr.Request = None) -> tuple:
    """A zip arrived: unpack it into this tab's folder (the previous upload removed), read its clips
    in the tab's format, and say what it holds; or say why it was refused. Returns (state, summary)."""
    session = server.registry.attach(session, _session_id(request))
    try:
        fmt = ClipFormat(frames, size, colour)
    except ValueError as e:
        return session, warn(str(e))
    path = _file_path(archive)
    if path is None:
        return session, warn("choose a .zip of class folders (one sub-folder of clips per class).")
    try:
        upload = server.store.unpack(path, in_use=_in_use(session))
    except ClipsRefused as e:
        return session, warn(str(e))
    # Closing the tab removes the folder (Session.close); so does losing the session unannounced.
    upload.finalizer = weakref.finalize(session, upload.remove, "the tab was closed")
    old, session.clips = session.clips, upload
    if old is not None:
        if old.finalizer is not None:
            old.finalizer.detach()
        old.remove("replaced by a new upload")
    try:
        prepared = upload.prepare(fmt)
    except ClipsRefused as e:
        return session, warn(str(e))
    return session, _summary(upload, prepared)


def use_sample(server: ClipsServer, session: Session | None, frames, size, colour, request: gr.Request = None):
    """The sample zip (made once per server), taken as an upload and offered for download."""
    path = sample_zip()
    session, summary = upload_clips(server, session, str(path), frames, size, colour, request)
    return session, summary, gr.DownloadButton(f"Download the sample zip ({path.stat().st_size // 1024} kB)",
                                               value=str(path), interactive=True)


def train_clips(server: ClipsServer, session: Session | None, frames, size, colour, encoder, budget,
                options: dict | None = None, ticket=None, request: gr.Request = None):
    """Train: a fresh CNN-LSTM on this tab's clips, streamed as the Train tab streams its runs."""
    session = server.registry.attach(session, _session_id(request))
    refused = admission(session, ticket)
    if refused is not None:
        if refused:
            yield ClipOutputs(session, status=refused).values()
        return
    try:
        settings = ClipSettings.from_form(frames, size, colour, encoder, budget, **(options or {}))
    except ValueError as e:
        yield ClipOutputs(session, status=warn(str(e))).values()
        return
    if session.clips is None:
        yield ClipOutputs(session, status=warn("there are no clips in this tab: upload a .zip of class folders, "
                                               "or press **Use the sample clips**.")).values()
        return
    if session.running:
        yield ClipOutputs(session, status=warn("this tab is already training: its run goes on; press Stop "
                                               "first to start another.")).values()
        return
    try:
        prepared = session.clips.prepare(settings.read)
    except ClipsRefused as e:
        yield ClipOutputs(session, status=warn(str(e))).values()
        return
    settings = settings.for_classes(prepared.classes, len(prepared.data.train_y), len(prepared.data.test_y))
    view = lambda session, u: ClipOutputs(session, **run_view(session, u, settings.app_task))   # noqa: E731
    yield from stream_run(server.registry, session, settings, ClipOutputs, view, data=prepared.data)


def classify_clip(session: Session | None, clip) -> tuple:
    """One clip, read as this tab's model's clips were, fed one frame per step: the belief after each."""
    from .clip_reading import read_one

    nothing = (None, beliefs_html(None), None)
    try:
        return read_one(session, _file_path(clip))
    except ClipsRefused as e:
        return (warn(str(e)), *nothing)
    except Exception as e:                          # a message in this tab, never a broken page
        log.exception("classifying a clip failed")
        return (warn(f"reading the clip failed ({type(e).__name__})."), *nothing)


# --- wiring -------------------------------------------------------------------------------------


def wire_clips(tab: ClipsTab, state, options, server: ClipsServer, max_runs: int) -> None:
    """Connect the tab's buttons. Unpacking, reading and training share the trainings' places
    (``concurrency_id="train"``): at most ``max_runs`` of them at once across all tabs."""
    heavy = dict(concurrency_limit=max_runs, concurrency_id="train")
    outputs = [state if name == "state" else getattr(tab, name) for name in ClipOutputs.names()]
    bound = lambda fn: types.MethodType(fn, server)                      # noqa: E731 (gradio reads the signature)
    tab.archive.upload(bound(upload_clips), [state, tab.archive, *tab.format_inputs()], [state, tab.summary],
                       api_name="clips_upload", show_progress="minimal", **heavy)
    tab.sample_btn.click(bound(use_sample), [state, *tab.format_inputs()], [state, tab.summary, tab.sample_download],
                         api_name="clips_sample", show_progress="minimal", **heavy)
    pressed = tab.train_btn.click(press, state, tab.ticket, api_name=False, concurrency_limit=None,
                                  show_progress="hidden", trigger_mode="multiple")
    pressed.then(bound(train_clips), [state, *tab.settings_inputs(), options, tab.ticket], outputs,
                 api_name="clips_train", show_progress="minimal", trigger_mode="multiple", **heavy)
    tab.stop_btn.click(stop, state, tab.status, api_name="clips_stop", concurrency_limit=None, show_progress="hidden")
    tab.classify_btn.click(classify_clip, [state, tab.clip],
                           [tab.clip_message, tab.clip_frames, tab.clip_beliefs, tab.clip_activations],
                           api_name="clips_classify", show_progress="minimal")

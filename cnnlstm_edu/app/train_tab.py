"""The Train tab: its components (:class:`TrainTab`), and the functions behind Train and Stop.

The work itself is :func:`~.training.train_updates`; here it becomes page updates. A press of
Train first takes a ticket (:func:`press`, outside the queue, so that Stop can cancel a run
still waiting in it), then :func:`train` runs with that ticket. Every press the page accepts
starts a run, waits in the queue for one, or says why not ("this tab is already training").
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, fields
from typing import Any

import gradio as gr
import torch

from ..data import QUADRANT_ORDERS
from ..shapes import is_out_of_memory
from .fields import NumberField
from .session import Session, SessionBusy, SessionRegistry
from .settings import HIDDEN_FIELD, MODEL_CHOICES, PROBE_INDEX, TrainSettings
from .training import device_label, train_updates
from .views import beliefs_html, curve_frame, gallery_items

__all__ = ["TrainOutputs", "TrainTab", "budget_changed", "failure_message", "model_changed", "press", "stop",
           "train", "train_tab"]

log = logging.getLogger(__name__)
COLORS = {"train": "#3182bd", "test": "#e6550d"}


def warn(message: str) -> str:
    return f"**Cannot do that:** {message}"


@dataclass
class TrainTab:
    model: gr.Dropdown
    order: gr.Radio
    hidden: gr.Number
    lr: gr.Number
    batch: gr.Number
    budget_kind: gr.Radio
    budget: gr.Number
    ticket: gr.Number              # hidden: the press this run answers (see Session.press)
    train_btn: gr.Button
    stop_btn: gr.Button
    status: gr.Markdown
    download: gr.DownloadButton
    loss: gr.LinePlot
    accuracy: gr.LinePlot
    activations: gr.Image
    hidden_img: gr.Image
    beliefs: gr.HTML
    final: gr.Markdown
    confusion: gr.Plot
    mistakes: gr.Gallery

    def settings_inputs(self) -> list:
        """The fields :func:`train` reads, in its order."""
        return [self.model, self.order, self.hidden, self.lr, self.batch, self.budget_kind, self.budget]


@dataclass
class TrainOutputs:
    """What one update of a run changes on the page; a field left as ``gr.skip()`` stays as it is.
    ``build_demo`` wires the components of these names, in this order."""

    state: Any = field(default_factory=gr.skip)
    status: Any = field(default_factory=gr.skip)
    loss: Any = field(default_factory=gr.skip)
    accuracy: Any = field(default_factory=gr.skip)
    activations: Any = field(default_factory=gr.skip)
    hidden_img: Any = field(default_factory=gr.skip)
    beliefs: Any = field(default_factory=gr.skip)
    final: Any = field(default_factory=gr.skip)
    confusion: Any = field(default_factory=gr.skip)
    mistakes: Any = field(default_factory=gr.skip)
    try_order: Any = field(default_factory=gr.skip)
    download: Any = field(default_factory=gr.skip)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def values(self) -> tuple:
        return tuple(getattr(self, name) for name in self.names())


def train_tab(device: str) -> TrainTab:
    """Lay out the Train tab (inside a ``gr.Tab``): settings and buttons left, what the run shows right."""
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            model = gr.Dropdown(list(MODEL_CHOICES), value="CNN-LSTM", label="model")
            order = gr.Radio(list(QUADRANT_ORDERS), value="1234", label="quadrant order",
                             info="1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right")
            hidden = NumberField(128, label="hidden size", precision=0, info="LSTM units (ConvLSTM: hidden channels)")
            lr = NumberField(4e-3, label="learning rate", step=1e-3)
            batch = NumberField(128, label="batch size", precision=0)
            with gr.Row():
                budget_kind = gr.Radio(["seconds", "epochs"], value="seconds", label="train for")
                budget = NumberField(15, label="how long", min_width=80)
            ticket = NumberField(None, label="ticket", precision=0, visible=False)
            gr.Markdown(f"**device:** {device_label(device)}", elem_id="device")
            with gr.Row():
                train_btn = gr.Button("Train", variant="primary", elem_id="train-button")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-button")
            status = gr.Markdown("Press **Train** to start.", elem_id="status")
            # Filled with a checkpoint (safetensors + JSON config) when a run ends.
            download = gr.DownloadButton("Download model", value=None, interactive=False, size="sm",
                                         elem_id="download-model")
        with gr.Column(scale=3):
            loss, accuracy, activations, hidden_img, beliefs = _run_views()
    with gr.Row():
        final = gr.Markdown("", elem_id="final")
    with gr.Row():
        confusion = gr.Plot(label="confusion matrix", format="png", elem_id="confusion")
        mistakes = gr.Gallery(label="misclassified test digits (true -> predicted)", columns=6, height=300,
                              format="png", elem_id="mistakes", elem_classes="pixelated")
    return TrainTab(model, order, hidden, lr, batch, budget_kind, budget, ticket, train_btn, stop_btn, status,
                    download, loss, accuracy, activations, hidden_img, beliefs, final, confusion, mistakes)


def _run_views():
    """The curves, the probe digit's activations, its beliefs and the hidden state."""
    with gr.Row():
        loss = gr.LinePlot(None, x="epoch", y="loss", color="series", label="loss", color_map=COLORS,
                           elem_id="loss-plot")
        accuracy = gr.LinePlot(None, x="epoch", y="accuracy", color="series", label="accuracy",
                               color_map=COLORS, elem_id="accuracy-plot")
    gr.Markdown(f"**Per-frame activations** of test digit #{PROBE_INDEX}: one row per frame, in the order "
                "the model reads them; the frame, then the first 8 feature maps of conv block 1 (7x7), "
                "then of block 2 (3x3), each map on its own colour scale across the four frames.")
    activations = gr.Image(label="per-frame activations", show_label=False, type="numpy", format="png",
                           interactive=False, elem_id="activations", elem_classes="pixelated", height=190,
                           buttons=["download", "fullscreen"])
    with gr.Row():
        with gr.Column(scale=3):
            gr.Markdown("**Belief after each step**: the class probabilities after seeing 1, 2, 3, then 4 quadrants.")
            beliefs = gr.HTML(beliefs_html(None), elem_id="beliefs")
        with gr.Column(scale=2):
            gr.Markdown("**Hidden state** after each step: a row per step, a column per unit "
                        "(blue -1, white 0, red +1).")
            hidden_img = gr.Image(label="hidden state", show_label=False, type="numpy", format="png",
                                  interactive=False, elem_id="hidden", elem_classes="pixelated", height=120,
                                  buttons=["download", "fullscreen"])
    return loss, accuracy, activations, hidden_img, beliefs


# --- the functions behind the buttons --------------------------------------------------------------


def _session_id(request) -> str:
    return getattr(request, "session_hash", None) or ""


def press(session: Session | None) -> int | None:
    """Train pressed: a ticket for the run it asks for (so that Stop can cancel it while it waits)."""
    return session.press() if isinstance(session, Session) else None


def train(registry: SessionRegistry, session: Session | None, model_label: str, order: str, hidden, lr,
          batch_size, budget_kind: str, budget, options: dict | None = None, ticket=None,
          request: gr.Request = None):
    """The Train button: a generator of page updates while a fresh model trains. ``build_demo``
    binds ``registry`` (the page's sessions) as a method's ``self`` is bound.

    Bad settings give one message and no run; so does a second run asked for while this tab's
    run goes on (its refusal is its own: the run goes on untouched). ``options`` are the app's
    own settings, not the learner's: ``device`` and ``final_test`` (:class:`TrainSettings`).
    """
    session = registry.attach(session, _session_id(request))
    if session.closed:                         # queued by a tab that has been closed since
        return
    if not session.admit(ticket if isinstance(ticket, int) else None):
        yield TrainOutputs(session, status="Stopped before it started: this run was cancelled while it "
                                           "waited in the queue.").values()
        return
    try:
        settings = TrainSettings.from_form(model_label, order, hidden, lr, batch_size, budget_kind, budget,
                                           **(options or {}))
    except ValueError as e:
        yield TrainOutputs(session, status=warn(str(e))).values()
        return
    registry.make_room(session)
    try:
        for u in train_updates(session, settings):
            yield _update(session, u).values()
    except SessionBusy as e:                   # another run of this tab holds it: say so, touch nothing
        yield TrainOutputs(session, status=warn(str(e))).values()
    except Exception as e:                     # the page gets a message; the log gets the traceback
        log.exception("training failed in session %s", session.id)
        yield TrainOutputs(session, status=failure_message(e),
                           download=gr.DownloadButton(value=None, interactive=False)).values()


def _update(session: Session, u) -> TrainOutputs:
    out = TrainOutputs(session, status=u.status, loss=_curve(u.history, "loss"),
                       accuracy=_curve(u.history, "accuracy"), activations=_activation_image(u.probe),
                       hidden_img=_hidden_image(u.probe), beliefs=beliefs_html(u.probe.probs, u.order, u.probe_label))
    if u.kind == "start":
        out.final, out.confusion, out.mistakes, out.try_order = "", None, [], u.order
        out.download = gr.DownloadButton(value=None, interactive=False)
    if u.kind == "end":
        r = u.result
        out.final = (f"### Test accuracy: {r.test_acc:.2%}\n"
                     f"on {r.test_size:,} test digits; {r.epochs:.2f} epochs, {r.steps} steps in "
                     f"{r.train_seconds:.1f} s of training. Below: where the mistakes go, and "
                     f"{len(r.wrong_labels)} of them.")
        out.confusion = _confusion_figure(r.confusion)
        out.mistakes = gallery_items(r.wrong_images, r.wrong_labels, r.wrong_preds)
        out.download = _download_button(session)
    return out


def failure_message(error: BaseException, session: Session | None = None) -> str:
    """What a tab says when its run raised: what happened and what to do. (The run has already
    freed its model: a half-trained model is no use, and after an out-of-memory error the
    memory is wanted.)"""
    if is_out_of_memory(error):
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return ("**Out of memory:** this run needed more memory than the device had free (other tabs "
                "may be training at the same time). Try a smaller batch size or hidden size, or "
                "train again when other runs have ended. Nothing else was affected.")
    first = str(error).splitlines()[0] if str(error) else ""
    return (f"**Training failed:** {type(error).__name__}: {first}. "
            "This run's model was dropped; the other tabs go on training. Press Train to try again; "
            "if it fails again, tell whoever runs the server (its log has the details).")


def _download_button(session: Session):
    """The "download model" button, holding a checkpoint of the session's model, or disabled."""
    try:
        path = session.save()
    except Exception:                          # a download is a nicety: never fail a run over it
        log.exception("saving the model of session %s failed", session.id)
        return gr.DownloadButton(value=None, interactive=False)
    return gr.DownloadButton(f"Download model ({os.path.basename(path)})", value=path, interactive=True)


def _curve(history: list[dict], metric: str):
    """The curve's table, or None (an empty plot) before the first point. Never an empty table:
    the plot fixes its colours from the first table it gets, so that first table must already
    hold both series, train and test (a run's first update with points has both)."""
    frame = curve_frame(history, metric)
    return frame if len(frame) else None


def _activation_image(p):
    from ..viz import activation_mosaic

    return activation_mosaic(p)                # (180, 798, 3): 42-px cells, a row per frame


def _hidden_image(p):
    from ..viz import heatmap_image

    if p.hidden.numel() == 0:
        return None
    return heatmap_image(p.hidden, row_height=24)   # (T*24, ~640, 3): a row per step, a block per unit


def _confusion_figure(cm):
    from ..viz import plot_confusion

    return plot_confusion(cm)


def stop(session: Session | None) -> str:
    """The Stop button: training ends after the current step; the model so far is kept. Runs
    still waiting in the queue (pressed before this Stop) are cancelled before they start."""
    if session is None:
        return "Nothing is training in this tab."
    if session.running:
        session.stop.set()
        return "Stopping: training ends after the current step; then the model is scored on the test set."
    if session.cancel_waiting():
        return "Cancelled: the run waiting in the queue will not start."
    return "Nothing is training in this tab."


def model_changed(model_label: str):
    """Each model has its own default hidden size: 128 LSTM units, or 32 ConvLSTM channels."""
    return HIDDEN_FIELD[MODEL_CHOICES.get(model_label, "cnn_lstm")][1]


def budget_changed(budget_kind: str):
    return 1 if str(budget_kind).lower().startswith("epoch") else 15

"""The Train tab: its components (:class:`TrainTab`), and the functions behind Train and Stop.

The task selector offers MNIST quadrants (which digit, read a quarter at a time) or direction
(which way a digit slides): the quadrant order applies to the first only, and is hidden for
the second, whose belief view shows the answer appearing from the second frame on.

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
from .fields import ChoiceField, NumberField
from .session import Session, SessionBusy, SessionRegistry
from .settings import APP_TASKS, HIDDEN_FIELD, MODEL_CHOICES, PROBE_INDEX, TASK_CHOICES, TrainSettings
from .training import device_label, train_updates
from .views import activation_image, beliefs_html, curve_frame, gallery_items, step_accuracy_table

__all__ = ["admission", "budget_changed", "export_onnx", "failure_message", "model_changed", "onnx_cleared",
           "press", "run_controls", "run_view", "run_views", "RunOutputs", "RunTab", "stop", "stream_run",
           "task_changed", "train", "train_tab", "TrainOutputs", "TrainTab"]

log = logging.getLogger(__name__)
COLORS = {"train": "#3182bd", "test": "#e6550d"}


def warn(message: str) -> str:
    return f"**Cannot do that:** {message}"


# What the page says above the per-frame views, per task.
NOTES = {
    "quadrants": (
        f"**Per-frame activations** of test digit #{PROBE_INDEX}: one row per frame, in the order the model "
        "reads them; the frame, then the first 8 feature maps of conv block 1 (7x7), then of block 2 (3x3), "
        "each map on its own colour scale across the four frames.",
        "**Belief after each step**: the class probabilities after seeing 1, 2, 3, then 4 quadrants.",
        "misclassified test digits (true -> predicted)"),
    "direction": (
        f"**Per-frame activations** of test clip #{PROBE_INDEX}: one row per frame, in the order the model "
        "reads them; the 24x24 frame, then the first 8 feature maps of conv block 1 (12x12), then of block "
        "2 (6x6), each map on its own colour scale across the six frames.",
        "**Belief after each frame**: the probabilities of the 8 directions after seeing 1, 2, ..., 6 frames. "
        "One frame shows where the digit is, never where it goes: after frame 1 a trained model can only "
        "guess (1 in 8); from frame 2 on it has seen the motion.",
        "misclassified test clips, every frame at once (true -> predicted)"),
}
TASK_INFO = ("quadrants: which digit, read a quarter at a time; direction: which of 8 ways a digit "
             "slides (no single frame tells)")


@dataclass
class RunTab:
    """What every tab that trains has: its buttons and status, the model's download, the run's views."""

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


@dataclass
class TrainTab(RunTab):
    task: gr.Radio
    model: gr.Dropdown
    order: gr.Radio
    hidden: gr.Number
    lr: gr.Number
    batch: gr.Number
    budget_kind: gr.Radio
    budget: gr.Number
    activations_note: gr.Markdown
    beliefs_note: gr.Markdown
    onnx_btn: gr.Button
    onnx_download: gr.DownloadButton
    onnx_note: gr.Markdown

    def settings_inputs(self) -> list:
        """The fields :func:`train` reads, in its order (the task last: API calls made before the
        selector existed still train quadrants)."""
        return [self.model, self.order, self.hidden, self.lr, self.batch, self.budget_kind, self.budget,
                self.task]


@dataclass
class RunOutputs:
    """What one update of a run changes on the page; a field left as ``gr.skip()`` stays as it is.
    ``build_demo`` wires the components of these names, in this order (a tab adds its own last)."""

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

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def values(self) -> tuple:
        return tuple(getattr(self, name) for name in self.names())


@dataclass
class TrainOutputs(RunOutputs):
    """The Train tab's: the Try-it tab's quadrant order follows the run, then the model's download."""

    try_order: Any = field(default_factory=gr.skip)
    download: Any = field(default_factory=gr.skip)


def train_tab(device: str) -> TrainTab:
    """Lay out the Train tab (inside a ``gr.Tab``): settings and buttons left, what the run shows right."""
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            task = ChoiceField(list(TASK_CHOICES), value=TASK_CHOICES[0], label="task", info=TASK_INFO,
                               elem_id="task")
            model = gr.Dropdown(list(MODEL_CHOICES), value="CNN-LSTM", label="model")
            order = ChoiceField(list(QUADRANT_ORDERS), value="1234", label="quadrant order",
                                info="1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right", elem_id="order")
            hidden = NumberField(128, label="hidden size", precision=0, info="LSTM units (ConvLSTM: hidden channels)")
            lr = NumberField(4e-3, label="learning rate", step=1e-3)
            batch = NumberField(128, label="batch size", precision=0)
            with gr.Row():
                budget_kind = gr.Radio(["seconds", "epochs"], value="seconds", label="train for")
                budget = NumberField(15, label="how long", min_width=80)
            ticket, train_btn, stop_btn, status, download = run_controls(device, "Press **Train** to start.")
            # The same model as a one-step ONNX graph, made when asked (an export takes seconds).
            with gr.Row():
                onnx_btn = gr.Button("Export ONNX", size="sm", elem_id="export-onnx")
                onnx_download = gr.DownloadButton("Download ONNX", value=None, interactive=False, size="sm",
                                                  elem_id="download-onnx")
            onnx_note = gr.Markdown("", elem_id="onnx-note")
        with gr.Column(scale=3):
            loss, accuracy, activations, hidden_img, beliefs, activations_note, beliefs_note = run_views()
    with gr.Row():
        final = gr.Markdown("", elem_id="final")
    with gr.Row():
        confusion = gr.Plot(label="confusion matrix", format="png", elem_id="confusion")
        mistakes = gr.Gallery(label=NOTES["quadrants"][2], columns=6, height=300,
                              format="png", elem_id="mistakes", elem_classes="pixelated")
    return TrainTab(task=task, model=model, order=order, hidden=hidden, lr=lr, batch=batch,
                    budget_kind=budget_kind, budget=budget, ticket=ticket, train_btn=train_btn, stop_btn=stop_btn,
                    status=status, download=download, loss=loss, accuracy=accuracy, activations=activations,
                    hidden_img=hidden_img, beliefs=beliefs, final=final, confusion=confusion, mistakes=mistakes,
                    activations_note=activations_note, beliefs_note=beliefs_note, onnx_btn=onnx_btn,
                    onnx_download=onnx_download, onnx_note=onnx_note)


def run_controls(device: str, hint: str, prefix: str = ""):
    """The device, Train and Stop, the run's status (``hint`` before the first run) and the model's
    download, filled with a checkpoint (safetensors + JSON config) when a run ends. ``prefix``
    starts every ``elem_id``, as in :func:`run_views`."""
    ticket = NumberField(None, label="ticket", precision=0, visible=False)
    gr.Markdown(f"**device:** {device_label(device)}", elem_id=f"{prefix}device")
    with gr.Row():
        train_btn = gr.Button("Train", variant="primary", elem_id=f"{prefix}train-button")
        stop_btn = gr.Button("Stop", variant="stop", elem_id=f"{prefix}stop-button")
    status = gr.Markdown(hint, elem_id=f"{prefix}status")
    download = gr.DownloadButton("Download model", value=None, interactive=False, size="sm",
                                 elem_id=f"{prefix}download-model")
    return ticket, train_btn, stop_btn, status, download


def run_views(prefix: str = "", notes: tuple[str, str] = NOTES["quadrants"][:2], height: int = 190):
    """The curves, the probe example's activations, its beliefs and the hidden state. ``prefix``
    starts every ``elem_id`` (the clips tab has its own copy of these views on the same page)."""
    with gr.Row():
        loss = gr.LinePlot(None, x="epoch", y="loss", color="series", label="loss", color_map=COLORS,
                           elem_id=f"{prefix}loss-plot")
        accuracy = gr.LinePlot(None, x="epoch", y="accuracy", color="series", label="accuracy",
                               color_map=COLORS, elem_id=f"{prefix}accuracy-plot")
    activations_note = gr.Markdown(notes[0], elem_id=f"{prefix}activations-note")
    activations = gr.Image(label="per-frame activations", show_label=False, type="numpy", format="png",
                           interactive=False, elem_id=f"{prefix}activations", elem_classes="pixelated",
                           height=height, buttons=["download", "fullscreen"])
    with gr.Row():
        with gr.Column(scale=3):
            beliefs_note = gr.Markdown(notes[1], elem_id=f"{prefix}beliefs-note")
            beliefs = gr.HTML(beliefs_html(None), elem_id=f"{prefix}beliefs")
        with gr.Column(scale=2):
            gr.Markdown("**Hidden state** after each step: a row per step, a column per unit "
                        "(blue -1, white 0, red +1).")
            hidden_img = gr.Image(label="hidden state", show_label=False, type="numpy", format="png",
                                  interactive=False, elem_id=f"{prefix}hidden", elem_classes="pixelated", height=120,
                                  buttons=["download", "fullscreen"])
    return loss, accuracy, activations, hidden_img, beliefs, activations_note, beliefs_note


# --- the functions behind the buttons --------------------------------------------------------------


def _session_id(request) -> str:
    return getattr(request, "session_hash", None) or ""


def press(session: Session | None) -> int | None:
    """Train pressed: a ticket for the run it asks for (so that Stop can cancel it while it waits)."""
    return session.press() if isinstance(session, Session) else None


def train(registry: SessionRegistry, session: Session | None, model_label: str, order: str, hidden, lr,
          batch_size, budget_kind: str, budget, task: str = "quadrants", options: dict | None = None, ticket=None,
          request: gr.Request = None):
    """The Train button: a generator of page updates while a fresh model trains. ``build_demo``
    binds ``registry`` (the page's sessions) as a method's ``self`` is bound.

    Bad settings give one message and no run; so does a second run asked for while this tab's
    run goes on (its refusal is its own: the run goes on untouched). ``options`` are the app's
    own settings, not the learner's: ``device`` and ``final_test`` (:class:`TrainSettings`).
    """
    session = registry.attach(session, _session_id(request))
    refused = admission(session, ticket)
    if refused is not None:
        if refused:
            yield TrainOutputs(session, status=refused).values()
        return
    try:
        settings = TrainSettings.from_form(model_label, order, hidden, lr, batch_size, budget_kind, budget,
                                           task, **(options or {}))
    except ValueError as e:
        yield TrainOutputs(session, status=warn(str(e))).values()
        return
    yield from stream_run(registry, session, settings, TrainOutputs, _update)


def admission(session: Session, ticket) -> str | None:
    """Whether a queued press may run: None if so; "" (say nothing) if its tab has been closed since
    it was queued; the message if Stop cancelled it while it waited."""
    if session.closed:
        return ""
    if not session.admit(ticket if isinstance(ticket, int) else None):
        return "Stopped before it started: this run was cancelled while it waited in the queue."
    return None


def stream_run(registry: SessionRegistry, session: Session, settings, outputs, update, data=None):
    """Train ``session``'s fresh model (:func:`~.training.train_updates`) and yield each update as
    ``update(session, u)``, an ``outputs`` dataclass, made into values. A second run of the tab, or
    a run that raises, ends with its message in ``outputs``' status."""
    registry.make_room(session)
    try:
        for u in train_updates(session, settings, data=data):
            yield update(session, u).values()
    except SessionBusy as e:                   # another run of this tab holds it: say so, touch nothing
        yield outputs(session, status=warn(str(e))).values()
    except Exception as e:                     # the page gets a message; the log gets the traceback
        log.exception("training failed in session %s", session.id)
        yield outputs(session, status=failure_message(e),
                      download=gr.DownloadButton(value=None, interactive=False)).values()


def _update(session: Session, u) -> TrainOutputs:
    out = TrainOutputs(session, **run_view(session, u, APP_TASKS[u.task]))
    if u.kind == "start" and u.order is not None:  # Try it reads quadrants in the run's order
        out.try_order = u.order
    return out


def run_view(session: Session, u, task) -> dict:
    """What one update of a run shows, by the names of :class:`TrainOutputs` (the clips tab has
    the same views): ``task`` (an :class:`~.settings.AppTask`) names the classes."""
    out = dict(status=u.status, loss=_curve(u.history, "loss"), accuracy=_curve(u.history, "accuracy"),
               activations=activation_image(u.probe), hidden_img=_hidden_image(u.probe),
               beliefs=beliefs_html(u.probe.probs, u.order, u.probe_label, task.classes, task.short))
    if u.kind == "start":
        out.update(final="", confusion=None, mistakes=[], download=gr.DownloadButton(value=None, interactive=False))
    if u.kind == "end":
        r = u.result
        out["final"] = (f"### Test accuracy: {r.test_acc:.2%}\n"
                        f"on {r.test_size:,} test {task.noun}; {r.epochs:.2f} epochs, {r.steps} steps in "
                        f"{r.train_seconds:.1f} s of training. After each frame:\n\n"
                        f"{step_accuracy_table(r.step_accuracy, 1 / task.num_classes)}\n\n"
                        f"Below: where the mistakes go, and {len(r.wrong_labels)} of them.")
        out["confusion"] = _confusion_figure(r.confusion, task.short or task.classes)
        out["mistakes"] = gallery_items(r.wrong_images, r.wrong_labels, r.wrong_preds, task.classes)
        out["download"] = _download_button(session)
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


def export_onnx(session: Session | None):
    """The "Export ONNX" button: this tab's model as a one-step ONNX graph (inputs the frame, then
    the state; outputs the logits, then the new state), offered by "Download ONNX" beside the
    checkpoint. Refused, with the reason, while the tab trains or before it has a model."""
    off = gr.DownloadButton("Download ONNX", value=None, interactive=False)
    if not isinstance(session, Session) or session.model is None:
        return warn("there is no model in this tab to export: train one first."), off
    try:
        path = session.export_onnx()
    except SessionBusy:
        return warn("this tab is training: export its model when the run has ended."), gr.skip()
    except ValueError as e:                    # freed between the check and the export, or refused
        return warn(str(e)), off
    except Exception as e:                     # an export is a nicety: a message, never a broken page
        log.exception("exporting the model of session %s failed", session.id)
        return warn(f"the export failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})."), off
    name = os.path.basename(path)
    return (f"ONNX file ready: `{name}`. It runs with onnxruntime alone, one frame per call, the "
            "state fed back in (docs/deploy.md)."), gr.DownloadButton(f"Download ONNX ({name})", value=path,
                                                                       interactive=True)


def onnx_cleared():
    """Train pressed: the ONNX file offered so far is the previous model's; withdraw it."""
    return "", gr.DownloadButton("Download ONNX", value=None, interactive=False)


def _curve(history: list[dict], metric: str):
    """The curve's table, or None (an empty plot) before the first point. Never an empty table:
    the plot fixes its colours from the first table it gets, so that first table must already
    hold both series, train and test (a run's first update with points has both)."""
    frame = curve_frame(history, metric)
    return frame if len(frame) else None


def _hidden_image(p):
    from ..viz import heatmap_image

    if p.hidden.numel() == 0:
        return None
    return heatmap_image(p.hidden, row_height=24)   # (T*24, ~640, 3): a row per step, a block per unit


def _confusion_figure(cm, names=None):
    from ..viz import plot_confusion

    total = int(cm.sum())
    title = None if names is None else f"accuracy {int(cm.trace()) / max(total, 1):.2%} on {total} clips"
    fig = plot_confusion(cm, title=title)
    if names is not None:                      # class names in place of their numbers
        names = [str(n).replace("$", r"\$") for n in names]   # a learner's folder name is no formula
        ax = fig.axes[0]
        slanted = max(map(len, names)) > 3     # words, not arrows: slanted so that they don't overlap
        ax.set_xticks(range(len(names)), names, rotation=45 if slanted else 0, ha="right" if slanted else "center")
        ax.set_yticks(range(len(names)), names)
    return fig


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


def task_changed(task: str):
    """The task selector: the quadrant order shows for quadrants only (and is 1234 otherwise, the
    one value a run off the quadrants accepts); the batch is the task's own default (the
    CLI's); the notes and the gallery's label say what the views show. Then the Try-it tab's
    task follows (the last value)."""
    if task not in APP_TASKS:
        return (gr.skip(),) * 6
    quadrants = task == "quadrants"
    activations, beliefs, mistakes = NOTES[task]
    order = gr.Radio(visible=True) if quadrants else gr.Radio(value=QUADRANT_ORDERS[0], visible=False)
    return order, APP_TASKS[task].batch_size, activations, beliefs, gr.Gallery(label=mistakes), task


def budget_changed(budget_kind: str):
    return 1 if str(budget_kind).lower().startswith("epoch") else 15

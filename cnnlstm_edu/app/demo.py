"""The Gradio app: train a CNN-LSTM live, try it on your own digit, break its shapes on purpose.

Laid out as gradio's own demos are: plain functions (one per button, each taking the values of
the page's fields and returning new ones), then :func:`build_demo`, which lays out the page and
wires the buttons to the functions, then the ``__main__`` guard. Importing this module builds
nothing and launches nothing; tests call the functions directly, or ``build_demo()`` and
``launch(..., prevent_thread_lock=True)`` on a free port.

The work itself happens in gradio-free modules: :mod:`.training` (sessions, the training run as
a stream of updates), :mod:`.tryit` (sketches, frame-by-frame beliefs), :mod:`.shape_lab`
(traces and the classic mistakes), :mod:`.views` (HTML and tables for the page).

Sessions: each browser tab gets a :class:`~.training.Session` in a ``gr.State`` (its own model,
run and stop switch). The tab's *unload* event (closed or reloaded) stops its run and drops its
model at once; gradio itself deletes the state an hour later.

Serving many tabs at once (a classroom, ``docs/classroom.md``) is bounded on purpose: at most
``max_runs`` trainings run at a time and the rest wait in a queue of ``max_queue`` places (then
"queue full"); at most ``max_models`` models stay in memory (the least recently used idle ones
are freed); each run's batch, hidden size and length are capped (:mod:`.training`); uploads are
capped at ``MAX_UPLOAD``. An exception in a run, a GPU out of memory included, ends that run
with a message in its own page; the other tabs train on.

    python app.py                      # http://127.0.0.1:7860
    python -m cnnlstm_edu.app --port 8000 --host 0.0.0.0 --max-runs 8
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import random
import sys
import tempfile
from pathlib import Path

# No telemetry: set before gradio is imported, because gradio reads it at import time.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from ..data import QUADRANT_ORDERS, quadrant_sequences  # noqa: E402
from ..shapes import is_out_of_memory  # noqa: E402
from .shape_lab import MISTAKES, break_it, shape_report  # noqa: E402
from .training import (MODEL_CHOICES, HIDDEN_FIELD, PROBE_INDEX, SESSIONS, Session,  # noqa: E402
                       TrainSettings, device_label, quadrant_data, release_memory, train_updates, warm_up)
from . import tryit  # noqa: E402
from .tryit import default_model, frames_strip, sketch_to_mnist, stream_beliefs  # noqa: E402
from .views import beliefs_html, curve_frame, digit_image, gallery_items  # noqa: E402

__all__ = ["build_demo", "launch", "main", "CSS", "THEME"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 7860
MAX_RUNS = 2        # trainings at once; on a 2-core CPU two runs already share the cores
MAX_QUEUE = 64      # events waiting for a place; more are refused at once ("queue full")
MAX_MODELS = 32     # models kept in memory across tabs; the least recently used idle ones go first
MAX_SESSIONS = 1000  # tabs whose state gradio keeps (its default, 10,000, holds a page copy each)
MAX_UPLOAD = "2mb"  # a 280x280 drawing is ~10 kB
# A small PNG can decode into a huge image (a "decompression bomb"): refuse beyond ~8M pixels.
Image.MAX_IMAGE_PIXELS = 4096 * 1024
CSS = """
.pixelated img { image-rendering: pixelated; }
#status { min-height: 3em; }
"""
THEME = gr.themes.Soft(primary_hue="orange", secondary_hue="blue")


def atomic_image_cache() -> None:
    """Make gradio write the images it caches atomically (idempotent).

    gradio names a cached image after the hash of its bytes and writes it in place: truncate, then
    write. Two tabs showing the same picture at the same moment (the same test digit among the
    mistakes, or the same untrained model's activations: every run starts from seed 0) write the
    same file, and a browser fetching it in between gets a truncated image ("peer closed
    connection without sending complete message body"). With 8 tabs training at once it happened
    in tests/test_classroom.py. Written under a temporary name and renamed into place, a reader
    sees a whole file, old or new, never half of one.
    """
    from gradio import processing_utils as pu

    if getattr(pu.save_pil_to_cache, "atomic", False) or not hasattr(pu, "encode_pil_to_bytes"):
        return

    def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
        data = pu.encode_pil_to_bytes(img, format)
        folder = Path(cache_dir) / pu.hash_bytes(data)
        folder.mkdir(exist_ok=True, parents=True)
        path = (folder / f"{name}.{format}").resolve()
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".partial-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return str(path)

    save_pil_to_cache.atomic = True
    pu.save_pil_to_cache = save_pil_to_cache


def _warn(message: str) -> str:
    return f"**Cannot do that:** {message}"


def _session_id(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or ""


# --- sessions ------------------------------------------------------------------------------------


def open_session(request: gr.Request = None) -> Session:
    """Page load: this tab's session, in its ``gr.State``."""
    return SESSIONS.attach(None, _session_id(request))


def close_session(request: gr.Request = None) -> None:
    """Tab closed or reloaded: stop its run, free its model, give the memory back."""
    if SESSIONS.close(_session_id(request)):
        release_memory()


def _state_deleted(session: Session | None) -> None:
    if isinstance(session, Session):
        session.close()


# --- Train tab ------------------------------------------------------------------------------------

# Outputs of train(), in order; the indices name them below.
_TRAIN_OUTPUTS = ["state", "status", "loss", "accuracy", "activations", "hidden", "beliefs",
                  "final", "confusion", "mistakes", "try_order", "download"]


def _train_outputs(session: Session, update, **values) -> tuple:
    """One tuple for the train event's outputs: the values given, gr.skip() for the rest."""
    out = {name: gr.skip() for name in _TRAIN_OUTPUTS}
    out["state"] = session
    out.update(values)
    return tuple(out[name] for name in _TRAIN_OUTPUTS)


def train(session: Session | None, model_label: str, order: str, hidden, lr, batch_size,
          budget_kind: str, budget, options: dict | None = None, request: gr.Request = None):
    """The Train button: a generator of page updates while a fresh model trains.

    Bad settings give one message and no run. The updates stream at most a few times a second
    (see :func:`~.training.train_updates`). ``options`` are the app's own settings, not the
    learner's: ``device`` and ``final_test`` (see :class:`~.training.TrainSettings`).
    """
    session = SESSIONS.attach(session, _session_id(request))
    if session.closed:                         # queued by a tab that has been closed since
        return
    if not session.start_ticket():
        yield _train_outputs(session, None, status="Stopped before it started: this run was cancelled "
                                                   "while it waited in the queue.")
        return
    try:
        settings = TrainSettings.from_form(model_label, order, hidden, lr, batch_size, budget_kind,
                                           budget, **(options or {}))
    except ValueError as e:
        yield _train_outputs(session, None, status=_warn(str(e)))
        return
    if session.running:
        yield _train_outputs(session, None, status=_warn("this tab is already training: press Stop first."))
        return
    SESSIONS.make_room(session)
    try:
        for u in train_updates(session, settings):
            values = dict(
                status=u.status,
                loss=_curve(u.history, "loss"),
                accuracy=_curve(u.history, "accuracy"),
                activations=_activation_image(u.probe),
                hidden=_hidden_image(u.probe),
                beliefs=beliefs_html(u.probe.probs, u.order, u.probe_label),
            )
            if u.kind == "start":
                values.update(final="", confusion=None, mistakes=[], try_order=u.order,
                              download=gr.DownloadButton(value=None, interactive=False))
            if u.kind == "end":
                r = u.result
                values.update(
                    final=(f"### Test accuracy: {r.test_acc:.2%}\n"
                           f"on {r.test_size:,} test digits; {r.epochs:.2f} epochs, {r.steps} steps in "
                           f"{r.train_seconds:.1f} s of training. Below: where the mistakes go, and "
                           f"{len(r.wrong_labels)} of them."),
                    confusion=_confusion_figure(r.confusion),
                    mistakes=gallery_items(r.wrong_images, r.wrong_labels, r.wrong_preds),
                    download=_download_button(session))
            yield _train_outputs(session, u, **values)
    except Exception as e:                     # the page gets a message; the log gets the traceback
        log.exception("training failed in session %s", session.id)
        yield _train_outputs(session, None, status=failure_message(e, session),
                             download=gr.DownloadButton(value=None, interactive=False))


def failure_message(error: BaseException, session: Session) -> str:
    """What a tab says when its run raised: what happened and what to do. Frees the run's model
    (a half-trained model is no use, and after an out-of-memory error the memory is wanted)."""
    session.free("its last run failed")
    if is_out_of_memory(error):
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return ("**Out of memory:** this run needed more memory than the device had free (other tabs "
                "may be training at the same time). Try a smaller batch size or hidden size, or "
                "train again when other runs have ended. Nothing else was affected.")
    return (f"**Training failed:** {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}. "
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


def queued(session: Session | None) -> None:
    """Train pressed: count a run as waiting (so that Stop can cancel it before it starts)."""
    if isinstance(session, Session):
        session.clicked()


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
    """The Stop button: training ends after the current step; the model so far is kept. A run
    still waiting in the queue is cancelled before it starts."""
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


# --- Try-it tab ----------------------------------------------------------------------------------


def _try(session: Session | None, image: torch.Tensor, order: str, label: int | None) -> tuple:
    """Read one (28, 28) digit in ``order``, one quadrant per step; returns the Try-it outputs."""
    if order not in QUADRANT_ORDERS:
        return _warn(f"choose a quadrant order ({', '.join(QUADRANT_ORDERS)})."), None, None, beliefs_html(None)
    model, settings = session.model_for_inference() if session is not None else (None, None)
    if model is None:
        model = default_model(order)
        why = (f"This tab's model was freed ({session.freed}): train again to use your own. "
               if session is not None and session.freed and session.freed != "the tab was closed"
               else "No model trained in this tab yet: ")
        source = (f"{why}{'a' if why.endswith(': ') else 'A'} stand-in CNN-LSTM, trained for "
                  f"{tryit.DEFAULT_MODEL_SECONDS:g} s on order {order}, reads it.")
    else:
        source = f"This tab's model ({settings.describe()}) reads it."
        if settings.order != order:
            source += (f" It was trained on quadrants in order {settings.order}, and now reads them in "
                       f"order {order}: expect it to be confused.")
    seq = quadrant_sequences(image.unsqueeze(0), order)[0]           # (T, 1, 14, 14)
    probs = stream_beliefs(model, seq)                                # (T, classes)
    guess = int(probs[-1].argmax())
    verdict = f"After all four quadrants it says **{guess}** ({float(probs[-1, guess]):.0%})"
    if label is not None:
        verdict += f"; the true digit is **{label}**."
    return (f"{verdict} {source}", digit_image(image.numpy(), 168), frames_strip(seq),
            beliefs_html(probs, order, label))


def try_sketch(session: Session | None, sketch, order: str) -> tuple:
    """Predict the drawing: made MNIST-like, cut into quadrants, fed one per step."""
    try:
        digit = sketch_to_mnist(sketch)
    except ValueError as e:
        return _warn(str(e)), None, None, beliefs_html(None)
    return _guarded(_try, session, torch.from_numpy(digit), order, None)


def _guarded(fn, *args) -> tuple:
    """Run a Try-it reading; an unexpected error is a message in this tab, not a broken page."""
    try:
        return fn(*args)
    except Exception as e:
        log.exception("try-it failed")
        note = "out of memory; try again in a moment" if is_out_of_memory(e) else f"{type(e).__name__}: {e}"
        return _warn(f"reading the digit failed ({note})."), None, None, beliefs_html(None)


def try_test_digit(session: Session | None, index, order: str) -> tuple:
    """Predict test digit number ``index`` (0-9999)."""
    try:
        i = int(float(index))
        if float(index) != i or not 0 <= i <= 9999:
            raise ValueError
    except (TypeError, ValueError):
        return _warn(f"the test digit number must be a whole number from 0 to 9999, got {index}."), \
            None, None, beliefs_html(None)
    data = quadrant_data(QUADRANT_ORDERS[0])
    return _guarded(_try, session, data.test_images[i], order, int(data.test_y[i]))


def try_random_digit(session: Session | None, order: str) -> tuple:
    i = random.randrange(10000)
    return (i,) + try_test_digit(session, i, order)


# --- Shapes tab ----------------------------------------------------------------------------------


def _md(text: str) -> str:
    """Plain text for a Markdown field: ``B*T`` and ``x_t`` stay as written, not emphasis."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_").replace("\n", "  \n")


def trace(model_label: str, B, T, C, H, W) -> tuple:
    """The Trace button: the table and the pipeline figure, or what went wrong and why."""
    try:
        report = shape_report(MODEL_CHOICES.get(model_label, model_label), B, T, C, H, W)
    except ValueError as e:
        return _warn(str(e)), "", None
    message = "The model ran: every module's input and output, axes named." if report.error is None else (
        f"**The forward pass failed.** PyTorch said: `{report.error}`\n\n**Diagnosis:** {_md(report.advice)}")
    table = report.trace._repr_html_() if report.trace is not None else ""
    figure = report.trace.plot() if report.trace is not None and len(report.trace) else None
    return message, table, figure


def break_model(key: str, model_label: str, B, T, C, H, W) -> tuple:
    """A "break it" button: run one classic mistake, show the code, PyTorch's error, the diagnosis."""
    try:
        run = break_it(key, MODEL_CHOICES.get(model_label, model_label), B, T, C, H, W)
    except ValueError as e:
        return "", _warn(str(e))
    mistake = MISTAKES[key]
    return run.code, (f"**{mistake.title}.** {mistake.story}\n\n**PyTorch says:** `{run.error}`\n\n"
                      f"**explain() says:** {_md(run.advice)}")


# --- the page ------------------------------------------------------------------------------------


def build_demo(device: str = "auto", max_runs: int = MAX_RUNS, final_test: int | None = None,
               max_queue: int = MAX_QUEUE, max_models: int = MAX_MODELS) -> gr.Blocks:
    """Lay out the three tabs and wire them to the functions above. Launches nothing.

    ``device``: where sessions train ("auto": CUDA when there is a GPU). ``max_runs``: trainings
    at once, across all tabs; more wait in the queue. ``max_queue``: events that may wait (more
    are refused). ``max_models``: models kept in memory across tabs (at least ``max_runs``).
    ``final_test``: score the end of each run on the first that many test digits instead of all
    10,000 (tests use it to stay quick).
    """
    for name, value in (("max_runs", max_runs), ("max_queue", max_queue), ("max_models", max_models)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    if max_models < max_runs:
        raise ValueError(f"max_models={max_models} must be at least max_runs={max_runs}: every run "
                         "holds a model, and a running model is never freed")
    SESSIONS.max_models = max_models
    atomic_image_cache()
    colors = {"train": "#3182bd", "test": "#e6550d"}
    with gr.Blocks(title="cnnlstm-edu: a CNN-LSTM, live", analytics_enabled=False,
                   delete_cache=(900, 3600)) as demo:
        # One Session per tab. time_to_live is a backstop for tabs whose unload never arrives.
        state = gr.State(None, time_to_live=6 * 3600, delete_callback=_state_deleted)
        options = gr.State({"device": device, "final_test": final_test})
        gr.Markdown("# A CNN-LSTM, live\nEach MNIST digit is cut into four 14x14 quadrants and read "
                    "as a 4-frame video: a CNN looks at one frame at a time, an LSTM (or a ConvLSTM) "
                    "puts the frames together, and a classifier says which digit it believes it is "
                    "after each frame.")
        with gr.Tabs():
            with gr.Tab("Train", id="train"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=260):
                        model_in = gr.Dropdown(list(MODEL_CHOICES), value="CNN-LSTM", label="model")
                        order_in = gr.Radio(list(QUADRANT_ORDERS), value="1234", label="quadrant order",
                                            info="1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right")
                        hidden_in = gr.Number(128, label="hidden size", precision=0,
                                              info="LSTM units (ConvLSTM: hidden channels)")
                        lr_in = gr.Number(4e-3, label="learning rate", step=1e-3)
                        batch_in = gr.Number(128, label="batch size", precision=0)
                        with gr.Row():
                            budget_kind_in = gr.Radio(["seconds", "epochs"], value="seconds", label="train for")
                            budget_in = gr.Number(15, label="how long", min_width=80)
                        gr.Markdown(f"**device:** {device_label(device)}", elem_id="device")
                        with gr.Row():
                            train_btn = gr.Button("Train", variant="primary", elem_id="train-button")
                            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-button")
                        status = gr.Markdown("Press **Train** to start.", elem_id="status")
                        # Filled with a checkpoint (safetensors + JSON config) when a run ends.
                        download = gr.DownloadButton("Download model", value=None, interactive=False,
                                                     size="sm", elem_id="download-model")
                    with gr.Column(scale=3):
                        with gr.Row():
                            loss_plot = gr.LinePlot(None, x="epoch", y="loss", color="series",
                                                    label="loss", color_map=colors, elem_id="loss-plot")
                            acc_plot = gr.LinePlot(None, x="epoch", y="accuracy",
                                                   color="series", label="accuracy", color_map=colors,
                                                   elem_id="accuracy-plot")
                        gr.Markdown(f"**Per-frame activations** of test digit #{PROBE_INDEX}: one row per "
                                    "frame, in the order the model reads them; the frame, then the first 8 "
                                    "feature maps of conv block 1 (7x7), then of block 2 (3x3), each map on "
                                    "its own colour scale across the four frames.")
                        activations = gr.Image(label="per-frame activations", show_label=False, type="numpy",
                                               format="png", interactive=False, elem_id="activations",
                                               elem_classes="pixelated", height=190,
                                               buttons=["download", "fullscreen"])
                        with gr.Row():
                            with gr.Column(scale=3):
                                gr.Markdown("**Belief after each step**: the class probabilities after "
                                            "seeing 1, 2, 3, then 4 quadrants.")
                                beliefs = gr.HTML(beliefs_html(None), elem_id="beliefs")
                            with gr.Column(scale=2):
                                gr.Markdown("**Hidden state** after each step: a row per step, a column "
                                            "per unit (blue -1, white 0, red +1).")
                                hidden_img = gr.Image(label="hidden state", show_label=False, type="numpy",
                                                      format="png", interactive=False, elem_id="hidden",
                                                      elem_classes="pixelated", height=120,
                                                      buttons=["download", "fullscreen"])
                with gr.Row():
                    final = gr.Markdown("", elem_id="final")
                with gr.Row():
                    confusion = gr.Plot(label="confusion matrix", format="png", elem_id="confusion")
                    mistakes = gr.Gallery(label="misclassified test digits (true -> predicted)", columns=6, height=300, format="png",
                                          elem_id="mistakes", elem_classes="pixelated")

            with gr.Tab("Try it", id="try"):
                with gr.Row():
                    with gr.Column():
                        sketch = gr.Sketchpad(label="draw a digit (pick the brush on the left first)", type="numpy", image_mode="RGBA",
                                              canvas_size=(280, 280), layers=False, transforms=(),
                                              brush=gr.Brush(colors=["#000000"], color_mode="fixed",
                                                             default_size=18))
                        try_order = gr.Radio(list(QUADRANT_ORDERS), value="1234", label="quadrant order",
                                             info="set to the order your model was trained on")
                        sketch_btn = gr.Button("Predict my drawing", variant="primary")
                        with gr.Row():
                            index_in = gr.Number(PROBE_INDEX, label="test digit number (0-9999)", precision=0)
                            digit_btn = gr.Button("Predict this test digit")
                            random_btn = gr.Button("Random test digit")
                    with gr.Column():
                        try_msg = gr.Markdown("Draw a digit, or pick one from the test set.", elem_id="try-message")
                        try_beliefs = gr.HTML(beliefs_html(None), elem_id="try-beliefs")
                        with gr.Row():
                            with gr.Column(scale=2, min_width=160):
                                gr.Markdown("**What the model gets**: 28x28, MNIST-style")
                                seen = gr.Image(label="what the model gets", show_label=False, type="numpy",
                                                format="png", interactive=False, elem_classes="pixelated",
                                                height=180, buttons=["download"], elem_id="try-digit")
                            with gr.Column(scale=3, min_width=240):
                                gr.Markdown("**The four frames**, in the order they are fed")
                                frames = gr.Image(label="the four frames", show_label=False, type="numpy",
                                                  format="png", interactive=False, elem_classes="pixelated",
                                                  buttons=["download"], elem_id="try-frames")

            with gr.Tab("Shapes", id="shapes"):
                gr.Markdown("Pick the size of a batch of clips `(B, T, C, H, W)` and a model: the model is "
                            "built for `C` channels and `H x H` frames and run once; every module's "
                            "shapes are listed, axes named. Then break it the classic ways.")
                with gr.Row():
                    dims = [gr.Number(v, label=name, precision=0, min_width=70)
                            for name, v in zip("BTCHW", (2, 4, 1, 14, 14))]
                    shape_model = gr.Dropdown(list(MODEL_CHOICES), value="CNN-LSTM", label="model")
                    trace_btn = gr.Button("Trace", variant="primary")
                trace_msg = gr.Markdown("", elem_id="trace-message")
                trace_table = gr.HTML("", elem_id="trace-table")
                pipeline = gr.Plot(label="pipeline", format="png", elem_id="pipeline")
                gr.Markdown("### Break it")
                with gr.Row():
                    break_btns = {key: gr.Button(m.title, size="sm") for key, m in MISTAKES.items()}
                broken_code = gr.Code(language="python", label="the broken code", interactive=False)
                diagnosis = gr.Markdown("", elem_id="diagnosis")

        # --- wiring ---
        demo.load(open_session, None, state, show_progress="hidden")
        demo.unload(close_session)
        train_outputs = [state, status, loss_plot, acc_plot, activations, hidden_img, beliefs, final,
                         confusion, mistakes, try_order, download]
        # Counted at once, outside the queue, so that Stop can cancel a run still waiting in it.
        train_btn.click(queued, state, None, api_name=False, concurrency_limit=None, show_progress="hidden")
        train_btn.click(train, [state, model_in, order_in, hidden_in, lr_in, batch_in, budget_kind_in,
                                budget_in, options], train_outputs, api_name="train",
                        concurrency_limit=max_runs, concurrency_id="train", show_progress="minimal")
        # Stop must never wait in the queue behind the runs it is meant to stop.
        stop_btn.click(stop, state, status, api_name="stop", concurrency_limit=None, show_progress="hidden")
        model_in.change(model_changed, model_in, hidden_in, api_name=False, show_progress="hidden")
        budget_kind_in.change(budget_changed, budget_kind_in, budget_in, api_name=False, show_progress="hidden")

        try_outputs = [try_msg, seen, frames, try_beliefs]
        sketch_btn.click(try_sketch, [state, sketch, try_order], try_outputs, api_name="try_sketch")
        digit_btn.click(try_test_digit, [state, index_in, try_order], try_outputs, api_name="try_digit")
        random_btn.click(try_random_digit, [state, try_order], [index_in] + try_outputs, api_name=False)

        trace_btn.click(trace, [shape_model] + dims, [trace_msg, trace_table, pipeline], api_name="trace")
        for key, btn in break_btns.items():
            btn.click(functools.partial(break_model, key), [shape_model] + dims, [broken_code, diagnosis],
                      api_name=f"break_{key}")
    # Everything but training (a trace, a Try-it reading) takes well under a second: 4 at once.
    demo.queue(default_concurrency_limit=4, max_size=max_queue)
    return demo


def launch(demo: gr.Blocks | None = None, host: str = "127.0.0.1", port: int | None = None,
           share: bool = False, **kwargs):
    """Serve ``demo`` (a fresh :func:`build_demo` by default) with the app's theme and CSS.

    Binds ``host`` (loopback by default); ``port`` defaults to ``$GRADIO_SERVER_PORT`` or 7860;
    no public link unless ``share=True``. Safe defaults for a shared server: uploads up to
    ``MAX_UPLOAD``, ``MAX_SESSIONS`` tabs' state kept, no server-side rendering process, no
    monitoring page, no analytics. Extra keyword arguments go to ``Blocks.launch``
    (``prevent_thread_lock=True`` returns at once, for tests).
    """
    demo = demo or build_demo()
    if port is None:
        port = int(os.environ.get("GRADIO_SERVER_PORT", DEFAULT_PORT))
    options = dict(max_file_size=MAX_UPLOAD, state_session_capacity=MAX_SESSIONS, ssr_mode=False,
                   enable_monitoring=False, show_error=False)
    options.update(kwargs)
    demo.launch(server_name=host, server_port=port, share=share, theme=THEME, css=CSS, **options)
    return demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python app.py", description="Serve the cnnlstm-edu Gradio app.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to bind (default $GRADIO_SERVER_NAME or 127.0.0.1: this machine "
                             "only; 0.0.0.0: the network)")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port (default $GRADIO_SERVER_PORT or {DEFAULT_PORT})")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--max-runs", type=int, default=MAX_RUNS,
                        help=f"trainings at once, across tabs; more wait in the queue (default {MAX_RUNS})")
    parser.add_argument("--max-queue", type=int, default=MAX_QUEUE,
                        help=f"events that may wait in the queue; more are refused (default {MAX_QUEUE})")
    parser.add_argument("--max-models", type=int, default=None,
                        help=f"models kept in memory across tabs (default {MAX_MODELS}, or --max-runs if "
                             "larger); the least recently used idle ones are freed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        demo = build_demo(device=args.device, max_runs=args.max_runs, max_queue=args.max_queue,
                          max_models=args.max_models or max(MAX_MODELS, args.max_runs))
        device_label(args.device)                    # a bad --device fails here, in one line
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # Load MNIST, cut it into quadrants and take one training step now, while the server starts,
    # so that the first click on Train shows its first curve point within a second or two.
    import threading

    threading.Thread(target=warm_up, kwargs={"device": args.device}, daemon=True).start()
    launch(demo, host=args.host, port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())

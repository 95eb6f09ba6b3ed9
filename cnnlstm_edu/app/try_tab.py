"""The Try-it tab: its components (:class:`TryTab`), and reading a drawing, a test digit or a test clip.

The tab's own model reads the example one frame per step (:func:`~.tryit.stream_beliefs`): a
digit one quadrant at a time, or a direction clip one frame at a time. A tab without a model
for the task gets a stand-in trained once per process (:func:`~.tryit.default_model`).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import gradio as gr
import torch

from ..checks import check_number
from ..data import QUADRANT_ORDERS, quadrant_sequences
from ..shapes import is_out_of_memory
from . import tryit
from .fields import ChoiceField, DrawingPad, NumberField
from .session import Session
from .settings import APP_TASKS, PROBE_INDEX, TASK_CHOICES
from .train_tab import TASK_INFO
from .train_tab import warn as _warn
from .training import task_data
from .tryit import default_model, frames_strip, sketch_to_mnist, stream_beliefs
from .views import beliefs_html, clip_trail, digit_image

__all__ = ["TryTab", "try_random_digit", "try_sketch", "try_tab", "try_task_changed", "try_test_digit"]

log = logging.getLogger(__name__)

# What the page calls a test example, and what it says above the two pictures, per task.
LABELS = {
    "quadrants": ("test digit number (0-9999)", "Predict this test digit", "Random test digit",
                  "**What the model gets**: 28x28, MNIST-style", "**The four frames**, in the order they are fed"),
    "direction": ("test clip number (0-1999)", "Predict this test clip", "Random test clip",
                  "**The clip**, every frame at once (early frames faint)",
                  "**The six frames**, in the order they are fed"),
}


@dataclass
class TryTab:
    sketch: gr.Sketchpad
    order: gr.Radio
    sketch_btn: gr.Button
    index: gr.Number
    digit_btn: gr.Button
    random_btn: gr.Button
    message: gr.Markdown
    beliefs: gr.HTML
    seen: gr.Image
    frames: gr.Image
    task: gr.Radio
    seen_note: gr.Markdown
    frames_note: gr.Markdown

    def outputs(self) -> list:
        """What every reading fills, in the order the functions below return it."""
        return [self.message, self.seen, self.frames, self.beliefs]


def try_tab() -> TryTab:
    """Lay out the Try-it tab (inside a ``gr.Tab``): the pad and the choices left, the reading right."""
    with gr.Row():
        with gr.Column():
            task = ChoiceField(list(TASK_CHOICES), value=TASK_CHOICES[0], label="task", info=TASK_INFO,
                               elem_id="try-task")
            # No change/input listener on the pad: it then sends its drawing through /upload,
            # never through the blob route that the server closes (guard.py).
            sketch = DrawingPad(label="draw a digit (pick the brush on the left first)", type="numpy",
                                image_mode="RGBA", canvas_size=(280, 280), layers=False, transforms=(),
                                brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=18),
                                elem_id="sketch")
            order = ChoiceField(list(QUADRANT_ORDERS), value="1234", label="quadrant order",
                                info="set to the order your model was trained on")
            sketch_btn = gr.Button("Predict my drawing", variant="primary", elem_id="sketch-button")
            with gr.Row():
                index = NumberField(PROBE_INDEX, label=LABELS["quadrants"][0], precision=0, elem_id="try-index")
                digit_btn = gr.Button(LABELS["quadrants"][1], elem_id="try-digit-button")
                random_btn = gr.Button(LABELS["quadrants"][2])
        with gr.Column():
            message = gr.Markdown("Draw a digit, or pick one from the test set.", elem_id="try-message")
            beliefs = gr.HTML(beliefs_html(None), elem_id="try-beliefs")
            with gr.Row():
                with gr.Column(scale=2, min_width=160):
                    seen_note = gr.Markdown(LABELS["quadrants"][3])
                    seen = gr.Image(label="what the model gets", show_label=False, type="numpy", format="png",
                                    interactive=False, elem_classes="pixelated", height=180,
                                    buttons=["download"], elem_id="try-digit")
                with gr.Column(scale=3, min_width=240):
                    frames_note = gr.Markdown(LABELS["quadrants"][4])
                    frames = gr.Image(label="the frames", show_label=False, type="numpy", format="png",
                                      interactive=False, elem_classes="pixelated", buttons=["download"],
                                      elem_id="try-frames")
    return TryTab(sketch, order, sketch_btn, index, digit_btn, random_btn, message, beliefs, seen, frames,
                  task, seen_note, frames_note)


def try_task_changed(task: str):
    """The task selector: quadrants read a drawing or a test digit in a quadrant order; direction
    plays a test clip (no order, no drawing)."""
    if task not in APP_TASKS:
        return (gr.skip(),) * 7
    quadrants = task == "quadrants"
    index, digit, rand, seen, frames = LABELS[task]
    return (gr.Radio(visible=quadrants), gr.Button(interactive=quadrants), gr.Number(label=index),
            gr.Button(digit), gr.Button(rand), seen, frames)


def _model_for(session: Session | None, task: str, order: str):
    """The model that reads the example, and a sentence saying whose it is."""
    model, settings = session.model_for_inference() if session is not None else (None, None)
    other = model is not None and settings.task != task
    if model is not None and not other:
        source = f"This tab's model ({settings.describe()}) reads it."
        if task == "quadrants" and settings.order != order:
            source += (f" It was trained on quadrants in order {settings.order}, and now reads them in "
                       f"order {order}: expect it to be confused.")
        return model, source
    what = f"order {order}" if task == "quadrants" else f"{task} clips"
    model = default_model(order, task=task)
    if other:
        why = f"This tab's model was trained on {settings.task}, not {task}: "
    elif session is not None and session.freed and session.freed != "the tab was closed":
        why = f"This tab's model was freed ({session.freed}): train again to use your own. "
    else:
        why = "No model trained in this tab yet: "
    return model, (f"{why}{'a' if why.endswith(': ') else 'A'} stand-in CNN-LSTM, trained for "
                   f"{tryit.stand_in_seconds(task):g} s on {what}, reads it.")


def _try(session: Session | None, image: torch.Tensor, order: str, label: int | None) -> tuple:
    """Read one (28, 28) digit in ``order``, one quadrant per step; returns the Try-it outputs."""
    if order not in QUADRANT_ORDERS:
        return _warn(f"choose a quadrant order ({', '.join(QUADRANT_ORDERS)})."), None, None, beliefs_html(None)
    model, source = _model_for(session, "quadrants", order)
    seq = quadrant_sequences(image.unsqueeze(0), order)[0]           # (T, 1, 14, 14)
    probs = stream_beliefs(model, seq)                                # (T, classes)
    guess = int(probs[-1].argmax())
    verdict = f"After all four quadrants it says **{guess}** ({float(probs[-1, guess]):.0%})"
    if label is not None:
        verdict += f"; the true digit is **{label}**."
    return (f"{verdict} {source}", digit_image(image.numpy(), 168), frames_strip(seq),
            beliefs_html(probs, order, label))


def _try_clip(session: Session | None, task: str, clip: torch.Tensor, label: int) -> tuple:
    """Play one clip (T, 1, H, W) to the model, one frame per step; returns the Try-it outputs."""
    model, source = _model_for(session, task, QUADRANT_ORDERS[0])
    info = APP_TASKS[task]
    probs = stream_beliefs(model, clip)                               # (T, classes)
    T = probs.shape[0]
    guess, first = int(probs[-1].argmax()), int(probs[0].argmax())
    verdict = (f"After all {T} frames it says **{info.short[guess]} {info.class_name(guess)}** "
               f"({float(probs[-1, guess]):.0%}); the clip moves **{info.short[label]} {info.class_name(label)}**. "
               f"After frame 1 alone it leaned to {info.class_name(first)} ({float(probs[0, first]):.0%}; "
               f"chance {1 / info.num_classes:.1%}): one frame shows where the digit is, not where it goes.")
    return (f"{verdict} {source}", clip_trail(clip, 168), frames_strip(clip),
            beliefs_html(probs, None, label, info.classes, info.short))


def try_sketch(session: Session | None, sketch, order: str, task: str = "quadrants") -> tuple:
    """Predict the drawing: made MNIST-like, cut into quadrants, fed one per step."""
    if task != "quadrants":
        return (_warn(f"a drawing is read as quadrants; the {task} task plays test clips: pick a test clip "
                      "number, or set the task to quadrants."), None, None, beliefs_html(None))
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
        return _warn(f"reading the example failed ({note})."), None, None, beliefs_html(None)


def _check_task(task) -> str | None:
    if isinstance(task, str) and task in APP_TASKS:
        return None
    return _warn(f"task must be one of {', '.join(TASK_CHOICES)}; got {task!r}.")


def try_test_digit(session: Session | None, index, order: str, task: str = "quadrants") -> tuple:
    """Predict test digit number ``index`` (0-9999), or play test clip ``index`` (direction: 0-1999)."""
    refused = _check_task(task)
    if refused:
        return refused, None, None, beliefs_html(None)
    info = APP_TASKS[task]
    what = "test digit number" if task == "quadrants" else "test clip number"
    try:
        i = check_number(index, what, integer=True, low=0, high=info.test_size - 1, whole_floats=True)
    except ValueError as e:
        return _warn(str(e)), None, None, beliefs_html(None)
    if task == "quadrants":
        data = task_data("quadrants", QUADRANT_ORDERS[0])
        return _guarded(_try, session, data.test_images[i], order, int(data.test_y[i]))
    data = task_data(task)
    return _guarded(_try_clip, session, task, data.test_x[i], int(data.test_y[i]))


def try_random_digit(session: Session | None, order: str, task: str = "quadrants") -> tuple:
    refused = _check_task(task)
    if refused:
        return (gr.skip(), refused, None, None, beliefs_html(None))
    i = random.randrange(APP_TASKS[task].test_size)
    return (i,) + try_test_digit(session, i, order, task)

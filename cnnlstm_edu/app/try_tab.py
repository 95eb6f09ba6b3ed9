"""The Try-it tab: its components (:class:`TryTab`), and reading a drawing or a test digit.

The tab's own model reads the digit one quadrant per step (:func:`~.tryit.stream_beliefs`); a
tab without one gets a stand-in trained once per process (:func:`~.tryit.default_model`).
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
from .fields import DrawingPad, NumberField
from .session import Session
from .settings import PROBE_INDEX
from .train_tab import warn as _warn
from .training import quadrant_data
from .tryit import default_model, frames_strip, sketch_to_mnist, stream_beliefs
from .views import beliefs_html, digit_image

__all__ = ["TryTab", "try_random_digit", "try_sketch", "try_tab", "try_test_digit"]

log = logging.getLogger(__name__)


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

    def outputs(self) -> list:
        """What every reading fills, in the order the functions below return it."""
        return [self.message, self.seen, self.frames, self.beliefs]


def try_tab() -> TryTab:
    """Lay out the Try-it tab (inside a ``gr.Tab``): the pad and the choices left, the reading right."""
    with gr.Row():
        with gr.Column():
            # No change/input listener on the pad: it then sends its drawing through /upload,
            # never through the blob route that the server closes (guard.py).
            sketch = DrawingPad(label="draw a digit (pick the brush on the left first)", type="numpy",
                                image_mode="RGBA", canvas_size=(280, 280), layers=False, transforms=(),
                                brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=18),
                                elem_id="sketch")
            order = gr.Radio(list(QUADRANT_ORDERS), value="1234", label="quadrant order",
                             info="set to the order your model was trained on")
            sketch_btn = gr.Button("Predict my drawing", variant="primary", elem_id="sketch-button")
            with gr.Row():
                index = NumberField(PROBE_INDEX, label="test digit number (0-9999)", precision=0)
                digit_btn = gr.Button("Predict this test digit")
                random_btn = gr.Button("Random test digit")
        with gr.Column():
            message = gr.Markdown("Draw a digit, or pick one from the test set.", elem_id="try-message")
            beliefs = gr.HTML(beliefs_html(None), elem_id="try-beliefs")
            with gr.Row():
                with gr.Column(scale=2, min_width=160):
                    gr.Markdown("**What the model gets**: 28x28, MNIST-style")
                    seen = gr.Image(label="what the model gets", show_label=False, type="numpy", format="png",
                                    interactive=False, elem_classes="pixelated", height=180,
                                    buttons=["download"], elem_id="try-digit")
                with gr.Column(scale=3, min_width=240):
                    gr.Markdown("**The four frames**, in the order they are fed")
                    frames = gr.Image(label="the four frames", show_label=False, type="numpy", format="png",
                                      interactive=False, elem_classes="pixelated", buttons=["download"],
                                      elem_id="try-frames")
    return TryTab(sketch, order, sketch_btn, index, digit_btn, random_btn, message, beliefs, seen, frames)


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
        i = check_number(index, "test digit number", integer=True, low=0, high=9999, whole_floats=True)
    except ValueError as e:
        return _warn(str(e)), None, None, beliefs_html(None)
    data = quadrant_data(QUADRANT_ORDERS[0])
    return _guarded(_try, session, data.test_images[i], order, int(data.test_y[i]))


def try_random_digit(session: Session | None, order: str) -> tuple:
    i = random.randrange(10000)
    return (i,) + try_test_digit(session, i, order)

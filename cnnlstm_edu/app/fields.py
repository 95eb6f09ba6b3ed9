"""The page's input fields, checked as they arrive: a wrong value names the field and what it takes.

A browser sends what the page lets a person type; any other client can send anything. gradio's
own ``Number`` and ``Sketchpad`` fail on a string, a list, a 10000x10000 PNG or a text file
with an exception that the page shows as a bare "Error" (errors are hidden from clients on a
shared server), and its ``Radio`` answers a value it does not offer with a message that names
neither the field nor its meaning. These are gradio's own components whose preprocessing checks
first and raises ``gr.Error``, whose message gradio does show: "hidden size must be a finite
number, got 'abc'.", "task must be one of quadrants, direction; got 'spirals'."
"""

from __future__ import annotations

import types
import warnings

import gradio as gr
from PIL import Image, UnidentifiedImageError

from ..checks import check_number
from .tryit import MAX_SKETCH_PIXELS

__all__ = ["ChoiceField", "DrawingPad", "NumberField"]


def NumberField(*args, **kwargs) -> gr.Number:
    """A ``gr.Number`` whose value must be a finite number (an int where ``precision=0``); the
    range is checked where the value is used (:class:`~.settings.TrainSettings`).

    Not a subclass: gradio writes a ``.pyi`` file beside the module of any component subclass
    when the class is created, and importing must change nothing.
    """
    field = gr.Number(*args, **kwargs)
    field.preprocess = types.MethodType(_number_preprocess, field)
    return field


def _number_preprocess(field: gr.Number, payload):
    if payload is None:
        return None
    name = field.label or "number field"
    try:
        check_number(payload, name, integer=field.precision == 0, whole_floats=True)
    except ValueError as e:
        raise gr.Error(str(e), title=f"Wrong {name}") from None
    return gr.Number.preprocess(field, payload)


def ChoiceField(*args, **kwargs) -> gr.Radio:
    """A ``gr.Radio`` that refuses a value it does not offer with a message naming the field
    and its choices (sent by a client other than the page: the page offers only the choices)."""
    field = gr.Radio(*args, **kwargs)
    field.preprocess = types.MethodType(_choice_preprocess, field)
    return field


def _choice_preprocess(field: gr.Radio, payload):
    name = field.label or "choice"
    offered = [value for _, value in field.choices]
    if payload is not None and not any(type(payload) is type(v) and payload == v for v in offered):
        got = repr(payload) if len(repr(payload)) <= 60 else repr(payload)[:57] + "..."
        raise gr.Error(f"{name} must be one of {', '.join(map(str, offered))}; got {got}.",
                       title=f"Wrong {name}")
    return gr.Radio.preprocess(field, payload)


def DrawingPad(*args, **kwargs) -> gr.Sketchpad:
    """A ``gr.Sketchpad`` that refuses, with a message, what is not an image of a sensible size.

    The size is read from the file's header before anything is decoded: a small PNG can hold
    a huge image (a "decompression bomb").
    """
    pad = gr.Sketchpad(*args, **kwargs)
    pad.preprocess = types.MethodType(_drawing_preprocess, pad)
    return pad


def _drawing_preprocess(pad: gr.Sketchpad, payload):
    if payload is not None and payload.id is None:
        for entry in [payload.background, payload.composite, *payload.layers]:
            if entry is not None:
                _check_image(entry.path)
    return gr.Sketchpad.preprocess(pad, payload)


def _check_image(path: str) -> None:
    limit = MAX_SKETCH_PIXELS
    accepts = f"a PNG or JPEG image of at most {limit:,} pixels (the pad draws 280x280)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise gr.Error(f"drawing: must be {accepts}; this one has too many pixels.", title="Wrong drawing") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise gr.Error(f"drawing: must be {accepts}; this file is not an image.", title="Wrong drawing") from None
    if width * height > limit:
        raise gr.Error(f"drawing: must be {accepts}; this one is {width}x{height} = {width * height:,} pixels.",
                       title="Wrong drawing")

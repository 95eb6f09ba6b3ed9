"""The Shapes tab: its components (:class:`ShapesTab`), a trace for any size, and "break it".

The work is :mod:`.shape_lab`'s; here it becomes a message, a table and a figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from .fields import NumberField
from .settings import MODEL_CHOICES
from .shape_lab import MISTAKES, break_it, shape_report
from .train_tab import warn as _warn

__all__ = ["ShapesTab", "break_model", "shapes_tab", "trace"]


@dataclass
class ShapesTab:
    dims: list                      # the five sizes B, T, C, H, W
    model: gr.Dropdown
    trace_btn: gr.Button
    message: gr.Markdown
    table: gr.HTML
    pipeline: gr.Plot
    break_btns: dict                # mistake key -> its button
    code: gr.Code
    diagnosis: gr.Markdown

    def inputs(self) -> list:
        return [self.model, *self.dims]


def shapes_tab() -> ShapesTab:
    """Lay out the Shapes tab (inside a ``gr.Tab``): sizes and model, the trace, then the mistakes."""
    gr.Markdown("Pick the size of a batch of clips `(B, T, C, H, W)` and a model: the model is built for "
                "`C` channels and `H x H` frames and run once; every module's shapes are listed, axes "
                "named. Then break it the classic ways.")
    with gr.Row():
        dims = [NumberField(v, label=name, precision=0, min_width=70) for name, v in zip("BTCHW", (2, 4, 1, 14, 14))]
        model = gr.Dropdown(list(MODEL_CHOICES), value="CNN-LSTM", label="model")
        trace_btn = gr.Button("Trace", variant="primary")
    message = gr.Markdown("", elem_id="trace-message")
    table = gr.HTML("", elem_id="trace-table")
    pipeline = gr.Plot(label="pipeline", format="png", elem_id="pipeline")
    gr.Markdown("### Break it")
    with gr.Row():
        break_btns = {key: gr.Button(m.title, size="sm") for key, m in MISTAKES.items()}
    code = gr.Code(language="python", label="the broken code", interactive=False)
    diagnosis = gr.Markdown("", elem_id="diagnosis")
    return ShapesTab(dims, model, trace_btn, message, table, pipeline, break_btns, code, diagnosis)


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

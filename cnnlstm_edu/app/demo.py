"""The Gradio app: train a CNN-LSTM live, try it on your own digit, break its shapes on purpose.

Laid out as gradio's own demos are: plain functions, then :func:`build_demo`, which lays out the
page and wires the buttons to the functions. Each tab is one function that builds its
components and returns them as a dataclass (:mod:`.train_tab`, :mod:`.try_tab`,
:mod:`.shapes_tab`, with the functions behind their buttons); the lists of outputs are built
from those fields. Importing builds nothing and launches nothing; serving is :mod:`.server`.
The fourth tab, "Your clips" (:mod:`.clips_tab`), trains on a learner's own zip of class folders.

Sessions: each browser tab gets a :class:`~.session.Session` in a ``gr.State`` (its own model,
run and stop switch), registered in the :class:`~.session.SessionRegistry` that ``build_demo``
creates (``demo.sessions``). The tab's *unload* event (closed or reloaded) stops its run and
drops its model at once; gradio itself deletes the state later.

Serving many tabs at once (a classroom, ``docs/classroom.md``) is bounded on purpose: at most
``max_runs`` trainings run at a time and the rest wait in a queue of ``max_queue`` places (then
"queue full"); at most ``max_models`` models stay in memory (the least recently used idle ones
are freed); each run's batch, hidden size, steps and time are capped (:mod:`.settings`);
uploads and URLs are guarded (:mod:`.guard`). An exception in a run, a GPU out of memory
included, ends that run with a message in its own page; the other tabs train on.
"""

from __future__ import annotations

import functools
import types

import gradio as gr

from ..checks import check_number
from .clip_store import ClipStore
from .clips_tab import ClipsServer, clips_tab, wire_clips
from .session import Session, SessionRegistry, release_memory
from .shapes_tab import break_model, shapes_tab, trace
from .train_tab import (TrainOutputs, budget_changed, export_onnx, model_changed, onnx_cleared, press, stop,
                        task_changed, train, train_tab)
from .try_tab import try_random_digit, try_sketch, try_tab, try_task_changed, try_test_digit

__all__ = ["MAX_MODELS", "MAX_QUEUE", "MAX_RUNS", "build_demo"]

MAX_RUNS = 2        # trainings at once; on a 2-core CPU two runs already share the cores
MAX_QUEUE = 64      # events waiting for a place; more are refused at once ("queue full")
MAX_MODELS = 32     # models kept in memory across tabs; the least recently used idle ones go first
INTRO = ("# A CNN-LSTM, live\nEach MNIST digit is cut into four 14x14 quadrants and read as a 4-frame "
         "video: a CNN looks at one frame at a time, an LSTM (or a ConvLSTM) puts the frames together, "
         "and a classifier says which digit it believes it is after each frame. Or pick the *direction* "
         "task: a digit slides one of 8 ways across six frames, and no single frame can tell which.")


def _session_id(request) -> str:
    return getattr(request, "session_hash", None) or ""


def open_session(registry: SessionRegistry, request: gr.Request = None) -> Session:
    """Page load: this tab's session, in its ``gr.State``."""
    return registry.attach(None, _session_id(request))


def close_session(registry: SessionRegistry, request: gr.Request = None) -> None:
    """Tab closed or reloaded: stop its run, free its model, give the memory back."""
    if registry.close(_session_id(request)):
        release_memory()


def bind(fn, registry: SessionRegistry):
    """``fn`` with ``registry`` as its first argument, bound the way a method is: unlike a
    ``functools.partial``, gradio still sees its other parameters' types (``gr.Request``)."""
    return types.MethodType(fn, registry)


def _state_deleted(session: Session | None) -> None:
    if isinstance(session, Session):
        session.close()


def _check_limits(max_runs, max_queue, max_models) -> None:
    for name, value in (("max_runs", max_runs), ("max_queue", max_queue), ("max_models", max_models)):
        check_number(value, name, integer=True, low=1)
    if max_models < max_runs:
        raise ValueError(f"max_models={max_models} must be at least max_runs={max_runs}: every run "
                         "holds a model, and a running model is never freed")


def build_demo(device: str = "auto", max_runs: int = MAX_RUNS, final_test: int | None = None,
               max_queue: int = MAX_QUEUE, max_models: int = MAX_MODELS,
               registry: SessionRegistry | None = None) -> gr.Blocks:
    """Lay out the four tabs and wire them to their functions. Launches nothing.

    ``device``: where sessions train ("auto": CUDA when there is a GPU). ``max_runs``: trainings
    at once, across all tabs; more wait in the queue. ``max_queue``: events that may wait (more
    are refused). ``max_models``: models kept in memory across tabs (at least ``max_runs``).
    ``final_test``: score the end of each run on the first that many test digits instead of all
    10,000 (tests use it to stay quick). The sessions' registry is ``registry`` or a new one,
    and stays reachable as ``demo.sessions``; the uploaded clips' store as ``demo.clip_store``.
    """
    _check_limits(max_runs, max_queue, max_models)
    registry = registry or SessionRegistry()
    registry.max_models = max_models
    clip_store = ClipStore()             # the uploaded clips of every tab, within its disk and memory caps
    with gr.Blocks(title="cnnlstm-edu: a CNN-LSTM, live", analytics_enabled=False,
                   delete_cache=(900, 3600)) as demo:
        # One Session per tab. time_to_live is a backstop for tabs whose unload never arrives.
        state = gr.State(None, time_to_live=6 * 3600, delete_callback=_state_deleted)
        options = gr.State({"device": device, "final_test": final_test})
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Train", id="train"):
                training = train_tab(device)
            with gr.Tab("Try it", id="try"):
                trying = try_tab()
            with gr.Tab("Shapes", id="shapes"):
                shapes = shapes_tab()
            with gr.Tab("Your clips", id="clips"):
                clipping = clips_tab(device)
        demo.load(bind(open_session, registry), None, state, api_name=False,
                  show_progress="hidden")
        demo.unload(bind(close_session, registry))
        _wire_train(training, trying, state, options, registry, max_runs)
        _wire_try(trying, state)
        _wire_shapes(shapes)
        wire_clips(clipping, state, options, ClipsServer(registry, clip_store), max_runs)
    # Everything but training (a trace, a Try-it reading) takes well under a second: 4 at once.
    demo.queue(default_concurrency_limit=4, max_size=max_queue)
    demo.sessions = registry
    demo.clip_store = clip_store
    return demo


def _wire_train(tab, trying, state, options, registry: SessionRegistry, max_runs: int) -> None:
    components = {"state": state, "try_order": trying.order, **vars(tab)}
    outputs = [components[name] for name in TrainOutputs.names()]
    # The ticket is taken at once, outside the queue, so that Stop can cancel a run still waiting
    # in it; then the run. "multiple": a press during a run is sent, and answered, never dropped.
    pressed = tab.train_btn.click(press, state, tab.ticket, api_name=False, concurrency_limit=None,
                                  show_progress="hidden", trigger_mode="multiple")
    pressed.then(bind(train, registry), [state, *tab.settings_inputs(), options, tab.ticket],
                 outputs, api_name="train", concurrency_limit=max_runs, concurrency_id="train",
                 show_progress="minimal", trigger_mode="multiple")
    pressed.then(onnx_cleared, None, [tab.onnx_note, tab.onnx_download], api_name=False, concurrency_limit=None,
                 show_progress="hidden")
    # An export takes seconds of CPU: it shares the trainings' places ("train"), so runs and
    # exports together never exceed max_runs.
    tab.onnx_btn.click(export_onnx, state, [tab.onnx_note, tab.onnx_download], api_name="export_onnx",
                       concurrency_limit=max_runs, concurrency_id="train", show_progress="minimal")
    # Stop must never wait in the queue behind the runs it is meant to stop.
    tab.stop_btn.click(stop, state, tab.status, api_name="stop", concurrency_limit=None, show_progress="hidden")
    tab.model.change(model_changed, tab.model, tab.hidden, api_name=False, show_progress="hidden")
    tab.budget_kind.change(budget_changed, tab.budget_kind, tab.budget, api_name=False, show_progress="hidden")
    # The task sets what the form offers and what the notes say; the Try-it tab's task follows it.
    tab.task.change(task_changed, tab.task, [tab.order, tab.batch, tab.activations_note, tab.beliefs_note,
                                             tab.mistakes, trying.task], api_name=False, show_progress="hidden",
                    queue=False)                 # at once, not behind runs: Train may be pressed next


def _wire_try(tab, state) -> None:
    outputs = tab.outputs()
    # The task comes last in each reading's inputs: API calls made before it existed read quadrants.
    tab.sketch_btn.click(try_sketch, [state, tab.sketch, tab.order, tab.task], outputs, api_name="try_sketch")
    tab.digit_btn.click(try_test_digit, [state, tab.index, tab.order, tab.task], outputs, api_name="try_digit")
    tab.random_btn.click(try_random_digit, [state, tab.order, tab.task], [tab.index, *outputs], api_name=False)
    tab.task.change(try_task_changed, tab.task, [tab.order, tab.sketch_btn, tab.index, tab.digit_btn,
                                                 tab.random_btn, tab.seen_note, tab.frames_note],
                    api_name=False, show_progress="hidden", queue=False)


def _wire_shapes(tab) -> None:
    tab.trace_btn.click(trace, tab.inputs(), [tab.message, tab.table, tab.pipeline], api_name="trace")
    for key, btn in tab.break_btns.items():
        btn.click(functools.partial(break_model, key), tab.inputs(), [tab.code, tab.diagnosis],
                  api_name=f"break_{key}")

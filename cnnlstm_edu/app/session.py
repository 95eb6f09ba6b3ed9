"""One browser tab's model and run (:class:`Session`), and the registry of a server's sessions.

A ``Session`` is a context manager that owns its run lock: ``with session:`` is this tab's one
training run, and a second ``with`` while the first holds it raises :class:`SessionBusy`
at once, touching nothing of the first run. Each session's checkpoint (the "download model"
file), and the ONNX file exported from it on request, live in a folder named after the
server's process; :meth:`SessionRegistry.close_all`
removes them when the server stops and :func:`remove_stale_checkpoints` removes those of a
server that was killed when the next one starts.

>>> registry = SessionRegistry(max_models=2)
>>> tab = registry.attach(None, "tab-1")
>>> with tab:
...     tab.running
True
>>> with tab:
...     with tab:
...         pass
Traceback (most recent call last):
    ...
cnnlstm_edu.app.session.SessionBusy: this tab is already training: its run goes on; press Stop first to start another.
"""

from __future__ import annotations

import copy
import ctypes
import gc
import os
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import save_checkpoint
from .settings import HIDDEN_FIELD, TrainSettings

__all__ = ["Session", "SessionBusy", "SessionRegistry", "checkpoint_root", "release_memory",
           "remove_own_checkpoints", "remove_stale_checkpoints"]

_PREFIX = "cnnlstm-edu-ckpt-"


class SessionBusy(RuntimeError):
    """A second run asked for while this tab's run holds the session."""


def checkpoint_root() -> Path:
    """Where sessions keep their checkpoints: the temp folder (``$TMPDIR``)."""
    return Path(tempfile.gettempdir())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_own_checkpoints(root: Path | None = None) -> None:
    """At exit: remove every checkpoint folder of this process (its tabs that never closed)."""
    for folder in (root or checkpoint_root()).glob(f"{_PREFIX}{os.getpid()}-*"):
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale_checkpoints(root: Path | None = None) -> list[Path]:
    """Remove the checkpoint folders of servers that are no longer running; returns them.

    A folder is named ``cnnlstm-edu-ckpt-<pid>-<random>``: a folder whose process is gone was
    left by a server that was killed before it could clean up.
    """
    removed = []
    for folder in (root or checkpoint_root()).glob(f"{_PREFIX}*"):
        pid = folder.name[len(_PREFIX):].split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class Session:
    """One browser tab's model and run. Lives in a ``gr.State``; :meth:`close` frees it."""

    def __init__(self, session_id: str = "") -> None:
        self.id = session_id
        self.stop = threading.Event()      # set by the Stop button; fit() checks it every step
        self._run_lock = threading.Lock()  # one run at a time per session: `with session:`
        self.model: nn.Module | None = None
        self.settings: TrainSettings | None = None
        self.history: list[dict] = []      # curve points: epoch, series ("train"/"test"), loss, accuracy
        self.result = None                 # the last run's RunResult
        self.closed = False
        self.freed = ""                    # why the model was let go, if it was (said in Try it)
        self.last_used = time.monotonic()  # the registry frees the least recently used idle models
        # Train presses: each gets a ticket when pressed; Stop pressed while no run holds the
        # session cancels the tickets handed out so far that have not started.
        self._tickets = threading.Lock()
        self.issued = self.cancel_upto = 0
        self.waiting: set[int] = set()
        self._checkpoint_dir: str | None = None
        self.checkpoint: str | None = None  # the file the "download model" button offers, if any
        self.onnx: str | None = None        # the model's one-step ONNX graph, once exported
        self.clips = None                   # the learner's uploaded clips (a clip_store.ClipUpload), if any

    def __enter__(self) -> Session:
        if not self._run_lock.acquire(blocking=False):
            raise SessionBusy("this tab is already training: its run goes on; press Stop first to start another.")
        self.last_used = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self._run_lock.release()

    @property
    def running(self) -> bool:
        return self._run_lock.locked()

    def model_for_inference(self) -> tuple[nn.Module | None, TrainSettings | None]:
        """The session's model for the Try-it tab. While a run goes on, a copy: switching the live
        model to eval mode from another thread would change the training step under it."""
        self.last_used = time.monotonic()
        model = self.model
        if model is not None and self.running:
            model = copy.deepcopy(model)
        return model, self.settings

    def press(self) -> int:
        """Train was pressed: a ticket for the run it asks for."""
        with self._tickets:
            self.issued += 1
            self.waiting.add(self.issued)
            return self.issued

    def admit(self, ticket: int | None) -> bool:
        """A run is leaving the queue: False if Stop cancelled its ticket while it waited.
        A run without a ticket (an API call) is never cancelled this way."""
        with self._tickets:
            if ticket is None:
                return True
            self.waiting.discard(ticket)
            return ticket > self.cancel_upto

    def cancel_waiting(self) -> bool:
        """Stop pressed with nothing running: cancel the presses waiting in the queue, if any.
        Only tickets handed out before this Stop: a later press always gets its run."""
        with self._tickets:
            if not self.waiting:
                return False
            self.cancel_upto = self.issued
            self.waiting.clear()
            return True

    def free(self, reason: str = "") -> None:
        """Let the model (and the run's curves and results) go; keep the session."""
        self.model, self.history, self.result = None, [], None
        self.freed = reason
        self._remove_checkpoint()

    def close(self) -> None:
        """The tab is gone: stop its run and let its model go, and its uploaded clips (their folder)."""
        self.closed = True
        self.stop.set()
        self.free("the tab was closed")
        clips, self.clips = self.clips, None
        if clips is not None:
            clips.remove("the tab was closed")

    def save(self) -> str:
        """Write the model to a fresh checkpoint file named after it; returns its path.

        One file per session at a time (the previous one is deleted), in a folder of its own
        that :meth:`close` removes: the server's disk stays bounded like its memory.
        """
        model, settings, result = self.model, self.settings, self.result
        if model is None or settings is None:
            raise ValueError("There is no model in this tab to save: train one first.")
        self._remove_checkpoint()
        self._checkpoint_dir = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=checkpoint_root())
        acc = f"-acc{result.test_acc * 100:.1f}" if result is not None else ""
        hidden = settings.hidden or HIDDEN_FIELD[settings.model][1]
        what = f"order{settings.order}" if settings.task == "quadrants" else settings.task
        name = f"{settings.model}-h{hidden}-{what}{acc}.safetensors"
        self.checkpoint = str(save_checkpoint(model, f"{self._checkpoint_dir}/{name}", **self._facts()))
        return self.checkpoint

    def _facts(self) -> dict:
        """What the files keep about the run, as the CLI's checkpoints do: the quadrant order, or
        the task (and its class names); the settings and the score."""
        settings, result = self.settings, self.result
        if settings.task == "quadrants":
            info = {"order": settings.order, "settings": settings.describe()}
        else:
            info = {"task": settings.task, "classes": list(settings.app_task.classes or ()),
                    "settings": settings.describe()}
        if hasattr(settings, "checkpoint_facts"):       # a learner's clips: how to read a new one
            info.update(settings.checkpoint_facts())
        if result is not None:
            info.update(test_acc=result.test_acc, test_size=result.test_size, steps=result.steps)
        return info

    def export_onnx(self) -> str:
        """Write the model's one-step ONNX graph (:func:`cnnlstm_edu.deploy.export_onnx`) beside
        its checkpoint; returns its path.

        An export takes seconds of CPU (``torch.export`` traces the step: about 9 s on a 2-core
        CPU), so it runs when asked, never after every run, and holds the run lock: not while
        this tab trains (:class:`SessionBusy`), never two at once. The file is the checkpoint's
        companion: the same folder, the same name, gone with it (a new run, ``free``, ``close``).
        """
        from ..deploy import export_onnx

        with self:
            model, settings = self.model, self.settings
            if model is None or settings is None:
                raise ValueError("There is no model in this tab to export: train one first.")
            if self.onnx is not None and Path(self.onnx).exists():
                return self.onnx                           # this model's file is already there
            checkpoint = self.checkpoint if self.checkpoint and Path(self.checkpoint).exists() else self.save()
            if next(model.parameters()).device.type != "cpu":
                model = copy.deepcopy(model).cpu()         # the exporter traces on the CPU
            task = settings.app_task
            names = list(task.classes) if task.classes else [str(k) for k in range(task.num_classes)]
            path = export_onnx(model, Path(checkpoint).with_suffix(".onnx"), class_names=names, info=self._facts())
            self.onnx = str(path)
            return self.onnx

    def _remove_checkpoint(self) -> None:
        folder, self._checkpoint_dir, self.checkpoint, self.onnx = self._checkpoint_dir, None, None, None
        if folder:
            shutil.rmtree(folder, ignore_errors=True)

    def __repr__(self) -> str:
        return f"Session({self.id!r}, model={'yes' if self.model is not None else 'none'}, running={self.running})"


class SessionRegistry:
    """Sessions by gradio session hash, so a tab's *unload* event can find its session and free it.

    Weak references: the ``gr.State`` owns the session; when gradio drops the state, the entry goes.
    ``max_models`` bounds the models kept in memory at once: :meth:`make_room` frees the least
    recently used *idle* ones (never a running one) before a new run starts.
    """

    def __init__(self, max_models: int = 32) -> None:
        self._sessions: weakref.WeakValueDictionary[str, Session] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        self.max_models = max_models

    def make_room(self, session: Session) -> list[Session]:
        """Before ``session`` trains: free idle models until it fits under ``max_models``."""
        with self._lock:
            session.last_used = time.monotonic()
            others = [s for s in self._sessions.values() if s is not session and s.model is not None]
            idle = sorted((s for s in others if not s.running), key=lambda s: s.last_used)
            freed = idle[:max(0, len(others) + 1 - self.max_models)]
        for s in freed:
            s.free(f"the server keeps {self.max_models} models at once and this tab's was the "
                   "least recently used")
        return freed

    def attach(self, session: Session | None, session_id: str) -> Session:
        """The session of ``session_id``: ``session`` itself when given, else a new one; registered."""
        with self._lock:
            if session is None:
                session = self._sessions.get(session_id) or Session(session_id)
            session.id = session.id or session_id
            self._sessions[session_id] = session
            return session

    def close(self, session_id: str) -> bool:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        session.close()
        return True

    def close_all(self) -> None:
        """The server stops: every session is closed, its run stopped, its checkpoint removed."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.close()

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def __len__(self) -> int:
        return len(self._sessions)


def release_memory() -> None:
    """Hand the memory of freed models back to the system, after a tab closes.

    Dropping a model frees its tensors inside the process, but glibc keeps freed blocks in
    per-thread arenas (every run trains in its own server thread), so the server's resident size
    would stay at its peak. ``malloc_trim`` returns what it can (measured: about 140 of the
    500 MB that 6 finished runs had added); it is glibc's, so elsewhere this only collects.
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass

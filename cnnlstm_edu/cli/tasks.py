"""The tasks ``train --task`` knows: their data, the model settings they need, who may run them.

- ``quadrants`` (the default): an MNIST digit read as its four 14x14 quadrants, a 4-step
  sequence; the label is the digit. A CNN on the whole digit (``whole_image``) does as well.
- ``direction``: a digit slides one of 8 ways on a 24x24 canvas that wraps around; the label is
  the direction. No single frame tells it, and order-blind pooling can't tell which way along
  an axis (issue 15, :func:`cnnlstm_edu.data.direction`).
- ``first_digit``: two digits one after the other; the label is the first. Memory.
- ``track``: follow one of two bouncing digits from its box in the first frame (Re3); the
  ``tracker`` model only.

The data of the new tasks is fixed (seed 0 for the training clips, 1 for the test clips, drawn
from MNIST's training and test digits respectively), so ``--seed`` changes the training run
and nothing else, as in ``benchmarks/baselines.py``.

>>> check_task("tracker", "direction")
Traceback (most recent call last):
ValueError: --model tracker follows a box through a clip: it needs --task track, not --task direction
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CURRICULA", "TASKS", "Task", "check_task", "curriculum_for", "load_task"]


@dataclass(frozen=True)
class Task:
    name: str
    what: str                          # one line, for --help
    num_classes: int | None            # the classes of a classification task; None for track
    frame_size: int                    # H = W of its frames: the models are built for it


TASKS = {task.name: task for task in (
    Task("quadrants", "an MNIST digit as its 4 quadrants, label the digit", 10, 14),
    Task("direction", "a digit sliding one of 8 ways, label the direction", 8, 24),
    Task("first_digit", "two digits one after the other, label the first", 10, 28),
    Task("track", "follow a digit's box from the first frame (tracker only)", None, 64),
)}


# Per task, what a bare --curriculum means (the fields of train.Curriculum); the other tasks start
# at unroll 1 with Curriculum's defaults. track: Re3's start, 2 frames at 11/2 times the batch,
# and a plateau test made for the 300 s budget (about 600 steps on a quiet 2-core CPU, far fewer
# on a busy one). With Curriculum's defaults (a 400-clip held-out loss every 50 steps, two checks
# without a 1 % gain) the unroll never grew in 300 s: here a 200-clip loss every 10 steps that
# once fails to gain 5 % counts as a plateau.
CURRICULA = {"track": {"start_unroll": 2, "check_every": 10, "patience": 1, "min_delta": 0.05,
                       "val_size": 200}}


def curriculum_for(task: str, start: int = 0):
    """The ``train.Curriculum`` that ``--curriculum START`` asks for on ``task``; 0 (a bare
    ``--curriculum``) starts where the task's own curriculum does.

    >>> curriculum_for("track")
    Curriculum(start_unroll=2, patience=1, min_delta=0.05, check_every=10, val_size=200, sampling_step=0.25)
    >>> curriculum_for("direction", 3).start_unroll, curriculum_for("direction").check_every
    (3, 50)
    """
    from ..train import Curriculum

    fields = {"start_unroll": 1, **CURRICULA.get(task, {})}
    return Curriculum(**{**fields, "start_unroll": start or fields["start_unroll"]})


_FEEDS_BACK = ("next_frame", "tracker")   # the models whose own output can be their next input


def check_task(model: str, task: str, sampling: str | None = None, order: str = "1234") -> None:
    """Refuse a model on a task it can't do, sampling for a model that feeds nothing back, and a
    quadrant order off the quadrants, before any data is made."""
    if task not in TASKS:
        raise ValueError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    if model == "whole_image" and task != "quadrants":
        raise ValueError(f"--model whole_image needs --task quadrants: it tiles the four quadrants back "
                         f"into the 28x28 digit, and --task {task} has no whole image. Its baselines "
                         "are frame_average, last_frame and conv3d")
    if model == "tracker" and task != "track":
        raise ValueError(f"--model tracker follows a box through a clip: it needs --task track, not --task {task}")
    if task == "track" and model != "tracker":
        raise ValueError(f"--task track asks for a box in every frame, and --model {model} gives one class "
                         "per clip: use --model tracker")
    if model == "next_frame" and task != "quadrants":
        raise ValueError(f"--model next_frame learns from its own data (Moving-MNIST videos), not "
                         f"--task {task}: leave --task out")
    if order != "1234" and (task != "quadrants" or model == "next_frame"):
        raise ValueError(f"--order {order} reorders MNIST quadrants; --model {model} on --task {task} "
                         "has none: leave --order out")
    if sampling is not None and model not in _FEEDS_BACK:
        flag = {"scheduled": "--scheduled-sampling", "teacher_forcing": "--teacher-forcing"}.get(sampling, sampling)
        raise ValueError(f"{flag} chooses what a model is fed of its own previous output ({', '.join(_FEEDS_BACK)}); "
                         f"--model {model} gives one label per clip, so there is nothing to feed back")


def load_task(task: str, order: str = "1234"):
    """``(train, test, objective)`` for ``task``; ``objective`` is None for a classifier.

    >>> (x, y), test, objective = load_task("direction")
    >>> tuple(x.shape), tuple(test[0].shape), objective       # (N, T, C, H, W)
    ((10000, 6, 1, 24, 24), (2000, 6, 1, 24, 24), None)
    """
    from .. import data

    if task == "quadrants":
        train_images, train_labels = data.load_mnist("train")
        test_images, test_labels = data.load_mnist("test")
        train = (data.quadrant_sequences(train_images, order), train_labels)   # (60000, 4, 1, 14, 14)
        test = (data.quadrant_sequences(test_images, order), test_labels)      # (10000, 4, 1, 14, 14)
        return train, test, None
    if task in ("direction", "first_digit"):
        generate = getattr(data, task)
        return generate(10_000, split="train", seed=0), generate(2_000, split="test", seed=1), None
    if task == "track":
        from ..models.tracker import TrackingObjective

        # Training clips of 11 frames (with --curriculum, windows of 2 steps first, then longer);
        # test clips of 41, so the drift can be measured 5, 10, 20 and 40 frames after the first box.
        train = data.track(2000, split="train", seq_len=11, seed=0)      # (2000, 11, 1, 64, 64), (2000, 11, 4)
        test = data.track(200, split="test", seq_len=41, seed=1)         # (200, 41, 1, 64, 64), (200, 41, 4)
        return train, test, TrackingObjective()
    raise ValueError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")

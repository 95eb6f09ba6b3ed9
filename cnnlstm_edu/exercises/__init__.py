"""Exercises that end each lesson: fill in a skeleton cell, then ``check`` it against hidden cases.

>>> from cnnlstm_edu.exercises import check, hint, names, solution
>>> names(1)
['fold_frames', 'unfold_features', 'fix_seed004']
>>> def fold_frames(x):
...     ...                                      # the skeleton, not filled in yet
>>> check("fold_frames", fold_frames)
… fold_frames: Not answered yet: it returned None: write the body, and don't forget the `return`.
>>> def fold_frames(x):
...     B, T, C, H, W = x.shape
...     return x.transpose(0, 1).reshape(B * T, C, H, W)   # time-major: a classic slip
>>> result = check("fold_frames", fold_frames)
>>> result.passed
False
>>> print(result.message)                                   # doctest: +ELLIPSIS
Your rows are ordered (T, B); fold_time's are (B, T): frame 1 of clip 0 is row 1, not row 2 ...
>>> check("fold_frames", lambda x: x.flatten(0, 1)).passed
True

In Jupyter a result shows as a coloured box (green, red, or amber for "not answered yet");
``hint(name)`` and ``solution(name)`` reveal a nudge and the model answer when asked.
"""

from __future__ import annotations

import difflib
from typing import Any

import torch

from . import cell, clips, convlstm, folding, quadrants, scale, seed004, streams, time_matters, tracking, tricks, views
from .core import Code, Exercise, NotAnswered, Result, Text, Wrong, one_thread

__all__ = ["EXERCISES", "Exercise", "Result", "check", "exercise", "hint", "names", "skeleton", "solution"]

#: Every exercise, in lesson order; ``names()`` groups them by lesson.
EXERCISES: tuple[Exercise, ...] = tuple(sorted(
    folding.EXERCISES + seed004.EXERCISES + views.EXERCISES + quadrants.EXERCISES + cell.EXERCISES
    + convlstm.EXERCISES + tricks.EXERCISES + streams.EXERCISES + time_matters.EXERCISES + tracking.EXERCISES
    + clips.EXERCISES + scale.EXERCISES,
    key=lambda e: e.lesson))


def names(lesson: int | None = None) -> dict[int, list[str]] | list[str]:
    """The exercises by lesson, ``{1: [...], 2: [...], ...}``; with ``lesson``, that lesson's list.

    >>> sorted(names())
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    >>> names(4)
    ['lstm_cell_step', 'convlstm_parameters']
    """
    by_lesson: dict[int, list[str]] = {}
    for e in EXERCISES:
        by_lesson.setdefault(e.lesson, []).append(e.name)
    if lesson is None:
        return by_lesson
    if lesson not in by_lesson:
        raise ValueError(f"There is no lesson {lesson!r} with exercises; the lessons are {sorted(by_lesson)}.")
    return by_lesson[lesson]


def exercise(name: str) -> Exercise:
    """The :class:`Exercise` called ``name``; a wrong name gets a message listing every name.

    >>> exercise("fold_frame")
    Traceback (most recent call last):
        ...
    ValueError: There is no exercise 'fold_frame'. Did you mean 'fold_frames'? The exercises are: ...
    """
    for e in EXERCISES:
        if e.name == name:
            return e
    listing = "; ".join(f"lesson {k}: {', '.join(v)}" for k, v in names().items())
    close = difflib.get_close_matches(str(name), [e.name for e in EXERCISES], n=1)
    guess = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"There is no exercise {name!r}.{guess} The exercises are: {listing}.")


def check(name: str, answer: Any) -> Result:
    """Run ``answer`` against the exercise's hidden cases and say, as a teacher would, how it did.

    Never raises because of the answer: an error in it is explained in the result, and an
    unfilled skeleton (``...``, ``None``, ``NotImplementedError``) is "not answered yet".

    >>> check("unfold_features", lambda y, T: y.reshape(y.shape[0] // T, T, -1)).passed
    True
    """
    ex = exercise(name)
    if answer is None or answer is Ellipsis:
        return Result(name, False, "Not answered yet: fill in the cell above, then run this check again.",
                      answered=False)
    try:
        # One thread: tiny tensors, where a second thread only waits (core.one_thread). A copy of
        # the global random stream: layers built by the check or the answer draw their initial
        # weights from it, and the learner's own stream is left exactly where it was.
        with one_thread(), torch.random.fork_rng(devices=[]):
            return Result(name, True, ex.grade(answer))
    except NotAnswered as why:
        return Result(name, False, f"Not answered yet: {why}.", answered=False)
    except Wrong as why:
        return Result(name, False, str(why))
    except Exception as error:  # an answer odd enough to trip the comparison itself: feedback, not a traceback
        return Result(name, False, f"Your answer gave the check something it could not compare "
                                   f"({type(error).__name__}: {error}). Compare what it returns with the skeleton's "
                                   "docstring: type, shape, dtype.")


def hint(name: str) -> Text:
    """A nudge for exercise ``name``, without giving the answer away.

    >>> hint("unfold_features")
    B is not given: it is y.shape[0] // T (integer division). Then reshape to (B, T, F).
    """
    return Text(exercise(name).hint)


def solution(name: str) -> Code:
    """The model answer to exercise ``name``, as code (the very code the tests check).

    >>> print(solution("fold_frames"))                   # doctest: +ELLIPSIS
    def fold_frames(x: torch.Tensor) -> torch.Tensor:
    ...
    """
    import inspect  # only when a solution is asked for

    return Code(inspect.getsource(exercise(name).reference).rstrip())


def skeleton(name: str) -> Code:
    """The code cell a lesson gives the learner for exercise ``name``, to fill in; its check comes in
    the next cell (``exercise(name).check_cell``).

    >>> print(skeleton("unfold_features").splitlines()[0])
    def unfold_features(y, T):
    """
    return Code(exercise(name).skeleton)

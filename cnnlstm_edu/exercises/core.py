"""What every exercise shares: the verdict a check returns, and running a learner's answer safely.

A check never lets the learner's code throw a traceback at them. Whatever their answer does
(raise, return ``None``, return the wrong thing) becomes a :class:`Result` whose message reads
like a teacher's note in the margin: what went wrong, on which hidden case, and what to write
instead. Shape errors go through :func:`cnnlstm_edu.explain`, the course's one explainer.

Inside a checker, a wrong answer is reported by raising :class:`Wrong` (an unfilled skeleton by
raising :class:`NotAnswered`); :func:`cnnlstm_edu.exercises.check` turns them into a Result.
"""

from __future__ import annotations

import html
import linecache
import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from ..explain import explain

__all__ = ["Code", "Exercise", "NotAnswered", "Result", "Text", "Wrong", "call", "describe_value", "expect_tensor",
           "generator", "matching_slip", "max_gap", "one_thread", "seeded"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Wrong(Exception):
    """Raised inside a checker: the answer is wrong, and the message says how."""


class NotAnswered(Exception):
    """Raised inside a checker: the answer is still the skeleton (``...``, ``None``, NotImplementedError)."""


class Text(str):
    """A string that shows as itself (no quotes, real line breaks) when it is a cell's last value.

    >>> Text("line one\\nline two")
    line one
    line two
    """

    def __repr__(self) -> str:
        return str(self)


class Code(Text):
    """Source code that shows as itself, and in Jupyter as a highlighted Python block.

    >>> print(Code("x = 1")._repr_markdown_())
    ```python
    x = 1
    ```
    """

    def _repr_markdown_(self) -> str:
        return f"```python\n{self}\n```"


# Colours of the box in Jupyter: green for right, red for wrong, amber for not answered yet.
_STYLES = {"passed": ("#e6f4ea", "#34a853", "✔"), "failed": ("#fce8e6", "#d93025", "✘"),
           "unanswered": ("#fef7e0", "#f9ab00", "…")}


@dataclass(frozen=True)
class Result:
    """The verdict on one answer: ``passed``, and a ``message`` that says why.

    Printed (or as a cell's last value outside Jupyter) it is one line with a mark; in Jupyter
    it is a coloured box.

    >>> r = Result("fold_frames", passed=False, message="Your rows are ordered (T, B).")
    >>> r
    ✘ fold_frames: Your rows are ordered (T, B).
    >>> r.passed, r.answered
    (False, True)
    >>> "#d93025" in r._repr_html_()
    True
    """

    name: str
    passed: bool
    message: str
    answered: bool = True

    @property
    def status(self) -> str:
        """``"passed"``, ``"failed"`` or ``"unanswered"``."""
        return "passed" if self.passed else "failed" if self.answered else "unanswered"

    def __repr__(self) -> str:
        return f"{_STYLES[self.status][2]} {self.name}: {self.message}"

    __str__ = __repr__

    def _repr_html_(self) -> str:
        background, border, mark = _STYLES[self.status]
        body = html.escape(self.message).replace("\n", "<br>")
        return (f'<div style="background:{background};border-left:6px solid {border};padding:8px 12px;'
                f'margin:4px 0;border-radius:4px;color:#202124;font-family:sans-serif">'
                f'<b>{mark} {html.escape(self.name)}</b>: {body}</div>')


@dataclass(frozen=True)
class Exercise:
    """One exercise: where it belongs, what the learner starts from, and how it is checked.

    ``grade(answer)`` returns the message for a right answer, or raises :class:`Wrong` /
    :class:`NotAnswered`. ``reference`` is the model answer; ``solution`` shows its source.
    """

    name: str
    lesson: int                      # the lesson (notebook 01..10) whose last cells hold it
    title: str                       # one line: what to write
    skeleton: str                    # the code cell the learner fills in
    hint: str                        # a nudge, revealed on request
    reference: Any                   # the model answer (a function, or an nn.Module class)
    grade: Callable[[Any], str]      # the check: a success message, or Wrong / NotAnswered

    @property
    def check_cell(self) -> str:
        """The cell under the skeleton: ``check("fold_frames", fold_frames)``."""
        return f'check("{self.name}", {self.reference.__name__})'


def generator(seed: int) -> torch.Generator:
    """A private random stream: checks are repeatable and never touch the global seed.

    >>> torch.randn(2, generator=generator(0)).equal(torch.randn(2, generator=generator(0)))
    True
    """
    return torch.Generator().manual_seed(seed)


def seeded(module: torch.nn.Module, seed: int, scale: float = 1.0) -> torch.nn.Module:
    """``module`` with every parameter drawn from N(0, scale^2) by a private generator: a hidden
    case's layer is the same on every run and in every order the checks run.

    >>> lstm = seeded(torch.nn.LSTM(3, 4), seed=0)
    >>> torch.equal(lstm.weight_hh_l0, seeded(torch.nn.LSTM(3, 4), seed=0).weight_hh_l0)
    True
    """
    g = generator(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return module


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one CPU thread, then give torch back its own thread count.

    A check's tensors are tiny: splitting them over threads costs more than it saves, and on a
    busy machine (a classroom server) a second thread waiting for a core made one forward pass
    25 times slower (0.65 s against 0.025 s, 2 cores, load 11).

    >>> before = torch.get_num_threads()
    >>> with one_thread():
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def max_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest absolute difference between two tensors of one shape, as a float."""
    return (a.detach().double() - b.detach().double()).abs().max().item() if a.numel() else 0.0


def matching_slip(out: torch.Tensor, slips: list[tuple[torch.Tensor, str]], tol: float = 1e-5) -> str | None:
    """The words of the first slip whose result ``out`` is (same shape, within ``tol``), or None.

    A checker recomputes what each classic mistake would return, then names the one the answer made.

    >>> slips = [(torch.zeros(2), "you returned zeros"), (torch.ones(2), "you returned ones")]
    >>> matching_slip(torch.ones(2), slips)
    'you returned ones'
    >>> matching_slip(torch.ones(3), slips) is None
    True
    """
    for value, why in slips:
        if tuple(value.shape) == tuple(out.shape) and max_gap(out, value) <= tol:
            return why
    return None


def describe_value(value: Any) -> str:
    """A short description of anything an answer returns: ``a tensor of shape (2, 3)``, ``a tuple of 2``."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"{type(value).__name__} {value!r}"[:80]


def expect_tensor(value: Any, what: str) -> torch.Tensor:
    """``value`` if it is a tensor, else :class:`Wrong` saying what came back instead."""
    if isinstance(value, torch.Tensor):
        return value
    raise Wrong(f"{what} should be a tensor, but it is {describe_value(value)}.")


def call(fn: Callable, *args: Any, case: str, on_error: Callable[[BaseException], str | None] = lambda e: None,
         grad: bool = False) -> Any:
    """Call the learner's ``fn(*args)`` on a hidden case, turning what goes wrong into feedback.

    ``NotImplementedError`` and a ``None`` or ``...`` result mean the skeleton is still there
    (:class:`NotAnswered`). Any other exception becomes :class:`Wrong` naming the case, the line
    of the learner's code that raised, and the explanation: the exercise's own (``on_error``)
    when it knows this mistake, else :func:`cnnlstm_edu.explain`'s for a shape error, else
    Python's words. When ``fn`` is a model, explain() is told so and names its layers.

    >>> call(lambda x: x.view(3, -1), torch.zeros(2, 4), case="x of shape (2, 4)")
    Traceback (most recent call last):
        ...
    cnnlstm_edu.exercises.core.Wrong: On a hidden case (x of shape (2, 4)) your code raised RuntimeError...
    """
    try:
        with torch.set_grad_enabled(grad):
            value = fn(*args)
    except NotImplementedError as error:
        raise NotAnswered(f"it raised NotImplementedError ({error})" if str(error) else
                          "it raised NotImplementedError") from None
    except Exception as error:  # the learner's code may raise anything; each becomes feedback
        model = fn if isinstance(fn, torch.nn.Module) else None
        raise Wrong(_explained(error, case, on_error(error), model)) from None
    if value is None or value is Ellipsis:
        raise NotAnswered(f"it returned {value!r}: write the body, and don't forget the `return`")
    return value


def _explained(error: BaseException, case: str, own: str | None, model: torch.nn.Module | None = None) -> str:
    where = _learner_line(error)
    first = (str(error).strip().splitlines() or [""])[0]
    if first.endswith(":") and ", " in first:  # "... got (float, int, int), but expected one of:" and a list
        first = first.rsplit(", ", 1)[0]
    head = f"On a hidden case ({case}) your code raised {type(error).__name__}{where}: {first}"
    if own:
        return f"{head}\n{own}"
    if isinstance(error, (RuntimeError, ValueError, IndexError)):
        advice = explain(error, model)
        if not advice.startswith("explain() does not recognise"):
            return f"{head}\n{advice}"
    return head


def _learner_line(error: BaseException) -> str:
    """`` at line N: `code` `` for the last frame of the traceback that is not torch's or ours."""
    found = ""
    for frame in traceback.extract_tb(error.__traceback__):
        path = os.path.abspath(frame.filename)
        if path.startswith(_PACKAGE_DIR) or f"{os.sep}torch{os.sep}" in path:
            continue
        code = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
        found = f" at line {frame.lineno}" + (f": `{code}`" if code else "")
    return found

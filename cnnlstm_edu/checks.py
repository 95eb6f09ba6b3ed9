"""One home for checking a number that a user hands over: a layer's size, a CLI flag, a form field.

Every entry point of the package (layer constructors, ``fit``, the command line, the app) takes
numbers from people, and each used to check them its own way. :func:`check_number` is the one
check: the right kind (an ``int`` where a count is meant; never a ``bool``, never NaN or
infinity), then the range, with a message that names the value, what it accepts and what came.

>>> check_number(3, "hidden_size", integer=True, low=1)
3
>>> check_number(0, "hidden_size", integer=True, low=1, owner="LSTMCell")
Traceback (most recent call last):
ValueError: LSTMCell: hidden_size must be a positive int, got 0.
>>> check_number(float("nan"), "lr", low=0, low_open=True)
Traceback (most recent call last):
ValueError: lr must be a finite number above 0, got nan.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_number"]


def _accepts(integer: bool, low, high, low_open: bool) -> str:
    """What a value must be, in words: 'a positive int', 'a whole number from 1 to 1024', ..."""
    if integer and low == 1 and high is None:
        return "a positive int"
    noun = "a whole number" if integer else "a finite number"
    if low is not None and high is not None:
        return f"{noun} from {low:g} to {high:g}" if not low_open else f"{noun} above {low:g} and at most {high:g}"
    if low is not None:
        return f"{noun} above {low:g}" if low_open else f"{noun} of at least {low:g}"
    if high is not None:
        return f"{noun} of at most {high:g}"
    return noun


def check_number(value, name: str, *, integer: bool = False, low: float | None = None,
                 high: float | None = None, low_open: bool = False, whole_floats: bool = False,
                 owner: str = "") -> int | float:
    """``value`` if it is a number in range, else a ``ValueError`` naming ``name`` and the range.

    ``integer`` asks for an ``int`` (a count, a size); ``whole_floats`` also takes ``128.0``, as
    a form's number box sends it, and returns ``128``. ``low_open`` makes ``low`` exclusive
    (a learning rate above 0). Strings, lists, ``None``, booleans, NaN and infinities are
    refused: a number field that received any of those was not filled in by a person.

    >>> check_number(128.0, "Batch size", integer=True, low=1, high=1024, whole_floats=True)
    128
    >>> check_number("64", "Batch size", integer=True, low=1, high=1024)
    Traceback (most recent call last):
    ValueError: Batch size must be a whole number from 1 to 1024, got '64'.
    >>> check_number(2.5, "kernel", integer=True, low=1)
    Traceback (most recent call last):
    ValueError: kernel must be a positive int, got 2.5.
    """
    accepts = _accepts(integer, low, high, low_open)
    where = f"{owner}: " if owner else ""
    fail = ValueError(f"{where}{name} must be {accepts}, got {value!r}.")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise fail
    if integer and not isinstance(value, numbers.Integral):
        if not (whole_floats and math.isfinite(value) and float(value).is_integer()):
            raise fail
        value = int(value)
    if not math.isfinite(value):
        raise fail
    value = int(value) if integer else float(value)
    if low is not None and (value <= low if low_open else value < low):
        raise fail
    if high is not None and value > high:
        raise fail
    return value

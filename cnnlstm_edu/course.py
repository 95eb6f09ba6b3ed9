"""What the Jupyter lessons in ``notebooks/`` share: the smoke setting and widgets that also print.

Two problems every lesson has, solved once here so that the notebooks define nothing of their own:

- **Smoke runs.** The stored outputs of a lesson come from a full run (real training, real
  accuracy). The test suite runs every lesson again with nbval, and there a smaller setting keeps
  the whole course inside a few minutes on a laptop CPU. A lesson asks :func:`sized` for its
  sizes: the first value normally, the second when the environment variable
  ``CNNLSTM_EDU_SMOKE=1`` is set (``make test`` sets it).
- **Widgets without a browser.** An ipywidgets control only draws in a live notebook; a notebook
  executed headless (nbval, nbconvert, a notebook read on a web page) stores no picture for it.
  :func:`interact` therefore shows the result for the default values as an ordinary cell output,
  stored and readable anywhere, and then redraws that same output in place when the learner moves
  a control.
- **Figures as pictures.** Every figure of :mod:`cnnlstm_edu.viz` shows itself as a PNG, and so
  does a figure that :func:`interact` shows. A figure built elsewhere with
  ``matplotlib.figure.Figure`` (not pyplot) would show as ``<Figure size ...>`` text in a notebook
  that never used pyplot; a lesson that draws such figures calls :func:`show_figures_in_jupyter`
  once. Importing this module registers nothing: the lesson asks.

>>> sized(1000, 50) in (1000, 50)
True
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["SMOKE_ENV", "smoke", "sized", "interact", "show_figures_in_jupyter"]

SMOKE_ENV = "CNNLSTM_EDU_SMOKE"


def smoke() -> bool:
    """True when the lessons should run their small setting (``CNNLSTM_EDU_SMOKE=1``).

    >>> import os
    >>> os.environ.get(SMOKE_ENV, "0") in ("0", "1") or smoke() is False
    True
    """
    return os.environ.get(SMOKE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def sized(full: Any, small: Any) -> Any:
    """``full`` normally, ``small`` in a smoke run: ``epochs = sized(2, 0.05)``.

    >>> sized("full run", "smoke run") in ("full run", "smoke run")
    True
    """
    return small if smoke() else full


def show_figures_in_jupyter() -> bool:
    """Make Jupyter draw every pyplot-free figure (``Figure(...)``) as a PNG image; True if it did.

    Jupyter's inline backend registers its PNG display only when pyplot draws its first figure,
    so a ``matplotlib.figure.Figure`` built directly would show as ``<Figure size 900x300 with
    2 Axes>`` in a notebook that never touched pyplot. The figures of :mod:`cnnlstm_edu.viz`
    carry their own PNG display and need none of this; call it for figures built elsewhere.
    Outside IPython it does nothing.

    >>> show_figures_in_jupyter()          # a plain Python session: nothing to do
    False
    """
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    if not formatters or "image/png" not in formatters:
        return False
    from matplotlib.figure import Figure

    from .viz.figure import figure_png

    # What the inline backend does for pyplot's figures: a PNG cropped to what was drawn.
    formatters["image/png"].for_type(Figure, figure_png)
    return True


def _displayable(result: Any) -> Any:
    """What ``display`` should show for ``result``: figures are closed after rendering (a live
    notebook would otherwise draw each one twice) and shown as a PNG, text is shown as text
    rather than a repr."""
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        Figure = ()
    if isinstance(result, Figure):
        import matplotlib.pyplot as plt

        from .viz.figure import shows_as_png

        plt.close(result)  # no-op for figures built without pyplot
        return shows_as_png(result)
    if isinstance(result, str):
        return _Text(result)
    return result


class _Text(str):
    """A string that displays as itself, without the quotes of its repr."""

    def __repr__(self) -> str:
        return str(self)


def interact(fn: Callable[..., Any], *, columns: int = 1, button: str | None = None, **controls) -> None:
    """Show ``fn(**defaults)`` as a normal output, with ``controls`` above it that redraw it.

    ``controls`` maps each keyword of ``fn`` to an ipywidgets control (its ``value`` is the
    default). ``fn`` returns what to show: a matplotlib figure, a string, or anything Jupyter can
    display. An exception raised by ``fn`` (a size the model refuses, say) is shown as its
    message in place of the result, so a learner exploring the sliders sees why instead of a
    traceback. The controls sit in ``columns`` columns (one by default: six sliders in one row
    leave no track to drag) and are stored without a text form, so a notebook read before it
    runs shows the picture alone; with ``button="measure"`` (any label) a slow ``fn`` runs only
    when the button is pressed (:mod:`cnnlstm_edu.course_controls`).

    Outside Jupyter the same calls print, which is what this example shows:

    >>> import ipywidgets as widgets
    >>> steps = widgets.IntSlider(value=4, min=1, max=8, description="T")
    >>> interact(lambda T: f"{T} frames -> {T} LSTM steps", T=steps)
    controls: T=4
    4 frames -> 4 LSTM steps
    >>> steps.value = 6                              # the learner drags the slider
    6 frames -> 6 LSTM steps
    """
    import ipywidgets as widgets
    from IPython.display import DisplayHandle

    from .course_controls import _show_without_text, controls_box

    for name, control in controls.items():
        if not isinstance(control, widgets.ValueWidget):
            raise TypeError(f"interact: control {name!r} is a {type(control).__name__}, "
                            "not an ipywidgets control with a value")
    press = widgets.Button(description=button, button_style="primary") if button else None

    def render():
        values = {name: control.value for name, control in controls.items()}
        try:
            return _displayable(fn(**values))
        except (ValueError, TypeError, RuntimeError) as error:
            return _displayable(f"{type(error).__name__}: {error}")

    _show_without_text(controls_box(controls, columns, press))
    handle = DisplayHandle()
    handle.display(render())
    if press is None:
        for control in controls.values():
            control.observe(lambda change: handle.update(render()), names="value")
        return

    def on_press(_):
        press.disabled, press.description = True, "measuring..."
        try:
            handle.update(render())
        finally:
            press.disabled, press.description = False, button

    press.on_click(on_press)

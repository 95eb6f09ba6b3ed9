"""Lesson controls that a learner can use: one control per row, and a button for slow cells.

:func:`cnnlstm_edu.course.interact` puts every control in one ``HBox``: with six sliders in a
row no slider keeps a track worth dragging (an 80-pixel drag jumps H from 14 to 64), and a
notebook read before it runs shows the box as ``HBox(children=(IntSlider(...`` text above the
stored picture. :func:`interact` here is the same idea with three changes:

- the controls are laid out in ``columns`` columns (one by default), each as wide as its column,
  with room for its label, so a slider's track is long enough to pick every value;
- the controls are stored with an empty text form, so a notebook viewed without a kernel shows
  the stored picture alone;
- with ``button="measure"`` nothing is recomputed while the learner moves the controls: the
  result is redrawn when the button is pressed. A cell that takes seconds (a timing, a training
  run) should not run again on every tick of a slider.

As in ``course.interact``, the result for the controls' first values is shown as an ordinary
output (stored, readable anywhere), a returned figure shows as a PNG, and a ValueError,
TypeError or RuntimeError from ``fn`` is shown as its message instead of a traceback. Outside
Jupyter the calls print, which is what this example shows:

>>> import ipywidgets as widgets
>>> steps = widgets.IntText(value=4, description="T")
>>> interact(lambda T: f"{T} frames -> {T} LSTM steps", T=steps)
controls: T=4
4 frames -> 4 LSTM steps
>>> steps.value = 6                              # the learner types 6
6 frames -> 6 LSTM steps
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .checks import check_number
from .course import _displayable

__all__ = ["interact", "controls_box"]


def controls_box(controls: dict, columns: int = 1, button=None):
    """The controls (and the button, if any) in a grid of ``columns`` columns, each full width.

    >>> import ipywidgets as widgets
    >>> box = controls_box({"H": widgets.IntSlider(value=14, min=4, max=64)}, columns=1)
    >>> box.children[0].layout.width
    '100%'
    >>> controls_box({}, columns=0)
    Traceback (most recent call last):
    ...
    ValueError: controls_box: columns must be a positive int, got 0.
    """
    import ipywidgets as widgets

    check_number(columns, "columns", integer=True, low=1, owner="controls_box")
    children = list(controls.values()) + ([button] if button is not None else [])
    for control in children:
        control.layout.width = "100%"
        if hasattr(control, "style") and hasattr(control.style, "description_width"):
            control.style.description_width = "initial"   # the whole label, never cut to "fr..."
    return widgets.GridBox(children, layout=widgets.Layout(
        grid_template_columns=f"repeat({columns}, minmax(0, 1fr))", grid_gap="2px 24px", width="100%"))


def _show_without_text(box) -> None:
    """Display a widget whose stored text form is empty: a static view shows nothing for it."""
    from IPython import get_ipython
    from IPython.display import display

    if get_ipython() is None:                        # plain Python: say what the controls are
        print("controls: " + ", ".join(f"{getattr(c, 'description', '') or type(c).__name__}="
                                       f"{getattr(c, 'value', '')}" for c in box.children
                                       if hasattr(c, "value")))
        return
    bundle = box._repr_mimebundle_()
    bundle["text/plain"] = ""
    display(bundle, raw=True)


def interact(fn: Callable[..., Any], *, columns: int = 1, button: str | None = None, **controls) -> None:
    """Show ``fn(**values)`` with ``controls`` laid out above it; redraw on a change or a press.

    ``controls`` maps each keyword of ``fn`` to an ipywidgets control whose ``value`` is the
    first one drawn. With ``button="measure"`` (any label) the result is redrawn only when the
    button is pressed, and the button says so while ``fn`` runs.

    >>> import ipywidgets as widgets
    >>> size = widgets.BoundedIntText(value=28, min=8, max=64, description="frame size")
    >>> interact(lambda frame_size: f"timed at {frame_size} px", button="measure", frame_size=size)
    controls: frame size=28
    timed at 28 px
    >>> size.value = 32                              # no button press: nothing runs
    >>> interact(lambda: "x", oops=3)
    Traceback (most recent call last):
    ...
    TypeError: interact: control 'oops' is a int, not an ipywidgets control with a value
    """
    import ipywidgets as widgets
    from IPython.display import DisplayHandle

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

"""Lesson controls that a learner can use: one control per row, and a button for slow cells.

:func:`cnnlstm_edu.course.interact` (also importable from here) lays its controls out with
:func:`controls_box`. It used to put every control in one ``HBox``: with six sliders in a row
no slider kept a track worth dragging (an 80-pixel drag jumps H from 14 to 64), and a
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

from .checks import check_number
from .course import interact  # one interact: course's, which lays its controls out with controls_box

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

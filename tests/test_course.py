"""The lessons' shared helpers: the smoke switch and widgets that leave a static output."""

import ipywidgets as widgets
import pytest

from cnnlstm_edu.course import SMOKE_ENV, interact, sized, smoke


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("0", False), ("", False)])
def test_smoke_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(SMOKE_ENV, value)
    assert smoke() is expected
    assert sized("full", "small") == ("small" if expected else "full")


def test_interact_shows_the_default_then_redraws_in_place(capsys):
    B = widgets.IntSlider(value=2, min=1, max=8)
    T = widgets.IntSlider(value=4, min=1, max=8)
    interact(lambda B, T: f"(B*T) = {B * T}", B=B, T=T)
    assert capsys.readouterr().out.splitlines()[1:] == ["(B*T) = 8"]
    T.value = 5
    assert capsys.readouterr().out.splitlines() == ["(B*T) = 10"]


def test_interact_shows_an_error_instead_of_raising(capsys):
    size = widgets.IntSlider(value=3)

    def refuse(size):
        raise ValueError(f"expected an even size, got {size}")

    interact(refuse, size=size)
    assert capsys.readouterr().out.splitlines()[-1] == "ValueError: expected an even size, got 3"

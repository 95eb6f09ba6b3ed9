"""Figures of sequences and results: plot_frames, plot_step_accuracy, plot_recurrent_parameters,
plot_forecast, plot_beliefs with frames."""

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from cnnlstm_edu.data import QUADRANT_ORDERS, quadrant_sequences, stacked_quadrant_sequences
from cnnlstm_edu.models import recurrent_parameters
from cnnlstm_edu.viz import (plot_beliefs, plot_forecast, plot_frames, plot_recurrent_parameters,
                             plot_step_accuracy)

matplotlib.use("Agg")


def test_plot_frames_draws_every_frame_with_its_pixels():
    digit = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)
    rows = {order: quadrant_sequences(digit, order)[0] for order in QUADRANT_ORDERS}   # (T, 1, 14, 14)
    rows["whole"] = digit                                                               # (1, 28, 28)
    fig = plot_frames(rows, titles=[["a"]] * 4)
    assert isinstance(fig, Figure)
    axes = np.array(fig.axes).reshape(5, 4)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == list(QUADRANT_ORDERS) + ["whole"]
    # uint8 pixels are shown as [0, 1] floats, the frame in order.
    shown = axes[1, 0].get_images()[0].get_array()
    np.testing.assert_allclose(shown, digit[0, 14:, 14:].numpy() / 255)               # "4321" starts at 4
    assert not axes[4, 1].axison                                                        # short row: blank cells
    assert axes[0, 0].get_title() == "a" and axes[0, 1].get_title() == ""


def test_plot_frames_takes_tall_frames_rgb_and_lists():
    stacked = stacked_quadrant_sequences(torch.zeros(1, 28, 28, dtype=torch.uint8))[0]  # (T, 1, 56, 14)
    assert len(plot_frames([stacked]).axes) == 4
    rgb = torch.rand(3, 3, 8, 8)                                                        # (n, 3, H, W)
    assert plot_frames({"rgb": rgb}).axes[0].get_images()[0].get_array().shape == (8, 8, 3)


@pytest.mark.parametrize("bad", [torch.zeros(4, 2, 8, 8), torch.zeros(8, 8), torch.zeros(0, 8, 8)])
def test_plot_frames_refuses_what_is_not_frames(bad):
    with pytest.raises(ValueError):
        plot_frames({"x": bad})


def test_plot_step_accuracy_one_bar_per_setting_and_step():
    fig = plot_step_accuracy({"1234": [0.1, 0.5, 0.9, 0.98], "4321": torch.tensor([0.2, 0.4, 0.8, 0.97])})
    ax = fig.axes[0]
    heights = sorted(p.get_height() for p in ax.patches)
    assert heights == pytest.approx(sorted([10.0, 50.0, 90.0, 98.0, 20.0, 40.0, 80.0, 97.0]))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["1234", "4321"]
    with pytest.raises(ValueError):
        plot_step_accuracy({})


def test_plot_recurrent_parameters_draws_the_formulas():
    fig = plot_recurrent_parameters(32, 64, kernel_size=3, sizes=[1, 3, 5], mark=3)
    lstm, conv = fig.axes[0].get_lines()[:2]
    want = [recurrent_parameters(32, s, s, 64, 3) for s in (1, 3, 5)]
    assert list(lstm.get_ydata()) == [w["lstm"] for w in want]
    assert list(conv.get_ydata()) == [w["convlstm"] for w in want]
    assert "x the parameters" in fig.axes[0].get_title()


def test_plot_beliefs_with_frames_puts_each_frame_over_its_bars():
    probs = torch.softmax(torch.randn(4, 10), -1)
    frames = torch.rand(4, 1, 14, 14)
    fig = plot_beliefs(probs, order="1324", label=2, frames=frames)
    assert len(fig.axes) == 8
    assert fig.axes[1].get_title() == "frame 2: quadrant 3"
    np.testing.assert_allclose(fig.axes[2].get_images()[0].get_array(), frames[2, 0].numpy())
    heights = [p.get_height() for p in fig.axes[4 + 3].patches]
    np.testing.assert_allclose(heights, probs[3].numpy(), rtol=1e-6)
    with pytest.raises(ValueError):
        plot_beliefs(probs, frames=frames[:3])


def test_plot_beliefs_takes_a_probe_with_its_frames():
    from cnnlstm_edu.models import build_model
    from cnnlstm_edu.viz import probe

    torch.manual_seed(0)
    p = probe(build_model("cnn_lstm"), torch.rand(4, 1, 14, 14))
    fig = plot_beliefs(p, order="1234", label=1)
    assert len(fig.axes) == 8
    np.testing.assert_allclose([b.get_height() for b in fig.axes[4].patches], p.probs[0].numpy(), rtol=1e-6)


def test_plot_forecast_shows_the_models_forecast_and_the_copy_baseline():
    from cnnlstm_edu.data.moving_mnist import moving_mnist
    from cnnlstm_edu.models import build_model

    torch.manual_seed(0)
    model = build_model("next_frame").train()
    clip = moving_mnist(1, seq_len=8, seed=3)[0]                     # (T, C, H, W) uint8
    fig = plot_forecast(model, clip, context=5)                     # horizon: what the clip has left, 3
    assert model.training
    axes = np.array(fig.axes).reshape(4, 5)
    with torch.no_grad():
        want = model.eval().forecast(clip[None, :5].float() / 255, 3)[0]     # (3, C, H, W)
    np.testing.assert_allclose(axes[2, 0].get_images()[0].get_array(), want[0, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(axes[3, 2].get_images()[0].get_array(), clip[4, 0].numpy() / 255)
    assert axes[2, 0].get_title().startswith("mse ") and not axes[2, 3].axison
    with pytest.raises(ValueError):
        plot_forecast(model, clip, context=8)


def test_figures_show_as_png_in_an_ipython_shell_without_any_hook(monkeypatch):
    import IPython
    from IPython.core.interactiveshell import InteractiveShell
    from matplotlib.figure import Figure

    from cnnlstm_edu.viz import plot_step_accuracy, show_figures_in_jupyter

    shell = InteractiveShell()                       # not the global instance: nothing leaks
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    fig = plot_step_accuracy({"1234": [0.5, 0.9]})
    data, _ = shell.display_formatter.format(fig)    # a bare shell: viz's figure brings its own PNG
    assert data["image/png"][:4] == b"\x89PNG"
    assert data["text/plain"].startswith("<Figure size")
    other = Figure()                                 # a figure built elsewhere, without pyplot
    other.add_subplot().plot([0, 1])
    assert "image/png" not in shell.display_formatter.format(other)[0]
    assert show_figures_in_jupyter()                 # what a lesson asks for such figures
    assert shell.display_formatter.format(other)[0]["image/png"][:4] == b"\x89PNG"


def test_importing_viz_registers_no_display_hook():
    import subprocess
    import sys

    probe = ("from IPython.core.interactiveshell import InteractiveShell\n"
             "png = InteractiveShell.instance().display_formatter.formatters['image/png']\n"
             "before = dict(png.type_printers), dict(png.deferred_printers)\n"
             "import cnnlstm_edu.viz, cnnlstm_edu.course\n"
             "print((dict(png.type_printers), dict(png.deferred_printers)) == before)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "True", done.stderr


def test_plot_curves_leaves_out_a_panel_with_nothing_to_draw():
    from cnnlstm_edu.viz import plot_curves

    next_frame_like = [{"epoch": 0.5, "loss": 0.05, "accuracy": float("nan")}, {"epoch": 1.0, "test_loss": 0.01}]
    fig = plot_curves(next_frame_like)
    assert [ax.get_title() for ax in fig.axes] == ["loss"]
    assert [ax.get_title() for ax in plot_curves([{"epoch": 1.0, "test_acc": 0.9}]).axes] == ["accuracy"]
    assert len(plot_curves([]).axes) == 1

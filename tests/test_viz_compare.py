"""plot_runs, plot_frames, plot_chunks: the figures the training-tricks and streaming lessons draw."""

import math

import matplotlib
import pytest
import torch
from matplotlib.figure import Figure

from cnnlstm_edu.models import build_model
from cnnlstm_edu.train import fit
from cnnlstm_edu.viz import plot_chunks, plot_frames, plot_runs

matplotlib.use("Agg")


def test_plot_runs_overlays_fit_events_and_dicts():
    torch.manual_seed(0)
    x, y = torch.rand(64, 4, 1, 14, 14), torch.randint(0, 10, (64,))
    model = build_model("cnn_lstm", channels=(4, 8), hidden_size=8)
    events = fit(model, (x, y), (x, y), epochs=1, batch_size=16, log_every=1, device="cpu")   # a generator
    dicts = [{"step": 1, "loss": 3.0, "grad_norm": math.nan}, {"step": 2, "loss": 2.0, "grad_norm": 1.0}]
    fig = plot_runs({"fit": events, "dicts": dicts}, keys=(("loss", "test_loss"), "grad_norm", "unroll"),
                    log=("grad_norm",), title="two runs")
    assert isinstance(fig, Figure)
    fig.canvas.draw()
    loss, grad, unroll = fig.axes
    assert loss.get_title() == "loss / test_loss"
    assert [l.get_label() for l in loss.get_lines()] == ["fit: loss", "fit: test_loss", "dicts: loss"]
    assert len(loss.get_lines()[0].get_xdata()) == 4              # 4 steps of 16
    assert grad.get_yscale() == "log"
    assert len(grad.get_lines()[1].get_xdata()) == 1              # the NaN is skipped
    assert unroll.get_lines() == [] or all(l.get_drawstyle() == "steps-post" for l in unroll.get_lines())


def test_plot_runs_draws_integer_keys_as_stairs():
    fig = plot_runs({"a": [{"step": s, "unroll": u} for s, u in [(0, 1), (5, 2), (9, 4)]]}, keys=("unroll",))
    assert fig.axes[0].get_lines()[0].get_drawstyle() == "steps-post"


def test_plot_frames_leaves_cells_before_start_empty():
    clip = torch.rand(6, 1, 8, 8)
    fig = plot_frames({"truth": clip, "forecast": clip[3:, 0]}, start={"forecast": 3})
    assert len(fig.axes) == 12
    assert [len(ax.images) for ax in fig.axes[6:]] == [0, 0, 0, 1, 1, 1]
    assert fig.axes[6].get_ylabel() == "forecast"
    fig.canvas.draw()


@pytest.mark.parametrize("sizes", [1, 3, 7])
def test_plot_chunks_reports_the_largest_difference(sizes):
    whole = torch.randn(2, 7, 4, 2, 2)                             # (B, T, F, H, W): a ConvLSTM's output
    parts = list(whole.split(sizes, dim=1))
    parts[-1] = parts[-1] + 0.5                                    # a wrong last chunk
    fig = plot_chunks(whole, parts)
    assert "max |whole - chunked| = 0.5" in fig.axes[0].get_title()
    fig.canvas.draw()


def test_plot_chunks_refuses_chunks_of_another_sequence():
    with pytest.raises(ValueError, match="add up to"):
        plot_chunks(torch.randn(1, 7, 3), [torch.randn(1, 3, 3)])

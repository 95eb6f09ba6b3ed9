"""The helpers of lesson 08: rollout_with and iou_per_frame (tracking_drift), plot_track and
plot_iou_by_frame (viz.tracking_figures). Identities first, then every bad input refused by name."""

import pytest
import torch

from cnnlstm_edu.data import track
from cnnlstm_edu.models import Tracker, TrackerConfig
from cnnlstm_edu.tracking_drift import iou_per_frame, rollout_with
from cnnlstm_edu.viz.tracking_figures import plot_iou_by_frame, plot_track


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    model = Tracker(TrackerConfig(frame_size=16, channels=(4,), hidden_size=8)).eval()
    torch.nn.init.normal_(model.head.weight, std=0.1)             # move away from "keep the box"
    clips, boxes = track(3, split="test", seq_len=6, size=16, digit_size=8, speed=(1.0, 2.0), seed=0)
    return model, clips.float() / 255, boxes


def test_reset_at_the_first_step_changes_nothing(small):
    """Step 1 starts from a zero state anyway: forgetting before it is a no-op."""
    model, clips, boxes = small
    assert torch.equal(rollout_with(model, clips, boxes, reset_at=(1,)), rollout_with(model, clips, boxes))


def test_reset_restarts_the_tracker_from_that_frame(small):
    """After a reset at frame k, own-box tracking is a fresh tracker started at frame k-1 from the box it had."""
    model, clips, boxes = small
    k = 3
    reset = rollout_with(model, clips, boxes, reset_at=(k,))
    fresh = model.track(clips[:, k - 1:], reset[:, k - 1])          # (B, T-k+1, 4)
    assert torch.allclose(reset[:, k - 1:], fresh, atol=1e-5)


def test_fed_the_truth_reads_every_true_box(small):
    model, clips, boxes = small
    moved = boxes.clone()
    moved[:, 2] += 1.0
    assert not torch.allclose(rollout_with(model, clips, moved, feed="true")[:, 3],
                              rollout_with(model, clips, boxes, feed="true")[:, 3])
    # ... while fed its own boxes, only the first true box is read
    assert torch.equal(rollout_with(model, clips, moved), rollout_with(model, clips, boxes))


@pytest.mark.parametrize("kwargs, message", [
    ({"feed": "teacher"}, "feed must be 'own'"),
    ({"reset_at": (0,)}, "reset_at holds frames"),
    ({"reset_at": (6,)}, "reset_at holds frames"),
    ({"reset_at": (True,)}, "reset_at holds frames"),
])
def test_rollout_with_refuses_bad_options(small, kwargs, message):
    model, clips, boxes = small
    with pytest.raises(ValueError, match=message):
        rollout_with(model, clips, boxes, **kwargs)


def test_rollout_with_refuses_boxes_of_another_length(small):
    model, clips, boxes = small
    with pytest.raises(ValueError, match="boxes"):
        rollout_with(model, clips, boxes[:, :-1])


def test_iou_per_frame_is_one_for_the_truth_and_refuses_mismatched_shapes(small):
    _, _, boxes = small
    assert torch.allclose(iou_per_frame(boxes, boxes), torch.ones(boxes.shape[1]))
    with pytest.raises(ValueError, match="same shape"):
        iou_per_frame(boxes, boxes[:, :-1])


def test_plot_track_draws_one_rectangle_per_track_on_each_pixel_border(small):
    _, clips, boxes = small
    fig = plot_track(clips[0], {"truth": boxes[0], "shifted": boxes[0] + 1}, frames=[0, 2])
    rect = fig.axes[0].patches[0]
    assert len(fig.axes[1].patches) == 2
    # pixel j spans j-0.5 .. j+0.5 in imshow's coordinates
    assert rect.get_x() == pytest.approx(float(boxes[0, 0, 0]) - 0.5)
    assert rect.get_width() == pytest.approx(float(boxes[0, 0, 2] - boxes[0, 0, 0]))


@pytest.mark.parametrize("tracks, frames, message", [
    ({}, None, "tracks must map"),
    ({"truth": torch.zeros(5, 4)}, None, r"needs \(6, 4\)"),
    ({"truth": torch.zeros(6, 4)}, [6], "frame indices 0 .. 5"),
    ({"truth": torch.zeros(6, 4)}, [], "frame indices 0 .. 5"),
])
def test_plot_track_refuses_bad_input(small, tracks, frames, message):
    _, clips, _ = small
    with pytest.raises(ValueError, match=message):
        plot_track(clips[0], tracks, frames=frames)


def test_plot_iou_by_frame_refuses_bad_curves():
    with pytest.raises(ValueError, match="curves must map"):
        plot_iou_by_frame({})
    with pytest.raises(ValueError, match="one IoU per frame"):
        plot_iou_by_frame({"tracker": torch.ones(2, 3)})

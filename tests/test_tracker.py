"""The Re3-style tracker of issue 15: shapes, and the identities between its three ways of running.

Teacher forcing in one call (forward), the step-by-step loop fed the true boxes (rollout with
sampling_p=0) and free-running (track) are one network: the first two give the same boxes, and
free-running reads nothing but the first box.
"""

from __future__ import annotations

import pytest
import torch

from cnnlstm_edu.data import track
from cnnlstm_edu.models.tracker import Tracker, TrackerConfig, TrackingObjective, box_mask
from cnnlstm_edu.shapes import ShapeError
from cnnlstm_edu.train import Curriculum, fit, to_float


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    model = Tracker(TrackerConfig(channels=(8, 16, 16), hidden_size=32, **kw))
    torch.nn.init.normal_(model.head.weight, std=0.05)      # not the zero start: boxes must move
    return model.eval()


def _data(n=3, T=6, seed=0):
    clips, boxes = track(n, split="test", seq_len=T, seed=seed)
    return to_float(clips), boxes


def test_shapes():
    model = _model()
    frames, boxes = _data()
    assert model(frames, boxes[:, :-1]).shape == (3, 5, 4)
    assert model.rollout(frames, boxes, sampling_p=0.5).shape == (3, 5, 4)
    out = model.track(frames, boxes[:, 0])
    assert out.shape == (3, 6, 4) and torch.equal(out[:, 0], boxes[:, 0])
    assert (out[..., 2:] > out[..., :2]).all()                # every box has a width and a height


def test_rollout_fed_the_true_boxes_equals_teacher_forcing():
    model = _model()
    frames, boxes = _data()
    forced = model(frames, boxes[:, :-1])                    # all steps in one call
    looped = model.rollout(frames, boxes, sampling_p=0.0)    # one step at a time, truth fed
    torch.testing.assert_close(looped, forced, atol=1e-4, rtol=1e-5)
    assert not torch.allclose(forced[:, 1:], boxes[:, 2:])   # the boxes did move: a real test


def test_free_running_reads_only_the_first_box_and_feeds_its_own_output():
    model = _model()
    frames, boxes = _data()
    free = model.track(frames, boxes[:, 0])
    scrambled = boxes.clone()
    scrambled[:, 1:] += 7.0
    torch.testing.assert_close(model.rollout(frames, scrambled, sampling_p=1.0), free[:, 1:])
    # Feeding its own predictions is teacher forcing on its own boxes.
    torch.testing.assert_close(model(frames, free[:, :-1]), free[:, 1:], atol=1e-4, rtol=1e-5)


def test_an_untrained_tracker_is_the_static_box():
    torch.manual_seed(0)
    model = Tracker().eval()
    frames, boxes = _data(T=4)
    torch.testing.assert_close(model.track(frames, boxes[:, 0]), boxes[:, :1].expand(-1, 4, -1))


def test_box_mask_covers_the_box_area():
    boxes = torch.tensor([[3.0, 4.0, 20.5, 9.25], [0.0, 0.0, 64.0, 64.0], [10.2, 10.7, 10.9, 11.1]])
    masks = box_mask(boxes, 64)                               # (N, 64, 64)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    torch.testing.assert_close(masks.sum((1, 2)), area)
    assert masks.min() >= 0 and masks.max() <= 1


def test_bad_inputs_are_named():
    model = _model()
    frames, boxes = _data()
    with pytest.raises(ShapeError, match=r"Tracker boxes: expected \(B=3, T=5, X=4\), got \(3, 6, 4\)"):
        model(frames, boxes)                                  # the previous boxes are one fewer
    with pytest.raises(ShapeError, match="Clips of the track task come from data.track"):
        model(frames[..., :32, :32], boxes[:, :-1])
    with pytest.raises(ValueError, match="sampling_p is a probability, got 1.5"):
        model.rollout(frames, boxes, sampling_p=1.5)
    with pytest.raises(ShapeError, match="Tracker.track first_box"):
        model.track(frames, boxes)
    with pytest.raises(ValueError, match="nothing to track"):
        model(frames[:, :1], boxes[:, :0])
    with pytest.raises(ValueError, match="Tracker: hidden_size must be a positive int"):
        Tracker(hidden_size=0)


def test_fit_trains_a_tracker_with_the_re3_tricks_and_reports_ious():
    clips, boxes = track(24, split="train", seq_len=9, seed=0)
    test = track(6, split="test", seq_len=9, seed=1)
    torch.manual_seed(0)
    model = Tracker(TrackerConfig(channels=(8, 16, 16), hidden_size=32))
    events = list(fit(model, (clips, boxes), test, epochs=2, batch_size=4, device="cpu",
                      objective=TrackingObjective(horizon=8), sampling="scheduled",
                      curriculum=Curriculum(start_unroll=2, check_every=1, patience=1, val_size=4)))
    metrics = events[-1].extra["test"]
    assert set(metrics) >= {"test_iou", "iou_by_horizon", "baseline_iou", "static_iou", "velocity_iou"}
    assert 0 <= metrics["test_iou"] <= 1 and list(metrics["iou_by_horizon"]) == [5]
    assert metrics["baseline_iou"] == max(metrics["static_iou"], metrics["velocity_iou"])
    assert any(e.kind == "curriculum" for e in events)       # the unroll doubled at least once
    assert all(e.loss > 0 for e in events if e.kind == "step")


def test_tracking_objective_refuses_test_clips_shorter_than_its_horizon():
    clips, boxes = track(2, split="test", seq_len=6, seed=0)
    with pytest.raises(ValueError, match="test clips have 6 frames; scoring 20 frames after the first needs 21"):
        TrackingObjective().evaluate(_model(), clips, boxes, torch.device("cpu"))

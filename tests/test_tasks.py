"""The tasks of issue 15: direction, first_digit and track, their baselines and box_iou.

The property tests prove what each task's docstring claims: a clip reversed is exactly a clip
of the opposite direction; the first digit is never the one left on screen; the track label is
the target's tight ink box; most test clips bounce within 20 frames.
"""

from __future__ import annotations

import pytest
import torch

from cnnlstm_edu.data import load_mnist
from cnnlstm_edu.data.canvas import ink_boxes, paint, pick_digits
from cnnlstm_edu.data.tasks import DIRECTIONS, direction, first_digit, opposite, slide
from cnnlstm_edu.data.tracking import (box_iou, constant_velocity, iou_by_horizon, mean_iou,
                                       static_box, track)

STEPS = {"right": (0, 1), "up-right": (-1, 1), "up": (-1, 0), "up-left": (-1, -1),
         "left": (0, -1), "down-left": (1, -1), "down": (1, 0), "down-right": (1, 1)}


def _index(split: str) -> dict[bytes, int]:
    """Image bytes -> label, for every image of an MNIST split."""
    images, labels = load_mnist(split)
    return {img.numpy().tobytes(): int(lab) for img, lab in zip(images, labels)}


# --- direction ---------------------------------------------------------------------------------

def test_direction_shapes_labels_and_determinism():
    clips, labels = direction(64, split="test", seq_len=6, size=30, digit_size=12, speed=3, seed=1)
    assert clips.shape == (64, 6, 1, 30, 30) and clips.dtype == torch.uint8
    assert labels.shape == (64,) and labels.dtype == torch.int64
    assert set(labels.tolist()) <= set(range(8)) and len(set(labels.tolist())) > 4
    again = direction(64, split="test", seq_len=6, size=30, digit_size=12, speed=3, seed=1)
    assert torch.equal(clips, again[0]) and torch.equal(labels, again[1])
    assert not torch.equal(clips, direction(64, split="test", seq_len=6, size=30, digit_size=12,
                                            speed=3, seed=2)[0])


@pytest.mark.parametrize("name", DIRECTIONS)
def test_a_reversed_clip_is_exactly_the_opposite_directions_clip(name):
    stamps, _ = pick_digits(1, "test", 14, torch.Generator().manual_seed(3))
    dy, dx = STEPS[name]
    T, speed = 8, 2
    start = (5, 20)                                                       # some of them wrap round
    clip = slide(stamps[0], start, name, seq_len=T, size=32, speed=speed)
    end = (start[0] + (T - 1) * speed * dy, start[1] + (T - 1) * speed * dx)
    back = slide(stamps[0], end, DIRECTIONS[opposite(DIRECTIONS.index(name))], seq_len=T, size=32,
                 speed=speed)
    assert torch.equal(clip.flip(0), back)                                 # bit for bit
    assert sorted(f.numpy().tobytes() for f in clip) == sorted(f.numpy().tobytes() for f in back)


def test_every_generated_clip_moves_by_its_label_and_reversed_by_the_opposite():
    speed = 2
    clips, labels = direction(200, split="test", speed=speed, seed=0)        # (N, T, 1, 24, 24)
    for clip, label in zip(clips, labels.tolist()):
        dy, dx = STEPS[DIRECTIONS[label]]
        for t in range(clip.shape[0] - 1):
            # Frame t+1 is frame t shifted by the label's step on the wrapping canvas.
            assert torch.equal(clip[t + 1], torch.roll(clip[t], (speed * dy, speed * dx), dims=(-2, -1)))
        back = clip.flip(0)
        ody, odx = STEPS[DIRECTIONS[opposite(label)]]
        for t in range(back.shape[0] - 1):
            assert torch.equal(back[t + 1], torch.roll(back[t], (speed * ody, speed * odx), dims=(-2, -1)))


def test_direction_subset_keeps_global_labels():
    _, labels = direction(50, split="test", directions=("left", "right"), seed=0)
    assert set(labels.tolist()) == {DIRECTIONS.index("left"), DIRECTIONS.index("right")}


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_clips=0), "num_clips must be a positive int, got 0"),
    (dict(seq_len=1), "seq_len must be a whole number of at least 2, got 1"),
    (dict(speed=0), "speed must be a positive int, got 0"),
    (dict(digit_size=29), "digit_size must be a whole number from 1 to 28, got 29"),
    (dict(size=10), "size=10 is too small for 12-pixel digits"),
    (dict(speed=12), "speed=12 is too fast for a 24-pixel canvas that wraps around"),
    (dict(directions=("left", "north")), "unknown direction 'north'"),
    (dict(directions="left"), "directions must be a non-empty tuple"),
    (dict(split="valid"), "split must be one of"),
])
def test_direction_refuses_bad_arguments(kwargs, message):
    args = dict(num_clips=4, split="test") | kwargs
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        direction(**args)


def test_slide_refuses_an_unknown_direction():
    with pytest.raises(ValueError, match="slide: unknown direction 'sideways'"):
        slide(torch.ones(3, 3, dtype=torch.uint8), (0, 0), "sideways", seq_len=2, size=10)


def test_a_single_frame_says_nothing_about_the_direction():
    # Every frame's position is uniform whatever the direction: the corner's distribution in the
    # last frame of right-moving clips is that of left-moving ones (a chi-square-sized check).
    clips, labels = direction(4000, split="test", digit_size=28, size=32, speed=2,
                              directions=("left", "right"), seed=0)
    ink = (clips[:, -1, 0] > 0).float().mean(1)                            # (N, W): ink per column
    right = labels == DIRECTIONS.index("right")
    gap = (ink[right].mean(0) - ink[~right].mean(0)).abs().max().item()
    assert gap < 0.03, f"the last frame's ink differs by column between directions by {gap:.3f}"


# --- first_digit ---------------------------------------------------------------------------------

def test_first_digit_shows_two_different_test_digits_and_labels_the_first():
    clips, labels = first_digit(40, split="test", seq_len=6, seed=0)       # (N, 6, 1, 28, 28)
    assert clips.shape == (40, 6, 1, 28, 28) and labels.shape == (40,)
    index = _index("test")
    for clip, label in zip(clips, labels.tolist()):
        assert all(torch.equal(clip[t], clip[0]) for t in range(3))          # A for half the clip
        assert all(torch.equal(clip[t], clip[3]) for t in range(3, 6))       # then B
        first, second = (index[clip[t, 0].numpy().tobytes()] for t in (0, 3))  # real test digits
        assert first == label and second != label                          # the label left the screen


def test_first_digit_on_a_larger_canvas_and_bad_arguments():
    clips, _ = first_digit(5, split="test", size=40, digit_size=20, seed=0)
    assert clips.shape == (5, 4, 1, 40, 40)
    with pytest.raises(ValueError, match="seq_len must be even"):
        first_digit(5, seq_len=5)
    with pytest.raises(ValueError, match="first_digit: size must be a whole number of at least 28"):
        first_digit(5, size=20)
    with pytest.raises(ValueError, match="first_digit: num_clips must be a positive int"):
        first_digit(-1)


# --- digits: train and test apart -------------------------------------------------------------

@pytest.mark.parametrize("split, other", [("train", "test"), ("test", "train")])
def test_digits_come_only_from_their_split(split, other):
    stamps, labels = pick_digits(300, split, 28, torch.Generator().manual_seed(0))
    own, foreign = _index(split), _index(other)
    keys = [s.numpy().tobytes() for s in stamps]
    assert all(own[k] == lab for k, lab in zip(keys, labels.tolist()))
    assert not any(k in foreign for k in keys)


def test_paint_refuses_positions_outside_the_frame():
    with pytest.raises(ValueError, match="positions must lie in 0..2"):
        paint(torch.ones(1, 1, 2, 2, dtype=torch.uint8), torch.tensor([[[[0, 3]]]]), size=4)


# --- track -----------------------------------------------------------------------------------------

def test_track_boxes_are_the_targets_tight_ink_box():
    clips, boxes = track(30, split="test", num_digits=1, seed=0)          # alone: all ink is the target's
    assert clips.shape == (30, 21, 1, 64, 64) and boxes.shape == (30, 21, 4)
    assert torch.equal(boxes, ink_boxes(clips[:, :, 0]))


def test_track_two_digits_target_box_contains_its_ink_and_is_deterministic():
    clips, boxes = track(20, split="test", seed=4)
    again = track(20, split="test", seed=4)
    assert torch.equal(clips, again[0]) and torch.equal(boxes, again[1])
    # All ink inside the target's box is at most the whole frame's; outside it, the other digit.
    frame_box = ink_boxes(clips[:, :, 0])                                  # box around both digits
    assert (frame_box[..., :2] <= boxes[..., :2]).all() and (frame_box[..., 2:] >= boxes[..., 2:]).all()


def _bounced(boxes: torch.Tensor) -> torch.Tensor:
    """Per clip: did the box centre's x or y motion change sign (a bounce) within these frames?"""
    centre = boxes[..., :2] + boxes[..., 2:]                               # (N, T, 2): 2 * centre
    sign = centre.diff(dim=1).sign()                                       # (N, T-1, 2)
    return ((sign[:, 1:] * sign[:, :-1]) < 0).flatten(1).any(1)            # (N,)


def test_most_test_clips_bounce_within_20_frames():
    _, boxes = track(200, split="test", seed=0)
    fraction = _bounced(boxes[:, :20]).float().mean().item()
    assert fraction >= 0.7, f"only {fraction:.0%} of test clips bounce within 20 frames"


@pytest.mark.parametrize("kwargs, message", [
    (dict(seq_len=1), "track: seq_len must be a whole number of at least 2, got 1"),
    (dict(num_clips=0), "track: num_clips must be a positive int"),
    (dict(size=28), "track: size must be a whole number of at least 29, got 28"),
    (dict(speed=(3.0, 2.0)), r"track: speed\[1\] must be"),
    (dict(speed=(0.0, 2.0)), r"track: speed\[0\] must be a finite number above 0"),
    (dict(speed=3.0), "track: speed must be \\(low, high\\)"),
])
def test_track_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        track(**(dict(num_clips=2, split="test") | kwargs))


# --- boxes: IoU and the two baselines ------------------------------------------------------------

def test_box_iou_identities():
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(100, 2, generator=gen) * 50
    boxes = torch.cat([xy, xy + 1 + torch.rand(100, 2, generator=gen) * 20], dim=1)   # (100, 4)
    torch.testing.assert_close(box_iou(boxes, boxes), torch.ones(100))       # itself: 1
    far = boxes + torch.tensor([100.0, 0, 100, 0])                         # moved clear to the right
    assert torch.equal(box_iou(boxes, far), torch.zeros(100))              # disjoint: 0
    touching = torch.tensor([2.0, 0, 4, 2])                                # shares an edge only
    assert box_iou(torch.tensor([0.0, 0, 2, 2]), touching).item() == 0.0
    known = box_iou(torch.tensor([0.0, 0, 2, 2]), torch.tensor([1.0, 1, 3, 3]))
    torch.testing.assert_close(known, torch.tensor(1 / 7))                 # overlap 1, union 4 + 4 - 1
    inside = box_iou(torch.tensor([0.0, 0, 4, 4]), torch.tensor([1.0, 1, 3, 3]))
    torch.testing.assert_close(inside, torch.tensor(4 / 16))
    other = boxes.flip(0)
    torch.testing.assert_close(box_iou(boxes, other), box_iou(other, boxes))  # symmetric


@pytest.mark.parametrize("bad, message", [
    (torch.tensor([2.0, 0, 1, 1]), "x1 < x0 or y1 < y0"),
    (torch.tensor([0.0, 0, 1]), r"expected boxes \(..., 4\)"),
    (torch.tensor([0.0, float("nan"), 1, 1]), "NaN or infinite"),
])
def test_box_iou_refuses_bad_boxes(bad, message):
    with pytest.raises(ValueError, match=message):
        box_iou(bad, torch.tensor([0.0, 0, 1, 1]))


def test_box_iou_refuses_two_empty_boxes():
    with pytest.raises(ValueError, match="two empty boxes"):
        box_iou(torch.tensor([1.0, 1, 1, 1]), torch.tensor([1.0, 1, 1, 1]))


def test_baselines_read_only_the_boxes_they_are_given():
    _, boxes = track(10, split="test", seed=0)
    scrambled = boxes.clone()
    scrambled[:, 2:] = torch.rand_like(scrambled[:, 2:]) * 10 + torch.tensor([0.0, 0, 20, 20])
    assert torch.equal(static_box(boxes), static_box(scrambled))
    assert torch.equal(constant_velocity(boxes), constant_velocity(scrambled))
    assert torch.equal(static_box(boxes)[:, 0], boxes[:, 0])
    assert torch.equal(constant_velocity(boxes)[:, :2], boxes[:, :2])      # exact where it was told


def test_baselines_are_perfect_on_what_they_assume_and_score_below_1_on_track():
    t = torch.arange(6.0).view(1, 6, 1)
    straight = torch.tensor([1.0, 2, 5, 6]) + t * torch.tensor([1.0, 2, 1, 2])   # (1, T, 4)
    assert mean_iou(constant_velocity(straight), straight, 5) == 1.0
    _, boxes = track(100, split="test", seed=0)
    scores = iou_by_horizon(constant_velocity(boxes), boxes)
    assert sorted(scores) == [5, 10, 20]
    assert 0 < scores[20] < scores[5] < 1                                    # drift grows with the horizon
    assert mean_iou(static_box(boxes), boxes, 20) < scores[5]


def test_mean_iou_refuses_a_horizon_beyond_the_clip():
    _, boxes = track(2, split="test", seq_len=6, seed=0)
    with pytest.raises(ValueError, match="mean_iou: horizon must be a whole number from 1 to 5, got 20"):
        mean_iou(boxes, boxes, 20)

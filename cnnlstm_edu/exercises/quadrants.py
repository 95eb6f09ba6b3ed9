"""Lesson 03's exercises: ``quadrant_frames`` (seed 004's data, cut by hand) and ``last_step``
(reading the LSTM's belief after the last quadrant).

``quadrant_frames`` is checked against :func:`cnnlstm_edu.data.quadrant_sequences` on random
28x28 images; a plain reshape (four bands of 7 rows, not four 14x14 blocks) and a column-wise
numbering each get their own words. ``last_step`` is checked on batch-first LSTM outputs with
B different from T and once equal to it, where ``output[-1]`` keeps the right shape.
"""

from __future__ import annotations

import torch

from ..data import quadrant_sequences
from .core import Exercise, Wrong, call, expect_tensor, generator

__all__ = ["EXERCISES", "last_step", "quadrant_frames"]


def quadrant_frames(images: torch.Tensor) -> torch.Tensor:
    """(N, 28, 28) -> (N, 4, 1, 14, 14): quadrants 1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right."""
    quads = [images[:, :14, :14], images[:, :14, 14:],    # 1, 2: the top half
             images[:, 14:, :14], images[:, 14:, 14:]]    # 3, 4: the bottom half
    return torch.stack(quads, dim=1).unsqueeze(2)         # (N, T=4, C=1, 14, 14)


def last_step(output: torch.Tensor) -> torch.Tensor:
    """A batch-first LSTM output (B, T, H) -> (B, H): each clip's hidden state after its last frame."""
    return output[:, -1]  # (B, H): the last step of every clip, not the last clip


def _check_quadrants(answer) -> str:
    for seed, N in enumerate((3, 1)):
        images = torch.randint(0, 256, (N, 28, 28), generator=generator(300 + seed), dtype=torch.uint8)
        case = f"images of shape (N={N}, 28, 28)"
        out = expect_tensor(call(answer, images.clone(), case=case), "What quadrant_frames returns")
        if tuple(out.shape) == (N, 4, 14, 14):
            raise Wrong(f"On {case} you returned {tuple(out.shape)}: the frames have no channel axis. A Conv2d "
                        "wants (C, H, W) frames: add C=1 with .unsqueeze(2) -> (N, 4, 1, 14, 14).")
        if tuple(out.shape) != (N, 4, 1, 14, 14):
            raise Wrong(f"On {case} quadrant_frames should give (N={N}, T=4, C=1, H=14, W=14), but yours gives "
                        f"{tuple(out.shape)}.")
        got = out.double()
        if torch.equal(got, quadrant_sequences(images).double()):
            continue
        if torch.equal(got, images.reshape(N, 4, 1, 14, 14).double()):
            raise Wrong("The shape is right, but a reshape does not cut quadrants: it reads the pixels row by row, "
                        "so your frame 0 is the top 7 rows of the image folded into 14x14, not the top-left "
                        "block. Slice the blocks (images[:, :14, :14] is quadrant 1), then stack them.")
        for order in ("1324", "4321", "4231"):
            if torch.equal(got, quadrant_sequences(images, order=order).double()):
                raise Wrong(f"Your frames are the quadrants in the order {', '.join(order)}: quadrants are numbered "
                            "row by row, 1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right, and this exercise "
                            "takes them in the order 1, 2, 3, 4.")
        raise Wrong(f"On {case} your frames are not the four 14x14 quadrants in the order 1, 2, 3, 4.")
    return ("Right: your frames are quadrant_sequences' (N, 4, 1, 14, 14), quadrants 1, 2, 3, 4, pixel for pixel. "
            "The LSTM reads the digit one quarter at a time.")


def _check_last_step(answer) -> str:
    for seed, (B, T, H) in enumerate(((3, 4, 5), (2, 6, 3), (4, 4, 2))):
        output = torch.randn(B, T, H, generator=generator(310 + seed))
        case = f"output of shape (B={B}, T={T}, H={H})"
        out = expect_tensor(call(answer, output.clone(), case=case), "What last_step returns")
        if torch.equal(out, output[:, -1]):
            continue
        if out.shape == output[-1].shape and torch.equal(out, output[-1]):
            raise Wrong(f"On {case} you returned output[-1]: with batch_first=True, axis 0 is B, so that is the last "
                        "clip, all of its steps. The last step of every clip is output[:, -1].")
        if out.shape == output[:, 0].shape and torch.equal(out, output[:, 0]):
            raise Wrong(f"On {case} you returned the first step, output[:, 0]: the belief after one quadrant. The "
                        "answer is read after the last one, output[:, -1].")
        if out.shape == (B, H) and torch.allclose(out, output.mean(dim=1)):
            raise Wrong(f"On {case} you averaged over the steps: early steps, which have seen little of the digit, "
                        "count as much as the last. Take the last step, output[:, -1].")
        raise Wrong(f"On {case} last_step should give output[:, -1], shape (B={B}, H={H}); yours gives "
                    f"{tuple(out.shape)} with other values.")
    return ("Right: output[:, -1] is every clip's hidden state after its last frame; for nn.LSTM it equals "
            "h_n[-1], and it is what the classifier reads.")


_QUADRANT_SKELETON = '''\
def quadrant_frames(images):
    """(N, 28, 28) -> (N, 4, 1, 14, 14): the quadrants 1 top-left, 2 top-right, 3 bottom-left,
    4 bottom-right, as a 4-step clip of 1-channel frames."""
    ...  # your code here'''

_LAST_STEP_SKELETON = '''\
def last_step(output):
    """A batch-first LSTM output (B, T, H) -> (B, H): each clip's hidden state after its last frame."""
    ...  # your code here'''

EXERCISES = (
    Exercise(
        name="quadrant_frames", lesson=3,
        title="Cut 28x28 digits into the 4-step quadrant clip (N, 4, 1, 14, 14) that the model reads.",
        skeleton=_QUADRANT_SKELETON,
        hint="Slice each 14x14 block (images[:, :14, 14:] is the top-right one), torch.stack the four on "
             "dim 1, and add the channel axis with .unsqueeze(2).",
        reference=quadrant_frames, grade=_check_quadrants),
    Exercise(
        name="last_step", lesson=3,
        title="Pick the LSTM's output after the last frame of every clip: (B, T, H) -> (B, H).",
        skeleton=_LAST_STEP_SKELETON,
        hint="With batch_first=True the axes are (B, T, H): index the time axis, keep every clip.",
        reference=last_step, grade=_check_last_step),
)

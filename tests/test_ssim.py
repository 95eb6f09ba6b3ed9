"""ssim: Wang et al.'s formula, checked on cases worked out by hand and against a direct sum."""

import pytest
import torch

from cnnlstm_edu.ssim import gaussian_window, ssim

C1, C2 = 0.01 ** 2, 0.03 ** 2


def test_identical_images_score_one():
    x = torch.rand(3, 2, 16, 16)
    assert torch.allclose(ssim(x, x), torch.ones(3))


@pytest.mark.parametrize("a, b", [(0.2, 0.8), (0.5, 0.5), (0.0, 1.0)])
def test_flat_images_score_the_luminance_term(a, b):
    x, y = torch.full((1, 1, 12, 12), a), torch.full((1, 1, 12, 12), b)
    expected = (2 * a * b + C1) / (a * a + b * b + C1)        # no contrast, no structure: only the means differ
    assert ssim(x, y).item() == pytest.approx(expected, rel=1e-5)


def test_one_window_equals_the_direct_weighted_sums():
    torch.manual_seed(0)
    x, y = torch.rand(11, 11, dtype=torch.float64), torch.rand(11, 11, dtype=torch.float64)
    w = gaussian_window(11, 1.5)
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
    cxy = (w * (x - mx) * (y - my)).sum()
    expected = (2 * mx * my + C1) * (2 * cxy + C2) / ((mx ** 2 + my ** 2 + C1) * (vx + vy + C2))
    assert ssim(x[None], y[None]).item() == pytest.approx(expected.item(), rel=1e-9)


def test_symmetric_and_leading_axes_kept():
    x, y = torch.rand(2, 3, 1, 14, 14), torch.rand(2, 3, 1, 14, 14)   # (B, T, C, H, W)
    s = ssim(x, y)
    assert s.shape == (2, 3)
    assert torch.allclose(s, ssim(y, x))
    assert torch.allclose(s[1, 2], ssim(x[1, 2], y[1, 2]))


def test_blur_loses_to_the_sharp_image_that_mse_ranks_worse():
    # A stroke one pixel off against a blur of it: MSE prefers the blur, SSIM the sharp stroke.
    truth = torch.zeros(1, 1, 24, 24)
    truth[..., 6:18, 11:13] = 1.0                             # a vertical stroke
    shifted = torch.roll(truth, shifts=1, dims=-1)
    blurred = torch.nn.functional.avg_pool2d(truth, 7, stride=1, padding=3, count_include_pad=False)
    assert (blurred - truth).square().mean() < (shifted - truth).square().mean()
    assert ssim(shifted, truth) > ssim(blurred, truth)


@pytest.mark.parametrize("x, y, kwargs, message", [
    (torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 15), {}, "same shape"),
    (torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), {}, "smaller than the 11x11 window"),
    (torch.zeros(1, 1, 16, 16, dtype=torch.uint8), torch.rand(1, 1, 16, 16), {}, "ssim x: expected floating-point"),
    (torch.rand(16, 16), torch.rand(16, 16), {}, r"\(\.\.\., C, H, W\)"),
    (torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), {"data_range": 0}, "data_range"),
    (torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), {"window": 0}, "window"),
    (torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), {"sigma": -1.0}, "sigma"),
])
def test_bad_inputs_are_refused_by_name(x, y, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        ssim(x, y, **kwargs)

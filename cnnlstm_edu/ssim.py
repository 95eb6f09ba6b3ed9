"""SSIM, the structural similarity of two images (Wang, Bovik, Sheikh and Simoncelli, 2004).

Mean squared error rewards blur: a forecast that smears a digit over every place it might be
is punished less than a sharp digit slightly off. SSIM compares, in every 11x11 Gaussian window,
the two images' local means (luminance), standard deviations (contrast) and correlation
(structure), so a smear, which has lost the contrast and structure of the strokes, scores low.
It is the measure that video-prediction papers (Finn et al. 2016, among many) report next to MSE;
1 means identical, 0 no structure in common. This is the paper's definition: a Gaussian window
of width 11 and sigma 1.5, ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` for pixels in ``[0, L]``,
population (not sample) variances, the mean over the windows that fit inside the image.

>>> x = torch.rand(2, 1, 32, 32)                         # (B, C, H, W) in [0, 1]
>>> ssim(x, x)                                           # identical images
tensor([1., 1.])
>>> blurred = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
>>> bool((ssim(blurred, x) < 0.5).all())                 # noise blurred away: little structure left
True
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .checks import check_number
from .shapes import check_float

__all__ = ["ssim"]


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The ``(size, size)`` Gaussian weights of one SSIM window, summing to 1.

    >>> w = gaussian_window(11, 1.5)
    >>> tuple(w.shape), round(w.sum().item(), 6), bool(w[5, 5] == w.max())
    ((11, 11), 1.0, True)
    """
    check_number(size, "window", integer=True, low=1, owner="ssim")
    check_number(sigma, "sigma", low=0, low_open=True, owner="ssim")
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-offsets.square() / (2 * sigma ** 2))
    g = g / g.sum()
    return torch.outer(g, g)                                 # (size, size): separable, sums to 1


def ssim(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, window: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """The mean SSIM of each image pair: ``x``, ``y`` ``(..., C, H, W)`` -> ``(...)``.

    Pixels are floats in ``[0, data_range]``; channels are compared separately and averaged.
    Frames smaller than the window are refused (the paper's measure has no window to average).
    """
    check_number(data_range, "data_range", low=0, low_open=True, owner="ssim")
    for name, t in (("x", x), ("y", y)):
        check_float(t, f"ssim {name}")
        if t.dim() < 3:
            raise ValueError(f"ssim: {name} must be images (..., C, H, W), got shape {tuple(t.shape)}")
    if x.shape != y.shape:
        raise ValueError(f"ssim: x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    *lead, C, H, W = x.shape
    if H < window or W < window:
        raise ValueError(f"ssim: frames of {H}x{W} are smaller than the {window}x{window} window; "
                         f"pass a smaller window= (odd, at most {min(H, W)})")
    # float64 inside: a variance as E[a^2] - E[a]^2 loses digits to cancellation in float32
    kernel = gaussian_window(window, sigma).to(x.device)[None, None]  # (1, 1, k, k)
    a = x.reshape(-1, 1, H, W).double()                               # (N*C, 1, H, W): one channel per row
    b = y.reshape(-1, 1, H, W).double()
    blur = lambda t: F.conv2d(t, kernel)                              # (N*C, 1, H-k+1, W-k+1): windowed means
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a.square()                               # population variances in each window
    var_b = blur(b * b) - mu_b.square()
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2))
    return index.reshape(*lead, C, -1).mean(dim=(-2, -1)).to(x.dtype)  # (...): mean over channels and windows

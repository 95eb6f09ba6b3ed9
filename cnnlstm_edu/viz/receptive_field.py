"""How far a ConvLSTM sees: its receptive field grows by ``kernel_size - 1`` pixels per step.

A ConvLSTM's gates are convolutions of the input ``x_t`` *and* of the previous state ``h_{t-1}``
(Shi et al., 2015). One step sees a ``k x k`` patch of the current frame; the state it carries
was itself computed from ``k x k`` patches of ``h_{t-2}`` and ``x_{t-1}``, so a pixel of ``h_t``
depends on a ``(2k - 1)``-wide patch of ``x_{t-1}``, a ``(3k - 2)``-wide patch of ``x_{t-2}``,
and so on: ``1 + s*(k - 1) + (k - 1)`` pixels wide, ``s`` steps back. :func:`receptive_fields`
measures this with autograd (which input pixels the centre pixel of ``h_t`` has a gradient
for), and :func:`plot_receptive_fields` draws it.

>>> fields = receptive_fields(kernel_size=3, steps=3, size=11)
>>> fields.shape                                   # (t of h_t, step of x, H, W)
torch.Size([3, 3, 11, 11])
>>> [int(fields[2, s].any(0).sum()) for s in range(3)]   # widths: h_3 over x_1, x_2, x_3
[7, 5, 3]
"""

from __future__ import annotations

import torch

from ..checks import check_number
from ..layers import ConvLSTM
from .figure import new_figure

__all__ = ["receptive_fields", "plot_receptive_fields"]


def receptive_fields(kernel_size: int = 3, steps: int = 4, size: int = 15, seed: int = 0) -> torch.Tensor:
    """``(steps, steps, size, size)`` bools: ``[t, s]`` marks the pixels of frame ``x_{s+1}`` that
    the centre pixel of ``h_{t+1}`` depends on, in a random 1-channel ConvLSTM (``s > t``: none).

    >>> receptive_fields(kernel_size=3, steps=2, size=4)
    Traceback (most recent call last):
    ...
    ValueError: receptive_fields: size must be at least 5 to show 2 steps of a 3x3 kernel (got 4)
    """
    owner = "receptive_fields"
    k = check_number(kernel_size, "kernel_size", integer=True, low=1, owner=owner)
    T = check_number(steps, "steps", integer=True, low=1, owner=owner)
    S = check_number(size, "size", integer=True, low=1, owner=owner)
    if S < 1 + T * (k - 1):
        raise ValueError(f"{owner}: size must be at least {1 + T * (k - 1)} to show {T} steps of a "
                         f"{k}x{k} kernel (got {S})")
    generator = torch.Generator().manual_seed(seed)
    rnn = ConvLSTM(in_channels=1, hidden_channels=1, kernel_size=k)
    with torch.no_grad():
        for p in rnn.parameters():             # random weights, away from 0 so no path cancels out
            p.copy_(torch.rand(p.shape, generator=generator) * 0.5 + 0.25)
    fields = torch.zeros(T, T, S, S, dtype=torch.bool)
    for t in range(T):
        x = torch.rand(1, T, 1, S, S, generator=generator, requires_grad=True)   # (B, T, C, H, W)
        output, _ = rnn(x)                                                         # (B, T, 1, H, W)
        output[0, t, 0, S // 2, S // 2].backward()
        fields[t] = x.grad[0, :, 0] != 0                                           # (T, H, W)
    return fields


def plot_receptive_fields(kernel_size: int = 3, steps: int = 4, size: int = 15):
    """A grid: row ``t`` is ``h_t``'s centre pixel, column ``s`` the pixels of ``x_s`` it sees.

    >>> fig = plot_receptive_fields(steps=2, size=9)
    >>> [ax.get_title() for ax in fig.axes]          # rows h_1, h_2; columns x_1, x_2
    ['x_1: 3x3', 'x_2: future', 'x_1: 5x5', 'x_2: 3x3']
    """
    fields = receptive_fields(kernel_size, steps, size)
    T = fields.shape[0]
    fig = new_figure(1.5 * T + 0.6, 1.5 * T + 0.4)
    grid = fig.subplots(T, T, squeeze=False)
    for t in range(T):
        for s in range(T):
            ax = grid[t, s]
            ax.imshow(fields[t, s].float().numpy(), cmap="Oranges", vmin=0, vmax=1.3)
            ax.plot(size // 2, size // 2, "k+", markersize=5)
            width = int(fields[t, s].any(0).sum())
            ax.set_title(f"x_{s + 1}: {width}x{width}" if width else f"x_{s + 1}: future", fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
        grid[t, 0].set_ylabel(f"h_{t + 1}", fontsize=9)
    fig.suptitle(f"which input pixels the centre pixel of h_t sees ({kernel_size}x{kernel_size} kernels)",
                 fontsize=9)
    return fig

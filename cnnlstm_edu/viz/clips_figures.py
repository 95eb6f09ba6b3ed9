"""A quick figure of what a frame CNN makes of each frame of a clip (lesson 09, your own clips).

:func:`~cnnlstm_edu.viz.plot_activations` gives every feature map its own axes: for an 8-frame
clip and 6 maps of two blocks that is 8 x 13 = 104 axes, and matplotlib's layout of that many
took 13 s on the course's busy 2-core CPU. :func:`plot_activation_mosaic` draws the same
frames and maps as one picture (:func:`~cnnlstm_edu.viz.activation_mosaic`, the app's live
view) on one axes, labelled by frame and by block: the same content, at the cost of one image.

>>> import torch
>>> from cnnlstm_edu.analysis import Probe
>>> p = Probe(torch.rand(8, 1, 32, 32), [torch.rand(8, 16, 16, 16), torch.rand(8, 32, 8, 8)],
...           torch.zeros(8, 4), torch.rand(8, 3))
>>> fig = plot_activation_mosaic(p, channels=4)
>>> len(fig.axes), [t.get_text() for t in fig.axes[0].get_xticklabels()]
(1, ['frame', 'block 1: maps 1-4', 'block 2: maps 1-4'])
>>> fig.axes[0].get_yticklabels()[-1].get_text()
'frame 8'
"""

from __future__ import annotations

from ..analysis import Probe
from .figure import new_figure
from .images import activation_mosaic

__all__ = ["plot_activation_mosaic"]

_CELL, _GAP, _GROUP_GAP = 42, 4, 14      # pixels: one map's square, between maps, between groups


def plot_activation_mosaic(p: Probe, channels: int = 8):
    """Each frame of ``p`` (a row) with the first ``channels`` feature maps of every conv block.

    A map's colours share one scale across the frames (viridis: dark low, yellow high), so a map
    that lights up on frame 5 and not on frame 1 shows it.
    """
    image = activation_mosaic(p, channels=channels, cell=_CELL, gap=_GAP, group_gap=_GROUP_GAP)  # (h, w, 3)
    T = p.frames.shape[0]
    counts = [1] + [min(channels, m.shape[1]) for m in p.maps]            # squares per group
    names = ["frame"] + [f"{name}: maps 1-{k}" for name, k in zip(p.block_names, counts[1:])]
    centres, x = [], 0
    for k in counts:
        width = k * _CELL + (k - 1) * _GAP
        centres.append(x + width / 2)
        x += width + _GROUP_GAP
    fig = new_figure(image.shape[1] / 90 + 0.8, image.shape[0] / 90 + 0.5)
    ax = fig.add_subplot()
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks(centres, names, fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks([t * (_CELL + _GAP) + _CELL / 2 for t in range(T)], [f"frame {t + 1}" for t in range(T)],
                  fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return fig

"""``python -m cnnlstm_edu predict CHECKPOINT CLIP...``: what a clip classifier believes, frame by frame.

Each clip is read exactly as the checkpoint's training clips were (``load_clip`` with the
settings ``train --data --save`` kept: frames, size, channels, the short-clip rule), and the
model's class probabilities after every frame are printed as a small table, then the final
class: the belief after the clip's last real frame. A clip that can't be read is named on
stderr and the others still print; the exit status is then 1.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import torch

__all__ = ["ClipBelief", "format_beliefs", "predict_clips", "predict_command"]


@dataclass
class ClipBelief:
    """One clip's answer: the probabilities after each real frame, or why it was not read."""

    clip: str
    probs: list[list[float]] = field(default_factory=list)   # (frames, classes)
    error: str | None = None

    def final(self, classes: list[str]) -> tuple[str, float]:
        last = self.probs[-1]
        k = max(range(len(last)), key=last.__getitem__)
        return classes[k], last[k]


@torch.no_grad()
def predict_clips(model: torch.nn.Module, classes: list[str], settings: dict, paths: list[str]) -> list[ClipBelief]:
    """Every clip of ``paths`` through ``model``: a :class:`ClipBelief` each, in order."""
    from ..data import load_clip
    from ..modes import eval_mode
    from ..pixels import to_float

    device = next(model.parameters()).device
    padded = settings["short"] == "pad"
    out = []
    for path in paths:
        try:
            clip, length = load_clip(path, **settings)                 # (T, C, H, W), real frames
        except (ValueError, OSError) as e:   # unreadable, refused, missing: named, the rest go on
            out.append(ClipBelief(str(path), error=str(e)))
            continue
        x = to_float(clip[None].to(device))                            # (1, T, C, H, W)
        with eval_mode(model):
            if padded:                   # the LSTM stops at the clip's own last frame (packed)
                logits = model(x, all_steps=True, lengths=torch.tensor([length]))
            else:
                logits = model(x, all_steps=True)                      # (1, T, classes)
        probs = logits[0, :length].float().softmax(-1).cpu()           # (frames, classes)
        out.append(ClipBelief(str(path), [[round(p, 4) for p in row] for row in probs.tolist()]))
    return out


def format_beliefs(belief: ClipBelief, classes: list[str]) -> str:
    """A clip's beliefs as a table: one row per frame, one column per class.

    >>> print(format_beliefs(ClipBelief("a.gif", [[0.5, 0.5], [0.1, 0.9]]), ["left", "right"]))
    a.gif: right (90.0 % after frame 2)
      after frame   left  right
                1  50.0%  50.0%
                2  10.0%  90.0%
    """
    name, p = belief.final(classes)
    width = max(6, *(len(c) for c in classes))
    lines = [f"{belief.clip}: {name} ({100 * p:.1f} % after frame {len(belief.probs)})",
             "  after frame " + " ".join(c.rjust(width) for c in classes)]
    for t, row in enumerate(belief.probs, 1):
        lines.append(f"  {t:>11} " + " ".join(f"{100 * v:.1f}%".rjust(width) for v in row))
    return "\n".join(lines)


def predict_command(args: argparse.Namespace) -> tuple[list[ClipBelief], list[str], dict]:
    """Load the checkpoint (refused when it keeps no clip settings) and read every clip;
    returns the beliefs, the class names and the settings."""
    from ..checkpoint import load_checkpoint, read_clip_info
    from ..train import resolve_device

    device = resolve_device(args.device)
    model, info = load_checkpoint(args.checkpoint, device=device)
    classes, settings = read_clip_info(info, args.checkpoint, num_classes=model.config.num_classes)
    return predict_clips(model, classes, settings, args.clips), classes, settings

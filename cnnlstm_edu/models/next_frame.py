"""NextFrame: a ConvLSTM that reads frames of a video and forecasts the ones that follow.

The encoder-forecaster of Shi et al. (2015), in its simplest form: one network that reads k
context frames (encoding), and then keeps going on its own, feeding each predicted frame back
in as the next input (forecasting) for m more frames.

Feeding its own output back is where seed 003's fourth point comes in. In training the
network can be given the *true* previous frame at every step (**teacher forcing**): fast and
stable, but at deployment it only ever sees its own, slightly blurred, predictions, and errors
compound. **Scheduled sampling** (Bengio et al. 2015) closes the gap: during training each step
is fed the model's own previous prediction with probability ``p`` instead of the truth, and
``p`` rises as training goes on (Re3 adds 0.25 with every unroll increase).

Shapes: frames are ``(B, T, 1, H, W)`` with pixels in [0, 1]; the encoder halves H and W twice
with strided convolutions, the ConvLSTM runs on that ``(F, H/4, W/4)`` grid, and a decoder of
transposed convolutions paints the next frame back at ``(1, H, W)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..layers.convlstm import ConvLSTM
from ..layers.time_distributed import TimeDistributed
from ..shapes import check_shape
from ..train import to_float

__all__ = ["NextFrame", "NextFrameConfig", "NextFrameObjective"]


@dataclass
class NextFrameConfig:
    in_channels: int = 1                   # C of a frame
    frame_size: int = 32                   # H = W; must be divisible by 4
    channels: tuple[int, int] = (16, 32)   # the two strided encoder convs (each halves H, W)
    hidden_channels: int = 64              # F: the ConvLSTM's channels on the (H/4, W/4) grid
    num_layers: int = 1                    # stacked ConvLSTM layers
    kernel_size: int = 3                   # the ConvLSTM's gate convolutions
    context: int = 5                       # k: frames read before forecasting (deployment)
    horizon: int = 5                       # m: frames forecast after the context (deployment)


class NextFrame(nn.Module):
    """Frames in, next frames out.

    >>> model = NextFrame(NextFrameConfig())
    >>> clip = torch.rand(2, 5, 1, 32, 32)         # (B, k, C, H, W): the context
    >>> model(clip).shape                          # (B, m, C, H, W): the next 5, autoregressively
    torch.Size([2, 5, 1, 32, 32])
    >>> video = torch.rand(2, 10, 1, 32, 32)       # training: predict frames 1..9 from 0..8
    >>> model.rollout(video, sampling_p=0.5).shape  # logits, (B, T-1, C, H, W)
    torch.Size([2, 9, 1, 32, 32])
    """

    def __init__(self, config: NextFrameConfig | None = None, **overrides) -> None:
        super().__init__()
        config = config or NextFrameConfig()
        if overrides:
            config = NextFrameConfig(**{**asdict(config), **overrides})
        if config.frame_size % 4:
            raise ValueError(f"NextFrame: frame_size must be divisible by 4 (two stride-2 convs), "
                             f"got {config.frame_size}")
        self.config = config
        C, (c1, c2), hidden = config.in_channels, config.channels, config.hidden_channels
        self.encoder = TimeDistributed(nn.Sequential(
            nn.Conv2d(C, c1, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),   # (c1, H/2, W/2)
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),  # (c2, H/4, W/4)
        ))
        self.rnn = ConvLSTM(c2, hidden, config.kernel_size, num_layers=config.num_layers)
        self.decoder = TimeDistributed(nn.Sequential(
            nn.ConvTranspose2d(hidden, c2, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),  # (c2, H/2, W/2)
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),      # (c1, H, W)
            nn.Conv2d(c1, C, 3, padding=1),                                                           # (C, H, W) logits
        ))

    def _check(self, x: torch.Tensor, what: str) -> None:
        c = self.config
        check_shape(x, "B T C H W", what=what, C=c.in_channels, H=c.frame_size, W=c.frame_size,
                    hint="Moving MNIST clips come from moving_mnist(): (N, T, 1, 32, 32) by default.")

    def step(self, frames: torch.Tensor, state=None):
        """Read ``frames`` ``(B, t, C, H, W)``; return next-frame logits ``(B, t, C, H, W)`` and the state."""
        feats = self.encoder(frames)                   # (B, t, c2, H/4, W/4)
        hs, state = self.rnn(feats, state)             # (B, t, F, H/4, W/4)
        return self.decoder(hs), state                 # (B, t, C, H, W): logits of frames 1..t

    def rollout(self, video: torch.Tensor, sampling_p: float = 0.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Training pass: logits for frames ``1..T-1`` of ``video`` ``(B, T, C, H, W)``.

        The input at step t is the true frame t, or, with probability ``sampling_p`` (per clip
        and step), the model's own prediction of it (scheduled sampling). ``sampling_p=0`` is
        teacher forcing, run as one call over all steps.
        """
        self._check(video, "NextFrame.rollout input")
        if not 0.0 <= sampling_p <= 1.0:
            raise ValueError(f"sampling_p is a probability, got {sampling_p}")
        if sampling_p == 0.0:
            logits, _ = self.step(video[:, :-1])       # (B, T-1, C, H, W): all steps in one go
            return logits
        B, T = video.shape[:2]
        use_own = torch.rand(B, T - 1, generator=generator) < sampling_p   # (B, T-1) coin flips
        use_own[:, 0] = False                          # step 0 has no prediction to feed back yet
        use_own = use_own.to(video.device).view(B, T - 1, 1, 1, 1)
        frame, state, out = video[:, :1], None, []
        for t in range(T - 1):
            logits, state = self.step(frame, state)    # (B, 1, C, H, W)
            out.append(logits)
            if t + 1 < T - 1:
                # The prediction goes back in without its gradient: sampling decides *what* the
                # model sees, it is not a path for the loss to flow through.
                own = torch.sigmoid(logits).detach()
                frame = torch.where(use_own[:, t + 1 : t + 2], own, video[:, t + 1 : t + 2])
        return torch.cat(out, dim=1)                   # (B, T-1, C, H, W)

    @torch.no_grad()
    def forecast(self, context: torch.Tensor, horizon: int | None = None) -> torch.Tensor:
        """Read ``context`` ``(B, k, C, H, W)``, then predict ``horizon`` frames feeding each back."""
        self._check(context, "NextFrame context")
        horizon = self.config.horizon if horizon is None else horizon
        logits, state = self.step(context)             # the state after the last true frame
        frame = torch.sigmoid(logits[:, -1:])          # (B, 1, C, H, W): first forecast
        preds = [frame]
        for _ in range(horizon - 1):
            logits, state = self.step(frame, state)
            frame = torch.sigmoid(logits)
            preds.append(frame)
        return torch.cat(preds, dim=1)                 # (B, m, C, H, W), pixels in [0, 1]

    def forward(self, context: torch.Tensor, horizon: int | None = None) -> torch.Tensor:
        return self.forecast(context, horizon)


class NextFrameObjective:
    """What ``train.fit`` optimises and reports for a :class:`NextFrame` model.

    Training loss: per-pixel binary cross-entropy of every predicted frame (pixels are
    intensities in [0, 1]; BCE keeps the strokes sharper than squared error does). With an
    unroll curriculum each batch is a random window of ``unroll + 1`` frames.

    Test metrics, on held-out clips, deployed the way it will be used: read ``context`` true
    frames, then forecast ``horizon`` frames autoregressively. ``test_mse`` is the mean squared
    error of those forecasts; ``copy_last_mse`` is the error of the laziest forecast, repeating
    the last frame seen, the baseline to beat. Both per forecast step too, to show the drift.
    """

    name = "next_frame"
    feeds_back_output = True

    def __init__(self, context: int = 5, horizon: int = 5, batch_size: int = 250) -> None:
        self.context, self.horizon, self.batch_size = context, horizon, batch_size

    def loss(self, model, x, y=None, *, unroll=None, sampling_p=0.0, generator=None):
        if unroll is not None and unroll + 1 < x.shape[1]:
            start = int(torch.randint(x.shape[1] - unroll, (1,), generator=generator))
            x = x[:, start:start + unroll + 1]                       # (b, unroll+1, C, H, W)
        logits = model.rollout(x, sampling_p=sampling_p, generator=generator)  # (b, t-1, C, H, W)
        loss = F.binary_cross_entropy_with_logits(logits.float(), x[:, 1:])
        return loss, torch.zeros((), device=x.device)

    def validation_loss(self, model, x, y, device, unroll=None) -> float:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            clips = to_float(x[:, : unroll + 1] if unroll else x).to(device)
            loss = self.loss(model, clips)[0].item()
        model.train(was_training)
        return loss

    @torch.no_grad()
    def evaluate(self, model, x, y, device) -> dict:
        k, m = self.context, self.horizon
        if x.shape[1] < k + m:
            raise ValueError(f"test clips have {x.shape[1]} frames; context={k} + horizon={m} need {k + m}")
        was_training = model.training
        model.eval()
        se_model = torch.zeros(m)
        se_copy = torch.zeros(m)
        for i in range(0, len(x), self.batch_size):
            clips = to_float(x[i:i + self.batch_size]).to(device)    # (b, T, C, H, W)
            truth = clips[:, k:k + m]                                 # (b, m, C, H, W)
            pred = model.forecast(clips[:, :k], m).float()            # (b, m, C, H, W)
            last = clips[:, k - 1 : k]                                # (b, 1, C, H, W)
            se_model += (pred - truth).square().sum(dim=(0, 2, 3, 4)).cpu()
            se_copy += (last - truth).square().sum(dim=(0, 2, 3, 4)).cpu()
        model.train(was_training)
        per_frame = len(x) * x[0, 0].numel()
        mse, copy = se_model / per_frame, se_copy / per_frame         # (m,) each
        return {"test_loss": mse.mean().item(), "test_mse": mse.mean().item(),
                "copy_last_mse": copy.mean().item(), "ratio": (mse.mean() / copy.mean()).item(),
                "mse_per_step": mse.tolist(), "copy_last_per_step": copy.tolist()}

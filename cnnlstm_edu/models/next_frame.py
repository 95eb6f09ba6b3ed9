"""NextFrame: a ConvLSTM that reads frames of a video and forecasts the ones that follow.

The encoder-forecaster of Shi et al. (2015) in its autoregressive form: one network reads k
context frames (encoding), then keeps going on its own, feeding each predicted frame back in as
the next input (forecasting) for m more frames.

How a frame is painted. Decoding pixels from the state directly gives blurry digits, and the
blur compounds when the blurry frame is fed back in. Digits in Moving MNIST do not change, they
*move*; so, as in Finn et al. (2016, "CDNA", also a ConvLSTM), the network predicts *motion*
instead: from its state it predicts K small normalised kernels (where each pixel's content comes
from, up to ``motion_size // 2`` pixels away) and, per pixel, a soft choice among the K moved
copies of the last frame and an empty background. A confident kernel is a one-hot shift, and a
shifted frame stays as sharp as the frame it came from, however many times it is fed back.

Feeding its own output back is where seed 003's fourth point comes in. In training the network
can be given the *true* previous frame at every step (**teacher forcing**): fast and stable, but
at deployment it only ever sees its own predictions, and errors compound. **Scheduled sampling**
(Bengio et al. 2015) closes the gap: during training each step is fed the model's own previous
prediction with probability ``p`` instead of the truth, and ``p`` rises as training goes on.

Shapes: frames are ``(B, T, C, H, W)`` with pixels in [0, 1]. Each step's input is the frame
and its difference from the previous frame, ``(2C, H, W)``, so motion is visible locally; the
encoder halves H and W twice with strided convolutions, the ConvLSTM runs on that
``(F, H/4, W/4)`` grid, and the state carried between calls is the ConvLSTM's ``(h, c)`` plus
the last frame seen.

Measured (``benchmarks/tricks.md``): on a 2-core CPU, 120 s of training with the defaults
forecast 5 frames with a third of the copy-the-last-frame error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..layers.convlstm import ConvLSTM
from ..layers.time_distributed import TimeDistributed
from ..shapes import check_float, check_shape, fold_time, unfold_time
from ..modes import eval_mode
from ..pixels import to_float

__all__ = ["NextFrame", "NextFrameConfig", "NextFrameObjective"]


@dataclass
class NextFrameConfig:
    in_channels: int = 1                   # C of a frame
    frame_size: int = 32                   # H = W; must be divisible by 4
    channels: tuple[int, int] = (16, 32)   # the two strided encoder convs (each halves H, W)
    hidden_channels: int = 32              # F: the ConvLSTM's channels on the (H/4, W/4) grid
    num_layers: int = 1                    # stacked ConvLSTM layers
    kernel_size: int = 3                   # the ConvLSTM's gate convolutions
    num_motions: int = 2                   # K: motion kernels (one per independently moving object)
    motion_size: int = 7                   # M: a kernel moves content up to M // 2 pixels per frame
    context: int = 5                       # k: frames read before forecasting (deployment)
    horizon: int = 5                       # m: frames forecast after the context (deployment)


class NextFrame(nn.Module):
    """Frames in, next frames out.

    >>> model = NextFrame(NextFrameConfig())
    >>> clip = torch.rand(2, 5, 1, 32, 32)         # (B, k, C, H, W): the context
    >>> model(clip).shape                          # (B, m, C, H, W): the next 5, autoregressively
    torch.Size([2, 5, 1, 32, 32])
    >>> video = torch.rand(2, 10, 1, 32, 32)       # training: predict frames 1..9 from 0..8
    >>> model.rollout(video, sampling_p=0.5).shape  # (B, T-1, C, H, W), pixels in [0, 1]
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
        if config.motion_size % 2 == 0 or config.motion_size < 1:
            raise ValueError(f"NextFrame: motion_size must be odd (a kernel has a centre), got {config.motion_size}")
        self.config = config
        C, (c1, c2), hidden = config.in_channels, config.channels, config.hidden_channels
        K, M = config.num_motions, config.motion_size
        self.encoder = TimeDistributed(nn.Sequential(
            nn.Conv2d(2 * C, c1, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),  # (c1, H/2, W/2)
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),  # (c2, H/4, W/4)
        ))
        self.rnn = ConvLSTM(c2, hidden, config.kernel_size, num_layers=config.num_layers)
        grid = (config.frame_size // 4) ** 2
        # Kernels from the whole state map, flattened as in CDNA: an average over the map would
        # dilute the few cells where the digit is, and every clip would get the same kernels.
        self.motion = nn.Linear(hidden * grid, K * M * M)
        self.masks = nn.Conv2d(hidden, K + 1, 1)         # per pixel: which moved copy, or empty
        # Start as "copy the last frame": kernels peaked at their centre (no motion) and the
        # empty background rarely chosen. From uniform kernels the network sits in a flat valley
        # where blurring everything is the best it can do, and learns very slowly.
        with torch.no_grad():
            centre = torch.zeros(K, M, M)
            centre[:, M // 2, M // 2] = 5.0
            self.motion.bias.copy_(centre.flatten())
            self.masks.bias.copy_(torch.tensor([0.0] * K + [-3.0]))

    def _check(self, x: torch.Tensor, what: str) -> None:
        c = self.config
        check_shape(x, "B T C H W", what=what, C=c.in_channels, H=c.frame_size, W=c.frame_size,
                    hint="Moving MNIST clips come from moving_mnist(): (N, T, 1, 32, 32) by default.")
        check_float(x, what)

    def step(self, frames: torch.Tensor, state=None):
        """Read ``frames`` ``(B, t, C, H, W)``; return the next frames ``(B, t, C, H, W)`` and the state.

        ``state`` is ``None`` (a new video) or the one returned by the previous call:
        ``((h, c), last_frame)``.
        """
        B, t, C, H, W = frames.shape
        K, M = self.config.num_motions, self.config.motion_size
        rnn_state, prev = state if state is not None else (None, frames[:, :1])
        # Each step also sees what changed since the previous frame: motion made visible.
        before = torch.cat([prev, frames[:, :-1]], dim=1)           # (B, t, C, H, W): frames t-1
        inputs = torch.cat([frames, frames - before], dim=2)        # (B, t, 2C, H, W)
        hs, rnn_state = self.rnn(self.encoder(inputs), rnn_state)   # (B, t, F, H/4, W/4)
        state = (rnn_state, frames[:, -1:])
        h = fold_time(hs)                                           # (B*t, F, H/4, W/4)
        N = h.shape[0]                                              # N = B*t frames
        kernels = self.motion(h.flatten(1)).view(N, K, M * M).softmax(-1)  # (N, K, M*M): sum to 1
        # Each frame moved by its own K kernels: one grouped convolution, a group per (frame, channel).
        weight = kernels.view(N, 1, K, M, M).expand(N, C, K, M, M).reshape(N * C * K, 1, M, M)
        moved = F.conv2d(fold_time(frames).reshape(1, N * C, H, W), weight, padding=M // 2,
                         groups=N * C)                              # (1, N*C*K, H, W)
        moved = moved.view(N, C, K, H, W)
        masks = F.interpolate(self.masks(h), size=(H, W), mode="bilinear", align_corners=False)
        masks = masks.softmax(1)                                    # (N, K+1, H, W): sum to 1 per pixel
        nxt = (moved * masks[:, None, :K]).sum(2)                   # (N, C, H, W); mask K paints black
        return unfold_time(nxt, steps=t), state                     # (B, t, C, H, W)

    def rollout(self, video: torch.Tensor, sampling_p: float = 0.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Training pass: predictions of frames ``1..T-1`` of ``video`` ``(B, T, C, H, W)``.

        The input at step t is the true frame t, or, with probability ``sampling_p`` (per clip
        and step), the model's own prediction of it (scheduled sampling). ``sampling_p=0`` is
        teacher forcing, run as one call over all steps.
        """
        self._check(video, "NextFrame.rollout input")
        if not 0.0 <= sampling_p <= 1.0:
            raise ValueError(f"sampling_p is a probability, got {sampling_p}")
        if sampling_p == 0.0:
            return self.step(video[:, :-1])[0]          # (B, T-1, C, H, W): all steps in one go
        B, T = video.shape[:2]
        use_own = torch.rand(B, T - 1, generator=generator) < sampling_p   # (B, T-1) coin flips
        use_own[:, 0] = False                          # step 0 has no prediction to feed back yet
        use_own = use_own.to(video.device).view(B, T - 1, 1, 1, 1)
        frame, state, out = video[:, :1], None, []
        for t in range(T - 1):
            pred, state = self.step(frame, state)      # (B, 1, C, H, W)
            out.append(pred)
            if t + 1 < T - 1:
                # The prediction goes back in without its gradient: sampling decides *what* the
                # model sees, it is not a path for the loss to flow through.
                frame = torch.where(use_own[:, t + 1 : t + 2], pred.detach(), video[:, t + 1 : t + 2])
        return torch.cat(out, dim=1)                   # (B, T-1, C, H, W)

    @torch.no_grad()
    def forecast(self, context: torch.Tensor, horizon: int | None = None) -> torch.Tensor:
        """Read ``context`` ``(B, k, C, H, W)``, then predict ``horizon`` frames feeding each back."""
        self._check(context, "NextFrame context")
        horizon = self.config.horizon if horizon is None else horizon
        preds, state = self.step(context)              # the state after the last true frame
        frame = preds[:, -1:]                          # (B, 1, C, H, W): first forecast
        out = [frame]
        for _ in range(horizon - 1):
            frame, state = self.step(frame, state)
            out.append(frame)
        return torch.cat(out, dim=1)                   # (B, m, C, H, W), pixels in [0, 1]

    def forward(self, context: torch.Tensor, horizon: int | None = None) -> torch.Tensor:
        """Deployment: :meth:`forecast` (no gradients). Training goes through :meth:`rollout`."""
        return self.forecast(context, horizon)


def bce(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Binary cross-entropy of pixel intensities, written out (autocast refuses F.binary_cross_entropy)."""
    pred = pred.float().clamp(eps, 1 - eps)
    return -(target * pred.log() + (1 - target) * (1 - pred).log()).mean()


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
        pred = model.rollout(x, sampling_p=sampling_p, generator=generator)  # (b, t-1, C, H, W)
        return bce(pred, x[:, 1:]), torch.zeros((), device=x.device)

    def validation_loss(self, model, x, y, device, unroll=None) -> float:
        with eval_mode(model), torch.no_grad():
            clips = to_float(x[:, : unroll + 1] if unroll else x).to(device)
            return self.loss(model, clips)[0].item()

    @torch.no_grad()
    def evaluate(self, model, x, y, device) -> dict:
        k, m = self.context, self.horizon
        if x.shape[1] < k + m:
            raise ValueError(f"test clips have {x.shape[1]} frames; context={k} + horizon={m} need {k + m}")
        se_model = torch.zeros(m)
        se_copy = torch.zeros(m)
        with eval_mode(model):
            for i in range(0, len(x), self.batch_size):
                clips = to_float(x[i:i + self.batch_size]).to(device)    # (b, T, C, H, W)
                truth = clips[:, k:k + m]                                 # (b, m, C, H, W)
                pred = model.forecast(clips[:, :k], m).float()            # (b, m, C, H, W)
                last = clips[:, k - 1 : k]                                # (b, 1, C, H, W)
                se_model += (pred - truth).square().sum(dim=(0, 2, 3, 4)).cpu()
                se_copy += (last - truth).square().sum(dim=(0, 2, 3, 4)).cpu()
        per_frame = len(x) * x[0, 0].numel()
        mse, copy = se_model / per_frame, se_copy / per_frame         # (m,) each
        return {"test_loss": mse.mean().item(), "test_mse": mse.mean().item(),
                "copy_last_mse": copy.mean().item(), "ratio": (mse.mean() / copy.mean()).item(),
                "mse_per_step": mse.tolist(), "copy_last_per_step": copy.tolist()}

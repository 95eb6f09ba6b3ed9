"""How fast is our ConvLSTM against the usual one? Forward + backward, same weights, same numbers.

The "usual" ConvLSTM, as most public PyTorch implementations write it, runs one convolution per
time step over the concatenation ``[x_t, h]``: the input and the recurrent kernels stacked into
one ``Conv2d`` with ``C + F`` input channels. Ours (``cnnlstm_edu.layers.convlstm.ConvLSTM``)
has two strategies for the input half of the gates, timed here side by side:

* ``hoisted``: one convolution over all T frames before the time loop (time folded into the
  batch), only the recurrent convolution inside it. The default on a GPU.
* ``per_step``: one convolution over ``[x_t, h]`` per step, like the reference, but the first
  step from a zero state convolves ``x_0`` alone, and the steps are taken with ``unbind`` (so
  backward gathers their gradients in one pass). The default on a CPU.

All three do the same arithmetic; the script first checks that they give the same output, state
and input gradient with shared weights, then times them, taking turns run by run.

    python benchmarks/convlstm_speed.py                  # CPU, writes benchmarks/convlstm_speed.md
    python benchmarks/convlstm_speed.py --device cuda --out benchmarks/convlstm_speed_cuda.md
    python benchmarks/convlstm_speed.py --quick          # tiny sizes, one run each: a smoke test

Needs only torch and this package.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cnnlstm_edu.bench import time_once_ms  # noqa: E402
from cnnlstm_edu.layers.convlstm import ConvLSTM  # noqa: E402
from common import hardware  # noqa: E402


class ConcatConvLSTM(nn.Module):
    """The reference: per step, ``conv(cat([x_t, h]))`` -> 4F channels -> i, f, g, o.

    One layer, 'same' padding (odd kernels), zero initial state, batch first.
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.conv = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size,
                              padding=kernel_size // 2)

    def forward(self, x: torch.Tensor):
        B, T, C, H, W = x.shape
        h = c = x.new_zeros(B, self.hidden_channels, H, W)
        hs = []
        for t in range(T):
            gates = self.conv(torch.cat([x[:, t], h], dim=1))  # (B, 4F, H, W)
            i, f, g, o = gates.chunk(4, dim=1)                  # (B, F, H, W) each
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            hs.append(h)
        return torch.stack(hs, dim=1), (h, c)  # (B, T, F, H, W)

    @classmethod
    def from_convlstm(cls, rnn: ConvLSTM) -> "ConcatConvLSTM":
        """The same layer with ``rnn``'s weights: [W_ih | W_hh] side by side, biases summed."""
        ref = cls(rnn.in_channels, rnn.hidden_channels, rnn.kernel_size[0])
        with torch.no_grad():
            ref.conv.weight.copy_(torch.cat([rnn.weight_ih_l0, rnn.weight_hh_l0], dim=1))  # (4F, C+F, k, k)
            ref.conv.bias.copy_(rnn.bias_ih_l0 + rnn.bias_hh_l0)
        return ref.to(rnn.weight_ih_l0.device)


@dataclass
class Size:
    B: int
    T: int
    C: int
    H: int
    W: int
    F: int
    k: int

    def __str__(self) -> str:
        return f"B={self.B} T={self.T} C={self.C} H×W={self.H}×{self.W} F={self.F} k={self.k}"


SIZES = [
    Size(B=64, T=4, C=16, H=7, W=7, F=32, k=3),      # CNN-ConvLSTM on MNIST quadrants: small maps, big batch
    Size(B=16, T=10, C=32, H=32, W=32, F=64, k=3),   # Moving-MNIST-like forecaster features
]
QUICK_SIZES = [Size(B=2, T=3, C=2, H=5, W=5, F=4, k=3)]


STRATEGIES = ("per_step", "hoisted")


def _run(model: nn.Module, x: torch.Tensor):
    """(output, h, c) of one layer, shaped alike for ours and the reference."""
    output, (h, c) = model(x)
    return output, h.reshape(c.shape[-4:]), c.reshape(c.shape[-4:])  # ours: (1, B, ...) -> (B, ...)


def check_same_numbers(ours: ConvLSTM, ref: ConcatConvLSTM, x: torch.Tensor) -> None:
    """Same outputs and input gradients with shared weights, else the timing would mean nothing."""
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # TF32 convolutions round differently per algorithm
    try:
        results = []
        for strategy in (*STRATEGIES, None):
            model = ref if strategy is None else ours
            ours.input_conv = strategy or "auto"
            xg = x.detach().clone().requires_grad_()
            out = _run(model, xg)
            out[0].sum().backward()
            results.append((*out, xg.grad))
        for other in results[1:]:
            for a, b in zip(results[0], other):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
        ours.input_conv = "auto"
        for model in (ours, ref):
            model.zero_grad(set_to_none=True)


def bench_size(size: Size, device: torch.device, repeats: int, warmup: int) -> dict:
    torch.manual_seed(0)
    ours = ConvLSTM(size.C, size.F, size.k).to(device)
    ref = ConcatConvLSTM.from_convlstm(ours)
    x = torch.randn(size.B, size.T, size.C, size.H, size.W, device=device)  # (B, T, C, H, W)
    check_same_numbers(ours, ref, x)

    # The input needs its gradient too: in a CNN-ConvLSTM it comes from the frame CNN.
    xg = x.detach().clone().requires_grad_()

    def train_step(model):
        model.zero_grad(set_to_none=True)
        xg.grad = None
        model(xg)[0].sum().backward()

    def inference(model):
        with torch.no_grad():
            model(x)

    contenders = {"per_step": ours, "hoisted": ours, "reference": ref}
    times = {(name, kind): [] for name in contenders for kind in ("train", "infer")}
    for i in range(warmup + repeats):
        # Interleaved, one run of each per round, so that a background load that comes and goes
        # slows every contender alike instead of whichever ran at the time.
        for name, model in contenders.items():
            ours.input_conv = name if name in STRATEGIES else "auto"
            for kind, fn in (("train", train_step), ("infer", inference)):
                ms = time_once_ms(lambda: fn(model))
                if i >= warmup:
                    times[name, kind].append(ms)
    ours.input_conv = "auto"
    row = {"size": str(size), "load": load_average(),
           "default": "hoisted" if ours._hoists(x) else "per_step"}
    row.update({f"{name}_{kind}": statistics.median(t) for (name, kind), t in times.items()})
    return row


def load_average() -> str:
    """The 1-minute load average: other work on the machine slows both implementations."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "n/a"


def to_markdown(rows: list[dict], device: torch.device, repeats: int, warmup: int, command: str) -> str:
    out = [
        "# ConvLSTM speed: ours (per-step and hoisted input convolution) vs. the usual ConvLSTM",
        "",
        f"Generated by `{command}`. Device: **{device.type}**. Median of {repeats} runs after "
        f"{warmup} warm-up runs (the contenders take turns, run by run), float32, one layer, zero "
        "initial state, 'same' padding. *train* is forward + backward (gradients for the weights "
        "and the input), *infer* is a forward under `no_grad`. The reference runs one convolution "
        "over `cat([x_t, h])` per step, as most public PyTorch ConvLSTMs do. All were first checked "
        "to give the same output, state and input gradient with shared weights. *vs. reference* "
        "> 1 means ours is faster. **Bold** is the strategy `ConvLSTM` uses by default on this "
        "device. The load average (1 minute, after each size) above the thread count means other "
        "processes were competing for the cores, and the numbers are noisier.",
        "",
        *hardware(device),
        "",
        "| size | ConvLSTM | train (ms) | vs. reference | infer (ms) | vs. reference | load avg |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        for name in (*STRATEGIES, "reference"):
            label = f"**ours, {name}**" if name == r["default"] else (
                "reference" if name == "reference" else f"ours, {name}")
            train, infer = r[f"{name}_train"], r[f"{name}_infer"]
            out.append(
                f"| {r['size'] if name == STRATEGIES[0] else ''} | {label} | {train:.1f} | "
                f"{r['reference_train'] / train:.2f}× | {infer:.1f} | {r['reference_infer'] / infer:.2f}× | "
                f"{r['load'] if name == STRATEGIES[0] else ''} |"
            )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run each, prints only")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    parser.add_argument("--out", type=Path, default=None,
                        help="markdown file to write (default: benchmarks/convlstm_speed.md; none with --quick)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False on this machine")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # pick the fastest conv algorithm for each shape
    sizes, repeats, warmup = (QUICK_SIZES, 1, 0) if args.quick else (SIZES, args.repeats, args.warmup)
    out = args.out if args.out is not None or args.quick else Path(__file__).with_suffix(".md")

    rows = []
    for size in sizes:
        row = bench_size(size, device, repeats, warmup)
        rows.append(row)
        print(f"{row['size']}:", "; ".join(
            f"{name} train {row[name + '_train']:.1f} ms, infer {row[name + '_infer']:.1f} ms"
            for name in (*STRATEGIES, "reference")), flush=True)
    command = " ".join(["python benchmarks/convlstm_speed.py", *(sys.argv[1:] if argv is None else argv)])
    text = to_markdown(rows, device, repeats, warmup, command)
    if out is not None:
        out.write_text(text)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""One streamed frame in PyTorch eager, torch.compile and onnxruntime (issue 18).

The same one-step graph in three runtimes: ``cnnlstm_edu.deploy.step_module(model)`` called by
PyTorch (eager, and compiled by ``torch.compile`` when this machine can), and the ONNX file that
``export_onnx`` writes, run by onnxruntime. Each call is one frame ``(B, C, H, W)`` and the
state in, the result and the new state out, as a deployed stream runs it.

- latency: milliseconds per frame at batch 1 (one video);
- throughput: frames per second at batch 64 (64 videos, one frame each per call).

The runtimes are timed in interleaved rounds (a round times each of them in turn), so a change
in the machine's load hits all three alike; the table gives medians over rounds and the ratios
to eager. Both runtimes get the same number of threads: a table for 1 thread, and one for
torch's default (the core count), since on a busy machine extra threads can slow a step down.

    python benchmarks/deploy.py                     # the course's CNN-LSTM; writes deploy.md
    python benchmarks/deploy.py --model cnn_convlstm --out deploy_convlstm.md
    python benchmarks/deploy.py --quick             # a few rounds, prints, writes nothing
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import hardware  # noqa: E402

from cnnlstm_edu import save_checkpoint  # noqa: E402
from cnnlstm_edu.deploy import export_onnx, step_module  # noqa: E402
from cnnlstm_edu.models import build_model  # noqa: E402


def _inputs(step, batch: int) -> tuple[torch.Tensor, ...]:
    c = step.model.config
    frame = torch.rand(batch, c.in_channels, c.frame_size, c.frame_size)   # (B, C, H, W)
    return (frame,) + tuple(s.zeros(batch) for s in step.states)


def _runners(step, path: Path, threads: int) -> dict:
    """name -> (make(batch) -> a function that runs one step, or the reason it can't run)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = ["frame"] + [s.name for s in step.states]

    def eager(batch):
        args = _inputs(step, batch)
        return lambda: step(*args)

    def onnxruntime(batch):
        feeds = {n: a.numpy() for n, a in zip(names, _inputs(step, batch))}
        return lambda: session.run(None, feeds)

    runners = {"torch eager": eager}
    try:
        compiled = torch.compile(step, dynamic=False)
        with torch.no_grad():
            for batch in (1, 64):                    # compile both shapes now, not in the timing
                compiled(*_inputs(step, batch))
        runners["torch.compile"] = lambda batch: (lambda args: (lambda: compiled(*args)))(_inputs(step, batch))
    except Exception as e:  # noqa: BLE001  inductor needs a C++ compiler; say why it's missing
        runners["torch.compile"] = f"did not run on this machine: {type(e).__name__}: {str(e)[:160]}"
    runners["onnxruntime"] = onnxruntime
    return runners


def _time(fn, calls: int) -> float:
    """Seconds per call over ``calls`` calls."""
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


@torch.no_grad()
def measure(step, path: Path, rounds: int, threads: int) -> tuple[dict, list[float]]:
    """``{(runtime, batch): median seconds per call}`` (or the reason), and the load averages."""
    runners = _runners(step, path, threads)
    ready = {name: r for name, r in runners.items() if callable(r)}
    results: dict = {name: r for name, r in runners.items() if not callable(r)}
    loads = []
    for batch, calls in ((1, 50), (64, 5)):
        fns = {name: make(batch) for name, make in ready.items()}
        for fn in fns.values():
            fn(), fn()                               # warm up: allocations, first-call paths
        samples = {name: [] for name in fns}
        for _ in range(rounds):
            for name, fn in fns.items():
                samples[name].append(_time(fn, calls))
            loads.append(os.getloadavg()[0])
        for name, s in samples.items():
            results[(name, batch)] = statistics.median(s)
    return results, loads


def table(results: dict) -> str:
    rows = ["| runtime | latency, batch 1 (ms per frame) | vs eager | throughput, batch 64 (frames/s) | vs eager |",
            "|:---|---:|---:|---:|---:|"]
    for name in ("torch eager", "torch.compile", "onnxruntime"):
        if isinstance(results.get(name), str):
            rows.append(f"| {name} | {results[name]} | | | |")
            continue
        lat, per64 = results[(name, 1)], results[(name, 64)]
        speed_up = results[("torch eager", 1)] / lat
        fps, fps_eager = 64 / per64, 64 / results[("torch eager", 64)]
        rows.append(f"| {name} | {lat * 1e3:.3f} | {speed_up:.2f}x | {fps:,.0f} | {fps / fps_eager:.2f}x |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="cnn_lstm", choices=["cnn_lstm", "cnn_convlstm", "next_frame", "tracker"])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, torch.get_num_threads()],
                        help="threads for torch and onnxruntime alike; a table for each")
    parser.add_argument("--out", default=None, help="default: benchmarks/deploy.md")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rounds = 2 if args.quick else args.rounds
    torch.manual_seed(0)
    model = build_model(args.model).eval()           # the defaults: the course's models
    step = step_module(model)
    folder = Path(tempfile.mkdtemp())
    onnx_path = export_onnx(model, folder / f"{args.model}.onnx")
    ckpt_path = save_checkpoint(model, folder / f"{args.model}.safetensors")
    sections = []
    for threads in dict.fromkeys(args.threads):      # in order, each once
        torch.set_num_threads(threads)
        load_before = os.getloadavg()[0]
        results, loads = measure(step, onnx_path, rounds, threads)
        sections.append(f"## {threads} thread{'s' if threads > 1 else ''}\n\n{table(results)}\n\n"
                        f"1-minute load average: {load_before:.2f} before this table, {min(loads):.2f} to "
                        f"{max(loads):.2f} during it, on {os.cpu_count()} cores.\n")
        print(sections[-1], flush=True)
    sizes = (f"File sizes: ONNX graph {onnx_path.stat().st_size / 1024:.0f} kB, safetensors checkpoint "
             f"{ckpt_path.stat().st_size / 1024:.0f} kB ({sum(p.numel() for p in model.parameters()):,} "
             "parameters, float32).")
    print(sizes)
    if args.quick:
        return 0
    out = Path(args.out) if args.out else HERE / "deploy.md"
    command = "python benchmarks/deploy.py" + ("" if args.model == "cnn_lstm" else f" --model {args.model}")
    out.write_text("\n".join([
        f"# Deploy: one streamed frame in three runtimes ({args.model})", "",
        f"Generated by `{command}`. The one-step graph of the default `{args.model}` (untrained: speed does "
        "not depend on the weights), called with one frame `(B, C, H, W)` and the state, returning the "
        "result and the new state, as a stream runs it. *torch eager* and *torch.compile* call "
        "`cnnlstm_edu.deploy.step_module(model)`; *onnxruntime* runs the file `export_onnx` wrote. "
        f"Median of {rounds} interleaved rounds (each round times every runtime in turn: 50 calls at "
        "batch 1, 5 at batch 64), after two warm-up calls; torch and onnxruntime get the same number of "
        "threads. *vs eager* above 1 means faster than PyTorch eager, measured in the same run.",
        "", *hardware("cpu"), "", sizes, "", *sections,
        "Other work on the machine shows in the load average under each table. The ratios are "
        "measured side by side, round by round, so they hold better than the absolute times. With "
        "more threads than free cores, every parallel region of an operation waits for its threads to "
        "be scheduled; PyTorch eager runs many small operations per frame and suffers most.", ""]))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

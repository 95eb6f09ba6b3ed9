"""Shared by the benchmark scripts: run the CLI as a user does, and say where it ran."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def train_cli(*args: str) -> dict:
    """Run ``python -m cnnlstm_edu train ARGS --json`` in a fresh process; return its JSON result.

    Adds ``wall_seconds`` (the whole process), ``command`` (as a user would type it) and
    ``load`` (the 1-minute load average at the end: above the core count, other work shared
    the CPU and the run got fewer steps than a quiet machine gives).
    """
    cmd = [sys.executable, "-m", "cnnlstm_edu", "train", *args, "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - t0
    result["command"] = "python -m cnnlstm_edu train " + " ".join(args)
    result["load"] = os.getloadavg()[0]
    print(f"{result['command']}: done in {result['wall_seconds']:.0f}s", flush=True)
    return result


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device | str = "cpu") -> list[str]:
    """Markdown bullet lines describing where a benchmark ran."""
    device = torch.device(device)
    lines = [
        f"- date: {datetime.date.today().isoformat()}",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores visible, torch uses "
        f"{torch.get_num_threads()} threads)",
        f"- torch {torch.__version__}, Python {platform.python_version()}, {platform.system()}",
    ]
    if device.type == "cuda":
        lines.insert(1, f"- GPU: {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, "
                        f"cuDNN {torch.backends.cudnn.version()})")
    return lines

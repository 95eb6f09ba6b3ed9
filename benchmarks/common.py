"""What every benchmark table states: the machine, the software, the date."""

from __future__ import annotations

import datetime
import os
import platform

import torch


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
        lines.insert(1, f"- GPU: {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})")
    return lines

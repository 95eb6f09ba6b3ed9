"""Where training runs: picking the device, naming it for people, and its mixed precision."""

from __future__ import annotations

import torch

__all__ = ["autocast", "device_name", "resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` means CUDA when there is a GPU, else the CPU.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for, but torch sees no GPU here; use 'cpu' or 'auto'")
    return device


def device_name(device: torch.device) -> str:
    """A name for people: ``"cpu"`` or ``"cuda (NVIDIA H100 80GB HBM3)"``.

    >>> device_name(torch.device("cpu"))
    'cpu'
    """
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def autocast(device: torch.device):
    """bf16 autocast on CUDA, nothing on a CPU.

    bf16 roughly doubles matmul/conv throughput on recent GPUs and needs no loss scaling; on a
    CPU it is slower than float32 for models this small, so it stays off.
    """
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

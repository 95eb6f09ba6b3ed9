"""Where training runs: picking the device, naming it for people, and its mixed precision."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["autocast", "device_name", "place_model", "resolve_device"]


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


def place_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device``, its 4-D weights (2-D convolutions) in channels-last layout.

    Channels-last ``(N, H, W, C)`` in memory is the layout oneDNN and cuDNN 2-D convolutions
    prefer. ``model.to(memory_format=torch.channels_last)`` would also try it on every 5-D
    tensor, and torch refuses that ("required rank 4 tensor"): channels-last is a layout of
    4-D tensors, and a 3-D convolution's weights are 5-D. So the layout is given one weight at
    a time, where it applies (2-D convolutions, ConvLSTM gates), and the rest stays as it was.

    >>> model = place_model(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv3d(4, 4, 3)), torch.device("cpu"))
    >>> model[0].weight.is_contiguous(memory_format=torch.channels_last)    # (4, 1, 3, 3)
    True
    >>> model[1].weight.is_contiguous()                                     # (4, 4, 3, 3, 3): as it was
    True
    """
    model.to(device)
    for param in model.parameters():
        if param.dim() == 4:
            # .data keeps the Parameter object (and any reference to it); only its storage changes.
            param.data = param.data.contiguous(memory_format=torch.channels_last)
    return model

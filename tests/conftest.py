"""Shared test options and fixtures: ``--update-golden`` rewrites the golden files of printed
tables; ``digits`` are real MNIST test digits; ``video`` makes random clips; ``free_port`` finds a loopback port for a test server."""

import socket
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).parent / "golden"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/*.txt from the current output instead of comparing")


@pytest.fixture
def golden(request):
    """``golden("name", text)`` compares ``text`` with tests/golden/name.txt (or rewrites it)."""
    update = request.config.getoption("--update-golden")

    def check(name: str, text: str) -> None:
        path = GOLDEN / f"{name}.txt"
        if update:
            path.write_text(text + "\n")
            return
        assert path.exists(), f"{path} is missing: run pytest --update-golden once and review it"
        assert text + "\n" == path.read_text(), f"{path.name} changed; if on purpose, run pytest --update-golden"

    return check


@pytest.fixture(scope="session")
def digits():
    """MNIST's first 1024 test digits: images uint8 (1024, 28, 28) and labels int64 (1024,)."""
    from cnnlstm_edu.data import load_mnist

    images, labels = load_mnist("test")
    return images[:1024], labels[:1024]


@pytest.fixture
def video():
    """``video(b=2, t=4, c=1, h=14, w=14)``: a random clip batch (B, T, C, H, W), quadrant-sized."""
    def make(b: int = 2, t: int = 4, c: int = 1, h: int = 14, w: int = 14) -> torch.Tensor:
        return torch.randn(b, t, c, h, w)   # (B, T, C, H, W)
    return make


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """``free_port()``: a TCP port free on 127.0.0.1 right now (test servers bind loopback only)."""
    return _free_port

"""Shared test options: ``--update-golden`` rewrites the golden files of printed tables."""

from pathlib import Path

import pytest

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

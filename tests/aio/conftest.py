"""tests/aio uses the two-hosts helpers of tests/stack (two stacks over a memory link)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "stack"))

from twohosts import default_seed  # noqa: E402


@pytest.fixture
def seed() -> int:
    value = default_seed()
    print(f"FaultInjector seed={value} (set USTACK_TEST_SEED to replay another)")
    return value


@pytest.fixture(autouse=True)
def private_run_directory(tmp_path_factory, monkeypatch):
    """Control sockets in a directory of this test's own, never /run/ustack."""
    directory = tmp_path_factory.mktemp("run")
    monkeypatch.setenv("USTACK_RUN_DIR", str(directory))
    return directory

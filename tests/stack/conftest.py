"""Fixtures for tests/stack (the helpers themselves live in twohosts.py)."""

from __future__ import annotations

import pytest

from twohosts import default_seed


@pytest.fixture
def seed() -> int:
    value = default_seed()
    print(f"FaultInjector seed={value} (set USTACK_TEST_SEED to replay another)")
    return value

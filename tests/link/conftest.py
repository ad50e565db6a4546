"""Fixtures for the link tests (the helpers themselves are in link_helpers.py)."""

from __future__ import annotations

import pytest

from link_helpers import ScriptedLink


@pytest.fixture
def scripted_link():
    return ScriptedLink()

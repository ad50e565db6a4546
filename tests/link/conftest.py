"""Fixtures for the link tests (the helpers themselves are in link_helpers.py)."""

from __future__ import annotations

import pytest

from link_helpers import ScriptedLink

from ustack.link import vnet


@pytest.fixture
def scripted_link():
    return ScriptedLink()


@pytest.fixture
def buffers_handed_over(monkeypatch):
    """The TUN link hands super-segments over in the buffer it read them into (vnet.HANDS_OVER_BUFFERS),
    as it does on CPython, whichever Python runs the test: what the tests of that hand-over and of
    LinkBuffer's mark look at. (On PyPy the link copies them instead: test_vnet.py.)"""
    monkeypatch.setattr(vnet, "HANDS_OVER_BUFFERS", True)


@pytest.fixture
def buffers_copied(monkeypatch):
    """The TUN link copies super-segments as it does on PyPy (vnet.HANDS_OVER_BUFFERS False)."""
    monkeypatch.setattr(vnet, "HANDS_OVER_BUFFERS", False)

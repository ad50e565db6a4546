"""Harnesses that drive ustack's real host (stack.py) on virtual time: for tests, benchmarks
and labs. Sans-IO like the host itself: no sockets, no clock."""

from __future__ import annotations

"""ustack: a user-space TCP/IP stack in Python over a Linux TUN device."""

from __future__ import annotations

from . import compat

compat.install()  # what PyPy 3.9 lacks (compat.py); nothing on CPython 3.11

__version__ = "0.1.0"

"""The TCP core: sans-IO connections and listeners (RFC 9293), on virtual time.

See docs in each module; connection.py is the place to start reading.
"""

from __future__ import annotations

from ustack.tcp.config import TcpConfig
from ustack.tcp.connection import Connection
from ustack.tcp.errors import TcpCallError, TcpError
from ustack.tcp.events import (
    ConnectionFailed,
    ConnectionSnapshot,
    DataReadable,
    EndOfStream,
    Event,
    SendSpaceAvailable,
    StateChanged,
    UrgentDataArrived,
    segment_summary,
)
from ustack.tcp.listener import Listener
from ustack.tcp.reset import reset_for_unmatched
from ustack.tcp.state import TRANSITIONS, State

__all__ = [
    "TcpConfig",
    "Connection",
    "Listener",
    "State",
    "TRANSITIONS",
    "TcpError",
    "TcpCallError",
    "reset_for_unmatched",
    "Event",
    "StateChanged",
    "DataReadable",
    "EndOfStream",
    "SendSpaceAvailable",
    "UrgentDataArrived",
    "ConnectionFailed",
    "ConnectionSnapshot",
    "segment_summary",
]

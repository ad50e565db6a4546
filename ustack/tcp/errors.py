"""How a connection fails, as the application sees it.

Four distinct outcomes (RFC 9293 3.10 names them "connection refused", "connection reset",
plus the user timeout and a local abort), each with the errno a sockets program would see.
"""

from __future__ import annotations

import enum
import errno as _errno


class TcpError(enum.Enum):
    REFUSED = "refused"  # RST answered our SYN (RFC 9293 3.10.7.3)
    RESET = "reset by peer"  # RST in a synchronized state (RFC 9293 3.10.7.4)
    TIMED_OUT = "timed out"  # retransmissions or keepalive probes exhausted (RFC 1122 4.2.3.5)
    ABORTED = "aborted"  # ABORT by the local user, or close() with unread data

    @property
    def errno(self) -> int:
        return _ERRNOS[self]

    def __str__(self) -> str:
        return self.value


_ERRNOS = {
    TcpError.REFUSED: _errno.ECONNREFUSED,
    TcpError.RESET: _errno.ECONNRESET,
    TcpError.TIMED_OUT: _errno.ETIMEDOUT,
    TcpError.ABORTED: _errno.ECONNABORTED,
}


class TcpCallError(Exception):
    """A user call the current state does not allow (RFC 9293 3.10: "error: connection closing").

    `reason` is a snake_case name; `errno` the matching errno value.
    """

    def __init__(self, reason: str, message: str, errno: int):
        super().__init__(message)
        self.reason = reason
        self.errno = errno


def call_error(reason: str, error: TcpError | None = None) -> TcpCallError:
    """The exception for a refused user call; a failed connection reports its TcpError."""
    if error is not None:
        return TcpCallError(error.name.lower(), f"connection {error.value}", error.errno)
    message, number = _CALL_ERRORS[reason]
    return TcpCallError(reason, message, number)


_CALL_ERRORS = {
    "connection_does_not_exist": ("connection does not exist", _errno.ENOTCONN),
    "connection_closing": ("connection closing", _errno.EPIPE),
    "would_block": ("no data available yet", _errno.EAGAIN),
    "foreign_socket_unspecified": ("foreign socket unspecified", _errno.EDESTADDRREQ),
}

"""Turning the core's TcpError into the exceptions Python programs already expect.

The core reports why a connection ended as `conn.error` (REFUSED, RESET, TIMED_OUT, ABORTED, each
with an `errno`). Callers of asyncio and of sockets expect OSError subclasses with the standard
errno, so the runtime converts at this one edge. `OSError(errno, text)` already picks the right
subclass: ECONNREFUSED gives ConnectionRefusedError, ECONNRESET ConnectionResetError, ETIMEDOUT
TimeoutError, ECONNABORTED ConnectionAbortedError.
"""

from __future__ import annotations

import errno
import os

# Used when an error object carries no errno of its own, keyed by its name.
_ERRNO_BY_NAME = {
    "REFUSED": errno.ECONNREFUSED,
    "RESET": errno.ECONNRESET,
    "TIMED_OUT": errno.ETIMEDOUT,
    "TIMEDOUT": errno.ETIMEDOUT,
    "ABORTED": errno.ECONNABORTED,
}


def errno_of(error: object) -> int:
    """The errno number of a core TcpError (an enum member or an exception)."""
    value = getattr(error, "errno", None)
    if isinstance(value, int):
        return value
    name = getattr(error, "name", None) or str(error)
    return _ERRNO_BY_NAME.get(str(name).upper().replace("-", "_"), errno.EIO)


def exception_for(error: object | None) -> OSError | None:
    """The OSError subclass instance that reports `error`, or None for a clean end."""
    if error is None:
        return None
    if isinstance(error, OSError):
        return error
    number = errno_of(error)
    return OSError(number, os.strerror(number))


def os_error(number: int, text: str | None = None) -> OSError:
    return OSError(number, text or os.strerror(number))

"""Socket options: which setsockopt options ustack has, and the TcpConfig field each one sets;
and which recv/send flags it honours.

The option numbers are the kernel's (from the `socket` module), so code written for `socket`
reads the same. Options set before connect() or listen() become the connection's TcpConfig;
set on a connected socket, the core changes them on the open connection (Connection.reconfigure).
"""

from __future__ import annotations


import errno
import socket
import struct
from socket import (
    IPPROTO_TCP,
    MSG_DONTWAIT,
    MSG_PEEK,
    MSG_WAITALL,
    SO_KEEPALIVE,
    SO_RCVBUF,
    SO_SNDBUF,
    SOL_SOCKET,
    TCP_CONGESTION,
    TCP_KEEPCNT,
    TCP_KEEPIDLE,
    TCP_KEEPINTVL,
    TCP_NODELAY,
)
from typing import Any

from ..aio.errors import os_error

TCP_FASTOPEN = getattr(socket, "TCP_FASTOPEN", 23)  # linux/tcp.h; PyPy 3.9's socket does not name it
OPTIONS: dict[tuple[int, int], str] = {
    (IPPROTO_TCP, TCP_NODELAY): "nagle",  # inverted: TCP_NODELAY=1 means nagle=False
    (SOL_SOCKET, SO_KEEPALIVE): "keepalive",
    (SOL_SOCKET, SO_RCVBUF): "receive_buffer_size",
    (SOL_SOCKET, SO_SNDBUF): "send_buffer_size",
    (IPPROTO_TCP, TCP_KEEPIDLE): "keepalive_idle",  # seconds, as with Linux
    (IPPROTO_TCP, TCP_KEEPINTVL): "keepalive_interval",
    (IPPROTO_TCP, TCP_KEEPCNT): "keepalive_probes",
    (IPPROTO_TCP, TCP_CONGESTION): "congestion_control",  # the algorithm's name, as bytes
    # A listener's Fast Open queue (RFC 7413 5.1); TCP_FASTOPEN_CONNECT is the socket's own (fastopen.py).
    (IPPROTO_TCP, TCP_FASTOPEN): "fast_open_queue",
}
# recv/send flags ustack honours; any other flag is refused (EOPNOTSUPP), never ignored.
RECV_FLAGS = MSG_PEEK | MSG_WAITALL | MSG_DONTWAIT
SEND_FLAGS = MSG_DONTWAIT | getattr(socket, "MSG_NOSIGNAL", 0)  # no signals in ustack: NOSIGNAL is a no-op
CONGESTION_NAME_MAX = 16  # Linux's TCP_CA_NAME_MAX: what getsockopt(TCP_CONGESTION) returns
SECONDS_OPTIONS = ("keepalive_idle", "keepalive_interval")


def check_flags(flags: int, allowed: int, call: str) -> None:
    if flags & ~allowed:
        raise os_error(errno.EOPNOTSUPP, f"{call}() flags {flags & ~allowed:#x} are not supported by ustack")


def config_field(level: int, option: int) -> str:
    """The TcpConfig field behind an option; OSError(ENOPROTOOPT) for one ustack does not have."""
    field = OPTIONS.get((level, option))
    if field is None:
        raise os_error(errno.ENOPROTOOPT, f"option ({level}, {option}) is not supported by ustack")
    return field


def setting_for(field: str, value: int | bytes) -> Any:
    """The TcpConfig value for a setsockopt value (an int, or the bytes of a C int; for
    TCP_CONGESTION the name, as Linux: ENOENT when there is no such algorithm)."""
    if field == "congestion_control":
        from ..tcp.congestion import CONGESTION_CONTROLS

        name = bytes(value).split(b"\0", 1)[0].decode("ascii", "replace") if isinstance(value, (bytes, bytearray)) else ""
        if name not in CONGESTION_CONTROLS:
            raise os_error(errno.ENOENT, f"no congestion control {name!r}; ustack has {', '.join(sorted(CONGESTION_CONTROLS))}")
        return name
    if isinstance(value, (bytes, bytearray)):
        (value,) = struct.unpack("i", bytes(value)[:4])
    setting: Any
    if field in ("nagle", "keepalive"):
        setting = bool(value) if field == "keepalive" else not value
    elif field in SECONDS_OPTIONS:
        setting = float(value)  # ustack also takes fractions of a second, for quick labs
    else:
        setting = int(value)
    if not isinstance(setting, bool) and setting <= 0:
        raise os_error(errno.EINVAL, f"{field} must be positive")
    return setting


def option_value(field: str, setting: Any) -> int | float | bytes:
    """What getsockopt returns for a TcpConfig value."""
    if field == "congestion_control":
        return setting.encode().ljust(CONGESTION_NAME_MAX, b"\0")
    if field == "nagle":
        return int(not setting)
    return setting if field in SECONDS_OPTIONS and setting != int(setting) else int(setting)


def apply_options(stream: Any, overrides: dict[str, Any]) -> None:
    """An option set on a connected socket: the core changes it on the open connection
    (Connection.reconfigure, through the transport). Buffer sizes were fixed when the buffers
    were made."""
    if "receive_buffer_size" in overrides or "send_buffer_size" in overrides:
        raise os_error(errno.EISCONN, "ustack fixes SO_RCVBUF/SO_SNDBUF when connecting: set them before connect() or listen()")
    stream.transport.reconfigure(**overrides)

"""TCP Fast Open on ustack.sock (RFC 7413), with Linux's socket calls:

  * `setsockopt(IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)` then `connect()`: with a cookie cached for
    the server (or cookies not required) connect() returns at once and sends nothing; the first
    send of any kind (send, sendall, sendto, sendfile) sends the SYN with the start of its data
    and, blocking, returns with the handshake. Without a cookie connect() is an ordinary one whose
    SYN asks for a cookie. (Linux: tcp_fastopen_defer_connect, then tcp_sendmsg_fastopen from
    tcp_sendmsg, whatever the call.)
  * `sendto(data, MSG_FASTOPEN, address)` on an unconnected socket: connect and send in one call,
    the same way.
  * `setsockopt(IPPROTO_TCP, TCP_FASTOPEN, N)` on a listener: its Fast Open queue
    (TcpConfig.fast_open_queue, options.py); the stack must take Fast Open as a server
    (TcpConfig.fast_open_server, Linux's tcp_fastopen bit 0x2).

The core does the protocol (tcp/fastopen.py: cookies, the SYN's data, what the SYN-ACK takes);
the runtime's create_connection(fast_open=True, data=...) queues the data before the SYN leaves.
As for connect(), a non-blocking socket does not wait (ustack.sock has no EINPROGRESS).
"""

from __future__ import annotations

import errno
import socket as _socket
import struct
from typing import Any

from ..aio.errors import os_error
from ..tcp.fastopen import ClientFastOpen
from ..wire.ipv4 import address_value
from ..wire.ipv6 import address6_value
from .network import _as_coroutine
from .options import SEND_FLAGS, check_flags
from .streams import SEND_AHEAD

TCP_FASTOPEN_CONNECT = getattr(_socket, "TCP_FASTOPEN_CONNECT", 30)  # linux/tcp.h; Python does not name it
MSG_FASTOPEN = getattr(_socket, "MSG_FASTOPEN", 0x20000000)


class FastOpenCalls:
    """The Fast Open side of sockets.Socket (which gives _check_open, _call_timeout, _config,
    _destination, _open_stream, send and the attributes used here)."""

    network: Any
    _stream: Any
    _listening: Any
    # connect() deferred by TCP_FASTOPEN_CONNECT: where the first send goes, (host, port).
    _deferred: tuple[str, int] | None = None
    _fast_open_connect = 0

    def sendto(self, data: bytes, flags_or_address: Any, address: Any = None) -> int:
        """socket.sendto over TCP, as Linux does it: with MSG_FASTOPEN an unconnected socket
        connects to `address` and sends in one call; after a connect() that TCP_FASTOPEN_CONNECT
        deferred, the first sendto (with the flag or without) starts the connection that way; on
        a connected socket the address is not looked at (as send()); an unconnected socket
        without MSG_FASTOPEN gives EPIPE, as the kernel's does."""
        flags, address = (0, flags_or_address) if address is None else (flags_or_address, address)
        self._check_open()  # type: ignore[attr-defined]
        if self._deferred is not None:
            return self._send_on_syn(data, flags & ~MSG_FASTOPEN)
        if self._stream is not None:
            if flags & MSG_FASTOPEN:
                raise os_error(errno.EISCONN)
            return self.send(data, flags)  # type: ignore[attr-defined]
        if self._listening is not None:
            raise os_error(errno.EINVAL, "socket is listening")
        if not flags & MSG_FASTOPEN:
            raise os_error(errno.EPIPE)
        self._deferred = self._destination(address)  # type: ignore[attr-defined]
        return self._send_on_syn(data, flags & ~MSG_FASTOPEN)

    def _send_on_syn(self, data: Any, flags: int) -> int:
        """Open the deferred connection with Fast Open, the start of `data` queued before the SYN
        leaves (on the SYN if a cookie allows); returns once the handshake is done, with how much
        of `data` was taken (up to SEND_AHEAD, as send())."""
        check_flags(flags, SEND_FLAGS, "send")
        host, port = self._deferred  # type: ignore[misc]
        self._deferred = None  # one attempt: a refused or failed one leaves the socket unconnected
        chunk = bytes(memoryview(data)[:SEND_AHEAD])
        opening = self._open_stream(host, port, fast_open=True, data=chunk)  # type: ignore[attr-defined]
        self._stream = self.network.call(opening, self._call_timeout(flags))  # type: ignore[attr-defined]
        return len(chunk)

    def _defers_connect(self, host: str) -> bool:
        """Whether connect() to `host` with TCP_FASTOPEN_CONNECT returns at once, its SYN waiting
        for data: only if that SYN may carry data (a cookie cached for the server, or cookies
        not required), as Linux's tcp_fastopen_defer_connect (tcp_fastopen_cookie_check)."""
        if not self._fast_open_connect:
            return False
        stack = self.network.stack
        config = self._config() or stack.config  # type: ignore[attr-defined]
        remote = address6_value(host) if ":" in host else address_value(host)

        def may_send_data() -> bool:
            client = ClientFastOpen(stack.fast_open_cookies, remote, not config.fast_open_cookie_required)
            return config.fast_open_client and client.may_send_data

        return self.network.call(_as_coroutine(may_send_data))

    def _set_fast_open_connect(self, value: int | bytes) -> None:
        """TCP_FASTOPEN_CONNECT: 0 or 1, before connect() (Linux: EINVAL once connecting)."""
        if isinstance(value, (bytes, bytearray)):
            (value,) = struct.unpack("i", bytes(value)[:4])
        if value not in (0, 1):
            raise os_error(errno.EINVAL, "TCP_FASTOPEN_CONNECT takes 0 or 1")
        if self._stream is not None or self._deferred is not None:
            raise os_error(errno.EINVAL, "TCP_FASTOPEN_CONNECT is set before connect()")
        self._fast_open_connect = int(value)

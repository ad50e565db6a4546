"""Blocking BSD-style sockets over ustack, for scripts and courses: the `socket` module's calls.

    from ustack import sock
    network = sock.Network(stack, link)          # starts ONE background thread for the stack
    sock.set_default_network(network)
    server = sock.create_server(("", 7))         # or network.socket(), bind(), listen()
    client, address = server.accept()
    data = client.recv(4096); client.sendall(data); client.close()
    network.close()

Like the socket module's: `makefile`, `recv_into`, `sendfile`, `recv`/`send` flags (MSG_PEEK,
MSG_WAITALL, MSG_DONTWAIT), timeouts and non-blocking mode, `fileno()` usable with `select`,
`selectors` and `socketserver`, and the functions `create_connection`, `create_server`,
`getaddrinfo`, `setdefaulttimeout`, and TCP Fast Open as Linux offers it (TCP_FASTOPEN_CONNECT,
`sendto(..., MSG_FASTOPEN, address)`, TCP_FASTOPEN: fastopen.py). Errors are OSError subclasses
with the standard errno.

The package, by job: `network` (the stack's thread), `streams` (what runs in that thread),
`sockets` (the Socket class), `options` (setsockopt), `functions` (the module-level functions).
"""

from __future__ import annotations

from socket import (  # the constants are the kernel's, so code written for `socket` reads the same
    AF_INET,
    AF_INET6,
    IPPROTO_IPV6,
    IPPROTO_TCP,
    IPV6_V6ONLY,
    MSG_DONTWAIT,
    MSG_PEEK,
    MSG_WAITALL,
    SHUT_RD,
    SHUT_RDWR,
    SHUT_WR,
    SO_ERROR,
    SO_KEEPALIVE,
    SO_LINGER,
    SO_RCVBUF,
    SO_REUSEADDR,
    SO_SNDBUF,
    SOCK_STREAM,
    SOL_SOCKET,
    TCP_CONGESTION,
    TCP_KEEPCNT,
    TCP_KEEPIDLE,
    TCP_KEEPINTVL,
    TCP_NODELAY,
    gaierror,
)

from .functions import (
    create_connection,
    create_server,
    getaddrinfo,
    getdefaulttimeout,
    set_default_network,
    setdefaulttimeout,
    socket,
)
from .fastopen import MSG_FASTOPEN, TCP_FASTOPEN_CONNECT
from .options import TCP_FASTOPEN
from .sockets import Network, Socket
from .streams import READ_AHEAD, SEND_AHEAD

error = OSError
timeout = TimeoutError
SocketType = Socket

__all__ = [
    "AF_INET", "AF_INET6", "IPPROTO_IPV6", "IPPROTO_TCP", "IPV6_V6ONLY", "MSG_DONTWAIT", "MSG_FASTOPEN", "MSG_PEEK", "MSG_WAITALL", "Network", "READ_AHEAD", "SEND_AHEAD",
    "SHUT_RD", "SHUT_RDWR", "SHUT_WR", "SOCK_STREAM", "SOL_SOCKET", "SO_ERROR", "SO_KEEPALIVE", "SO_LINGER",
    "SO_RCVBUF", "SO_REUSEADDR", "SO_SNDBUF", "Socket", "SocketType", "TCP_CONGESTION", "TCP_FASTOPEN", "TCP_FASTOPEN_CONNECT", "TCP_KEEPCNT", "TCP_KEEPIDLE",
    "TCP_KEEPINTVL", "TCP_NODELAY", "create_connection", "create_server", "error", "gaierror", "getaddrinfo",
    "getdefaulttimeout", "set_default_network", "setdefaulttimeout", "socket", "timeout",
]

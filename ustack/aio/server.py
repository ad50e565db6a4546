"""Server: what start_server / create_server return, shaped like asyncio.Server.

As with asyncio: `sockets` lists one socket-like object per listening address (so
`server.sockets[0].getsockname()` gives the port), `start_serving=False` makes a server that
listens only once `start_serving()` or `serve_forever()` is awaited, `is_serving()` says whether it
listens, `close()` then `wait_closed()` ends it, and `async with server:` does both.

While serving it owns one core Listener. After every round the runtime asks the listener for connections that
completed the three-way handshake (`listener.accept()`) and hands each one to `_accept`, which
wraps it in a TcpTransport with a fresh protocol from the factory.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Callable

from .transport import Runtime, TcpTransport


class ServerSocket:
    """What `Server.sockets` holds: the listening address, read like a socket's (ustack has no
    kernel socket, so there is no file descriptor: fileno() is -1, as for a closed socket).
    An IPv6 address is a 4-tuple (host, port, flowinfo, scope_id) on an AF_INET6 socket."""

    type = socket.SOCK_STREAM
    proto = socket.IPPROTO_TCP

    def __init__(self, address: tuple) -> None:
        self._address = address
        self.family = socket.AF_INET6 if len(address) == 4 else socket.AF_INET

    def getsockname(self) -> tuple:
        return self._address

    def fileno(self) -> int:
        return -1

    def __repr__(self) -> str:
        return f"<ustack ServerSocket laddr={self._address}>"


class Server:
    """A listening TCP server on a ustack AsyncStack, shaped like asyncio.Server."""

    def __init__(self, runtime: Runtime, listen: Callable[[], Any], protocol_factory: Callable[[], asyncio.BaseProtocol],
                 addresses: list[tuple]) -> None:
        self._runtime = runtime
        self._loop = runtime.loop
        self._listen = listen  # makes the core Listener (Stack.listen); called by start_serving
        self.listener: Any = None
        # The socket addresses listened on, as asyncio's sockets give them: ("0.0.0.0", port) and
        # ("::", port, 0, 0) for the wildcards (both for host None), or the stack's own address.
        self.addresses = addresses
        self.address = addresses[0]
        self.port = addresses[0][1]
        self._protocol_factory = protocol_factory
        self._serving = False
        self._ended = False  # close() was called
        self._transports: dict[TcpTransport, None] = {}  # accepted and not yet lost
        self._closed = self._loop.create_future()  # done once closed and every client is gone
        self._serve_forever_future: asyncio.Future | None = None
        # None: take every connection the listener completes, at once (asyncio's behaviour).
        # A callable: take one only while it returns True. The blocking facade uses this so that
        # connections wait in the core's accept queue, bounded by the backlog, until accept().
        self.admission: Callable[[], bool] | None = None

    def __repr__(self) -> str:
        status = "serving" if self._serving else "closed" if self._ended else "not serving"
        return f"<ustack Server port {self.port} {status}, {len(self._transports)} clients>"

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def sockets(self) -> tuple[ServerSocket, ...]:
        """One ServerSocket per listening address; empty once closed (as asyncio's)."""
        return () if self._ended else tuple(ServerSocket(address) for address in self.addresses)

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        """Start listening (for a server made with start_serving=False; nothing to do otherwise)."""
        self._start()

    def _start(self) -> None:
        if self._ended:
            raise RuntimeError(f"server {self!r} is closed")
        if not self._serving:
            self.listener = self._listen()
            self._serving = True

    def close(self) -> None:
        """Stop listening. Connections already accepted go on (as with asyncio.Server.close);
        those completed but never accepted, and half-open ones, are reset."""
        if self._ended:
            return
        self._ended = True
        was_serving, self._serving = self._serving, False
        # CLOSE in LISTEN (RFC 9293 3.10.4, Stack.close_listener): the handshakes in progress and
        # the connections nobody accepted are reset.
        self._runtime.remove_server(self, was_serving)
        if self._serve_forever_future is not None and not self._serve_forever_future.done():
            self._serve_forever_future.cancel()
        self._maybe_closed()

    def close_clients(self) -> None:
        """Close every accepted connection gracefully (asyncio 3.13's Server.close_clients)."""
        for transport in list(self._transports):
            transport.close()

    def abort_clients(self) -> None:
        """Reset every accepted connection."""
        for transport in list(self._transports):
            transport.abort()

    async def wait_closed(self) -> None:
        """Wait until the server is closed and every accepted connection is gone (Python 3.12+
        semantics)."""
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        if self._serve_forever_future is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        self._start()  # as asyncio: serve_forever() starts a server made with start_serving=False
        self._serve_forever_future = self._loop.create_future()
        try:
            await self._serve_forever_future
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serve_forever_future = None

    async def __aenter__(self) -> "Server":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()
        await self.wait_closed()

    # --- for the runtime and the transports -----------------------------------------------------
    def wants_connection(self) -> bool:
        return self.admission is None or self.admission()

    def _accept(self, connection: Any, now: float) -> None:
        try:
            protocol = self._protocol_factory()
        except Exception as exc:
            self._loop.call_exception_handler({"message": "protocol_factory() failed", "exception": exc})
            connection.abort(now)
            self._runtime.poke(connection)
            return
        transport = TcpTransport(self._runtime, connection, protocol, server=self)
        self._transports[transport] = None
        self._runtime.register(transport)
        # Brought up to date (connection_made, data already in) with the round's others, once.
        self._runtime.mark_dirty(transport)

    def _detach(self, transport: TcpTransport) -> None:
        self._transports.pop(transport, None)
        self._maybe_closed()

    def _maybe_closed(self) -> None:
        if self._ended and not self._transports and not self._closed.done():
            self._closed.set_result(None)


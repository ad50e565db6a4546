"""The loop-side halves of ustack sockets: what runs in the stack's thread.

`_Stream` is a connected socket's protocol, with a small read-ahead buffer; `_Listening` a
listening socket's queue of accepted connections. Both can carry a `Readiness`: the file
descriptor that `Socket.fileno()` returns, so that `select`, `selectors` and `socketserver`
can wait for a ustack socket as for a kernel one.
"""

from __future__ import annotations

import asyncio
import errno
import socket as _socket
from collections import deque
from typing import Any, Callable

from ..aio import AsyncStack
from ..aio.errors import os_error

READ_AHEAD = 64 * 1024  # bytes a socket takes out of the connection before recv() asks
SEND_AHEAD = 64 * 1024  # bytes a socket accepts beyond the connection's send buffer


class Readiness:
    """The descriptor `Socket.fileno()` returns: readable exactly while recv() (or accept())
    would not block, writable exactly while send() would not.

    It is one end of a UNIX socket pair; the loop thread holds both ends and sets the two
    conditions independently. Readable: one byte waits in the user's end (sent from ours), read
    back out to clear it. Writable: the user's end's send buffer has room; to clear it, the loop
    fills that buffer (writing from the user's end into ours) and to set it again empties ours."""

    def __init__(self) -> None:
        self._user, self._ours = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        for end in (self._user, self._ours):
            end.setblocking(False)
        self._user.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, 1)  # the kernel's minimum: little to fill
        self.fd = self._user.fileno()
        self._readable = False
        self._writable = True

    def update(self, readable: bool, writable: bool = True) -> None:
        if self.fd < 0:
            return
        if readable != self._readable:
            if readable:
                self._ours.send(b"r")
            else:
                _drain(self._user)
            self._readable = readable
        if writable != self._writable:
            if writable:
                _drain(self._ours)
            else:
                _fill(self._user)
            self._writable = writable

    def close(self) -> None:
        if self.fd >= 0:
            self._user.close()
            self._ours.close()
            self.fd = -1


class Waiters:
    """The coroutines of blocking calls waiting for a change on one socket. A socket serves
    several threads at once, as a kernel socket does (recv() in one while sendall() waits for
    room in another, two threads in accept()), so each waiter has a future of its own and a
    change wakes them all; each then checks its own condition again. (With one shared slot the
    second waiter took the first one's place, and the first slept through its change.)"""

    def __init__(self) -> None:
        self._futures: list[asyncio.Future] = []

    async def wait(self) -> None:
        """Until the next wake_all()."""
        future = asyncio.get_running_loop().create_future()
        self._futures.append(future)
        try:
            await future
        finally:
            self._futures.remove(future)

    def wake_all(self) -> None:
        for future in self._futures:
            if not future.done():
                future.set_result(None)


def _drain(end: _socket.socket) -> None:
    try:
        while end.recv(65536):
            pass
    except BlockingIOError:
        pass


def _fill(end: _socket.socket) -> None:
    chunk = bytes(4096)
    try:
        while True:
            end.send(chunk)
    except BlockingIOError:
        pass


class _Stream(asyncio.Protocol):
    """The loop-side half of a connected socket: a protocol with a small read-ahead buffer."""

    def __init__(self, on_made: Callable[["_Stream"], None] | None = None) -> None:
        self.transport: Any = None
        self.buffer = bytearray()
        self.eof = False
        self.lost = False
        self.error: OSError | None = None  # reported once by the next call, then EPIPE / b""
        self.write_paused = False
        self._waiters = Waiters()  # recv() and send() calls waiting for a change
        self._on_made = on_made
        self.readiness: Readiness | None = None  # made by watch(), for Socket.fileno()

    # --- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=SEND_AHEAD)
        if self._on_made is not None:
            self._on_made(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= READ_AHEAD:
            self.transport.pause_reading()  # the rest waits in the core: the window closes
        self._changed()

    def eof_received(self) -> bool:
        self.eof = True
        self._changed()
        return True  # keep the sending direction open: a half-close, not a close

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None:
            self.error = exc if isinstance(exc, OSError) else os_error(errno.EIO, str(exc))
        self._changed()

    def pause_writing(self) -> None:
        self.write_paused = True
        self._changed()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._changed()

    # --- for Socket -----------------------------------------------------------------------------
    def watch(self) -> int:
        """The readiness descriptor (made on first use), readable while recv() would not block."""
        if self.readiness is None:
            self.readiness = Readiness()
            self._changed()
        return self.readiness.fd

    def _changed(self) -> None:
        self._wake()
        if self.readiness is not None:
            # send() blocks only while the transport holds too much (pause_writing); when lost, it fails at once.
            self.readiness.update(bool(self.buffer) or self.eof or self.lost, not self.write_paused or self.lost)

    def _wake(self) -> None:
        self._waiters.wake_all()

    def _take_error(self) -> OSError | None:
        error, self.error = self.error, None
        return error

    async def recv(self, max_bytes: int, peek: bool = False) -> bytes:
        """Up to max_bytes, waiting for the first; b"" at the end of stream. `peek` (MSG_PEEK)
        leaves the data to be read again."""
        while not (self.buffer or self.eof or self.lost):
            await self._waiters.wait()
        if self.buffer:
            data = bytes(self.buffer[:max_bytes])
            if peek:
                return data
            del self.buffer[:max_bytes]
            if len(self.buffer) < READ_AHEAD and not self.lost:
                self.transport.resume_reading()
            self._changed()
            return data
        error = self._take_error()
        if error is not None:
            raise error
        return b""

    async def send(self, data: bytes) -> int:
        while self.write_paused and not self.lost:
            await self._waiters.wait()
        if self.lost:
            raise self._take_error() or os_error(errno.EPIPE)
        room = SEND_AHEAD - self.transport.get_write_buffer_size()
        count = min(len(data), max(room, 1))
        self.transport.write(data[:count])
        return count


class _Listening:
    """The loop-side half of a listening socket: connections wait in the core's accept queue
    (bounded by the backlog) until accept() asks for one."""

    def __init__(self, runtime: AsyncStack) -> None:
        self.runtime = runtime
        self.server: Any = None
        self.ready: deque[_Stream] = deque()
        self.waiting = 0
        self.backlog = 1
        self._waiters = Waiters()  # accept() calls waiting for a connection
        self.readiness: Readiness | None = None

    def admission(self) -> bool:
        """Take a connection from the core's accept queue: when an accept() waits for one, or,
        once fileno() was asked for (select needs to see it), up to the backlog at once."""
        if self.readiness is not None:
            return len(self.ready) < self.backlog
        return self.waiting > len(self.ready)

    def watch(self) -> int:
        """The readiness descriptor (made on first use), readable while accept() would not block."""
        if self.readiness is None:
            self.readiness = Readiness()
            self._changed()
            self.runtime.request_round()  # take what already waits in the core's accept queue
        return self.readiness.fd

    def _changed(self) -> None:
        self._waiters.wake_all()
        if self.readiness is not None:
            self.readiness.update(bool(self.ready) or not self.server.is_serving())

    def protocol(self) -> _Stream:
        return _Stream(on_made=self._arrived)

    def _arrived(self, stream: _Stream) -> None:
        self.ready.append(stream)
        self._changed()

    def close(self) -> None:
        """Stop listening; an accept() blocked in another thread fails with EBADF."""
        self.server.close()
        self._changed()
        if self.readiness is not None:
            self.readiness.close()

    async def accept(self) -> _Stream:
        self.waiting += 1
        try:
            while not self.ready:
                if not self.server.is_serving():
                    raise os_error(errno.EBADF, "the listening socket was closed")
                self.runtime.request_round()  # take a connection already waiting in the accept queue
                await self._waiters.wait()
            stream = self.ready.popleft()
            self._changed()
            return stream
        finally:
            self.waiting -= 1

"""One TCP connection of the core seen as an `asyncio.Transport`.

The core keeps the real buffers: received data waits in the connection's receive buffer until we
take it with `conn.recv` (taking it is what reopens the advertised window, DESIGN.md rule 5), and
data we send waits in its send buffer until acknowledged. This transport only adds what asyncio
expects on top:

- a small *pending* buffer for writes the send buffer has no room for yet, with the usual write
  buffer limits: above the high-water mark the protocol is told `pause_writing()` (so
  `StreamWriter.drain()` blocks), at or below the low-water mark `resume_writing()`;
- reading on or off: while paused we simply stop calling `conn.recv`, so the receive buffer fills
  and the window the core advertises shrinks to zero; `resume_reading()` takes data again and the
  core sends the window update;
- the protocol callbacks: `connection_made`, `data_received`, `eof_received`,
  `connection_lost(exc)` with ConnectionResetError / TimeoutError / ... from `errors.py`;
- for a protocol that takes its data itself (`pulls_data`: runtime.StreamProtocol with its
  TcpStreamReader), `data_readable()` instead of data_received: the data stays in the receive
  buffer until the reader takes it (`take_data`, `take_chunks`), with no copy on the way.

The runtime (`driver.py`) calls `_update(now)` whenever the core says the connection was touched
(level-triggered: the transport looks at the connection's current state, never at a stream of
edges, so it cannot miss one). Every user call ends with `runtime.poke(conn)`, which asks the core
to transmit and batches the flush into one per loop iteration.
"""

from __future__ import annotations


import asyncio
import logging
from collections import deque
from typing import Any, Protocol

from ..compat import byte_view
from ..tcp.errors import TcpCallError
from ..tcp.state import CLOSED, SYNCHRONIZED, TIME_WAIT
from ..wire.ipv4 import address_text
from .errors import exception_for, os_error

logger = logging.getLogger("ustack.aio")

# Largest chunk handed to data_received at once (the core may hold more).
READ_CHUNK = 256 * 1024
DEFAULT_HIGH_WATER = 64 * 1024


class Runtime(Protocol):
    """What transports and servers ask of the runtime (runtime.AsyncStack is the one), written
    here so that the modules below the runtime never import it: imports point one way."""

    loop: asyncio.AbstractEventLoop | None  # set while it runs, the only time transports exist
    stack: Any

    def poke(self, connection: Any) -> None: ...
    def poke_later(self, connection: Any) -> None: ...
    def mark_dirty(self, transport: "TcpTransport") -> None: ...
    def forget(self, transport: "TcpTransport") -> None: ...
    def register(self, transport: "TcpTransport") -> None: ...
    def remove_server(self, server: Any, was_listening: bool) -> None: ...


# States after which nothing more can arrive and nothing more can be sent by the application;
# the peer is owed nothing either (TIME-WAIT only waits). The runtime and the commands ask this set.
# (The connection exists for the application once it is in one of the core's SYNCHRONIZED states,
# RFC 9293 3.3.2: both ends have exchanged SYNs.)
FINISHED_STATES = frozenset({CLOSED, TIME_WAIT})


class TcpTransport(asyncio.Transport):
    """asyncio's view of one core Connection. Created by the runtime, never by the application."""

    def __init__(self, runtime: Runtime, connection: Any, protocol: asyncio.BaseProtocol, server: Any = None) -> None:
        # (asyncio.BaseTransport.__init__ only sets _extra, made just below.)
        self._runtime = runtime
        self._loop = runtime.loop
        self._connection = connection
        self._protocol = protocol
        # A protocol that takes its data itself (runtime.StreamProtocol): asked once, not per delivery.
        self._pulls_data = getattr(protocol, "pulls_data", False)
        # A protocol that may hear connection_lost inside close() (runtime.StreamProtocol): see _finish_close.
        self._lost_inside_close = getattr(protocol, "connection_lost_inside_close", False)
        self._server = server
        # peername and sockname are made when first asked for (get_extra_info): most
        # connections never are, and their text costs more than the rest of this constructor.
        self._extra = {
            "connection": connection,  # the core object, for snapshots and teaching tools
            "stack": runtime.stack,
        }
        self._made = False  # connection_made delivered
        self._lost = False  # connection_lost delivered or scheduled: the transport is done
        self._closing = False  # close() was called
        self._reading_paused = False
        self._eof_delivered = False
        self._eof_requested = False  # write_eof() was called
        self._shutdown_sent = False  # conn.shutdown() was called
        self._writes_after_lost = 0
        self._pending = PendingWrites()  # written but not yet accepted by the send buffer
        self._writing_paused = False
        self._high_water = DEFAULT_HIGH_WATER
        self._low_water = DEFAULT_HIGH_WATER // 4
        # Set by create_connection: resolved once the connection is synchronized or has failed.
        self.open_waiter: asyncio.Future | None = None

    def __repr__(self) -> str:
        peer = self.get_extra_info("peername")
        return f"<TcpTransport {peer[0]}:{peer[1]} {self._connection.state.value}{' closing' if self._closing else ''}>"

    # ------------------------------------------------------------------------------------------
    # asyncio.BaseTransport
    # ------------------------------------------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        extra = self._extra
        if name in extra:
            return extra[name]
        if name == "peername":  # (`ustack serve` logs it for every request; sockname is rarer)
            connection = self._connection
            extra[name] = _socket_address(connection.remote_address, connection.remote_port)
            return extra[name]
        if name == "sockname":
            connection = self._connection
            extra[name] = _socket_address(connection.local_address, connection.local_port)
            return extra[name]
        return default

    def reconfigure(self, **changes: Any) -> None:
        """A socket option set on the open connection (setsockopt after connect): the core's
        Connection.reconfigure decides what may change and re-arms its timers; a round follows,
        since e.g. turning Nagle off may release a segment it was holding back."""
        self._connection.reconfigure(self._loop.time(), **changes)
        self._runtime.poke(self._connection)

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def close(self) -> None:
        """Graceful close: send what is pending, then FIN (conn.close). The protocol hears
        connection_lost(None) once the pending data is in the send buffer, as with asyncio's
        socket transports; the core finishes the FIN handshake and TIME-WAIT on its own."""
        if self._closing or self._lost:
            return
        self._closing = True
        if not self._made:  # closing an attempt that never connected
            self.abort()
            return
        if not self._pending._size:
            self._finish_close()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._pulls_data = getattr(protocol, "pulls_data", False)
        self._lost_inside_close = getattr(protocol, "connection_lost_inside_close", False)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    # ------------------------------------------------------------------------------------------
    # asyncio.ReadTransport
    # ------------------------------------------------------------------------------------------
    def is_reading(self) -> bool:
        return not (self._reading_paused or self._closing or self._lost)

    def pause_reading(self) -> None:
        """Stop taking data out of the receive buffer: as it fills, the window closes."""
        if self._closing or self._lost:
            return
        self._reading_paused = True

    def resume_reading(self) -> None:
        """Take data again; the core advertises the reopened window (a window update)."""
        if not self._reading_paused or self._closing or self._lost:
            return
        self._reading_paused = False
        self._runtime.mark_dirty(self)

    # ------------------------------------------------------------------------------------------
    # asyncio.WriteTransport
    # ------------------------------------------------------------------------------------------
    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = DEFAULT_HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water, self._low_water = high, low
        self._maybe_pause_protocol()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def get_write_buffer_size(self) -> int:
        return len(self._pending)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if data.__class__ is not bytes and not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self._eof_requested:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._lost or not self._made:
            # As asyncio's socket transports do: writing to a lost connection is ignored, with a
            # warning once the application keeps at it.
            self._writes_after_lost += 1
            if self._writes_after_lost == 5:
                logger.warning("ustack: write() on a closed transport %r is ignored", self)
            return
        if not data:
            return
        # bytes as they are (the send buffer keeps them without a copy); anything else, which
        # the application may change after this call, as a copy (a view of wider items too).
        if data.__class__ is not bytes:
            data = bytes(data)
        if self._pending._size:  # keep the order: behind what is already waiting
            self._pending.append(data)
        else:
            # The common case: straight into the send buffer, keeping only what does not fit.
            try:
                accepted = self._connection.send(data, self._loop.time())
            except TcpCallError as error:
                self._connection_lost(exception_for(self._connection.error) or os_error(error.errno, str(error)))
                return
            self._runtime.poke(self._connection)
            if accepted == len(data):
                return  # all in the send buffer: nothing pending, so nothing to pause or resume
            self._pending.append(memoryview(data)[accepted:])
        self._push_pending(self._loop.time())
        self._maybe_pause_protocol()

    def write_eof(self) -> None:
        """Half-close: a FIN follows the data already written; reading goes on."""
        if self._eof_requested or self._closing or self._lost or not self._made:
            return
        self._eof_requested = True
        if not self._pending._size:
            self._shutdown(self._loop.time())

    def can_write_eof(self) -> bool:
        return True

    def abort(self) -> None:
        """Drop everything and send RST (conn.abort); the protocol hears connection_lost(None)."""
        self._abort(None)

    def _abort(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._closing = True
        self._pending.clear()
        self._connection.abort(self._loop.time())
        self._runtime.poke(self._connection)
        self._connection_lost(exc)

    # ------------------------------------------------------------------------------------------
    # Driven by the runtime
    # ------------------------------------------------------------------------------------------
    def _update(self, now: float) -> bool:
        """Look at the connection as it is now and bring the protocol up to date. True if the
        protocol was handed data or its reader woken: its answer may come in the next loop
        iteration, and the runtime queues a round behind it (driver.py)."""
        if self._lost:
            return False
        connection = self._connection
        state = connection.state
        just_made = False
        if not self._made:
            if state in SYNCHRONIZED:
                self._made = just_made = True
                try:
                    self._protocol.connection_made(self)
                except Exception as exc:
                    self._fatal_error(exc, "protocol.connection_made() call failed")
                    return False
                if self.open_waiter is not None and not self.open_waiter.done():
                    self.open_waiter.set_result(None)
            elif state is CLOSED:
                self._connection_lost(exception_for(connection.error) or ConnectionAbortedError("connection closed before it opened"))
                return False
            else:
                return False
        if self._pending._size:
            self._push_pending(now)
        delivered = False
        if self._closing or self._reading_paused:
            pass  # nothing is delivered: resume_reading() brings it back here
        elif connection.readable:
            if self._pulls_data and connection.error is None:
                # A reader that takes the data itself (runtime.TcpStreamReader): wake it, and
                # leave the data where it is; the end of stream follows once it has taken
                # everything (take_data). After a reset the data is pushed (_deliver_data),
                # before the error. A reader busy elsewhere (writing a file) is not woken and
                # answers nothing now: no round for it.
                try:
                    delivered = self._protocol.data_readable()
                except Exception as exc:
                    self._fatal_error(exc, "protocol.data_readable() call failed")
                    return False
                # Just made, with data already in (a request right behind the handshake's last
                # ACK): the handler connection_made started finds it at its first read, in its
                # task's first step, next iteration; it may answer as a woken reader would.
                # (readable: neither the end of stream nor the close is next)
                return delivered or just_made
            delivered = self._deliver_data(now)  # data that arrived before a reset comes first
        elif connection.fin_received and not self._eof_delivered:  # (nothing readable: at_eof)
            self._deliver_data(now)  # the end of stream
        # else: nothing to deliver; most often a connection a transmit touched (a write, an ACK)
        if self._lost:  # the protocol may have aborted inside a callback
            return delivered
        state = connection.state
        if state is CLOSED and connection.error is not None:
            self._connection_lost(exception_for(connection.error))
        elif state in FINISHED_STATES and not connection.readable and (self._eof_delivered or not connection.at_eof):
            # Both directions are over. Unread data (reading paused) and the end of stream stay
            # readable in the core until the application resumes reading.
            self._connection_lost(None)
        return delivered

    def _deliver_data(self, now: float) -> bool:
        """Push what the receive buffer holds to the protocol (data_received, or a
        BufferedProtocol's buffer), then the end of stream. True if it was handed data."""
        connection = self._connection
        delivered = False
        while connection.readable and not (self._reading_paused or self._closing or self._lost):
            if isinstance(self._protocol, asyncio.BufferedProtocol):
                if not self._deliver_into_buffer(now):
                    return delivered  # the protocol failed: the connection is reset
                delivered = True
                continue
            data = connection.recv(READ_CHUNK, now)
            self._runtime.poke_later(connection)  # taking data may open the window: a window update
            if not data:
                break
            delivered = True
            try:
                self._protocol.data_received(data)
            except Exception as exc:
                self._fatal_error(exc, "protocol.data_received() call failed")
                return True
        if (
            connection.at_eof
            and not connection.readable
            and not self._eof_delivered
            and not (self._reading_paused or self._closing or self._lost)
        ):
            self._eof_delivered = True
            try:
                keep_open = self._protocol.eof_received()
            except Exception as exc:
                self._fatal_error(exc, "protocol.eof_received() call failed")
                return delivered
            if not keep_open:
                self.close()
        return delivered

    def take_data(self, max_bytes: int, chunks: bool = False) -> bytes | list:
        """Up to max_bytes of what waits in the receive buffer, for a protocol that takes its data
        itself (`pulls_data`, runtime.TcpStreamReader); b"" if none waits or reading is paused
        or over. With `chunks`, as the pieces the receive buffer held ([] if none; no copy,
        Connection.recv_chunks). Taking it may reopen the window: a window update goes out in
        the next round. (One method for both, called by the reader directly: a read is one call
        deep here, on every echo and request.)"""
        connection = self._connection
        if not connection.readable or self._reading_paused or self._closing or self._lost:
            return [] if chunks else b""
        now = self._loop.time()
        if chunks:
            data = connection.recv_chunks(max_bytes, now)
        else:
            data = connection.recv(max_bytes, now)
        if connection.rcv.ack_owed:
            # The read opened the window enough for an update of its own (RFC 9293 3.8.6.2.2):
            # a round sends it, as after a write. Otherwise a read has nothing to send, and the
            # next ACK carries the larger window: no round for it.
            self._runtime.poke(connection)
        if connection.at_eof or (not connection.readable and connection.state in FINISHED_STATES):
            # Everything taken: the end of stream (or the close) is next, told now rather than by
            # the next round, so that the read which follows this one returns it at once and the
            # application answers (closes) in this same iteration: our FIN then carries the ACK
            # of the peer's, one segment where a round later made two.
            self._update(now)
        return data

    def take_chunks(self, max_bytes: int) -> list:
        """take_data(max_bytes, chunks=True)."""
        return self.take_data(max_bytes, True)

    def _deliver_into_buffer(self, now: float) -> bool:
        """One step of reading for an asyncio.BufferedProtocol: data into the buffer it lends
        (get_buffer), then buffer_updated(count). False if the protocol failed (connection reset)."""
        connection = self._connection
        try:
            buffer = byte_view(self._protocol.get_buffer(-1))
            if not len(buffer):
                raise RuntimeError("get_buffer() returned an empty buffer")
        except Exception as exc:
            self._fatal_error(exc, "protocol.get_buffer() call failed")
            return False
        data = connection.recv(min(len(buffer), READ_CHUNK), now)
        self._runtime.poke_later(connection)  # taking data may open the window: a window update
        buffer[:len(data)] = data
        try:
            self._protocol.buffer_updated(len(data))
        except Exception as exc:
            self._fatal_error(exc, "protocol.buffer_updated() call failed")
            return False
        return True

    def _push_pending(self, now: float) -> None:
        """Move pending writes into the send buffer as far as it has room."""
        connection = self._connection
        pending = self._pending
        if pending and connection.send_space > 0:
            try:
                accepted = pending.push(connection, now)
            except TcpCallError as error:
                # The connection can no longer send (reset, timed out): report it, once.
                self._connection_lost(exception_for(connection.error) or os_error(error.errno, str(error)))
                return
            if accepted:
                self._runtime.poke(connection)
        if not pending:
            if self._closing and not self._lost:
                self._finish_close()
            elif self._eof_requested and not self._shutdown_sent:
                self._shutdown(now)
        self._maybe_resume_protocol()

    def _shutdown(self, now: float) -> None:
        self._shutdown_sent = True
        try:
            self._connection.shutdown(now)
        except TcpCallError:
            return  # the connection is already gone; _update reports why
        self._runtime.poke(self._connection)

    def _finish_close(self) -> None:
        """Everything written is in the send buffer: CLOSE (the FIN follows it) and let go.

        asyncio's transports tell the protocol connection_lost(None) one loop iteration after
        close(), so a StreamWriter's `close(); await wait_closed()` (what every handler ends
        with) costs the loop a callback for connection_lost, another to wake the task, and one
        more iteration. A protocol that says it can hear it inside close()
        (`connection_lost_inside_close`, runtime.StreamProtocol: it only records the end and
        resolves futures) is told at once: wait_closed() then finds the close done and
        returns without suspending the task (issue 12, connections per second)."""
        self._connection.close(self._loop.time())
        self._runtime.poke(self._connection)
        self._connection_lost(None, at_once=self._lost_inside_close)

    def _maybe_pause_protocol(self) -> None:
        if not self._writing_paused and len(self._pending) > self._high_water:
            self._writing_paused = True
            try:
                self._protocol.pause_writing()
            except Exception as exc:
                self._loop.call_exception_handler(
                    {"message": "protocol.pause_writing() failed", "exception": exc, "transport": self, "protocol": self._protocol}
                )

    def _maybe_resume_protocol(self) -> None:
        if self._writing_paused and len(self._pending) <= self._low_water:
            self._writing_paused = False
            try:
                self._protocol.resume_writing()
            except Exception as exc:
                self._loop.call_exception_handler(
                    {"message": "protocol.resume_writing() failed", "exception": exc, "transport": self, "protocol": self._protocol}
                )

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        """A protocol callback raised: reported through the loop's exception handler, the
        connection reset, and the protocol told why (connection_lost(exc), as asyncio does)."""
        self._loop.call_exception_handler({"message": message, "exception": exc, "transport": self, "protocol": self._protocol})
        self._abort(exc)

    def _connection_lost(self, exc: BaseException | None, at_once: bool = False) -> None:
        """The transport is done: tell the protocol (soon, as asyncio does, or `at_once`) and let go."""
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._pending.clear()
        self._runtime.forget(self)
        if self._made:
            if at_once:
                self._call_connection_lost(exc)
            else:
                self._loop.call_soon(self._call_connection_lost, exc)
        else:
            if self.open_waiter is not None and not self.open_waiter.done():
                self.open_waiter.set_exception(exc or ConnectionAbortedError("connection aborted before it opened"))
            if self._server is not None:
                self._server._detach(self)
                self._server = None

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            if self._server is not None:
                self._server._detach(self)
                self._server = None


def _socket_address(address: int | bytes, port: int) -> tuple:
    """(host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6, as the socket module gives."""
    if type(address) is bytes:
        return (address_text(address), port, 0, 0)
    return (address_text(address), port)


class PendingWrites:
    """What the application wrote beyond the send buffer's room, oldest first: its bytes objects
    as written (or a view of the rest of one), never copied here. The send buffer then keeps
    them as they are too (ustack/tcp/send_buffer.py), so a file sent in 64 KB writes is copied
    once on its way to the TUN device, when its packet is built (issue 12). len() is in bytes."""

    __slots__ = ("_pieces", "_size")

    def __init__(self) -> None:
        self._pieces: deque[bytes | memoryview] | None = None  # made at the first write that waits
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def append(self, piece: bytes | memoryview) -> None:
        if self._pieces is None:
            self._pieces = deque()
        self._pieces.append(piece)
        self._size += len(piece)

    def clear(self) -> None:
        self._pieces = None
        self._size = 0

    def push(self, connection, now: float) -> int:
        """Hand the pieces to connection.send, oldest first, until it takes no more; the number
        of bytes it took."""
        pieces = self._pieces
        taken = 0
        while pieces:
            piece = pieces[0]
            accepted = connection.send(piece, now)
            taken += accepted
            if accepted < len(piece):
                if accepted:
                    pieces[0] = memoryview(piece)[accepted:]
                break
            pieces.popleft()
        self._size -= taken
        return taken

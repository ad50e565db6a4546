"""Blocking BSD-style sockets over ustack, for scripts and courses.

    from ustack import sock
    network = sock.Network(stack, link)          # starts ONE background thread for the stack
    server = network.socket()                    # or sock.socket() once set_default_network()
    server.bind(("", 7)); server.listen()
    client, address = server.accept()
    data = client.recv(4096); client.sendall(data); client.close()
    network.close()

How it works: the background thread runs an asyncio loop with the runtime (ustack.aio), one
thread for the whole stack, never one per connection. Each socket call hands a coroutine to that
loop (`asyncio.run_coroutine_threadsafe`) and waits for its result. Timeouts (`settimeout`) are
enforced inside the loop, so a call that times out has done nothing: no byte is lost.

Errors are OSError with the standard errno: ECONNREFUSED (ConnectionRefusedError), ECONNRESET
(ConnectionResetError), ETIMEDOUT (TimeoutError, also for settimeout), EPIPE (BrokenPipeError),
EADDRINUSE, ENOTCONN, EBADF.

Buffers: received data stays in the connection's receive buffer (SO_RCVBUF) until recv() takes it,
apart from at most READ_AHEAD bytes the socket holds, so a program that stops calling recv()
closes the TCP window, as with a kernel socket.
"""

from __future__ import annotations

import asyncio
import errno
import struct
import threading
from collections import deque
from dataclasses import replace
from socket import (  # the constants are the kernel's, so code written for `socket` reads the same
    AF_INET,
    IPPROTO_TCP,
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
)
from typing import Any, Awaitable, Callable

from .aio import AsyncStack
from .aio.errors import os_error
from .wire.ipv4 import address_text, address_value

READ_AHEAD = 64 * 1024  # bytes a socket takes out of the connection before recv() asks
SEND_AHEAD = 64 * 1024  # bytes a socket accepts beyond the connection's send buffer

error = OSError
timeout = TimeoutError
_DEFAULT_TIMEOUT = object()  # "not given", as socket._GLOBAL_DEFAULT_TIMEOUT

# setsockopt options the core has, and the TcpConfig field each one sets.
_OPTIONS: dict[tuple[int, int], str] = {
    (IPPROTO_TCP, TCP_NODELAY): "nagle",  # inverted: TCP_NODELAY=1 means nagle=False
    (SOL_SOCKET, SO_KEEPALIVE): "keepalive",
    (SOL_SOCKET, SO_RCVBUF): "receive_buffer_size",
    (SOL_SOCKET, SO_SNDBUF): "send_buffer_size",
    (IPPROTO_TCP, TCP_KEEPIDLE): "keepalive_idle",  # seconds, as with Linux
    (IPPROTO_TCP, TCP_KEEPINTVL): "keepalive_interval",
    (IPPROTO_TCP, TCP_KEEPCNT): "keepalive_probes",
}
_SECONDS_OPTIONS = ("keepalive_idle", "keepalive_interval")


def _timed_out() -> TimeoutError:
    return TimeoutError(errno.ETIMEDOUT, "timed out")


class Network:
    """One ustack host for blocking code: the Stack and its link, driven by one background thread."""

    def __init__(self, stack: Any, link: Any, *, default_timeout: float | None = None) -> None:
        self.stack = stack
        self.link = link
        self.default_timeout = default_timeout  # for new sockets, like socket.setdefaulttimeout
        self.runtime = AsyncStack(stack, link)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="ustack-runtime", daemon=True)
        self._thread.start()
        self._closed = False
        try:
            self.call(self.runtime.start())
        except BaseException:
            self._stop_thread()
            raise

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def call(self, coroutine: Awaitable[Any], timeout: float | None = None) -> Any:
        """Run `coroutine` on the stack's loop and wait for its result. With a timeout the
        coroutine is cancelled inside the loop when the time is up, and TimeoutError(ETIMEDOUT)
        is raised."""
        if self._closed:
            coroutine.close()  # type: ignore[attr-defined]
            raise os_error(errno.ENETDOWN, "the ustack network is closed")
        if threading.current_thread() is self._thread:
            raise RuntimeError("blocking socket calls cannot be made from the stack's own thread")
        return asyncio.run_coroutine_threadsafe(_bounded(coroutine, timeout), self._loop).result()

    def socket(self, family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0) -> "Socket":
        return Socket(self, family, type, proto)

    def create_connection(self, address: tuple[str, int], timeout: Any = _DEFAULT_TIMEOUT) -> "Socket":
        """Connect a new socket (socket.create_connection); without `timeout`, the socket keeps
        the network's default_timeout."""
        connection = self.socket()
        if timeout is not _DEFAULT_TIMEOUT:
            connection.settimeout(timeout)
        try:
            connection.connect(address)
        except BaseException:
            connection.close()
            raise
        return connection

    def snapshots(self) -> list[Any]:
        return self.call(_as_coroutine(self.runtime.snapshots))

    def close(self) -> None:
        """Reset what is still open, stop the thread. The link stays open (its owner closes it)."""
        if self._closed:
            return
        try:
            self.call(self.runtime.close())
        finally:
            self._stop_thread()

    def _stop_thread(self) -> None:
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


async def _bounded(coroutine: Awaitable[Any], timeout: float | None) -> Any:
    if timeout is None:
        return await coroutine
    task = asyncio.ensure_future(coroutine)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        if timeout == 0:  # a non-blocking socket (setblocking(False)): it would have waited
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        raise _timed_out()
    return task.result()


async def _as_coroutine(function: Callable[[], Any]) -> Any:
    return function()


class _Stream(asyncio.Protocol):
    """The loop-side half of a connected socket: a protocol with a small read-ahead buffer."""

    def __init__(self, on_made: Callable[["_Stream"], None] | None = None) -> None:
        self.transport: Any = None
        self.buffer = bytearray()
        self.eof = False
        self.lost = False
        self.error: OSError | None = None  # reported once by the next call, then EPIPE / b""
        self.write_paused = False
        self._wakeup: asyncio.Future | None = None
        self._on_made = on_made

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
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return True  # keep the sending direction open: a half-close, not a close

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None:
            self.error = exc if isinstance(exc, OSError) else os_error(errno.EIO, str(exc))
        self._wake()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake()

    # --- for Socket -----------------------------------------------------------------------------
    async def _wait(self) -> None:
        self._wakeup = asyncio.get_running_loop().create_future()
        try:
            await self._wakeup
        finally:
            self._wakeup = None

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _take_error(self) -> OSError | None:
        error, self.error = self.error, None
        return error

    async def recv(self, max_bytes: int) -> bytes:
        while not (self.buffer or self.eof or self.lost):
            await self._wait()
        if self.buffer:
            data = bytes(self.buffer[:max_bytes])
            del self.buffer[:max_bytes]
            if len(self.buffer) < READ_AHEAD and not self.lost:
                self.transport.resume_reading()
            return data
        error = self._take_error()
        if error is not None:
            raise error
        return b""

    async def send(self, data: bytes) -> int:
        while self.write_paused and not self.lost:
            await self._wait()
        if self.lost:
            raise self._take_error() or os_error(errno.EPIPE)
        room = SEND_AHEAD - self.transport.get_write_buffer_size()
        count = min(len(data), max(room, 1))
        self.transport.write(data[:count])
        return count


class _Listening:
    """The loop-side half of a listening socket: connections wait in the core's accept queue
    (bounded by the backlog) until accept() asks for one."""

    def __init__(self) -> None:
        self.server: Any = None
        self.ready: deque[_Stream] = deque()
        self.waiting = 0
        self._wakeup: asyncio.Future | None = None

    def admission(self) -> bool:
        return self.waiting > len(self.ready)

    def protocol(self) -> _Stream:
        return _Stream(on_made=self._arrived)

    def _arrived(self, stream: _Stream) -> None:
        self.ready.append(stream)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def close(self) -> None:
        """Stop listening; an accept() blocked in another thread fails with EBADF."""
        self.server.close()
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def accept(self, runtime: AsyncStack) -> _Stream:
        self.waiting += 1
        try:
            while not self.ready:
                if not self.server.is_serving():
                    raise os_error(errno.EBADF, "the listening socket was closed")
                runtime.request_round()  # take a connection already waiting in the accept queue
                self._wakeup = asyncio.get_running_loop().create_future()
                await self._wakeup
            return self.ready.popleft()
        finally:
            self.waiting -= 1
            self._wakeup = None


class Socket:
    """A TCP socket of a ustack Network, with the blocking calls of Python's socket.socket."""

    def __init__(self, network: Network, family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0, *, _stream: _Stream | None = None) -> None:
        if family != AF_INET:
            raise os_error(errno.EAFNOSUPPORT, "ustack sockets are AF_INET only")
        if type != SOCK_STREAM or proto not in (0, IPPROTO_TCP):
            raise os_error(errno.EPROTONOSUPPORT, "ustack sockets are SOCK_STREAM (TCP) only")
        self.network = network
        self.family, self.type, self.proto = family, type, proto
        self._timeout: float | None = network.default_timeout
        self._bound: tuple[str, int] | None = None
        self._config_overrides: dict[str, Any] = {}
        self._linger: tuple[int, int] = (0, 0)
        self._reuse_address = 0
        self._stream = _stream
        self._listening: _Listening | None = None
        self._read_shut = False
        self._write_shut = False
        self._closed = False

    def __repr__(self) -> str:
        if self._closed:
            return "<ustack.sock.Socket [closed]>"
        state = "listening" if self._listening else "connected" if self._stream else "new"
        return f"<ustack.sock.Socket {state} local={self._bound}>"

    # --- timeouts -------------------------------------------------------------------------------
    def settimeout(self, value: float | None) -> None:
        if value is not None and value < 0:
            raise ValueError("Timeout value out of range")
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    # --- addresses ------------------------------------------------------------------------------
    def bind(self, address: tuple[str, int]) -> None:
        self._check_open()
        if self._stream is not None or self._listening is not None or self._bound is not None:
            raise os_error(errno.EINVAL, "socket is already bound")
        host, port = _address_pair(address, "bind")
        stack = self.network.stack
        if host not in ("", "0.0.0.0"):
            try:
                value = address_value(host)
            except ValueError:
                raise os_error(errno.EINVAL, f"{host!r} is not an IPv4 address") from None
            if value != stack.address:
                raise os_error(errno.EADDRNOTAVAIL, f"{host} is not this stack's address ({address_text(stack.address)})")
        if port and self.network.call(_as_coroutine(lambda: any(taken == port for (_, taken) in stack.listeners))):
            raise os_error(errno.EADDRINUSE, f"port {port} is already in use")
        self._bound = (host, port)

    def getsockname(self) -> tuple[str, int]:
        if self._stream is not None:
            return self._stream.transport.get_extra_info("sockname")
        if self._listening is not None:
            host = self._bound[0] if self._bound and self._bound[0] else "0.0.0.0"
            return (host, self._listening.server.port)
        if self._bound is None:
            return ("0.0.0.0", 0)
        return (self._bound[0] or "0.0.0.0", self._bound[1])  # "" is INADDR_ANY, shown as the kernel does

    def getpeername(self) -> tuple[str, int]:
        if self._stream is None:
            raise os_error(errno.ENOTCONN)
        return self._stream.transport.get_extra_info("peername")

    def fileno(self) -> int:
        return -1  # there is no kernel file descriptor behind a ustack socket

    # --- options --------------------------------------------------------------------------------
    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        self._check_open()
        if (level, option) == (SOL_SOCKET, SO_REUSEADDR):
            self._reuse_address = int(value)  # accepted for compatibility; ports are not shared
            return
        if (level, option) == (SOL_SOCKET, SO_LINGER):
            if isinstance(value, int):
                raise os_error(errno.EINVAL, "SO_LINGER takes struct.pack('ii', onoff, seconds)")
            self._linger = struct.unpack("ii", value)
            return
        if (level, option) == (IPPROTO_TCP, TCP_CONGESTION):
            self._set_congestion_control(value)
            return
        field = _OPTIONS.get((level, option))
        if field is None:
            raise os_error(errno.ENOPROTOOPT, f"option ({level}, {option}) is not supported by ustack")
        if isinstance(value, (bytes, bytearray)):
            (value,) = struct.unpack("i", bytes(value)[:4])
        setting: Any
        if field in ("nagle", "keepalive"):
            setting = bool(value) if field == "keepalive" else not value
        elif field in _SECONDS_OPTIONS:
            setting = float(value)  # ustack also takes fractions of a second, for quick labs
        else:
            setting = int(value)
        if not isinstance(setting, bool) and setting <= 0:
            raise os_error(errno.EINVAL, f"{field} must be positive")
        self._config_overrides[field] = setting
        if self._stream is not None:
            self.network.call(_as_coroutine(lambda: _apply_options(self._stream, {field: setting})))

    def _set_congestion_control(self, value: int | bytes) -> None:
        """TCP_CONGESTION, as Linux: the algorithm's name; an unknown name is ENOENT."""
        from .tcp.congestion import CONGESTION_CONTROLS

        name = bytes(value).split(b"\0", 1)[0].decode("ascii", "replace") if isinstance(value, (bytes, bytearray)) else ""
        if name not in CONGESTION_CONTROLS:
            raise os_error(errno.ENOENT, f"no congestion control {name!r}; ustack has {', '.join(sorted(CONGESTION_CONTROLS))}")
        self._config_overrides["congestion_control"] = name
        if self._stream is not None:
            self.network.call(_as_coroutine(lambda: _apply_options(self._stream, {"congestion_control": name})))

    def getsockopt(self, level: int, option: int, buflen: int = 0) -> int | bytes:
        self._check_open()
        if (level, option) == (IPPROTO_TCP, TCP_CONGESTION):
            name = self._config_overrides.get("congestion_control", self.network.stack.config.congestion_control)
            return name.encode().ljust(buflen or 16, b"\0")[: buflen or 16]  # TCP_CA_NAME_MAX
        if (level, option) == (SOL_SOCKET, SO_REUSEADDR):
            return self._reuse_address
        if (level, option) == (SOL_SOCKET, SO_LINGER):
            return struct.pack("ii", *self._linger)
        if (level, option) == (SOL_SOCKET, SO_ERROR):
            stream = self._stream
            error = stream._take_error() if stream is not None else None
            return error.errno if error is not None and error.errno else 0
        field = _OPTIONS.get((level, option))
        if field is None:
            raise os_error(errno.ENOPROTOOPT, f"option ({level}, {option}) is not supported by ustack")
        value = self._config_overrides.get(field, getattr(self.network.stack.config, field))
        if field == "nagle":
            return int(not value)
        return value if field in _SECONDS_OPTIONS and value != int(value) else int(value)

    def _config(self) -> Any:
        config = self.network.stack.config
        return replace(config, **self._config_overrides) if self._config_overrides else None

    # --- passive open ---------------------------------------------------------------------------
    def listen(self, backlog: int = 128) -> None:
        self._check_open()
        if self._listening is not None:
            return
        if self._stream is not None:
            raise os_error(errno.EINVAL, "socket is connected")
        host, port = self._bound or ("", 0)
        listening = _Listening()
        runtime = self.network.runtime

        async def start() -> None:
            server = await runtime.create_server(listening.protocol, host or None, port, backlog=max(1, backlog), config=self._config())
            server.admission = listening.admission
            listening.server = server

        self.network.call(start())
        self._listening = listening

    def accept(self) -> tuple["Socket", tuple[str, int]]:
        self._check_open()
        if self._listening is None:
            raise os_error(errno.EINVAL, "socket is not listening")
        stream = self.network.call(self._listening.accept(self.network.runtime), self._timeout)
        connection = Socket(self.network, _stream=stream)
        connection._config_overrides = dict(self._config_overrides)
        connection._timeout = self._timeout
        return connection, stream.transport.get_extra_info("peername")

    # --- active open ----------------------------------------------------------------------------
    def connect(self, address: tuple[str, int]) -> None:
        self._check_open()
        if self._stream is not None:
            raise os_error(errno.EISCONN)
        if self._listening is not None:
            raise os_error(errno.EINVAL, "socket is listening")
        host, port = _address_pair(address, "connect")
        local_port = self._bound[1] if self._bound and self._bound[1] else None
        runtime = self.network.runtime

        async def open() -> _Stream:
            _, stream = await runtime.create_connection(_Stream, host, port, local_port=local_port, config=self._config())
            return stream

        self._stream = self.network.call(open(), self._timeout)

    def connect_ex(self, address: tuple[str, int]) -> int:
        try:
            self.connect(address)
        except OSError as error:
            return error.errno or errno.EIO
        return 0

    # --- data -----------------------------------------------------------------------------------
    def send(self, data: bytes) -> int:
        stream = self._connected()
        if self._write_shut:
            raise os_error(errno.EPIPE)
        if not data:
            return 0
        return self.network.call(stream.send(bytes(data)), self._timeout)

    def sendall(self, data: bytes) -> None:
        stream = self._connected()
        if self._write_shut:
            raise os_error(errno.EPIPE)
        view = memoryview(bytes(data))

        async def send_all() -> None:
            offset = 0
            while offset < len(view):
                offset += await stream.send(view[offset : offset + SEND_AHEAD].tobytes())

        # Python's socket.sendall applies the timeout to the whole call, as we do.
        self.network.call(send_all(), self._timeout)

    def recv(self, max_bytes: int) -> bytes:
        stream = self._connected()
        if max_bytes < 0:
            raise ValueError("negative buffersize in recv")
        if self._read_shut or max_bytes == 0:
            return b""
        return self.network.call(stream.recv(max_bytes), self._timeout)

    # --- ending ---------------------------------------------------------------------------------
    def shutdown(self, how: int) -> None:
        stream = self._connected()
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise os_error(errno.EINVAL)
        if how in (SHUT_RD, SHUT_RDWR):
            self._read_shut = True
        if how in (SHUT_WR, SHUT_RDWR) and not self._write_shut:
            self._write_shut = True
            self.network.call(_as_coroutine(stream.transport.write_eof))

    def close(self) -> None:
        """Close now: FIN after the data already sent (or RST with SO_LINGER on and 0 seconds, or
        when received data was left unread, RFC 1122 4.2.2.13)."""
        if self._closed:
            return
        self._closed = True
        if self.network._closed:
            return
        if self._listening is not None and self._listening.server is not None:
            self.network.call(_as_coroutine(self._listening.close))
        if self._stream is not None:
            transport = self._stream.transport
            abortive = self._linger[0] and self._linger[1] == 0
            self.network.call(_as_coroutine(transport.abort if abortive else transport.close))

    def __enter__(self) -> "Socket":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise os_error(errno.EBADF)

    def _connected(self) -> _Stream:
        self._check_open()
        if self._stream is None:
            raise os_error(errno.ENOTCONN)
        return self._stream


def _apply_options(stream: _Stream, overrides: dict[str, Any]) -> None:
    """An option set on a connected socket: the core changes it on the open connection
    (Connection.reconfigure, through the transport). Buffer sizes were fixed when the buffers
    were made."""
    if "receive_buffer_size" in overrides or "send_buffer_size" in overrides:
        raise os_error(errno.EISCONN, "ustack fixes SO_RCVBUF/SO_SNDBUF when connecting: set them before connect() or listen()")
    stream.transport.reconfigure(**overrides)


# --- module-level functions, like the socket module's -------------------------------------------
_default_network: Network | None = None


def set_default_network(network: Network | None) -> None:
    """The Network that sock.socket() and sock.create_connection() use when none is given."""
    global _default_network
    _default_network = network


def _network(network: Network | None) -> Network:
    chosen = network or _default_network
    if chosen is None:
        raise RuntimeError("no ustack network: pass network=... or call sock.set_default_network()")
    return chosen


def socket(family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0, *, network: Network | None = None) -> Socket:
    return _network(network).socket(family, type, proto)


def _address_pair(address: Any, call: str) -> tuple[str, int]:
    """(host, port) checked the way the standard socket module checks it, with its exceptions:
    TypeError for something that is not a (str, int) pair, OverflowError for a port outside
    0..65535 (port 0 means "any")."""
    if not isinstance(address, tuple) or len(address) != 2:
        raise TypeError(f"AF_INET address must be a (host, port) tuple, not {address!r}")
    host, port = address
    if not isinstance(host, str):
        raise TypeError(f"{call}(): host must be a str, not {type(host).__name__}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"{call}(): port must be an integer, not {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise OverflowError(f"{call}(): port must be 0-65535.")
    return host, port


def create_connection(address: tuple[str, int], timeout: Any = _DEFAULT_TIMEOUT, *, network: Network | None = None) -> Socket:
    return _network(network).create_connection(address, timeout)


__all__ = [
    "AF_INET",
    "IPPROTO_TCP",
    "Network",
    "SHUT_RD",
    "SHUT_RDWR",
    "SHUT_WR",
    "SOCK_STREAM",
    "SOL_SOCKET",
    "SO_ERROR",
    "SO_KEEPALIVE",
    "SO_LINGER",
    "SO_RCVBUF",
    "SO_REUSEADDR",
    "SO_SNDBUF",
    "Socket",
    "TCP_CONGESTION",
    "TCP_KEEPCNT",
    "TCP_KEEPIDLE",
    "TCP_KEEPINTVL",
    "TCP_NODELAY",
    "create_connection",
    "error",
    "set_default_network",
    "socket",
    "timeout",
]

"""Socket: the blocking calls of Python's socket.socket over a ustack Network.

Errors are OSError with the standard errno: ECONNREFUSED (ConnectionRefusedError), ECONNRESET
(ConnectionResetError), ETIMEDOUT (TimeoutError, also for settimeout), EPIPE (BrokenPipeError),
EAGAIN (BlockingIOError, non-blocking sockets and MSG_DONTWAIT), EADDRINUSE, ENOTCONN, EBADF.

Buffers: received data stays in the connection's receive buffer (SO_RCVBUF) until recv() takes it,
apart from at most READ_AHEAD bytes the socket holds, so a program that stops calling recv()
closes the TCP window, as with a kernel socket.
"""

from __future__ import annotations

import errno
import io
import socket as _socket
import struct
from dataclasses import replace
from socket import (
    AF_INET,
    IPPROTO_TCP,
    MSG_DONTWAIT,
    MSG_PEEK,
    MSG_WAITALL,
    SHUT_RD,
    SHUT_RDWR,
    SHUT_WR,
    SO_ERROR,
    SO_LINGER,
    SO_REUSEADDR,
    SOCK_STREAM,
    SOL_SOCKET,
)
from typing import Any

from ..aio.errors import os_error
from ..wire.ipv4 import address_text, address_value
from .network import _DEFAULT_TIMEOUT, StackThread, _as_coroutine, _default_timeout
from .options import apply_options, config_field, option_value, setting_for
from .streams import SEND_AHEAD, _Listening, _Stream

# recv/send flags ustack honours; any other flag is refused (EOPNOTSUPP), never ignored.
RECV_FLAGS = MSG_PEEK | MSG_WAITALL | MSG_DONTWAIT
SEND_FLAGS = MSG_DONTWAIT | getattr(_socket, "MSG_NOSIGNAL", 0)  # no signals in ustack: NOSIGNAL is a no-op


class Network(StackThread):
    """One ustack host for blocking code: the Stack and its link, driven by one background
    thread, and the sockets on it.

        network = sock.Network(stack, link)
        server = network.socket(); server.bind(("", 7)); server.listen()
    """

    def socket(self, family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0) -> "Socket":
        return Socket(self, family, type, proto)

    def new_socket_timeout(self) -> float | None:
        """The timeout a new socket starts with: default_timeout, else sock.getdefaulttimeout()."""
        return self.default_timeout if self.default_timeout is not None else _default_timeout[0]

    def create_connection(self, address: tuple[str, int], timeout: Any = _DEFAULT_TIMEOUT,
                          source_address: tuple[str, int] | None = None, *, all_errors: bool = False) -> "Socket":
        """Connect a new socket (socket.create_connection); without `timeout`, the socket keeps
        the default timeout. `source_address` binds it first; `all_errors` changes nothing (one
        address, one error)."""
        connection = self.socket()
        if timeout is not _DEFAULT_TIMEOUT:
            connection.settimeout(timeout)
        try:
            if source_address is not None:
                connection.bind(source_address)
            connection.connect(address)
        except BaseException:
            connection.close()
            raise
        return connection


class Socket:
    """A TCP socket of a ustack Network, with the blocking calls of Python's socket.socket."""

    def __init__(self, network: Network, family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0, *, _stream: _Stream | None = None) -> None:
        if family != AF_INET:
            raise os_error(errno.EAFNOSUPPORT, "ustack sockets are AF_INET only")
        if type != SOCK_STREAM or proto not in (0, IPPROTO_TCP):
            raise os_error(errno.EPROTONOSUPPORT, "ustack sockets are SOCK_STREAM (TCP) only")
        self.network = network
        self.family, self.type, self.proto = family, type, proto
        self._timeout: float | None = network.new_socket_timeout()
        self._bound: tuple[str, int] | None = None
        self._config_overrides: dict[str, Any] = {}
        self._linger: tuple[int, int] = (0, 0)
        self._reuse_address = 0
        self._stream = _stream
        self._listening: _Listening | None = None
        self._read_shut = False
        self._write_shut = False
        self._closed = False
        self._close_requested = False  # close() was called (files from makefile() may keep it open)
        self._io_refs = 0  # open makefile() files: the socket really closes when the last one does

    def __repr__(self) -> str:
        if self._closed:
            return "<ustack.sock.Socket [closed] family=AF_INET, type=SOCK_STREAM, proto=0>"
        half = self._stream if self._stream is not None else self._listening
        fd = half.readiness.fd if half is not None and half.readiness is not None else -1  # repr makes no descriptor
        text = f"<ustack.sock.Socket fd={fd}, family=AF_INET, type=SOCK_STREAM, proto={self.proto}"
        if self._stream is not None or self._listening is not None or self._bound is not None:
            text += f", laddr={self.getsockname()}"
        if self._stream is not None:
            text += f", raddr={self.getpeername()}"
        return text + ">"

    # --- timeouts -------------------------------------------------------------------------------
    def settimeout(self, value: float | None) -> None:
        if value is not None and value < 0:
            raise ValueError("Timeout value out of range")
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        """False in non-blocking mode (timeout 0.0), as socket.getblocking."""
        return self._timeout != 0.0

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
        if port == 0:  # as the kernel: the port is chosen at bind(), so getsockname() tells it
            port = self.network.call(_as_coroutine(self.network.runtime.free_listening_port))
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
        """A real descriptor for select/poll/selectors (streams.Readiness): readable while
        recv() (for a listening socket accept()) would not block, writable while send() would not. -1 once closed, or for
        a socket neither connected nor listening (there is nothing yet to wait for)."""
        if self._closed:
            return -1
        half = self._stream if self._stream is not None else self._listening
        if half is None:
            return -1
        if half.readiness is None:
            return self.network.call(_as_coroutine(half.watch))
        return half.readiness.fd

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
        field = config_field(level, option)
        setting = setting_for(field, value)
        self._config_overrides[field] = setting
        if self._stream is not None:
            self.network.call(_as_coroutine(lambda: apply_options(self._stream, {field: setting})))

    def getsockopt(self, level: int, option: int, buflen: int = 0) -> int | float | bytes:
        self._check_open()
        if (level, option) == (SOL_SOCKET, SO_REUSEADDR):
            return self._reuse_address
        if (level, option) == (SOL_SOCKET, SO_LINGER):
            return struct.pack("ii", *self._linger)
        if (level, option) == (SOL_SOCKET, SO_ERROR):
            stream = self._stream
            error = stream._take_error() if stream is not None else None
            return error.errno if error is not None and error.errno else 0
        field = config_field(level, option)
        return option_value(field, self._config_overrides.get(field, getattr(self.network.stack.config, field)))

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
        runtime = self.network.runtime
        listening = _Listening(runtime)
        listening.backlog = max(1, backlog)

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
        stream = self.network.call(self._listening.accept(), self._timeout)
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

    # --- data ---------------------------------------------------------------------------------
    def send(self, data: bytes, flags: int = 0) -> int:
        stream = self._connected()
        _check_flags(flags, SEND_FLAGS, "send")
        if self._write_shut:
            raise os_error(errno.EPIPE)
        if not data:
            return 0
        return self.network.call(stream.send(bytes(data)), self._call_timeout(flags))

    def sendall(self, data: bytes, flags: int = 0) -> None:
        stream = self._connected()
        _check_flags(flags, SEND_FLAGS, "sendall")
        if self._write_shut:
            raise os_error(errno.EPIPE)
        view = memoryview(bytes(data))

        async def send_all() -> None:
            offset = 0
            while offset < len(view):
                offset += await stream.send(view[offset : offset + SEND_AHEAD].tobytes())

        # Python's socket.sendall applies the timeout to the whole call, as we do.
        self.network.call(send_all(), self._call_timeout(flags))

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Send a file opened in binary mode, from `offset`, `count` bytes or to its end, as
        socket.sendfile; the file's position ends just after the last byte sent."""
        if "b" not in getattr(file, "mode", "b"):
            raise ValueError("file should be opened in binary mode")
        if count is not None and count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
        self._connected()
        if offset:
            file.seek(offset)
        total = 0
        try:
            while count is None or total < count:
                size = SEND_AHEAD if count is None else min(SEND_AHEAD, count - total)
                chunk = file.read(size)
                if not chunk:
                    break
                self.sendall(chunk)
                total += len(chunk)
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset + total)
        return total

    def recv(self, max_bytes: int, flags: int = 0) -> bytes:
        """Up to max_bytes. Flags: MSG_PEEK (the data stays to be read again), MSG_WAITALL (wait
        for all max_bytes unless the stream ends or fails first), MSG_DONTWAIT (BlockingIOError
        instead of waiting)."""
        stream = self._connected()
        _check_flags(flags, RECV_FLAGS, "recv")
        if max_bytes < 0:
            raise ValueError("negative buffersize in recv")
        if self._read_shut or max_bytes == 0:
            return b""
        peek = bool(flags & MSG_PEEK)
        if not flags & MSG_WAITALL or peek:
            return self.network.call(stream.recv(max_bytes, peek), self._call_timeout(flags))

        async def receive_all() -> bytes:
            data = bytearray()
            while len(data) < max_bytes:
                try:
                    chunk = await stream.recv(max_bytes - len(data))
                except OSError:
                    if data:
                        return bytes(data)  # the error comes with the next call, as the kernel does
                    raise
                if not chunk:
                    break
                data += chunk
            return bytes(data)

        return self.network.call(receive_all(), self._call_timeout(flags))

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """recv() into a writable buffer; returns the count (socket.recv_into)."""
        view = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        if nbytes > len(view):
            raise ValueError("buffer too small for requested bytes")
        data = self.recv(nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data)

    def makefile(self, mode: str = "r", buffering: int | None = None, *, encoding: str | None = None,
                 errors: str | None = None, newline: str | None = None) -> Any:
        """A file object reading and/or writing this socket, as socket.makefile: the standard
        library's own SocketIO and io buffers, on top of recv_into() and send(). The socket stays
        open until both it and every file made from it are closed."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError(f"invalid mode {mode!r} (only r, w, b allowed)")
        reading, writing, binary = "r" in mode, "w" in mode, "b" in mode
        if not (reading or writing):
            raise ValueError("makefile mode must include r or w")
        raw = _socket.SocketIO(self, ("r" if reading else "") + ("w" if writing else ""))
        self._io_refs += 1
        if buffering is None:
            buffering = -1
        if buffering < 0:
            buffering = io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if not binary:
                raise ValueError("unbuffered streams must be binary")
            return raw
        if reading and writing:
            buffered: Any = io.BufferedRWPair(raw, raw, buffering)
        elif reading:
            buffered = io.BufferedReader(raw, buffering)
        else:
            buffered = io.BufferedWriter(raw, buffering)
        if binary:
            return buffered
        text = io.TextIOWrapper(buffered, encoding, errors, newline)
        text.mode = mode
        return text

    def _decref_socketios(self) -> None:
        """A file from makefile() was closed (SocketIO calls this)."""
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._close_requested and self._io_refs == 0:
            self._real_close()

    def _call_timeout(self, flags: int) -> float | None:
        return 0.0 if flags & MSG_DONTWAIT else self._timeout

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
        if self._close_requested:
            return
        self._close_requested = True
        if self._io_refs == 0:
            self._real_close()

    def detach(self) -> int:
        raise os_error(errno.EOPNOTSUPP, "a ustack socket has no kernel descriptor to detach")

    def _real_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.network._closed:
            return
        halves = [half for half in (self._stream, self._listening) if half is not None and half.readiness is not None]
        if halves:
            self.network.call(_as_coroutine(lambda: [half.readiness.close() for half in halves]))
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


def _check_flags(flags: int, allowed: int, call: str) -> None:
    if flags & ~allowed:
        raise os_error(errno.EOPNOTSUPP, f"{call}() flags {flags & ~allowed:#x} are not supported by ustack")


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

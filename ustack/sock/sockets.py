"""Socket: the blocking calls of Python's socket.socket over a ustack Network.

Errors are OSError with the standard errno: ECONNREFUSED (ConnectionRefusedError), ECONNRESET
(ConnectionResetError), ETIMEDOUT (TimeoutError, also for settimeout), EPIPE (BrokenPipeError),
EAGAIN (BlockingIOError, non-blocking sockets and MSG_DONTWAIT), EADDRINUSE, ENOTCONN, EBADF.

Buffers: received data stays in the connection's receive buffer (SO_RCVBUF) until recv() takes it,
apart from at most READ_AHEAD bytes the socket holds, so a program that stops calling recv()
closes the TCP window, as with a kernel socket.

AF_INET6 sockets take and give the standard tuples (host, port, flowinfo, scope_id). As on Linux
with IPV6_V6ONLY off, an AF_INET6 socket also reaches IPv4 through v4-mapped addresses
(`::ffff:10.0.0.1`), and shows IPv4 peers that way; an IPv4 literal on an AF_INET6 socket (or an
IPv6 one on AF_INET) is socket.gaierror(EAI_ADDRFAMILY), as the socket module raises it.
"""

from __future__ import annotations


import errno
import io
import socket as _socket
import struct
from dataclasses import replace
from socket import (
    AF_INET,
    AF_INET6,
    EAI_ADDRFAMILY,
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
    SO_LINGER,
    SO_REUSEADDR,
    SOCK_STREAM,
    SOL_SOCKET,
)
from typing import Any

from ..aio.errors import os_error
from ..compat import byte_view
from ..wire.ipv4 import address_text, address_value
from ..wire.ipv6 import address6_text, address6_value
from .network import _DEFAULT_TIMEOUT, StackThread, _as_coroutine, _default_timeout
from .fastopen import TCP_FASTOPEN_CONNECT, FastOpenCalls
from .options import RECV_FLAGS, SEND_FLAGS, apply_options, check_flags, config_field, option_value, setting_for
from .streams import SEND_AHEAD, _Listening, _Stream



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
        connection = self.socket(AF_INET6 if ":" in str(address[0]) else AF_INET)
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


class Socket(FastOpenCalls):
    """A TCP socket of a ustack Network, with the blocking calls of Python's socket.socket."""

    def __init__(self, network: Network, family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0, *, _stream: _Stream | None = None) -> None:
        if family not in (AF_INET, AF_INET6):
            raise os_error(errno.EAFNOSUPPORT, "ustack sockets are AF_INET or AF_INET6 only")
        if type != SOCK_STREAM or proto not in (0, IPPROTO_TCP):
            raise os_error(errno.EPROTONOSUPPORT, "ustack sockets are SOCK_STREAM (TCP) only")
        self.network = network
        self.family, self.type, self.proto = family, type, proto
        self._timeout: float | None = network.new_socket_timeout()
        self._bound: tuple[str, int] | None = None  # (host as the runtime takes it, "" for any; port)
        self._config_overrides: dict[str, Any] = {}
        self._linger: tuple[int, int] = (0, 0)
        self._reuse_address = 0
        self._v6_only = 0  # IPV6_V6ONLY, off as Linux's default (net.ipv6.bindv6only=0)
        self._stream = _stream
        self._listening: _Listening | None = None
        self._read_shut = False
        self._write_shut = False
        self._closed = False
        self._close_requested = False  # close() was called (files from makefile() may keep it open)
        self._io_refs = 0  # open makefile() files: the socket really closes when the last one does

    def __repr__(self) -> str:
        if self._closed:
            return f"<ustack.sock.Socket [closed] family={self._family_name()}, type=SOCK_STREAM, proto=0>"
        half = self._stream if self._stream is not None else self._listening
        fd = half.readiness.fd if half is not None and half.readiness is not None else -1  # repr makes no descriptor
        text = f"<ustack.sock.Socket fd={fd}, family={self._family_name()}, type=SOCK_STREAM, proto={self.proto}"
        if self._stream is not None or self._listening is not None or self._bound is not None:
            text += f", laddr={self.getsockname()}"
        if self._stream is not None:
            text += f", raddr={self.getpeername()}"
        return text + ">"

    def _family_name(self) -> str:
        return "AF_INET6" if self.family == AF_INET6 else "AF_INET"

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
        host, port = _address_pair(address, "bind", self.family)
        stack = self.network.stack
        if host not in ("", "0.0.0.0"):
            try:
                value: int | bytes = address6_value(host) if ":" in host else address_value(host)
            except ValueError:
                raise os_error(errno.EINVAL, f"{host!r} is not an IP address") from None
            if value not in (stack.address, stack.address6):
                raise os_error(errno.EADDRNOTAVAIL, f"{host} is not this stack's address")
            if self._v6_only and type(value) is int and self.family == AF_INET6:
                raise os_error(errno.EINVAL, "a v4-mapped address on an IPV6_V6ONLY socket")
        if port and self.network.call(_as_coroutine(lambda: stack.listening_clash(self._listening_value(host), port))):
            raise os_error(errno.EADDRINUSE, f"port {port} is already in use")
        if port == 0:  # as the kernel: the port is chosen at bind(), so getsockname() tells it
            port = self.network.call(_as_coroutine(self.network.runtime.free_listening_port))
        self._bound = (host, port)

    def getsockname(self) -> tuple:
        if self._stream is not None:
            return self._shown(self._stream.transport.get_extra_info("sockname"))
        host = self._bound[0] if self._bound else ""
        if self._listening is not None:
            port = self._listening.server.port
        else:
            port = self._bound[1] if self._bound else 0
        if self.family == AF_INET6:  # "" is in6addr_any, shown as the kernel does
            return self._shown((host, port, 0, 0) if host else ("::", port, 0, 0))
        return (host or "0.0.0.0", port)  # "" is INADDR_ANY, shown as the kernel does

    def getpeername(self) -> tuple:
        if self._stream is None:
            raise os_error(errno.ENOTCONN)
        return self._shown(self._stream.transport.get_extra_info("peername"))

    def _any_address(self) -> str:
        """What listen() on the wildcard asks create_server for, as the kernel's sockets behave:
        an AF_INET socket takes IPv4 only ("0.0.0.0"), an AF_INET6 one with IPV6_V6ONLY IPv6 only
        ("::"), one without both families (""). On a stack of one family, "" (all it has)."""
        stack = self.network.stack
        if stack.address is None or stack.address6 is None:
            return ""
        if self.family == AF_INET:
            return "0.0.0.0"
        return "::" if self._v6_only else ""

    def _listening_value(self, host: str) -> int | bytes:
        """The stack address a listener bound to `host` would have (0: both families), for
        Stack.listening_clash, so bind() refuses the port as listen() would."""
        stack = self.network.stack
        host = host if host not in ("", "0.0.0.0") else self._any_address()
        if host == "0.0.0.0":
            return stack.address
        if host == "::":
            return stack.address6
        if not host:
            return 0
        return address6_value(host) if ":" in host else address_value(host)

    def _shown(self, name: tuple) -> tuple:
        """An address as this socket's family shows it: on an AF_INET6 socket an IPv4 address
        is v4-mapped (RFC 4291 2.5.5.2), ("::ffff:10.0.0.1", port, 0, 0), as Linux gives it."""
        if self.family != AF_INET6 or ":" in name[0]:
            return name
        return ("::ffff:" + name[0], name[1], 0, 0)

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
        if level == IPPROTO_IPV6:
            self._set_ipv6_option(option, value)
            return
        if (level, option) == (SOL_SOCKET, SO_LINGER):
            if isinstance(value, int):
                raise os_error(errno.EINVAL, "SO_LINGER takes struct.pack('ii', onoff, seconds)")
            self._linger = struct.unpack("ii", value)
            return
        if (level, option) == (IPPROTO_TCP, TCP_FASTOPEN_CONNECT):
            self._set_fast_open_connect(value)
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
        if (level, option) == (IPPROTO_TCP, TCP_FASTOPEN_CONNECT):
            return self._fast_open_connect
        if level == IPPROTO_IPV6:
            if self.family != AF_INET6:
                raise os_error(errno.EOPNOTSUPP, "IPPROTO_IPV6 options are for AF_INET6 sockets")
            if option != IPV6_V6ONLY:
                raise os_error(errno.ENOPROTOOPT, f"option ({level}, {option}) is not supported by ustack")
            return self._v6_only
        if (level, option) == (SOL_SOCKET, SO_ERROR):
            stream = self._stream
            error = stream._take_error() if stream is not None else None
            return error.errno if error is not None and error.errno else 0
        field = config_field(level, option)
        return option_value(field, self._config_overrides.get(field, getattr(self.network.stack.config, field)))

    def _set_ipv6_option(self, option: int, value: int | bytes) -> None:
        """IPV6_V6ONLY, the one IPPROTO_IPV6 option ustack has, with Linux's errors: ENOPROTOOPT
        on an AF_INET socket, EINVAL once the socket is bound."""
        if self.family != AF_INET6 or option != IPV6_V6ONLY:
            raise os_error(errno.ENOPROTOOPT, f"option ({IPPROTO_IPV6}, {option}) is not supported by ustack")
        if self._stream is not None or self._listening is not None or self._bound is not None:
            raise os_error(errno.EINVAL, "IPV6_V6ONLY is set before bind()")
        if isinstance(value, (bytes, bytearray)):
            (value,) = struct.unpack("i", bytes(value)[:4])
        self._v6_only = int(bool(value))

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
        host = host or self._any_address()
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
        connection.family = self.family
        return connection, connection.getpeername()

    # --- active open ----------------------------------------------------------------------------
    def connect(self, address: tuple[str, int]) -> None:
        self._check_open()
        if self._stream is not None or self._deferred is not None:
            raise os_error(errno.EISCONN)
        if self._listening is not None:
            raise os_error(errno.EINVAL, "socket is listening")
        host, port = self._destination(address)
        if self._defers_connect(host):  # TCP_FASTOPEN_CONNECT: the SYN waits for the first send (fastopen.py)
            self._deferred = (host, port)
            return
        self._stream = self.network.call(self._open_stream(host, port, fast_open=bool(self._fast_open_connect)), self._timeout)

    def _destination(self, address: Any) -> tuple[str, int]:
        """(host, port) of an address to connect to, checked as connect() checks it."""
        host, port = _address_pair(address, "connect", self.family)
        if self._v6_only and ":" not in host:
            raise os_error(errno.ENETUNREACH, "a v4-mapped address on an IPV6_V6ONLY socket")
        return host, port

    async def _open_stream(self, host: str, port: int, fast_open: bool = False, data: bytes = b"") -> _Stream:
        """The active open, on the stack's loop (AsyncStack.create_connection)."""
        local_port = self._bound[1] if self._bound and self._bound[1] else None
        _, stream = await self.network.runtime.create_connection(_Stream, host, port, local_port=local_port,
                                                                 config=self._config(), fast_open=fast_open, data=data)
        return stream

    def connect_ex(self, address: tuple[str, int]) -> int:
        try:
            self.connect(address)
        except OSError as error:
            return error.errno or errno.EIO
        return 0

    # --- data ---------------------------------------------------------------------------------
    def send(self, data: bytes, flags: int = 0) -> int:
        if self._deferred is not None and not self._closed:
            return self._send_on_syn(data, flags)
        stream = self._connected()
        check_flags(flags, SEND_FLAGS, "send")
        if self._write_shut:
            raise os_error(errno.EPIPE)
        if not data:
            return 0
        return self.network.call(stream.send(bytes(data)), self._call_timeout(flags))

    def sendall(self, data: bytes, flags: int = 0) -> None:
        view = memoryview(bytes(data))
        start = self._send_on_syn(view, flags) if self._deferred is not None and not self._closed else 0
        stream = self._connected()
        check_flags(flags, SEND_FLAGS, "sendall")
        if self._write_shut:
            raise os_error(errno.EPIPE)

        async def send_all() -> None:
            offset = start
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
        if self._deferred is None:  # (a deferred connect opens with the first chunk: fastopen.py)
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
        check_flags(flags, RECV_FLAGS, "recv")
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
        view = byte_view(buffer)
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


def _address_pair(address: Any, call: str, family: int = AF_INET) -> tuple[str, int]:
    """(host, port) as the runtime takes it, checked the way the standard socket module checks
    it, with its exceptions: TypeError for something that is not a (str, int) pair (for AF_INET6
    (host, port[, flowinfo[, scope_id]])), OverflowError for a port outside 0..65535 (port 0 means
    "any"), gaierror(EAI_ADDRFAMILY) for an address of the other family. On AF_INET6, "::" becomes
    "" (any) and a v4-mapped address its IPv4 address."""
    if family == AF_INET6:
        if not isinstance(address, tuple) or not 2 <= len(address) <= 4:
            raise TypeError("AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
        host, port, *rest = address
        if len(rest) >= 1 and not isinstance(rest[0], int) or len(rest) == 2 and not isinstance(rest[1], int):
            raise TypeError(f"{call}(): flowinfo and scope_id must be integers")
        if rest and not 0 <= rest[0] <= 0xFFFFF:
            raise OverflowError(f"{call}(): flowinfo must be 0-1048575.")
    else:
        if not isinstance(address, tuple) or len(address) != 2:
            raise TypeError(f"AF_INET address must be a (host, port) tuple, not {address!r}")
        host, port = address
    if not isinstance(host, str):
        raise TypeError(f"{call}(): host must be a str, not {type(host).__name__}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"{call}(): port must be an integer, not {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise OverflowError(f"{call}(): port must be 0-65535.")
    return _family_host(host, family), port


def _family_host(host: str, family: int) -> str:
    """The host as the runtime takes it, for a socket of `family` (see _address_pair)."""
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if family != AF_INET6:
        if ":" in literal:
            raise _socket.gaierror(EAI_ADDRFAMILY, "Address family for hostname not supported")
        return host
    if literal in ("", "::"):
        return ""
    if ":" not in literal:
        try:
            address_value(literal)
        except ValueError:
            return host  # not a literal: the caller names the error (ustack resolves no names)
        raise _socket.gaierror(EAI_ADDRFAMILY, "Address family for hostname not supported")
    try:
        value = address6_value(literal)
    except ValueError:
        return host
    if value[:12] == bytes(10) + b"\xff\xff":  # v4-mapped (RFC 4291 2.5.5.2): IPv4 underneath
        return address_text(int.from_bytes(value[12:], "big"))
    return address6_text(value)

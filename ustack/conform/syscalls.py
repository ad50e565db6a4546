"""The system calls of the scripts, emulated on ustack (the host, stack.py, and its TCP core).

packetdrill runs real system calls on the kernel under test; here a small socket table maps the
script's file descriptors (3, 4, ...) onto the host's Listener and Connection objects, and each
call returns what FreeBSD would: a result and, for -1, an errno name. The driver (driver.py)
owns time and packets; it gives this module a `host` that opens and closes through the Stack:

    host.make_config(socket)                    -> TcpConfig for the socket's next connection
    host.open_active(socket, config, now)       -> Connection (Stack.connect: an ephemeral port)
    host.open_listener(socket, config, backlog) -> Listener (Stack.listen)
    host.close_listener(listener, now)          Stack.close_listener
    host.receive_space                          the receive buffer the sysctls asked for

The calls on a Connection itself (send, recv, close, ...) are made here; the driver then pokes
the host (Stack.poke) so that what they produce goes out, as the runtime does after a user call.

A call the core refuses (TcpCallError, RFC 9293 3.10) returns -1 with the error's errno name.

A call that would block on a blocking socket returns `Blocked(retry)`: the driver calls retry()
after each step of virtual time until it returns an Outcome.
"""

from __future__ import annotations

import dataclasses
import errno as errno_module
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from ustack.conform.profile import FREEBSD_RECEIVE_BUFFER_ROUNDING, SOCKET_OPTIONS, Unsupported, freebsd_receive_buffer
from ustack.conform.linux_profile import linux_send_buffer
from ustack.conform.script import (
    ArrayExpr,
    BinaryExpr,
    EllipsisExpr,
    IntExpr,
    NameExpr,
    StringExpr,
    StructExpr,
    SyscallEvent,
)
from ustack.tcp.config import LIVE_SETTINGS
from ustack.tcp.options import TIMESTAMP_OPTION_SPACE
from ustack.tcp.errors import TcpCallError
from ustack.tcp.state import State

# FreeBSD's values for the constants the scripts use (sys/fcntl.h, sys/socket.h, netinet/in.h).
CONSTANTS = {
    "O_RDONLY": 0x0000,
    "O_WRONLY": 0x0001,
    "O_RDWR": 0x0002,
    "O_NONBLOCK": 0x0004,
    "F_GETFL": 3,
    "F_SETFL": 4,
    "SHUT_RD": 0,
    "SHUT_WR": 1,
    "SHUT_RDWR": 2,
    "MSG_PEEK": 0x2,
    "MSG_DONTWAIT": 0x80,
    "SOCK_STREAM": 1,
    "AF_INET": 2,
    "IPPROTO_TCP": 6,
    "SOL_SOCKET": 0xFFFF,
    # sys/poll.h
    "POLLIN": 0x0001,
    "POLLPRI": 0x0002,
    "POLLOUT": 0x0004,
    "POLLERR": 0x0008,
    "POLLHUP": 0x0010,
    "POLLNVAL": 0x0020,
    "POLLRDNORM": 0x0040,
    "POLLWRNORM": 0x0004,
    # Names only the Linux scripts use, with Linux's numbers (sys/epoll.h, linux/sockios.h,
    # bits/socket.h), for linux_calls.py. MSG_EOR takes FreeBSD's 0x8, since Linux's 0x80 is
    # FreeBSD's MSG_DONTWAIT above; the scripts name these flags, so only their distinctness matters.
    "EPOLLIN": 0x001, "EPOLLPRI": 0x002, "EPOLLOUT": 0x004, "EPOLLERR": 0x008, "EPOLLHUP": 0x010,
    "EPOLLRDNORM": 0x040, "EPOLLRDHUP": 0x2000, "EPOLLEXCLUSIVE": 1 << 28, "EPOLLONESHOT": 1 << 30,
    "EPOLLET": 1 << 31, "EPOLL_CTL_ADD": 1, "EPOLL_CTL_DEL": 2, "EPOLL_CTL_MOD": 3,
    "SIOCINQ": 0x541B, "FIONREAD": 0x541B, "SIOCOUTQ": 0x5411,
    "MSG_EOR": 0x8, "MSG_NOSIGNAL": 0x4000, "MSG_MORE": 0x8000, "MSG_ERRQUEUE": 0x2000,
    "MSG_ZEROCOPY": 0x4000000, "MSG_FASTOPEN": 0x20000000, "NULL": 0,
}

# Errno names that are one error under two names (on FreeBSD and on Linux).
# The states after our FIN was queued: the send side is shut, so poll() says writable (a write
# fails at once: EPIPE), as Linux (SEND_SHUTDOWN in tcp_poll) and FreeBSD (SBS_CANTSENDMORE) do.
_FIN_QUEUED = frozenset({State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSING, State.LAST_ACK, State.TIME_WAIT, State.CLOSED})
ERRNO_ALIASES = {"EWOULDBLOCK": "EAGAIN", "ENOTSUP": "EOPNOTSUPP"}


def same_errno(first: str | None, second: str | None) -> bool:
    return ERRNO_ALIASES.get(first, first) == ERRNO_ALIASES.get(second, second)


def errno_name(number: int) -> str:
    return errno_module.errorcode.get(number, f"errno {number}")


class Outcome(NamedTuple):
    """What a call returned: result, errno name when result is -1, and values written through
    pointer arguments (argument index -> value), e.g. getsockopt's option value."""

    result: int
    errno: str | None = None
    outputs: dict | None = None


class CallFailed(Exception):
    """A call that fails before doing anything (a bad descriptor, no connection): -1 with this
    errno name."""

    def __init__(self, errno: str) -> None:
        super().__init__(errno)
        self.errno = errno


class Blocked(NamedTuple):
    """A call that waits. The driver calls retry(now) after each step of virtual time; a call
    with a timeout also names the time it gives up, so the clock can be run to it."""

    retry: Callable[[float], Outcome | None]
    deadline: float | None = None


@dataclass
class FakeSocket:
    fd: int
    nonblocking: bool = False
    options: dict = field(default_factory=dict)  # socket option name -> value set by setsockopt
    listener: object = None
    connection: object = None
    pending_error: str | None = None  # SO_ERROR, cleared when read
    reported_error: bool = False  # the connection's error was already returned by a call
    closed: bool = False
    # shutdown(SHUT_RD): a read with nothing queued returns 0 at once (end of file) instead of
    # waiting; data that still arrives is queued and readable, as Linux does (tcp_recvmsg).
    read_shut: bool = False


def evaluate(expression, constants: dict[str, int] = CONSTANTS) -> int | None:
    """A script expression as a number: ints, constants (FreeBSD's unless `constants` names
    another system's, e.g. kernel_syscalls.LINUX_CONSTANTS), `A | B`, `[x]`. None for `...`."""
    if isinstance(expression, IntExpr):
        return expression.value
    if isinstance(expression, NameExpr):
        if expression.name in constants:
            return constants[expression.name]
        if expression.name.startswith("E") and hasattr(errno_module, expression.name):
            return getattr(errno_module, expression.name)
        raise Unsupported(f"constant {expression.name}", "not in the constants table")
    if isinstance(expression, BinaryExpr):
        return evaluate(expression.left, constants) | evaluate(expression.right, constants)
    if isinstance(expression, ArrayExpr) and len(expression.items) == 1:
        return evaluate(expression.items[0], constants)
    if isinstance(expression, EllipsisExpr):
        return None
    raise Unsupported("argument", f"cannot evaluate {expression!r}")


class SocketTable:
    """The script's file descriptors and the calls on them."""

    def __init__(self, host) -> None:
        self.host = host
        self.sockets: dict[int, FakeSocket] = {}
        self.wanted_fd: int | None = None  # the descriptor the script expects the call to return

    # -- entry point ---------------------------------------------------------------------------

    def call(self, event: SyscallEvent, now: float) -> Outcome | Blocked:
        handler = getattr(self, f"_{event.name}", None)
        if handler is None:
            raise Unsupported(f"syscall {event.name}", "not in syscalls.py")
        # packetdrill maps the descriptor the script expects from socket() or accept() onto the one
        # the system gives (run_system_call.c), so the script's number is the one it then uses.
        self.wanted_fd = evaluate(event.result) if event.name in ("socket", "accept") else None
        try:
            return handler(event.args, now)
        except TcpCallError as refused:  # the core refuses the call in this state (RFC 9293 3.10)
            return Outcome(-1, errno_name(refused.errno))
        except CallFailed as failed:
            return Outcome(-1, failed.errno)

    def socket_of(self, fd_expression) -> FakeSocket | None:
        socket = self.sockets.get(evaluate(fd_expression))
        return None if socket is None or socket.closed else socket

    def open_socket(self, fd_expression) -> FakeSocket:
        """The socket behind the descriptor; an unknown or closed one fails the call (EBADF)."""
        socket = self.socket_of(fd_expression)
        if socket is None:
            raise CallFailed("EBADF")
        return socket

    def connected_socket(self, fd_expression) -> FakeSocket:
        """As open_socket, for the calls that need a connection (else ENOTCONN)."""
        socket = self.open_socket(fd_expression)
        if socket.connection is None:
            raise CallFailed("ENOTCONN")
        return socket

    # -- socket, fcntl, options ------------------------------------------------------------------

    def _socket(self, args, now) -> Outcome:
        fd = self.wanted_fd if self.wanted_fd is not None and self.wanted_fd >= 0 else 3
        while fd in self.sockets and not self.sockets[fd].closed:
            fd += 1
        self.sockets[fd] = FakeSocket(fd)
        return Outcome(fd)

    def _fcntl(self, args, now) -> Outcome:
        socket = self.open_socket(args[0])
        command = evaluate(args[1])
        if command == CONSTANTS["F_GETFL"]:
            return Outcome(CONSTANTS["O_RDWR"] | (CONSTANTS["O_NONBLOCK"] if socket.nonblocking else 0))
        if command == CONSTANTS["F_SETFL"]:
            socket.nonblocking = bool(evaluate(args[2]) & CONSTANTS["O_NONBLOCK"])
            return Outcome(0)
        raise Unsupported("fcntl command", str(args[1]))

    def _setsockopt(self, args, now) -> Outcome:
        socket = self.open_socket(args[0])
        name = args[2].name if isinstance(args[2], NameExpr) else None
        if name not in SOCKET_OPTIONS:
            raise Unsupported(f"socket option {name}", "not in profile.SOCKET_OPTIONS")
        field_name, convert = SOCKET_OPTIONS[name][1:]
        value = linger_value(args[3]) if name == "SO_LINGER" else evaluate(args[3])
        if name == "SO_SNDBUF" and getattr(self.host, "linux", False):
            value = linux_send_buffer(value)
        if (socket.connection is not None or socket.listener is not None) and field_name is not None:
            setting = convert(value) if convert else value
            if socket.connection is not None:
                # On an open connection only what the core can change there (LIVE_SETTINGS).
                if field_name not in LIVE_SETTINGS:
                    raise Unsupported(f"socket option {name} after connect", "fixed once the connection exists")
                socket.connection.reconfigure(now, **{field_name: setting})
            else:  # a listener: the connections it makes from now on
                socket.listener.config = dataclasses.replace(socket.listener.config, **{field_name: setting})
        socket.options[name] = value
        return Outcome(0)

    def _getsockopt(self, args, now) -> Outcome:
        socket = self.open_socket(args[0])
        name = args[2].name if isinstance(args[2], NameExpr) else None
        if name == "SO_ERROR":
            error = self._take_error(socket)
            value = getattr(errno_module, error) if error else 0
        elif name == "SO_RCVBUF":
            value = self._receive_buffer(socket)
        elif name == "TCP_MAXSEG" and getattr(self.host, "linux", False) and self._has_peer_mss(socket):
            # Linux reports the connection's mss_cache: the peer's MSS, less the timestamp
            # option every segment carries (tcp_current_mss), not the value that was set.
            connection = socket.connection
            value = connection.send_mss - (TIMESTAMP_OPTION_SPACE if connection.timestamps_enabled else 0)
        elif name in socket.options:
            value = socket.options[name]
        elif name in SOCKET_OPTIONS and SOCKET_OPTIONS[name][1]:
            config = self.host.make_config(socket)
            field_name = SOCKET_OPTIONS[name][1]
            if not hasattr(config, field_name):
                raise Unsupported(f"socket option {name}", f"needs TcpConfig.{field_name}")
            value = getattr(config, field_name)
        else:
            raise Unsupported(f"socket option {name}", "getsockopt of it is not emulated")
        return Outcome(0, None, {3: value})

    @staticmethod
    def _has_peer_mss(socket: FakeSocket) -> bool:
        connection = socket.connection
        return connection is not None and connection.state not in (State.CLOSED, State.SYN_SENT)

    def _receive_buffer(self, socket: FakeSocket) -> int:
        """SO_RCVBUF as FreeBSD reports it (profile.FREEBSD_RECEIVE_BUFFER_ROUNDING)."""
        config = self.host.make_config(socket)
        size = socket.options.get("SO_RCVBUF", self.host.receive_space)
        connection = socket.connection
        mss_known = connection is not None and connection.state not in (State.CLOSED, State.SYN_SENT)
        if FREEBSD_RECEIVE_BUFFER_ROUNDING and mss_known and not getattr(self.host, "linux", False):
            return freebsd_receive_buffer(size, config.mss)
        return size

    def _take_error(self, socket: FakeSocket) -> str | None:
        """The pending socket error (SO_ERROR reads and clears it)."""
        connection = socket.connection
        failed = connection is not None and connection.error is not None
        if socket.pending_error is None and failed and not socket.reported_error:
            socket.pending_error = errno_name(connection.error.errno)
        error, socket.pending_error = socket.pending_error, None
        if error:
            socket.reported_error = True
        return error

    # -- opening -----------------------------------------------------------------------------------

    def _bind(self, args, now) -> Outcome:
        self.open_socket(args[0])  # EBADF for an unknown fd; the address itself is not needed
        return Outcome(0)

    def _listen(self, args, now) -> Outcome:
        socket = self.open_socket(args[0])
        if socket.listener is None:
            socket.listener = self.host.open_listener(socket, self.host.make_config(socket), evaluate(args[1]))
        return Outcome(0)

    def _accept(self, args, now) -> Outcome | Blocked:
        socket = self.open_socket(args[0])
        if socket.listener is None:
            return Outcome(-1, "EINVAL")

        def attempt(now: float) -> Outcome | None:
            connection = socket.listener.accept()
            if connection is None:
                return None
            fd = self._socket((), now).result
            accepted = self.sockets[fd]
            accepted.connection = connection
            accepted.nonblocking = socket.nonblocking  # FreeBSD's accept(2) passes O_NONBLOCK on
            return Outcome(fd)

        outcome = attempt(now)
        if outcome is not None:
            return outcome
        return Outcome(-1, "EAGAIN") if socket.nonblocking else Blocked(attempt)

    def _connect(self, args, now) -> Outcome | Blocked:
        socket = self.open_socket(args[0])
        if socket.connection is not None:
            state = socket.connection.state
            return Outcome(-1, "EALREADY" if state in (State.SYN_SENT, State.SYN_RECEIVED) else "EISCONN")
        socket.connection = self.host.open_active(socket, self.host.make_config(socket), now)

        def attempt(now: float) -> Outcome | None:
            connection = socket.connection
            if connection.error is not None:
                socket.reported_error = True
                return Outcome(-1, errno_name(connection.error.errno))
            if connection.state in (State.SYN_SENT, State.SYN_RECEIVED):
                return None
            return Outcome(0)

        if socket.nonblocking:
            return Outcome(-1, "EINPROGRESS")
        return Blocked(attempt)

    # -- data ----------------------------------------------------------------------------------------

    def _recv(self, args, now) -> Outcome | Blocked:
        flags = evaluate(args[3]) if len(args) > 3 else 0
        return self._receive(args[0], evaluate(args[2]), bool(flags & CONSTANTS["MSG_PEEK"]), now)

    def _read(self, args, now) -> Outcome | Blocked:
        return self._receive(args[0], evaluate(args[2]), False, now)

    def _receive(self, fd_expression, max_bytes: int, peek: bool, now: float) -> Outcome | Blocked:
        socket = self.connected_socket(fd_expression)
        connection = socket.connection

        def attempt(now: float) -> Outcome | None:
            if connection.readable:
                if peek:  # MSG_PEEK: the core has no peek; readable says what recv would return
                    return Outcome(min(connection.readable, max_bytes))
                return Outcome(len(connection.recv(max_bytes, now)))
            if connection.at_eof or socket.read_shut:
                return Outcome(0)
            error = self._take_error(socket)
            if error:
                return Outcome(-1, error)
            if connection.state is State.CLOSED:
                return Outcome(0)
            return None

        outcome = attempt(now)
        if outcome is not None:
            return outcome
        return Outcome(-1, "EAGAIN") if socket.nonblocking else Blocked(attempt)

    def _send(self, args, now) -> Outcome | Blocked:
        return self._transmit(args[0], evaluate(args[2]), now)

    def _write(self, args, now) -> Outcome | Blocked:
        return self._transmit(args[0], evaluate(args[2]), now)

    def _transmit(self, fd_expression, length: int, now: float) -> Outcome | Blocked:
        socket = self.connected_socket(fd_expression)
        connection = socket.connection
        error = self._take_error(socket)
        if error:
            return Outcome(-1, error)
        accepted = connection.send(bytes(length), now)
        if accepted == length or socket.nonblocking:
            return Outcome(accepted) if accepted or not length else Outcome(-1, "EAGAIN")
        # A blocking write returns once all of it is queued (or the connection fails): it waits
        # for the send buffer to drain, writing what fits each time (POSIX write(2), sosend).
        written = accepted

        def attempt(now: float) -> Outcome | None:
            nonlocal written
            error = self._take_error(socket)
            if error:
                return Outcome(written) if written else Outcome(-1, error)
            written += connection.send(bytes(length - written), now)
            return Outcome(written) if written == length else None  # the driver pokes the host after

        return Blocked(attempt)

    # -- poll ----------------------------------------------------------------------------------------

    def _poll(self, args, now) -> Outcome | Blocked:
        """poll([{fd=3, events=POLLIN|POLLOUT}], 1, timeout_ms): the number of ready entries;
        each entry's revents is written back (output index 0, a tuple in entry order)."""
        entries = args[0].items if isinstance(args[0], ArrayExpr) else ()
        requests = []
        for entry in entries:
            if not isinstance(entry, StructExpr):
                raise Unsupported("poll argument", "expected [{fd=..., events=...}]")
            fields = dict(entry.fields)
            requests.append((evaluate(fields["fd"]), evaluate(fields.get("events", IntExpr(0, "0"))) or 0))
        timeout = evaluate(args[2]) if len(args) > 2 else -1
        deadline = None if timeout is None or timeout < 0 else now + timeout / 1000.0

        def attempt(now: float) -> Outcome | None:
            revents = tuple(self._revents(fd, events) for fd, events in requests)
            ready = sum(1 for value in revents if value)
            if ready or (deadline is not None and now >= deadline):
                return Outcome(ready, None, {0: revents})
            return None

        outcome = attempt(now)
        return outcome if outcome is not None else Blocked(attempt, deadline)

    def _revents(self, fd: int, events: int) -> int:
        socket = self.sockets.get(fd)
        if socket is None or socket.closed:
            return CONSTANTS["POLLNVAL"]
        revents = 0
        connection = socket.connection
        if socket.listener is not None:
            if socket.listener.accept_queue:
                revents |= CONSTANTS["POLLIN"]
        elif connection is not None:
            state = connection.state
            # As Linux's tcp_poll: a connection that is over (a reset, or both FINs done: its
            # receive and send sides shut) is readable (EOF or the error) and writable (the
            # write fails at once), besides POLLHUP; so is the sending side once our FIN is queued.
            if connection.readable or connection.at_eof or state is State.CLOSED:
                revents |= CONSTANTS["POLLIN"] | CONSTANTS["POLLRDNORM"]
            if state in (State.ESTABLISHED, State.CLOSE_WAIT) and connection.send_space > 0 or state in _FIN_QUEUED:
                revents |= CONSTANTS["POLLOUT"]
            if connection.error is not None:
                revents |= CONSTANTS["POLLERR"]
            if state is State.CLOSED or (connection.at_eof and state in (State.LAST_ACK, State.TIME_WAIT, State.CLOSING)):
                revents |= CONSTANTS["POLLHUP"]
        always = CONSTANTS["POLLERR"] | CONSTANTS["POLLHUP"] | CONSTANTS["POLLNVAL"]
        return revents & (events | always)

    # -- closing -------------------------------------------------------------------------------------

    def _shutdown(self, args, now) -> Outcome:
        socket = self.connected_socket(args[0])
        how = evaluate(args[1])
        if how in (CONSTANTS["SHUT_RD"], CONSTANTS["SHUT_RDWR"]):
            socket.read_shut = True
        if how in (CONSTANTS["SHUT_WR"], CONSTANTS["SHUT_RDWR"]):
            socket.connection.shutdown(now)
        return Outcome(0)

    def _close(self, args, now) -> Outcome:
        socket = self.open_socket(args[0])
        socket.closed = True
        if socket.listener is not None:
            self.host.close_listener(socket.listener, now)
        if socket.connection is not None:
            if socket.options.get("SO_LINGER") == (1, 0):  # linger on, zero time: RST (abort)
                socket.connection.abort(now)
            elif socket.connection.state is not State.CLOSED:
                socket.connection.close(now)
        return Outcome(0)


def linger_value(expression) -> tuple[int, int]:
    """`{l_onoff=1, l_linger=0}` (or `[{...}]`) as (onoff, seconds)."""
    if isinstance(expression, ArrayExpr) and len(expression.items) == 1:
        expression = expression.items[0]
    if not isinstance(expression, StructExpr):
        raise Unsupported("SO_LINGER value", "expected {l_onoff=..., l_linger=...}")
    fields = dict(expression.fields)
    return evaluate(fields.get("l_onoff", IntExpr(0, "0"))), evaluate(fields.get("l_linger", IntExpr(0, "0")))


def check_outcome(event: SyscallEvent, outcome: Outcome, constants: dict[str, int] = CONSTANTS) -> str | None:
    """None if the call returned what the script says; else one line saying what differs."""
    expected = evaluate(event.result, constants)
    if expected is not None and outcome.result != expected:
        got = f"{outcome.result}" + (f" {outcome.errno}" if outcome.errno else "")
        want = f"{expected}" + (f" {event.errno}" if event.errno else "")
        return f"{event.name} returned {got} where the script expects {want}"
    if event.errno and not same_errno(event.errno, outcome.errno):
        return f"{event.name} failed with {outcome.errno} where the script expects {event.errno}"
    for index, value in (outcome.outputs or {}).items():
        if event.name == "poll":
            problem = _check_revents(event, value, constants)
            if problem:
                return problem
            continue
        if isinstance(value, (dict, str)):  # TCP_INFO fields, a string option (kernel backend)
            problem = _check_structured(event, index, value, constants)
            if problem:
                return problem
            continue
        if index < len(event.args):
            wanted = evaluate(event.args[index], constants)
            if wanted is not None and wanted != value:
                shown = errno_name(value) if value and _names_errno(event.args[index]) else value
                return f"{event.name} gave {shown} where the script expects {_expression_text(event.args[index])}"
    return None


def _check_structured(event: SyscallEvent, index: int, value, constants) -> str | None:
    """`"cubic"` against a string option; `{tcpi_state=..., ...}` against the TCP_INFO fields
    given (the others are not checked, and `...` stands for any value)."""
    expression = event.args[index] if index < len(event.args) else None
    if isinstance(value, str):
        if isinstance(expression, StringExpr) and expression.value != value:
            return f"{event.name} gave {value!r} where the script expects {expression.value!r}"
        return None
    if not isinstance(expression, StructExpr):
        return None
    for name, item in expression.fields:
        if name is None or isinstance(item, EllipsisExpr):
            continue
        if name not in value:
            raise Unsupported(f"field {name} of {event.name}", "not given by this system call")
        wanted = evaluate(item, constants)
        if wanted != value[name]:
            return f"{event.name} gave {name}={value[name]} where the script expects {wanted}"
    return None


def _check_revents(event: SyscallEvent, revents: tuple, constants=CONSTANTS) -> str | None:
    entries = event.args[0].items if isinstance(event.args[0], ArrayExpr) else ()
    for entry, actual in zip(entries, revents):
        fields = dict(entry.fields)
        if "revents" in fields:
            wanted = evaluate(fields["revents"], constants)
            if wanted is not None and wanted != actual:
                return f"poll gave revents {actual:#x} where the script expects {wanted:#x}"
    return None


def _names_errno(expression) -> bool:
    """`[ECONNRESET]`: the script writes the expected value as an errno name."""
    return (
        isinstance(expression, ArrayExpr)
        and bool(expression.items)
        and isinstance(expression.items[0], NameExpr)
        and expression.items[0].name.startswith("E")
    )


def _expression_text(expression) -> str:
    if isinstance(expression, ArrayExpr):
        return "[" + ", ".join(_expression_text(item) for item in expression.items) + "]"
    if isinstance(expression, IntExpr):
        return expression.text
    if isinstance(expression, NameExpr):
        return expression.name
    return "..."

"""The Linux system calls of Google's packetdrill scripts, emulated on ustack (the Linux profile).

SocketTable (syscalls.py) has the calls both suites use; LinuxSocketTable adds the ones only the
Linux scripts make, on the same socket table:

    sendto / recvfrom          send / recv with an address the connected socket ignores
    read / write / sendto...   a NULL buffer fails with EFAULT, as Linux checks the pointer first
    sendmsg / recvmsg          the iovec's total length (no control messages)
    epoll_create / epoll_ctl / epoll_wait
                               level- or edge-triggered (EPOLLET), EPOLLONESHOT
    ioctl SIOCINQ / SIOCOUTQ   bytes waiting to be read / not yet acknowledged

Flags ustack has no counterpart for (MSG_MORE corking, MSG_EOR record boundaries, MSG_ZEROCOPY,
MSG_FASTOPEN) and control messages make the script "skipped", naming the flag.

Edge-triggered epoll (EPOLLET) reports a socket again after a wake-up, as Linux's callbacks do:
data arrived, data was acknowledged (send space freed), the state or error changed; each report
gives every event that holds at that moment (so EPOLLOUT comes again with a later EPOLLIN).
"""

from __future__ import annotations

from dataclasses import dataclass

from ustack.conform.profile import Unsupported
from ustack.conform.script import ArrayExpr, NameExpr, StructExpr
from ustack.conform.syscalls import CONSTANTS, Blocked, CallFailed, Outcome, SocketTable, errno_name, evaluate
from ustack.tcp import State


# Send flags ustack has nothing for: flag -> (feature, why).
UNSUPPORTED_SEND_FLAGS = {
    "MSG_MORE": "ustack has no corking (TCP_CORK / MSG_MORE hold a partial segment back)",
    "MSG_EOR": "ustack keeps no record boundaries in its send queue (Linux's skb end-of-record mark)",
    "MSG_ZEROCOPY": "ustack has no zero-copy send notifications",
}
_EPOLL_MODES = CONSTANTS["EPOLLET"] | CONSTANTS["EPOLLONESHOT"] | CONSTANTS["EPOLLEXCLUSIVE"]


@dataclass
class Interest:
    """One descriptor in an epoll set: what is asked for, the data given back, the wake-ups seen."""

    events: int
    data: int
    reported_wakeups: tuple | None = None  # the socket's wake-up marks at the last report (EPOLLET)
    disabled: bool = False  # EPOLLONESHOT after its report, until EPOLL_CTL_MOD


class LinuxSocketTable(SocketTable):
    def __init__(self, host) -> None:
        super().__init__(host)
        self.epolls: dict[int, dict[int, Interest]] = {}  # epoll descriptor -> watched fd -> interest
        self._dont_wait = False  # the send call being made has MSG_DONTWAIT

    # -- data with addresses and message headers ------------------------------------------------

    def _check_send_flags(self, flags_expression) -> bool:
        """Refuse the flags ustack has nothing for; True for MSG_FASTOPEN."""
        flags = evaluate(flags_expression) or 0
        for name, why in UNSUPPORTED_SEND_FLAGS.items():
            if flags & CONSTANTS[name]:
                raise Unsupported(name, why)
        self._dont_wait = bool(flags & CONSTANTS["MSG_DONTWAIT"])
        return bool(flags & CONSTANTS["MSG_FASTOPEN"])

    # -- TCP Fast Open (RFC 7413, tcp/fastopen.py) --------------------------------------------------

    def _setsockopt(self, args, now) -> Outcome:
        outcome = super()._setsockopt(args, now)
        name = args[2].name if isinstance(args[2], NameExpr) else None
        socket = self.open_socket(args[0])
        if name == "TCP_FASTOPEN" and socket.listener is not None:
            socket.listener.fast_open_queue = evaluate(args[3]) or 0
        return outcome

    def _connect(self, args, now) -> Outcome | Blocked:
        """With TCP_FASTOPEN_CONNECT and a cookie for the server, connect() returns 0 at once and
        the SYN waits for the first write, to carry its data (Linux's deferred connect)."""
        socket = self.open_socket(args[0])
        if not socket.options.get("TCP_FASTOPEN_CONNECT") or socket.connection is not None:
            return super()._connect(args, now)
        connection = socket.connection = self.host.open_active(socket, self.host.make_config(socket), now, True)
        if connection.fast_open is not None and connection.fast_open.may_send_data:
            connection.fast_open.hold_syn = True
            return Outcome(0)
        return self._connect_opened(socket, connection)  # an ordinary connect; the SYN asks for a cookie

    def _connect_opened(self, socket, connection) -> Outcome | Blocked:
        socket.connection = connection

        def attempt(now: float) -> Outcome | None:
            if connection.error is not None:
                socket.reported_error = True
                return Outcome(-1, errno_name(connection.error.errno))
            return None if connection.state in (State.SYN_SENT, State.SYN_RECEIVED) else Outcome(0)

        return Outcome(-1, "EINPROGRESS") if socket.nonblocking else Blocked(attempt)

    def _transmit(self, fd_expression, length: int, now: float) -> Outcome | Blocked:
        """Every send call (write, send, sendto or sendmsg without MSG_FASTOPEN) on a socket whose
        connect() TCP_FASTOPEN_CONNECT deferred starts the connection with its data on the SYN,
        as Linux's tcp_sendmsg does (DEFER_CONNECT: tcp_sendmsg_fastopen); else a plain send."""
        socket = self.socket_of(fd_expression)
        connection = socket.connection if socket is not None else None
        if connection is None or connection.fast_open is None or not connection.fast_open.hold_syn:
            self._dont_wait = False
            return super()._transmit(fd_expression, length, now)
        return self._send_with_syn(socket, connection, length, now)

    def _fast_open_send(self, fd_expression, length: int, now: float) -> Outcome | Blocked:
        """sendto/sendmsg with MSG_FASTOPEN on an unconnected socket: connect and send in one call
        (RFC 7413 4.2)."""
        socket = self.open_socket(fd_expression)
        if socket.connection is not None:
            return self._transmit(fd_expression, length, now)
        socket.connection = self.host.open_active(socket, self.host.make_config(socket), now, True)
        return self._send_with_syn(socket, socket.connection, length, now)

    def _send_with_syn(self, socket, connection, length: int, now: float) -> Outcome | Blocked:
        """The first send of a Fast Open connection (Linux's tcp_sendmsg_fastopen). With a cookie
        the data rides on the SYN: a non-blocking call returns what fits there, a blocking one
        waits for the handshake and returns everything. Without one the SYN asks for a cookie:
        EINPROGRESS if non-blocking, else the data follows the handshake."""
        fast_open = connection.fast_open
        with_data = fast_open is not None and fast_open.may_send_data and length > 0
        nonblocking, self._dont_wait = socket.nonblocking or self._dont_wait, False
        if with_data and nonblocking:
            return Outcome(connection.send(bytes(min(length, fast_open.syn_room(connection.config))), now))
        if nonblocking or not length:
            return Outcome(-1, "EINPROGRESS")
        # Blocking: the data is queued now, so it leaves with the ACK of the SYN-ACK at the latest.
        accepted = connection.send(bytes(length), now)
        connected = self._connect_opened(socket, connection)

        def attempt(now: float) -> Outcome | None:
            done = connected.retry(now)
            return done if done is None or done.result < 0 else Outcome(accepted)

        return Blocked(attempt)

    def _send(self, args, now) -> Outcome | Blocked:
        if len(args) > 3:
            self._check_send_flags(args[3])
        return self._null_buffer(args) or super()._send(args, now)

    def _sendto(self, args, now) -> Outcome | Blocked:
        if self._check_send_flags(args[3]):
            return self._null_buffer(args) or self._fast_open_send(args[0], evaluate(args[2]), now)
        return self._null_buffer(args) or self._transmit(args[0], evaluate(args[2]), now)

    def _recvfrom(self, args, now) -> Outcome | Blocked:
        return self._null_buffer(args) or self._recv(args[:4], now)

    def _recv(self, args, now) -> Outcome | Blocked:
        return self._null_buffer(args) or super()._recv(args, now)

    def _read(self, args, now) -> Outcome | Blocked:
        return self._null_buffer(args) or super()._read(args, now)

    def _write(self, args, now) -> Outcome | Blocked:
        return self._null_buffer(args) or super()._write(args, now)

    def _null_buffer(self, args) -> Outcome | None:
        """EFAULT for a NULL buffer of non-zero length: Linux fails the copy before anything else."""
        if _is_null(args[1]) and evaluate(args[2]):
            self.open_socket(args[0])
            return Outcome(-1, "EFAULT")
        return None

    def _sendmsg(self, args, now) -> Outcome | Blocked:
        if self._check_send_flags(args[2]):
            return self._fast_open_send(args[0], _iov_length(args[1]), now)
        return self._transmit(args[0], _iov_length(args[1]), now)

    def _recvmsg(self, args, now) -> Outcome | Blocked:
        flags = evaluate(args[2]) or 0
        if flags & CONSTANTS["MSG_ERRQUEUE"]:
            raise Unsupported("MSG_ERRQUEUE", "ustack has no socket error queue")
        return self._receive(args[0], _iov_length(args[1]), bool(flags & CONSTANTS["MSG_PEEK"]), now)

    # -- ioctl ------------------------------------------------------------------------------------

    def _ioctl(self, args, now) -> Outcome:
        socket = self.connected_socket(args[0])
        request, connection = evaluate(args[1]), socket.connection
        if request == CONSTANTS["SIOCINQ"]:
            value = connection.readable
        elif request == CONSTANTS["SIOCOUTQ"]:
            value = connection.snd.queued
        else:
            raise Unsupported("ioctl request", f"{args[1]!r} is not emulated (SIOCINQ, SIOCOUTQ are)")
        return Outcome(0, None, {2: value})

    # -- epoll --------------------------------------------------------------------------------------

    def _epoll_create(self, args, now) -> Outcome:
        fd = self._socket((), now).result
        self.epolls[fd] = {}
        return Outcome(fd)

    _epoll_create1 = _epoll_create

    def _epoll_ctl(self, args, now) -> Outcome:
        interests = self._epoll_set(args[0])
        operation, fd = evaluate(args[1]), evaluate(args[2])
        if self.socket_of(args[2]) is None:
            return Outcome(-1, "EBADF")
        if operation == CONSTANTS["EPOLL_CTL_DEL"]:
            return Outcome(0) if interests.pop(fd, None) else Outcome(-1, "ENOENT")
        fields = dict(args[3].fields) if isinstance(args[3], StructExpr) else {}
        events = evaluate(fields.get("events")) if "events" in fields else 0
        data = fields.get("fd", fields.get("ptr", fields.get("u64")))
        interest = Interest(events, evaluate(data) if data is not None else 0)
        if operation == CONSTANTS["EPOLL_CTL_ADD"]:
            if fd in interests:
                return Outcome(-1, "EEXIST")
        elif fd not in interests:
            return Outcome(-1, "ENOENT")
        interests[fd] = interest
        return Outcome(0)

    def _epoll_wait(self, args, now) -> Outcome | Blocked:
        interests = self._epoll_set(args[0])
        most = evaluate(args[2])
        timeout = evaluate(args[3]) if len(args) > 3 else -1
        deadline = None if timeout is None or timeout < 0 else now + timeout / 1000.0

        def attempt(now: float) -> Outcome | None:
            ready = []
            for fd, interest in interests.items():
                revents = self._epoll_events(fd, interest)
                if revents:
                    ready.append({"events": revents, "fd": interest.data, "ptr": interest.data, "u64": interest.data})
                if len(ready) == most:
                    break
            if ready or (deadline is not None and now >= deadline):
                return Outcome(len(ready), None, {1: ready[0] if ready else {"events": 0, "fd": 0, "ptr": 0}})
            return None

        outcome = attempt(now)
        return outcome if outcome is not None else Blocked(attempt, deadline)

    def _epoll_set(self, fd_expression) -> dict[int, Interest]:
        interests = self.epolls.get(evaluate(fd_expression))
        if interests is None or self.socket_of(fd_expression) is None:
            raise CallFailed("EBADF")
        return interests

    def _epoll_events(self, fd: int, interest: Interest) -> int:
        """The events to report for `fd` now (0: none), updating the edge and one-shot marks."""
        if interest.disabled:
            return 0
        wanted = interest.events & ~_EPOLL_MODES
        revents = self._revents(fd, wanted)
        if not revents:
            return 0
        if interest.events & CONSTANTS["EPOLLET"]:
            marks = self._wakeup_marks(fd)
            if marks == interest.reported_wakeups:
                return 0
            interest.reported_wakeups = marks
        if interest.events & CONSTANTS["EPOLLONESHOT"]:
            interest.disabled = True
        return revents

    def _wakeup_marks(self, fd: int) -> tuple:
        """What changes when Linux wakes a socket's waiters: data in, data acknowledged, state,
        error; a listener's queue of connections."""
        socket = self.sockets[fd]
        if socket.listener is not None:
            return (len(socket.listener.accept_queue),)
        connection = socket.connection
        if connection is None:
            return ()
        return (connection.bytes_received, connection.snd_una, connection.state, connection.error, connection.at_eof)


def _is_null(expression) -> bool:
    return isinstance(expression, NameExpr) and expression.name == "NULL"


def _iov_length(message) -> int:
    """The total length of a msghdr's msg_iov; control messages are not emulated."""
    fields = dict(message.fields) if isinstance(message, StructExpr) else {}
    if "msg_control" in fields:
        raise Unsupported("msg_control", "control messages (cmsg) are not emulated")
    iov = fields.get("msg_iov")
    if not isinstance(iov, ArrayExpr):
        raise Unsupported("msghdr", "expected msg_iov=[{..., length}, ...]")
    total = 0
    for item in iov.items:
        if not isinstance(item, StructExpr) or not item.fields:
            raise Unsupported("msghdr", "expected msg_iov=[{..., length}, ...]")
        total += evaluate(item.fields[-1][1]) or 0
    return total

"""The system calls of a script, made for real on Linux sockets inside the drill namespace.

The calls run on a thread inside the drill namespace (kernel_thread.py says which thread), so
every socket they make is the namespace's, never the machine's:

    calls = KernelCalls(local_address, bind_port, remote_address, remote_port)
    calls.call(event)   # an Outcome (syscalls.py); Unsupported for what the table cannot express

The script's file descriptors (3, 4, ...) are names: the socket a script calls 3 is whatever real
descriptor the kernel gave; `socket(...) = 3` and `accept(...) = 4` say which name a new socket
gets, as packetdrill maps them. Constants are Linux's (LINUX_CONSTANTS); an argument or option the
table cannot express raises Unsupported, which the kernel backend reports as "skipped".
"""

from __future__ import annotations

import ctypes
import errno as errno_module
import fcntl
import os
import select
import socket
import struct

from ustack.conform.kernel_files import FileCalls
from ustack.conform.profile import Unsupported
from ustack.conform.script import ArrayExpr, EllipsisExpr, IntExpr, NameExpr, StringExpr, StructExpr, SyscallEvent
from ustack.conform.syscalls import Outcome, errno_name, evaluate
from ustack.wire.ipv4 import address_text


def _linux_constants() -> dict[str, int]:
    """Every name the Linux scripts use for a number, from Python's own copies of the C headers,
    plus the few newer ones Python does not name (include/uapi/linux/tcp.h, socket.h)."""
    table: dict[str, int] = {}
    for module in (socket, os, fcntl, select):
        for name in dir(module):
            if name.isupper() and (name.split("_")[0] in (
                "AF", "SOCK", "IPPROTO", "SOL", "SO", "TCP", "MSG", "SHUT", "O", "F", "EPOLL", "IP",
            ) or name.startswith(("POLL", "EPOLL"))):
                value = getattr(module, name)
                if isinstance(value, int):
                    table[name] = int(value)
    table.update(
        SOL_TCP=6, TCP_CONGESTION=13, TCP_USER_TIMEOUT=18, TCP_FASTOPEN=23, TCP_NOTSENT_LOWAT=25,
        TCP_FASTOPEN_CONNECT=30, TCP_FASTOPEN_KEY=33, TCP_FASTOPEN_NO_COOKIE=34, TCP_INQ=36, TCP_CM_INQ=36,
        SO_ZEROCOPY=60, MSG_ZEROCOPY=0x4000000, MSG_FASTOPEN=0x20000000, SIOCINQ=0x541B, FIONREAD=0x541B,
        SIOCOUTQ=0x5411, SIOCOUTQNSD=0x894B, IP_MTU_DISCOVER=10, IP_PMTUDISC_DONT=0, IP_PMTUDISC_WANT=1,
        IP_PMTUDISC_DO=2, IP_PMTUDISC_PROBE=3, IP_FREEBIND=15, SOL_IP=0, EPOLL_CTL_ADD=1, EPOLL_CTL_DEL=2, EPOLL_CTL_MOD=3, POLLRDNORM=0x40, POLLWRNORM=0x100, POLLRDHUP=0x2000,
    )
    return table


LINUX_CONSTANTS = _linux_constants()

# struct tcp_info (include/uapi/linux/tcp.h), in order: 8 one-byte fields (two of them split into
# nibbles below), then 32-bit counters, then 64-bit ones. Names as the scripts' %{ }% blocks use them.
_TCP_INFO_BYTES = ("tcpi_state", "tcpi_ca_state", "tcpi_retransmits", "tcpi_probes", "tcpi_backoff",
                   "tcpi_options", "_wscale", "_rate_flags")
_TCP_INFO_U32 = ("tcpi_rto", "tcpi_ato", "tcpi_snd_mss", "tcpi_rcv_mss", "tcpi_unacked", "tcpi_sacked",
                 "tcpi_lost", "tcpi_retrans", "tcpi_fackets", "tcpi_last_data_sent", "tcpi_last_ack_sent",
                 "tcpi_last_data_recv", "tcpi_last_ack_recv", "tcpi_pmtu", "tcpi_rcv_ssthresh", "tcpi_rtt",
                 "tcpi_rttvar", "tcpi_snd_ssthresh", "tcpi_snd_cwnd", "tcpi_advmss", "tcpi_reordering",
                 "tcpi_rcv_rtt", "tcpi_rcv_space", "tcpi_total_retrans")
_TCP_INFO_U64 = ("tcpi_pacing_rate", "tcpi_max_pacing_rate", "tcpi_bytes_acked", "tcpi_bytes_received")
_TCP_INFO_U32_B = ("tcpi_segs_out", "tcpi_segs_in", "tcpi_notsent_bytes", "tcpi_min_rtt",
                   "tcpi_data_segs_in", "tcpi_data_segs_out")
_TCP_INFO_U64_B = ("tcpi_delivery_rate", "tcpi_busy_time", "tcpi_rwnd_limited", "tcpi_sndbuf_limited")
_TCP_INFO_REST = ("tcpi_delivered", "tcpi_delivered_ce", "tcpi_bytes_sent", "tcpi_bytes_retrans",
                  "tcpi_dsack_dups", "tcpi_reord_seen", "tcpi_rcv_ooopack", "tcpi_snd_wnd", "tcpi_rcv_wnd",
                  "tcpi_rehash", "tcpi_total_rto", "tcpi_total_rto_recoveries", "tcpi_total_rto_time")
_TCP_INFO_FORMAT = "8B24I4Q6I4Q2I2Q6I2HI"  # native alignment, as the C struct


def tcp_info(sock: socket.socket) -> dict[str, int]:
    """getsockopt(TCP_INFO) as a dict of its fields (those a shorter kernel struct lacks read as 0)."""
    size = struct.calcsize(_TCP_INFO_FORMAT)
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, size).ljust(size, b"\0")
    values = struct.unpack(_TCP_INFO_FORMAT, raw[:size])
    names = _TCP_INFO_BYTES + _TCP_INFO_U32 + _TCP_INFO_U64 + _TCP_INFO_U32_B + _TCP_INFO_U64_B + _TCP_INFO_REST
    info = dict(zip(names, values))
    wscale = info.pop("_wscale")
    info["tcpi_snd_wscale"], info["tcpi_rcv_wscale"] = wscale & 0x0F, wscale >> 4
    info["tcpi_delivery_rate_app_limited"] = info.pop("_rate_flags") & 1
    return info


def value(expression) -> int | None:
    return evaluate(expression, LINUX_CONSTANTS)


class KernelCalls(FileCalls):
    """The script's calls on real sockets: the thread that makes them must be inside the drill
    namespace (kernel_thread.py), so that every socket is the namespace's."""

    def __init__(self, local_address: int | bytes, bind_port: int, remote_address: int | bytes, remote_port: int) -> None:
        # `...` for a socket's family: the run's (16-byte addresses: IPv6), as packetdrill's --ip_version
        self.family = socket.AF_INET6 if isinstance(local_address, bytes) else socket.AF_INET
        self.local = (address_text(local_address), bind_port)
        self.remote = (address_text(remote_address), remote_port)
        self.sockets: dict[int, socket.socket] = {}  # script fd -> socket
        self.epolls: dict[int, select.epoll] = {}  # script fd -> epoll instance
        self.files: dict[int, int] = {}  # script fd -> a file's or pipe end's real descriptor (kernel_files)
        self.current_port: int | None = None  # our port of the socket used last
        # What a call gave that the script says otherwise, beyond its result (a control message):
        # read and cleared by whoever made the call (kernel_thread._perform).
        self.mismatch: str | None = None

    def close_all(self) -> None:
        """Close every socket (which also wakes a call still blocked on one) and file."""
        self.close_files()
        for sock in list(self.sockets.values()):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    # -- the calls --------------------------------------------------------------------------------

    def call(self, event: SyscallEvent) -> Outcome:
        handler = getattr(self, f"_{event.name}", None)
        if handler is None:
            raise Unsupported(f"syscall {event.name}", "not in kernel_syscalls.py")
        try:
            return handler(event)
        except OSError as error:
            return Outcome(-1, errno_name(error.errno))

    @staticmethod
    def _value(expression) -> int | None:
        return value(expression)

    def _sock(self, expression) -> socket.socket:
        sock = self.sockets.get(value(expression))
        if sock is None:
            raise OSError(errno_module.EBADF, "bad file descriptor")
        return sock

    def _name_for(self, event: SyscallEvent) -> int:
        """The script's name for a new descriptor: the result it expects, else the lowest free one."""
        wanted = value(event.result) if not isinstance(event.result, EllipsisExpr) else None
        if wanted is not None and wanted >= 0:
            return wanted
        fd = 3
        while fd in self.sockets or fd in self.epolls or fd in self.files:
            fd += 1
        return fd

    def _socket(self, event) -> Outcome:
        kind = value(event.args[1])
        protocol = value(event.args[2]) or 0
        family = value(event.args[0]) or self.family
        if family != self.family:
            raise Unsupported("socket family", f"{event.args[0]} in an IPv{4 if self.family == socket.AF_INET else 6} run")
        sock = socket.socket(family, kind, protocol)
        fd = self._name_for(event)
        self.sockets[fd] = sock
        return Outcome(fd)

    def _bind(self, event) -> Outcome:
        sock = self._sock(event.args[0])
        sock.bind(self.local)
        self.current_port = self.local[1]
        return Outcome(0)

    def _listen(self, event) -> Outcome:
        self._sock(event.args[0]).listen(value(event.args[1]))
        return Outcome(0)

    def _accept(self, event) -> Outcome:
        new, _ = self._sock(event.args[0]).accept()
        fd = self._name_for(event)
        self.sockets[fd] = new
        return Outcome(fd)

    def _connect(self, event) -> Outcome:
        sock = self._sock(event.args[0])
        result = sock.connect_ex(self.remote)
        self._note_port(sock)
        return Outcome(0) if result == 0 else Outcome(-1, errno_name(result))

    def _null_buffer(self, event) -> Outcome | None:
        """`write(4, NULL, 1000)`: the call made with a NULL buffer, through libc (Python's socket
        calls always pass a buffer of their own), so that the kernel can say EFAULT."""
        if not (isinstance(event.args[1], NameExpr) and event.args[1].name == "NULL"):
            return None
        libc = ctypes.CDLL(None, use_errno=True)
        fd, length = self._sock(event.args[0]).fileno(), value(event.args[2])
        flags = value(event.args[3]) or 0 if len(event.args) > 3 else 0
        if event.name in ("read", "write"):
            result = getattr(libc, event.name)(fd, None, length)
        elif event.name in ("send", "recv"):
            result = getattr(libc, event.name)(fd, None, length, flags)
        elif event.name == "sendto":
            address = struct.pack("=H", socket.AF_INET) + struct.pack("!H", self.remote[1])
            address += socket.inet_aton(self.remote[0]) + bytes(8)
            result = libc.sendto(fd, None, length, flags, address, len(address))
        else:  # recvfrom
            result = libc.recvfrom(fd, None, length, flags, None, None)
        return Outcome(result) if result >= 0 else Outcome(-1, errno_name(ctypes.get_errno()))

    def _read(self, event) -> Outcome:
        null = self._null_buffer(event)
        if null is not None:
            return null
        return Outcome(len(os.read(self._sock(event.args[0]).fileno(), value(event.args[2]))))

    def _write(self, event) -> Outcome:
        null = self._null_buffer(event)
        if null is not None:
            return null
        return Outcome(os.write(self._sock(event.args[0]).fileno(), bytes(value(event.args[2]))))

    def _recv(self, event) -> Outcome:
        null = self._null_buffer(event)
        if null is not None:
            return null
        flags = value(event.args[3]) if len(event.args) > 3 else 0
        return Outcome(len(self._sock(event.args[0]).recv(value(event.args[2]), flags or 0)))

    _recvfrom = _recv

    def _send(self, event) -> Outcome:
        null = self._null_buffer(event)
        if null is not None:
            return null
        flags = value(event.args[3]) if len(event.args) > 3 else 0
        return Outcome(self._sock(event.args[0]).send(bytes(value(event.args[2])), flags or 0))

    def _sendto(self, event) -> Outcome:
        null = self._null_buffer(event)
        if null is not None:
            return null
        sock = self._sock(event.args[0])
        flags = value(event.args[3]) or 0
        family = value(event.args[4]) if len(event.args) > 4 else None
        try:
            if family is not None:  # `AF_UNSPEC` as the address: packetdrill passes a bare family
                return self._sendto_family(sock, event, flags, family)
            return Outcome(sock.sendto(bytes(value(event.args[2])), flags, self.remote))
        finally:
            self._note_port(sock)  # also when a Fast Open sendto says EINPROGRESS: its SYN is out

    def _note_port(self, sock: socket.socket) -> None:
        """Our port of a socket that may have started a connection."""
        try:
            port = sock.getsockname()[1]
        except OSError:
            return
        if port:
            self.current_port = port

    def _sendto_family(self, sock: socket.socket, event, flags: int, family: int) -> Outcome:
        """sendto with an address that is only a family (run_system_call.c run_syscall_connect):
        Python's sendto insists on a whole address, so the call goes through libc."""
        libc = ctypes.CDLL(None, use_errno=True)
        address = struct.pack("=H", family) + bytes(14)
        data = bytes(value(event.args[2]) or 0)
        result = libc.sendto(sock.fileno(), data, len(data), flags, address, len(address))
        return Outcome(result) if result >= 0 else Outcome(-1, errno_name(ctypes.get_errno()))

    def _shutdown(self, event) -> Outcome:
        self._sock(event.args[0]).shutdown(value(event.args[1]))
        return Outcome(0)

    def _close(self, event) -> Outcome:
        if self._close_file(value(event.args[0])):
            return Outcome(0)
        epoll = self.epolls.pop(value(event.args[0]), None)
        if epoll is not None:
            epoll.close()
            return Outcome(0)
        sock = self._sock(event.args[0])
        del self.sockets[value(event.args[0])]
        sock.close()
        return Outcome(0)

    def _fcntl(self, event) -> Outcome:
        sock = self._sock(event.args[0])
        command = value(event.args[1])
        if len(event.args) > 2:
            return Outcome(fcntl.fcntl(sock.fileno(), command, value(event.args[2])))
        return Outcome(fcntl.fcntl(sock.fileno(), command))

    def _ioctl(self, event) -> Outcome:
        sock = self._sock(event.args[0])
        raw = fcntl.ioctl(sock.fileno(), value(event.args[1]), struct.pack("i", 0))
        return Outcome(0, None, {2: struct.unpack("i", raw)[0]})

    def _setsockopt(self, event) -> Outcome:
        sock = self._sock(event.args[0])
        level, name = value(event.args[1]), value(event.args[2])
        sock.setsockopt(level, name, option_bytes(event.args[3]))
        return Outcome(0)

    def _getsockopt(self, event) -> Outcome:
        sock = self._sock(event.args[0])
        level, name = value(event.args[1]), value(event.args[2])
        wanted = event.args[3]
        if isinstance(wanted, StringExpr):
            raw = sock.getsockopt(level, name, 64)
            return Outcome(0, None, {3: raw.split(b"\0", 1)[0].decode(errors="replace")})
        if isinstance(wanted, StructExpr) or name == socket.TCP_INFO and level == socket.IPPROTO_TCP:
            if name != socket.TCP_INFO:
                raise Unsupported("getsockopt struct", f"option {event.args[2]}")
            return Outcome(0, None, {3: tcp_info(sock)})
        return Outcome(0, None, {3: sock.getsockopt(level, name) & 0xFFFF_FFFF})  # the kernel's u32

    def _sendmsg(self, event) -> Outcome:
        """sendmsg(fd, {msg_name(...)=..., msg_iov(N)=[{..., length}, ...], msg_flags=0}, flags):
        zero bytes of each length; the peer's address only for MSG_FASTOPEN (a connect)."""
        sock = self._sock(event.args[0])
        message = dict(event.args[1].fields) if isinstance(event.args[1], StructExpr) else {}
        buffers = _iov_buffers(message.get("msg_iov"))
        flags = value(event.args[2]) or 0
        if flags & LINUX_CONSTANTS["MSG_FASTOPEN"]:
            try:
                return Outcome(sock.sendmsg(buffers, [], flags, self.remote))
            finally:
                self._note_port(sock)
        return Outcome(sock.sendmsg(buffers, [], flags))

    def _recvmsg(self, event) -> Outcome:
        """recvmsg(fd, {msg_name(...)=..., msg_iov(1)=[{..., N}], msg_flags=F, msg_control=[{cmsg_level=L,
        cmsg_type=T, cmsg_data=D}]}, flags): the control messages and msg_flags are checked here."""
        sock = self._sock(event.args[0])
        message = dict(event.args[1].fields) if isinstance(event.args[1], StructExpr) else {}
        size = sum(len(buffer) for buffer in _iov_buffers(message.get("msg_iov")))
        flags = value(event.args[2]) or 0 if len(event.args) > 2 else 0
        data, ancillary, message_flags, _ = sock.recvmsg(size, socket.CMSG_SPACE(64), flags)
        wanted_flags = message.get("msg_flags")
        if wanted_flags is not None and value(wanted_flags) not in (None, message_flags):
            self.mismatch = f"recvmsg gave msg_flags {message_flags:#x} where the script expects {value(wanted_flags):#x}"
        self.mismatch = self.mismatch or _compare_control(message.get("msg_control"), ancillary)
        return Outcome(len(data))

    # epoll: the script's descriptor for an epoll instance is a name like a socket's.
    def _epoll_create(self, event) -> Outcome:
        fd = self._name_for(event)
        self.epolls[fd] = select.epoll()
        return Outcome(fd)

    def _epoll_ctl(self, event) -> Outcome:
        epoll = self.epolls.get(value(event.args[0]))
        if epoll is None:
            raise OSError(errno_module.EBADF, "bad file descriptor")
        operation, sock = value(event.args[1]), self._sock(event.args[2])
        fields = dict(event.args[3].fields) if isinstance(event.args[3], StructExpr) else {}
        mask = value(fields.get("events", IntExpr(0, "0"))) or 0
        if operation == LINUX_CONSTANTS["EPOLL_CTL_ADD"]:
            epoll.register(sock.fileno(), mask)
        elif operation == LINUX_CONSTANTS["EPOLL_CTL_MOD"]:
            epoll.modify(sock.fileno(), mask)
        else:
            epoll.unregister(sock.fileno())
        return Outcome(0)

    def _epoll_wait(self, event) -> Outcome:
        epoll = self.epolls.get(value(event.args[0]))
        if epoll is None:
            raise OSError(errno_module.EBADF, "bad file descriptor")
        timeout = value(event.args[3]) if len(event.args) > 3 else -1
        ready = epoll.poll(-1 if timeout is None or timeout < 0 else timeout / 1000.0, value(event.args[2]) or 1)
        names = {sock.fileno(): fd for fd, sock in self.sockets.items()}
        if not ready:
            return Outcome(0, None, {1: {"events": 0, "fd": 0, "ptr": 0}})
        descriptor, mask = ready[0]
        name = names.get(descriptor, -1)
        return Outcome(len(ready), None, {1: {"events": mask, "fd": name, "ptr": name}})

    def _poll(self, event) -> Outcome:
        entries = event.args[0].items if isinstance(event.args[0], ArrayExpr) else (event.args[0],)
        poller = select.poll()
        order = []
        for entry in entries:
            if not isinstance(entry, StructExpr):
                raise Unsupported("poll argument", "expected [{fd=..., events=...}]")
            fields = dict(entry.fields)
            sock = self._sock(fields["fd"])
            poller.register(sock.fileno(), value(fields.get("events", IntExpr(0, "0"))) or 0)
            order.append(sock.fileno())
        timeout = value(event.args[2]) if len(event.args) > 2 else -1
        ready = dict(poller.poll(timeout))
        return Outcome(len(ready), None, {0: tuple(ready.get(fd, 0) for fd in order)})


def _iov_buffers(vectors) -> list[bytes]:
    """`msg_iov(N)=[{..., length}, ...]` as buffers of zero bytes of each length."""
    buffers = []
    for vector in vectors.items if isinstance(vectors, ArrayExpr) else ():
        if not isinstance(vector, StructExpr):
            raise Unsupported("msghdr argument", "msg_iov entries as {base, length}")
        fields = dict(vector.fields)
        buffers.append(bytes(value(fields.get("iov_len", vector.fields[-1][1]))))
    return buffers


def _compare_control(expected, ancillary: list) -> str | None:
    """None if every control message the script lists came with these level, type and (an
    integer's) data; packetdrill compares the ones it lists."""
    if not isinstance(expected, ArrayExpr):
        return None
    got = {(level, kind): data for level, kind, data in ancillary}
    for item in expected.items:
        fields = dict(item.fields) if isinstance(item, StructExpr) else {}
        level, kind = value(fields.get("cmsg_level")), value(fields.get("cmsg_type"))
        if (level, kind) not in got:
            return f"no control message of level {level} type {kind} where the script expects one"
        data = got[(level, kind)]
        wanted = value(fields.get("cmsg_data"))
        actual = int.from_bytes(data[:4], "little", signed=True)
        if wanted is not None and actual != wanted:
            return f"control message level {level} type {kind} gave {actual} where the script expects {wanted}"
    return None


def option_bytes(expression) -> bytes:
    """A setsockopt value: `[1]` or `1` an int, `{l_onoff=1, l_linger=0}` a struct of ints,
    `"reno"` a string (TCP_CONGESTION)."""
    if isinstance(expression, ArrayExpr) and len(expression.items) == 1:
        expression = expression.items[0]
    if isinstance(expression, StringExpr):  # "\xf7\x63...": bytes written as escapes
        return expression.value.encode("latin-1")
    if isinstance(expression, StructExpr):
        return struct.pack(f"{len(expression.fields)}i", *(value(item) for _, item in expression.fields))
    if isinstance(expression, (IntExpr, NameExpr)):
        number = value(expression)
        return struct.pack("I" if number > 0x7FFF_FFFF else "i", number)  # 4294967295: all ones
    raise Unsupported("setsockopt value", f"cannot pass {expression!r}")

"""Two links joined back to back in one process: two stacks talk without root and without TUN.

    a, b = MemoryLink.pair(mtu=1500)
    a.send(packet, now)
    b.receive_batch(now)   # -> [packet]

Underneath is a Unix socketpair of type SOCK_SEQPACKET, chosen because it
- keeps packet boundaries (one send is one receive, like a TUN device),
- is a real file descriptor, so the asyncio runtime can add_reader() it exactly like a TUN fd,
- delivers synchronously: once send() returns, the peer can receive it. Tests on virtual time
  therefore see the same packets in the same order on every run.

The send buffer is raised to 4 MiB so that a burst of a few thousand full-size packets fits; past
that, the send is a counted drop ("drop_queue_full"), as on a real device.
"""

from __future__ import annotations

import socket

from .base import Link, LinkClosed

_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024


class MemoryLink(Link):
    def __init__(self, sock: socket.socket, mtu: int = 1500, name: str = "memory") -> None:
        super().__init__()
        if not 68 <= mtu <= 65535:  # RFC 791: every IPv4 link carries at least 68 bytes
            raise ValueError(f"mtu {mtu} is outside 68..65535")
        self.mtu = mtu
        self.name = name
        self._socket = sock
        self._socket.setblocking(False)
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            self._socket.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER_BYTES)

    @classmethod
    def pair(cls, mtu: int = 1500) -> tuple["MemoryLink", "MemoryLink"]:
        first, second = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(first, mtu, name="memory-a"), cls(second, mtu, name="memory-b")

    def layer_name(self) -> str:
        return f"MemoryLink({self.name})"

    def fileno(self) -> int:
        return self._socket.fileno()

    def read_packet(self) -> bytes | None:
        # One byte more than the MTU so an oversized packet is seen (MSG_TRUNC gives us its real
        # length) and dropped by name instead of arriving cut short.
        packet, _, flags, _ = self._socket.recvmsg(self.mtu + 1)
        if not packet:
            # We never send empty packets, so an empty read is the peer closing its end.
            raise LinkClosed(f"{self.name}: the other end of the memory link was closed")
        if flags & socket.MSG_TRUNC or len(packet) > self.mtu:
            self.count_drop("larger_than_mtu")
            return None
        return packet

    def send(self, packet: bytes, now: float) -> None:
        if not packet:
            self.count_drop("empty_packet")
            return
        if len(packet) > self.mtu:
            self.count_drop("larger_than_mtu")
            return
        try:
            self._socket.send(packet)
        except BlockingIOError:  # the peer's queue is full: a real link would drop it too
            self.count_drop("queue_full")
            return
        except OSError:  # EPIPE / ECONNRESET: the peer is gone
            self.count_drop("peer_closed")
            return
        self.counters["packets_out"] += 1
        self.counters["bytes_out"] += len(packet)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._socket.close()

"""What a connection reports: events the application drains with `events()`, and snapshots.

Events are small frozen dataclasses (h11 style). They are emitted on edges, not per segment:
`DataReadable` when data becomes readable after the buffer was empty, `SendSpaceAvailable` when an
ACK frees space after a `send` was cut short, so a bulk transfer costs no allocation per segment.
"""

from __future__ import annotations


from dataclasses import dataclass
from typing import Union

from ustack.compat import DATACLASS_SLOTS

from ustack.tcp.errors import TcpError
from ustack.tcp.state import State, StateChanged
from ustack.tcp.summary import segment_summary  # noqa: F401 (re-exported: the events' text)


@dataclass(frozen=True, **DATACLASS_SLOTS)
class DataReadable:
    readable: int  # in-order bytes waiting for recv()


@dataclass(frozen=True, **DATACLASS_SLOTS)
class EndOfStream:
    """The peer's FIN arrived and every byte before it is in the receive buffer."""


@dataclass(frozen=True, **DATACLASS_SLOTS)
class SendSpaceAvailable:
    send_space: int


@dataclass(frozen=True, **DATACLASS_SLOTS)
class UrgentDataArrived:
    """RFC 6093: the peer's urgent pointer moved; `bytes_before_mark` more bytes are to be read
    (inline, by recv) before the end of the urgent data."""

    bytes_before_mark: int


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ConnectionFailed:
    error: TcpError


Event = Union[StateChanged, DataReadable, EndOfStream, SendSpaceAvailable, UrgentDataArrived, ConnectionFailed]


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ConnectionSnapshot:
    """RFC 9293 3.10.6 STATUS: the connection's variables at one instant."""

    state: State
    local: tuple[int, int]
    remote: tuple[int, int]
    snd_una: int
    snd_nxt: int
    snd_wnd: int
    rcv_nxt: int
    rcv_wnd: int
    cwnd: int
    ssthresh: int
    srtt: float | None
    rttvar: float | None
    rto: float
    retransmissions: int
    bytes_sent: int
    bytes_received: int
    send_queue: int  # bytes written and not yet acknowledged
    receive_queue: int  # bytes received and not yet read
    timers: dict[str, float]  # armed timers by name, with their deadlines
    error: TcpError | None
    ecn: bool = False  # ECN negotiated on the SYNs (RFC 3168 6.1.1)
    congestion_control: str | None = None  # the algorithm's name, as `ss -i` shows it (Linux's tcpi_ca)
    window_scale: tuple[int, int] | None = None  # (send shift, receive shift) when negotiated (RFC 7323)
    mss: int | None = None  # the send MSS: ss -i counts cwnd and ssthresh in these segments, as Linux does
    pacing_rate: float | None = None  # bytes/s when paced (congestion/pacing.py), as ss -i's pacing_rate
    listening_on: str | None = None  # a listener's wildcard as ss shows it: "*", "0.0.0.0", "::" (Listener.listening_on)

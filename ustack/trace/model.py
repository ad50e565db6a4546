"""The ladder diagram of one TCP connection, independent of where it comes from.

A `Ladder` is what every renderer draws (text, SVG, Mermaid) and what every source builds (a pcap
file through `ustack.trace.infer`, a running stack through `ustack.trace.recorder`). It holds two
endpoints, the left one and the right one, and a list of items in time order:

- an `Arrow` for each segment that went from one side towards the other;
- a `StateMark` each time one side's TCP state changes (RFC 9293 3.3.2, figure 5), holding the
  core's `State`; renderers draw its value, the RFC spelling ('SYN-RECEIVED').

Sides are numbered: LEFT (0) and RIGHT (1). From a pcap, LEFT is the side that sent the first SYN
(the active opener); from a running stack, LEFT is the stack itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ustack.tcp.seq import seq_add
from ustack.tcp.state import State
from ustack.wire.ipv6 import endpoint_text
from ustack.wire.tcp import ACK, FIN, NO_OPTIONS, SYN, TcpOptions

LEFT = 0
RIGHT = 1

# What happened to the segment an arrow stands for. Each kind is drawn differently.
NORMAL = "normal"
RETRANSMISSION = "retransmission"  # its sequence range had already been sent once
DUPLICATE = "duplicate"  # the very same packet seen again (the network duplicated it)
LOST = "lost"  # it never reached the other side: drawn ending in a cross mid-way
KINDS = (NORMAL, RETRANSMISSION, DUPLICATE, LOST)

def other_side(side: int) -> int:
    return RIGHT if side == LEFT else LEFT


@dataclass(frozen=True)
class Endpoint:
    address: str  # as text: '10.77.0.2', or 'fd00:77::2' for IPv6
    port: int
    label: str = ""  # a role such as 'client', 'server', 'ustack', 'kernel'

    @property
    def name(self) -> str:
        """'10.77.0.2:8000', '[fd00:77::2]:8000': as ss writes an endpoint."""
        return endpoint_text(self.address, self.port)

    @property
    def title(self) -> str:
        return f"{self.name} ({self.label})" if self.label else self.name


@dataclass(frozen=True)
class Arrow:
    """One segment, from `from_side` towards the other side. Numbers are absolute, as on the wire."""

    time: float
    from_side: int
    flags: int
    seq: int
    ack: int
    window: int  # the raw 16-bit field (unscaled), as tcpdump prints it
    length: int  # payload bytes
    options: TcpOptions = NO_OPTIONS
    kind: str = NORMAL
    note: str = ""  # why it has its kind: 'retransmission 2, +0.400 s', 'dropped by FaultInjector'

    @property
    def sequence_length(self) -> int:
        """SEG.LEN (RFC 9293 3.4): payload plus one for SYN and one for FIN."""
        return self.length + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    @property
    def sequence_end(self) -> int:
        return seq_add(self.seq, self.sequence_length)

    @property
    def has_ack(self) -> bool:
        return bool(self.flags & ACK)


@dataclass(frozen=True)
class StateMark:
    """Side `side` entered `state` at `time`. `inferred` is True when it was guessed from the wire."""

    time: float
    side: int
    state: State
    inferred: bool = False
    cause: str = ""  # 'sent SYN', 'received FIN', 'ACK of our FIN', ...


@dataclass
class Ladder:
    left: Endpoint
    right: Endpoint
    items: list[Arrow | StateMark] = field(default_factory=list)
    source: str = ""  # 'capture.pcap', 'live': said in the header of every rendering
    window: str = ""  # when only part is drawn: which part ('segments 11-20 of 500'), see clip()
    time_origin: float | None = None  # time 0 of the drawing (the whole connection's start, if clipped)

    @property
    def arrows(self) -> list[Arrow]:
        return [item for item in self.items if isinstance(item, Arrow)]

    @property
    def marks(self) -> list[StateMark]:
        return [item for item in self.items if isinstance(item, StateMark)]

    @property
    def start_time(self) -> float:
        if self.time_origin is not None:
            return self.time_origin
        return min(item.time for item in self.items) if self.items else 0.0

    def endpoint(self, side: int) -> Endpoint:
        return self.left if side == LEFT else self.right

    def initial_sequence(self, side: int) -> int | None:
        """The base for relative numbering, as tcpdump chooses it: the side's SYN, else its first segment."""
        first = None
        for arrow in self.arrows:
            if arrow.from_side != side:
                continue
            if arrow.flags & SYN:
                return arrow.seq
            if first is None:
                first = arrow.seq
        return first

    def states_of(self, side: int) -> list[str]:
        """The states one side went through, in order, as the RFC spells them (State.value):
        handy in tests and summaries."""
        return [mark.state.value for mark in self.marks if mark.side == side]


def clip(ladder: Ladder, first: int | None = None, last: int | None = None,
         start: float | None = None, end: float | None = None, limit: int | None = None) -> Ladder:
    """The part of a ladder between segment numbers first..last (1 = its first arrow, both
    included) and/or times start..end (seconds since its first item), at most `limit` segments
    of it. Times stay those of the whole connection; each side's state at the start of the part
    is drawn first, so the part reads on its own. `window` says what was kept."""
    origin = ladder.start_time
    arrows = ladder.arrows
    chosen = [
        (number, arrow) for number, arrow in enumerate(arrows, 1)
        if (first is None or number >= first) and (last is None or number <= last)
        and (start is None or _since(arrow.time, origin) >= start) and (end is None or _since(arrow.time, origin) <= end)
    ]
    if limit is not None:
        chosen = chosen[:limit]
    if not chosen:
        return Ladder(ladder.left, ladder.right, [], ladder.source, f"no segment in the range (of {len(arrows)})", origin)
    low, high = chosen[0][1].time, chosen[-1][1].time
    kept_arrows = {id(arrow) for _, arrow in chosen}
    before: dict[int, StateMark] = {}
    items: list[Arrow | StateMark] = []
    for item in ladder.items:
        if isinstance(item, Arrow):
            if id(item) in kept_arrows:
                items.append(item)
        elif item.time < low:
            before[item.side] = item
        elif item.time <= high:
            items.append(item)
    opening = [StateMark(low, side, mark.state, mark.inferred, "its state before the range drawn")
               for side, mark in sorted(before.items())]
    window = f"segments {chosen[0][0]}-{chosen[-1][0]} of {len(arrows)}"
    return Ladder(ladder.left, ladder.right, opening + items, ladder.source, window, origin)


def _since(time: float, origin: float) -> float:
    """Seconds from origin to time, to the microsecond: capture times near 1.7e9 carry a rounding
    error of about 2e-7 s, which must not move a segment out of a range given as "30ms"."""
    return round(time - origin, 6)

"""The data of a time-sequence graph (tcptrace, Wireshark's "Stevens" graph) of one direction
of one TCP connection, taken from a `Ladder` (so from a capture or a running stack alike).

For the side that sends the data (the "sender") it holds, in seconds since the connection's
start and in sequence numbers relative to the sender's initial one (its SYN is 0):

- `segments`: one vertical bar per segment carrying sequence space, seq..seq+SEG.LEN, with the
  kind `ustack.trace.infer` gave it (normal, retransmission, duplicate, lost);
- `acks`: the other side's cumulative ACK over time (a step line);
- `windows`: the right edge of the window the other side offers, ACK + window, the window
  scaled by the shift the other side announced on its SYN when both SYNs carried the option
  (RFC 7323 2.2, 2.3: the SYN's own window field is never scaled);
- `sacks`: the SACK blocks the other side reported (RFC 2018), each at its time.

Drawing is `plot_render.py`'s business; this module is what the tests check.

Bounded: past `limit` points of one kind, consecutive points are aggregated into time buckets
(a bar from the lowest to the highest sequence number sent in the bucket; the last ACK / window of
the bucket). Retransmissions and losses are aggregated only past `limit` of their own.
`TimeSequence.aggregated` says what was done, and every drawing shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ustack.wire.tcp import SYN

from .model import DUPLICATE, LEFT, LOST, NORMAL, RETRANSMISSION, RIGHT, Endpoint, Ladder, other_side

SEQUENCE_SPACE = 2**32
POINT_LIMIT = 20_000  # per kind of point: matplotlib draws that many in about a second


@dataclass(frozen=True)
class Bar:
    """A segment: relative sequence numbers start..end (end excluded) at `time`."""

    time: float
    start: int
    end: int
    kind: str = NORMAL


@dataclass(frozen=True)
class SackBlock:
    time: float
    start: int
    end: int


@dataclass
class TimeSequence:
    sender: Endpoint
    receiver: Endpoint
    source: str = ""
    segments: list[Bar] = field(default_factory=list)
    acks: list[tuple[float, int]] = field(default_factory=list)
    windows: list[tuple[float, int]] = field(default_factory=list)
    sacks: list[SackBlock] = field(default_factory=list)
    window_scale: int | None = None  # the shift applied to the receiver's windows (None: not known)
    aggregated: str = ""  # what was aggregated to stay bounded ('' if nothing)

    def of_kind(self, kind: str) -> list[Bar]:
        return [bar for bar in self.segments if bar.kind == kind]

    @property
    def title(self) -> str:
        return f"{self.sender.name} > {self.receiver.name}"


def payload_bytes(ladder: Ladder, side: int) -> int:
    return sum(arrow.length for arrow in ladder.arrows if arrow.from_side == side and arrow.kind != DUPLICATE)


def data_sender(ladder: Ladder) -> int:
    """The side that sent more payload (the opener, LEFT, when equal)."""
    return RIGHT if payload_bytes(ladder, RIGHT) > payload_bytes(ladder, LEFT) else LEFT


def receiver_window_scale(ladder: Ladder, receiver: int) -> int | None:
    """The shift of the receiver's windows: its SYN's window-scale option if both SYNs carried
    one (RFC 7323 2.2), 0 if a SYN did not, None if a SYN is missing from the capture."""
    shifts: dict[int, int | None] = {}
    for arrow in ladder.arrows:
        if arrow.flags & SYN and arrow.from_side not in shifts:
            shifts[arrow.from_side] = arrow.options.window_scale
    if len(shifts) < 2:
        return None
    if None in shifts.values():
        return 0
    return min(shifts[receiver], 14)  # RFC 7323 2.3: a larger shift is taken as 14


def time_sequence(ladder: Ladder, sender: int | None = None, limit: int = POINT_LIMIT) -> TimeSequence:
    """The time-sequence graph of the data `sender` sends (default: the side that sent more)."""
    if sender is None:
        sender = data_sender(ladder)
    receiver = other_side(sender)
    origin = ladder.start_time
    base = ladder.initial_sequence(sender) or 0
    scale = receiver_window_scale(ladder, receiver)
    graph = TimeSequence(ladder.endpoint(sender), ladder.endpoint(receiver), ladder.source, window_scale=scale)

    def relative(seq: int) -> int:
        return (seq - base) % SEQUENCE_SPACE

    for arrow in ladder.arrows:
        time = arrow.time - origin
        if arrow.from_side == sender:
            if arrow.sequence_length:
                start = relative(arrow.seq)
                graph.segments.append(Bar(time, start, start + arrow.sequence_length, arrow.kind))
            continue
        if arrow.kind == LOST or not arrow.has_ack:
            continue  # it never told the sender anything
        ack = relative(arrow.ack)
        graph.acks.append((time, ack))
        window = arrow.window if arrow.flags & SYN else arrow.window << (scale or 0)
        graph.windows.append((time, ack + window))
        for left, right in arrow.options.sack_blocks:
            graph.sacks.append(SackBlock(time, relative(left), relative(left) + (right - left) % SEQUENCE_SPACE))
    _bound(graph, limit)
    return graph


def _bound(graph: TimeSequence, limit: int) -> None:
    notes = []
    ordinary = [bar for bar in graph.segments if bar.kind == NORMAL]
    special = [bar for bar in graph.segments if bar.kind != NORMAL]
    if len(ordinary) > limit:
        ordinary = _bucket_bars(ordinary, limit)
        notes.append(f"segments in {len(ordinary)} time buckets")
    if len(special) > limit:
        special = [bar for kind in (RETRANSMISSION, LOST, DUPLICATE)
                   for bar in _bucket_bars([b for b in special if b.kind == kind], limit)]
        notes.append("retransmissions/losses in time buckets")
    graph.segments = sorted(ordinary + special, key=lambda bar: bar.time)
    for name in ("acks", "windows"):
        points = getattr(graph, name)
        if len(points) > limit:
            setattr(graph, name, _bucket_last(points, limit))
            notes.append(f"{name} sampled")
    if len(graph.sacks) > limit:
        step = len(graph.sacks) / limit
        graph.sacks = [graph.sacks[int(index * step)] for index in range(limit)]
        notes.append(f"1 SACK block in {step:.0f} drawn")
    graph.aggregated = "; ".join(notes)


def _buckets(count: int, times: list[float], limit: int) -> list[int]:
    """The bucket of each of `count` time-ordered points: `limit` equal slices of the time span."""
    low, high = times[0], times[-1]
    span = (high - low) or 1.0
    return [min(int((time - low) / span * limit), limit - 1) for time in times]


def _bucket_bars(bars: list[Bar], limit: int) -> list[Bar]:
    if not bars:
        return bars
    result: dict[int, Bar] = {}
    for bucket, bar in zip(_buckets(len(bars), [b.time for b in bars], limit), bars):
        held = result.get(bucket)
        result[bucket] = bar if held is None else Bar(held.time, min(held.start, bar.start), max(held.end, bar.end),
                                                      bar.kind)
    return list(result.values())


def _bucket_last(points: list[tuple[float, int]], limit: int) -> list[tuple[float, int]]:
    result: dict[int, tuple[float, int]] = {}
    for bucket, point in zip(_buckets(len(points), [p[0] for p in points], limit), points):
        result[bucket] = point
    return list(result.values())

"""Record one connection of a running stack, to draw its ladder (`ustack serve/connect --ladder`).

The runtime plugs a `LadderRecorder` in at two places:

    recorder = LadderRecorder()
    # each packet the stack hands to the link, and each packet the link hands to the stack:
    recorder.on_packet(now, packet_bytes, "out")                  # sent by this stack
    recorder.on_packet(now, packet_bytes, "in")                   # received from the peer
    # a packet the fault injector dropped (either direction), when the runtime learns of it:
    recorder.on_packet(now, packet_bytes, "out", dropped=True, note="dropped by FaultInjector")
    # for every StateChanged(old, new, cause) event of the connection:
    recorder.on_state(now, LOCAL, event.old, event.new, event.cause)
    ...
    print(render_text(recorder.ladder()))

The recorder keeps the first TCP connection it sees (with `port` given: the first with that port
on either side) and ignores other packets, so one recorder draws one connection. It does not
filter `on_state` calls: give it those of its connection only.

Unlike a capture, the stack knows its own states and its drops exactly: those are drawn as they
are (not marked inferred). The peer's states are still inferred from the segments, unless the
peer is a second ustack stack that reports them too (`on_state(..., REMOTE, ...)`).
LEFT is always this stack.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from ustack.wire.errors import WireError
from ustack.wire.ipv4 import address_text

from .infer import Observation, classify, infer_states
from ustack.tcp.state import State

from .model import LEFT, RIGHT, Arrow, Endpoint, Ladder, StateMark

LOCAL = LEFT
REMOTE = RIGHT
DIRECTIONS = {"out": LOCAL, "in": REMOTE}  # the side that sent the packet


class LadderRecorder:
    def __init__(self, port: int | None = None, local_label: str = "ustack", remote_label: str = "peer") -> None:
        self.port = port
        self.local_label = local_label
        self.remote_label = remote_label
        self.skipped: Counter = Counter()  # packets not drawn, by reason
        self._connection: tuple[tuple[int, int], tuple[int, int]] | None = None  # (local, remote)
        self._segments: list[tuple[int, Observation]] = []
        self._initial_marks: list[StateMark] = []  # drawn at the top
        self._exact_marks: list[tuple[int, StateMark]] = []  # (segments recorded before it, mark)
        self._reported_sides: set[int] = set()

    def on_packet(self, time: float, packet, direction: str, dropped: bool = False, note: str = "") -> None:
        """One packet this stack sent ("out") or received ("in"): IPv4 bytes or a parsed Packet.

        `dropped=True` when the fault injector dropped it: it is drawn as lost, with `note`.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'out' or 'in', not {direction!r}")
        if isinstance(packet, (bytes, bytearray, memoryview)):
            from ustack.wire import parse_packet

            try:
                packet = parse_packet(bytes(packet))
            except WireError as error:
                self.skipped[error.reason] += 1
                return
        ip, tcp = packet.ip, packet.tcp
        if tcp is None:
            self.skipped["not_tcp"] += 1
            return
        side = DIRECTIONS[direction]
        source, destination = (ip.src, tcp.src_port), (ip.dst, tcp.dst_port)
        local, remote = (source, destination) if side == LOCAL else (destination, source)
        if self._connection is None:
            if self.port is not None and self.port not in (tcp.src_port, tcp.dst_port):
                self.skipped["other_connection"] += 1
                return
            self._connection = (local, remote)
        if (local, remote) != self._connection:
            self.skipped["other_connection"] += 1
            return
        self._segments.append((side, Observation(time, ip, tcp, dropped, note)))

    def on_state(self, time: float, side: int, old: State, new: State, cause: str = "") -> None:
        """A state change reported by a stack (`side` LOCAL, or REMOTE for a second ustack).

        The `old` state of a side's first report is drawn at the top of the ladder, as the state
        the side was in before anything happened. A connection born from a listener reports
        CLOSED -> LISTEN when the SYN arrives; the diagram shows LISTEN at the top instead, since
        the listener was there first."""
        if side not in self._reported_sides:
            self._reported_sides.add(side)
            if (old, new) == (State.CLOSED, State.LISTEN):
                self._initial_marks.append(StateMark(time, side, State.LISTEN, False, cause))
                return
            self._initial_marks.append(StateMark(time, side, old, False, "initial state"))
        self._exact_marks.append((len(self._segments), StateMark(time, side, new, False, cause)))

    def ladder(self) -> Ladder:
        """The diagram so far: exact states for the sides that reported them, inferred for the others."""
        if self._connection is None:
            local = remote = Endpoint("0.0.0.0", 0)
        else:
            (local_address, local_port), (remote_address, remote_port) = self._connection
            local = Endpoint(address_text(local_address), local_port, self.local_label)
            remote = Endpoint(address_text(remote_address), remote_port, self.remote_label)
        arrows = classify(self._segments)
        items = [
            item
            for item in infer_states(arrows)
            if not (isinstance(item, StateMark) and item.side in self._reported_sides)
        ]
        # A side's initial state held before anything was seen, even when the side reported it
        # later (a listener's connection reports LISTEN when the SYN reaches the stack, which
        # may be well after a first SYN was lost on the way): it is drawn at the start.
        start = self._segments[0][1].time if self._segments else None
        initial = [mark if start is None or mark.time <= start else replace(mark, time=start)
                   for mark in self._initial_marks]
        exact = [(0, mark) for mark in initial] + self._exact_marks
        return Ladder(local, remote, _merge(items, exact), "live")


def _merge(items: list[Arrow | StateMark], exact: list[tuple[int, StateMark]]) -> list[Arrow | StateMark]:
    """Put each exact mark between the packets it was reported between (call order is the truth).

    Between two arrows there may be inferred marks of the other side too: those caused by the
    earlier packet carry its time, those caused by the next one carry the next time, so the exact
    mark goes after the first kind and before the second.
    """
    merged: list[Arrow | StateMark] = []
    waiting = list(exact)
    arrows_seen = 0
    for item in items:
        while waiting:
            position, mark = waiting[0]
            if position > arrows_seen or (isinstance(item, StateMark) and item.time <= mark.time):
                break
            merged.append(mark)
            waiting.pop(0)
        if isinstance(item, Arrow):
            arrows_seen += 1
        merged.append(item)
    merged.extend(mark for _, mark in waiting)
    return merged

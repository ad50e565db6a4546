"""Ladder diagrams of a running stack, drawn from what crossed the wire: one pipeline for
`ustack serve/connect --ladder` (LiveLadders: a ladder per connection, printed when it ends) and
for the labs (ustack.labs.watch.SceneWatch: the ladder of each scene).

Three sources feed a WireWatch, each giving what only it knows exactly:

    Tracer > FaultInjector > WireTap > [Gate] > [PcapWriter] > TunLink   (ustack.network's chain)
                  |              |
                  |              +-- every packet where it crosses the wire: what really left,
                  |                  and what really arrived (in the order it arrived)
                  +-- on_drop: the packets the FaultInjector dropped, drawn as lost: ours end
                      half way to the kernel, the kernel's half way to us
    AsyncStack observer: each packet the stack really takes in ("<"), so that the state changes
                  it causes are drawn right under it, and the StateChanged events themselves:
                  the exact states of our side (the kernel's are inferred from the segments)

    ladders = LiveLadders(output=sys.stdout, port=None, relative=False)
    link = FaultInjector(WireTap(PcapWriter(tun), ladders), on_drop=ladders.on_drop, ...)
    astack.add_observer(ladders.observe)
    ladders.schedule = loop.call_soon          # print a finished ladder once its round is over
    ...
    ladders.finish()                           # at the end: print those still open

Why the tap and the observer both: a batch read from the TUN device may hold several packets,
some of which the FaultInjector drops before the stack sees the others. The tap knows the order
they arrived in, the observer knows when the stack took each one; a dropped packet is drawn at
its place in the arrival order, right after the packet that came before it.

WireWatch puts the packets in that order and hands them, with the state changes, to its
subclass: `_record(now, packet, direction, lost_note)` and `_state_changed(now, connection, change)`,
and then to each of its `followers` (the web view, ustack/web/feed.py, follows the ladders' watch:
one pipeline, two consumers). A plain WireWatch draws nothing itself and only feeds followers.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..link.base import Middleware
from ..link.vnet import complete_checksum
from ..tcp.events import StateChanged
from ..tcp.state import State
from ..wire import parse_packet
from ..wire.errors import WireError
from ..wire.tcp import ACK, RST, SYN
from .recorder import LOCAL, LadderRecorder
from .render_text import render_text

# The reasons FaultInjector.on_drop gives, in the words written under a lost arrow.
DROP_NOTES = {
    "random": "dropped by --loss",
    "scripted": "dropped by a scripted rule",
    "rate_limited": "dropped by the rate limit",
}

# Packets that came off the wire and are not drawn yet: normally only those of the batch being
# taken in; the bound only matters if a packet changed between the tap and the stack.
MAX_ARRIVED = 1024

Key = tuple[int, int, int, int]  # (our address, our port, the peer's address, the peer's port)


@dataclass
class _Arrived:
    """A packet off the wire that the stack has not taken yet; `lost` says why it never will."""

    time: float
    packet: bytes
    lost: str = ""  # the note for its lost arrow, once the FaultInjector dropped it


class _Connection:
    """One recorder, and what is needed to tell when its connection ends or is replaced."""

    def __init__(self, recorder: LadderRecorder) -> None:
        self.recorder = recorder
        self.syn_sequence: dict[str, int] = {}  # direction -> the sequence number of its SYN
        self.core = None  # the stack's Connection, once it reported a state change
        self.ended = False


class WireWatch:
    """Puts what the taps, the FaultInjector and the stack report in the order it happened on the
    wire, and hands it on: `_record` for each packet (lost ones with their note), and
    `_state_changed` for each state change a connection reports. Subclasses decide what to draw."""

    def __init__(self) -> None:
        self.finished = False  # after finish(): nothing more is recorded (the shutdown's aborts)
        self._arrived: deque[_Arrived] = deque()
        self._notes: dict[int, str] = {}  # id(packet) -> the note for it, from a rule of dropping()
        # Second consumers of the same ordered stream (the web view, ustack/web/feed.py): each
        # gets follower.record(now, packet, direction, lost_note) and
        # follower.state_changed(now, core_connection, change), right after the subclass.
        self.followers: list = []

    # --- the three sources ---------------------------------------------------------------------

    def wire_out(self, now: float, packet: bytes) -> None:
        """A packet of ours reached the wire (the WireTap saw it go down)."""
        if self.finished:
            return
        self._draw_lost_arrivals()
        self._emit(now, packet, "out")

    def wire_in(self, now: float, packet: bytes) -> None:
        """A packet came off the wire; it is drawn when the stack takes it (or as lost)."""
        if self.finished:
            return
        self._arrived.append(_Arrived(now, packet))
        if len(self._arrived) > MAX_ARRIVED:  # (a middleware above the tap changed packets on the way)
            oldest = self._arrived.popleft()
            if oldest.lost:
                self._emit(oldest.time, oldest.packet, "in", oldest.lost)

    def on_drop(self, now: float, packet: bytes, direction: str, reason: str) -> None:
        """FaultInjector.on_drop: this packet never crossed (outbound) or never reached us (inbound)."""
        note = self._notes.pop(id(packet), None) or DROP_NOTES.get(reason, f"dropped ({reason})")
        if self.finished:
            return
        if direction == "outbound":
            self._draw_lost_arrivals()
            self._emit(now, packet, "out", note)
            return
        for arrived in self._arrived:
            if not arrived.lost and arrived.packet == packet:
                arrived.lost = note
                break
        else:  # not seen by the tap (no tap in the chain): draw it now, order unknown
            self._emit(now, packet, "in", note)
        self._draw_lost_arrivals()

    def observe(self, now: float, kind: str, item) -> None:
        """AsyncStack observer: "<" a packet the stack takes in, "event" what a connection reports."""
        if self.finished:
            return
        if kind == "<":
            self._taken_in(now, item)
        elif kind == "event":
            # Losses from earlier batches come first; those of the batch being taken in wait for
            # the next packet of it, so that a change stays right under the packet that caused it.
            self._draw_lost_arrivals(before=now)
            if isinstance(item.event, StateChanged):
                self._emit_state(now, item.connection, item.event)
        # ">": drawn by the tap where it reaches the wire (or by on_drop if it never does).

    def dropping(self, predicate: Callable[[bytes], bool], note: str) -> Callable[[bytes], bool]:
        """`predicate` for FaultInjector.drop_when, which also gives each packet it picks `note`
        as the words under its lost arrow (instead of "dropped by a scripted rule")."""

        def matches(packet: bytes) -> bool:
            if predicate(packet):
                self._notes[id(packet)] = note
                return True
            return False

        return matches

    def draw_lost(self) -> None:
        """Draw now the dropped packets still waiting for their place (those that came last)."""
        self._draw_lost_arrivals()

    def finish(self) -> None:
        """Stop recording: what arrived and was never taken in is drawn if it was lost, and
        anything later (the shutdown's aborts) is not drawn. Safe to call twice."""
        if self.finished:
            return
        self.finished = True
        while self._arrived:  # what arrived and was never taken in: lost, or cut off by the end
            arrived = self._arrived.popleft()
            if arrived.lost:
                self._emit(arrived.time, arrived.packet, "in", arrived.lost)

    # --- what the subclass draws ---------------------------------------------------------------

    def _record(self, now: float, packet: bytes, direction: str, lost_note: str = "") -> None:
        """A packet, in wire order (lost ones with their note). A plain WireWatch draws nothing."""

    def _state_changed(self, now: float, core_connection, change: StateChanged) -> None:
        """A state change one of our connections reported. A plain WireWatch draws nothing."""

    # --- handing on: to the subclass, then to each follower ------------------------------------

    def _emit(self, now: float, packet: bytes, direction: str, lost_note: str = "") -> None:
        # Drawn as the wire carried it: a TCP checksum the TUN link left partial completed first
        # (ustack/link/vnet.py), for the subclass and followers that parse a copy of the packet.
        packet = complete_checksum(packet)
        self._record(now, packet, direction, lost_note)
        for follower in self.followers:
            follower.record(now, packet, direction, lost_note)

    def _emit_state(self, now: float, core_connection, change: StateChanged) -> None:
        self._state_changed(now, core_connection, change)
        for follower in self.followers:
            follower.state_changed(now, core_connection, change)

    # --- ordering ------------------------------------------------------------------------------

    def _taken_in(self, now: float, packet: bytes) -> None:
        # What arrived before this packet and was dropped is drawn first, in arrival order.
        if any(not arrived.lost and arrived.packet == packet for arrived in self._arrived):
            while self._arrived:
                arrived = self._arrived.popleft()
                if not arrived.lost and arrived.packet == packet:
                    break
                if arrived.lost:
                    self._emit(arrived.time, arrived.packet, "in", arrived.lost)
                # (else: a packet that changed on the way, e.g. corrupted: the stack takes the copy)
        self._emit(now, packet, "in")

    def _draw_lost_arrivals(self, before: float | None = None) -> None:
        """Draw the dropped packets at the head of the arrival queue: nothing came before them.
        With `before`, only those that arrived before that time."""
        while self._arrived and self._arrived[0].lost and (before is None or self._arrived[0].time < before):
            arrived = self._arrived.popleft()
            self._emit(arrived.time, arrived.packet, "in", arrived.lost)


class LiveLadders(WireWatch):
    """`--ladder`: one LadderRecorder per connection (with `port` on either side, if given),
    printed on `output` once the connection has ended, and those still open at finish()."""

    def __init__(self, output=None, port: int | None = None, relative: bool = False,
                 remote_label: str = "kernel", colour: bool = False) -> None:
        super().__init__()
        self.output = output or sys.stdout
        self.port = port
        self.relative = relative
        self.remote_label = remote_label
        self.colour = colour
        # How to run print_ended() after the current round of the runtime (loop.call_soon). A
        # connection reports CLOSED before the round sends what closing it produced (the RST of
        # an abort), and that last packet belongs on its ladder.
        self.schedule: Callable[[Callable[[], None]], object] | None = None
        self.printed = 0
        self._connections: dict[Key, _Connection] = {}
        # Connections whose 4-tuple a new SYN took over: their last events are not the new one's.
        self._replaced: deque = deque(maxlen=16)

    # --- printing ------------------------------------------------------------------------------

    def print_ended(self) -> None:
        """Print (once) the ladders of the connections that have reached CLOSED."""
        self._draw_lost_arrivals()
        for key, connection in list(self._connections.items()):
            if connection.ended:
                self._print(key)

    def finish(self) -> None:
        """Print every ladder not printed yet: the ended ones, then those still open (saying so).

        Called before the stack aborts what is still open, so that a ladder ends in the state
        the connection really was in, not in the RST of our own shutdown. Safe to call twice."""
        if self.finished:
            return
        super().finish()
        self.print_ended()
        for key in list(self._connections):
            self._print(key, still_open=True)

    def _print(self, key: Key, still_open: bool = False) -> None:
        connection = self._connections.pop(key)
        ladder = connection.recorder.ladder()
        text = render_text(ladder, self.relative, colour=self.colour)
        if still_open:
            states = ladder.states_of(LOCAL)
            state = states[-1] if states else "no state reported"
            text += f"(ustack stopped while this connection was in {state})\n"
        self.printed += 1
        try:
            self.output.write("\n" + text)
            self.output.flush()
        except (BrokenPipeError, ValueError):  # nobody reads any more (`| head`), or stdout closed
            pass

    # --- recording -----------------------------------------------------------------------------

    def _record(self, now: float, packet: bytes, direction: str, lost_note: str = "") -> None:
        try:
            parsed = parse_packet(bytes(packet))
        except WireError:
            return  # not something a ladder can show (the stack counts its own rejects)
        ip, tcp = parsed.ip, parsed.tcp
        if tcp is None:
            return
        if direction == "out":
            key = (ip.src, tcp.src_port, ip.dst, tcp.dst_port)
        else:
            key = (ip.dst, tcp.dst_port, ip.src, tcp.src_port)
        connection = self._connections.get(key)
        opening = tcp.flags & SYN and not tcp.flags & ACK
        if connection is not None and opening:
            # A SYN with a new initial sequence number on the same four numbers opens a new
            # connection (RFC 9293 3.6.1, from TIME-WAIT): the old ladder is complete.
            first = connection.syn_sequence.setdefault(direction, tcp.seq)
            if first != tcp.seq:
                if connection.core is not None:
                    self._replaced.append(connection.core)
                self._print(key)
                connection = None
        if connection is None:
            if not opening:
                return  # a stray segment of no connection we draw (answered by RST, or late)
            connection = self._start(key)
            if connection is None:
                return
            connection.syn_sequence[direction] = tcp.seq
        connection.recorder.on_packet(now, parsed, direction, dropped=bool(lost_note), note=lost_note)
        if tcp.flags & RST and connection.core is None and not lost_note:
            # Refused before any connection existed (a SYN to a closed port, answered by RST):
            # no state will ever be reported, so the reset is the end.
            self._end(connection)

    def _state_changed(self, now: float, core_connection, change: StateChanged) -> None:
        key = tuple(getattr(core_connection, name, None)
                    for name in ("local_address", "local_port", "remote_address", "remote_port"))
        if None in key or any(core is core_connection for core in self._replaced):
            return
        connection = self._connections.get(key) or self._start(key)
        if connection is None:
            return
        connection.core = core_connection
        connection.recorder.on_state(now, LOCAL, change.old, change.new, change.cause)
        if change.new is State.CLOSED:
            self._end(connection)

    def _end(self, connection: _Connection) -> None:
        connection.ended = True
        if self.schedule is not None:
            self.schedule(self.print_ended)

    def _start(self, key: Key) -> _Connection | None:
        if self.port is not None and self.port not in (key[1], key[3]):
            return None
        recorder = LadderRecorder(local_label="ustack", remote_label=self.remote_label)
        connection = _Connection(recorder)
        self._connections[key] = connection
        return connection


class WireTap(Middleware):
    """A pass-through link that tells a WireWatch each packet crossing it, both ways.

    Placed just inside the FaultInjector, it sees the wire: what was not dropped, in order."""

    def __init__(self, inner, watch: WireWatch) -> None:
        super().__init__(inner)
        self.watch = watch

    def receive_batch(self, now: float, max_packets: int = 64) -> list[bytes]:
        packets = self.inner.receive_batch(now, max_packets)
        for packet in packets:
            self.watch.wire_in(now, packet)
        return packets

    def send(self, packet: bytes, now: float) -> None:
        self.watch.wire_out(now, packet)
        self.inner.send(packet, now)

    def send_batch(self, packets: Iterable[bytes], now: float) -> None:
        packets = list(packets)
        for packet in packets:
            self.watch.wire_out(now, packet)
        self.inner.send_batch(packets, now)

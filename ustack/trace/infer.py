"""Build a `Ladder` from the segments of one connection, inferring what the wire does not say.

A capture shows segments only. This module adds what a student wants to see beside them:

1. Which connection (`select_connection`): the first one that starts with a SYN, or the one with
   a given port on either side.
2. What each segment was (`classify`): new, a retransmission (its sequence range had been sent
   already), a duplicate (the very same packet again), or lost.
3. Each side's state (`infer_states`), by running a small model of RFC 9293 figure 5 on both
   sides, every mark flagged as inferred.

How loss is decided, conservatively. A running stack knows exactly which packets its fault
injector dropped and says so (`Observation.lost`). A capture taken at one point does not: a
segment dropped before the capture point is simply absent, and one dropped after it looks like
any other. So a captured segment is called "probably lost" only when all of these hold:
  - the same side later retransmits it;
  - before that retransmission, the other side sent a segment whose ACK is exactly the lost
    segment's first sequence number (it was still waiting for precisely this segment), at
    least one measured round trip after the segment was seen (so it had time to arrive), and
    whose SACK blocks (RFC 2018) do not cover it;
  - no segment of the other side acknowledged it before the retransmission.
The round trip is the smallest time, at the capture point, between a segment and the first ACK
that covers it (Karn's rule: segments that were retransmitted before being ACKed give no sample).
Without any such sample nothing is called lost. A lost SYN or a lost last ACK therefore shows
only as a retransmission; the backoff between the copies stays visible in the times.

How states are timed. A side's state changes when it sends (SYN, FIN, RST: marked just before
the arrow) or when it receives. A segment carrying no sequence space (a pure ACK, an RST) is
taken to arrive when it is seen. A segment that does (SYN, data, FIN) is taken to arrive at the
first evidence of it: just before the other side's first ACK (or SACK block) that covers it, or
when a later segment from the same sender arrives (links keep order). This ordering is what tells a
simultaneous close (each FIN sent before the other arrived: CLOSING on both sides) from an
ordinary one. What is still in flight when the capture ends is taken to have arrived, and the
state changes it causes say "assumed".
"""

from __future__ import annotations


from collections import deque
from dataclasses import replace
from typing import Iterable, NamedTuple, Union

from ustack.tcp.seq import seq_add, seq_ge, seq_le, seq_lt, seq_max
from ustack.tcp.state import State
from ustack.wire.ipv4 import Ipv4Header, address_text
from ustack.wire.ipv6 import Ipv6Header, endpoint_text
from ustack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment

from .model import (
    DUPLICATE,
    LEFT,
    LOST,
    NORMAL,
    RETRANSMISSION,
    RIGHT,
    Arrow,
    Endpoint,
    Ladder,
    StateMark,
    other_side,
)


class Observation(NamedTuple):
    """One TCP packet as seen at one point (a capture file, or a stack's link)."""

    time: float
    ip: Ipv4Header | Ipv6Header
    tcp: TcpSegment
    lost: bool = False  # known to have been dropped (by the live stack's fault injector)
    note: str = ""  # why, when known: 'dropped by FaultInjector'


class NoConnection(ValueError):
    """The packets hold no TCP connection (or none on the requested port)."""


Address = tuple[Union[int, bytes], int]  # (IPv4 address as int or IPv6 address as 16 bytes, port)


def _endpoints(observation: Observation) -> tuple[Address, Address]:
    return (observation.ip.src, observation.tcp.src_port), (observation.ip.dst, observation.tcp.dst_port)


def select_connection(observations: Iterable[Observation], port: int | None = None) -> tuple[Address, Address]:
    """(active side, passive side) of the connection to draw.

    The first connection opened by a SYN in the capture; failing that, the first connection seen
    (a capture that began mid-connection). With `port`, only connections with that port on
    either side are considered.
    """
    first_seen: tuple[Address, Address] | None = None
    for observation in observations:
        source, destination = _endpoints(observation)
        if port is not None and port not in (source[1], destination[1]):
            continue
        if observation.tcp.flags & SYN and not observation.tcp.flags & ACK:
            return source, destination
        if first_seen is None:
            first_seen = (source, destination)
            if observation.tcp.flags & SYN:  # a SYN,ACK whose SYN was missed: its receiver opened
                first_seen = (destination, source)
    if first_seen is None:
        where = f" with port {port}" if port is not None else ""
        raise NoConnection(f"no TCP connection{where}")
    return first_seen


def connection_segments(
    observations: Iterable[Observation], active: Address, passive: Address
) -> list[tuple[int, Observation]]:
    """The packets of one connection, each with the side that sent it (LEFT is the active side).

    A SYN with a new initial sequence number on the same 4-tuple (after a RST, or from TIME-WAIT,
    RFC 9293 3.6.1) opens another connection: `--conn` cannot tell the two apart, so the ladder
    stops there and the first one wins. A resent SYN keeps its number and belongs here.
    """
    result: list[tuple[int, Observation]] = []
    first_syn: dict[int, int] = {}  # side -> the sequence number of its SYN
    for observation in observations:
        source, destination = _endpoints(observation)
        if (source, destination) == (active, passive):
            side = LEFT
        elif (source, destination) == (passive, active):
            side = RIGHT
        else:
            continue
        tcp = observation.tcp
        if tcp.flags & SYN and not tcp.flags & ACK and first_syn.setdefault(side, tcp.seq) != tcp.seq:
            break
        result.append((side, observation))
    return result


def _same_packet(first: Observation, second: Observation) -> bool:
    # IP identification 0 carries no information (many stacks send 0 with DF set), so two
    # identical segments with ID 0 may be a resend: only a nonzero ID proves a network duplicate.
    same_id = first.ip.identification == second.ip.identification != 0
    return same_id and first.tcp == second.tcp


def classify(segments: list[tuple[int, Observation]]) -> list[Arrow]:
    """One Arrow per segment, with its kind and a note saying why (see the module docstring)."""
    arrows: list[Arrow] = []
    highest_sent: list[int | None] = [None, None]  # SND.MAX of each side: one past the last sent
    last_packet: list[Observation | None] = [None, None]
    sends_at: list[dict[int, tuple[int, float]]] = [{}, {}]  # seq -> (times sent, last time)
    last_ack: list[int | None] = [None, None]
    last_window: list[int | None] = [None, None]
    for side, observation in segments:
        tcp, peer = observation.tcp, other_side(side)
        arrow = Arrow(
            time=observation.time,
            from_side=side,
            flags=tcp.flags,
            seq=tcp.seq,
            ack=tcp.ack,
            window=tcp.window,
            length=len(tcp.payload),
            options=tcp.options,
        )
        kind, note = NORMAL, ""
        previous, sent_all = last_packet[side], highest_sent[side]
        keepalive = (
            sent_all is not None
            and not tcp.flags & (SYN | FIN)
            and arrow.length <= 1
            and tcp.seq == seq_add(sent_all, -1)
            and last_ack[peer] == sent_all
        )  # RFC 9293 3.8.4: one old byte (or none) below what the peer has acknowledged
        if previous is not None and _same_packet(previous, observation):
            kind, note = DUPLICATE, "duplicate: the same packet again"
        elif keepalive:
            # The same shape probes a zero window (Linux's window probe): the peer's window says which.
            note = "zero-window probe" if last_window[peer] == 0 else "keep-alive"
        elif arrow.sequence_length and sent_all is not None and seq_lt(tcp.seq, sent_all):
            times, last_time = sends_at[side].get(tcp.seq, (1, None))
            after = f", +{observation.time - last_time:.3f} s" if last_time is not None else ""
            kind, note = RETRANSMISSION, f"retransmission {times}{after}"
        if arrow.length and last_window[peer] == 0 and kind != DUPLICATE and not keepalive:
            note = f"{note}, zero-window probe" if note else "zero-window probe"
        if observation.lost:
            dropped = observation.note or "dropped"
            kind, note = LOST, f"{note}, {dropped}" if note else dropped
        if kind != DUPLICATE and arrow.sequence_length:
            times, _ = sends_at[side].get(tcp.seq, (0, None))
            sends_at[side][tcp.seq] = (times + 1, observation.time)
            end = arrow.sequence_end
            highest_sent[side] = end if highest_sent[side] is None else seq_max(highest_sent[side], end)
        elif highest_sent[side] is None:
            highest_sent[side] = tcp.seq
        if tcp.flags & ACK:
            last_ack[side] = tcp.ack
        last_window[side] = tcp.window
        last_packet[side] = observation
        arrows.append(replace(arrow, kind=kind, note=note))
    return arrows


def _round_trips(arrows: list[Arrow]) -> list[float | None]:
    """Per side: the smallest time from one of its segments to the first ACK covering it."""
    best: list[float | None] = [None, None]
    outstanding: list[list[Arrow]] = [[], []]
    for arrow in arrows:
        side, peer = arrow.from_side, other_side(arrow.from_side)
        if arrow.kind == RETRANSMISSION:  # Karn: what it covers can no longer be timed
            outstanding[side] = [o for o in outstanding[side] if not _covers(arrow, o.seq)]
        elif arrow.kind == NORMAL and arrow.sequence_length:
            outstanding[side].append(arrow)
        if arrow.has_ack and arrow.kind != LOST:
            still = []
            for sent in outstanding[peer]:
                if seq_le(sent.sequence_end, arrow.ack):
                    sample = arrow.time - sent.time
                    best[peer] = sample if best[peer] is None else min(best[peer], sample)
                else:
                    still.append(sent)
            outstanding[peer] = still
    return best


def _covers(arrow: Arrow, seq: int) -> bool:
    return seq_le(arrow.seq, seq) and seq_lt(seq, arrow.sequence_end)


def _inside(arrow: Arrow, block: tuple[int, int]) -> bool:
    """The whole of the arrow's sequence range lies in the SACK block [left, right)."""
    return seq_le(block[0], arrow.seq) and seq_le(arrow.sequence_end, block[1])


def _sacked(arrow: Arrow, seq: int) -> bool:
    return any(seq_le(left, seq) and seq_lt(seq, right) for left, right in arrow.options.sack_blocks)


def mark_probable_losses(arrows: list[Arrow]) -> list[Arrow]:
    """Turn captured segments into LOST where the capture proves it well enough (module docstring)."""
    round_trip = _round_trips(arrows)
    result = list(arrows)
    # Only a segment resent later from the same first byte can be called lost; knowing where
    # those resends are keeps the scan below short on long captures.
    resent_at: dict[tuple[int, int], list[int]] = {}
    for index, arrow in enumerate(arrows):
        if arrow.kind == RETRANSMISSION:
            resent_at.setdefault((arrow.from_side, arrow.seq), []).append(index)
    for index, sent in enumerate(arrows):
        side = sent.from_side
        if sent.kind not in (NORMAL, RETRANSMISSION) or not sent.sequence_length or round_trip[side] is None:
            continue
        resend = next((later for later in resent_at.get((side, sent.seq), ()) if later > index), None)
        if resend is None:
            continue
        still_waiting = False
        for later in arrows[index + 1 : resend + 1]:
            if later.from_side == side:
                if later.kind == RETRANSMISSION and _covers(later, sent.seq):
                    if still_waiting:
                        what = f"{sent.note}, probably lost" if sent.note else "probably lost"
                        result[index] = replace(sent, kind=LOST, note=what)
                    break
                continue
            if not later.has_ack or later.kind == LOST:
                continue
            if seq_le(sent.sequence_end, later.ack) or _sacked(later, sent.seq):
                break  # it arrived after all
            if later.ack == sent.seq and later.time - sent.time >= round_trip[side]:
                still_waiting = True
    return result


class _Side:
    """What the inference knows about one side: its state and the sequence numbers that matter."""

    def __init__(self, state: State | None) -> None:
        self.state = state  # None: unknown (never drawn)
        self.syn_end: int | None = None  # one past our SYN: an ACK this high acknowledges it
        self.fin_end: int | None = None  # one past our FIN
        self.passive = state is State.LISTEN
        self.received_fin = False


def _initial_states(arrows: list[Arrow]) -> tuple[list[State | None], str]:
    """Each side's state before the first segment, judged from how the connection began."""
    states: list[State | None] = [None, None]
    opening = arrows[0]
    if opening.flags & (SYN | ACK | RST) == SYN:
        opener, answerer = opening.from_side, other_side(opening.from_side)
        states[opener] = State.CLOSED
        reply = next((arrow for arrow in arrows if arrow.from_side == answerer), None)
        if reply is not None and reply.flags & SYN and reply.flags & ACK:
            states[answerer] = State.LISTEN  # it answered a SYN with SYN,ACK: it was listening
        elif reply is not None and (reply.flags & RST or reply.flags & (SYN | ACK) == SYN):
            states[answerer] = State.CLOSED  # it refused, or opened at the same time (RFC 9293 3.5)
        return states, "before the first segment"
    if opening.flags & SYN and opening.flags & ACK:
        states[opening.from_side] = State.SYN_RECEIVED
        states[other_side(opening.from_side)] = State.SYN_SENT
        return states, "assumed: the capture began after the SYN"
    return [State.ESTABLISHED, State.ESTABLISHED], "assumed: the capture began mid-connection"


def infer_states(arrows: list[Arrow]) -> list[Arrow | StateMark]:
    """The arrows with inferred StateMarks of both sides inserted where the states change."""
    items: list[Arrow | StateMark] = []
    if not arrows:
        return items
    initial, why = _initial_states(arrows)
    sides = [_Side(initial[LEFT]), _Side(initial[RIGHT])]
    start = arrows[0].time
    for side in (LEFT, RIGHT):
        if sides[side].state is not None:
            items.append(StateMark(start, side, sides[side].state, True, why))
    pending: list[deque[Arrow]] = [deque(), deque()]  # sent, not yet arrived (see module docstring)

    def enter(side: int, state: State, time: float, cause: str) -> None:
        if sides[side].state != state:
            sides[side].state = state
            items.append(StateMark(time, side, state, True, cause))

    def deliver_up_to(sender: int, count: int, time: float, assumed: bool = False) -> None:
        for _ in range(count):
            _receive(pending[sender].popleft(), other_side(sender), time, assumed)

    def _receive(segment: Arrow, receiver: int, time: float, assumed: bool = False, in_order: bool = True) -> None:
        """What `segment` does to `receiver`, in the order of RFC 9293 3.10.7.4: RST, SYN, ACK, FIN.

        A segment that arrived out of order (`in_order=False`) has only its ACK processed."""

        def arrive(state: State, cause: str) -> None:
            enter(receiver, state, time, cause + (" (assumed: the capture ends first)" if assumed else ""))

        side = sides[receiver]
        flags, state = segment.flags, side.state
        acks_our_syn = bool(flags & ACK) and side.syn_end is not None and seq_ge(segment.ack, side.syn_end)
        if flags & RST and in_order:
            if state not in (None, State.CLOSED, State.LISTEN):
                back = State.LISTEN if state is State.SYN_RECEIVED and side.passive else State.CLOSED
                arrive(back, "received RST")  # RFC 9293 3.10.7.3/3.10.7.4
            return
        if flags & SYN and in_order:
            if state is State.LISTEN and not flags & ACK:
                arrive(State.SYN_RECEIVED, "received SYN")
            elif state is State.SYN_SENT and acks_our_syn:
                arrive(State.ESTABLISHED, "received SYN,ACK")
            elif state is State.SYN_SENT and not flags & ACK:
                arrive(State.SYN_RECEIVED, "received SYN (simultaneous open)")
        if flags & ACK:
            if state is State.SYN_RECEIVED and acks_our_syn:
                arrive(State.ESTABLISHED, "ACK of our SYN")
            if side.fin_end is not None and seq_ge(segment.ack, side.fin_end):
                if side.state is State.FIN_WAIT_1 and flags & FIN and in_order and not side.received_fin:
                    # RFC 9293 figure 5, note 2: FIN and the ACK of ours in one segment.
                    side.received_fin = True
                    arrive(State.TIME_WAIT, "received FIN and the ACK of our FIN")
                    return
                after_fin_acked = {
                    State.FIN_WAIT_1: State.FIN_WAIT_2,
                    State.CLOSING: State.TIME_WAIT,
                    State.LAST_ACK: State.CLOSED,
                }
                if side.state in after_fin_acked:
                    arrive(after_fin_acked[side.state], "ACK of our FIN")
        if flags & FIN and in_order and not side.received_fin:  # FIN, handled last
            after_fin = {
                State.SYN_RECEIVED: State.CLOSE_WAIT,
                State.ESTABLISHED: State.CLOSE_WAIT,
                State.FIN_WAIT_1: State.CLOSING,
                State.FIN_WAIT_2: State.TIME_WAIT,
            }
            if side.state in after_fin:
                side.received_fin = True
                arrive(after_fin[side.state], "received FIN")

    for arrow in arrows:
        side, peer = arrow.from_side, other_side(arrow.from_side)
        if arrow.kind == DUPLICATE:
            items.append(arrow)
            continue
        # Evidence: this ACK covers segments of the peer, so they had arrived before it was sent.
        if arrow.has_ack:
            covered = 0
            for position, waiting in enumerate(pending[peer]):
                if seq_le(waiting.sequence_end, arrow.ack):
                    covered = position + 1
            deliver_up_to(peer, covered, arrow.time)
            # SACK blocks (RFC 2018) prove that data beyond a hole arrived too: its ACK field
            # counts already (a handshake can complete on it), the rest waits for the hole.
            for waiting in list(pending[peer]):
                plain_data = not waiting.flags & (SYN | FIN | RST)
                if plain_data and any(_inside(waiting, block) for block in arrow.options.sack_blocks):
                    pending[peer].remove(waiting)
                    _receive(waiting, side, arrow.time, in_order=False)
        # What sending this segment does to its sender (RFC 9293 figure 5).
        me = sides[side]
        if arrow.flags & RST:
            if me.state not in (None, State.CLOSED):
                enter(side, State.CLOSED, arrow.time, "sent RST")
        else:
            if arrow.flags & SYN:
                me.syn_end = seq_add(arrow.seq, 1)
                if not arrow.flags & ACK and me.state in (None, State.CLOSED):
                    enter(side, State.SYN_SENT, arrow.time, "sent SYN")
            if arrow.flags & FIN:
                if me.fin_end is None:
                    me.fin_end = arrow.sequence_end
                if me.state in (State.ESTABLISHED, State.SYN_RECEIVED):
                    enter(side, State.FIN_WAIT_1, arrow.time, "sent FIN")
                elif me.state is State.CLOSE_WAIT:
                    enter(side, State.LAST_ACK, arrow.time, "sent FIN")
        items.append(arrow)
        # Arrival at the peer.
        if arrow.kind == LOST:
            continue
        if arrow.sequence_length:
            pending[side].append(arrow)
        else:
            deliver_up_to(side, len(pending[side]), arrow.time)  # links keep order
            _receive(arrow, peer, arrow.time)
    # What is still in flight when the capture ends most likely arrived (nothing says otherwise).
    for side in (LEFT, RIGHT):
        deliver_up_to(side, len(pending[side]), arrows[-1].time, assumed=True)
    return items


class ConnectionSummary(NamedTuple):
    """One connection of a capture, as `ustack ladder --list` shows it."""

    number: int  # 1, 2, ... in the order the connections first appear
    active: Address  # the side that sent the SYN (or, without one, the first sender)
    passive: Address
    packets: int
    start: float
    end: float
    first_position: int  # index of its first packet among the observations

    @property
    def duration(self) -> float:
        return self.end - self.start

    def has_port(self, port: int) -> bool:
        return port in (self.active[1], self.passive[1])

    def has_endpoints(self, one: Address, other: Address) -> bool:
        return {one, other} == {self.active, self.passive}

    @property
    def name(self) -> str:
        return (f"{endpoint_text(address_text(self.active[0]), self.active[1])} > "
                f"{endpoint_text(address_text(self.passive[0]), self.passive[1])}")


def list_connections(observations: list[Observation]) -> list[ConnectionSummary]:
    """Every TCP connection in the packets, in order of first appearance. The same 4-tuple opened
    again by a SYN with another initial sequence number is another connection (as in
    connection_segments, RFC 9293 3.6.1)."""
    found: list[dict] = []
    current: dict[frozenset, dict] = {}  # unordered 4-tuple -> its latest connection
    for position, observation in enumerate(observations):
        source, destination = _endpoints(observation)
        key = frozenset((source, destination))
        tcp = observation.tcp
        pure_syn = bool(tcp.flags & SYN and not tcp.flags & ACK)
        entry = current.get(key)
        if entry is not None and pure_syn and entry["syns"].setdefault(source, tcp.seq) != tcp.seq:
            entry = None  # a new incarnation of the same 4-tuple
        if entry is None:
            active, passive = (destination, source) if tcp.flags & SYN and tcp.flags & ACK else (source, destination)
            entry = current[key] = {"active": active, "passive": passive, "packets": 0, "start": observation.time,
                                    "end": observation.time, "position": position, "syns": {}}
            if pure_syn:
                entry["syns"][source] = tcp.seq
            found.append(entry)
        entry["packets"] += 1
        entry["end"] = observation.time
    return [ConnectionSummary(number, entry["active"], entry["passive"], entry["packets"], entry["start"],
                              entry["end"], entry["position"]) for number, entry in enumerate(found, 1)]


def build_ladder(
    observations: list[Observation], port: int | None = None, source: str = "", infer_losses: bool = True,
    connection: ConnectionSummary | None = None, states: bool = True,
) -> Ladder:
    """The whole pipeline: pick the connection (`connection` from list_connections, or the first
    with `port`), classify its segments, infer the states (unless `states` is False: a
    time-sequence graph of a long capture needs only the segments)."""
    if connection is not None:
        active, passive = connection.active, connection.passive
        observations = observations[connection.first_position:]
    else:
        active, passive = select_connection(observations, port)
    segments = connection_segments(observations, active, passive)
    arrows = classify(segments)
    if infer_losses:
        arrows = mark_probable_losses(arrows)
    opened = any(a.flags & (SYN | ACK) == SYN for a in arrows if a.from_side == LEFT)
    left = Endpoint(address_text(active[0]), active[1], "client" if opened else "")
    right = Endpoint(address_text(passive[0]), passive[1], "server" if opened else "")
    return Ladder(left, right, infer_states(arrows) if states else list(arrows), source)

"""Hostile packets into a Stack with live connections: the world and the packet maker shared by
tests/stack/test_stack_fuzz.py (hypothesis) and scripts/fuzz_stack.py (a million packets).

The world, on virtual time: our Stack (10.77.0.2) and a peer Stack (10.77.0.1) joined by a
perfect link, with connections in ESTABLISHED (passive and active), CLOSE-WAIT and TIME-WAIT, a
listener, and the packets the peer really sent recorded as templates.

The attacker knows everything an on-path observer would: the 4-tuples, the sequence and
acknowledgement numbers and the timestamps of the live connections. It sends TCP segments with
any flags, numbers near or far from the right ones and any options; real packets replayed,
mutated (bytes flipped, cut, extended; with their checksums repaired half the time so that
the mutation reaches past the checksum check); ICMP errors quoting live connections; fragments,
other protocols and plain noise. After each packet the world runs: our answers go to the peer,
its answers come back, and now and then the clock jumps to the next timer.

What must hold: no exception ever; every packet either taken in by IP (packets_in) or dropped by
the stack for a named reason (a snake_case name), and never under two of its reasons (reassembly
aside: a fragment that spoils a datagram drops the fragments held with it); and once everybody closes and every
timer has run, both stacks' tables are empty.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from ustack.stack import Stack
from ustack.tcp import TcpConfig
from ustack.tcp.errors import TcpError
from ustack.tcp.isn import IsnGenerator
from ustack.tcp.state import State
from ustack.wire import (
    IcmpMessage,
    Ipv4Header,
    TcpOptions,
    TcpSegment,
    build_icmp_packet,
    build_ipv4_packet,
    build_tcp_packet,
    checksum_add,
    checksum_finish,
    internet_checksum,
    pseudo_header_sum,
)
from ustack.wire.ipv4 import address_value
from ustack.wire.tcp import ACK, FIN, PSH, RST, SYN, URG

OURS = address_value("10.77.0.2")
PEER = address_value("10.77.0.1")
ELSEWHERE = (address_value("10.77.0.9"), address_value("192.0.2.1"), address_value("127.0.0.1"), address_value("224.0.0.1"))
SPOOFED = (address_value("10.77.0.9"), address_value("192.0.2.1"))  # nobody answers for them
SERVER_PORT, PEER_SERVER_PORT = 80, 8000
CONFIG = TcpConfig(msl=1.0, receive_buffer_size=16384, send_buffer_size=16384)
DROP_NAME = re.compile(r"[a-z0-9_]+")
COMMON_FLAGS = (ACK, ACK | PSH, SYN, SYN | ACK, RST, RST | ACK, FIN | ACK, FIN, SYN | FIN, URG | ACK, 0)
STEP_LIMIT = 100_000  # a hang guard for the final teardown, never reached
STORM_ROUNDS = 200  # exchanges at one instant; a handshake plus data takes a handful


class FuzzWorld:
    def __init__(self, stack_first: bool = False) -> None:
        """stack_first: the stack's connection limit is reached before the listener's."""
        self.now = 0.0
        # Limits low enough that a SYN flood reaches them: 6 sockets are open after the setup,
        # 4 of them connections born of the listener.
        stack_limit, listener_limit = (9, None) if stack_first else (12, 8)
        self.ours = Stack(
            OURS, CONFIG, isn_generator=IsnGenerator(secret=b"fuzz-ours-secret"), port_seed=1, max_connections=stack_limit
        )
        self.peer = Stack(PEER, CONFIG, isn_generator=IsnGenerator(secret=b"fuzz-peer-secret"), port_seed=2)
        self.templates: list[bytes] = []  # what the peer sent us, to replay and mutate
        self.listeners = [self.ours.listen(SERVER_PORT, max_connections=listener_limit), self.peer.listen(PEER_SERVER_PORT)]
        # Four connections from the peer, one to it; data both ways.
        for _ in range(4):
            self.peer.connect(OURS, SERVER_PORT, self.now)
        ours_active = self.ours.connect(PEER, PEER_SERVER_PORT, self.now)
        self.exchange()
        self.accept_all()
        for connection in list(self.ours.connections.values()) + list(self.peer.connections.values()):
            connection.send(b"hello from " + str(connection.local_port).encode(), self.now)
            self.touch(connection)
        self.exchange()
        for connection in list(self.ours.connections.values()) + list(self.peer.connections.values()):
            connection.recv(1 << 20, self.now)  # read, so that a close is a FIN, not a RST
        passive = sorted((c for c in self.ours.connections.values() if c is not ours_active), key=lambda c: c.remote_port)
        assert len(passive) == 4 and all(c.state is State.ESTABLISHED for c in passive + [ours_active])
        # TIME-WAIT: we close first and the peer answers with its FIN.
        self.close(passive[0])
        self.exchange()
        self.close(self.peer_side(passive[0]))
        # CLOSE-WAIT: the peer closes first.
        self.close(self.peer_side(passive[1]))
        self.exchange()
        states = Counter(c.state for c in self.ours.connections.values())
        assert states[State.TIME_WAIT] == 1 and states[State.CLOSE_WAIT] == 1 and states[State.ESTABLISHED] == 3, states
        self.drops_before = sum(self.ours.drops.values())
        self.packets_in_before = self.ours.counters["packets_in"]

    # --- running the world ---
    def touch(self, connection) -> None:
        (self.ours if connection.local_address == OURS else self.peer).poke(connection)

    def close(self, connection) -> None:
        try:
            connection.close(self.now)
        except TcpError:
            pass  # already closing, or closed: nothing more to ask of it
        self.touch(connection)

    def accept_all(self) -> None:
        """The servers on both sides accept what completed its handshake, as applications do
        (a connection left in the accept queue is aborted when its listener closes)."""
        for listener in self.listeners:
            while listener.accept() is not None:
                pass

    def peer_side(self, connection):
        return self.peer.connections[(PEER, connection.remote_port, OURS, connection.local_port)]

    def exchange(self) -> None:
        """Deliver packets both ways until both stacks are quiet; the peer's are recorded.

        Two stacks that keep answering each other at one instant are an ACK storm (each side
        answering the other's unacceptable segment with an ACK the other finds unacceptable,
        RFC 9293 3.10.7.4): a failure, found by this fuzzer and fixed by rate-limiting those ACKs."""
        for _ in range(STORM_ROUNDS):
            ours_out = self.ours.transmit(self.now)
            peer_out = self.peer.transmit(self.now)
            if not ours_out and not peer_out:
                return
            for packet in ours_out:
                if packet[16:20] == PEER.to_bytes(4, "big"):
                    self.peer.receive(packet, self.now)
            for packet in peer_out:
                self.templates.append(packet)
                self.ours.receive(packet, self.now)
        raise AssertionError(f"ACK storm: the stacks still answer each other after {STORM_ROUNDS} rounds")

    def run_timers(self) -> bool:
        """Jump to the earliest deadline of either stack and fire it; False if none is armed."""
        deadlines = [d for d in (self.ours.next_deadline(), self.peer.next_deadline()) if d is not None]
        if not deadlines:
            return False
        self.now = max(self.now, min(deadlines))
        self.ours.on_timer(self.now)
        self.peer.on_timer(self.now)
        self.exchange()
        return True

    def inject(self, packet: bytes) -> None:
        """One hostile packet into our stack, then the world runs. Checks the accounting."""
        before, packets_in = Counter(self.ours.drops), self.ours.counters["packets_in"]
        self.ours.receive(packet, self.now)
        new_drops = Counter(self.ours.drops) - before
        taken_in = self.ours.counters["packets_in"] - packets_in
        # Taken in by IP (and maybe then dropped by TCP, e.g. tcp_no_connection), or dropped by
        # IP: never uncounted, never counted under two of the stack's reasons. Reassembly alone
        # may count more: the fragments it held are dropped with the datagram this one spoils.
        dropped = sum(count for name, count in new_drops.items() if not name.startswith("reassembly_"))
        assert taken_in in (0, 1) and dropped <= 1 and taken_in + sum(new_drops.values()) >= 1, (taken_in, new_drops)
        self.exchange()
        ours, listener = self.ours, self.listeners[0]
        assert ours.max_connections is None or len(ours.connections) + len(ours.listeners) <= ours.max_connections
        assert listener.max_connections is None or listener.open_connections <= listener.max_connections

    def finish(self) -> None:
        """Everybody closes; every timer runs to the end; both tables must then be empty."""
        self.accept_all()
        for stack in (self.ours, self.peer):
            for listener in list(stack.listeners.values()):
                stack.close_listener(listener, self.now)  # aborts what it had not handed out
            for connection in list(stack.connections.values()):
                self.close(connection)
        self.exchange()
        for _ in range(STEP_LIMIT):
            if not self.run_timers():
                break
        for stack in (self.ours, self.peer):
            assert not stack.connections, f"left in the table: {stack.state_counts()}"
            assert stack.next_deadline() is None
        assert self.listeners[0].open_connections == 0  # every connection it made was counted out

    def drop_names(self) -> Counter:
        """Every drop counter of our stack, its listener and its connections, by name."""
        names = Counter(self.ours.drops)
        for listener in self.ours.listeners.values():
            names.update(listener.drops)
        for connection in self.ours.connections.values():
            names.update(connection.drops)
        return names

    # --- the attacker ---
    def live_targets(self) -> list[tuple]:
        """(our port, peer port, connection or None) for each connection, and the listener."""
        targets = [(key[1], key[3], connection) for key, connection in self.ours.connections.items()]
        targets.append((SERVER_PORT, 0, None))
        return targets


def hostile_packet(rng, world: FuzzWorld) -> bytes:
    """One packet, of a kind picked at random (see the module docstring)."""
    kind = rng.random()
    if kind < 0.05:
        # A spoofed SYN flood: half-open connections pile up until a limit drops them.
        syn = TcpSegment(rng.randrange(1024, 65536), SERVER_PORT, rng.getrandbits(32), 0, SYN, 1024)
        return build_tcp_packet(rng.choice(SPOOFED), OURS, syn)
    if kind < 0.5:
        return _crafted_segment(rng, world)
    if kind < 0.7:
        return _mutated(rng, rng.choice(world.templates))
    if kind < 0.78:
        return rng.choice(world.templates)  # an old duplicate
    if kind < 0.88:
        return _icmp(rng, world)
    if kind < 0.95:
        return _odd_ip(rng, world)
    return _junk(rng, rng.randrange(0, 80))


def _junk(rng, length: int) -> bytes:
    """`length` random bytes made from one 32-bit draw: what they are hardly matters, and
    hypothesis then spends its randomness on the choices that do."""
    return random.Random(rng.getrandbits(32)).randbytes(length)


def _near(rng, value: int, spread: int) -> int:
    return (value + rng.randrange(-spread, spread + 1)) & 0xFFFFFFFF


def _crafted_segment(rng, world: FuzzWorld) -> bytes:
    our_port, peer_port, connection = rng.choice(world.live_targets())
    if connection is None:
        peer_port = rng.randrange(1024, 65536)  # to the listener: a new 4-tuple each time
    if rng.random() < 0.1:
        our_port, peer_port = rng.randrange(65536), rng.randrange(65536)
    flags = rng.choice(COMMON_FLAGS) if rng.random() < 0.7 else rng.randrange(256)
    if connection is not None and rng.random() < 0.8:
        seq = rng.choice((connection.rcv_nxt, _near(rng, connection.rcv_nxt, 70000), rng.getrandbits(32)))
        ack = rng.choice((connection.snd_una, connection.snd_nxt, _near(rng, connection.snd_nxt, 70000), rng.getrandbits(32)))
        # A TIME-WAIT record keeps TS.Recent itself (None without timestamps: ustack/tcp/time_wait.py).
        ts_recent = connection.rcv.ts_recent if hasattr(connection, "rcv") else connection.ts_recent or 0
    else:
        seq, ack, ts_recent = rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(32)
    options = TcpOptions()
    if rng.random() < 0.5:
        options = TcpOptions(
            mss=rng.choice((None, rng.randrange(65536), 536, 0)),
            window_scale=rng.choice((None, rng.randrange(256), 14, 15)),
            sack_permitted=rng.random() < 0.3,
            sack_blocks=tuple(
                (_near(rng, seq, 40000), _near(rng, seq, 40000)) for _ in range(rng.choice((0, 0, 1, 2, 3, 4)))
            ),
            timestamps=rng.choice((None, (_near(rng, ts_recent, 1000), rng.getrandbits(32)), (rng.getrandbits(32), 0))),
        )
    payload = _junk(rng, rng.choice((0, 0, 1, 7, rng.randrange(1, 1500))))
    segment = TcpSegment(peer_port, our_port, seq, ack, flags, rng.randrange(65536), rng.randrange(65536), options, payload)
    source = PEER if rng.random() < 0.9 else rng.choice(ELSEWHERE)
    return build_tcp_packet(source, OURS, segment, ttl=rng.randrange(256))


def _mutated(rng, packet: bytes) -> bytes:
    data = bytearray(packet)
    for _ in range(rng.randrange(1, 5)):
        action = rng.random()
        if action < 0.6 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif action < 0.8 and data:
            del data[rng.randrange(len(data)) :]
        else:
            data += _junk(rng, rng.randrange(1, 40))
    if rng.random() < 0.5:
        _repair_checksums(data)
    return bytes(data)


def _repair_checksums(data: bytearray) -> None:
    """Recompute the IPv4 header checksum, and the TCP one when the header says TCP and its
    lengths make sense, so that a mutation gets past the checksum checks."""
    if len(data) < 20 or data[0] >> 4 != 4:
        return
    header_length = (data[0] & 0x0F) * 4
    if header_length < 20 or header_length > len(data):
        return
    data[10:12] = b"\0\0"
    data[10:12] = internet_checksum(bytes(data[:header_length])).to_bytes(2, "big")
    total = int.from_bytes(data[2:4], "big")
    if data[9] != 6 or total > len(data) or total < header_length + 20:
        return
    segment = bytearray(data[header_length:total])
    segment[16:18] = b"\0\0"
    partial = pseudo_header_sum(int.from_bytes(data[12:16], "big"), int.from_bytes(data[16:20], "big"), 6, len(segment))
    data[header_length + 16 : header_length + 18] = checksum_finish(checksum_add(partial, bytes(segment))).to_bytes(2, "big")


def _icmp(rng, world: FuzzWorld) -> bytes:
    """An ICMP error quoting one of our connections (our side as the quoted source), or an echo."""
    if rng.random() < 0.2:
        payload = _junk(rng, rng.randrange(0, 200))
        message = IcmpMessage(8, rng.choice((0, 1)), rng.randrange(65536), rng.randrange(65536), payload=payload)
        return build_icmp_packet(PEER, OURS, message)
    our_port, peer_port, connection = rng.choice(world.live_targets())
    seq = rng.choice((connection.snd_una, connection.snd_nxt, rng.getrandbits(32))) if connection else rng.getrandbits(32)
    quoted_segment = TcpSegment(our_port, peer_port, seq, 0, ACK, 1000)
    quoted = build_tcp_packet(OURS, rng.choice((PEER, *ELSEWHERE)), quoted_segment)[: rng.choice((28, 28, 40, 20, 24))]
    icmp_type = rng.choice((3, 3, 3, 11, 12, 4, 5, rng.randrange(256)))
    message = IcmpMessage(icmp_type, rng.randrange(16), next_hop_mtu=rng.choice((0, 68, 576, 1500, rng.randrange(65536))), payload=quoted)
    try:
        return build_icmp_packet(PEER, OURS, message)
    except ValueError:  # WireError: a field the builder refuses; send the quoted bytes as noise
        return quoted


def _odd_ip(rng, world: FuzzWorld) -> bytes:
    """Fragments, other protocols and odd IPv4 headers around a real TCP segment."""
    segment_bytes = rng.choice(world.templates)[20:]  # the peer's packets have no IP options
    header = Ipv4Header(
        src=rng.choice((PEER, PEER, *ELSEWHERE)),
        dst=rng.choice((OURS, OURS, OURS, address_value("10.77.0.255"))),
        protocol=rng.choice((6, 6, 17, 1, 47, rng.randrange(256))),
        ttl=rng.randrange(256),
        identification=rng.randrange(65536),
        dont_fragment=rng.random() < 0.5,
        more_fragments=rng.random() < 0.4,
        fragment_offset=rng.choice((0, 0, 8, 1480, 8 * rng.randrange(8192))),
    )
    try:
        return build_ipv4_packet(header, segment_bytes[: rng.randrange(len(segment_bytes) + 1)])
    except ValueError:
        return segment_bytes


def check_drop_names(names: Counter) -> None:
    bad = [name for name in names if not DROP_NAME.fullmatch(name)]
    assert not bad, f"drop reasons must be named in snake_case: {bad}"

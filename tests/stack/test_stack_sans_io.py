"""stack.py on virtual time, no I/O: demultiplexing, RST for the unmatched, ICMP echo, drop
counters, ephemeral ports, and a host that forgets a connection once TIME-WAIT is over."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ustack.stack import EPHEMERAL_PORTS, Stack, StackError
from ustack.tcp import State, TcpConfig
from ustack.tcp.isn import IsnGenerator
from ustack.wire import IcmpMessage, TcpSegment, build_icmp_packet, build_tcp_packet, parse_packet
from ustack.wire.icmp import ECHO_REPLY, ECHO_REQUEST
from ustack.wire.ipv4 import address_value
from ustack.wire.tcp import ACK, PSH, RST, SYN

OURS = address_value("10.77.0.2")
PEER = address_value("10.77.0.1")


def make_stack(address=OURS, **config):
    return Stack(address, TcpConfig(**config), isn_generator=IsnGenerator(fixed_isn=0xFFFFFF00), port_seed=1)


def only_tcp(packets):
    parsed = [parse_packet(packet) for packet in packets]
    assert all(p.tcp is not None for p in parsed), parsed
    return [p.tcp for p in parsed]


def test_syn_to_a_closed_port_gets_rst_ack_with_seq_zero():
    # RFC 9293 3.10.7.1: without ACK, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    stack = make_stack()
    syn = TcpSegment(40000, 81, seq=1000, ack=0, flags=SYN, window=64240)
    stack.receive(build_tcp_packet(PEER, OURS, syn), now=0.0)
    [reply] = only_tcp(stack.transmit(0.0))
    assert (reply.src_port, reply.dst_port) == (81, 40000)
    assert reply.flags == RST | ACK and reply.seq == 0 and reply.ack == 1001
    assert stack.drops["tcp_no_connection"] == 1
    assert stack.transmit(0.0) == []


def test_ack_to_a_closed_port_gets_rst_at_the_acked_number():
    # RFC 9293 3.10.7.1: with ACK, <SEQ=SEG.ACK><CTL=RST>.
    stack = make_stack()
    data = TcpSegment(40000, 81, seq=5, ack=777, flags=ACK | PSH, window=100, payload=b"hello")
    stack.receive(build_tcp_packet(PEER, OURS, data), now=0.0)
    [reply] = only_tcp(stack.transmit(0.0))
    assert reply.flags == RST and reply.seq == 777


def test_an_rst_is_never_answered_with_an_rst():
    stack = make_stack()
    stack.receive(build_tcp_packet(PEER, OURS, TcpSegment(40000, 81, 5, 0, RST, 0)), now=0.0)
    assert stack.transmit(0.0) == []
    assert stack.drops["tcp_no_connection"] == 1


def test_ping_is_answered_with_the_same_identifier_sequence_and_data():
    stack = make_stack()
    request = IcmpMessage(ECHO_REQUEST, 0, identifier=0x1234, sequence=7, payload=b"abcdefgh" * 7)
    stack.receive(build_icmp_packet(PEER, OURS, request), now=0.0)
    [packet] = stack.transmit(0.0)
    reply = parse_packet(packet)
    assert (reply.ip.src, reply.ip.dst) == (OURS, PEER)
    assert reply.icmp.type == ECHO_REPLY
    assert (reply.icmp.identifier, reply.icmp.sequence, reply.icmp.payload) == (0x1234, 7, request.payload)


def test_bad_packets_are_dropped_by_named_reason():
    stack = make_stack()
    good = bytearray(build_tcp_packet(PEER, OURS, TcpSegment(40000, 81, 5, 0, SYN, 100)))
    good[-1] ^= 0xFF  # breaks the TCP checksum (the SYN has no payload: the last byte is in the header)
    stack.receive(bytes(good), now=0.0)
    stack.receive(b"\x45\x00", now=0.0)
    elsewhere = build_tcp_packet(PEER, address_value("10.77.0.9"), TcpSegment(40000, 81, 5, 0, SYN, 100))
    stack.receive(elsewhere, now=0.0)
    assert stack.transmit(0.0) == []
    assert stack.drops["tcp_bad_checksum"] == 1
    assert stack.drops["ipv4_truncated"] == 1
    assert stack.drops["ipv4_not_our_address"] == 1


@pytest.mark.parametrize("source", ["224.0.0.1", "239.1.2.3", "255.255.255.255", "240.0.0.1", "0.0.0.0", "127.0.0.1", "10.77.0.2"])
def test_packets_from_a_source_no_host_can_have_are_dropped_unanswered(source):
    # RFC 1122 3.2.1.3: a multicast, broadcast, reserved, "this network" or loopback source is
    # invalid, and such a datagram is discarded silently (4.2.3.10: no SYN-ACK or RST goes to a
    # broadcast or multicast address; RFC 1122 3.2.2: no ICMP reply either). Our own address
    # (10.77.0.2) cannot come from the link either (a "LAND" SYN would have us answer ourselves).
    stack = make_stack()
    stack.listen(80)
    bad = address_value(source)
    stack.receive(build_tcp_packet(bad, OURS, TcpSegment(40000, 80, 5, 0, SYN, 100)), now=0.0)
    stack.receive(build_tcp_packet(bad, OURS, TcpSegment(40000, 81, 5, 0, SYN, 100)), now=0.0)
    stack.receive(build_icmp_packet(bad, OURS, IcmpMessage(ECHO_REQUEST, 0, identifier=1, sequence=1)), now=0.0)
    assert stack.transmit(0.0) == []
    assert stack.drops["ipv4_bad_source_address"] == 3
    assert stack.connections == {}


class Wire:
    """Two stacks joined back to back on virtual time: deliver until both are quiet."""

    def __init__(self, a: Stack, b: Stack) -> None:
        self.a, self.b = a, b
        self.now = 0.0

    def exchange(self) -> None:
        for _ in range(10_000):
            from_a, from_b = self.a.transmit(self.now), self.b.transmit(self.now)
            if not from_a and not from_b:
                return
            for packet in from_a:
                self.b.receive(packet, self.now)
            for packet in from_b:
                self.a.receive(packet, self.now)
        raise AssertionError("the stacks never went quiet")

    def advance_to_next_deadline(self) -> bool:
        deadlines = [d for d in (self.a.next_deadline(), self.b.next_deadline()) if d is not None]
        if not deadlines:
            return False
        self.now = max(self.now, min(deadlines))
        self.a.on_timer(self.now)
        self.b.on_timer(self.now)
        self.exchange()
        return True


def test_a_connection_lives_and_is_forgotten_after_time_wait():
    client, server = make_stack(PEER, msl=1.0), make_stack(OURS, msl=1.0)
    wire = Wire(client, server)
    listener = server.listen(80)
    connection = client.connect(OURS, 80, wire.now)
    wire.exchange()
    accepted = listener.accept()
    assert connection.state is State.ESTABLISHED and accepted.state is State.ESTABLISHED

    connection.send(b"GET / HTTP/1.0\r\n\r\n", wire.now)
    client.poke(connection)
    wire.exchange()
    while accepted.readable == 0 and wire.advance_to_next_deadline():
        pass
    assert accepted.recv(1000, wire.now) == b"GET / HTTP/1.0\r\n\r\n"

    # The client closes first, so it is the one that waits in TIME-WAIT.
    connection.close(wire.now)
    client.poke(connection)
    server.poke(accepted)
    wire.exchange()
    accepted.close(wire.now)
    server.poke(accepted)
    wire.exchange()
    assert connection.state is State.TIME_WAIT
    assert client.state_counts() == {"TIME-WAIT": 1}
    assert server.connections == {}  # LAST-ACK ended in CLOSED: forgotten at once

    while wire.advance_to_next_deadline():
        pass
    assert wire.now == pytest.approx(2.0, abs=0.5)  # 2*MSL after the close, not later
    assert client.connections == {} and client.next_deadline() is None
    assert server.next_deadline() is None


def test_ephemeral_ports_skip_a_four_tuple_still_in_use():
    client = make_stack(PEER)
    first = client.connect(OURS, 80, 0.0)
    second = client.connect(OURS, 80, 0.0)
    assert first.local_port != second.local_port
    assert first.local_port in EPHEMERAL_PORTS and second.local_port in EPHEMERAL_PORTS
    with pytest.raises(StackError) as raised:
        client.connect(OURS, 80, 0.0, local_port=first.local_port)
    assert raised.value.errno == 98  # EADDRINUSE


def test_listening_twice_on_a_port_is_address_in_use():
    stack = make_stack()
    stack.listen(80)
    with pytest.raises(StackError) as raised:
        stack.listen(80)
    assert "already listening" in str(raised.value)


def test_a_new_syn_reopens_a_four_tuple_in_time_wait_at_once():
    # RFC 1122 4.2.2.13 / RFC 6191: the server closed first and sits in TIME-WAIT; the client
    # comes back from the same port with a higher sequence number and a newer timestamp. The
    # SYN must reach the listener now, not after the client's SYN retransmission a second later.
    client, server = make_stack(PEER, msl=30.0), make_stack(OURS, msl=30.0)
    wire = Wire(client, server)
    listener = server.listen(80)
    first = client.connect(OURS, 80, wire.now)
    wire.exchange()
    accepted = listener.accept()
    accepted.close(wire.now)
    server.poke(accepted)
    wire.exchange()
    first.close(wire.now)
    client.poke(first)
    wire.exchange()
    assert accepted.state is State.TIME_WAIT
    while first.state is not State.CLOSED:  # the client side ends in CLOSED after LAST-ACK
        assert wire.advance_to_next_deadline()

    wire.now += 1.0
    client.isn_generator = IsnGenerator(fixed_isn=0x00001000)  # past the old incarnation, wrapped
    second = client.connect(OURS, 80, wire.now, local_port=first.local_port)
    wire.exchange()
    assert second.state is State.ESTABLISHED
    reopened = listener.accept()
    assert reopened is not None and reopened is not accepted and reopened.state is State.ESTABLISHED
    assert server.state_counts() == {"ESTABLISHED": 1}


def test_connections_that_have_come_and_gone_leave_nothing_behind():
    # DESIGN.md rule 6: after TIME-WAIT no table entry, no timer and no memory is left, so an
    # idle stack costs nothing however many connections it has seen.
    import gc
    import tracemalloc

    client, server = make_stack(PEER, msl=0.5), make_stack(OURS, msl=0.5)
    wire = Wire(client, server)
    listener = server.listen(80)

    def one_round(count):
        for _ in range(count):
            connection = client.connect(OURS, 80, wire.now)
            wire.exchange()
            accepted = listener.accept()
            connection.send(b"x" * 3000, wire.now)
            client.poke(connection)
            wire.exchange()
            accepted.recv(65536, wire.now)
            connection.close(wire.now)
            accepted.close(wire.now)
            client.poke(connection)
            server.poke(accepted)
            wire.exchange()
        while wire.advance_to_next_deadline():
            pass

    def drain():  # what a runtime does after every batch
        for stack in (client, server):
            stack.events()
            stack.drain_active()

    one_round(50)  # warm up caches and interned objects
    drain()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    one_round(300)
    drain()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()

    for stack in (client, server):
        assert stack.connections == {}
        assert stack.next_deadline() is None
        assert stack.timer_heap.heap == [] and stack.timer_heap.entries == {}
        assert not stack.timer_heap.time_wait_queue and stack.timer_heap.queued == {}
    assert listener.accept() is None
    assert after - before < 64 * 1024, f"{after - before} bytes still held after 300 connections ended"


def test_drain_active_gives_every_connection_touched_since_the_last_drain_once():
    # Drained after every round, each round's touched connections are the active set itself;
    # left undrained over two rounds, the second round's join the first's, each once.
    client = Stack(PEER, TcpConfig(), port_seed=1)
    server = Stack(OURS, TcpConfig(), port_seed=2)
    listener = server.listen(80)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from bench_lifecycles import exchange

    first = client.connect(OURS, 80, 0.0)
    exchange(client, server, 0.0)
    accepted = listener.accept()
    assert client.drain_active() == [first] and server.drain_active() == [accepted]
    assert client.drain_active() == [] and server.drain_active() == []
    second = client.connect(OURS, 80, 0.1)
    client.transmit(0.1)  # the second SYN: client's active set is [second] (not drained)
    first.send(b"x", 0.1)
    client.poke(first)
    client.transmit(0.1)  # first's data: added to the set the last transmit left
    assert client.drain_active() == [second, first]
    assert client.drain_active() == []

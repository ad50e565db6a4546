"""Reassembly inside the Stack on virtual time: fragmented TCP (a SYN, a whole transfer) goes
through the normal path, big echo requests are answered with correct fragments (checked by scapy,
an independent implementation), and reassembly time is part of the stack's deadlines."""

from __future__ import annotations

import os
import random

from scapy.layers.inet import ICMP, IP, defragment

from ustack.reassembly import ReassemblyLimits
from ustack.stack import Stack
from ustack.tcp import State, TcpConfig
from ustack.tcp.isn import IsnGenerator
from ustack.wire import IcmpMessage, Ipv4Header, build_icmp_packet, build_ipv4_packet, parse_packet
from ustack.wire.fragment import fragment_ipv4
from ustack.wire.icmp import ECHO_REPLY, ECHO_REQUEST
from ustack.wire.ipv4 import PROTOCOL_ICMP, address_value
from ustack.wire.tcp import SYN

OURS = address_value("10.77.0.2")
PEER = address_value("10.77.0.1")


def make_stack(address=OURS, **keywords):
    return Stack(address, TcpConfig(), isn_generator=IsnGenerator(fixed_isn=0xFFFFFF00), port_seed=1, **keywords)


def split(packet: bytes, mtu: int, identification: int) -> list[bytes]:
    """What a router with this MTU makes of `packet` (a whole, unfragmented datagram)."""
    ip = parse_packet(packet).ip
    header = Ipv4Header(ip.src, ip.dst, ip.protocol, ip.ttl, identification=identification, dont_fragment=False)
    return fragment_ipv4(header, packet[ip.header_length:], mtu)


def test_a_fragmented_syn_is_answered():
    client, server = make_stack(PEER), make_stack(OURS)
    server.listen(80)
    client.connect(OURS, 80, 0.0)
    [syn] = client.transmit(0.0)
    transport = syn[20:]  # 40 bytes: the header with MSS, SACK-permitted, timestamps, window scale
    header = Ipv4Header(PEER, OURS, parse_packet(syn).ip.protocol, identification=4321, dont_fragment=False)
    first = build_ipv4_packet(header._replace(more_fragments=True), transport[:24])
    second = build_ipv4_packet(header._replace(fragment_offset=24), transport[24:])
    server.receive(second, 0.0)
    assert server.transmit(0.0) == []  # held: half a SYN is nothing yet
    server.receive(first, 0.0)
    [reply] = server.transmit(0.0)
    assert parse_packet(reply).tcp.flags & SYN
    assert server.counters["reassembly_datagrams_completed"] == 1
    assert not server.drops


def test_a_transfer_through_a_path_that_fragments_and_reverses_everything():
    seed = int(os.environ.get("USTACK_TEST_SEED", "0")) or random.randrange(1 << 30)
    print(f"seed={seed}")
    rng = random.Random(seed)
    client, server = make_stack(PEER), make_stack(OURS)
    listener = server.listen(80)
    connection = client.connect(OURS, 80, 0.0)
    identification = 0
    split_packets = 0
    now = 0.0

    def exchange():
        nonlocal identification, split_packets
        for _ in range(10_000):
            from_client, from_server = client.transmit(now), server.transmit(now)
            if not from_client and not from_server:
                return
            for packet in from_client:
                identification += 1
                fragments = split(packet, rng.choice([68, 576, 1006]), identification)
                split_packets += len(fragments) > 1
                rng.shuffle(fragments)
                for fragment in fragments:
                    server.receive(fragment, now)
            for packet in from_server:
                client.receive(packet, now)
        raise AssertionError("never quiet")

    exchange()
    accepted = listener.accept()
    assert accepted is not None and accepted.state is State.ESTABLISHED
    data = bytes(rng.randrange(256) for _ in range(50_000))
    received = b""
    offset = 0
    while len(received) < len(data):
        if offset < len(data):
            offset += connection.send(data[offset:offset + 8192], now)
            client.poke(connection)
        exchange()
        if accepted.readable:
            received += accepted.recv(1 << 20, now)
            server.poke(accepted)
        now += 0.01
        client.on_timer(now)
        server.on_timer(now)
        assert now < 60, "the transfer stalled"
    assert received == data
    assert split_packets >= 30  # most of the 35 data segments, whatever the seed
    assert server.counters["reassembly_datagrams_completed"] == split_packets
    assert not any(reason.startswith("reassembly") for reason in server.drops), server.drops
    assert server.reassembly.reassembler.memory_used == 0


def big_echo_request(size: int, identification: int = 77) -> tuple[IcmpMessage, list[bytes]]:
    request = IcmpMessage(ECHO_REQUEST, 0, identifier=0x4242, sequence=3, payload=os.urandom(size))
    packet = build_icmp_packet(PEER, OURS, request)
    return request, split(packet, 1500, identification)


def test_a_60000_byte_ping_is_answered_in_correct_fragments():
    stack = make_stack()
    request, fragments = big_echo_request(60_000)
    assert len(fragments) == 41
    for fragment in reversed(fragments):
        stack.receive(fragment, 1.0)
    reply_fragments = stack.transmit(1.0)
    assert len(reply_fragments) == 41 and stack.counters["fragments_created"] == 41
    offsets = []
    for index, packet in enumerate(reply_fragments):
        ip = parse_packet(packet).ip  # parse_packet checks the header checksum
        assert len(packet) <= stack.mtu and ip.total_length == len(packet)
        assert (ip.src, ip.dst, ip.protocol) == (OURS, PEER, PROTOCOL_ICMP)
        assert not ip.dont_fragment and ip.more_fragments == (index < 40)
        assert ip.fragment_offset % 8 == 0
        offsets.append((ip.fragment_offset, len(packet) - 20, ip.identification))
    assert len({identification for _, _, identification in offsets}) == 1
    assert all(offset + length == following for (offset, length, _), (following, _, _) in zip(offsets, offsets[1:]))
    # An independent reassembly (scapy) makes a valid echo reply carrying the same data.
    [whole] = defragment([IP(packet) for packet in reply_fragments])
    rebuilt = parse_packet(bytes(whole))  # checks the ICMP checksum over all 60,008 bytes
    assert rebuilt.icmp.type == ECHO_REPLY and whole[ICMP].type == 0
    assert (rebuilt.icmp.identifier, rebuilt.icmp.sequence, rebuilt.icmp.payload) == (0x4242, 3, request.payload)


def test_each_fragmented_reply_has_its_own_identification():
    stack = make_stack()
    identifications = set()
    for number in range(3):
        _, fragments = big_echo_request(3000, identification=100 + number)
        for fragment in fragments:
            stack.receive(fragment, 0.0)
        identifications |= {parse_packet(packet).ip.identification for packet in stack.transmit(0.0)}
    assert len(identifications) == 3


def test_a_ping_that_fits_is_not_fragmented():
    stack = make_stack()
    _, fragments = big_echo_request(1472)  # 1,500 bytes in all
    assert len(fragments) == 1
    stack.receive(fragments[0], 0.0)
    [reply] = stack.transmit(0.0)
    assert len(reply) == 1500 and not parse_packet(reply).ip.is_fragment


def test_reassembly_timeouts_are_stack_deadlines():
    stack = make_stack(reassembly_limits=ReassemblyLimits(timeout=30.0))
    _, fragments = big_echo_request(3000)
    stack.receive(fragments[0], 5.0)
    assert stack.next_deadline() == 35.0
    stack.on_timer(35.0)
    assert stack.drops["reassembly_timeout"] == 1
    assert stack.next_deadline() is None and stack.transmit(35.0) == []


def test_reassembly_deadline_is_the_earlier_of_the_two():
    stack = make_stack(reassembly_limits=ReassemblyLimits(timeout=0.5))
    stack.connect(PEER, 80, 0.0)
    stack.transmit(0.0)  # the SYN is out; its retransmission timer is armed (1 s)
    connection_deadline = stack.next_deadline()
    assert connection_deadline > 0.5
    _, fragments = big_echo_request(3000)
    stack.receive(fragments[0], 0.0)
    assert stack.next_deadline() == 0.5
    stack.on_timer(0.5)
    assert stack.next_deadline() == connection_deadline


def test_counters_of_ended_connections_are_kept():
    client, server = make_stack(PEER), make_stack(OURS)
    connection = client.connect(OURS, 81, 0.0)  # nobody listens: the server resets it
    for packet in client.transmit(0.0):
        server.receive(packet, 0.0)
    for packet in server.transmit(0.0):
        client.receive(packet, 0.0)
    connection.drops["example_reason"] += 2  # as the core counts its own drops
    client.transmit(0.0)  # the reset connection is CLOSED and forgotten here
    assert client.connections == {}
    assert client.ended_connection_counters["drops"]["example_reason"] == 2

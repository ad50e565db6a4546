"""IPv6 fragments in the Stack on virtual time (RFC 8200 4.5): reassembled through the normal path,
overlaps drop the whole packet (RFC 5722), atomic fragments bypass reassembly (RFC 6946), every drop
named "reassembly6_..." and counted; big echo replies leave in fragments that scapy (an independent
implementation) puts back together."""

from __future__ import annotations

from scapy.layers.inet6 import IPv6, ICMPv6EchoReply, defragment6

from ustack.reassembly import ReassemblyLimits
from ustack.stack import Stack
from ustack.tcp import TcpConfig
from ustack.tcp.isn import IsnGenerator
from ustack.wire import Icmpv6Message, Ipv6Header, build_icmp6_packet, build_ipv6_packet, build_tcp_packet, parse_packet
from ustack.wire import icmpv6
from ustack.wire.fragment import fragment_header, fragment_ipv6
from ustack.wire.ipv6 import PROTOCOL_FRAGMENT, PROTOCOL_ICMPV6, address6_value
from ustack.wire.tcp import SYN, TcpOptions, TcpSegment

OURS, PEER = address6_value("fd00:77::2"), address6_value("fd00:77::1")
SYN_SEGMENT = TcpSegment(40000, 80, 1000, 0, SYN, 65535,
                         options=TcpOptions(mss=1440, window_scale=7, sack_permitted=True, timestamps=(5, 0)))  # fmt: skip


def make_stack(**keywords) -> Stack:
    stack = Stack(None, TcpConfig(), address6=OURS, isn_generator=IsnGenerator(fixed_isn=1), port_seed=1, **keywords)
    stack.listen(80)
    return stack


def fragment(transport: bytes, offset: int, end: int, more: bool, identification: int = 99, protocol: int = 6) -> bytes:
    """One fragment of `transport` (bytes offset..end) from PEER to us."""
    header = Ipv6Header(PEER, OURS, PROTOCOL_FRAGMENT)
    return build_ipv6_packet(header, fragment_header(protocol, offset, more, identification) + transport[offset:end])


def syn_transport() -> bytes:
    return build_tcp_packet(PEER, OURS, SYN_SEGMENT)[40:]  # 40 bytes of TCP header and options


def answers(stack: Stack) -> list:
    return [parse_packet(packet) for packet in stack.transmit(0.0)]


def test_a_fragmented_syn_is_reassembled_in_any_order_and_answered():
    stack, transport = make_stack(), syn_transport()
    stack.receive(fragment(transport, 24, 40, False), 0.0)
    assert answers(stack) == []  # held
    stack.receive(fragment(transport, 0, 24, True), 0.0)
    [reply] = answers(stack)
    assert reply.tcp.flags & SYN and reply.tcp.ack == 1001
    assert stack.counters["reassembly6_datagrams_completed"] == 1 and stack.reassembly6.reassembler.pending == 0
    assert stack.counters["reassembly_datagrams_completed"] == 0  # IPv4's counters are its own


def test_an_overlap_drops_the_whole_packet_and_the_fragments_still_to_come():
    stack, transport = make_stack(), syn_transport()
    stack.receive(fragment(transport, 0, 24, True), 0.0)
    stack.receive(fragment(transport, 16, 32, True), 0.0)  # rewrites bytes 16..24: RFC 5722 3
    stack.receive(fragment(transport, 32, 40, False), 0.0)
    assert answers(stack) == [] and not stack.connections
    assert stack.drops["reassembly6_overlap"] == 2  # the held fragment and the overlapping one
    assert stack.drops["reassembly6_datagram_discarded"] == 1  # the one that came after


def test_an_exact_duplicate_is_only_a_duplicate():
    stack, transport = make_stack(), syn_transport()
    stack.receive(fragment(transport, 0, 24, True), 0.0)
    stack.receive(fragment(transport, 0, 24, True), 0.0)
    stack.receive(fragment(transport, 24, 40, False), 0.0)
    assert len(answers(stack)) == 1 and stack.drops["reassembly6_duplicate_fragment"] == 1


def test_an_atomic_fragment_is_a_whole_packet_beside_a_pending_one():
    stack, transport = make_stack(), syn_transport()
    # A real fragment with identification 99 is pending ...
    stack.receive(fragment(transport, 0, 24, True, identification=99), 0.0)
    # ... and an atomic fragment with the same identification (RFC 6946 4: processed at once,
    # never mixed with the pending packet's fragments).
    other = build_tcp_packet(PEER, OURS, SYN_SEGMENT._replace(src_port=40001))[40:]
    stack.receive(fragment(other, 0, len(other), False, identification=99), 0.0)
    [reply] = answers(stack)
    assert reply.tcp.dst_port == 40001
    assert stack.reassembly6.reassembler.pending == 1  # the real one still waits, untouched
    stack.receive(fragment(transport, 24, 40, False, identification=99), 0.0)
    assert [packet.tcp.dst_port for packet in answers(stack)] == [40000]


def test_a_first_fragment_without_the_tcp_header_is_refused():
    stack, transport = make_stack(), syn_transport()
    stack.receive(fragment(transport, 0, 16, True), 0.0)  # RFC 7112: the header chain is incomplete
    stack.receive(fragment(transport, 16, 40, False), 0.0)
    assert answers(stack) == []
    assert stack.drops["reassembly6_first_fragment_without_upper_header"] == 1


def test_an_unfinished_packet_expires_with_the_stack_timer():
    stack, transport = make_stack(reassembly_limits=ReassemblyLimits(timeout=5.0)), syn_transport()
    stack.receive(fragment(transport, 0, 24, True), 10.0)
    assert stack.next_deadline() == 15.0
    stack.on_timer(15.0)
    assert stack.reassembly6.reassembler.pending == 0 and stack.drops["reassembly6_timeout"] == 1
    stack.receive(fragment(transport, 24, 40, False), 16.0)
    assert answers(stack) == []  # the rest alone completes nothing


def test_a_packet_too_long_when_put_together_is_dropped():
    stack = make_stack()
    stack.receive(fragment(bytes(65600), 65528, 65536, False), 0.0)  # would end past 65,535
    assert stack.drops["ipv6_bad_fragment"] + stack.drops["reassembly6_too_long"] == 1


def test_a_big_echo_request_in_fragments_is_answered_in_fragments():
    stack = make_stack()
    data = bytes(range(256)) * 12  # 3,072 bytes, as `ping -6 -s 3072`
    request = build_icmp6_packet(PEER, OURS, Icmpv6Message(icmpv6.ECHO_REQUEST, 0, 0x77, 3, payload=data))
    header = Ipv6Header(PEER, OURS, PROTOCOL_ICMPV6)
    for piece in fragment_ipv6(header, request[40:], 1280, identification=0xABCDEF01):
        stack.receive(piece, 0.0)
    replies = stack.transmit(0.0)
    assert len(replies) == 3 and all(len(packet) <= stack.mtu for packet in replies)
    assert stack.counters["icmp6_echo_replies"] == 1 and stack.counters["fragments_created"] == 3
    # scapy reassembles what we sent: one echo reply with the request's identifier, sequence, data.
    [whole] = defragment6([IPv6(packet) for packet in replies])
    reply = IPv6(bytes(whole))  # rebuilt, so scapy checks the ICMPv6 checksum against its fields
    assert reply[ICMPv6EchoReply].id == 0x77 and reply[ICMPv6EchoReply].seq == 3
    assert bytes(reply[ICMPv6EchoReply].data) == data
    assert parse_packet(bytes(reply)).icmp.payload == data  # and our own parser agrees


def test_fragment_ipv6_cuts_at_eight_byte_units_within_the_mtu():
    header = Ipv6Header(OURS, PEER, PROTOCOL_ICMPV6)
    payload = bytes(range(250)) * 20  # 5,000 bytes
    packets = fragment_ipv6(header, payload, 1500, identification=5)
    parsed = [parse_packet(packet) for packet in packets]
    assert all(len(packet) <= 1500 for packet in packets)
    assert [packet.ip.fragment_offset for packet in parsed] == [0, 1448, 2896, 4344]
    assert [packet.ip.more_fragments for packet in parsed] == [True, True, True, False]
    assert {packet.ip.identification for packet in parsed} == {5}
    assert b"".join(bytes(packet.payload) for packet in parsed) == payload
    # A payload that fits is one packet with no fragment header (RFC 8021: no atomic fragments).
    [single] = fragment_ipv6(header, b"small", 1280, identification=6)
    assert single[6] == PROTOCOL_ICMPV6 and single[40:] == b"small"  # Next Header: no fragment header

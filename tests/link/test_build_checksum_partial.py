"""build_tcp_packet with `partial_checksum_over`: a segment sure to be longer than that limit (a large
segment the link cuts, TSO) is built with its TCP checksum left partial (the pseudo-header sum with
the TCP length, folded, not complemented: what a TSO device takes with NEEDS_CSUM), without a pass
over its payload and without copying the payload behind the headers (SegmentParts: the headers and
the payload); joined and completed by vnet.complete_checksum, it is byte for byte the segment built
with its checksum whole.
(tests/link/test_checksum_partial_sent.py follows such segments through the links.)"""

from __future__ import annotations

import pytest

from ustack.link.vnet import complete_checksum
from ustack.wire import build_tcp_packet, codec, parse_packet
from ustack.wire.codec import SegmentParts
from ustack.wire.tcp import NO_OPTIONS, TcpOptions, TcpSegment

from vnet_helpers import A, A6, B, B6, is_partial, partial
ADDRESSES = {4: (A, B), 6: (A6, B6)}
ACK, PSH, FIN, CWR = 0x10, 0x08, 0x01, 0x80
MTU = 1500
OPTIONS = {
    "none": NO_OPTIONS,
    "timestamps": TcpOptions(timestamps=(123456, 654321)),
    "timestamps_sack": TcpOptions(timestamps=(1, 2), sack_blocks=((5000, 6000), (7000, 9001))),
}


def segment(length: int, options=NO_OPTIONS, flags: int = ACK, seq: int = 1000) -> TcpSegment:
    payload = bytes((index * 13 + 7) & 0xFF for index in range(length))
    return TcpSegment(40000, 80, seq, 7777, flags, 500, 0, options, payload)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("options", sorted(OPTIONS))
# 1461 (barely a large segment), odd lengths below and above HEADERS_APART_FROM, the largest
@pytest.mark.parametrize("length", [1461, 2897, 8191, 8193, 40_001, 65_535 - 40 - 20 - 40])
@pytest.mark.parametrize("payload_type", [bytes, memoryview])
def test_a_large_segment_built_partial_completes_to_the_whole_one(family, options, length, payload_type):
    src, dst = ADDRESSES[family]
    tcp = segment(length, OPTIONS[options], flags=ACK | PSH)
    whole = build_tcp_packet(src, dst, tcp, tos=2, flow_label=0x12345)
    assert type(whole) is bytes
    sent = tcp._replace(payload=payload_type(tcp.payload))  # the send buffer hands views
    packet = build_tcp_packet(src, dst, sent, tos=2, flow_label=0x12345, partial_checksum_over=MTU)
    # In parts: the headers, and the payload itself, not copied behind them.
    assert type(packet) is SegmentParts and packet.payload is sent.payload
    assert len(packet) == len(whole) and bytes(packet.headers) == partial(whole)[:len(whole) - length]
    assert bytes(packet) == partial(whole)
    # Header bytes read as a packet's (what the links and predicates peek at).
    assert [packet[index] for index in range(len(packet.headers))] == list(partial(whole)[:len(packet.headers)])
    completed = complete_checksum(packet)  # joined once, completed in place: the same object each time
    assert complete_checksum(packet) is completed and complete_checksum(completed) is completed
    assert completed.readonly and not completed.obj.tcp_checksum_partial and completed.obj.tcp_checksum_known
    assert bytes(completed) == whole
    assert bytes(packet) == partial(whole)  # the parts, what the kernel gets, are left partial
    assert bytes(parse_packet(bytes(completed)).tcp.payload) == tcp.payload  # summed in full: right


@pytest.mark.parametrize("family", [4, 6])
def test_the_builders_that_sum_the_payload_are_not_called(family, monkeypatch):
    """The partial build is one C call that is not given the payload (it never reads it), not
    one of the builders that sum it."""
    calls = []
    monkeypatch.setattr(codec, "_build_tcp_headers", lambda *a: calls.append(a))
    monkeypatch.setattr(codec, "_build_tcp6_headers", lambda *a: calls.append(a))
    src, dst = ADDRESSES[family]
    packet = build_tcp_packet(src, dst, segment(40_000), partial_checksum_over=MTU)
    assert is_partial(packet) and calls == []


@pytest.mark.parametrize("family", [4, 6])
def test_up_to_the_limit_the_checksum_is_whole(family):
    """A segment that may fit the MTU, or any segment without the limit, is built as always: bytes
    with a complete checksum (a stack without offloads never makes a partial one)."""
    src, dst = ADDRESSES[family]
    smallest = 40 if family == 4 else 60
    for length, over in ((MTU - smallest, MTU), (40_000, 0), (3000, 0)):
        packet = build_tcp_packet(src, dst, segment(length, OPTIONS["timestamps"]), partial_checksum_over=over)
        assert type(packet) is bytes
        assert parse_packet(packet).tcp is not None  # its checksum summed and found right


def test_the_c_partial_field_is_the_links_partial_field():
    """The field C writes equals the one the TUN link writes for a whole packet (one rule, two
    writers: vnet.large_segment_parts for a packet an observer completed)."""
    from ustack.link import vnet

    for src, dst in ADDRESSES.values():
        for length in (1461, 30_000, 64_000):
            whole = build_tcp_packet(src, dst, segment(length))
            t = 40 if type(src) is bytes else 20
            field = vnet._partial_checksum(whole, t, len(whole) - t)
            packet = build_tcp_packet(src, dst, segment(length), partial_checksum_over=MTU)
            assert bytes(packet[t + 16:t + 18]) == field

"""Predicates for scripted drops: pick the final handshake ACK, the 3rd data segment."""

from __future__ import annotations

import pytest
from scapy.all import IP, TCP

from ustack.link import FaultInjector
from ustack.link.predicates import nth, tcp_flags_and_payload_length, tcp_flags_equal, tcp_with_data
from ustack.wire.tcp import ACK, PSH

from link_helpers import ScriptedLink, numbered_packets, tcp_packet


def test_reading_flags_and_payload_length():
    segment = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="PA", options=[("MSS", 1460)]) / b"hello")
    assert tcp_flags_and_payload_length(segment) == (PSH | ACK, 5)
    assert tcp_flags_and_payload_length(numbered_packets(1)[0]) is None  # ICMP
    assert tcp_flags_and_payload_length(segment[:30]) is None  # too short for a TCP header


def test_drop_the_final_ack_of_the_handshake_and_the_third_data_segment():
    device = ScriptedLink()
    injector = FaultInjector(device)
    final_ack = injector.drop_when(nth(tcp_flags_equal(ACK), 1), direction="outbound")
    third_data = injector.drop_when(nth(tcp_with_data(), 3), direction="outbound")
    syn = tcp_packet(seq=1, flags="S")
    ack = tcp_packet(seq=2, flags="A")
    data = [tcp_packet(seq=2 + 10 * i, flags="PA", payload=bytes(10)) for i in range(5)]
    later_ack = tcp_packet(seq=52, flags="A")
    injector.send_batch([syn, ack, *data, later_ack], 0.0)
    assert device.sent == [syn, data[0], data[1], data[3], data[4], later_ack]
    assert final_ack.dropped == [ack] and third_data.dropped == [data[2]]


def test_nth_counts_from_one():
    with pytest.raises(ValueError):
        nth(tcp_with_data(), 0)

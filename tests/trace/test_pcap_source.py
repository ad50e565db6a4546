"""Reading captures: link layers, packets that are not TCP, and offloaded checksums."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP

from ustack.trace.pcap_source import (
    LINKTYPE_LINUX_SLL,
    LINKTYPE_NULL,
    ip_packet,
    read_capture,
    with_checksums_recomputed,
)
from ustack.wire.errors import WireError
from ustack.wire.pcap import LINKTYPE_RAW, file_header, record

SEGMENT = bytes(IP(src="10.0.0.1", dst="10.0.0.2", id=7) / TCP(sport=1, dport=2, flags="S", seq=99))


def pcap(linktype, *frames):
    return file_header(linktype) + b"".join(record(float(n), frame) for n, frame in enumerate(frames))


def test_offloaded_checksum_is_used_and_counted():
    broken = bytearray(SEGMENT)
    broken[36:38] = b"\x12\x34"  # the TCP checksum field, as a sender's capture may show it
    capture = read_capture(pcap(LINKTYPE_RAW, bytes(broken), SEGMENT))
    assert len(capture.observations) == 2 and capture.checksums_ignored == 1
    assert capture.observations[0].tcp == capture.observations[1].tcp
    assert with_checksums_recomputed(bytes(broken)) == SEGMENT


def test_other_packets_are_skipped_by_named_reason():
    udp = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / b"x")
    truncated = SEGMENT[:30]
    capture = read_capture(pcap(LINKTYPE_RAW, udp, truncated, SEGMENT))
    assert len(capture.observations) == 1
    assert capture.skipped["not_tcp"] == 1 and sum(capture.skipped.values()) == 2


@pytest.mark.parametrize(
    "linktype, frame",
    [
        (LINKTYPE_NULL, struct.pack("<I", 2) + SEGMENT),  # BSD loopback, AF_INET
        (LINKTYPE_LINUX_SLL, b"\0" * 14 + b"\x08\x00" + SEGMENT),  # tcpdump -i any
        (1, b"\0" * 12 + b"\x81\x00\0\x01\x08\x00" + SEGMENT),  # Ethernet with an 802.1Q tag
    ],
)
def test_link_layers(linktype, frame):
    assert ip_packet(linktype, frame) == SEGMENT
    assert len(read_capture(pcap(linktype, frame)).observations) == 1


def test_unknown_link_layer_and_not_ip():
    assert ip_packet(147, SEGMENT) == "unsupported_linktype"
    assert ip_packet(1, b"\0" * 12 + b"\x08\x06" + SEGMENT) == "not_ip"  # ARP


def test_not_a_pcap():
    with pytest.raises(WireError):
        read_capture(b"definitely not a capture file")

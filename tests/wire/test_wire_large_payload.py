"""Large payloads (HEADERS_APART_FROM bytes on): C writes only the headers and the payload joins
them from where it is, bytes or a view of bytes (the send buffer's, issue 12). The packets must
be those the copying path builds: same bytes, checksums that scapy (an independent
implementation) computes again to the same values."""

from __future__ import annotations

import logging

import pytest

logging.getLogger("scapy").setLevel(logging.ERROR)

from scapy.layers.inet import IP, TCP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402

from ustack.wire import codec  # noqa: E402
from ustack.wire.codec import HEADERS_APART_FROM, build_tcp_packet, parse_packet  # noqa: E402
from ustack.wire.tcp import ACK, PSH, TcpOptions, TcpSegment  # noqa: E402

SRC4, DST4 = 0x0A4D0002, 0x0A4D0001
SRC6, DST6 = bytes.fromhex("fd000077" + "00" * 11 + "02"), bytes.fromhex("fd000077" + "00" * 11 + "01")
OPTIONS = TcpOptions(timestamps=(123456, 654321), sack_blocks=((1000, 2000),))


def segment(payload) -> TcpSegment:
    return TcpSegment(80, 40000, 2**32 - 7, 99, ACK | PSH, 512, 0, OPTIONS, payload)


def copied(src, dst, payload: bytes, monkeypatch) -> bytes:
    """The same packet through the copying path (C copies the payload after the headers)."""
    with monkeypatch.context() as patch:
        patch.setattr(codec, "HEADERS_APART_FROM", 1 << 20)
        return build_tcp_packet(src, dst, segment(payload))


@pytest.mark.parametrize("length", [HEADERS_APART_FROM, HEADERS_APART_FROM + 1, 65_000, 65_535 - 40 - 32])
@pytest.mark.parametrize("family", [4, 6])
def test_headers_apart_give_the_packet_the_copying_path_gives(length, family, monkeypatch):
    src, dst = (SRC4, DST4) if family == 4 else (SRC6, DST6)
    data = bytes((index * 7 + 3) & 0xFF for index in range(length + 9))
    expected = copied(src, dst, data[5 : 5 + length], monkeypatch)
    for payload in (data[5 : 5 + length], memoryview(data)[5 : 5 + length]):
        packet = build_tcp_packet(src, dst, segment(payload))
        assert type(packet) is bytes and packet == expected
    fields = parse_packet(packet)  # checks both checksums
    assert fields.tcp is not None and fields.payload == data[5 : 5 + length]
    scapy_packet = IP(packet) if family == 4 else IPv6(packet)
    checksum = scapy_packet[TCP].chksum
    del scapy_packet[TCP].chksum
    assert (IP if family == 4 else IPv6)(bytes(scapy_packet))[TCP].chksum == checksum


def test_a_payload_past_the_largest_packet_is_refused_as_before():
    with pytest.raises(codec.WireError):
        build_tcp_packet(SRC4, DST4, segment(bytes(65_536)))

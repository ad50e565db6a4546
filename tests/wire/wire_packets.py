"""Helpers for the wire tests: a reference checksum written independently of csrc/, and builders
of raw packets (valid or deliberately broken) that do not go through the code under test."""

from __future__ import annotations

import shutil
import struct

import pytest

SOURCE = 0x0A000001  # 10.0.0.1
DESTINATION = 0x0A000002  # 10.0.0.2


def reference_checksum(data: bytes) -> int:
    """RFC 1071 the slow, obvious way: sum 16-bit big-endian words, fold, complement."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_header(
    payload_length: int,
    protocol: int = 6,
    src: int = SOURCE,
    dst: int = DESTINATION,
    ttl: int = 64,
    identification: int = 0,
    flags_and_offset: int = 0x4000,
    options: bytes = b"",
    tos: int = 0,
    total_length: int | None = None,
    version_ihl: int | None = None,
    checksum: int | None = None,
) -> bytes:
    """An IPv4 header with a correct checksum unless one is given."""
    header_length = 20 + len(options)
    if total_length is None:
        total_length = header_length + payload_length
    if version_ihl is None:
        version_ihl = 0x40 | (header_length // 4)
    fields = [version_ihl, tos, total_length, identification, flags_and_offset, ttl, protocol, 0, src, dst]
    header = struct.pack("!BBHHHBBHII", *fields) + options
    if checksum is None:
        checksum = reference_checksum(header)
    return header[:10] + struct.pack("!H", checksum) + header[12:]


def tcp_segment(
    src_port: int = 40000,
    dst_port: int = 7000,
    seq: int = 1,
    ack: int = 0,
    flags: int = 0x02,
    window: int = 502,
    urgent: int = 0,
    options: bytes = b"",
    payload: bytes = b"",
    src: int = SOURCE,
    dst: int = DESTINATION,
    data_offset: int | None = None,
    checksum: int | None = None,
) -> bytes:
    """A TCP header + options + payload; options are raw bytes, padded to 4 with EOL."""
    options += b"\x00" * (-len(options) % 4)
    if data_offset is None:
        data_offset = (20 + len(options)) // 4
    header = struct.pack("!HHIIBBHHH", src_port, dst_port, seq, ack, data_offset << 4, flags, window, 0, urgent)
    segment = header + options + payload
    if checksum is None:
        pseudo = struct.pack("!IIBBH", src, dst, 0, 6, len(segment))
        checksum = reference_checksum(pseudo + segment)
    return segment[:16] + struct.pack("!H", checksum) + segment[18:]


def tcp_packet(src: int = SOURCE, dst: int = DESTINATION, ip_options: bytes = b"", **tcp_fields) -> bytes:
    segment = tcp_segment(src=src, dst=dst, **tcp_fields)
    return ipv4_header(len(segment), 6, src, dst, options=ip_options) + segment


def icmp_message(message_type: int, code: int, rest: bytes = b"\x00" * 4, data: bytes = b"") -> bytes:
    body = struct.pack("!BBH", message_type, code, 0) + rest + data
    checksum = reference_checksum(body)
    return body[:2] + struct.pack("!H", checksum) + body[4:]


def icmp_packet(message_type: int, code: int, rest: bytes = b"\x00" * 4, data: bytes = b"", **ip_fields) -> bytes:
    message = icmp_message(message_type, code, rest, data)
    return ipv4_header(len(message), 1, flags_and_offset=0, **ip_fields) + message


def require_tool(name: str, package: str) -> str:
    """The path of a tool a test needs; a missing one FAILS the test (scripts/test installs it)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: these tests need it (apt-get install {package}; scripts/test does)")
    return path


def with_fixed_checksums(packet: bytes) -> bytes:
    """The packet with a correct IPv4 header checksum and, for TCP, a correct TCP checksum (after a
    test changed some bytes on purpose). Uses the IHL and total length as they stand."""
    packet = bytearray(packet)
    header_length = (packet[0] & 0x0F) * 4
    packet[10:12] = b"\x00\x00"
    packet[10:12] = reference_checksum(bytes(packet[:header_length])).to_bytes(2, "big")
    total_length = struct.unpack_from("!H", packet, 2)[0]
    if packet[9] == 6 and total_length - header_length >= 18:
        segment = packet[header_length:total_length]
        segment[16:18] = b"\x00\x00"
        pseudo = bytes(packet[12:20]) + struct.pack("!BBH", 0, 6, len(segment))
        packet[header_length + 16 : header_length + 18] = reference_checksum(pseudo + bytes(segment)).to_bytes(2, "big")
    return bytes(packet)


# --- IPv6 (RFC 8200), written without the code under test ---------------------------------------
SOURCE6 = bytes.fromhex("fd000077000000000000000000000001")  # fd00:77::1
DESTINATION6 = bytes.fromhex("fd000077000000000000000000000002")  # fd00:77::2


def ipv6_header(payload_length: int, next_header: int, src: bytes = SOURCE6, dst: bytes = DESTINATION6,
                hop_limit: int = 64, flow_label: int = 0, traffic_class: int = 0) -> bytes:  # fmt: skip
    first_word = (6 << 28) | (traffic_class << 20) | flow_label
    return struct.pack("!IHBB", first_word, payload_length, next_header, hop_limit) + src + dst


def checksum6(src: bytes, dst: bytes, protocol: int, upper: bytes, checksum_at: int) -> bytes:
    """`upper` (a TCP segment or ICMPv6 message) with its checksum over the RFC 8200 8.1 pseudo-header."""
    upper = upper[:checksum_at] + b"\x00\x00" + upper[checksum_at + 2 :]
    pseudo = src + dst + struct.pack("!IxxxB", len(upper), protocol)
    return upper[:checksum_at] + struct.pack("!H", reference_checksum(pseudo + upper)) + upper[checksum_at + 2 :]


def tcp6_packet(src: bytes = SOURCE6, dst: bytes = DESTINATION6, chain: bytes = b"", first_next_header: int = 6,
                **tcp_fields) -> bytes:  # fmt: skip
    """IPv6 + optional extension headers (`chain`, whose last Next Header must be 6) + TCP."""
    segment = checksum6(src, dst, 6, tcp_segment(**tcp_fields), 16)
    return ipv6_header(len(chain) + len(segment), first_next_header if chain else 6, src, dst) + chain + segment


def icmp6_packet(message_type: int, code: int, rest: bytes = b"\x00" * 4, data: bytes = b"", src: bytes = SOURCE6,
                 dst: bytes = DESTINATION6) -> bytes:  # fmt: skip
    message = checksum6(src, dst, 58, struct.pack("!BBH", message_type, code, 0) + rest + data, 2)
    return ipv6_header(len(message), 58, src, dst) + message

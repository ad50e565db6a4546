"""Read a pcap file into the `Observation`s that `ustack.trace.infer` draws a ladder from.

The file format is `ustack.wire.pcap`'s business and each packet is parsed by
`ustack.wire.parse_packet`; this module only strips the link-layer header in front of the IP
packet (IPv4 or IPv6) and keeps the TCP segments. Packets that are not TCP, or that fail to parse, are
skipped and counted by a named reason (`Capture.skipped`), never silently.

One exception to "fail to parse": a wrong checksum. A capture taken on the sending host holds
the checksum field as the kernel left it for the network card to fill in (checksum offload; on
`lo` it is never filled in at all), and tcpdump shows such packets without complaint. The ladder
is about segments, not checksums, so those packets are parsed again with their checksums
recomputed, and counted in `Capture.checksums_ignored`.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Callable, NamedTuple

from ustack.wire.checksum import checksum_add, checksum_finish, internet_checksum, pseudo_header_sum
from ustack.wire.errors import WireError
from ustack.wire.ipv4 import PROTOCOL_TCP
from ustack.wire.ipv6 import IPV6_HEADER_LENGTH
from ustack.wire.pcap import read_records

from .infer import Observation

# Link types (https://www.tcpdump.org/linktypes.html) we know how to peel.
LINKTYPE_NULL = 0  # BSD loopback: a 4-byte address family in the capturing host's byte order
LINKTYPE_ETHERNET = 1  # what tcpdump -i lo writes on Linux: 14 bytes of zero MACs and a type
LINKTYPE_RAW = 101  # no link header at all: what ustack's PcapWriter writes for a TUN device
LINKTYPE_LINUX_SLL = 113  # tcpdump -i any
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

CHECKSUM_REASONS = ("ipv4_bad_checksum", "tcp_bad_checksum")
TCP_CHECKSUM_OFFSET = 16  # within the TCP header (RFC 9293 3.1)

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = 0x8100
IP_ETHERTYPES = (struct.pack("!H", ETHERTYPE_IPV4), struct.pack("!H", ETHERTYPE_IPV6))
# A BSD loopback header's address family: AF_INET is 2 everywhere; AF_INET6 is 10 on Linux, 24 on
# NetBSD and OpenBSD, 28 on FreeBSD and 30 on macOS (the values libpcap's pcap/dlt.h lists).
NULL_FAMILIES = (2, 10, 24, 28, 30)


class Capture(NamedTuple):
    observations: list[Observation]
    skipped: Counter  # reason -> how many packets were not used
    checksums_ignored: int = 0  # packets used although their checksum was wrong (offload)


def ip_packet(linktype: int, frame: bytes) -> bytes | str:
    """The IP packet (IPv4 or IPv6) inside one captured frame, or the name of the reason it has none."""
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        return frame
    if linktype == LINKTYPE_ETHERNET:
        offset, ethertype = 14, frame[12:14]
        if ethertype == struct.pack("!H", ETHERTYPE_VLAN):  # 802.1Q tag: four more bytes
            offset, ethertype = 18, frame[16:18]
        if ethertype not in IP_ETHERTYPES:
            return "not_ip"
        return frame[offset:]
    if linktype == LINKTYPE_NULL:
        if len(frame) < 4 or not {*struct.unpack("<I", frame[:4]), *struct.unpack(">I", frame[:4])} & set(NULL_FAMILIES):
            return "not_ip"
        return frame[4:]
    if linktype == LINKTYPE_LINUX_SLL:
        return frame[16:] if frame[14:16] in IP_ETHERTYPES else "not_ip"
    if linktype == LINKTYPE_LINUX_SLL2:
        return frame[20:] if frame[0:2] in IP_ETHERTYPES else "not_ip"
    return "unsupported_linktype"


def with_checksums_recomputed(packet: bytes) -> bytes:
    """The packet with its checksums (IPv4 header, TCP) set to their right values. For IPv6, whose
    header has no checksum, the TCP checksum of a packet without extension headers."""
    if packet[:1] and packet[0] >> 4 == 6:
        return _with_tcp6_checksum_recomputed(packet)
    if len(packet) < 20:
        return packet
    header_length = (packet[0] & 0x0F) * 4
    total_length = struct.unpack_from("!H", packet, 2)[0]
    fixed = bytearray(packet[: max(total_length, header_length)])
    if len(fixed) < header_length:
        return packet
    fixed[10:12] = b"\0\0"
    fixed[10:12] = struct.pack("!H", internet_checksum(bytes(fixed[:header_length])))
    segment_start = header_length
    if fixed[9] == PROTOCOL_TCP and len(fixed) >= segment_start + TCP_CHECKSUM_OFFSET + 2:
        where = segment_start + TCP_CHECKSUM_OFFSET
        fixed[where : where + 2] = b"\0\0"
        source, destination = struct.unpack_from("!II", fixed, 12)
        segment = bytes(fixed[segment_start:])
        partial = pseudo_header_sum(source, destination, PROTOCOL_TCP, len(segment))
        fixed[where : where + 2] = struct.pack("!H", checksum_finish(checksum_add(partial, segment)))
    return bytes(fixed)


def _with_tcp6_checksum_recomputed(packet: bytes) -> bytes:
    # Only TCP right after the fixed header: a capture's offloaded checksums come from the sending
    # host's own segments, which carry no extension headers.
    if len(packet) < IPV6_HEADER_LENGTH + TCP_CHECKSUM_OFFSET + 2 or packet[6] != PROTOCOL_TCP:
        return packet
    payload_length = struct.unpack_from("!H", packet, 4)[0]
    fixed = bytearray(packet[: IPV6_HEADER_LENGTH + payload_length])
    where = IPV6_HEADER_LENGTH + TCP_CHECKSUM_OFFSET
    fixed[where : where + 2] = b"\0\0"
    segment = bytes(fixed[IPV6_HEADER_LENGTH:])
    # RFC 8200 8.1: the pseudo-header is both addresses, the upper-layer length (32 bits), three
    # zero bytes and the next header.
    pseudo_header = bytes(fixed[8:40]) + struct.pack("!I3xB", len(segment), PROTOCOL_TCP)
    fixed[where : where + 2] = struct.pack("!H", checksum_finish(checksum_add(checksum_add(0, pseudo_header), segment)))
    return bytes(fixed)


def default_parser() -> Callable[[bytes], object]:
    """`ustack.wire.parse_packet` (looked up when needed, so tests can stand in for it)."""
    from ustack.wire import parse_packet

    return parse_packet


def read_capture(blob: bytes, parse: Callable[[bytes], object] | None = None) -> Capture:
    """All the TCP segments in a pcap file held in memory. Raises WireError if it is not pcap."""
    parse = parse or default_parser()
    linktype, records = read_records(blob)
    observations: list[Observation] = []
    skipped: Counter = Counter()
    checksums_ignored = 0
    for record in records:
        packet_bytes = ip_packet(linktype, record.data)
        if isinstance(packet_bytes, str):
            skipped[packet_bytes] += 1
            continue
        try:
            try:
                packet = parse(packet_bytes)
            except WireError as error:
                if error.reason not in CHECKSUM_REASONS:
                    raise
                packet = parse(with_checksums_recomputed(packet_bytes))
                checksums_ignored += 1
        except WireError as error:
            skipped[error.reason] += 1
            continue
        if packet.tcp is None:
            skipped["not_tcp"] += 1
            continue
        observations.append(Observation(record.timestamp, packet.ip, packet.tcp))
    return Capture(observations, skipped, checksums_ignored)

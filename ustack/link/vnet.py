"""The virtio_net_hdr that leads every packet on a TUN device opened with IFF_VNET_HDR, and the two
things TUN offloads need around it: completing a partial checksum the kernel left to us, and
coalescing our in-order TCP segments into one super-segment the kernel splits again (TSO).

Facts (Linux include/uapi/linux/virtio_net.h, include/uapi/linux/if_tun.h):

    struct virtio_net_hdr {       10 bytes, in the host's byte order on a TUN device (unless
        u8  flags;                TUNSETVNETLE/BE says otherwise; we never set those)
        u8  gso_type;
        u16 hdr_len;              bytes of headers in front of the data (IP + TCP here)
        u16 gso_size;             bytes of data in each piece the packet is to be cut into
        u16 csum_start;           the checksum covers the packet from here to the end...
        u16 csum_offset;          ...and goes csum_offset bytes further on
    }

flags: NEEDS_CSUM (1): the checksum is partial: the field holds the pseudo-header sum only, and
whoever takes the packet must sum csum_start..end and store the result; DATA_VALID (2): the
checksum was already verified; RSC_INFO (4) is for virtio devices only. gso_type: NONE (0),
TCPV4 (1), UDP (3, UFO), TCPV6 (4), UDP_L4 (5, USO), each possibly or'ed with ECN (0x80).

What the kernel does with a TCPV4 super-segment we write (tcp_gso_segment): it cuts the data into
gso_size pieces, each with a copy of the IP and TCP headers (options included), the sequence
number advanced by the data before it, the IP identification incremented, and FIN and PSH kept
on the last piece only. `split_super_segment` below does the same in Python, for the tests.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ..wire.checksum import internet_checksum, internet_checksum_of, pseudo_header_sum

HEADER = struct.Struct("=BBHHHH")
HEADER_SIZE = HEADER.size  # 10

NEEDS_CSUM = 0x01
DATA_VALID = 0x02
RSC_INFO = 0x04
KNOWN_FLAGS = NEEDS_CSUM | DATA_VALID | RSC_INFO

GSO_NONE = 0
GSO_TCPV4 = 1
GSO_UDP = 3
GSO_TCPV6 = 4
GSO_UDP_L4 = 5
GSO_ECN = 0x80
GSO_TYPE_NAMES = {GSO_NONE: "none", GSO_TCPV4: "tcpv4", GSO_UDP: "udp", GSO_TCPV6: "tcpv6", GSO_UDP_L4: "udp_l4"}

IPV4_HEADER = 20  # we send no IP options, so coalescing handles only this length
TCP_PROTOCOL = 6
TCP_CHECKSUM_OFFSET = 16  # where the checksum sits in the TCP header
ACK, PSH, FIN = 0x10, 0x08, 0x01
LARGEST_IPV4_PACKET = 65535  # the 16-bit total length
SMALL_PACKET = 2048  # up to this length, packet_from_parts copies by slicing (measured: faster)


class VnetHeader(NamedTuple):
    flags: int = 0
    gso_type: int = GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0


PLAIN = VnetHeader()  # a whole packet with a complete checksum
PLAIN_BYTES = HEADER.pack(*PLAIN)


class VnetDrop(Exception):
    """A frame from the kernel that cannot be used; `reason` is the counted drop's name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_vnet_header(frame: bytes) -> VnetHeader:
    if len(frame) < HEADER_SIZE:
        raise VnetDrop("vnet_header_truncated")
    return VnetHeader(*HEADER.unpack_from(frame))


def build_vnet_header(header: VnetHeader) -> bytes:
    return HEADER.pack(*header)


def packet_from_kernel(frame: bytes) -> bytes:
    """The IP packet inside a frame read from the TUN device, with its checksum complete
    (packet_from_parts, for a frame that is one bytes object)."""
    return packet_from_parts(frame, bytearray(frame[HEADER_SIZE:]), len(frame) - HEADER_SIZE)


def packet_from_parts(header: bytes | bytearray, packet: bytearray, length: int) -> bytes:
    """The IP packet in packet[:length], read from the TUN device behind the vnet `header`,
    as bytes with its checksum complete. The TUN link reads each frame straight into two
    preallocated buffers (os.readv) and calls this; `packet` is changed in place.

    A super-segment (gso_type TCPV4) stays whole: the stack takes it as one segment, with one
    parse and one ACK decision. A partial checksum (NEEDS_CSUM) is completed here with the C
    checksum rather than trusted: then the parser, the pcap writer and the tracer all see an
    ordinary valid packet, and the cost is one C pass over at most 64 KB (a few microseconds)."""
    if length < 0 or len(header) < HEADER_SIZE:
        raise VnetDrop("vnet_header_truncated")
    flags, gso_type, _, gso_size, csum_start, csum_offset = HEADER.unpack_from(header)
    if flags & ~KNOWN_FLAGS:
        raise VnetDrop("vnet_unknown_flags")
    gso_type &= ~GSO_ECN
    if gso_type != GSO_NONE:
        if gso_type not in GSO_TYPE_NAMES:
            raise VnetDrop("vnet_unknown_gso_type")
        if gso_type != GSO_TCPV4:
            # We offer only TSO4 (TUNSETOFFLOAD); TCPV6 waits for IPv6, UFO/USO for UDP.
            raise VnetDrop(f"vnet_gso_{GSO_TYPE_NAMES[gso_type]}_not_supported")
        if gso_size == 0:
            raise VnetDrop("vnet_gso_size_zero")
        if length < IPV4_HEADER or packet[0] >> 4 != 4 or packet[9] != TCP_PROTOCOL:
            raise VnetDrop("vnet_gso_not_tcp_over_ipv4")
    if flags & NEEDS_CSUM:
        field = csum_start + csum_offset
        if field + 2 > length or csum_start < IPV4_HEADER:
            raise VnetDrop("vnet_checksum_out_of_range")
        checksum = internet_checksum_of(packet, csum_start, length)
        packet[field] = checksum >> 8
        packet[field + 1] = checksum & 0xFF
    if length <= SMALL_PACKET:
        return bytes(packet[:length])  # two small copies cost less than making a memoryview
    with memoryview(packet) as view:
        return bytes(view[:length])  # one copy of up to 64 KB


# ------------------------------------------------------------------------------------------------
# Sending: coalescing our segments into super-segments
# ------------------------------------------------------------------------------------------------
class Coalescer:
    """Joins consecutive in-order TCP segments of one connection into one super-segment, which
    the kernel cuts back into exactly those segments (TSO, gso_size = the first one's length).

        coalescer = Coalescer()
        for packet in packets:
            for frame in coalescer.add(packet):   # frames to write now (vnet header in front)
                os.write(fd, frame)
        for frame in coalescer.flush():           # end of the round: the last super-segment
            os.write(fd, frame)

    Segments join when: same addresses and ports, no IP options, the sequence number follows on,
    every header field but the sequence number, flags and checksum is equal (ACK, window,
    options with the timestamps and SACK blocks), no SYN/RST/URG/ECN flags, every piece but the
    last is exactly gso_size long and the last is not longer, and no piece before the last
    carries PSH or FIN. So nothing the core decided changes on the wire: the peer receives the
    same segments it would have received one by one."""

    def __init__(self) -> None:
        self._first: bytes | None = None  # the first packet of the run being built
        self._pieces: list[bytes] = []  # the payloads so far
        self._length = 0  # their total
        self._next_seq = 0
        self._last_flags = 0
        self._header_length = 0
        self.super_segments = 0  # counters for stats
        self.segments_joined = 0

    def add(self, packet: bytes) -> list[bytes]:
        """Frames to write now, in order; `packet` itself is held while a run may still grow.
        A piece with PSH or FIN ends its run, so that run goes out at once: a reply (an echo, the
        end of an HTTP answer) is written when the core makes it, not at the end of the round."""
        return [b"".join(parts) for parts in self.add_parts(packet)]

    def flush(self) -> list[bytes]:
        return [b"".join(parts) for parts in self.flush_parts()]

    def add_parts(self, packet: bytes) -> list[list]:
        """add(), each frame as the list of buffers it is made of (for os.writev: the payloads
        are not copied into one frame first)."""
        if self._first is not None and self._joins(packet):
            self._append(packet)
            return self.flush_parts() if packet[33] & (PSH | FIN) else []
        out = self.flush_parts()
        if _joinable(packet) and not packet[33] & (PSH | FIN):
            self._start(packet)
        else:
            out.append([PLAIN_BYTES, packet])
        return out

    def flush_parts(self) -> list[list]:
        if self._first is None:
            return []
        parts = self._frame_parts()
        self._first = None
        self._pieces = []
        return [parts]

    def _start(self, packet: bytes) -> None:
        header_length = IPV4_HEADER + (packet[32] >> 4) * 4
        self._first = packet
        self._header_length = header_length
        payload = memoryview(packet)[header_length:]  # a view: written out by writev, not copied
        self._pieces = [payload]
        self._length = len(payload)
        self._next_seq = (int.from_bytes(packet[24:28], "big") + len(payload)) & 0xFFFFFFFF
        self._last_flags = packet[33]

    def _joins(self, packet: bytes) -> bool:
        first = self._first
        header_length = self._header_length
        gso_size = len(self._pieces[0])
        if (
            self._last_flags != ACK  # a PSH or FIN ends a run: the kernel keeps them on the last piece
            or self._length % gso_size
            or not _joinable(packet)
            or packet[IPV4_HEADER + 12] != first[IPV4_HEADER + 12]  # same TCP header length
        ):
            return False
        payload_length = len(packet) - header_length
        if payload_length > gso_size or header_length + self._length + payload_length > LARGEST_IPV4_PACKET:
            return False
        return (
            int.from_bytes(packet[24:28], "big") == self._next_seq
            # TOS, DF, TTL, protocol; addresses; ports; ACK number; flags other than PSH/FIN
            # are checked through the bytes around them; window, urgent pointer, options.
            and packet[1] == first[1]
            and packet[6:10] == first[6:10]
            and packet[12:24] == first[12:24]
            and packet[28:32] == first[28:32]
            and packet[34:36] == first[34:36]
            and packet[38:header_length] == first[38:header_length]
        )

    def _append(self, packet: bytes) -> None:
        payload = memoryview(packet)[self._header_length:]
        self._pieces.append(payload)
        self._length += len(payload)
        self._next_seq = (self._next_seq + len(payload)) & 0xFFFFFFFF
        self._last_flags = packet[33]

    def _frame_parts(self) -> list:
        first = self._first
        if len(self._pieces) == 1:
            return [PLAIN_BYTES, first]
        header_length = self._header_length
        total = header_length + self._length
        tcp_length = total - IPV4_HEADER
        ip = bytearray(first[:IPV4_HEADER])
        ip[2:4] = total.to_bytes(2, "big")
        ip[10:12] = b"\0\0"
        ip[10:12] = internet_checksum(bytes(ip)).to_bytes(2, "big")
        tcp = bytearray(first[IPV4_HEADER:header_length])
        tcp[13] = self._last_flags  # FIN and PSH of the last piece (the kernel keeps them there)
        # A partial checksum: the pseudo-header sum, folded, not complemented; the kernel adds
        # the rest for each piece (NEEDS_CSUM).
        src, dst = int.from_bytes(first[12:16], "big"), int.from_bytes(first[16:20], "big")
        tcp[16:18] = _fold(pseudo_header_sum(src, dst, TCP_PROTOCOL, tcp_length)).to_bytes(2, "big")
        self.super_segments += 1
        self.segments_joined += len(self._pieces)
        header = VnetHeader(NEEDS_CSUM, GSO_TCPV4, header_length, len(self._pieces[0]), IPV4_HEADER, TCP_CHECKSUM_OFFSET)
        return [HEADER.pack(*header), ip, tcp, *self._pieces]


def large_segment_frame(packet: bytes, mtu: int) -> bytes | None:
    """The frame for one TCP segment larger than the MTU that the core built itself
    (TcpConfig.offload_segments): the kernel cuts it into pieces of the MTU minus its headers,
    which is the connection's segment size (the Stack allows such segments only then). None if
    the packet is not a TCP segment this link may hand over that way."""
    parts = large_segment_parts(packet, mtu)
    return None if parts is None else b"".join(parts)


def large_segment_parts(packet: bytes, mtu: int) -> list | None:
    """large_segment_frame as the buffers it is made of, the payload not copied (os.writev)."""
    if not _joinable(packet):
        return None
    header_length = IPV4_HEADER + (packet[32] >> 4) * 4
    src, dst = int.from_bytes(packet[12:16], "big"), int.from_bytes(packet[16:20], "big")
    partial = _fold(pseudo_header_sum(src, dst, TCP_PROTOCOL, len(packet) - IPV4_HEADER))
    header = VnetHeader(NEEDS_CSUM, GSO_TCPV4, header_length, mtu - header_length, IPV4_HEADER, TCP_CHECKSUM_OFFSET)
    return [HEADER.pack(*header), packet[:36], partial.to_bytes(2, "big"), memoryview(packet)[38:]]


def _joinable(packet: bytes) -> bool:
    """A TCP segment over IPv4 without IP options, unfragmented, carrying data, whose flags are
    ACK with at most PSH and FIN."""
    return (
        len(packet) > 40
        and packet[0] == 0x45
        and packet[9] == TCP_PROTOCOL
        and not (packet[6] & 0x3F or packet[7])  # no fragment offset, MF clear
        and packet[33] & ~(PSH | FIN) == ACK
        and len(packet) > IPV4_HEADER + (packet[32] >> 4) * 4
    )


def _fold(value: int) -> int:
    while value >> 16:
        value = (value & 0xFFFF) + (value >> 16)
    return value


def split_super_segment(frame: bytes) -> list[bytes]:
    """What the kernel makes of a frame we write: the packets the peer receives, each with both
    checksums complete (tcp_gso_segment and inet_gso_segment, in Python for the tests)."""
    header = parse_vnet_header(frame)
    packet = frame[HEADER_SIZE:]
    if header.gso_type == GSO_NONE:
        if header.flags & NEEDS_CSUM:
            return [packet_from_kernel(frame)]
        return [packet]
    header_length = header.hdr_len
    headers, data = packet[:header_length], packet[header_length:]
    seq = int.from_bytes(headers[24:28], "big")
    identification = int.from_bytes(headers[4:6], "big")
    src, dst = int.from_bytes(headers[12:16], "big"), int.from_bytes(headers[16:20], "big")
    pieces = []
    for offset in range(0, len(data), header.gso_size):
        piece = data[offset:offset + header.gso_size]
        last = offset + header.gso_size >= len(data)
        ip = bytearray(headers[:IPV4_HEADER])
        ip[2:4] = (header_length + len(piece)).to_bytes(2, "big")
        ip[4:6] = ((identification + len(pieces)) & 0xFFFF).to_bytes(2, "big")
        ip[10:12] = b"\0\0"
        ip[10:12] = internet_checksum(bytes(ip)).to_bytes(2, "big")
        tcp = bytearray(headers[IPV4_HEADER:])
        tcp[4:8] = ((seq + offset) & 0xFFFFFFFF).to_bytes(4, "big")
        if not last:
            tcp[13] &= ~(PSH | FIN)
        tcp[16:18] = b"\0\0"
        partial = pseudo_header_sum(src, dst, TCP_PROTOCOL, len(tcp) + len(piece))
        tcp[16:18] = internet_checksum(_fold(partial).to_bytes(2, "big") + bytes(tcp) + piece).to_bytes(2, "big")
        pieces.append(bytes(ip + tcp) + piece)
    return pieces

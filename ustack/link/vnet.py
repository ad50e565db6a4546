"""The virtio_net_hdr that leads every packet on a TUN device opened with IFF_VNET_HDR, and the two
things TUN offloads need around it: completing a partial checksum the kernel left to us, and
coalescing our in-order TCP segments into one super-segment the kernel splits again (TSO), for
TCP over IPv4 (TSO4) and over IPv6 (TSO6) alike.

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
TCPV4 (1), UDP (3, UFO), TCPV6 (4), UDP_L4 (5, USO), each possibly or'ed with ECN (0x80). The
kernel takes a TCPV4 super-segment only in an IPv4 packet and a TCPV6 one only in an IPv6 packet
(include/linux/virtio_net.h checks the type against the packet's protocol).

The partial checksum is the same rule in both families: the pseudo-header (RFC 9293 3.1 over
IPv4, RFC 8200 8.1 over IPv6) summed with the TCP length of the whole packet, folded, not
complemented; so completing it is one family-blind checksum from csum_start to the end.

What the kernel does with a super-segment we write (tcp_gso_segment): it cuts the data into
gso_size pieces, each with a copy of the IP and TCP headers (options included), the sequence
number advanced by the data before it, the length field of the IP header set for the piece (the
IPv4 total length, whose identification it also increments; the IPv6 payload length), and FIN
and PSH kept on the last piece only. `split_super_segment` below does the same, through the C cut
that the TUN link uses where it cuts in software (ustack/wire/segment.py, csrc/segment.c).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ..wire.checksum import (checksum_add, checksum_finish, internet_checksum, internet_checksum_of, pseudo_header_sum,
                             pseudo_header_sum6)
from ..wire.buffers import ChecksumKnownCopy, LinkBuffer, SegmentParts, copy_of
from ..wire.segment import cut_tcp_segment
from ..wire.ipv6 import JUMBO_HEADER_LENGTH, is_jumbogram
from ..compat import READ_ONLY_SLICES_COPY_BYTEWISE

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

# The IP header in front of the TCP header of a segment the link may join or hand over: IPv4
# without options (we send none), IPv6 without extension headers (we send none with TCP).
IPV4_HEADER = 20
IPV6_HEADER = 40
TCP_PROTOCOL = 6
TCP_CHECKSUM_OFFSET = 16  # where the checksum sits in the TCP header
ACK, PSH, FIN = 0x10, 0x08, 0x01
CWR, ECE = 0x80, 0x40  # ECN's TCP flags (RFC 3168 6.1)
# A super-segment stays within 65535 bytes in both families: IPv4's 16-bit total length, and the
# 64 KB the kernel's GRO and TSO build at most (IPv6's payload length could take 40 bytes more).
LARGEST_SUPER_SEGMENT = 65535
# Where TCP starts in an IPv6 jumbogram the Stack built past 64 KB (IPv6 BIG TCP: wire/ipv6.py).
JUMBO_TCP_START = IPV6_HEADER + JUMBO_HEADER_LENGTH
GSO_TYPE_OF = {IPV4_HEADER: GSO_TCPV4, IPV6_HEADER: GSO_TCPV6, JUMBO_TCP_START: GSO_TCPV6}  # by where TCP starts
SMALL_PACKET = 2048  # up to this length, packet_from_parts copies by slicing (measured: faster)
# From this length on, packet_from_parts hands over the buffer it was given instead of a copy (the
# caller reads the next frame into a new one). Below it, a copy: a short packet must not keep a
# 64 KB buffer alive for as long as anything holds it (a delayed packet, a held SYN's data).
HANDED_OVER_FROM = 32 * 1024
# Whether packet_from_parts hands over its buffer at all. Not on PyPy: what it hands over is a slice
# of a read-only view, which everything on PyPy reads one byte at a time (parse_packet's C call,
# the payload's os.writev into a file: compat.READ_ONLY_SLICES_COPY_BYTEWISE, 7 ms per 64 KB; an
# upload ran at 3.6 MB/s). There a packet from HANDED_OVER_FROM on is instead copied once into
# bytes and handed over as a read-only view of that copy, which PyPy slices and reads at memory
# speed, so the parser's payload is a view again rather than a second copy; the link keeps its
# buffer. The cost: that one copy (~10 us per 64 KB on PyPy); a copy whose TCP checksum is known
# says so by its class (ChecksumKnownCopy), so the parser leaves it unsummed as LinkBuffer's mark
# would; the link completes a partial one first.
HANDS_OVER_BUFFERS = not READ_ONLY_SLICES_COPY_BYTEWISE


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
    """The IP packet (IPv4 or IPv6) inside a frame read from the TUN device, with its checksum
    complete (packet_from_parts, for a frame that is one bytes object)."""
    return packet_from_parts(frame, bytearray(frame[HEADER_SIZE:]), len(frame) - HEADER_SIZE)


def packet_from_parts(header: bytes | bytearray, packet: bytearray, length: int) -> bytes | memoryview:
    """The IP packet in packet[:length], read from the TUN device behind the vnet `header`. The
    TUN link reads each frame straight into two preallocated buffers (os.readv) and calls this;
    `packet` is changed in place, and what lies past `length` (an earlier, longer frame) is never
    looked at.

    A packet shorter than HANDED_OVER_FROM comes back as bytes, a copy. A longer one (a
    super-segment) comes back as a read-only view of `packet` itself, which the caller must then
    never write again: the parser's payload is then a view too, and the only copy of the data on
    its way up is the one the receive buffer keeps (receive_buffer.py "Copies"), where bytes
    here cost one copy more of every byte of an upload (issue 12). (On PyPy, HANDS_OVER_BUFFERS
    is False: a read-only view of a copy of it in bytes, and `packet` stays the caller's.)

    A super-segment (gso_type TCPV4 or TCPV6) stays whole: the stack takes it as one segment, with
    one parse and one ACK decision.

    A partial checksum (NEEDS_CSUM), and what the parser is told (LinkBuffer, for a packet handed
    over in one; the TUN link reads into them):
    - vouched for: a TCP segment whose IP length is the frame's (the range the parser would sum),
      unfragmented, whose partial checksum sits at the TCP checksum field itself (csum_start where
      TCP starts, csum_offset 16). The kernel sets NEEDS_CSUM where the checksum is still to be
      made by whoever sends the packet on (a local socket's segment, or one offloaded so by the
      device it came from): no wire lay between. Handed over, it is left partial and marked `tcp_checksum_known` and
      `tcp_checksum_partial`: the parser does not sum it, and nothing in the stack reads the
      field; complete_checksum completes it for whatever looks at the bytes as a wire would (the
      pcap writer, the FaultInjector, the tracer, the live ladder). That saves the one C pass over
      up to 64 KB that completing it here cost for every super-segment of an upload;
    - anything else with NEEDS_CSUM (another offset, not TCP, a fragment, an IP length shorter
      than the frame, or a packet copied into bytes, which cannot be left partial) is completed
      here with the C checksum, so that everything above sees an ordinary packet; a handed-over
      one is then marked `tcp_checksum_known` where the vouched conditions hold but for the flag
      (DATA_VALID: the kernel says it verified it). The rest the parser checks in full.
    A super-segment copied on PyPy is a ChecksumKnownCopy where a handed-over one would have been
    marked `tcp_checksum_known` (vouched for, then completed here; or DATA_VALID), else bytes."""
    if length < 0 or len(header) < HEADER_SIZE:
        raise VnetDrop("vnet_header_truncated")
    flags, gso_type, _, gso_size, csum_start, csum_offset = HEADER.unpack_from(header)
    if flags & ~KNOWN_FLAGS:
        raise VnetDrop("vnet_unknown_flags")
    gso_type &= ~GSO_ECN
    if gso_type != GSO_NONE:
        if gso_type == GSO_TCPV4:
            if length < IPV4_HEADER or packet[0] >> 4 != 4 or packet[9] != TCP_PROTOCOL:
                raise VnetDrop("vnet_gso_not_tcp_over_ipv4")
        elif gso_type == GSO_TCPV6:
            # TCP straight after the fixed header: the kernel's TSO6 segments carry no extension
            # header, and a chain would make csum_start and hdr_len ours to walk for nothing.
            if length < IPV6_HEADER or packet[0] >> 4 != 6 or packet[6] != TCP_PROTOCOL:
                raise VnetDrop("vnet_gso_not_tcp_over_ipv6")
        elif gso_type in GSO_TYPE_NAMES:  # We offer TSO4 and TSO6 (TUNSETOFFLOAD); UFO/USO would be for UDP.
            raise VnetDrop(f"vnet_gso_{GSO_TYPE_NAMES[gso_type]}_not_supported")
        else:
            raise VnetDrop("vnet_unknown_gso_type")
        if gso_size == 0:
            raise VnetDrop("vnet_gso_size_zero")
    # Handed over in a LinkBuffer:
    marked = length >= HANDED_OVER_FROM and type(packet) is LinkBuffer and HANDS_OVER_BUFFERS
    if flags & NEEDS_CSUM:
        field = csum_start + csum_offset
        ip_header = IPV6_HEADER if length and packet[0] >> 4 == 6 else IPV4_HEADER
        if field + 2 > length or csum_start < ip_header:
            raise VnetDrop("vnet_checksum_out_of_range")
        if marked and _tcp_checksum_known(flags, packet, length, csum_start, csum_offset):
            packet.tcp_checksum_known = packet.tcp_checksum_partial = True  # left partial: see above
            return memoryview(packet).toreadonly()[:length]
        _store_checksum(packet, csum_start, field, length)
    if length <= SMALL_PACKET:
        return bytes(packet[:length])  # two small copies cost less than making a memoryview
    if length >= HANDED_OVER_FROM and HANDS_OVER_BUFFERS:
        if marked and flags & DATA_VALID:
            packet.tcp_checksum_known = _tcp_checksum_known(flags, packet, length, csum_start, csum_offset)
        return memoryview(packet).toreadonly()[:length]  # no copy: the buffer is handed over
    if length >= HANDED_OVER_FROM:  # (where HANDS_OVER_BUFFERS is False: PyPy)
        # One copy, and a view of it (see above); one whose TCP checksum is known (completed
        # above, the kernel vouching for it, or DATA_VALID) says so by its class. copy_of: the
        # bytes copied once, where bytes() of a slice copies them twice on PyPy.
        known = _tcp_checksum_known(flags, packet, length, csum_start, csum_offset)
        return memoryview(copy_of(packet, length, ChecksumKnownCopy if known else bytes))
    with memoryview(packet) as view:
        return bytes(view[:length])  # one copy


def complete_checksum(packet):
    """`packet` as a wire would carry it, in one piece with its TCP checksum complete: the one
    place a partial checksum is completed, in place, once. That is a partial checksum that
    packet_from_parts left in a handed-over buffer (LinkBuffer.tcp_checksum_partial), and a
    segment the stack built partial, SegmentParts, which is first joined into one such buffer
    (SegmentParts.joined: one copy, kept, so that every call gives the same object); anything
    else is returned untouched at the cost of a type check. Called by whatever reads a packet's
    bytes as they would be on a wire (the pcap writer, the FaultInjector before it copies or
    drops a packet, the tracer, the live ladder's WireWatch, a link cutting a segment in
    software); the stack's parser never needs it. In place rather than on a copy: a received
    packet stays the same object (a WireWatch matches a dropped packet to its arrival by it), and
    each later reader finds the work done."""
    if type(packet) is SegmentParts:
        packet = packet.joined()
    if type(packet) is memoryview:
        buffer = packet.obj
        if type(buffer) is LinkBuffer and buffer.tcp_checksum_partial:
            # packet_from_parts vouched for it: a TCP segment right behind the IP header, whose IP
            # length is the packet's length, the checksum at the TCP checksum field.
            # (a BIG TCP packet says 0, its length being the packet's: an IPv4 one's Total Length,
            # an IPv6 jumbogram's Payload Length, whose TCP starts past its hop-by-hop header)
            if buffer[0] >> 4 == 6:
                if is_jumbogram(buffer, len(packet)):
                    tcp_start, length = JUMBO_TCP_START, len(packet)
                else:
                    tcp_start, length = IPV6_HEADER, IPV6_HEADER + (buffer[4] << 8 | buffer[5])
            else:
                tcp_start, length = (buffer[0] & 0x0F) * 4, buffer[2] << 8 | buffer[3] or len(packet)
            _store_checksum(buffer, tcp_start, tcp_start + TCP_CHECKSUM_OFFSET, length)
            buffer.tcp_checksum_partial = False
    return packet


def completed_parts(packet: SegmentParts) -> list:
    """A segment built with its checksum partial (SegmentParts) as a device without offloads
    takes it, in one writev: [its headers with the TCP checksum completed, its payload]. The sum
    is made over the parts where they lie: a copy of the headers alone, no join (joining a 64 KB
    payload cost more than the checksum pass itself, which a packet built whole makes too). One
    that an observer has joined already (complete_checksum) is written joined and complete.
    The same completion as complete_checksum's: the partial sum in the field is part of what is
    summed (NEEDS_CSUM, see the module docstring)."""
    if packet.was_joined:
        return [complete_checksum(packet)]
    headers = bytearray(packet.headers)
    tcp_start = IPV6_HEADER if headers[0] >> 4 == 6 else (headers[0] & 0x0F) * 4
    # (IP and TCP headers have even lengths, so the payload's words line up behind them: RFC 1071)
    checksum = checksum_finish(checksum_add(checksum_add(0, memoryview(headers)[tcp_start:]), packet.payload))
    field = tcp_start + TCP_CHECKSUM_OFFSET
    headers[field] = checksum >> 8
    headers[field + 1] = checksum & 0xFF
    return [headers, packet.payload]


def _store_checksum(packet: bytearray, csum_start: int, field: int, length: int) -> None:
    """Completes a partial checksum in place: packet[csum_start:length] summed (the partial sum in
    the field included, see the module docstring), stored big-endian at `field`."""
    checksum = internet_checksum_of(packet, csum_start, length)
    packet[field] = checksum >> 8
    packet[field + 1] = checksum & 0xFF


def _tcp_checksum_known(flags: int, packet: bytearray, length: int, csum_start: int, csum_offset: int) -> bool:
    """Whether the TCP checksum of the packet in packet[:length] is known to be right, from the
    vnet header's flags (packet_from_parts says when; the parser then does not sum it again)."""
    version = packet[0] >> 4
    if version == 4:
        tcp_start = (packet[0] & 0x0F) * 4
        if packet[9] != TCP_PROTOCOL or (packet[2] << 8 | packet[3]) != length or packet[6] & 0x3F or packet[7]:
            return False  # not TCP, not the range the parser sums, or a fragment (summed after reassembly)
    elif version == 6:
        tcp_start = IPV6_HEADER
        if packet[6] != TCP_PROTOCOL or IPV6_HEADER + (packet[4] << 8 | packet[5]) != length:
            return False
    else:
        return False
    if flags & NEEDS_CSUM:
        return csum_start == tcp_start and csum_offset == TCP_CHECKSUM_OFFSET
    return bool(flags & DATA_VALID)


# ------------------------------------------------------------------------------------------------
# Sending: coalescing our segments into super-segments
# ------------------------------------------------------------------------------------------------
class Coalescer:
    """Joins consecutive in-order TCP segments of one connection into one super-segment, which
    the kernel cuts back into exactly those segments (TSO, gso_size = the first one's length).

        coalescer = Coalescer()
        for packet in packets:
            for parts in coalescer.add_parts(packet):   # frames to write now (vnet header first)
                os.writev(fd, parts)
        for parts in coalescer.flush_parts():           # end of the round: the last super-segment
            os.writev(fd, parts)

    add() and flush() give the same frames joined into bytes.

    Segments join when: same family, addresses and ports, no IP options or extension headers, the
    sequence number follows on, every header field but the lengths, the IPv4 identification, the
    sequence number, flags and checksums is equal (traffic class and flow label, ACK, window,
    options with the timestamps and SACK blocks), no SYN/RST/URG/ECN flags, every piece but the
    last is exactly gso_size long and the last is not longer, and no piece before the last
    carries PSH or FIN. So nothing the core decided changes on the wire: the peer receives the
    same segments it would have received one by one. `ipv6=False` leaves IPv6 segments alone
    (a kernel that refused TSO6)."""

    def __init__(self, ipv6: bool = True) -> None:
        self.ipv6 = ipv6
        self._first: bytes | None = None  # the first packet of the run being built
        self._pieces: list[memoryview] = []  # the payloads so far (views into the packets)
        self._length = 0  # their total
        self._next_seq = 0
        self._last_flags = 0
        self._tcp_start = 0  # 20 over IPv4, 40 over IPv6
        self._header_length = 0
        self.super_segments = 0  # counters for stats
        self.segments_joined = 0

    def add(self, packet: bytes) -> list[bytes]:
        """Frames to write now, in order; `packet` itself is held while its run may still grow.
        A piece with PSH or FIN ends its run, so that run goes out at once: a reply (an echo, the
        end of an HTTP answer) is written when the core makes it, not at the end of the round."""
        return [b"".join(parts) for parts in self.add_parts(packet)]

    def flush(self) -> list[bytes]:
        return [b"".join(parts) for parts in self.flush_parts()]

    def add_parts(self, packet: bytes) -> list[list]:
        """add(), each frame as the list of buffers it is made of (for os.writev: the payloads
        are not copied into one frame first)."""
        if type(packet) is SegmentParts:
            # A segment built with its checksum partial that the MTU carries whole (a large MTU):
            # it joins no run (it is never MSS-sized at MTU 1500), and goes as it is.
            out = self.flush_parts() if self._first is not None else []
            out.append(partial_packet_parts(packet))
            return out
        if self._first is not None and self._joins(packet):
            self._append(packet)
            return self.flush_parts() if self._last_flags & (PSH | FIN) else []
        out = self.flush_parts() if self._first is not None else []  # (most packets: no run is held)
        tcp_start = tcp_start_if_joinable(packet)
        if (tcp_start == IPV4_HEADER or (tcp_start and self.ipv6)) and not packet[tcp_start + 13] & (PSH | FIN):
            self._start(packet, tcp_start)
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

    def _start(self, packet: bytes, tcp_start: int) -> None:
        header_length = tcp_start + (packet[tcp_start + 12] >> 4) * 4
        self._first = packet
        self._tcp_start = tcp_start
        self._header_length = header_length
        payload = memoryview(packet)[header_length:]  # a view: written out by writev, not copied
        self._pieces = [payload]
        self._length = len(payload)
        self._next_seq = (int.from_bytes(packet[tcp_start + 4:tcp_start + 8], "big") + len(payload)) & 0xFFFFFFFF
        self._last_flags = packet[tcp_start + 13]

    def _joins(self, packet: bytes) -> bool:
        first = self._first
        t = self._tcp_start
        header_length = self._header_length
        gso_size = len(self._pieces[0])
        if (
            self._last_flags != ACK  # a PSH or FIN ends a run: the kernel keeps them on the last piece
            or self._length % gso_size
            or tcp_start_if_joinable(packet) != t
            or packet[t + 12] != first[t + 12]  # same TCP header length
        ):
            return False
        payload_length = len(packet) - header_length
        if payload_length > gso_size or header_length + self._length + payload_length > LARGEST_SUPER_SEGMENT:
            return False
        if t == IPV4_HEADER:
            # TOS; DF, TTL, protocol; addresses and ports (the length, identification and header
            # checksum are the kernel's to set for each piece).
            same_ip = packet[1] == first[1] and packet[6:10] == first[6:10] and packet[12:t + 4] == first[12:t + 4]
        else:
            # Version, traffic class, flow label; next header, hop limit; addresses and ports.
            same_ip = packet[:4] == first[:4] and packet[6:t + 4] == first[6:t + 4]
        return (
            same_ip
            and int.from_bytes(packet[t + 4:t + 8], "big") == self._next_seq
            # ACK number and header length; window; urgent pointer and options (flags other than
            # PSH/FIN were checked by tcp_start_if_joinable).
            and packet[t + 8:t + 13] == first[t + 8:t + 13]
            and packet[t + 14:t + 16] == first[t + 14:t + 16]
            and packet[t + 18:header_length] == first[t + 18:header_length]
        )

    def _append(self, packet: bytes) -> None:
        payload = memoryview(packet)[self._header_length:]
        self._pieces.append(payload)
        self._length += len(payload)
        self._next_seq = (self._next_seq + len(payload)) & 0xFFFFFFFF
        self._last_flags = packet[self._tcp_start + 13]

    def _frame_parts(self) -> list:
        first = self._first
        if len(self._pieces) == 1:
            return [PLAIN_BYTES, first]
        t, header_length = self._tcp_start, self._header_length
        tcp_length = header_length - t + self._length
        ip = _ip_header_for(first, t, tcp_length)
        tcp = bytearray(first[t:header_length])
        tcp[13] = self._last_flags  # FIN and PSH of the last piece (the kernel keeps them there)
        # A partial checksum (NEEDS_CSUM); the kernel adds the rest for each piece.
        tcp[16:18] = _partial_checksum(first, t, tcp_length)
        self.super_segments += 1
        self.segments_joined += len(self._pieces)
        header = VnetHeader(NEEDS_CSUM, GSO_TYPE_OF[t], header_length, len(self._pieces[0]), t, TCP_CHECKSUM_OFFSET)
        return [HEADER.pack(*header), ip, tcp, *self._pieces]


def large_segment_frame(packet: bytes, mtu: int, other_flags: int = 0) -> bytes | None:
    """The frame for one TCP segment larger than the MTU that the core built itself
    (TcpConfig.offload_segments), over IPv4 or IPv6: the kernel cuts it into pieces of the MTU
    minus its headers (IP, TCP and TCP options), which is the connection's segment size (the
    Stack allows such segments only then). None if the packet is not a TCP segment this link may
    hand over that way."""
    parts = large_segment_parts(packet, mtu, other_flags)
    return None if parts is None else b"".join(parts)


def large_segment_parts(packet: bytes, mtu: int, other_flags: int = 0,
                        largest: int = LARGEST_SUPER_SEGMENT) -> list | None:
    """large_segment_frame as the buffers it is made of, the payload not copied (os.writev).
    `largest`: the longest packet the device takes (TunLink.gso_max_size: past 64 KB, BIG TCP;
    an IPv6 one is a jumbogram, whose TCP starts past its hop-by-hop header).

    A packet the stack built with its checksum already partial (codec.build_tcp_packet:
    SegmentParts) goes as its parts, the headers and the payload (whose checksum an observer's
    complete_checksum completed in a joined copy, not in the headers); a partial LinkBuffer (a
    received super-segment passed on) as it is; any other gets the partial checksum in a part of
    its own (one that an observer completed, complete_checksum, included)."""
    t = tcp_start_if_joinable(packet, other_flags)
    if not t or len(packet) > largest:
        return None
    header_length = t + (packet[t + 12] >> 4) * 4
    # The header's fields in VnetHeader's order, packed without making one (this runs for every
    # large segment: a bulk download's whole send path). The pieces' data: the MTU less their
    # headers, which for a jumbogram's pieces leave its hop-by-hop header out (the kernel drops it
    # before it cuts: the pieces are ordinary packets).
    header = HEADER.pack(NEEDS_CSUM, GSO_TYPE_OF[t], header_length,
                         mtu - header_length + (JUMBO_HEADER_LENGTH if t == JUMBO_TCP_START else 0), t,
                         TCP_CHECKSUM_OFFSET)
    if type(packet) is SegmentParts:
        return [header, packet.headers, packet.payload]
    if type(packet) is memoryview and type(packet.obj) is LinkBuffer and packet.obj.tcp_checksum_partial:
        return [header, packet]
    checksum = t + TCP_CHECKSUM_OFFSET
    return [header, packet[:checksum], _partial_checksum(packet, t, len(packet) - t), memoryview(packet)[checksum + 2:]]


def tcp_start_if_joinable(packet: bytes, other_flags: int = 0) -> int:
    """Where the TCP header starts (20 or 40) if `packet` is a TCP segment the kernel may cut or
    that may join a super-segment: over IPv4 without options and unfragmented, or over IPv6 with
    TCP straight after the fixed header; carrying data; flags ACK with at most PSH and FIN (and
    `other_flags`). 0 if it is not."""
    length = len(packet)
    if length <= IPV6_HEADER:
        return 0
    head = packet.headers if type(packet) is SegmentParts else packet  # (where the fields below are)
    first = head[0]
    if first == 0x45:
        if head[9] != TCP_PROTOCOL or head[6] & 0x3F or head[7]:  # a fragment offset or MF
            return 0
        t = IPV4_HEADER
    elif first >> 4 == 6 and head[6] == TCP_PROTOCOL and length > IPV6_HEADER + 20:
        t = IPV6_HEADER
    elif first >> 4 == 6 and is_jumbogram(head, length) and head[IPV6_HEADER] == TCP_PROTOCOL:
        t = JUMBO_TCP_START
    else:
        return 0
    if head[t + 13] & ~(PSH | FIN | other_flags) != ACK or length <= t + (head[t + 12] >> 4) * 4:
        return 0
    return t


def partial_packet_parts(packet: SegmentParts) -> list:
    """The frame, as the buffers it is made of (os.writev), for a segment the stack built with its
    checksum partial that the link's MTU carries whole: no segmentation (GSO_NONE), NEEDS_CSUM at
    the TCP checksum field. The kernel completes the checksum if the packet leaves the machine,
    and a local socket takes it without one (CHECKSUM_PARTIAL), as from a local sender."""
    headers = packet.headers
    t = IPV6_HEADER if headers[0] >> 4 == 6 else IPV4_HEADER  # (the stack builds no IP options)
    return [HEADER.pack(NEEDS_CSUM, GSO_NONE, len(headers), 0, t, TCP_CHECKSUM_OFFSET), headers, packet.payload]


def _ip_header_for(packet: bytes, tcp_start: int, tcp_length: int) -> bytes:
    """`packet`'s IP header with its length field set for `tcp_length` bytes of TCP; over IPv4
    also the header checksum made again."""
    ip = bytearray(packet[:tcp_start])
    if tcp_start == IPV6_HEADER:
        ip[4:6] = tcp_length.to_bytes(2, "big")
        return bytes(ip)
    ip[2:4] = (IPV4_HEADER + tcp_length).to_bytes(2, "big")
    ip[10:12] = b"\0\0"
    ip[10:12] = internet_checksum(bytes(ip)).to_bytes(2, "big")
    return bytes(ip)


# The pseudo-header sum of TCP with length 0 between an address pair, by the pair's bytes as they
# stand in the IP header: a connection sends from one pair, so the sum is worked out once, and
# each segment only adds its length (ones' complement addition is associative: folding the sum
# and then adding the length gives the same field). Bounded: cleared when full.
_ADDRESS_SUMS: dict[bytes, int] = {}
_ADDRESS_SUMS_KEPT = 1024


def _partial_checksum(packet: bytes, tcp_start: int, tcp_length: int) -> bytes:
    """The TCP checksum field of a partial checksum: the pseudo-header sum of `packet`'s family
    for `tcp_length` bytes of TCP, folded, not complemented (see the module docstring)."""
    # bytes, to be a key: a slice of a memoryview is none (a large segment built partial, which
    # an observer completed: codec.build_tcp_packet); bytes() of a bytes slice is that slice.
    addresses = bytes(packet[8:40] if tcp_start == IPV6_HEADER else packet[12:20])
    partial = _ADDRESS_SUMS.get(addresses)
    if partial is None:
        if tcp_start == IPV6_HEADER:
            partial = pseudo_header_sum6(addresses[:16], addresses[16:], TCP_PROTOCOL, 0)
        else:
            partial = pseudo_header_sum(int.from_bytes(addresses[:4], "big"), int.from_bytes(addresses[4:], "big"),
                                        TCP_PROTOCOL, 0)
        if len(_ADDRESS_SUMS) >= _ADDRESS_SUMS_KEPT:
            _ADDRESS_SUMS.clear()
        _ADDRESS_SUMS[addresses] = partial
    return _fold(partial + tcp_length).to_bytes(2, "big")


def _fold(value: int) -> int:
    while value >> 16:
        value = (value & 0xFFFF) + (value >> 16)
    return value


def split_super_segment(frame: bytes) -> list[bytes]:
    """What the kernel makes of a frame we write: the packets the peer receives, each with both
    checksums complete (tcp_gso_segment and inet_gso_segment / ipv6_gso_segment). The cut itself
    is ustack.wire.segment.cut_tcp_segment (C), which the TUN link also uses where it cuts in
    software; this reads the frame's vnet header for it, for the tests."""
    header = parse_vnet_header(frame)
    packet = frame[HEADER_SIZE:]
    if header.gso_type == GSO_NONE:
        if header.flags & NEEDS_CSUM:
            return [packet_from_kernel(frame)]
        return [packet]
    t = header.csum_start
    header_length = t + (packet[t + 12] >> 4) * 4
    pieces = cut_tcp_segment(packet, header_length + header.gso_size)
    if pieces is None:
        raise VnetDrop("vnet_gso_not_a_tcp_segment")
    return [bytes(piece) for piece in pieces]

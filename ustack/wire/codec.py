"""Bytes <-> typed packets: the Python face of the C wire layer (csrc/, through cffi).

    parse_packet(packet) -> Packet                 one C call: IPv4 or IPv6 (by the version nibble),
                                                   then TCP, ICMP or ICMPv6, with their checksums
    build_tcp_packet(src, dst, segment) -> bytes   one C call: IP + TCP headers, options, data;
                                                   IPv6 when src and dst are 16-byte addresses
    build_icmp_packet(src, dst, message) -> bytes  one C call (build_icmp6_packet for ICMPv6)
    build_ipv4_packet(header, payload) -> bytes    any other payload (fragments, UDP, test packets)
    build_ipv6_packet(header, payload) -> bytes    the same for IPv6 (extension headers in payload)
    tcp_options_length(options) -> int             the option bytes a segment will carry

How it stays fast (the stack calls these for every packet): `bytes` go straight to the C
`const uint8_t *` parameters without a copy; C writes every parsed field into one preallocated
struct (one per caller at a time, see _Scratch), which Python reads with two struct.unpack_from calls; the NamedTuples are made with
tuple.__new__, skipping their Python-level __new__; TcpOptions that repeat are reused. The struct
formats below mirror the C structs in csrc/wire.h field for field (tests/wire/test_wire_layout.py
checks them against cffi). Figures: scripts/bench_wire.py.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ._wire import ffi, lib
from .checksum import checksum_add, checksum_finish, internet_checksum, pseudo_header_sum
from .buffers import ChecksumKnownCopy, LinkBuffer, SegmentParts
from .errors import WireError
from .icmp import DESTINATION_UNREACHABLE, IcmpMessage, QuotedTcp
from .icmpv6 import PACKET_TOO_BIG, PARAMETER_PROBLEM, Icmpv6Message
from .ipv4 import Ipv4Header
from .ipv6 import IPV6_HEADER_LENGTH, Ipv6Header
from .reasons import BUILD_BAD_FIELD, REASON_NAMES
from .segment import AckRun
from .tcp import NO_OPTIONS, AckRunSegment, TcpOptions, TcpSegment


class Packet(NamedTuple):
    """One validated IPv4 or IPv6 packet.

    `ip` is an Ipv4Header or an Ipv6Header: `packet.ip.version` (4 or 6) tells the family, and both
    have `src`, `dst` and `protocol`, so TCP is demultiplexed alike. `tcp` is set for an unfragmented
    TCP packet of either family, `icmp` for an unfragmented ICMP (IcmpMessage) or ICMPv6
    (Icmpv6Message) packet, and `payload` is then the TCP data or the ICMP data. For a fragment or
    another protocol both are None and `payload` is the IP payload after the headers the parser
    walked (IPv6: the data after the extension headers, or after the fragment header).
    """

    ip: Ipv4Header | Ipv6Header
    tcp: TcpSegment | None
    icmp: IcmpMessage | Icmpv6Message | None
    payload: bytes


_new = tuple.__new__


# --- parse ----------------------------------------------------------------------------------------
# C fills one struct ustack_packet_fields; Python reads it with two struct.unpack_from calls, one for
# the IP header and one for what follows it. The formats mirror csrc/wire.h field for field ('x'
# skips a byte Python does not need; tests/wire/test_wire_layout.py checks them against cffi).
_IP_HEADER = struct.Struct("=IIBBHH??HBB")  # struct ustack_ipv4_fields, in Ipv4Header order
# After it: transport, payload_offset, payload_length; the first seven fields of TcpSegment (with
# the TCP header_length between flags and window skipped); then the option fields, from
# options_present to ts_ecr, as 14 raw bytes: the key of the TcpOptions cache below.
_AFTER_IP = struct.Struct("=BB2xII" "HHIIBxHH" "14s")
_OPTION_VALUES = struct.Struct("=BBHBxII")  # those 14 bytes: present bits, window scale, MSS, SACK count, TSval, TSecr
_SACK = struct.Struct("=8I")
_ICMP = struct.Struct("=BBHHHBBxx" + _IP_HEADER.format[1:] + "HHI")  # struct ustack_icmp_fields
_IP6_HEADER = struct.Struct("=16s16sBBHIB??xHHI")  # struct ustack_ipv6_fields, in Ipv6Header order
_ICMP6 = struct.Struct("=BBHHBBII" + _IP6_HEADER.format[1:] + "HHI")  # struct ustack_icmp6_fields

_AFTER_IP_OFFSET = ffi.offsetof("struct ustack_packet_fields", "transport")
_TCP_OFFSET = ffi.offsetof("struct ustack_packet_fields", "tcp")
_OPTIONS_OFFSET = _TCP_OFFSET + ffi.offsetof("struct ustack_tcp_fields", "options_present")
_SACK_OFFSET = _TCP_OFFSET + ffi.offsetof("struct ustack_tcp_fields", "sack_blocks")
_ICMP_OFFSET = ffi.offsetof("struct ustack_packet_fields", "icmp")
_IP6_OFFSET = ffi.offsetof("struct ustack_packet_fields", "ip6")
_ICMP6_OFFSET = ffi.offsetof("struct ustack_packet_fields", "icmp6")

_OPTION_MSS = lib.USTACK_OPTION_MSS
_OPTION_WINDOW_SCALE = lib.USTACK_OPTION_WINDOW_SCALE
_OPTION_SACK_PERMITTED = lib.USTACK_OPTION_SACK_PERMITTED
_OPTION_TIMESTAMPS = lib.USTACK_OPTION_TIMESTAMPS
_TRANSPORT_TCP = lib.USTACK_TRANSPORT_TCP
_TRANSPORT_ICMP = lib.USTACK_TRANSPORT_ICMP
_TRANSPORT_ICMPV6 = lib.USTACK_TRANSPORT_ICMPV6

# Room for the largest IPv6 packet: a 40-byte header before 65,535 bytes of payload.
_MAX_PACKET = 65535
_OUT_CAPACITY = _MAX_PACKET + 128


class _Scratch:
    """The structs and the output buffer this module hands to C: each call borrows a set from
    `_idle` and gives it back, so no two calls ever share one.

    cffi releases the GIL around every C call, so two threads (two sock.Network hosts in one
    process each drive their stack from a thread of their own) parse and build at the same moment.
    With one shared set, one thread read the other's fields: its own payload sliced at the other
    packet's offset, under its own sequence number, after both checksums had passed; a stream
    then carried wrong bytes (tests/wire/test_codec_threads.py). list.pop and list.append are
    each one step under the GIL, so a borrowed set belongs to its call alone, without a lock or
    a thread-local (the sans-IO layers import no threading, DESIGN.md rule 1). There are as many
    sets as calls ever ran at once: one per thread at most, about 66 KiB each, mostly the
    output buffer."""

    __slots__ = ("parse", "build", "ip_fields", "ip_fields_buffer", "ip6_fields", "ip6_fields_buffer")

    def __init__(self) -> None:
        fields = ffi.new("struct ustack_packet_fields *")
        spec = ffi.new("struct ustack_tcp_spec *")
        out = ffi.new(f"uint8_t[{_OUT_CAPACITY}]")
        # Grouped as each hot path uses them: one attribute look-up per call.
        self.parse = (fields, ffi.buffer(fields))
        self.build = (spec, ffi.buffer(spec), out, ffi.buffer(out))
        self.ip_fields = ffi.new("struct ustack_ipv4_fields *")
        self.ip_fields_buffer = ffi.buffer(self.ip_fields)
        self.ip6_fields = ffi.new("struct ustack_ipv6_fields *")
        self.ip6_fields_buffer = ffi.buffer(self.ip6_fields)


_idle: list[_Scratch] = [_Scratch()]  # the sets no call holds
_take = _idle.pop
_give_back = _idle.append


def _borrow() -> _Scratch:
    """A set of structs for this call alone (a new one if every set is in use: another thread
    is in this module right now). Give it back with _give_back, in a `finally`."""
    try:
        return _take()
    except IndexError:
        return _Scratch()


_parse = lib.ustack_parse_packet
_parse_tcp_checksum_known = lib.ustack_parse_packet_tcp_checksum_known
_from_buffer = ffi.from_buffer
_BYTES = (bytes, ChecksumKnownCopy)  # bytes as cffi passes them to C: in place
_read_ip_header = _IP_HEADER.unpack_from
_read_after_ip = _AFTER_IP.unpack_from
_read_ip6_header = _IP6_HEADER.unpack_from

# TcpOptions values already made, by their option bytes. Segments of one flow mostly repeat the
# same options (the timestamps change about once a millisecond), so this saves making the same
# NamedTuple again for each. Segments with SACK blocks are not cached.
_options_made: dict[bytes, TcpOptions] = {}
_OPTIONS_REMEMBERED = 256


def parse_packet(packet: bytes) -> Packet:
    """Validates one IPv4 or IPv6 packet and returns it typed, or raises WireError(reason).

    The payload is a slice of `packet`, so it has its type: pass bytes to get bytes; pass a
    memoryview to get memoryview payloads that share the packet's memory instead of copying it
    (worth it for large packets: copying 64 KiB costs more than checksumming it). A read-only view
    of a LinkBuffer whose link knows the TCP checksum is right is parsed without summing the
    segment again (LinkBuffer says when), and so is a view of a whole ChecksumKnownCopy;
    everything else is checked in full. SegmentParts (a
    stack's own large segment, handed to another stack directly) is read joined (its joined()).
    """
    # Every packet goes through here, so this function is written for speed (scripts/bench_wire.py).
    # Where the time goes for a 1,460-byte segment, measured by taking the steps out one at a time
    # (ns, 2-core Xeon VM, about 980 in all): the C call 185, of which the checks and both
    # checksums are about 30 and the rest is cffi's argument handling; the two unpacks with the
    # ints they make 250; copying the payload out of `packet` 110; each of the three NamedTuples
    # about 95; the rest 120. Hence: one C call, two unpacks, the NamedTuples made with
    # tuple.__new__ (their Python-level __new__ is twice as slow), and the fields kept in local
    # variables rather than sliced out of a tuple (each slice makes one more tuple). Borrowing this
    # call's set of structs (_Scratch) costs about 40 more.
    try:
        scratch = _take()  # inlined _borrow(): this call's structs, C writes them with the GIL released
    except IndexError:
        scratch = _Scratch()
    try:
        fields, fields_buffer = scratch.parse
        acks = 1
        if type(packet) is bytes:
            reason = _parse(packet, len(packet), fields)  # cffi hands C the bytes' own memory
        else:
            if type(packet) is SegmentParts:
                # One stack's segment handed straight to another (tests, a simulator): read in one
                # piece, its checksum partial and known, as a received super-segment's.
                packet = packet.joined()
            if type(packet) is memoryview and type(packet.obj) is LinkBuffer and packet.obj.tcp_checksum_known \
                    and packet.readonly:
                reason = _parse_tcp_checksum_known(_from_buffer(packet), len(packet), fields)  # LinkBuffer says why
            elif type(packet) is memoryview and type(packet.obj) in _BYTES and len(packet) == len(packet.obj):
                # A view of a whole bytes object (the TUN link's copy of a super-segment, on PyPy):
                # C is handed the bytes object, which cffi passes where it lies (pinned, on PyPy),
                # where ffi.from_buffer of the view moved it out of PyPy's nursery first, a copy
                # (compat.FROM_BUFFER_MOVES_YOUNG_BYTES). The payload is still sliced from the view.
                if type(packet.obj) is ChecksumKnownCopy:
                    reason = _parse_tcp_checksum_known(packet.obj, len(packet), fields)  # ChecksumKnownCopy says why
                else:
                    reason = _parse(packet.obj, len(packet), fields)
            else:
                reason = _parse(_from_buffer(packet), len(packet), fields)
                if type(packet) is AckRun:
                    acks = packet.acks
        if reason:
            raise WireError(REASON_NAMES[reason])
        (transport, version, payload_offset, payload_length,
         src_port, dst_port, seq, ack, flags, window, urgent_pointer, option_bytes) = _read_after_ip(
            fields_buffer, _AFTER_IP_OFFSET)  # fmt: skip
        payload = packet[payload_offset : payload_offset + payload_length]
        ip: Ipv4Header | Ipv6Header
        if version == 4:
            ip = _new(Ipv4Header, _read_ip_header(fields_buffer))
        else:
            ip = _new(Ipv6Header, _read_ip6_header(fields_buffer, _IP6_OFFSET))
        if transport == _TRANSPORT_TCP:
            try:
                options = _options_made[option_bytes]
            except KeyError:
                options = _tcp_options(option_bytes, fields_buffer)
            if flags & _SYN and payload_offset and fields.tcp.header_length > 20:
                # A Fast Open option (RFC 7413 4.1.1) rides only on a SYN, which C skips as unknown.
                options = _with_fast_open(options, packet, payload_offset, fields.tcp.header_length)
            segment = _new(TcpSegment, (src_port, dst_port, seq, ack, flags, window, urgent_pointer, options, payload))
            if acks != 1:  # the last ACK of a run the link thinned (segment.py)
                segment = _new(AckRunSegment, segment)
                segment.acks = acks
            return _new(Packet, (ip, segment, None, payload))
        if transport == _TRANSPORT_ICMP:
            return _new(Packet, (ip, None, _icmp_message(payload, fields_buffer), payload))
        if transport == _TRANSPORT_ICMPV6:
            return _new(Packet, (ip, None, _icmp6_message(payload, fields_buffer), payload))
        return _new(Packet, (ip, None, None, payload))
    finally:
        _give_back(scratch)


def _tcp_options(option_bytes: bytes, fields_buffer) -> TcpOptions:
    """The TcpOptions for the option fields C wrote into `fields_buffer` (a cache miss in
    parse_packet)."""
    present, window_scale, mss, sack_count, ts_val, ts_ecr = _OPTION_VALUES.unpack(option_bytes)
    if sack_count:  # SACK blocks change with every segment: not worth remembering
        edges = _SACK.unpack_from(fields_buffer, _SACK_OFFSET)
        sack_blocks = tuple((edges[2 * i], edges[2 * i + 1]) for i in range(sack_count))
    else:
        sack_blocks = ()
    if not present and not sack_blocks:
        options = NO_OPTIONS
    else:
        # Every field in order, through tuple.__new__ as parse_packet makes its tuples: a miss is
        # common (each new TSval is one, about every millisecond of a flow, and every SYN).
        options = _new(TcpOptions, (
            mss if present & _OPTION_MSS else None,
            window_scale if present & _OPTION_WINDOW_SCALE else None,
            bool(present & _OPTION_SACK_PERMITTED),
            sack_blocks,
            (ts_val, ts_ecr) if present & _OPTION_TIMESTAMPS else None,
            None,  # fast_open: read around the C call (_with_fast_open)
            False,
        ))
    if not sack_count:
        if len(_options_made) >= _OPTIONS_REMEMBERED:
            _options_made.clear()
        _options_made[option_bytes] = options
    return options


# --- TCP Fast Open (RFC 7413 4.1.1) ------------------------------------------------------------------
# The C layer parses and builds the options it knows and skips the others (RFC 9293 3.2). The Fast
# Open option appears only on SYNs, which are rare, so Python reads and writes it around the C call:
# parse_packet looks for it in the options of a SYN; build_tcp_packet splices it behind the options
# C wrote.
FAST_OPEN_KIND = 34  # RFC 7413 4.1.1
EXPERIMENTAL_KIND = 254  # RFC 6994: the shared experimental kind, told apart by a magic number
FAST_OPEN_MAGIC = b"\xf9\x89"  # the one Fast Open used before kind 34 was assigned
FAST_OPEN_MAX_COOKIE = 16  # RFC 7413 4.1.1: a cookie is 4 to 16 bytes (0: a request)
_SYN = 0x02


def _with_fast_open(options: TcpOptions, packet, payload_offset: int, header_length: int) -> TcpOptions:
    """`options` with the Fast Open option of the raw header, if there is a well-formed one. A
    malformed one is ignored like any unknown option; C has already checked the lengths."""
    area = bytes(packet[payload_offset - header_length + 20 : payload_offset])
    if FAST_OPEN_KIND not in area and EXPERIMENTAL_KIND not in area:
        return options  # neither kind's byte anywhere: no Fast Open option (nearly every SYN)
    position = 0
    while position + 1 < len(area):
        kind = area[position]
        if kind == 0:
            break
        if kind == 1:
            position += 1
            continue
        length = area[position + 1]
        body = area[position + 2 : position + length]
        if kind == FAST_OPEN_KIND and len(body) <= FAST_OPEN_MAX_COOKIE:
            return options._replace(fast_open=body, fast_open_experimental=False)
        if kind == EXPERIMENTAL_KIND and body[:2] == FAST_OPEN_MAGIC and len(body) - 2 <= FAST_OPEN_MAX_COOKIE:
            return options._replace(fast_open=body[2:], fast_open_experimental=True)
        position += max(length, 2)
    return options


def fast_open_option_bytes(cookie: bytes, experimental: bool = False) -> bytes:
    """The Fast Open option on the wire (an empty cookie is a cookie request)."""
    if experimental:
        return bytes((EXPERIMENTAL_KIND, 4 + len(cookie))) + FAST_OPEN_MAGIC + cookie
    return bytes((FAST_OPEN_KIND, 2 + len(cookie))) + cookie


def _splice_fast_open(packet: bytes, options: TcpOptions) -> bytes:
    """A packet C built, with the Fast Open option added behind its options (NOP-padded to 32
    bits, as Linux lays it out), lengths and checksums made right again."""
    extra = fast_open_option_bytes(options.fast_open or b"", options.fast_open_experimental)
    extra += b"\x01" * (-len(extra) % 4)
    ipv6 = packet[0] >> 4 == 6
    ip_length = IPV6_HEADER_LENGTH if ipv6 else (packet[0] & 0x0F) * 4
    tcp_length = (packet[ip_length + 12] >> 4) * 4
    if tcp_length + len(extra) > 60:
        raise WireError(BUILD_BAD_FIELD, "the Fast Open option does not fit in 40 bytes of options")
    header = bytearray(packet[: ip_length + tcp_length] + extra)
    segment_length = len(packet) - ip_length + len(extra)
    if ipv6:
        struct.pack_into("!H", header, 4, segment_length)
        partial = checksum_add(checksum_add(0, bytes(header[8:40])), struct.pack("!IxxxB", segment_length, 6))
    else:
        struct.pack_into("!H", header, 2, ip_length + segment_length)
        struct.pack_into("!H", header, 10, 0)
        struct.pack_into("!H", header, 10, internet_checksum(bytes(header[:ip_length])))
        source, destination = struct.unpack_from("!II", header, 12)
        partial = pseudo_header_sum(source, destination, 6, segment_length)
    header[ip_length + 12] = (tcp_length + len(extra)) // 4 << 4 | (header[ip_length + 12] & 0x0F)
    struct.pack_into("!H", header, ip_length + 16, 0)
    tcp = bytes(header[ip_length:]) + packet[ip_length + tcp_length :]
    struct.pack_into("!H", header, ip_length + 16, checksum_finish(checksum_add(partial, tcp)))
    return bytes(header) + packet[ip_length + tcp_length :]


def _icmp_message(payload: bytes, fields_buffer) -> IcmpMessage:
    values = _ICMP.unpack_from(fields_buffer, _ICMP_OFFSET)
    message_type, code, identifier, sequence, next_hop_mtu, has_quote, quote_is_tcp = values[0:7]
    quoted_ip = _new(Ipv4Header, values[7:18]) if has_quote else None
    quoted_tcp = _new(QuotedTcp, values[18:21]) if quote_is_tcp else None
    return IcmpMessage(message_type, code, identifier, sequence, next_hop_mtu, quoted_ip, quoted_tcp, payload)


def _icmp6_message(payload: bytes, fields_buffer) -> Icmpv6Message:
    values = _ICMP6.unpack_from(fields_buffer, _ICMP6_OFFSET)
    message_type, code, identifier, sequence, has_quote, quote_is_tcp, mtu, pointer = values[0:8]
    quoted_ip = _new(Ipv6Header, values[8:20]) if has_quote else None
    quoted_tcp = _new(QuotedTcp, values[20:23]) if quote_is_tcp else None
    return Icmpv6Message(message_type, code, identifier, sequence, mtu, pointer, quoted_ip, quoted_tcp, payload)


# --- build ----------------------------------------------------------------------------------------
# struct ustack_tcp_spec (csrc/wire.h), without its SACK edges (packed separately when present).
_SPEC = struct.Struct("=IIB?HHHIIBBHHHBBBBII")
_SPEC_SACK_OFFSET = ffi.offsetof("struct ustack_tcp_spec", "sack_blocks")
LAYOUTS = {"linux": lib.USTACK_LAYOUT_LINUX, "freebsd": lib.USTACK_LAYOUT_FREEBSD}

_pack_spec = _SPEC.pack_into
_build_tcp = lib.ustack_build_tcp_packet
_build_tcp6 = lib.ustack_build_tcp6_packet
_build_tcp_headers = lib.ustack_build_tcp_headers
_build_tcp6_headers = lib.ustack_build_tcp6_headers
_build_tcp_headers_partial = lib.ustack_build_tcp_headers_partial
_build_tcp6_headers_partial = lib.ustack_build_tcp6_headers_partial
# From this payload length on, C writes only the headers and the payload joins them in one copy,
# instead of C copying it after the headers and the packet being copied out of the scratch buffer:
# a 64 KB segment is copied once here, not twice (issue 12).
HEADERS_APART_FROM = 8192
# From this packet length on, a link that takes partial checksums gets them (build_tcp_packet's
# `partial_checksum_over`): the kernel completes such a checksum only where it must (a piece TSO
# cut, a packet leaving through a device that cannot), and delivered to a local socket it is never
# made at all, where one built whole costs a pass over the payload here and another in the kernel,
# which checks it (at MTU 65535, ~6 % of serve's CPU in a download). Below it, the pass costs less
# than handing over parts.
PARTIAL_CHECKSUM_FROM = HEADERS_APART_FROM
# The fewest header bytes in front of a TCP payload (IP and TCP without options), by family: a
# payload longer than the `partial_checksum_over` limit less these makes a packet sure to exceed it.
_SMALLEST_HEADERS = 20 + 20
_SMALLEST_HEADERS6 = IPV6_HEADER_LENGTH + 20


def build_tcp_packet(
    src: int,
    dst: int,
    segment: TcpSegment,
    ttl: int = 64,
    identification: int = 0,
    dont_fragment: bool = True,
    option_layout: str = "linux",
    flow_label: int = 0,
    traffic_class: int = 0,
    tos: int = 0,
    partial_checksum_over: int = 0,
) -> bytes | SegmentParts:
    """One IPv4 packet carrying `segment`: both headers, options in the order of `option_layout`
    ("linux" or "freebsd"), the payload, both checksums. SACK blocks beyond what fits in 40 bytes
    of options are left out, as real stacks do (RFC 2018 3).

    With 16-byte `src` and `dst` the packet is IPv6 instead: `ttl` is the hop limit, `flow_label`
    and `traffic_class` go in the fixed header, `identification` and `dont_fragment` are not used
    (IPv6 routers never fragment), the checksum covers the IPv6 pseudo-header (RFC 8200 8.1).
    `tos` is the IPv4 TOS byte, whose low two bits are the ECN field (RFC 3168 5); over IPv6
    that byte is `traffic_class`.

    `partial_checksum_over` (0: never) is for a link that takes packets with a partial checksum
    (the TUN link when it cuts segments larger than its MTU, TSO, or in software; the Stack then
    passes PARTIAL_CHECKSUM_FROM, or its MTU if smaller): a packet sure to be longer than it (its
    payload with the smallest IP and TCP headers already is) is built with its TCP checksum left
    partial, as the TUN link hands it to the kernel (NEEDS_CSUM: the pseudo-header sum with the
    TCP length, folded, not complemented), without a pass over its payload, and comes back as
    SegmentParts: its headers and its payload, not joined. Whatever reads it as a wire would
    first calls vnet.complete_checksum (see SegmentParts)."""
    if type(src) is bytes:
        return _build_tcp6_packet(src, dst, segment, ttl, option_layout, flow_label, traffic_class or tos,
                                  partial_checksum_over)
    # Unpacking the segment at once costs less than reading its nine fields by name.
    src_port, dst_port, seq, ack, flags, window, urgent_pointer, options, data = segment
    # bytes, or a view of the send buffer's bytes (send_buffer.py), which C reads in place
    payload = data if type(data) is bytes else _from_buffer(data)
    payload_length = len(payload)
    try:
        scratch = _take()  # inlined _borrow(): this call's spec and buffer, C uses them with the GIL released
    except IndexError:
        scratch = _Scratch()
    try:
        spec, spec_buffer, out, out_buffer = scratch.build
        try:
            if options is NO_OPTIONS:
                present = mss = window_scale = sack_count = ts_val = ts_ecr = 0
            else:
                present, mss, window_scale, sack_count, ts_val, ts_ecr = _option_fields(options, spec_buffer)
            _pack_spec(spec_buffer, 0, src, dst, ttl, dont_fragment, identification,
                       src_port, dst_port, seq, ack, flags, present, window, urgent_pointer,
                       mss, window_scale, sack_count, LAYOUTS[option_layout], tos, ts_val, ts_ecr)  # fmt: skip
        except (struct.error, KeyError, TypeError, ValueError) as error:
            raise WireError(BUILD_BAD_FIELD, str(error)) from None
        if partial_checksum_over and payload_length + _SMALLEST_HEADERS > partial_checksum_over \
                and options.fast_open is None:
            length = _build_tcp_headers_partial(out, _OUT_CAPACITY, spec, payload_length)
            if length < 0:
                raise WireError(REASON_NAMES[-length])
            return _checksum_partial_packet(out_buffer[0 : length - payload_length], data)
        if payload_length < HEADERS_APART_FROM:
            length = _build_tcp(out, _OUT_CAPACITY, spec, payload, payload_length)
            if length < 0:
                raise WireError(REASON_NAMES[-length])
            packet = out_buffer[0:length]
        else:
            length = _build_tcp_headers(out, _OUT_CAPACITY, spec, payload, payload_length)
            if length < 0:
                raise WireError(REASON_NAMES[-length])
            packet = b"".join((out_buffer[0 : length - payload_length], data))
    finally:
        _give_back(scratch)
    if options.fast_open is not None:
        return _splice_fast_open(packet, options)
    return packet


def _build_tcp6_packet(src: bytes, dst: bytes, segment: TcpSegment, hop_limit: int, option_layout: str,
                       flow_label: int, traffic_class: int,
                       partial_checksum_over: int = 0) -> bytes | SegmentParts:  # fmt: skip
    """build_tcp_packet over IPv6: the spec without addresses, which go to C as arguments."""
    if len(src) != 16 or type(dst) is not bytes or len(dst) != 16:
        raise WireError(BUILD_BAD_FIELD, "IPv6 addresses are 16 bytes, both of them")
    if not (0 <= flow_label <= 0xFFFFF and 0 <= traffic_class <= 0xFF):
        raise WireError(BUILD_BAD_FIELD, "the flow label is 20 bits and the traffic class 8")
    scratch = _borrow()
    try:
        spec, spec_buffer, out, out_buffer = scratch.build
        payload = _pack_address_free_spec(spec_buffer, segment, hop_limit, option_layout)
        payload_length = len(payload)
        if partial_checksum_over and payload_length + _SMALLEST_HEADERS6 > partial_checksum_over \
                and segment.options.fast_open is None:  # as in build_tcp_packet
            length = _build_tcp6_headers_partial(out, _OUT_CAPACITY, src, dst, hop_limit, flow_label, traffic_class,
                                                 spec, payload_length)  # fmt: skip
            if length < 0:
                raise WireError(REASON_NAMES[-length])
            return _checksum_partial_packet(out_buffer[0 : length - payload_length], segment.payload)
        if payload_length < HEADERS_APART_FROM:
            length = _build_tcp6(out, _OUT_CAPACITY, src, dst, hop_limit, flow_label, traffic_class, spec, payload,
                                 payload_length)  # fmt: skip
            if length < 0:
                raise WireError(REASON_NAMES[-length])
            packet = out_buffer[0:length]
        else:  # as in build_tcp_packet
            length = _build_tcp6_headers(out, _OUT_CAPACITY, src, dst, hop_limit, flow_label, traffic_class, spec,
                                         payload, payload_length)  # fmt: skip
            if length < 0:
                raise WireError(REASON_NAMES[-length])
            packet = b"".join((out_buffer[0 : length - payload_length], segment.payload))
    finally:
        _give_back(scratch)
    if segment.options.fast_open is not None:
        return _splice_fast_open(packet, segment.options)
    return packet


def _checksum_partial_packet(headers: bytes, payload) -> SegmentParts:
    """`headers` and `payload`, a packet with a partial TCP checksum (see build_tcp_packet), as
    the parts it is made of: no copy."""
    return SegmentParts(headers, payload)


def _pack_address_free_spec(spec_buffer, segment: TcpSegment, ttl: int, option_layout: str):
    """Fills the spec in `spec_buffer` (this thread's) from `segment` with its IPv4 address
    fields zero (IPv6, and the option length count); returns the payload as bytes, or a C view
    of it for a memoryview payload (not copied)."""
    src_port, dst_port, seq, ack, flags, window, urgent_pointer, options, payload = segment
    try:
        if options is NO_OPTIONS:
            present = mss = window_scale = sack_count = ts_val = ts_ecr = 0
        else:
            present, mss, window_scale, sack_count, ts_val, ts_ecr = _option_fields(options, spec_buffer)
        _pack_spec(spec_buffer, 0, 0, 0, ttl, False, 0, src_port, dst_port, seq, ack, flags, present, window,
                   urgent_pointer, mss, window_scale, sack_count, LAYOUTS[option_layout], 0, ts_val, ts_ecr)  # fmt: skip
    except (struct.error, KeyError, TypeError, ValueError) as error:
        raise WireError(BUILD_BAD_FIELD, str(error)) from None
    return payload if type(payload) is bytes else _from_buffer(payload)


def _option_fields(options: TcpOptions, spec_buffer) -> tuple[int, int, int, int, int, int]:
    """The option fields of struct ustack_tcp_spec for `options`: (present bits, MSS, window scale,
    SACK block count, TSval, TSecr), absent ones as 0. The SACK edges, if any, go straight into
    the spec in `spec_buffer` (at most four blocks; C drops those that do not fit beside the
    other options)."""
    mss, window_scale, sack_permitted, sack_blocks, timestamps = options[:5]  # Fast Open: _splice_fast_open
    present = 0
    if mss is not None:
        present |= _OPTION_MSS
    else:
        mss = 0
    if window_scale is not None:
        present |= _OPTION_WINDOW_SCALE
    else:
        window_scale = 0
    if sack_permitted:
        present |= _OPTION_SACK_PERMITTED
    if timestamps is not None:
        present |= _OPTION_TIMESTAMPS
        ts_val, ts_ecr = timestamps
    else:
        ts_val = ts_ecr = 0
    sack_count = 0
    if sack_blocks:
        sack_blocks = sack_blocks[:4]
        sack_count = len(sack_blocks)
        if any(len(block) != 2 for block in sack_blocks):
            raise ValueError("a SACK block is a (left edge, right edge) pair")
        edges = [edge for block in sack_blocks for edge in block]
        struct.pack_into(f"={len(edges)}I", spec_buffer, _SPEC_SACK_OFFSET, *edges)
    return present, mss, window_scale, sack_count, ts_val, ts_ecr


def build_ipv4_packet(header: Ipv4Header, payload: bytes) -> bytes:
    """An IPv4 packet carrying any payload as it is (a fragment, UDP, a deliberately broken TCP
    segment...): the 20-byte header from `header` (its total_length and header_length are computed,
    fragment_offset is in bytes, a multiple of 8) with its checksum, then `payload`."""
    payload = bytes(payload)
    total_length = 20 + len(payload)
    if total_length > _MAX_PACKET:
        raise WireError(REASON_NAMES[lib.USTACK_REASON_BUILD_PACKET_TOO_LONG])
    if header.fragment_offset % 8:
        raise WireError(BUILD_BAD_FIELD, "the fragment offset is a multiple of 8 bytes")
    scratch = _borrow()
    try:
        _, _, out, out_buffer = scratch.build
        try:
            _IP_HEADER.pack_into(scratch.ip_fields_buffer, 0, *header._replace(total_length=total_length, header_length=20))
        except struct.error as error:
            raise WireError(BUILD_BAD_FIELD, str(error)) from None
        lib.ustack_build_ipv4_header(out, _OUT_CAPACITY, scratch.ip_fields)
        return out_buffer[0:20] + payload
    finally:
        _give_back(scratch)


def tcp_options_length(options: TcpOptions, option_layout: str = "linux") -> int:
    """How many bytes `options` take in a segment built with `option_layout` (0 to 40, a multiple
    of 4): what a sender subtracts from the MSS to size its payload (RFC 9293 3.7.1)."""
    if options is NO_OPTIONS:
        return 0
    scratch = _borrow()
    try:
        spec, spec_buffer, _, _ = scratch.build
        _pack_address_free_spec(spec_buffer, TcpSegment(0, 0, 0, 0, 0, 0, 0, options), 0, option_layout)
        length = lib.ustack_tcp_options_length(spec)
    finally:
        _give_back(scratch)
    if options.fast_open is not None:
        extra = len(fast_open_option_bytes(options.fast_open, options.fast_open_experimental))
        length += extra + (-extra % 4)
    return length


_build_icmp = lib.ustack_build_icmp_packet


def build_icmp_packet(src: int, dst: int, message: IcmpMessage, ttl: int = 64, identification: int = 0) -> bytes:
    """One IPv4 packet carrying `message` (see IcmpMessage for which fields go on the wire)."""
    payload = message.payload
    if type(payload) is not bytes:
        payload = bytes(payload)
    if not all(0 <= field <= 0xFFFF for field in (message.identifier, message.sequence, message.next_hop_mtu)):
        raise WireError(BUILD_BAD_FIELD, "ICMP identifier, sequence and next-hop MTU are 16-bit fields")
    if message.type == DESTINATION_UNREACHABLE:
        rest_of_header = message.next_hop_mtu
    else:
        rest_of_header = (message.identifier << 16) | message.sequence
    return _build_icmp_kind(_build_icmp, src, dst, ttl, identification, message.type, message.code,
                            rest_of_header, payload, len(payload))  # fmt: skip


def _build_icmp_kind(builder, *arguments) -> bytes:
    """Run the C builder of an ICMP or ICMPv6 packet into a borrowed output buffer; the packet."""
    scratch = _borrow()
    try:
        _, _, out, out_buffer = scratch.build
        try:
            length = builder(out, _OUT_CAPACITY, *arguments)
        except (OverflowError, TypeError) as error:
            raise WireError(BUILD_BAD_FIELD, str(error)) from None
        if length < 0:
            raise WireError(REASON_NAMES[-length])
        return out_buffer[0:length]
    finally:
        _give_back(scratch)


_build_icmp6 = lib.ustack_build_icmp6_packet


def build_icmp6_packet(src: bytes, dst: bytes, message: Icmpv6Message, hop_limit: int = 64) -> bytes:
    """One IPv6 packet carrying `message` (see Icmpv6Message for which fields go on the wire),
    with the checksum over the pseudo-header (RFC 4443 2.3)."""
    payload = message.payload
    if type(payload) is not bytes:
        payload = bytes(payload)
    if type(src) is not bytes or type(dst) is not bytes or len(src) != 16 or len(dst) != 16:
        raise WireError(BUILD_BAD_FIELD, "IPv6 addresses are 16 bytes, both of them")
    if message.type == PACKET_TOO_BIG:
        rest_of_header = message.mtu
    elif message.type == PARAMETER_PROBLEM:
        rest_of_header = message.pointer
    else:
        if not (0 <= message.identifier <= 0xFFFF and 0 <= message.sequence <= 0xFFFF):
            raise WireError(BUILD_BAD_FIELD, "ICMPv6 identifier and sequence are 16-bit fields")
        rest_of_header = (message.identifier << 16) | message.sequence
    return _build_icmp_kind(_build_icmp6, src, dst, hop_limit, message.type, message.code, rest_of_header,
                            payload, len(payload))  # fmt: skip


def build_ipv6_packet(header: Ipv6Header, payload: bytes) -> bytes:
    """An IPv6 packet carrying any payload as it is (extension headers, a fragment, UDP, a broken
    segment...): the 40-byte header from `header`, whose `protocol` is the fixed header's Next
    Header (payload_length is computed; the fragment fields are not used: put a fragment header
    in `payload`), then `payload`."""
    payload = bytes(payload)
    if len(payload) > _MAX_PACKET:
        raise WireError(REASON_NAMES[lib.USTACK_REASON_BUILD_PACKET_TOO_LONG])
    if len(header.src) != 16 or len(header.dst) != 16:
        raise WireError(BUILD_BAD_FIELD, "IPv6 addresses are 16 bytes, both of them")
    if not 0 <= header.flow_label <= 0xFFFFF:
        raise WireError(BUILD_BAD_FIELD, "the flow label is 20 bits")
    scratch = _borrow()
    try:
        _, _, out, out_buffer = scratch.build
        try:
            _IP6_HEADER.pack_into(scratch.ip6_fields_buffer, 0,
                                  *header._replace(payload_length=len(payload), header_length=IPV6_HEADER_LENGTH))
        except struct.error as error:
            raise WireError(BUILD_BAD_FIELD, str(error)) from None
        lib.ustack_build_ipv6_header(out, _OUT_CAPACITY, scratch.ip6_fields)
        return out_buffer[0:IPV6_HEADER_LENGTH] + payload
    finally:
        _give_back(scratch)

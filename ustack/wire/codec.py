"""Bytes <-> typed packets: the Python face of the C wire layer (csrc/, through cffi).

    parse_packet(packet) -> Packet                 one C call: IPv4, then TCP or ICMP, both checksums
    build_tcp_packet(src, dst, segment) -> bytes   one C call: IP + TCP headers, options, data
    build_icmp_packet(src, dst, message) -> bytes  one C call
    build_ipv4_packet(header, payload) -> bytes    any other payload (fragments, UDP, test packets)
    tcp_options_length(options) -> int             the option bytes a segment will carry

How it stays fast (the stack calls these for every packet): `bytes` go straight to the C
`const uint8_t *` parameters without a copy; C writes every parsed field into one preallocated
struct, which Python reads with a few struct.unpack_from calls (one per NamedTuple); the
NamedTuples are made with tuple.__new__, skipping their Python-level __new__. The struct formats
below mirror the C structs in csrc/wire.h field for field (tests/wire/test_wire_layout.py checks
them against cffi). Figures: scripts/bench_wire.py.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ._wire import ffi, lib
from .errors import WireError
from .icmp import DESTINATION_UNREACHABLE, IcmpMessage, QuotedTcp
from .ipv4 import Ipv4Header
from .reasons import BUILD_BAD_FIELD, REASON_NAMES
from .tcp import NO_OPTIONS, TcpOptions, TcpSegment


class Packet(NamedTuple):
    """One validated IPv4 packet.

    `tcp` or `icmp` is set for an unfragmented TCP or ICMP packet, and `payload` is then the TCP
    data or the ICMP data. For a fragment or another protocol both are None and `payload` is the
    whole IP payload (only the IP header was validated).
    """

    ip: Ipv4Header
    tcp: TcpSegment | None
    icmp: IcmpMessage | None
    payload: bytes


_new = tuple.__new__

# --- parse ----------------------------------------------------------------------------------------
# C fills one struct ustack_packet_fields; these formats read its parts ('x' skips a byte that
# Python does not need). The offsets come from cffi, the field order from csrc/wire.h.
_IP_HEADER = struct.Struct("=IIBBHH??HBB")  # struct ustack_ipv4_fields, in Ipv4Header order
_PACKET = struct.Struct("=B3xII")  # transport, payload_offset, payload_length
_TCP_HEADER = struct.Struct("=HHIIBxHH")  # the first seven fields of TcpSegment
_TCP_OPTIONS = struct.Struct("=BBHBxII")  # present bits, window scale, MSS, SACK count, TSval, TSecr
_SACK = struct.Struct("=8I")
_ICMP = struct.Struct("=BBHHHBBxx" + _IP_HEADER.format[1:] + "HHI")  # struct ustack_icmp_fields

_PACKET_OFFSET = ffi.offsetof("struct ustack_packet_fields", "transport")
_TCP_OFFSET = ffi.offsetof("struct ustack_packet_fields", "tcp")
_OPTIONS_OFFSET = _TCP_OFFSET + ffi.offsetof("struct ustack_tcp_fields", "options_present")
_SACK_OFFSET = _TCP_OFFSET + ffi.offsetof("struct ustack_tcp_fields", "sack_blocks")
_ICMP_OFFSET = ffi.offsetof("struct ustack_packet_fields", "icmp")

_OPTION_MSS = lib.USTACK_OPTION_MSS
_OPTION_WINDOW_SCALE = lib.USTACK_OPTION_WINDOW_SCALE
_OPTION_SACK_PERMITTED = lib.USTACK_OPTION_SACK_PERMITTED
_OPTION_TIMESTAMPS = lib.USTACK_OPTION_TIMESTAMPS
_TRANSPORT_TCP = lib.USTACK_TRANSPORT_TCP
_TRANSPORT_ICMP = lib.USTACK_TRANSPORT_ICMP

_fields = ffi.new("struct ustack_packet_fields *")
_fields_buffer = ffi.buffer(_fields)
_parse = lib.ustack_parse_packet
_read_packet = _PACKET.unpack_from
_read_ip_header = _IP_HEADER.unpack_from
_read_tcp_header = _TCP_HEADER.unpack_from
_read_tcp_options = _TCP_OPTIONS.unpack_from

# TcpOptions values already made, by their raw option fields. Segments of one flow mostly repeat
# the same options (the timestamps change about once a millisecond), so this saves making the
# same NamedTuple again for each. Segments with SACK blocks are not cached.
_options_made: dict[tuple, TcpOptions] = {}
_OPTIONS_REMEMBERED = 256


def parse_packet(packet: bytes) -> Packet:
    """Validates one IPv4 packet and returns it typed, or raises WireError(reason).

    The payload is a slice of `packet`, so it has its type: pass bytes to get bytes; pass a
    memoryview to get memoryview payloads that share the packet's memory instead of copying it
    (worth it for large packets: copying 64 KiB costs more than checksumming it).
    """
    if type(packet) is bytes:
        reason = _parse(packet, len(packet), _fields)
    else:
        reason = _parse(ffi.from_buffer(packet), len(packet), _fields)
    if reason:
        raise WireError(REASON_NAMES[reason])
    transport, start, length = _read_packet(_fields_buffer, _PACKET_OFFSET)
    payload = packet[start : start + length]
    ip = _new(Ipv4Header, _read_ip_header(_fields_buffer))
    if transport == _TRANSPORT_TCP:
        option_values = _read_tcp_options(_fields_buffer, _OPTIONS_OFFSET)
        options = _options_made.get(option_values)
        if options is None:
            options = _tcp_options(option_values)
        segment = _new(TcpSegment, _read_tcp_header(_fields_buffer, _TCP_OFFSET) + (options, payload))
        return _new(Packet, (ip, segment, None, payload))
    if transport == _TRANSPORT_ICMP:
        return _new(Packet, (ip, None, _icmp_message(payload), payload))
    return _new(Packet, (ip, None, None, payload))


def _tcp_options(option_values: tuple) -> TcpOptions:
    present, window_scale, mss, sack_count, ts_val, ts_ecr = option_values
    if not present and not sack_count:
        return NO_OPTIONS
    sack_blocks: tuple[tuple[int, int], ...] = ()
    if sack_count:
        edges = _SACK.unpack_from(_fields_buffer, _SACK_OFFSET)
        sack_blocks = tuple((edges[2 * i], edges[2 * i + 1]) for i in range(sack_count))
    options = TcpOptions(
        mss=mss if present & _OPTION_MSS else None,
        window_scale=window_scale if present & _OPTION_WINDOW_SCALE else None,
        sack_permitted=bool(present & _OPTION_SACK_PERMITTED),
        sack_blocks=sack_blocks,
        timestamps=(ts_val, ts_ecr) if present & _OPTION_TIMESTAMPS else None,
    )
    if not sack_count:
        if len(_options_made) >= _OPTIONS_REMEMBERED:
            _options_made.clear()
        _options_made[option_values] = options
    return options


def _icmp_message(payload: bytes) -> IcmpMessage:
    values = _ICMP.unpack_from(_fields_buffer, _ICMP_OFFSET)
    message_type, code, identifier, sequence, next_hop_mtu, has_quote, quote_is_tcp = values[0:7]
    quoted_ip = _new(Ipv4Header, values[7:18]) if has_quote else None
    quoted_tcp = _new(QuotedTcp, values[18:21]) if quote_is_tcp else None
    return IcmpMessage(message_type, code, identifier, sequence, next_hop_mtu, quoted_ip, quoted_tcp, payload)


# --- build ----------------------------------------------------------------------------------------
# struct ustack_tcp_spec (csrc/wire.h), without its SACK edges (packed separately when present).
_SPEC = struct.Struct("=IIB?HHHIIBBHHHBBBxII")
_SPEC_SACK_OFFSET = ffi.offsetof("struct ustack_tcp_spec", "sack_blocks")
_MAX_PACKET = 65535
LAYOUTS = {"linux": lib.USTACK_LAYOUT_LINUX, "freebsd": lib.USTACK_LAYOUT_FREEBSD}

_spec = ffi.new("struct ustack_tcp_spec *")
_spec_buffer = ffi.buffer(_spec)
_out = ffi.new(f"uint8_t[{_MAX_PACKET + 64}]")
_out_buffer = ffi.buffer(_out)
_pack_spec = _SPEC.pack_into
_build_tcp = lib.ustack_build_tcp_packet


def build_tcp_packet(
    src: int,
    dst: int,
    segment: TcpSegment,
    ttl: int = 64,
    identification: int = 0,
    dont_fragment: bool = True,
    option_layout: str = "linux",
) -> bytes:
    """One IPv4 packet carrying `segment`: both headers, options in the order of `option_layout`
    ("linux" or "freebsd"), the payload, both checksums. SACK blocks beyond what fits in 40 bytes
    of options are left out, as real stacks do (RFC 2018 3)."""
    options = segment.options
    payload = segment.payload
    if type(payload) is not bytes:
        payload = bytes(payload)
    try:
        layout = LAYOUTS[option_layout]
        if options is NO_OPTIONS:
            _pack_spec(_spec_buffer, 0, src, dst, ttl, dont_fragment, identification,
                       segment.src_port, segment.dst_port, segment.seq, segment.ack, segment.flags, 0,
                       segment.window, segment.urgent_pointer, 0, 0, 0, layout, 0, 0)  # fmt: skip
        else:
            _pack_options(src, dst, ttl, dont_fragment, identification, segment, options, layout)
    except (struct.error, KeyError, TypeError, ValueError) as error:
        raise WireError(BUILD_BAD_FIELD, str(error)) from None
    length = _build_tcp(_out, _MAX_PACKET + 64, _spec, payload, len(payload))
    if length < 0:
        raise WireError(REASON_NAMES[-length])
    return _out_buffer[0:length]


def _pack_options(src, dst, ttl, dont_fragment, identification, segment, options, layout) -> None:
    present = 0
    mss = options.mss
    if mss is not None:
        present |= _OPTION_MSS
    window_scale = options.window_scale
    if window_scale is not None:
        present |= _OPTION_WINDOW_SCALE
    if options.sack_permitted:
        present |= _OPTION_SACK_PERMITTED
    timestamps = options.timestamps
    if timestamps is not None:
        present |= _OPTION_TIMESTAMPS
        ts_val, ts_ecr = timestamps
    else:
        ts_val = ts_ecr = 0
    sack_blocks = options.sack_blocks[:4]
    _pack_spec(_spec_buffer, 0, src, dst, ttl, dont_fragment, identification,
               segment.src_port, segment.dst_port, segment.seq, segment.ack, segment.flags, present,
               segment.window, segment.urgent_pointer, mss or 0, window_scale or 0, len(sack_blocks),
               layout, ts_val, ts_ecr)  # fmt: skip
    if sack_blocks:
        if any(len(block) != 2 for block in sack_blocks):
            raise ValueError("a SACK block is a (left edge, right edge) pair")
        edges = [edge for block in sack_blocks for edge in block]
        struct.pack_into(f"={len(edges)}I", _spec_buffer, _SPEC_SACK_OFFSET, *edges)


_ip_fields = ffi.new("struct ustack_ipv4_fields *")
_ip_fields_buffer = ffi.buffer(_ip_fields)


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
    try:
        _IP_HEADER.pack_into(_ip_fields_buffer, 0, *header._replace(total_length=total_length, header_length=20))
    except struct.error as error:
        raise WireError(BUILD_BAD_FIELD, str(error)) from None
    lib.ustack_build_ipv4_header(_out, _MAX_PACKET + 64, _ip_fields)
    return _out_buffer[0:20] + payload


_NO_SEGMENT = TcpSegment(0, 0, 0, 0, 0, 0)


def tcp_options_length(options: TcpOptions, option_layout: str = "linux") -> int:
    """How many bytes `options` take in a segment built with `option_layout` (0 to 40, a multiple
    of 4): what a sender subtracts from the MSS to size its payload (RFC 9293 3.7.1)."""
    if options is NO_OPTIONS:
        return 0
    try:
        _pack_options(0, 0, 0, False, 0, _NO_SEGMENT, options, LAYOUTS[option_layout])
    except (struct.error, KeyError, TypeError, ValueError) as error:
        raise WireError(BUILD_BAD_FIELD, str(error)) from None
    return lib.ustack_tcp_options_length(_spec)


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
    try:
        length = _build_icmp(_out, _MAX_PACKET + 64, src, dst, ttl, identification, message.type,
                             message.code, rest_of_header, payload, len(payload))  # fmt: skip
    except (OverflowError, TypeError) as error:
        raise WireError(BUILD_BAD_FIELD, str(error)) from None
    if length < 0:
        raise WireError(REASON_NAMES[-length])
    return _out_buffer[0:length]

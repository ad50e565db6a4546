"""The struct formats in ustack/wire/codec.py must mirror the C structs in csrc/wire.h exactly:
C writes fields by name, Python reads them by position. Each field gets a distinct value through
cffi (by name) and must come out at the right place through struct (by position), and back."""

from __future__ import annotations

import struct

from ustack.wire import codec
from ustack.wire._wire import ffi

IP_FIELDS = ["src", "dst", "protocol", "ttl", "total_length", "identification", "dont_fragment",
             "more_fragments", "fragment_offset", "header_length", "tos"]  # fmt: skip
TCP_FIELDS = ["src_port", "dst_port", "seq", "ack", "flags", "window", "urgent_pointer"]
OPTION_FIELDS = ["options_present", "window_scale", "mss", "sack_block_count", "ts_val", "ts_ecr"]


IP6_FIELDS = ["src", "dst", "protocol", "hop_limit", "payload_length", "flow_label", "traffic_class",
              "has_fragment_header", "more_fragments", "fragment_offset", "header_length", "identification"]  # fmt: skip
BOOLEAN_FIELDS = ("dont_fragment", "more_fragments", "has_fragment_header")


def fill(struct_cdata, names, start):
    """Sets each named field to a value no other field gets; returns them as Python reads them."""
    field_types = dict(ffi.typeof(struct_cdata).fields)
    values = []
    for index, name in enumerate(names, start):
        if name in BOOLEAN_FIELDS:
            value = index % 2
            values.append(bool(value))
        elif field_types[name].type.kind == "array":  # 16-byte IPv6 addresses
            value = bytes(range(index, index + 16))
            values.append(value)
            ffi.memmove(getattr(struct_cdata, name), value, 16)
            continue
        else:
            value = (index * 37 + 3) % (2 ** (8 * ffi.sizeof(field_types[name].type)))
            values.append(value)
        setattr(struct_cdata, name, value)
    return values


def test_packet_fields_layout():
    fields = ffi.new("struct ustack_packet_fields *")
    buffer = ffi.buffer(fields)
    ip = fill(fields.ip, IP_FIELDS, 1)
    fields.transport = 6
    fields.version = 4
    fields.payload_offset = 0x01020304
    fields.payload_length = 0x05060708
    tcp = fill(fields.tcp, TCP_FIELDS, 20)
    options = fill(fields.tcp, OPTION_FIELDS, 40)
    for index in range(8):
        fields.tcp.sack_blocks[index] = 1000 + index
    assert list(codec._IP_HEADER.unpack_from(buffer)) == ip
    after_ip = codec._AFTER_IP.unpack_from(buffer, codec._AFTER_IP_OFFSET)
    assert after_ip[0:4] == (6, 4, 0x01020304, 0x05060708)
    assert list(after_ip[4:11]) == tcp
    assert list(codec._OPTION_VALUES.unpack(after_ip[11])) == options
    assert codec._AFTER_IP_OFFSET == codec._IP_HEADER.size  # one struct right after the other
    assert codec._OPTIONS_OFFSET + codec._OPTION_VALUES.size == codec._AFTER_IP_OFFSET + codec._AFTER_IP.size
    assert codec._SACK.unpack_from(buffer, codec._SACK_OFFSET) == tuple(range(1000, 1008))
    assert codec._IP_HEADER.size == ffi.sizeof("struct ustack_ipv4_fields")


def test_icmp_fields_layout():
    fields = ffi.new("struct ustack_packet_fields *")
    icmp = fill(fields.icmp, ["type", "code", "identifier", "sequence", "next_hop_mtu", "has_quote", "quote_is_tcp"], 1)
    quoted = fill(fields.icmp.quoted_ip, IP_FIELDS, 10)
    ports = fill(fields.icmp, ["quoted_src_port", "quoted_dst_port", "quoted_seq"], 30)
    values = codec._ICMP.unpack_from(ffi.buffer(fields), codec._ICMP_OFFSET)
    assert list(values[0:7]) == icmp and list(values[7:18]) == quoted and list(values[18:21]) == ports
    assert codec._ICMP_OFFSET == ffi.offsetof("struct ustack_packet_fields", "icmp")
    assert codec._ICMP.size == ffi.sizeof("struct ustack_icmp_fields")


def test_tcp_spec_layout():
    values = (0x0A000001, 0x0A000002, 64, True, 0x1234, 40000, 80, 0xDEADBEEF, 0xCAFEF00D, 0x12, 0x0F, 29200, 7,
              1460, 7, 3, 1, 0x02, 0x11111111, 0x22222222)  # fmt: skip
    spec = ffi.new("struct ustack_tcp_spec *")
    codec._SPEC.pack_into(ffi.buffer(spec), 0, *values)
    by_name = (spec.src, spec.dst, spec.ttl, bool(spec.dont_fragment), spec.identification, spec.src_port,
               spec.dst_port, spec.seq, spec.ack, spec.flags, spec.options_present, spec.window,
               spec.urgent_pointer, spec.mss, spec.window_scale, spec.sack_block_count, spec.layout,
               spec.tos, spec.ts_val, spec.ts_ecr)  # fmt: skip
    assert by_name == values
    assert codec._SPEC_SACK_OFFSET == ffi.offsetof("struct ustack_tcp_spec", "sack_blocks")
    struct.pack_into("=8I", ffi.buffer(spec), codec._SPEC_SACK_OFFSET, *range(8))
    assert list(spec.sack_blocks) == list(range(8))


def test_every_c_reason_has_one_name():
    from ustack.wire import PARSE_REASONS, REASON_NAMES
    from ustack.wire._wire import lib

    assert sorted(REASON_NAMES) == list(range(lib.USTACK_REASON_COUNT))
    assert len(set(REASON_NAMES.values())) == len(REASON_NAMES)
    assert "ipv4_bad_checksum" in PARSE_REASONS and "build_packet_too_long" not in PARSE_REASONS


def test_ipv6_fields_layout():
    fields = ffi.new("struct ustack_packet_fields *")
    ip6 = fill(fields.ip6, IP6_FIELDS, 1)
    assert list(codec._IP6_HEADER.unpack_from(ffi.buffer(fields), codec._IP6_OFFSET)) == ip6
    assert codec._IP6_HEADER.size == ffi.sizeof("struct ustack_ipv6_fields")


def test_icmp6_fields_layout():
    fields = ffi.new("struct ustack_packet_fields *")
    icmp6 = fill(fields.icmp6, ["type", "code", "identifier", "sequence", "has_quote", "quote_is_tcp", "mtu", "pointer"], 1)
    quoted = fill(fields.icmp6.quoted_ip, IP6_FIELDS, 10)
    ports = fill(fields.icmp6, ["quoted_src_port", "quoted_dst_port", "quoted_seq"], 30)
    values = codec._ICMP6.unpack_from(ffi.buffer(fields), codec._ICMP6_OFFSET)
    assert list(values[0:8]) == icmp6 and list(values[8:20]) == quoted and list(values[20:23]) == ports
    assert codec._ICMP6.size == ffi.sizeof("struct ustack_icmp6_fields")

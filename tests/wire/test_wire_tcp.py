"""TCP parse and build (csrc/tcp.c): header fields, every option, malformed options, both option
layouts, checked on byte literals and against the FreeBSD packetdrill suite's expected options."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from wire_packets import DESTINATION, SOURCE, reference_checksum, tcp_packet, with_fixed_checksums

from ustack.wire import NO_OPTIONS, TcpOptions, TcpSegment, WireError, build_tcp_packet, parse_packet
from ustack.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG

SYN_ACK = bytes.fromhex(
    "4500003400004000400626c20a0000010a000002"
    "13880050b2e5422e22da56258012721067030000020405b40101040201030307"
)


def options_of(option_bytes: bytes) -> TcpOptions:
    return parse_packet(tcp_packet(options=option_bytes)).tcp.options


def reason_of(packet: bytes) -> str:
    with pytest.raises(WireError) as caught:
        parse_packet(packet)
    return caught.value.reason


def test_parse_a_syn_ack_literal():
    segment = parse_packet(SYN_ACK).tcp
    assert segment == TcpSegment(
        src_port=5000, dst_port=80, seq=3001369134, ack=584734245, flags=SYN | ACK, window=29200,
        urgent_pointer=0, options=TcpOptions(mss=1460, window_scale=7, sack_permitted=True), payload=b"",
    )  # fmt: skip


def test_build_the_same_syn_ack_byte_for_byte():
    segment = parse_packet(SYN_ACK).tcp
    assert build_tcp_packet(0x0A000001, 0x0A000002, segment) == SYN_ACK


def test_payload_urgent_pointer_and_all_flag_bits_are_kept():
    every_flag = FIN | SYN | RST | PSH | ACK | URG | ECE | CWR
    packet = tcp_packet(flags=every_flag, urgent=7, seq=0xFFFFFFFF, ack=0x80000000, window=65535, payload=b"data")
    segment = parse_packet(packet).tcp
    assert segment.flags == every_flag and segment.urgent_pointer == 7
    assert segment.seq == 0xFFFFFFFF and segment.ack == 0x80000000 and segment.window == 65535
    assert segment.payload == b"data" and parse_packet(packet).payload == b"data"


def test_syn_fin_is_reported_as_such():
    assert parse_packet(tcp_packet(flags=SYN | FIN)).tcp.flags == SYN | FIN


def test_reserved_bits_are_ignored():
    # RFC 9293 3.1: the reserved bits next to the data offset are ignored on receipt...
    packet = bytearray(tcp_packet(flags=ACK))
    packet[32] |= 0x0F
    assert parse_packet(with_fixed_checksums(bytes(packet))).tcp.flags == ACK
    # ...but the checksum covers them.
    with pytest.raises(WireError, match="tcp_bad_checksum"):
        parse_packet(bytes(packet))


@pytest.mark.parametrize(
    "option_bytes, expected",
    [
        (b"", NO_OPTIONS),
        (b"\x02\x04\x05\xb4", TcpOptions(mss=1460)),
        (b"\x01\x03\x03\x0e", TcpOptions(window_scale=14)),
        (b"\x03\x03\x00\x01", TcpOptions(window_scale=0)),
        (b"\x04\x02", TcpOptions(sack_permitted=True)),
        (b"\x01\x01\x08\x0a\x00\x00\x00\x01\xff\xff\xff\xff", TcpOptions(timestamps=(1, 0xFFFFFFFF))),
        (b"\x01\x01\x05\x0a" + struct.pack("!II", 10, 20), TcpOptions(sack_blocks=((10, 20),))),
        (
            b"\x01\x01\x05\x22" + struct.pack("!8I", 1, 2, 3, 4, 5, 6, 7, 8),
            TcpOptions(sack_blocks=((1, 2), (3, 4), (5, 6), (7, 8))),
        ),
        # Unknown kinds are skipped by their length, known ones after them still read.
        (b"\x63\x06abcd\x02\x04\x02\x18", TcpOptions(mss=536)),
        (b"\xfe\x02\x04\x02", TcpOptions(sack_permitted=True)),
        # Everything after EOL is padding, even bytes that look like options.
        (b"\x02\x04\x05\xb4\x00\x04\x02\x00", TcpOptions(mss=1460)),
        # Linux's SYN: mss, sackOK, TS, nop, wscale.
        (
            b"\x02\x04\x05\xb4\x04\x02\x08\x0a\x00\x00\x00\x07\x00\x00\x00\x00\x01\x03\x03\x07",
            TcpOptions(1460, 7, True, (), (7, 0)),
        ),
    ],
    ids=lambda value: value.hex() if isinstance(value, bytes) else "",
)
def test_options(option_bytes, expected):
    assert options_of(option_bytes) == expected


@pytest.mark.parametrize(
    "option_bytes",
    [
        b"\x02",  # kind without a length byte
        b"\x02\x00\x00\x00",  # length 0
        b"\x63\x01\x00\x00",  # length 1
        b"\x63\x09abcdef",  # runs past the options area
        b"\x02\x03\x05\x00",  # MSS must be 4 long
        b"\x03\x04\x05\x00",  # window scale must be 3
        b"\x04\x03\x00\x00",  # SACK-permitted must be 2
        b"\x08\x08\x00\x00\x00\x01\x00\x00",  # timestamps must be 10
        b"\x05\x02\x00\x00",  # SACK with no block
        b"\x05\x0b" + b"\x00" * 10,  # SACK not 2 + 8n
        b"\x05\x2a" + b"\x00" * 38,  # SACK with 5 blocks (42 bytes, more than the area)
    ],
    ids=lambda value: value.hex(),
)
def test_malformed_option_lengths_reject_the_segment(option_bytes):
    assert reason_of(tcp_packet(options=option_bytes)) == "tcp_bad_option_length"


def test_header_rejections():
    assert reason_of(tcp_packet(data_offset=4)) == "tcp_bad_data_offset"
    assert reason_of(tcp_packet(data_offset=15, payload=b"x" * 8)) == "tcp_bad_data_offset"
    assert reason_of(tcp_packet(checksum=0x1234)) == "tcp_bad_checksum"
    # An IP payload of 19 bytes: one short of a TCP header.
    short = bytearray(tcp_packet()[:39])
    short[2:4] = (39).to_bytes(2, "big")
    assert reason_of(with_fixed_checksums(bytes(short))) == "tcp_truncated"


def test_a_flipped_payload_bit_fails_the_checksum():
    packet = bytearray(tcp_packet(payload=b"hello world", flags=ACK | PSH))
    packet[-1] ^= 0x20
    assert reason_of(bytes(packet)) == "tcp_bad_checksum"


def test_checksum_covers_the_pseudo_header():
    # The same segment claimed by another source address must fail (RFC 9293 3.1).
    packet = bytearray(tcp_packet())
    packet[12:16] = bytes([10, 0, 0, 9])
    packet[10:12] = b"\x00\x00"
    packet[10:12] = reference_checksum(bytes(packet[:20])).to_bytes(2, "big")  # the IP header stays valid
    assert reason_of(bytes(packet)) == "tcp_bad_checksum"


# --- building: option layouts -----------------------------------------------------------------

SYN_OPTIONS = TcpOptions(mss=1460, window_scale=7, sack_permitted=True, timestamps=(100, 0))


def option_bytes_of(options: TcpOptions, layout: str, flags: int = SYN) -> bytes:
    packet = build_tcp_packet(SOURCE, DESTINATION, TcpSegment(1, 2, 3, 4, flags, 5, options=options), option_layout=layout)
    return packet[40 : 20 + (packet[32] >> 4) * 4]


def hexes(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts))


@pytest.mark.parametrize(
    "options, layout, expected",
    [
        # Linux: mss, sackOK, TS, nop, wscale.
        (SYN_OPTIONS, "linux", hexes("020405b4", "0402", "080a0000006400000000", "01", "030307")),
        # Linux without TS: mss, nop, nop, sackOK, nop, wscale (the classic SYN-ACK).
        (SYN_OPTIONS._replace(timestamps=None), "linux", hexes("020405b4", "01010402", "01030307")),
        # Linux TS without sackOK: mss, nop, nop, TS, nop, wscale.
        (SYN_OPTIONS._replace(sack_permitted=False), "linux", hexes("020405b4", "0101080a0000006400000000", "01030307")),
        # Linux data segment: nop, nop, TS, then nop, nop, sack.
        (
            TcpOptions(timestamps=(5, 6), sack_blocks=((10, 20),)),
            "linux",
            hexes("0101080a0000000500000006", "0101050a0000000a00000014"),
        ),
        # FreeBSD SYN: mss, nop, wscale, sackOK, TS.
        (SYN_OPTIONS, "freebsd", hexes("020405b4", "01030307", "0402", "080a0000006400000000")),
        # FreeBSD without sackOK: TS is aligned with two NOPs.
        (SYN_OPTIONS._replace(sack_permitted=False), "freebsd", hexes("020405b4", "01030307", "0101080a0000006400000000")),
        # FreeBSD mss + sackOK only: padded to 4 bytes with EOL.
        (TcpOptions(mss=1460, sack_permitted=True), "freebsd", hexes("020405b4", "0402", "0000")),
        # FreeBSD data: nop, nop, TS, nop, nop, sack.
        (
            TcpOptions(timestamps=(5, 6), sack_blocks=((10, 20),)),
            "freebsd",
            hexes("0101080a0000000500000006", "0101050a0000000a00000014"),
        ),
        (TcpOptions(sack_blocks=((1, 2), (3, 4))), "freebsd", hexes("0101", "0512", "00000001000000020000000300000004")),
    ],
)
def test_option_layouts(options, layout, expected):
    assert option_bytes_of(options, layout) == expected


def test_options_length_is_what_the_builder_writes():
    from ustack.wire import tcp_options_length

    for options in (NO_OPTIONS, SYN_OPTIONS, TcpOptions(timestamps=(1, 2)), TcpOptions(mss=1460, sack_permitted=True),
                    TcpOptions(timestamps=(1, 2), sack_blocks=((1, 2),) * 4), TcpOptions(sack_blocks=((1, 2),) * 4)):  # fmt: skip
        for layout in ("linux", "freebsd"):
            assert tcp_options_length(options, layout) == len(option_bytes_of(options, layout, ACK))
    assert tcp_options_length(TcpOptions(timestamps=(1, 2))) == 12
    assert tcp_options_length(SYN_OPTIONS, "freebsd") == 20


def test_sack_blocks_that_do_not_fit_are_left_out():
    # With timestamps, 40 bytes hold three SACK blocks (RFC 2018 3).
    blocks = ((1, 2), (3, 4), (5, 6), (7, 8))
    for layout in ("linux", "freebsd"):
        sent = parse_packet(build_tcp_packet(SOURCE, DESTINATION, TcpSegment(1, 2, 3, 4, ACK, 5,
                            options=TcpOptions(timestamps=(1, 2), sack_blocks=blocks)), option_layout=layout))  # fmt: skip
        assert sent.tcp.options.sack_blocks == blocks[:3]
    alone = TcpSegment(1, 2, 3, 4, ACK, 5, options=TcpOptions(sack_blocks=blocks))
    assert parse_packet(build_tcp_packet(SOURCE, DESTINATION, alone)).tcp.options.sack_blocks == blocks


def test_build_rejects_out_of_range_fields_with_a_reason():
    for bad in (TcpSegment(70000, 2, 3, 4, ACK, 5), TcpSegment(1, 2, 2**32, 4, ACK, 5), TcpSegment(1, 2, 3, 4, 256, 5)):
        with pytest.raises(WireError, match="build_bad_field"):
            build_tcp_packet(SOURCE, DESTINATION, bad)
    with pytest.raises(WireError, match="build_packet_too_long"):
        build_tcp_packet(SOURCE, DESTINATION, TcpSegment(1, 2, 3, 4, ACK, 5, payload=bytes(65516)))
    with pytest.raises(WireError, match="build_bad_field"):
        build_tcp_packet(SOURCE, DESTINATION, TcpSegment(1, 2, 3, 4, ACK, 5), option_layout="windows")


def test_build_sets_ip_fields():
    packet = build_tcp_packet(SOURCE, DESTINATION, TcpSegment(1, 2, 3, 4, ACK, 5, payload=b"xy"), ttl=7,
                              identification=0x1234, dont_fragment=False)  # fmt: skip
    ip = parse_packet(packet).ip
    assert (ip.ttl, ip.identification, ip.dont_fragment, ip.total_length) == (7, 0x1234, False, 42)


def test_build_sets_the_tos_byte_for_ecn():
    # RFC 3168 5: the ECN field is the low two bits of the TOS byte; ECT(0) is 0b10.
    packet = build_tcp_packet(SOURCE, DESTINATION, TcpSegment(1, 2, 3, 4, ACK, 5, payload=b"xy"), tos=0x02)
    assert parse_packet(packet).ip.tos == 0x02
    assert parse_packet(build_tcp_packet(SOURCE, DESTINATION, TcpSegment(1, 2, 3, 4, ACK, 5))).ip.tos == 0


def test_payload_may_be_a_bytearray_or_memoryview():
    for payload in (bytearray(b"abc"), memoryview(b"abc")):
        packet = build_tcp_packet(SOURCE, DESTINATION, TcpSegment(1, 2, 3, 4, ACK, 5, payload=payload))
        assert parse_packet(packet).payload == b"abc"


def test_parse_accepts_a_memoryview_and_returns_views_of_it():
    packet = build_tcp_packet(SOURCE, DESTINATION, TcpSegment(1, 2, 3, 4, ACK, 5, payload=b"abc"))
    parsed = parse_packet(memoryview(packet))
    assert isinstance(parsed.payload, memoryview) and parsed.payload == b"abc"
    assert parse_packet(bytearray(packet)).payload == b"abc"


# --- the FreeBSD packetdrill suite: the option sequences its scripts expect from us ------------

SUITE = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "freebsd-tcp-testsuite"
if not SUITE.is_dir():
    SUITE = Path(__file__).resolve().parents[2] / "tests" / "conform" / "freebsd-tcp-testsuite"


def expected_outgoing_option_lists() -> list[str]:
    """Every distinct option list on a `>` line of the suite, except TCP-MD5 ones (not ours)."""
    found = set()
    for script in sorted(SUITE.rglob("*.pkt")):
        for line in script.read_text(errors="replace").splitlines():
            match = re.match(r"\s*[+]?[0-9.]+\s+>\s.*<([^>]*)>", line)
            if match and "md5" not in match.group(1):
                found.add(re.sub(r"\s+", " ", match.group(1).replace(", ", ",")).strip())
    return sorted(found)


def packetdrill_options(text: str) -> tuple[TcpOptions, bytes]:
    """A packetdrill option list -> (what it means, the exact bytes it stands for)."""
    options = TcpOptions()
    wire = b""
    for item in text.split(","):
        words = item.split()
        if words[0] == "nop":
            wire += b"\x01"
        elif words[0] == "eol":
            wire += b"\x00"
        elif words[0] == "mss":
            options = options._replace(mss=int(words[1]))
            wire += struct.pack("!BBH", 2, 4, int(words[1]))
        elif words[0] == "wscale":
            options = options._replace(window_scale=int(words[1]))
            wire += struct.pack("!BBB", 3, 3, int(words[1]))
        elif words[0] == "sackOK":
            options = options._replace(sack_permitted=True)
            wire += b"\x04\x02"
        elif words[0] == "TS":
            timestamps = (int(words[2]), int(words[4]))
            options = options._replace(timestamps=timestamps)
            wire += struct.pack("!BBII", 8, 10, *timestamps)
        elif words[0] == "sack":
            blocks = tuple(tuple(int(edge) for edge in block.split(":")) for block in words[1:])
            options = options._replace(sack_blocks=blocks)
            wire += struct.pack(f"!BB{2 * len(blocks)}I", 5, 2 + 8 * len(blocks), *(e for b in blocks for e in b))
        else:
            raise AssertionError(f"unknown packetdrill option {item!r}")
    return options, wire


def test_the_suite_is_there_to_compare_with():
    assert len(expected_outgoing_option_lists()) >= 10


@pytest.mark.parametrize("option_text", expected_outgoing_option_lists())
def test_freebsd_layout_matches_the_suite(option_text):
    options, expected = packetdrill_options(option_text)
    flags = SYN if options.mss is not None else ACK
    assert option_bytes_of(options, "freebsd", flags) == expected


def test_parse_checks_the_checksum_wherever_the_packet_starts_in_memory():
    # The checksum code aligns its vector loop to the address it is given (csrc/checksum.c): a
    # packet inside a larger buffer, at any offset, parses the same, and a flipped bit anywhere in
    # its data is still caught.
    segment = TcpSegment(40000, 80, 1, 2, ACK, 1000, payload=bytes(range(256)) * 6)
    packet = build_tcp_packet(SOURCE, DESTINATION, segment)
    for offset in range(64):
        buffer = bytearray(offset) + packet
        assert parse_packet(memoryview(buffer)[offset:]).tcp == segment
        buffer[offset + len(packet) - 1 - offset * 7] ^= 0x10
        with pytest.raises(WireError) as caught:
            parse_packet(memoryview(buffer)[offset:])
        assert caught.value.reason == "tcp_bad_checksum"

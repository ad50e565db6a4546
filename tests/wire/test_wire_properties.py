"""Properties over many generated packets (hypothesis, derandomized: the same examples every run,
so a failure reproduces; hypothesis prints the failing example).

- build then parse gives back what was built;
- random bytes, and valid packets with bytes changed, only ever give a Packet or a WireError whose
  reason is one of the named ones, and the text formatter never raises on them.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_packets import with_fixed_checksums
from wire_strategies import addresses, echo_messages, layouts, tcp_segments, u8

from ustack.wire import PARSE_REASONS, Packet, WireError, build_icmp_packet, build_tcp_packet, format_packet, parse_packet

SETTINGS = settings(derandomize=True, max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(src=addresses, dst=addresses, segment=tcp_segments(), layout=layouts, ttl=u8, identification=st.integers(0, 0xFFFF),
       dont_fragment=st.booleans())  # fmt: skip
def test_tcp_build_then_parse(src, dst, segment, layout, ttl, identification, dont_fragment):
    packet = build_tcp_packet(src, dst, segment, ttl, identification, dont_fragment, option_layout=layout)
    parsed = parse_packet(packet)
    assert (parsed.ip.src, parsed.ip.dst, parsed.ip.ttl, parsed.ip.protocol) == (src, dst, ttl, 6)
    assert (parsed.ip.identification, parsed.ip.dont_fragment, parsed.ip.total_length) == (
        identification, dont_fragment, len(packet),
    )  # fmt: skip
    got, sent = parsed.tcp, segment
    assert got._replace(options=None) == sent._replace(options=None)
    assert got.options._replace(sack_blocks=()) == sent.options._replace(sack_blocks=())
    # SACK blocks that do not fit in 40 bytes are dropped from the end; at least two always fit.
    kept = got.options.sack_blocks
    assert kept == sent.options.sack_blocks[: len(kept)]
    assert len(kept) >= min(len(sent.options.sack_blocks), 2)
    assert parsed.payload == segment.payload


@SETTINGS
@given(src=addresses, dst=addresses, message=echo_messages(), ttl=u8)
def test_echo_build_then_parse(src, dst, message, ttl):
    parsed = parse_packet(build_icmp_packet(src, dst, message, ttl))
    assert parsed.icmp == message and parsed.ip.ttl == ttl and parsed.payload == message.payload


def check_outcome(packet: bytes) -> None:
    try:
        parsed = parse_packet(packet)
    except WireError as error:
        assert error.reason in PARSE_REASONS, error.reason
    else:
        assert isinstance(parsed, Packet)
        assert len(parsed.payload) <= len(packet)
    line = format_packet(packet)
    assert isinstance(line, str) and "\n" not in line


@SETTINGS
@given(st.binary(max_size=120))
def test_random_bytes(packet):
    check_outcome(packet)


@SETTINGS
@given(st.binary(min_size=20, max_size=100))
def test_random_bytes_that_look_like_ipv4(tail):
    # Version 4 and a plausible IHL, so that the TCP/ICMP parsers are reached more often.
    check_outcome(bytes([0x45]) + tail)
    check_outcome(with_fixed_checksums(bytes([0x45, 0, 0, len(tail) + 1]) + tail[3:]))


@st.composite
def mutated_packets(draw):
    if draw(st.booleans()):
        packet = build_tcp_packet(draw(addresses), draw(addresses), draw(tcp_segments(max_payload=40)),
                                  option_layout=draw(layouts))  # fmt: skip
    else:
        packet = build_icmp_packet(draw(addresses), draw(addresses), draw(echo_messages()))
    packet = bytearray(packet)
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["set", "truncate", "extend"]))
        if action == "set" and packet:
            packet[draw(st.integers(0, len(packet) - 1))] = draw(u8)
        elif action == "truncate":
            del packet[draw(st.integers(0, len(packet))) :]
        else:
            packet += draw(st.binary(min_size=1, max_size=8))
    packet = bytes(packet)
    if len(packet) >= 20 and draw(st.booleans()):
        packet = with_fixed_checksums(packet)  # get past the checksums to the structure checks
    return packet


@SETTINGS
@given(mutated_packets())
def test_mutated_packets(packet):
    check_outcome(packet)

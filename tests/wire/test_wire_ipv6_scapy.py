"""IPv6, TCP over IPv6 and ICMPv6 against scapy (an independent implementation), both ways, and
hypothesis round trips and random / mutated bytes, as tests/wire/test_wire_scapy.py and
test_wire_properties.py do for IPv4.

- packets scapy builds (extension headers, options in any order) are parsed by ustack field for field;
- packets ustack builds are read by scapy with the same fields, and when scapy recomputes the
  checksum from scratch it produces exactly our bytes (so ours covers the RFC 8200 8.1 pseudo-header);
- whatever bytes come in, parse_packet returns a Packet or raises a WireError with a named reason.
"""

from __future__ import annotations

import logging

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_strategies import addresses6, echo6_messages, flow_labels, layouts, tcp_segments, u8, u16, u32

logging.getLogger("scapy").setLevel(logging.ERROR)

from scapy.layers.inet import TCP  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PadN,
    RouterAlert,
)
from scapy.packet import Raw  # noqa: E402

from ustack.wire import (  # noqa: E402
    PARSE_REASONS,
    Icmpv6Message,
    WireError,
    address6_text,
    build_icmp6_packet,
    build_tcp_packet,
    parse_packet,
)
from test_wire_scapy import scapy_options  # noqa: E402

SETTINGS = settings(derandomize=True, max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ICMPV6_CLASSES = (ICMPv6EchoRequest, ICMPv6EchoReply, ICMPv6DestUnreach, ICMPv6PacketTooBig, ICMPv6TimeExceeded,
                  ICMPv6ParamProblem)  # fmt: skip


def scapy_recomputed(packet: bytes) -> bytes:
    """scapy reads our packet, forgets the transport checksum and the payload length, and
    computes them again."""
    rebuilt = IPv6(packet)
    del rebuilt.plen
    if rebuilt.haslayer(TCP):
        del rebuilt[TCP].chksum
    for layer in ICMPV6_CLASSES:
        if rebuilt.haslayer(layer):
            del rebuilt[layer].cksum
    return bytes(rebuilt)


# --- ustack builds, scapy reads ---------------------------------------------------------------


@SETTINGS
@given(src=addresses6, dst=addresses6, segment=tcp_segments(), layout=layouts, hop_limit=u8, flow_label=flow_labels,
       traffic_class=u8)  # fmt: skip
def test_scapy_reads_our_tcp_packets(src, dst, segment, layout, hop_limit, flow_label, traffic_class):
    packet = build_tcp_packet(src, dst, segment, ttl=hop_limit, option_layout=layout, flow_label=flow_label,
                              traffic_class=traffic_class)  # fmt: skip
    assert scapy_recomputed(packet) == packet
    theirs = IPv6(packet)
    assert (theirs.src, theirs.dst) == (address6_text(src), address6_text(dst))
    assert (theirs.hlim, theirs.fl, theirs.tc, theirs.nh, theirs.plen) == (hop_limit, flow_label, traffic_class, 6,
                                                                           len(packet) - 40)  # fmt: skip
    tcp = theirs[TCP]
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, int(tcp.flags), tcp.window, tcp.urgptr) == segment[:7]
    assert bytes(tcp.payload) == segment.payload


@SETTINGS
@given(src=addresses6, dst=addresses6, message=echo6_messages(), hop_limit=u8)
def test_scapy_reads_our_echo(src, dst, message, hop_limit):
    packet = build_icmp6_packet(src, dst, message, hop_limit=hop_limit)
    assert scapy_recomputed(packet) == packet
    layer = IPv6(packet)[ICMPv6EchoRequest if message.type == 128 else ICMPv6EchoReply]
    assert (layer.id, layer.seq, bytes(layer.data)) == (message.identifier, message.sequence, message.payload)


@SETTINGS
@given(src=addresses6, dst=addresses6, segment=tcp_segments(max_payload=40), mtu=u32, pointer=u32,
       kind=st.sampled_from([1, 2, 3, 4]), code=u8)  # fmt: skip
def test_scapy_reads_our_errors(src, dst, segment, mtu, pointer, kind, code):
    quote = build_tcp_packet(dst, src, segment)
    packet = build_icmp6_packet(src, dst, Icmpv6Message(kind, code, mtu=mtu, pointer=pointer, payload=quote))
    assert scapy_recomputed(packet) == packet
    layer = IPv6(packet)[ICMPV6_CLASSES[kind + 1]]
    assert layer.code == code
    if kind == 2:
        assert layer.mtu == mtu
    if kind == 4:
        assert layer.ptr == pointer


# --- scapy builds, ustack reads ---------------------------------------------------------------

extension_chains = st.lists(
    st.sampled_from(["hop", "dest", "routing", "atomic"]), max_size=4
).map(lambda names: sorted(set(names), key=["hop", "dest", "routing", "atomic"].index))


def scapy_chain(names):
    """scapy extension header layers in RFC 8200 4.1 order (hop-by-hop first)."""
    layers = {
        "hop": IPv6ExtHdrHopByHop(options=[RouterAlert(), PadN(optdata=b"\x00\x00")]),
        "dest": IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00" * 4)]),
        "routing": IPv6ExtHdrRouting(type=0, segleft=0, addresses=["fd00::9"]),
        "atomic": IPv6ExtHdrFragment(offset=0, m=0, id=4242),
    }
    chain = None
    for name in names:
        chain = layers[name] if chain is None else chain / layers[name]
    return chain


@SETTINGS
@given(src=addresses6, dst=addresses6, sport=u16, dport=u16, seq=u32, ack=u32, flags=u8, window=u16, mss=u16,
       scale=u8, timestamps=st.tuples(u32, u32), payload=st.binary(max_size=64), chain=extension_chains,
       flow_label=flow_labels)  # fmt: skip
def test_we_read_scapy_tcp_packets(src, dst, sport, dport, seq, ack, flags, window, mss, scale, timestamps, payload,
                                   chain, flow_label):  # fmt: skip
    tcp = TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, window=window,
              options=[("NOP", None), ("Timestamp", timestamps), ("WScale", scale), ("MSS", mss)]) / Raw(payload)  # fmt: skip
    base = IPv6(src=address6_text(src), dst=address6_text(dst), fl=flow_label)
    layers = scapy_chain(chain)
    packet = bytes(base / layers / tcp if layers is not None else base / tcp)
    parsed = parse_packet(packet)
    assert parsed.ip.src == src and parsed.ip.dst == dst and parsed.ip.flow_label == flow_label
    assert parsed.ip.has_fragment_header == ("atomic" in chain) and not parsed.ip.is_fragment
    theirs = IPv6(packet)[TCP]
    assert parsed.tcp[:7] == (sport, dport, seq, ack, flags, window, 0)
    assert parsed.tcp.options == scapy_options(theirs)
    assert parsed.payload == payload


@SETTINGS
@given(src=addresses6, dst=addresses6, identifier=u16, sequence=u16, data=st.binary(max_size=100),
       request=st.booleans())  # fmt: skip
def test_we_read_scapy_echo(src, dst, identifier, sequence, data, request):
    layer = (ICMPv6EchoRequest if request else ICMPv6EchoReply)(id=identifier, seq=sequence, data=data)
    parsed = parse_packet(bytes(IPv6(src=address6_text(src), dst=address6_text(dst)) / layer))
    assert parsed.icmp == Icmpv6Message(128 if request else 129, 0, identifier, sequence, payload=data)


@SETTINGS
@given(src=addresses6, dst=addresses6, sport=u16, dport=u16, seq=u32, mtu=st.integers(1280, 65535),
       kind=st.sampled_from([1, 2, 3, 4]))  # fmt: skip
def test_we_read_scapy_errors(src, dst, sport, dport, seq, mtu, kind):
    quoted = IPv6(src=address6_text(dst), dst=address6_text(src)) / TCP(sport=sport, dport=dport, seq=seq)
    error = {1: ICMPv6DestUnreach(code=4), 2: ICMPv6PacketTooBig(mtu=mtu), 3: ICMPv6TimeExceeded(),
             4: ICMPv6ParamProblem(code=0, ptr=7)}[kind]  # fmt: skip
    message = parse_packet(bytes(IPv6(src=address6_text(src), dst=address6_text(dst)) / error / quoted)).icmp
    assert message.type == kind and message.quoted_tcp[:] == (sport, dport, seq)
    assert message.quoted_ip.src == dst and message.mtu == (mtu if kind == 2 else 0)
    assert message.pointer == (7 if kind == 4 else 0)


@SETTINGS
@given(src=addresses6, dst=addresses6, offset=st.integers(0, 8000), more=st.booleans(), identification=u32,
       data=st.binary(min_size=8, max_size=64))  # fmt: skip
def test_we_read_scapy_fragments(src, dst, offset, more, identification, data):
    more = more or offset == 0  # offset 0 without M is an atomic fragment: tested with the chains above
    data = data[: len(data) // 8 * 8] if more else data
    fragment = IPv6ExtHdrFragment(nh=6, offset=offset, m=int(more), id=identification)
    parsed = parse_packet(bytes(IPv6(src=address6_text(src), dst=address6_text(dst)) / fragment / Raw(data)))
    assert parsed.ip.is_fragment and parsed.ip.fragment_offset == offset * 8 and parsed.ip.more_fragments == more
    assert parsed.ip.identification == identification and parsed.payload == data and parsed.ip.protocol == 6


# --- round trips and hostile bytes ------------------------------------------------------------


@SETTINGS
@given(src=addresses6, dst=addresses6, segment=tcp_segments(), layout=layouts, hop_limit=u8, flow_label=flow_labels)
def test_tcp_build_then_parse(src, dst, segment, layout, hop_limit, flow_label):
    parsed = parse_packet(build_tcp_packet(src, dst, segment, ttl=hop_limit, option_layout=layout, flow_label=flow_label))
    assert (parsed.ip.src, parsed.ip.dst, parsed.ip.hop_limit, parsed.ip.flow_label) == (src, dst, hop_limit, flow_label)
    expected_blocks = parsed.tcp.options.sack_blocks  # those that fit beside the other options
    assert parsed.tcp == segment._replace(options=segment.options._replace(sack_blocks=expected_blocks))
    assert expected_blocks == segment.options.sack_blocks[: len(expected_blocks)]


@SETTINGS
@given(src=addresses6, dst=addresses6, message=echo6_messages())
def test_echo_build_then_parse(src, dst, message):
    assert parse_packet(build_icmp6_packet(src, dst, message)).icmp == message


def check_outcome(packet: bytes) -> None:
    try:
        parse_packet(packet)
    except WireError as error:
        assert error.reason in PARSE_REASONS


@SETTINGS
@given(st.binary(min_size=40, max_size=200))
def test_random_bytes_that_look_like_ipv6(tail):
    check_outcome(bytes([0x60 | (tail[0] & 0x0F)]) + tail[1:])


@st.composite
def mutated_packets(draw):
    """A valid IPv6 packet (TCP, echo or error, sometimes behind extension headers) with a few bytes
    changed, cut short or grown."""
    src, dst = draw(addresses6), draw(addresses6)
    kind = draw(st.sampled_from(["tcp", "echo", "error", "chain"]))
    if kind == "tcp":
        packet = build_tcp_packet(src, dst, draw(tcp_segments(max_payload=40)))
    elif kind == "echo":
        packet = build_icmp6_packet(src, dst, draw(echo6_messages()))
    elif kind == "error":
        quote = build_tcp_packet(dst, src, draw(tcp_segments(max_payload=8)))
        packet = build_icmp6_packet(src, dst, Icmpv6Message(draw(st.sampled_from([1, 2, 3, 4])), payload=quote))
    else:
        packet = bytes(IPv6(src=address6_text(src), dst=address6_text(dst)) / scapy_chain(["hop", "dest", "routing", "atomic"])
                       / TCP(options=[("MSS", 1440)]))  # fmt: skip
    packet = bytearray(packet)
    for _ in range(draw(st.integers(1, 4))):
        packet[draw(st.integers(0, len(packet) - 1))] = draw(u8)
    packet[0] = 0x60 | (packet[0] & 0x0F)
    cut = draw(st.integers(0, len(packet)))
    return bytes(packet[:cut]) + draw(st.binary(max_size=8))


@settings(derandomize=True, max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_packets())
def test_mutated_packets(packet):
    check_outcome(packet)

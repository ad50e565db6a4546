"""`ustack decode` on IPv6 against the real tcpdump (`tcpdump -t -nn -S -r`) on the same pcap files:
TCP with any options, behind extension headers (hop-by-hop, destination options, routing types 0, 2
and 4, fragments), ICMPv6 echo and errors, other next headers; and the invalid ones named.
tcpdump must be installed: tests FAIL without it."""

from __future__ import annotations

import random
import struct

from test_wire_decode import decode_lines, parse_packet_or_none, port, random_options, random_raw_options, tcpdump_lines, write_pcap
from wire_packets import DESTINATION6, SOURCE6, icmp6_packet, ipv6_header, tcp6_packet

from ustack.wire import Icmpv6Message, TcpSegment, build_icmp6_packet, build_tcp_packet, format_tcp, parse_packet
from ustack.wire import pcap
from ustack.wire.tcp import ACK, FIN, PSH, RST, SYN, URG

ROUTER = bytes.fromhex("20010db8000000000000ffff00000001")  # 2001:db8::ffff:0:1


def random_address(generator: random.Random) -> bytes:
    """Addresses with runs of zero groups of every length, and the odd IPv4-mapped one."""
    groups = [generator.choice([0, 0, 1, 0xFFFF, generator.getrandbits(16)]) for _ in range(8)]
    if generator.random() < 0.1:
        groups[:6] = [0, 0, 0, 0, 0, 0xFFFF]
    return struct.pack("!8H", *groups)


def random_chain(generator: random.Random) -> tuple[int, bytes]:
    """(first next header, extension headers ending in Next Header 6) in RFC 8200 4.1 order."""
    headers = []
    if generator.random() < 0.5:
        headers.append((0, bytes([1, 4 + 8 * 0, 0, 0, 0, 0])[:2] + bytes(4) if generator.random() < 0.5
                        else bytes([5, 2, 0, 0, 1, 0])))  # PadN, or router alert  # fmt: skip
    if generator.random() < 0.5:
        headers.append((60, bytes([1, 4, 0, 0, 0, 0])))
    if generator.random() < 0.4:
        kind = generator.choice([0, 2, 4])
        count = 1 if kind == 2 else generator.randint(1, 3)
        fields = bytes([kind, 0, 0, 0, 0, 0]) if kind != 4 else bytes([kind, 0, count - 1, generator.choice([0, 0x80]), 0x12, 0x34])
        headers.append((43, fields + b"".join(random_address(generator) for _ in range(count))))
    if generator.random() < 0.3:
        headers.append((44, bytes([0, 0, 0, 0, 0, 7])))  # atomic fragment
    if not headers:
        return 6, b""
    chain = b""
    for index, (_, body) in enumerate(headers):
        next_header = headers[index + 1][0] if index + 1 < len(headers) else 6
        length_byte = 0 if headers[index][0] == 44 else (len(body) + 2) // 8 - 1
        chain += bytes([next_header, length_byte]) + body
    return headers[0][0], chain


def random_packets6(seed: int, count: int) -> list[bytes]:
    generator = random.Random(seed)
    packets = []
    for _ in range(count):
        src, dst = random_address(generator), random_address(generator)
        kind = generator.randrange(10)
        flags = generator.choice([SYN, SYN | ACK, ACK, ACK | PSH, FIN | ACK, RST, RST | ACK, ACK | URG, 0,
                                  generator.randint(0, 255)])  # fmt: skip
        if kind < 4:
            segment = TcpSegment(port(generator), port(generator), generator.getrandbits(32), generator.getrandbits(32),
                                 flags, generator.randint(0, 65535), generator.randint(0, 65535), random_options(generator),
                                 bytes(generator.getrandbits(8) for _ in range(generator.choice([0, 0, 1, 7, 100]))))  # fmt: skip
            packets.append(build_tcp_packet(src, dst, segment, option_layout=generator.choice(["linux", "freebsd"]),
                                            flow_label=generator.getrandbits(20), traffic_class=generator.getrandbits(8)))  # fmt: skip
        elif kind < 7:
            first, chain = random_chain(generator)
            raw = tcp6_packet(src, dst, chain, first, src_port=port(generator), dst_port=port(generator),
                              seq=generator.getrandbits(32), ack=generator.getrandbits(32), flags=flags,
                              options=random_raw_options(generator), payload=bytes(generator.randint(0, 3)))  # fmt: skip
            if parse_packet_or_none(raw) is not None:  # options cut at 40 bytes can be malformed
                packets.append(raw)
        elif kind == 7:
            message = Icmpv6Message(generator.choice([128, 129]), 0, generator.randint(0, 65535),
                                    generator.randint(0, 65535), payload=bytes(generator.randint(0, 64)))  # fmt: skip
            packets.append(build_icmp6_packet(src, dst, message))
        else:
            quoted = tcp6_packet(dst, src, src_port=port(generator), dst_port=port(generator))
            if generator.random() < 0.2:  # a quoted UDP datagram
                quoted = ipv6_header(12, 17, dst, src) + struct.pack("!HHHH", port(generator), port(generator), 12, 0) + b"abcd"
            kind, code = generator.choice([(1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (1, 4), (2, 0), (3, 0), (3, 1), (3, 5),
                                           (4, 0), (4, 1), (4, 2), (4, 9)])  # fmt: skip
            rest = struct.pack("!I", generator.choice([1280, 1400, 9000]) if kind == 2 else generator.randint(0, 60) if kind == 4 else 0)
            packets.append(icmp6_packet(kind, code, rest, quoted[: generator.choice([48, 60, len(quoted)])], ROUTER, src))
    return packets


def check_same_as_tcpdump(tmp_path, capsys, packets, linktype=pcap.LINKTYPE_RAW, name="generated.pcap"):
    path = tmp_path / name
    write_pcap(path, packets, linktype=linktype)
    theirs, ours = tcpdump_lines(path), decode_lines(path, capsys)
    assert len(ours) == len(theirs) == len(packets)
    mismatches = [(index, t, o) for index, (t, o) in enumerate(zip(theirs, ours)) if t != o]
    assert not mismatches, "\n".join(f"packet {i}:\n  tcpdump: {t}\n  ustack:  {o}" for i, t, o in mismatches[:5])


def test_decode_matches_tcpdump_on_generated_ipv6_packets(tmp_path, capsys):
    packets = random_packets6(seed=20261206, count=400)
    assert len(packets) >= 350
    check_same_as_tcpdump(tmp_path, capsys, packets)


def fragment(next_header: int, offset: int, more: bool, data: bytes, chain: bytes = b"", first: int = 44) -> bytes:
    body = chain + struct.pack("!BBHI", next_header, 0, offset | more, 99) + data
    return ipv6_header(len(body), first if chain else 44) + body


def test_fragments_and_other_next_headers(tmp_path, capsys):
    segment = tcp6_packet(payload=b"x" * 30, options=bytes.fromhex("020405a0"))[40:]
    echo = icmp6_packet(128, 0, b"\x00\x01\x00\x02", b"ping")[40:]
    packets = [
        fragment(6, 0, True, segment[:48]),  # first fragment, whole TCP header
        fragment(6, 0, True, segment[:8]),  # first fragment, TCP header cut
        fragment(6, 48, False, segment[48:]),  # last fragment
        fragment(6, 1232, True, bytes(16), chain=bytes([44, 0, 1, 4, 0, 0, 0, 0]), first=0),
        fragment(58, 0, True, echo[:8]),
        ipv6_header(12, 17) + struct.pack("!HHHH", 5000, 5001, 12, 0) + b"abcd",
        ipv6_header(0, 59),
        ipv6_header(6, 253) + b"abcdef",
        ipv6_header(16, 60) + bytes([58, 0, 1, 4, 0, 0, 0, 0]) + icmp6_packet(128, 0, b"\x00\x01\x00\x02")[40:],
    ]
    # The ICMPv6 checksum covers the addresses only, so the message moves behind the options as it is.
    check_same_as_tcpdump(tmp_path, capsys, packets)


def test_ipv6_link_types(tmp_path, capsys):
    packets = random_packets6(seed=11, count=30)
    ethernet = [b"\x02" * 6 + b"\x04" * 6 + b"\x86\xdd" + packet for packet in packets]
    check_same_as_tcpdump(tmp_path, capsys, ethernet, pcap.LINKTYPE_ETHERNET, "ethernet.pcap")
    cooked = [struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 6 + b"\x00\x00", 0x86DD) + packet for packet in packets]
    check_same_as_tcpdump(tmp_path, capsys, cooked, 113, "cooked.pcap")
    check_same_as_tcpdump(tmp_path, capsys, packets, 229, "raw6.pcap")  # LINKTYPE_IPV6
    mixed = packets[:10] + [build_tcp_packet(0x0A000001, 0x0A000002, TcpSegment(1, 2, 3, 4, ACK, 5))]
    check_same_as_tcpdump(tmp_path, capsys, mixed, name="mixed.pcap")


def test_invalid_ipv6_packets_are_listed_with_their_reason(tmp_path, capsys):
    good = tcp6_packet()
    invalid = [
        (good[:30], "ipv6_truncated"),
        (good[:-1], "ipv6_bad_payload_length"),
        (good[:-1] + bytes([good[-1] ^ 1]), "tcp_bad_checksum"),
        (ipv6_header(8, 43) + bytes([6, 0, 0, 1, 0, 0, 0, 0]), "ipv6_routing_segments_left"),
        (icmp6_packet(2, 0, b"\x00\x00\x05\x00", good[:20]), "icmpv6_bad_quote"),
    ]
    path = tmp_path / "invalid6.pcap"
    write_pcap(path, [raw for raw, _ in invalid])
    lines = decode_lines(path, capsys)
    assert len(lines) == len(invalid)
    for line, (_, reason) in zip(lines, invalid):
        assert line.startswith("IP6 ") and f"invalid {reason}," in line, line


def test_format_tcp_for_ipv6():
    segment = TcpSegment(40000, 80, 1, 0, SYN, 64800)
    parsed = parse_packet(build_tcp_packet(SOURCE6, DESTINATION6, segment))
    assert format_tcp(parsed.ip, segment) == "IP6 fd00:77::1.40000 > fd00:77::2.80: Flags [S], seq 1, win 64800, length 0"

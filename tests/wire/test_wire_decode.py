"""`ustack decode` against the real tcpdump (`tcpdump -t -nn -S -r`) on the same pcap files, and
its behaviour on invalid packets and bad files. tcpdump must be installed: tests FAIL without it."""

from __future__ import annotations

import random
import struct
import subprocess
import sys
from pathlib import Path

from wire_packets import DESTINATION, SOURCE, icmp_packet, ipv4_header, require_tool, tcp_packet

from ustack.cli import main
from ustack.wire import (
    IcmpMessage,
    TcpOptions,
    TcpSegment,
    address_value,
    build_icmp_packet,
    build_tcp_packet,
    format_packet,
    format_tcp,
    parse_packet,
)
from ustack.wire import pcap
from ustack.wire.tcp import ACK, FIN, PSH, RST, SYN, URG

# Ports tcpdump hands to an application printer (telnet, ssh, DNS, BGP, ...) are avoided, except
# HTTP, whose printer `ustack decode` reproduces.
PRINTER_PORTS = {21, 22, 23, 25, 43, 53, 80, 139, 179, 323, 445, 554, 639, 646, 1723, 2049, 6379, 6633, 6653,
                 8080, 8554, 10288}  # fmt: skip
# Option kinds tcpdump decodes specially (md5, mptcp, fast open, ...); the others print as unknown.
SPECIAL_KINDS = {0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 19, 20, 28, 29, 30, 34, 254}


def write_pcap(path, packets, linktype=pcap.LINKTYPE_RAW):
    path.write_bytes(pcap.file_header(linktype) + b"".join(pcap.record(index * 0.001, p) for index, p in enumerate(packets)))


def tcpdump_lines(path) -> list[str]:
    tcpdump = require_tool("tcpdump", "tcpdump")
    result = subprocess.run([tcpdump, "-t", "-nn", "-S", "-r", str(path)], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def decode_lines(path, capsys) -> list[str]:
    capsys.readouterr()
    assert main(["decode", str(path)]) == 0
    return capsys.readouterr().out.splitlines()


def port(generator: random.Random) -> int:
    while True:
        value = generator.choice([generator.randint(1, 1023), generator.randint(1024, 65535)])
        if value not in PRINTER_PORTS:
            return value


def random_options(generator: random.Random) -> TcpOptions:
    return TcpOptions(
        mss=generator.choice([None, 536, 1460, generator.randint(0, 65535)]),
        window_scale=generator.choice([None, 0, 7, 14, generator.randint(0, 255)]),
        sack_permitted=generator.random() < 0.5,
        sack_blocks=tuple((generator.getrandbits(32), generator.getrandbits(32)) for _ in range(generator.randint(0, 4))),
        timestamps=generator.choice([None, (generator.getrandbits(32), generator.getrandbits(32))]),
    )


def random_raw_options(generator: random.Random) -> bytes:
    """Option bytes in no stack's order: NOPs, known options, unknown kinds, sometimes an EOL."""
    options = b""
    for _ in range(generator.randint(0, 5)):
        choice = generator.randrange(6)
        if choice == 0:
            options += b"\x01"
        elif choice == 1:
            options += struct.pack("!BBH", 2, 4, generator.randint(0, 65535))
        elif choice == 2:
            options += struct.pack("!BBB", 3, 3, generator.randint(0, 255))
        elif choice == 3:
            options += struct.pack("!BBII", 8, 10, generator.getrandbits(32), generator.getrandbits(32))
        elif choice == 4:
            blocks = generator.randint(1, 2)
            options += struct.pack(f"!BB{2 * blocks}I", 5, 2 + 8 * blocks, *(generator.getrandbits(32) for _ in range(2 * blocks)))
        else:
            kind = generator.choice([k for k in range(9, 254) if k not in SPECIAL_KINDS])
            value = bytes(generator.getrandbits(8) for _ in range(generator.randint(0, 4)))
            options += bytes([kind, 2 + len(value)]) + value
    if generator.random() < 0.2:
        options += b"\x00"
    return options[:40]


def random_packets(seed: int, count: int) -> list[bytes]:
    generator = random.Random(seed)
    packets = []
    src, dst = address_value("10.77.0.1"), address_value("10.77.0.2")
    for _ in range(count):
        kind = generator.randrange(10)
        flags = generator.choice([SYN, SYN | ACK, ACK, ACK | PSH, FIN | ACK, RST, RST | ACK, ACK | URG, 0,
                                  generator.randint(0, 255)])  # fmt: skip
        if kind < 5:
            segment = TcpSegment(port(generator), port(generator), generator.getrandbits(32), generator.getrandbits(32),
                                 flags, generator.randint(0, 65535), generator.randint(0, 65535), random_options(generator),
                                 bytes(generator.getrandbits(8) for _ in range(generator.choice([0, 0, 1, 7, 100]))))  # fmt: skip
            packets.append(build_tcp_packet(src, dst, segment, option_layout=generator.choice(["linux", "freebsd"])))
        elif kind < 7:
            raw = tcp_packet(src_port=port(generator), dst_port=port(generator), seq=generator.getrandbits(32),
                             ack=generator.getrandbits(32), flags=flags, urgent=generator.randint(0, 65535),
                             options=random_raw_options(generator), payload=bytes(generator.randint(0, 3)))  # fmt: skip
            if parse_packet_or_none(raw) is not None:
                packets.append(raw)
        elif kind == 7:
            http = generator.choice([b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\nhello",
                                     b"post /form HTTP/1.0\n", b"hello world", b"GET /cut-short", b"\x00\x01binary",
                                     b"BREW /pot HTTP/1.1\r\n", b"HTTP/1.1 20x nope\r\n"])  # fmt: skip
            server = generator.choice([80, 8080])
            ports = (port(generator), server) if generator.random() < 0.5 else (server, port(generator))
            segment = TcpSegment(*ports, generator.getrandbits(32), generator.getrandbits(32), ACK | PSH, 502,
                                 options=TcpOptions(timestamps=(1, 2)), payload=http)  # fmt: skip
            packets.append(build_tcp_packet(src, dst, segment))
        elif kind == 8:
            message = IcmpMessage(generator.choice([0, 8]), 0, generator.randint(0, 65535), generator.randint(0, 65535),
                                  payload=bytes(generator.randint(0, 64)))  # fmt: skip
            packets.append(build_icmp_packet(src, dst, message))
        else:
            quote = tcp_packet(src=dst, dst=src, src_port=port(generator), dst_port=port(generator))[:28]
            code = generator.randint(0, 15)
            rest = struct.pack("!HH", 0, generator.choice([0, 576, 1400])) if code == 4 else b"\x00" * 4
            packets.append(icmp_packet(generator.choice([3, 3, 3, 11]), code if generator.random() < 0.9 else 0,
                                       rest=rest, data=quote, src=address_value("10.77.0.254"), dst=src))  # fmt: skip
    return packets


def parse_packet_or_none(packet):
    try:
        return parse_packet(packet)
    except Exception:
        return None


def test_decode_matches_tcpdump_on_generated_packets(tmp_path, capsys):
    packets = random_packets(seed=20240501, count=400)
    assert len(packets) >= 350
    path = tmp_path / "generated.pcap"
    write_pcap(path, packets)
    theirs, ours = tcpdump_lines(path), decode_lines(path, capsys)
    assert len(ours) == len(theirs) == len(packets)
    mismatches = [(index, t, o) for index, (t, o) in enumerate(zip(theirs, ours)) if t != o]
    assert not mismatches, "\n".join(f"packet {i}:\n  tcpdump: {t}\n  ustack:  {o}" for i, t, o in mismatches[:5])


def test_the_classic_handshake(tmp_path, capsys):
    client, server = address_value("192.168.1.10"), address_value("192.168.1.20")
    syn = TcpSegment(50100, 80, 584734244, 0, SYN, 64240,
                     options=TcpOptions(mss=1440, window_scale=8, sack_permitted=True))  # fmt: skip
    syn_ack = TcpSegment(80, 50100, 3001369134, 584734245, SYN | ACK, 29200,
                         options=TcpOptions(mss=1460, window_scale=7, sack_permitted=True))  # fmt: skip
    # The Windows client's option order (mss,nop,wscale,nop,nop,sackOK) is neither builder layout,
    # so its SYN is written with raw options; the SYN-ACK is Linux's layout.
    syn_packet = tcp_packet(src=client, dst=server, src_port=50100, dst_port=80, seq=584734244, flags=SYN,
                            window=64240, options=bytes.fromhex("020405a0010303080101" "0402"))  # fmt: skip
    assert parse_packet(syn_packet).tcp == syn
    packets = [syn_packet, build_tcp_packet(server, client, syn_ack)]
    path = tmp_path / "handshake.pcap"
    write_pcap(path, packets)
    expected = [
        "IP 192.168.1.10.50100 > 192.168.1.20.80: Flags [S], seq 584734244, win 64240, "
        "options [mss 1440,nop,wscale 8,nop,nop,sackOK], length 0",
        "IP 192.168.1.20.80 > 192.168.1.10.50100: Flags [S.], seq 3001369134, ack 584734245, win 29200, "
        "options [mss 1460,nop,nop,sackOK,nop,wscale 7], length 0",
    ]
    assert tcpdump_lines(path) == expected
    assert decode_lines(path, capsys) == expected
    assert format_tcp(parse_packet(packets[1]).ip, syn_ack) == expected[1]


def test_ethernet_captures(tmp_path, capsys):
    packets = random_packets(seed=7, count=40)
    frames = [b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + packet for packet in packets]
    path = tmp_path / "ethernet.pcap"
    write_pcap(path, frames, linktype=pcap.LINKTYPE_ETHERNET)
    assert decode_lines(path, capsys) == tcpdump_lines(path)


def test_linux_cooked_captures(tmp_path, capsys):
    # What `tcpdump -i any -w` writes: a 16-byte header whose last two bytes are the EtherType.
    packets = random_packets(seed=8, count=20)
    cooked = [struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 6 + b"\x00\x00", 0x0800) + packet for packet in packets]
    path = tmp_path / "cooked.pcap"
    write_pcap(path, cooked, linktype=113)
    assert decode_lines(path, capsys) == tcpdump_lines(path)


INVALID = [
    (b"\x45\x00\x00", "ipv4_truncated"),
    (ipv4_header(0, version_ihl=0x55), "ipv4_bad_version"),
    (ipv4_header(0, checksum=0x0101), "ipv4_bad_checksum"),
    (ipv4_header(50), "ipv4_bad_total_length"),
    (tcp_packet(checksum=0x0101), "tcp_bad_checksum"),
    (tcp_packet(options=b"\x02\x09\x05\xb4"), "tcp_bad_option_length"),
    (tcp_packet(data_offset=3), "tcp_bad_data_offset"),
    (icmp_packet(8, 0)[:-2] + b"\x00\x01", "icmp_bad_checksum"),
    (icmp_packet(3, 3, data=b"short"), "icmp_bad_quote"),
]


def test_invalid_packets_are_listed_with_their_reason(tmp_path, capsys):
    path = tmp_path / "invalid.pcap"
    write_pcap(path, [packet for packet, _ in INVALID])
    lines = decode_lines(path, capsys)
    assert len(lines) == len(INVALID)
    for line, (_, reason) in zip(lines, INVALID):
        assert "invalid" in line and reason in line, line


def test_format_packet_never_raises_on_junk():
    assert "invalid ipv4_truncated" in format_packet(b"")
    assert "invalid ipv4_bad_version" in format_packet(b"\x50" + b"\x00" * 39)
    assert "invalid ipv6_truncated" in format_packet(b"\x60" + b"\x00" * 38)


def run_cli(*arguments):
    """The installed `ustack` command (the console script next to this Python)."""
    command = Path(sys.executable).parent / "ustack"
    assert command.exists(), f"{command} is missing: install the package (pip install -e .)"
    return subprocess.run([str(command), "decode", *arguments], capture_output=True, text=True)


def test_missing_file_is_one_line_and_exit_2(tmp_path):
    result = run_cli(str(tmp_path / "nope.pcap"))
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "nope.pcap" in result.stderr and "Traceback" not in result.stderr


def test_not_a_pcap_file_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a capture\n")
    result = run_cli(str(path))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and "not a pcap" in result.stderr


def test_a_directory_is_one_line_and_exit_2(tmp_path):
    result = run_cli(str(tmp_path))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1


def test_a_truncated_last_record_is_ignored_like_tcpdump(tmp_path, capsys):
    path = tmp_path / "cut.pcap"
    packet = build_tcp_packet(SOURCE, DESTINATION, TcpSegment(40000, 7000, 1, 2, ACK, 3))
    path.write_bytes(pcap.file_header() + pcap.record(0, packet) + pcap.record(1, packet)[:-5])
    assert decode_lines(path, capsys) == [format_packet(packet)]

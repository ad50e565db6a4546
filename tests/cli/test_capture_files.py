"""`ustack decode` and `ustack ladder` on capture files that are not what they expect: one clear
line each, never a traceback; and a capture cut short is read up to the cut, and said so."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ustack.wire import TcpSegment, build_tcp_packet, pcap
from ustack.wire.ipv4 import address_value
from ustack.wire.tcp import ACK, SYN
from ustack.wire.text import format_packet

RUN_CLI = "import sys; from ustack.cli import main; sys.exit(main())"
CLIENT, SERVER = address_value("10.77.0.1"), address_value("10.77.0.2")
# A pcapng file as Wireshark/dumpcap writes it: the Section Header Block's start
# (type 0x0A0D0D0A, length 28, byte-order magic 0x1A2B3C4D, version 1.0, section length -1).
PCAPNG_START = bytes.fromhex("0a0d0d0a 1c000000 4d3c2b1a 0100 0000 ffffffffffffffff 1c000000")


def run_ustack(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN_CLI, *arguments], capture_output=True, text=True, timeout=60)


def handshake_packets() -> list[bytes]:
    return [build_tcp_packet(CLIENT, SERVER, TcpSegment(40000, 80, 1000, 0, SYN, 64240)),
            build_tcp_packet(SERVER, CLIENT, TcpSegment(80, 40000, 5000, 1001, SYN | ACK, 65535)),
            build_tcp_packet(CLIENT, SERVER, TcpSegment(40000, 80, 1001, 5001, ACK, 64240))]


@pytest.mark.parametrize("command", ["decode", "ladder"])
@pytest.mark.parametrize("content, complaint", [
    (PCAPNG_START, "is a pcapng file; ustack reads classic pcap (what tcpdump -w writes): convert it with `editcap"),
    (b"", "is empty (not a pcap capture)"),
    (b"just some text\n" * 3, "is not a pcap file"),
])
def test_files_that_are_not_pcap_are_one_line_and_exit_2(tmp_path, command, content, complaint):
    path = tmp_path / "capture"
    path.write_bytes(content)
    result = run_ustack(command, str(path))
    assert (result.returncode, result.stdout) == (2, "")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ustack {command}: {path} {complaint}"), result.stderr


@pytest.mark.parametrize("command", ["decode", "ladder"])
def test_a_directory_is_one_line_and_exit_2(tmp_path, command):
    result = run_ustack(command, str(tmp_path))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [f"ustack {command}: cannot read {tmp_path}: Is a directory"]


def test_decode_of_a_capture_cut_short_prints_every_whole_packet_and_says_where_it_stops(tmp_path):
    packets = handshake_packets()
    path = tmp_path / "cut.pcap"
    whole = pcap.file_header() + b"".join(pcap.record(index, packet) for index, packet in enumerate(packets[:2]))
    path.write_bytes(whole + pcap.record(2, packets[2])[:30])  # the capture stopped mid-write
    result = run_ustack("decode", str(path))
    assert result.returncode == 0
    assert result.stdout.splitlines() == [format_packet(packet) for packet in packets[:2]]
    assert result.stderr.splitlines() == [
        f"ustack decode: {path} is cut short: packet 3 is incomplete (30 bytes of it are there) and is left out"]


def test_decode_of_a_whole_capture_says_nothing_on_stderr(tmp_path):
    path = tmp_path / "whole.pcap"
    path.write_bytes(pcap.file_header() + b"".join(pcap.record(0, packet) for packet in handshake_packets()))
    result = run_ustack("decode", str(path))
    assert (result.returncode, result.stderr) == (0, "")
    assert len(result.stdout.splitlines()) == 3


def test_ladder_of_a_capture_cut_short_draws_what_is_there_and_says_where_it_stops(tmp_path):
    packets = handshake_packets()
    path = tmp_path / "cut.pcap"
    path.write_bytes(pcap.file_header() + b"".join(pcap.record(index, packet) for index, packet in enumerate(packets))
                     + pcap.record(3, packets[2])[:10])
    result = run_ustack("ladder", str(path))
    assert result.returncode == 0
    assert "3 segments" in result.stdout.splitlines()[0]
    assert result.stderr.splitlines() == [
        f"ustack ladder: {path} is cut short: packet 4 is incomplete (10 bytes of it are there) and is left out"]


def test_decode_reads_linux_cooked_v2_as_tcpdump_4_99_writes_for_any(tmp_path):
    # LINKTYPE_LINUX_SLL2 (276): protocol type, reserved, interface index, ARPHRD type, packet
    # type, address length, 8 address bytes; 20 bytes in all, then the IPv4 packet.
    packets = handshake_packets()
    header = bytes.fromhex("0800 0000 00000001 0304 00 06") + bytes(8)
    path = tmp_path / "any.pcap"
    path.write_bytes(pcap.file_header(linktype=276) + b"".join(pcap.record(0, header + packet) for packet in packets))
    result = run_ustack("decode", str(path))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [format_packet(packet) for packet in packets]


def test_decode_explains_bad_checksums_once(tmp_path):
    # A capture on the sending host (lo, checksum offload) holds checksums not filled in yet:
    # each such packet is listed as invalid, and one line on stderr says why that is usual.
    packets = handshake_packets()
    unfilled = bytearray(packets[0])
    unfilled[20 + 16:20 + 18] = b"\x12\x34"  # the TCP checksum field
    path = tmp_path / "lo.pcap"
    path.write_bytes(pcap.file_header() + pcap.record(0, bytes(unfilled)) + pcap.record(1, packets[1]))
    result = run_ustack("decode", str(path))
    assert result.returncode == 0
    assert "invalid tcp_bad_checksum" in result.stdout.splitlines()[0]
    assert result.stderr.splitlines() == [
        "ustack decode: 1 of 2 packets have a bad checksum; in a capture taken on the host that sent them (on lo, "
        "or with checksum offload) that is normal, the checksum is filled in after the capture"]

"""The Linux scripts' syntax the parser learned for `ustack drill`, and the raw option helpers."""

from __future__ import annotations

import struct

import pytest

from ustack.conform.kernel_backend import fill_tcp_checksum, find_kernel_unsupported
from ustack.conform.lexer import ParseError
from ustack.conform.parser import parse_text
from ustack.conform.profile import FREEBSD, LINUX, PROFILE_DEFINES, script_profile
from ustack.conform.raw_options import add_options, options_length, raw_option_bytes
from ustack.conform.script import OptionSpec
from ustack.conform.syscalls import check_outcome, Outcome
from ustack.conform.kernel_syscalls import LINUX_CONSTANTS
from ustack.wire import TcpOptions, TcpSegment, build_tcp_packet, parse_packet
from ustack.wire.ipv4 import address_value

SOURCE = address_value("192.0.2.1")
DESTINATION = address_value("192.168.0.1")


def test_times_may_start_with_a_dot():
    script = parse_text("    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n  +.1 close(3) = 0\n+.001 close(3) = 0\n")
    assert [event.time.start for event in script.events] == [0.0, 0.1, 0.001]
    assert script.events[1].time.relative


def test_relative_ranges_and_blocking_times():
    script = parse_text("+.2~+.4 > P. 1:1001(1000) ack 1\n+0...0.200 accept(3, ..., ...) = 4\n")
    first, second = script.events
    assert (first.time.kind, first.time.start, first.time.end, first.time.relative) == ("range", 0.2, 0.4, True)
    assert (second.time.kind, second.time.start, second.time.end) == ("blocking", 0.0, 0.2)


def test_prose_after_a_hash_is_a_comment_but_a_c_directive_is_not():
    script = parse_text("#Since Linux 4.x this is prose\n#we check\n0 close(3) = 0\n")
    assert len(script.events) == 1
    with pytest.raises(ParseError, match="unknown directive #define"):
        parse_text("#define X 1\n")


def test_a_call_goes_on_over_line_breaks_inside_brackets():
    script = parse_text("+0...0.010 poll([{fd=3,\n   events=POLLIN|POLLOUT,\n   revents=POLLOUT}], 1, 10) = 1\n+0 close(3) = 0\n")
    assert [event.name for event in script.events] == ["poll", "close"]
    assert script.events[1].line == 4


def test_sized_struct_fields():
    script = parse_text("0 sendmsg(4, {msg_name(...)=..., msg_iov(1)=[{iov_base=..., iov_len=10}], msg_flags=0}, 0) = 10\n")
    fields = dict(script.events[0].args[1].fields)
    assert set(fields) == {"msg_name", "msg_iov", "msg_flags"}


def test_fast_open_options_parse_with_and_without_a_cookie():
    script = parse_text("0 < S 0:0(0) win 100 <mss 1460,FO abcd1234,nop,nop>\n0 > S 0:0(0) <mss 1460,FO,FOEXP>\n")
    assert script.events[0].options[1] == OptionSpec("FO", "abcd1234")
    assert script.events[1].options[1:] == (OptionSpec("FO", None), OptionSpec("FOEXP", None))


def test_outbound_option_wildcard():
    script = parse_text("0 > S 0:0(0) <...>\n")
    assert script.events[0].options is None


def test_profiles_are_chosen_by_the_suite_a_script_belongs_to():
    assert script_profile("/work/shared/conformance/freebsd-tcp-testsuite/snippets/x.pkt") == FREEBSD
    assert script_profile("/work/shared/conformance/packetdrill-linux/tcp/close/x.pkt") == LINUX
    assert PROFILE_DEFINES[FREEBSD] == frozenset({"STANDARD"}) and PROFILE_DEFINES[LINUX] == frozenset()


def test_linux_constants_are_linux_values():
    script = parse_text("0 fcntl(3, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)\n")
    event = script.events[0]
    assert check_outcome(event, Outcome(0x802), LINUX_CONSTANTS) is None
    assert "returned 2" in check_outcome(event, Outcome(2), LINUX_CONSTANTS)
    assert LINUX_CONSTANTS["O_NONBLOCK"] == 0o4000 and LINUX_CONSTANTS["SOL_TCP"] == 6


def test_tcp_info_fields_are_compared_one_by_one():
    script = parse_text("0 getsockopt(4, SOL_TCP, TCP_INFO, {tcpi_state=1, tcpi_snd_cwnd=10, tcpi_rtt=...}, [200]) = 0\n")
    event = script.events[0]
    good = {"tcpi_state": 1, "tcpi_snd_cwnd": 10, "tcpi_rtt": 123}
    assert check_outcome(event, Outcome(0, None, {3: good}), LINUX_CONSTANTS) is None
    problem = check_outcome(event, Outcome(0, None, {3: dict(good, tcpi_snd_cwnd=4)}), LINUX_CONSTANTS)
    assert problem == "getsockopt gave tcpi_snd_cwnd=4 where the script expects 10"


def _syn(options: TcpOptions = TcpOptions(mss=1460), payload: bytes = b"") -> bytes:
    return build_tcp_packet(SOURCE, DESTINATION, TcpSegment(50000, 8080, 1000, 0, 0x02, 1000, 0, options, payload))


def test_an_md5_option_added_to_a_packet_keeps_its_checksums_and_reads_back():
    digest = bytes(range(16))
    packet = add_options(_syn(payload=b"hello"), raw_option_bytes(OptionSpec("md5", digest.hex())))
    parsed = parse_packet(packet)  # raises on a wrong checksum or length
    assert parsed.tcp.payload == b"hello" and parsed.tcp.options.mss == 1460
    assert bytes((19, 18)) + digest in packet  # RFC 2385 3.0: kind 19, length 18


def test_option_lengths_as_written():
    options = (OptionSpec("mss", 1460), OptionSpec("nop"), OptionSpec("nop"), OptionSpec("sackOK"),
               OptionSpec("nop"), OptionSpec("wscale", 8), OptionSpec("FO", "abcd1234"), OptionSpec("nop"),
               OptionSpec("nop"))
    assert options_length(options) == 4 + 2 + 2 + 1 + 3 + 6 + 2


def test_a_partial_checksum_from_checksum_offload_is_completed():
    packet = bytearray(_syn(payload=b"data"))
    struct.pack_into("!H", packet, 20 + 16, 0x1234)  # what the kernel leaves with TUN_F_CSUM
    assert parse_packet(fill_tcp_checksum(bytes(packet))).tcp.payload == b"data"


def test_unsupported_features_are_found_before_anything_runs():
    script = parse_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 recvmmsg(3, ..., 1, 0, NULL) = 1\n")
    problem, line = find_kernel_unsupported(script)
    assert (problem.feature, line) == ("syscall recvmmsg", 2)
    script = parse_text("--ip_version=ipv4-mapped-ipv6\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
    assert find_kernel_unsupported(script)[0].feature == "--ip_version=ipv4-mapped-ipv6"
    script = parse_text("--ip_version=ipv6\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
    assert find_kernel_unsupported(script) is None


def test_freebsd_sysctls_are_said_the_linux_way_or_skipped():
    from ustack.conform.profile import Unsupported, linux_command_for_freebsd_sysctl

    assert linux_command_for_freebsd_sysctl("net.inet.tcp.sack.enable", 0) == "sysctl -q -w net.ipv4.tcp_sack=0"
    assert linux_command_for_freebsd_sysctl("net.inet.tcp.blackhole", 0) == "true"  # what Linux does anyway
    with pytest.raises(Unsupported, match="net.inet.tcp.blackhole"):
        linux_command_for_freebsd_sysctl("net.inet.tcp.blackhole", 2)  # Linux always answers with a RST

"""The packetdrill-dialect parser: every script of the FreeBSD suite, and the tricky lines one by one."""

from __future__ import annotations


import pytest

from ustack.conform.lexer import ParseError
from ustack.conform.parser import parse_file, parse_text
from ustack.conform.script import (
    ELLIPSIS,
    ArrayExpr,
    BinaryExpr,
    CallExpr,
    CodeEvent,
    IntExpr,
    NameExpr,
    OptionSpec,
    PacketEvent,
    ShellEvent,
    StringExpr,
    StructExpr,
    SyscallEvent,
    TimeSpec,
)

from conform.suite_path import SUITE, needs_suite
GROUPS = {
    "state-event-engine": 307,  # the suite README says 318; the directory holds 307
    "rcv-data-segments": 217,
    "snippets": 21,
    "snd-syn": 15,
    "socket-api": 11,
    "rcv-icmp": 7,
}



def one_event(line: str):
    script = parse_text(line + "\n", "test.pkt")
    assert len(script.events) == 1
    return script.events[0]


# --------------------------------------------------------------------------- the whole suite


@needs_suite
@pytest.mark.parametrize("group", sorted(GROUPS))
@pytest.mark.parametrize("defines", [frozenset({"STANDARD"}), frozenset({"FreeBSD"})], ids=["STANDARD", "FreeBSD"])
def test_every_script_of_the_group_parses(group, defines):
    paths = sorted((SUITE / group).rglob("*.pkt"))
    assert len(paths) == GROUPS[group]
    failures = []
    for path in paths:
        try:
            script = parse_file(path, defines)
        except ParseError as error:
            failures.append(str(error))
            continue
        if not script.events:
            failures.append(f"{path}: no events")
    assert not failures, "\n".join(failures)


@needs_suite
def test_the_suite_has_578_scripts():
    assert sum(1 for _ in SUITE.rglob("*.pkt")) == sum(GROUPS.values()) == 578


@needs_suite
def test_ifdef_branches_follow_the_defines():
    path = SUITE / "state-event-engine/rcv-syn-time-wait/rcv-syn-time-wait-using-shutdown-left-edge-secure-ipv4.pkt"
    standard = parse_file(path, frozenset({"STANDARD"}))
    freebsd = parse_file(path, frozenset({"FreeBSD"}))
    commands = lambda script: [event.command for event in script.events if isinstance(event, ShellEvent)]  # noqa: E731
    assert "tcpdrop -s TIME_WAIT" in commands(freebsd)
    assert "tcpdrop -s TIME_WAIT" not in commands(standard)
    # Line numbers stay those of the file, whichever branch is taken.
    assert standard.events[-1].line == freebsd.events[-1].line


# --------------------------------------------------------------------------- headers and times


def test_options_headers_are_kept_in_order():
    script = parse_text("--ip_version=ipv4\n--tolerance_usecs=75000\n--flag\n0 close(3) = 0\n")
    assert list(script.options.items()) == [("ip_version", "ipv4"), ("tolerance_usecs", "75000"), ("flag", None)]
    assert script.tolerance == 0.075


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0.00", TimeSpec("exact", 0.0, None, False)),
        ("+0.10", TimeSpec("exact", 0.1, None, True)),
        ("+ 0.00", TimeSpec("exact", 0.0, None, True)),
        ("*", TimeSpec("any")),
        ("0.1~0.2", TimeSpec("range", 0.1, 0.2, False)),
        ("+0.1~+0.25", TimeSpec("range", 0.1, 0.25, True)),
        ("1.00...6.00", TimeSpec("blocking", 1.0, 6.0, False)),
        ("+0...0.5", TimeSpec("blocking", 0.0, 0.5, True)),
        ("3", TimeSpec("exact", 3.0, None, False)),
    ],
)
def test_time_forms(text, expected):
    assert one_event(f"{text} close(3) = 0").time == expected


def test_a_range_that_ends_before_it_starts_is_an_error():
    with pytest.raises(ParseError, match="test.pkt:1: time range 0.3~0.2"):
        parse_text("0.3~0.2 close(3) = 0\n", "test.pkt")


def test_blocking_time_only_on_system_calls():
    with pytest.raises(ParseError, match="only allowed on a system call"):
        parse_text("0...1 > S 0:0(0) win 1\n", "test.pkt")


# --------------------------------------------------------------------------- packets


def test_outbound_syn_with_freebsd_options():
    event = one_event("+0.00 > S  0:0(0)       win 65535 <mss 1460,nop,wscale 6,sackOK,TS val 100 ecr 0>")
    assert isinstance(event, PacketEvent)
    assert (event.direction, event.flags, event.seq_start, event.seq_end, event.payload_length) == (">", "S", 0, 0, 0)
    assert event.ack is None and event.window == 65535
    assert event.options == (
        OptionSpec("mss", 1460),
        OptionSpec("nop"),
        OptionSpec("wscale", 6),
        OptionSpec("sackOK"),
        OptionSpec("TS", (100, 0)),
    )


def test_sack_blocks_with_spaces_after_commas_and_several_blocks():
    event = one_event("+0.10 < (tos 0x28)  .    1:1(0)  ack 2921 win 32767 <sack 4381:5841, nop, nop>")
    assert event.options == (OptionSpec("sack", ((4381, 5841),)), OptionSpec("nop"), OptionSpec("nop"))
    assert event.ip_info == (("tos", 0x28),)
    event = one_event("+0.00 > . 1:1(0) ack 100 win 65535 <nop,nop,sack 50:100 600:700 400:500 200:300>")
    assert event.options[2].value == ((50, 100), (600, 700), (400, 500), (200, 300))


def test_any_options_and_any_sequence_number():
    event = one_event("*      > S  0:0(0) win 65535 <...>")
    assert event.options is None and event.time.kind == "any"
    event = one_event("+0.00 > S. ...(0) ack 1 win 65535 <mss 1460,sackOK,eol,eol>")
    assert event.seq_start is None and event.payload_length == 0
    assert event.options[-2:] == (OptionSpec("eol"), OptionSpec("eol"))


def test_any_options_on_an_inbound_packet_is_an_error():
    with pytest.raises(ParseError, match="x.pkt:2: <...> .*outbound"):
        parse_text("\n+0 < S 0:0(0) win 1 <...>\n", "x.pkt")


def test_absolute_sequence_udp_encapsulation_md5_and_ecn_markers():
    event = one_event("+0.00 > (tos 0x20) R.    0:0(0)!      ack    2 win     0 <nop,nop,md5 valid>/udp(9811 > 1)")
    assert event.seq_absolute and event.flags == "R." and event.window == 0
    assert event.udp_ports == (9811, 1)
    assert event.options[-1] == OptionSpec("md5", "valid")
    event = one_event("+0.00 <[noecn] . 1:1(0) ack 1 win 65535")
    assert event.ip_info == (("noecn", None),)
    event = one_event("+0.00 > SEW  0:0(0) win 65535 <mss 1460>")
    assert event.flags == "SEW"


def test_timestamp_echo_absolute_and_value_ellipsis():
    event = one_event("+0 < . 1:1(0) ack 1 win 257 <nop,nop,TS val ... ecr 700!>")
    assert event.options[2] == OptionSpec("TS", (None, 700), True)


def test_data_segment_length_must_match_its_range():
    event = one_event("+0.00 <  .   1:100(99)  ack   1 win 65535")
    assert (event.seq_start, event.seq_end, event.payload_length) == (1, 100, 99)
    with pytest.raises(ParseError, match="t.pkt:1: inconsistent sequence range 1:100\\(98\\)"):
        parse_text("+0 < . 1:100(98) ack 1 win 1\n", "t.pkt")


def test_sequence_range_may_wrap():
    event = one_event("+0 < . 4294967000:4(300) ack 1 win 1")
    assert event.seq_end == 4


def test_unknown_flag_and_unknown_option_are_named():
    with pytest.raises(ParseError, match="unknown TCP flag 'X'"):
        parse_text("+0 < SX 0:0(0) win 1\n", "t.pkt")
    with pytest.raises(ParseError, match="unknown TCP option 'fastopen'"):
        parse_text("+0 > S 0:0(0) win 1 <fastopen>\n", "t.pkt")


def test_an_inbound_packet_needs_a_window():
    with pytest.raises(ParseError, match="w.pkt:1: an inbound packet needs its window"):
        parse_text("+0 < S 0:0(0) <mss 1460>\n", "w.pkt")
    assert one_event("+0 > S 0:0(0) <mss 1460>").window is None  # outbound: any window


def test_urgent_pointer():
    event = one_event("+0 < UP. 1:11(10) ack 1 win 100 urg 5")
    assert (event.flags, event.urgent, event.window) == ("UP.", 5, 100)


@pytest.mark.parametrize(
    "line, kind, code, mtu, quoted",
    [
        ("+0.10 < icmp unreachable port_unreachable [4294967295:4294967295(0)]", "unreachable", "port_unreachable", None, (4294967295, 4294967295, 0)),
        ("+0.10 <icmp unreachable net_unreachable [1:1(0)]", "unreachable", "net_unreachable", None, (1, 1, 0)),
        ("+0.10 < icmp unreachable frag_needed mtu 1500 [1:1461(1460)]", "unreachable", "frag_needed", 1500, (1, 1461, 1460)),
        ("+0.10 < icmp source_quench [0:0(0)]", "source_quench", None, None, (0, 0, 0)),
        ("+0.10 < icmp parameter_problem code_0 [0:0(0)]", "parameter_problem", "code_0", None, (0, 0, 0)),
    ],
)
def test_icmp_lines(line, kind, code, mtu, quoted):
    event = one_event(line)
    assert event.is_icmp
    icmp = event.icmp
    assert (icmp.type, icmp.code, icmp.mtu) == (kind, code, mtu)
    assert (icmp.echoed_start, icmp.echoed_end, icmp.echoed_length) == quoted


# --------------------------------------------------------------------------- system calls


def test_syscall_with_errno_and_its_text():
    event = one_event("+0.00 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)")
    assert isinstance(event, SyscallEvent)
    assert event.name == "connect" and event.args == (IntExpr(3, "3"), ELLIPSIS, ELLIPSIS)
    assert event.result == IntExpr(-1, "-1")
    assert (event.errno, event.note) == ("EINPROGRESS", "Operation now in progress")


def test_syscall_note_without_errno_and_hex_result():
    event = one_event("+0.00 fcntl(3, F_GETFL) = 0x02 (flags O_RDWR)")
    assert event.result == IntExpr(2, "0x02") and event.errno is None and event.note == "flags O_RDWR"


def test_syscall_flags_or_arrays_and_errno_in_array():
    event = one_event("+0.00 fcntl(3, F_SETFL, O_RDWR | O_NONBLOCK) = 0")
    assert event.args[2] == BinaryExpr("|", NameExpr("O_RDWR"), NameExpr("O_NONBLOCK"))
    event = one_event("+0.00 getsockopt(4, SOL_SOCKET, SO_ERROR, [ECONNRESET], [4]) = 0")
    assert event.args[3] == ArrayExpr((NameExpr("ECONNRESET"),)) and event.args[4] == ArrayExpr((IntExpr(4, "4"),))


def test_syscall_struct_arguments():
    event = one_event("+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=0}, 8) = 0")
    assert event.args[3] == StructExpr((("l_onoff", IntExpr(1, "1")), ("l_linger", IntExpr(0, "0"))))
    event = one_event('+0 poll([{fd=3, events=POLLIN, revents=POLLIN}], 1, 0) = 1')
    (pollfd,) = event.args[0].items
    assert pollfd.fields[1] == ("events", NameExpr("POLLIN"))
    event = one_event('+0 bind(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.0.2.1")}, 16) = 0')
    fields = dict(event.args[1].fields)
    assert fields["sin_port"] == CallExpr("htons", (IntExpr(8080, "8080"),))
    assert fields["sin_addr"] == CallExpr("inet_addr", (StringExpr("192.0.2.1"),))


def test_space_before_the_argument_list_and_comment_glued_to_the_result():
    event = one_event("+0.00 write (4, ..., 1000) = 1000")
    assert event.name == "write"
    event = one_event("+0.00 close(3) = 0// the end")
    assert event.result == IntExpr(0, "0")


def test_missing_result_is_a_clear_error():
    with pytest.raises(ParseError, match=r"s.pkt:3: expected '= result' after close\(...\), found end of line"):
        parse_text("\n\n+0 close(3)\n", "s.pkt")


# --------------------------------------------------------------------------- shell and code


def test_backquoted_shell_with_and_without_time():
    script = parse_text(
        "      `kldstat -q -m tcpmd5 || kldload tcpmd5; echo 'add 1 ;\n"
        "             add 2 ;' | setkey -c`\n"
        " 0.00 `sysctl -w net.inet.tcp.rfc1323=1`\n"
        "+0.10 `sockstat -4 -P tcp -s | grep packetdril | grep -c TIME_WAIT | grep 1`\n",
        "t.pkt",
    )
    first, second, third = script.events
    assert first.time is None and first.line == 1 and "setkey -c" in first.command and "\n" in first.command
    assert second == ShellEvent(TimeSpec("exact", 0.0), 3, "sysctl -w net.inet.tcp.rfc1323=1")
    assert third.line == 4 and third.command.startswith("sockstat")


def test_code_block():
    event = one_event("+0.00 %{ assert tcpi_state == TCPI_CLOSE_WAIT }%")
    assert event == CodeEvent(TimeSpec("exact", 0.0, None, True), 1, "assert tcpi_state == TCPI_CLOSE_WAIT")


def test_unterminated_backquote_and_ifdef_are_errors():
    with pytest.raises(ParseError, match="u.pkt:2: backquoted command without its closing backquote"):
        parse_text("0 close(3) = 0\n+0 `sysctl -w x=1\n", "u.pkt")
    with pytest.raises(ParseError, match="u.pkt:1: #ifdef without #endif"):
        parse_text("#ifdef FreeBSD\n0 close(3) = 0\n", "u.pkt")
    with pytest.raises(ParseError, match="u.pkt:1: unknown directive #include"):
        parse_text("#include <x>\n", "u.pkt")


def test_event_without_time_is_an_error_naming_the_line():
    with pytest.raises(ParseError, match=r"v.pkt:2: expected a time \(such as 0.1, \+0.1 or \*\), found 'close'"):
        parse_text("0 close(3) = 0\nclose(3) = 0\n", "v.pkt")


def test_unreadable_file(tmp_path):
    with pytest.raises(ParseError, match="cannot read the script"):
        parse_file(tmp_path / "missing.pkt")

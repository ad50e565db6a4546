"""The virtual-time driver: each way a script can fail is detected and named."""

from __future__ import annotations

from ustack.conform.parser import parse_text
from ustack.conform.runner import FAIL, PASS, SKIPPED, run_script

HEADER = "--tolerance_usecs=10000\n 0.00 `sysctl -w net.inet.tcp.rfc1323=0`\n"
CONNECT = """\
+0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0.00 fcntl(3, F_SETFL, O_RDWR | O_NONBLOCK) = 0
+0.00 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0.00 > S 0:0(0) win 65535 <mss 1460,sackOK>
+0.05 < S. 0:0(0) ack 1 win 32768 <mss 1460,sackOK>
+0.00 > . 1:1(0) ack 1 win 65535
"""


def run(body: str):
    return run_script(parse_text(HEADER + body, "t.pkt"))


def test_a_correct_script_passes():
    result = run(CONNECT + "+0.00 %{ assert tcpi_state == TCPI_ESTABLISHED }%\n")
    assert result.status == PASS, result.text()


def test_wrong_field_fails_with_both_segments_in_tcpdump_form():
    result = run(CONNECT.replace("> . 1:1(0) ack 1 win 65535", "> . 1:1(0) ack 1 win 1000"))
    assert result.status == FAIL and result.key == "line 8 win"
    assert result.mismatch.expected == "Flags [.], seq 1, ack 1, win 1000, length 0"
    assert result.mismatch.actual == "Flags [.], seq 1, ack 1, win 65535, length 0"


def test_a_segment_the_script_does_not_expect_fails():
    # The peer's data is acknowledged after the delayed-ACK timeout, but the script says nothing
    # about it before its next event a second later.
    result = run(CONNECT + "+0.01 < P. 1:101(100) ack 1 win 32768\n+1.00 close(3) = 0\n")
    assert result.status == FAIL and result.key == "line 10 unexpected-segment"
    assert "Flags [.], seq 1, ack 101" in result.reason


def test_a_segment_that_never_comes_fails():
    result = run(CONNECT + "+0.00 > P. 1:11(10) ack 1 win 65535\n")
    assert result.status == FAIL and result.key == "line 9 missing-segment"
    assert result.reason.startswith("ustack sent nothing; the script expects")
    assert "Flags [P.], seq 1:11" in result.reason


def test_a_segment_at_the_wrong_time_fails():
    # ustack ACKs the SYN-ACK at once; the script claims half a second later.
    result = run(CONNECT.replace("+0.00 > . 1:1(0) ack 1 win 65535", "+0.50 > . 1:1(0) ack 1 win 65535"))
    assert result.status == FAIL and result.key == "line 8 timing"


def test_retransmission_timing_is_checked_on_virtual_time():
    # No SYN-ACK: the SYN is sent again after the initial RTO of 1 s (the profile's value).
    script = """\
+0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0.00 fcntl(3, F_SETFL, O_RDWR | O_NONBLOCK) = 0
+0.00 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0.00 > S 0:0(0) win 65535 <mss 1460,sackOK>
+1.00 > S 0:0(0) win 65535 <mss 1460,sackOK>
"""
    assert run(script).status == PASS
    assert run(script.replace("+1.00 > S", "+0.50 > S")).key == "line 7 timing"


def test_a_system_call_with_another_result_fails_unless_non_fatal():
    body = CONNECT + "+0.00 read(3, ..., 100) = 5\n"
    result = run(body)
    assert result.status == FAIL and result.key == "line 9 syscall"
    assert result.reason == "read returned -1 EAGAIN where the script expects 5"
    tolerant = run_script(parse_text("--non_fatal=syscall\n" + HEADER + body, "t.pkt"))
    assert tolerant.status == PASS and "line 10: " + result.reason in tolerant.warnings


def test_a_blocking_connect_returns_when_the_handshake_completes():
    script = """\
+0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0.00...0.10 connect(3, ..., ...) = 0
+0.00 > S 0:0(0) win 65535 <mss 1460,sackOK>
+0.10 < S. 0:0(0) ack 1 win 32768 <mss 1460,sackOK>
+0.00 > . 1:1(0) ack 1 win 65535
"""
    assert run(script).status == PASS
    late = run(script.replace("+0.00...0.10 connect", "+0.00...0.50 connect"))
    assert late.status == FAIL and "connect returned at 0.100 s, the script expects 0.500 s" in late.reason
    # Written without `...`, the call must return at once: one that blocks fails the script, as
    # against the kernel (and in packetdrill).
    at_once = run(script.replace("+0.00...0.10 connect", "+0.00 connect"))
    assert (at_once.status, at_once.key, at_once.reason) == (FAIL, "line 4 syscall", "connect blocked; the script expects it to return")


def test_state_checks():
    assert run(CONNECT + "+0.00 %{ assert tcpi_state == TCPI_CLOSE_WAIT }%\n").key == "line 9 state"
    counted = run(CONNECT + "+0.00 `sockstat -4 -P tcp -s | grep packetdril | grep -c ESTABLISHED | grep 1`\n")
    assert counted.status == PASS
    miscounted = run(CONNECT + "+0.00 `sockstat -4 -P tcp -s | grep packetdril | grep -c TIME_WAIT | grep 1`\n")
    assert miscounted.reason == "0 connections in TIME-WAIT where the script expects 1"


def test_unsupported_features_skip_the_script_and_name_the_feature():
    result = run("+0.00 `sysctl -w net.inet.tcp.blackhole=2`\n" + CONNECT)
    assert result.status == SKIPPED and result.key == "sysctl net.inet.tcp.blackhole=2" and result.line == 3
    result = run(CONNECT + "+0.00 > icmp unreachable port_unreachable [1:1(0)]\n")
    assert result.status == SKIPPED and result.key == "outbound_icmp"
    result = run("+0.00 `uname -a`\n")
    assert result.status == SKIPPED and result.key == "shell command"


def test_poll_linger_and_peek():
    body = CONNECT + """\
+0.00 poll([{fd=3, events=POLLIN|POLLOUT, revents=POLLOUT}], 1, 0) = 1
+0.01 < P. 1:101(100) ack 1 win 32768
+0.00 poll([{fd=3, events=POLLIN, revents=POLLIN}], 1, 0) = 1
+0.00 recv(3, ..., 1000, MSG_PEEK) = 100
+0.00 recv(3, ..., 60, MSG_PEEK) = 60
+0.00 read(3, ..., 1000) = 100
+0.00 setsockopt(3, SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=0}, 8) = 0
+0.00 close(3) = 0
+0.00 > R 1:1(0) win 0
"""
    result = run(body)
    assert result.status == PASS, result.text()
    wrong = run(body.replace("revents=POLLOUT}], 1, 0) = 1", "revents=POLLIN}], 1, 0) = 1"))
    assert wrong.reason == "poll gave revents 0x4 where the script expects 0x1"


def test_a_blocking_poll_waits_for_its_timeout():
    result = run(CONNECT + "+0.00...0.25 poll([{fd=3, events=POLLIN, revents=0}], 1, 250) = 0\n")
    assert result.status == PASS, result.text()


def test_socket_calls_answer_as_freebsd_does():
    script = """\
+0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0.00 fcntl(3, F_GETFL) = 0x02 (flags O_RDWR)
+0.00 fcntl(3, F_SETFL, O_RDWR | O_NONBLOCK) = 0
+0.00 fcntl(3, F_GETFL) = 0x06 (flags O_RDWR | O_NONBLOCK)
// SO_RCVBUF is the sysctl value until the MSS is known, then a whole number of segments.
+0.00 getsockopt(3, SOL_SOCKET, SO_RCVBUF, [65536], [4]) = 0
+0.00 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0.00 > S 0:0(0) win 65535 <mss 1460,sackOK>
+0.05 < S. 0:0(0) ack 1 win 32768 <mss 1460,sackOK>
+0.00 > . 1:1(0) ack 1 win 65535
+0.00 getsockopt(3, SOL_SOCKET, SO_RCVBUF, [65700], [4]) = 0
+0.00 read(3, ..., 10) = -1 EWOULDBLOCK (Operation would block)
// A reset: the error is reported once, then cleared.
+0.05 < R. 1:1(0) ack 1 win 0
+0.00 getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNRESET], [4]) = 0
+0.00 getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0
+0.00 close(3) = 0
"""
    result = run(script)
    assert result.status == PASS, result.text()
    wrong = run(script.replace("[ECONNRESET]", "[ECONNREFUSED]"))
    assert wrong.reason == "getsockopt gave ECONNRESET where the script expects [ECONNREFUSED]"


def test_refused_connect():
    script = """\
+0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0.00 fcntl(3, F_SETFL, O_RDWR | O_NONBLOCK) = 0
+0.00 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0.00 > S 0:0(0) win 65535 <mss 1460,sackOK>
+0.05 < R. 0:0(0) ack 1 win 0
+0.00 getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNREFUSED], [4]) = 0
+0.00 close(3) = 0
"""
    result = run(script)
    assert result.status == PASS, result.text()


def test_negotiated_options_and_calls_the_core_refuses():
    script = CONNECT + """\
+0.00 %{ assert tcpi_options == TCPI_OPT_SACK }%
+0.00 shutdown(3, SHUT_WR) = 0
+0.00 > F. 1:1(0) ack 1 win 65535
+0.00 write(3, ..., 10) = -1 EPIPE (Broken pipe)
"""
    result = run(script)
    assert result.status == PASS, result.text()
    assert run(script.replace("== TCPI_OPT_SACK", "== 0")).reason == "tcpi_options is 0x2 where the script expects 0x0"


def test_icmp_port_unreachable_refuses_a_connect_only_for_a_segment_in_flight():
    script = """\
+0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0.00 fcntl(3, F_SETFL, O_RDWR | O_NONBLOCK) = 0
+0.00 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0.00 > S 0:0(0) win 65535 <mss 1460,sackOK>
// Quoting a sequence number we never sent: ignored (RFC 5927 4.1).
+0.10 < icmp unreachable port_unreachable [1:1(0)]
+0.00 getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0
+0.10 < icmp unreachable port_unreachable [0:0(0)]
+0.00 getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNREFUSED], [4]) = 0
+0.00 close(3) = 0
"""
    result = run(script)
    assert result.status == PASS, result.text()


def test_the_host_under_test_is_the_real_stack():
    # The driver injects IPv4 packets into ustack.stack.Stack: an ICMP type the host ignores is
    # dropped there for its named reason, and the run says so.
    script = CONNECT + "+0.00 < icmp source_quench [1:1(0)]\n+0.00 close(3) = 0\n+0.00 > F. 1:1(0) ack 1 win 65535\n"
    result = run(script)
    assert result.status == PASS, result.text()
    assert "line 9: ICMP source_quench dropped by the host: icmp_type_4_ignored" in result.warnings


def test_two_active_opens_get_two_ephemeral_ports_from_the_host():
    # The second connection's SYN is matched on its own 4-tuple: the host gave it another port.
    second = CONNECT.replace("= 3", "= 4").replace("(3,", "(4,")
    result = run(CONNECT + second)
    assert result.status == PASS, result.text()

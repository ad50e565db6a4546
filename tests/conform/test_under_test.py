"""packetdrill's socket under test (ustack/conform/under_test.py), the one rule both backends of
`ustack drill` judge sent segments by: once a script opens a new socket, what the socket it left
still sends is passed over (with a warning), and so is a segment of any other connection; a
segment of the socket under test the script has no line for still fails. The kernel backend's
side runs in tests/drill (earlier-socket.pkt, against both backends)."""

from __future__ import annotations

from pathlib import Path

from ustack.conform.parser import parse_text
from ustack.conform.profile import LINUX
from ustack.conform.runner import FAIL, PASS, run_script
from ustack.conform.under_test import SocketUnderTest, Verdict
from ustack.wire.tcp import ACK, FIN, SYN

EARLIER_SOCKET = Path(__file__).resolve().parents[1] / "drill" / "scripts" / "earlier-socket.pkt"

CONNECT = """
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
   +0 > S 0:0(0) <mss 1460,sackOK,TS val 0 ecr 0,nop,wscale 8>
 +.05 < S. 0:0(0) ack 1 win 32768 <mss 1000,nop,wscale 6,nop,nop,sackOK>
   +0 > . 1:1(0) ack 1
"""
SECOND = """
 +.05 socket(..., SOCK_STREAM, IPPROTO_TCP) = 4
   +0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 connect(4, ..., ...) = -1 EINPROGRESS (Operation now in progress)
   +0 > S 0:0(0) <mss 1460,sackOK,TS val 0 ecr 0,nop,wscale 8>
 +.05 < S. 0:0(0) ack 1 win 32768 <mss 1000,nop,wscale 6,nop,nop,sackOK>
   +0 > . 1:1(0) ack 1
"""


def run(text: str):
    return run_script(parse_text("`../common/defaults.sh`\n" + text, "linux/tcp/t.pkt"), LINUX)


def passed_over(result) -> list[str]:
    return [warning for warning in result.warnings if "passed over" in warning]


def test_the_fin_of_a_socket_the_script_left_is_passed_over():
    result = run_script(parse_text(EARLIER_SOCKET.read_text(), str(EARLIER_SOCKET)), LINUX)
    assert result.status == PASS, result.text()
    [warning] = passed_over(result)
    assert "of an earlier socket" in warning and "Flags [F.], seq 1, ack 1" in warning


def test_the_same_fin_on_the_socket_under_test_is_unexpected():
    # No new socket(): the FIN belongs to the socket the script still follows, and it says
    # nothing of it before its next event.
    result = run(CONNECT + " +.01 close(3) = 0\n +.05 %{ pass }%\n")
    assert result.status == FAIL and result.key == "line 10 unexpected-segment", result.text()
    assert "Flags [F.], seq 1, ack 1" in result.reason


def test_a_late_segment_of_the_left_socket_is_passed_over_also_while_waiting_for_the_new_syn():
    # Socket 3 answers the script's FIN at once; the script expects socket 4's SYN next.
    body = CONNECT + " +.01 < F. 1:1(0) ack 1 win 257\n" + SECOND.replace("+.05 socket", "+0 socket")
    result = run(body)
    assert result.status == PASS, result.text()
    assert any("of an earlier socket" in warning and "Flags [.], seq 1, ack 2" in warning
               for warning in passed_over(result)), result.warnings


def test_a_segment_of_another_connection_is_passed_over():
    # Socket 4 is under test; data written on socket 3 leaves on a connection the script left.
    body = CONNECT + SECOND + "   +0 write(3, ..., 100) = 100\n +.01 < . 1:1(0) ack 1 win 257\n +.05 %{ pass }%\n"
    result = run(body)
    assert result.status == PASS, result.text()
    assert any("of another connection" in warning and "seq 1:101" in warning for warning in passed_over(result))
    # The same write on the socket under test is judged: the script has no line for it.
    judged = run(body.replace("write(3,", "write(4,"))
    assert judged.status == FAIL and judged.key.endswith("unexpected-segment"), judged.text()


def test_the_rule():
    rule = SocketUnderTest()
    under_test = (40000, 50000)
    assert rule.judge(ACK, under_test, under_test) is Verdict.JUDGED
    assert rule.judge(ACK | FIN, (40001, 50000), under_test) is Verdict.OTHER_CONNECTION
    assert rule.judge(SYN, (40001, 50000), under_test) is Verdict.OPENS  # a connect() from a new port
    assert rule.judge(SYN, under_test, under_test) is Verdict.JUDGED  # our SYN again
    rule.socket_created()
    assert rule.judge(ACK | FIN, under_test, under_test) is Verdict.EARLIER_SOCKET
    assert rule.judge(SYN | ACK, under_test, under_test) is Verdict.EARLIER_SOCKET
    assert rule.judge(SYN, under_test, under_test) is Verdict.OPENS  # the new socket's connect()
    assert rule.judge(ACK, under_test, under_test) is Verdict.JUDGED
    rule.socket_created()
    rule.script_sent()  # the script spoke to the new socket (a listener's SYN): its answer is judged
    assert rule.judge(SYN | ACK, under_test, under_test) is Verdict.JUDGED
    assert [verdict.passed_over for verdict in Verdict] == [False, False, True, True]

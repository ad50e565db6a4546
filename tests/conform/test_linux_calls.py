"""The Linux scripts' calls and `%{ }%` blocks against ustack (linux_calls.py, tcp_info.py): each
test is a small script in the suite's style, run on virtual time with the Linux profile, that
passes as written and fails (or is skipped, naming the feature) when one value is changed."""

from __future__ import annotations

import pytest

from ustack.conform.parser import parse_text
from ustack.conform.profile import LINUX, Unsupported
from ustack.conform.runner import FAIL, PASS, SKIPPED, run_script
from ustack.conform.tcp_info import check_code_block, run_code_block

ACCEPTED = """
`../common/defaults.sh`
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>
  +.1 < . 1:1(0) ack 1 win 257
   +0 accept(3, ..., ...) = 4
"""


def run(body: str):
    return run_script(parse_text(ACCEPTED + body, "linux/tcp/t.pkt"), LINUX)


def test_tcp_info_blocks_see_the_connection_in_linux_units():
    body = """
   +0 %{ CWND_AT_START = 10 }%
   +0 write(4, ..., 5000) = 5000
   +0 > P. 1:5001(5000) ack 1
   +0 %{
assert tcpi_state == TCP_ESTABLISHED, tcpi_state
assert tcpi_ca_state == TCP_CA_Open, tcpi_ca_state
assert tcpi_snd_cwnd == CWND_AT_START, tcpi_snd_cwnd
assert tcpi_snd_ssthresh == 0x7fffffff, tcpi_snd_ssthresh
assert tcpi_unacked == 5, tcpi_unacked
assert tcpi_snd_mss == 1000 and tcpi_advmss == 1460
assert tcpi_options == TCPI_OPT_SACK | TCPI_OPT_WSCALE, tcpi_options
assert 99000 <= tcpi_rtt <= 101000, tcpi_rtt
}%
  +.1 < . 1:1(0) ack 5001 win 257
   +0 %{ assert tcpi_unacked == 0, tcpi_unacked }%
"""
    result = run(body)
    assert result.status == PASS, result.text()
    wrong = run(body.replace("tcpi_unacked == 5", "tcpi_unacked == 4"))
    assert (wrong.status, wrong.line, wrong.reason) == (FAIL, 15, "assertion failed in the Python block: assert tcpi_unacked == 4, tcpi_unacked -> 5")


def test_a_block_reading_a_field_ustack_does_not_give_is_skipped_before_running():
    result = run("   +0 %{ assert tcpi_busy_time == 0 }%\n")
    assert (result.status, result.key) == (SKIPPED, "tcp_info field tcpi_busy_time")
    with pytest.raises(Unsupported, match="not Python"):
        check_code_block("assert tcpi_state ==")


def test_blocks_share_what_they_define_and_report_what_they_print():
    variables, printed = {}, []
    assert run_code_block("LIMIT = 3", {}, variables, "t", printed.append) is None
    assert run_code_block("print(LIMIT + tcpi_x)", {"tcpi_x": 1}, variables, "t", printed.append) is None
    assert printed == ["4"] and "tcpi_x" not in variables
    assert run_code_block("1 / 0", {}, variables, "t", printed.append).startswith("error in the Python block")


def test_epoll_edge_triggered_reports_each_wakeup_once():
    body = """
   +0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 epoll_create(1) = 5
   +0 epoll_ctl(5, EPOLL_CTL_ADD, 4, {events=EPOLLOUT|EPOLLIN|EPOLLET, fd=4}) = 0
   +0 epoll_wait(5, {events=EPOLLOUT, fd=4}, 1, 0) = 1
   +0 epoll_wait(5, {events=0, ptr=0}, 1, 0) = 0
   +0 < P. 1:1001(1000) ack 1 win 257
   +0 epoll_wait(5, {events=EPOLLIN|EPOLLOUT, fd=4}, 1, 0) = 1
   +0 read(4, ..., 500) = 500
   +0 epoll_wait(5, {events=0, ptr=0}, 1, 0) = 0
   +0 ioctl(4, SIOCINQ, [500]) = 0
"""
    result = run(body)
    assert result.status == PASS, result.text()
    # Level-triggered, the same socket is reported on every call while it is ready.
    level = run(body.replace("EPOLLOUT|EPOLLIN|EPOLLET", "EPOLLOUT|EPOLLIN"))
    assert (level.status, level.line) == (FAIL, 16)


def test_send_variants_null_buffers_and_unsupported_flags():
    body = """
   +0 sendto(4, ..., 1000, 0, ..., ...) = 1000
   +0 > P. 1:1001(1000) ack 1
 +.01 < . 1:1(0) ack 1001 win 257
   +0 sendmsg(4, {msg_name(...)=..., msg_iov(2)=[{..., 300}, {..., 200}], msg_flags=0}, 0) = 500
   +0 > P. 1001:1501(500) ack 1
   +0 write(4, NULL, 1000) = -1 EFAULT (Bad address)
   +0 recvfrom(4, NULL, 1000, 0, ..., ...) = -1 EFAULT (Bad address)
"""
    result = run(body)
    assert result.status == PASS, result.text()
    corked = run("   +0 send(4, ..., 40, MSG_MORE) = 40\n")
    assert (corked.status, corked.key) == (SKIPPED, "MSG_MORE")


def test_the_script_chooses_the_descriptor_and_sndbuf_is_doubled_and_live():
    body = """
   +0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 7
   +0 close(7) = 0
   +0 setsockopt(4, SOL_SOCKET, SO_SNDBUF, [3000], 4) = 0
   +0 getsockopt(4, SOL_SOCKET, SO_SNDBUF, [6000], [4]) = 0
   +0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 write(4, ..., 20000) = 6000
"""
    result = run(body)
    assert result.status == PASS, result.text()


def test_a_blocking_write_returns_once_everything_is_queued():
    body = """
   +0 setsockopt(4, SOL_SOCKET, SO_SNDBUF, [5000], 4) = 0
   +0...0.1 write(4, ..., 15000) = 15000
   +0 > P. 1:10001(10000) ack 1
  +.1 < . 1:1(0) ack 10001 win 257
   +0 > P. 10001:15001(5000) ack 1
"""
    result = run(body)
    assert result.status == PASS, result.text()


TICKED = """--tcp_ts_tick_usecs=1000
`../common/defaults.sh`
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 20000 <mss 1000,sackOK,TS val 100 ecr 0>
   +0 > S. 0:0(0) ack 1 <mss 1460,sackOK,TS val 100 ecr 100>
  +.1 < . 1:1(0) ack 1 win 20000 <nop,nop,TS val 200 ecr 100>
   +0 accept(3, ..., ...) = 4
   +1 close(4) = 0
   +0 > F. 1:1(0) ack 1 <nop,nop,TS val 1200 ecr 200>
"""


def test_tsvals_are_checked_when_the_script_gives_its_tick():
    assert run_script(parse_text(TICKED, "linux/tcp/t.pkt"), LINUX).status == PASS
    late = run_script(parse_text(TICKED.replace("TS val 1200", "TS val 1300"), "linux/tcp/t.pkt"), LINUX)
    assert (late.status, late.line) == (FAIL, 11) and "TS val 1100" in late.reason
    # Without the option our TSval is our own clock and only the echo is compared.
    unticked = TICKED.replace("--tcp_ts_tick_usecs=1000\n", "").replace("TS val 1200", "TS val 1300")
    assert run_script(parse_text(unticked, "linux/tcp/t.pkt"), LINUX).status == PASS


FAST_OPEN_THEN_FLUSH = """
`../common/defaults.sh`
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 sendto(3, ..., 0, MSG_FASTOPEN, ..., ...) = -1 EINPROGRESS (Operation is now in progress)
   +0 > S 0:0(0) <mss 1460,sackOK,TS val 0 ecr 0,nop,wscale 8,FO,nop,nop>
 +.01 < S. 123:123(0) ack 1 win 5840 <mss 1460,nop,nop,sackOK,nop,wscale 6,FO abcd1234,nop,nop>
   +0 > . 1:1(0) ack 1
   +0 close(3) = 0
   +0 > F. 1:1(0) ack 1
   +0 `ip tcp_metrics flush all > /dev/null 2>&1`
 +.01 socket(..., SOCK_STREAM, IPPROTO_TCP) = 4
   +0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 sendto(4, ..., 100, MSG_FASTOPEN, ..., ...) = -1 EINPROGRESS (Operation is now in progress)
   +0 > S 0:0(0) <mss 1460,sackOK,TS val 0 ecr 0,nop,wscale 8,FO,nop,nop>
"""


def test_flushing_tcp_metrics_forgets_the_fast_open_cookie():
    # Linux keeps a client's Fast Open cookies among its per-destination metrics (tcp_metrics.c):
    # after the flush the next SYN asks for a cookie again instead of carrying the old one and data.
    result = run_script(parse_text(FAST_OPEN_THEN_FLUSH, "linux/tcp/t.pkt"), LINUX)
    assert result.status == PASS, result.text()
    kept = run_script(parse_text(FAST_OPEN_THEN_FLUSH.replace("`ip tcp_metrics flush all > /dev/null 2>&1`", "%{ pass }%"),
                                 "linux/tcp/t.pkt"), LINUX)
    # Without the flush the cookie is still known: the data goes on the SYN and sendto takes it.
    assert (kept.status, kept.reason) == (FAIL, "sendto returned 100 where the script expects -1 EINPROGRESS"), kept.text()


RESET_IN_SYN_SENT = """
`../common/defaults.sh`
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
   +0 > S 0:0(0) <mss 1460,sackOK,TS val 0 ecr 0,nop,wscale 8>
   +0 poll([{fd=3, events=POLLIN|POLLOUT|POLLERR|POLLHUP, revents=0}], 1, 0) = 0
 +.01 < R. 0:0(0) ack 1 win 0
   +0 poll([{fd=3, events=POLLIN|POLLOUT|POLLERR|POLLHUP, revents=POLLIN|POLLOUT|POLLERR|POLLHUP}], 1, 0) = 1
"""


def test_poll_after_a_reset_in_syn_sent_is_readable_writable_error_and_hangup():
    # As Linux's tcp_poll: the reset shut both sides (tcp_done), so POLLIN and POLLOUT come with
    # POLLERR and POLLHUP (fastopen/client/poll.pkt relies on it).
    result = run_script(parse_text(RESET_IN_SYN_SENT, "linux/tcp/t.pkt"), LINUX)
    assert result.status == PASS, result.text()
    wrong = run_script(parse_text(RESET_IN_SYN_SENT.replace("revents=POLLIN|POLLOUT|", "revents="), "linux/tcp/t.pkt"), LINUX)
    assert wrong.status == FAIL and "poll gave revents 0x1d where the script expects 0x18" in wrong.reason, wrong.text()


DEFERRED_CONNECT = """
`../common/defaults.sh
 ../common/set_sysctls.py /proc/sys/net/ipv4/tcp_timestamps=0`
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 sendto(3, ..., 0, MSG_FASTOPEN, ..., ...) = -1 EINPROGRESS (Operation is now in progress)
   +0 > S 0:0(0) <mss 1460,nop,nop,sackOK,nop,wscale 8,FO,nop,nop>
 +.01 < S. 123:123(0) ack 1 win 5840 <mss 1460,nop,nop,sackOK,nop,wscale 6,FO abcd1234,nop,nop>
   +0 > . 1:1(0) ack 1
 +.01 close(3) = 0
   +0 > F. 1:1(0) ack 1
 +.01 < F. 1:1(0) ack 2 win 92
   +0 > . 2:2(0) ack 2
 +.01 socket(..., SOCK_STREAM, IPPROTO_TCP) = 4
   +0 setsockopt(4, SOL_TCP, TCP_FASTOPEN_CONNECT, [1], 4) = 0
   +0 connect(4, ..., ...) = 0
   +0...0.020 CALL = 1900
   +0 > S 0:1420(1420) <mss 1460,nop,nop,sackOK,nop,wscale 8,FO abcd1234,nop,nop>
 +.02 < S. 5678:5678(0) ack 1421 win 5840 <mss 1460,nop,nop,sackOK,nop,wscale 6>
   +0 > P. 1421:1901(480) ack 1
"""


@pytest.mark.parametrize("call", ["write(4, ..., 1900)", "send(4, ..., 1900, 0)", "sendto(4, ..., 1900, 0, ..., ...)",
                                  "sendmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 1900}], msg_flags=0}, 0)"])
def test_after_tcp_fastopen_connect_every_blocking_send_carries_data_on_the_syn_and_waits(call):
    # As Linux's tcp_sendmsg (DEFER_CONNECT -> tcp_sendmsg_fastopen), whatever the call: the SYN
    # carries what fits, the call returns with the handshake (20 ms), the rest follows its ACK.
    result = run_script(parse_text(DEFERRED_CONNECT.replace("CALL", call), "linux/tcp/t.pkt"), LINUX)
    assert result.status == PASS, result.text()
    early = run_script(parse_text(DEFERRED_CONNECT.replace("CALL", call).replace("+0...0.020", "+0...0.010"),
                                  "linux/tcp/t.pkt"), LINUX)
    assert early.status == FAIL and "returned at 0.060 s, the script expects 0.050 s" in early.reason, early.text()

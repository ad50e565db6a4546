"""SYN-SENT (RFC 9293 3.10.7.3): the active open."""

from __future__ import annotations

import errno

from tcp_script import *  # noqa: F403
from ustack.tcp import ConnectionFailed, State, TcpConfig, TcpError


def test_active_open_sends_syn():
    script = syn_sent()
    assert script.state_changes() == [(State.CLOSED, State.SYN_SENT)]
    assert script.connection.timers_armed() == {"retransmit": 1.0}


def test_syn_ack_establishes_and_is_acknowledged():
    script = syn_sent()
    script.now = 0.05
    script.receive(incoming(remote(0), local(1), SYN | ACK, options=TcpOptions(mss=1460)))
    script.expect(outgoing(local(1), remote(1)))
    script.expect_nothing()
    assert script.state_changes()[-1] == (State.SYN_SENT, State.ESTABLISHED)
    snapshot = script.connection.snapshot()
    assert snapshot.snd_una == local(1) and snapshot.rcv_nxt == remote(1)
    assert snapshot.srtt == 0.05  # the handshake is an RTT sample (RFC 6298 2.2)
    assert snapshot.timers == {}


def test_syn_ack_carrying_data_and_fin_delivers_both():
    script = syn_sent()
    script.receive(incoming(remote(0), local(1), SYN | ACK | FIN, payload=b"hi"))
    script.expect(outgoing(local(1), remote(4), window=BUFFER - 3))
    assert script.state is State.CLOSE_WAIT
    assert script.connection.recv(10, 0.0) == b"hi"
    assert script.connection.recv(10, 0.0) == b""


def test_simultaneous_open_goes_through_syn_received():
    script = syn_sent()
    script.receive(incoming(remote(0), 0, SYN, options=TcpOptions(mss=1460)))
    # RFC 9293 figure 8: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
    script.expect(outgoing(local(0), remote(1), SYN | ACK, options=TcpOptions(mss=1460)))
    assert script.state is State.SYN_RECEIVED
    # The peer's SYN-ACK repeats its SYN and acknowledges ours.
    script.receive(incoming(remote(0), local(1), SYN | ACK))
    script.expect_nothing()
    assert script.state_changes() == [
        (State.CLOSED, State.SYN_SENT),
        (State.SYN_SENT, State.SYN_RECEIVED),
        (State.SYN_RECEIVED, State.ESTABLISHED),
    ]


def test_rst_with_acceptable_ack_means_refused():
    script = syn_sent()
    script.receive(incoming(0, local(1), RST | ACK, window=0))
    script.expect_nothing()
    connection = script.connection
    assert connection.state is State.CLOSED and connection.error is TcpError.REFUSED
    assert connection.error.errno == errno.ECONNREFUSED
    assert ConnectionFailed(TcpError.REFUSED) in connection.events()
    assert connection.next_deadline() is None and connection.is_finished


def test_rst_without_ack_is_ignored():
    script = syn_sent()
    script.receive(incoming(remote(0), 0, RST))
    script.expect_nothing()
    assert script.state is State.SYN_SENT


def test_unacceptable_ack_draws_a_reset():
    script = syn_sent()
    script.receive(incoming(remote(0), local(5), SYN | ACK))
    script.expect(outgoing(local(5), 0, RST, window=0))
    assert script.state is State.SYN_SENT


def test_unacceptable_ack_on_a_reset_is_not_answered():
    script = syn_sent()
    script.receive(incoming(remote(0), local(5), RST | ACK))
    script.expect_nothing()
    assert script.state is State.SYN_SENT


def test_segment_without_syn_or_rst_is_dropped():
    script = syn_sent()
    script.receive(incoming(remote(0), local(1)))
    script.expect_nothing()
    assert script.connection.drops["no_syn_in_syn_sent"] == 1


def test_close_in_syn_sent_deletes_the_tcb():
    script = syn_sent()
    script.connection.close(0.0)
    assert script.state_changes()[-1] == (State.SYN_SENT, State.CLOSED)
    script.expect_nothing()
    assert script.connection.next_deadline() is None


def test_syn_is_retransmitted_with_backoff_then_the_open_times_out():
    script = syn_sent(TcpConfig(**{**CONFIG.__dict__, "syn_retries": 2}))
    syn = outgoing(LOCAL_ISS, 0, SYN, options=TcpOptions(mss=1460))
    assert script.advance_to_next_timer() == 1.0
    script.expect(syn)
    assert script.advance_to_next_timer() == 3.0  # RFC 6298 5.5: the RTO doubled
    script.expect(syn)
    assert script.advance_to_next_timer() == 7.0
    script.expect_nothing()
    connection = script.connection
    assert connection.state is State.CLOSED and connection.error is TcpError.TIMED_OUT
    assert connection.error.errno == errno.ETIMEDOUT
    assert connection.retransmissions == 2


def test_handshake_after_a_retransmitted_syn_takes_no_rtt_sample():
    script = syn_sent()
    script.advance_to_next_timer()
    script.expect(outgoing(LOCAL_ISS, 0, SYN, options=TcpOptions(mss=1460)))
    script.now = 1.2
    script.receive(incoming(remote(0), local(1), SYN | ACK))
    script.expect(outgoing(local(1), remote(1)))
    # Karn's rule: no sample; RFC 6298 5.7: the RTO for data is then 3 s.
    assert script.connection.rtt.srtt is None and script.connection.rtt.rto == 3.0


def test_shutdown_in_syn_sent_sends_fin_once_established():
    script = syn_sent()
    script.connection.send(b"abc", 0.0)
    script.connection.shutdown(0.0)
    script.expect_nothing()
    script.receive(incoming(remote(0), local(1), SYN | ACK))
    script.expect(outgoing(local(1), remote(1), ACK | PSH | FIN, payload=b"abc"))
    assert script.state is State.FIN_WAIT_1

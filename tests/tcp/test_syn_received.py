"""SYN-RECEIVED (RFC 9293 3.10.7.4 for the state that waits for the ACK of our SYN)."""

from __future__ import annotations

from tcp_script import *  # noqa: F403
from ustack.tcp import State, TcpConfig, TcpError


def test_ack_of_syn_establishes():
    script = established_passive()
    assert script.state_changes()[-1] == (State.SYN_RECEIVED, State.ESTABLISHED)
    assert script.connection.timers_armed() == {}


def test_rst_after_passive_open_returns_to_listen():
    script = syn_received()
    script.receive(incoming(remote(1), 0, RST))
    script.expect_nothing()
    assert script.state_changes()[-1] == (State.SYN_RECEIVED, State.LISTEN)
    assert script.connection.next_deadline() is None
    # and it can take the next SYN
    script.receive(incoming(remote(0), 0, SYN))
    script.expect(outgoing(local(0), remote(1), SYN | ACK, options=TcpOptions(mss=1460)))


def test_rst_after_simultaneous_open_is_refused():
    script = syn_sent()
    script.receive(incoming(remote(0), 0, SYN))
    script.expect(outgoing(local(0), remote(1), SYN | ACK, options=TcpOptions(mss=1460)))
    script.receive(incoming(remote(1), 0, RST))
    assert script.state_changes()[-1] == (State.SYN_RECEIVED, State.CLOSED)
    assert script.connection.error is TcpError.REFUSED


def test_rst_not_at_rcv_nxt_draws_a_challenge_ack():
    script = syn_received()
    script.receive(incoming(remote(100), 0, RST))
    script.expect(outgoing(local(1), remote(1)))
    assert script.state is State.SYN_RECEIVED


def test_unacceptable_ack_draws_a_reset():
    script = syn_received()
    script.receive(incoming(remote(1), local(9)))
    script.expect(outgoing(local(9), 0, RST, window=0))
    assert script.state is State.SYN_RECEIVED


def test_repeated_syn_repeats_the_syn_ack():
    script = syn_received()
    script.receive(incoming(remote(0), 0, SYN, options=TcpOptions(mss=1460)))
    script.expect(outgoing(local(0), remote(1), SYN | ACK, options=TcpOptions(mss=1460)))
    script.expect_nothing()
    assert script.connection.retransmissions == 1


def test_close_in_syn_received_sends_fin_after_the_ack_of_syn():
    script = syn_received()
    script.connection.close(0.0)
    assert script.state_changes()[-1] == (State.SYN_RECEIVED, State.FIN_WAIT_1)
    script.expect_nothing()  # the FIN waits for the peer to acknowledge our SYN
    script.receive(incoming(remote(1), local(1)))
    script.expect(outgoing(local(1), remote(1), ACK | FIN))
    script.receive(incoming(remote(1), local(2)))
    assert script.state is State.FIN_WAIT_2


def test_syn_ack_is_retransmitted_then_the_connection_times_out():
    script = syn_received(TcpConfig(**{**CONFIG.__dict__, "synack_retries": 1}))
    assert script.advance_to_next_timer() == 1.0
    script.expect(outgoing(local(0), remote(1), SYN | ACK, options=TcpOptions(mss=1460)))
    assert script.advance_to_next_timer() == 3.0
    script.expect_nothing()
    assert script.state is State.CLOSED and script.connection.error is TcpError.TIMED_OUT
    assert script.state_changes()[-1] == (State.SYN_RECEIVED, State.CLOSED)


def test_data_with_the_final_ack_is_delivered():
    script = syn_received()
    script.receive(incoming(remote(1), local(1), ACK | PSH, payload=b"GET /"))
    assert script.state is State.ESTABLISHED
    assert script.connection.recv(100, 0.0) == b"GET /"


def test_close_in_syn_received_then_the_ack_of_our_syn_completes_the_open():
    # RFC 9293 3.10.4: CLOSE in SYN-RECEIVED enters FIN-WAIT-1 before our SYN is acknowledged.
    # The ACK of our SYN that arrives there still finishes the open: the connect timer stops
    # (it used to fire later and time out a connection that had opened and was closing), and
    # the text of a simultaneous SYN is taken.
    import dataclasses

    config = dataclasses.replace(CONFIG, connect_timeout=10.0)
    script = syn_sent(config)
    script.receive(incoming(remote(0), 0, SYN, options=TcpOptions(mss=1460), payload=b"abc"))
    script.expect(outgoing(local(0), remote(1), SYN | ACK, options=TcpOptions(mss=1460)))
    script.connection.shutdown(script.now)
    script.expect_nothing()  # the FIN waits for the ACK of our SYN
    assert script.state is State.FIN_WAIT_1
    script.receive(incoming(remote(4), local(1)))
    script.expect(outgoing(local(1), remote(4), ACK | FIN, window=BUFFER - 3))
    # Only the FIN's timer; the SYN-ACK repeated our SYN's number, so RFC 6298 5.7's 3 s RTO.
    assert script.connection.timers_armed() == {"retransmit": 3.0}
    assert script.connection.recv(10, script.now) == b"abc"
    script.receive(incoming(remote(4), local(2)))
    assert script.state is State.FIN_WAIT_2
    assert script.connection.timers_armed() == {}
    script.advance(100.0)
    assert script.state is State.FIN_WAIT_2 and script.connection.error is None


def test_the_peers_syn_ack_in_fin_wait_1_completes_a_simultaneous_open():
    # The same, when the peer's answer to our SYN is its SYN-ACK (RFC 9293 figure 8).
    script = syn_sent()
    script.receive(incoming(remote(0), 0, SYN, options=TcpOptions(mss=1460)))
    script.expect(outgoing(local(0), remote(1), SYN | ACK, options=TcpOptions(mss=1460)))
    script.connection.shutdown(script.now)
    script.receive(incoming(remote(0), local(1), SYN | ACK))
    script.expect(outgoing(local(1), remote(1), ACK | FIN))
    assert script.state is State.FIN_WAIT_1 and script.connection.snd_una == local(1)


def test_back_in_listen_the_foreign_socket_is_unspecified_again():
    # RFC 9293 3.10.7.4 note 1: a passive open reset in SYN-RECEIVED returns to LISTEN, as it
    # was: a listen with an unspecified foreign socket takes the next SYN from anyone, answers
    # it on its port, and starts its retransmission count and RTO afresh.
    script = syn_received()
    assert script.advance_to_next_timer() == 1.0
    script.expect(outgoing(local(0), remote(1), SYN | ACK, options=TcpOptions(mss=1460)))  # RTO now 2 s
    script.receive(incoming(remote(1), 0, RST))
    assert script.state is State.LISTEN
    script.expect_nothing()
    other_port = REMOTE_PORT + 1
    script.receive(TcpSegment(other_port, LOCAL_PORT, remote(0), 0, SYN, PEER_WINDOW, options=TcpOptions(mss=1460)))
    script.expect(outgoing(local(0), remote(1), SYN | ACK, options=TcpOptions(mss=1460))._replace(dst_port=other_port))
    connection = script.connection
    assert connection.remote_port == other_port
    assert connection.timers_armed() == {"retransmit": script.now + 1.0}
    assert connection.snd.retransmit_count == 0

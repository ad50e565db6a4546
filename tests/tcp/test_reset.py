"""Resets: answering unmatched segments (RFC 9293 3.10.7.1) and RFC 5961's defences."""

from __future__ import annotations

import errno

from tcp_script import *  # noqa: F403
from ustack.tcp import ConnectionFailed, State, TcpConfig, TcpError, reset_for_unmatched


def test_unmatched_segment_with_ack_gets_reset_from_its_ack():
    segment = TcpSegment(5000, 80, 1000, 777, ACK | PSH, 100, payload=b"abc")
    assert reset_for_unmatched(segment) == TcpSegment(80, 5000, 777, 0, RST, 0)


def test_unmatched_segment_without_ack_gets_reset_acking_it():
    segment = TcpSegment(5000, 80, 0xFFFFFFFF, 0, SYN, 100)
    # SEG.LEN counts the SYN; the sum wraps.
    assert reset_for_unmatched(segment) == TcpSegment(80, 5000, 0, 0, RST | ACK, 0)
    segment = TcpSegment(5000, 80, 10, 0, FIN, 100, payload=b"xy")
    assert reset_for_unmatched(segment).ack == 13


def test_a_reset_is_never_answered():
    assert reset_for_unmatched(TcpSegment(5000, 80, 1, 2, RST | ACK, 0)) is None
    assert reset_for_unmatched(TcpSegment(5000, 80, 1, 0, RST, 0)) is None


def test_closed_connection_answers_with_a_reset():
    script = established()
    script.connection.abort(0.0)
    script.expect(outgoing(local(1), 0, RST, window=0))
    script.receive(incoming(remote(1), local(1), payload=b"hello?"))
    script.expect(outgoing(local(1), 0, RST, window=0))
    script.receive(incoming(remote(7), 0, RST))
    script.expect_nothing()


def test_reset_at_rcv_nxt_resets_the_connection():
    script = established()
    script.receive(incoming(remote(1), 0, RST))
    script.expect_nothing()
    connection = script.connection
    assert connection.state is State.CLOSED and connection.error is TcpError.RESET
    assert connection.error.errno == errno.ECONNRESET
    events = connection.events()
    assert ConnectionFailed(TcpError.RESET) in events
    assert events[-1].cause == "Flags [R], seq 4294967281, win 8192, length 0"
    assert connection.next_deadline() is None


def test_reset_in_window_but_not_exact_draws_a_challenge_ack():
    # RFC 5961 3.2: a blind attacker must guess RCV.NXT exactly.
    script = established()
    script.receive(incoming(remote(100), 0, RST))
    script.expect(outgoing(local(1), remote(1)))
    assert script.state is State.ESTABLISHED
    # The real peer, if it did send the reset, answers the challenge ACK with an exact one.
    script.receive(incoming(remote(1), 0, RST))
    assert script.state is State.CLOSED


def test_reset_outside_the_window_is_silently_dropped():
    script = established()
    script.receive(incoming(remote(BUFFER + 10), 0, RST))
    script.expect_nothing()
    assert script.state is State.ESTABLISHED
    assert script.connection.drops["rst_out_of_window"] == 1


def test_syn_in_a_synchronized_state_draws_a_challenge_ack():
    # RFC 5961 4.2: whatever its sequence number.
    script = established()
    script.receive(incoming(remote(50), 0, SYN))
    script.expect(outgoing(local(1), remote(1)))
    assert script.state is State.ESTABLISHED
    assert script.connection.drops["syn_in_synchronized_state"] == 1


def test_ack_too_old_draws_a_challenge_ack():
    # RFC 5961 5.2: SEG.ACK must not be below SND.UNA - MAX.SND.WND.
    script = established()
    script.receive(incoming(remote(1), local(-PEER_WINDOW - 10), payload=b"inject"))
    script.expect(outgoing(local(1), remote(1)))
    assert script.connection.readable == 0
    assert script.connection.drops["ack_too_old"] == 1


def test_challenge_acks_are_rate_limited():
    config = TcpConfig(**{**CONFIG.__dict__, "challenge_ack_limit": 2})
    script = established(config)
    for _ in range(3):
        script.receive(incoming(remote(50), 0, RST))
    script.expect(outgoing(local(1), remote(1)))  # one ACK owed, however many challenges
    script.receive(incoming(remote(50), 0, RST))
    script.expect_nothing()  # third and fourth in this second: dropped
    assert script.connection.drops["challenge_ack_rate_limited"] == 2
    script.now = 1.5
    script.receive(incoming(remote(50), 0, RST))
    script.expect(outgoing(local(1), remote(1)))


def test_reset_in_syn_received_of_a_listener_child_is_not_an_error():
    script = syn_received()
    script.receive(incoming(remote(1), 0, RST | ACK, window=0))
    assert script.state is State.LISTEN and script.connection.error is None


def test_nothing_but_resets_leaves_a_connection_once_it_is_closed():
    script = established()
    script.receive(incoming(remote(1), local(1), payload=b"owed an ACK"))
    script.receive(incoming(remote(12), 0, RST))
    script.expect_nothing()  # the delayed ACK died with the connection
    assert script.connection.next_deadline() is None

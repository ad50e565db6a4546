"""Keepalive (RFC 9293 3.8.4, RFC 1122 4.2.3.6): off by default."""

from __future__ import annotations

from tcp_script import *  # noqa: F403
from ustack.tcp import State, TcpConfig, TcpError

KEEPALIVE = TcpConfig(**{**CONFIG.__dict__, "keepalive": True, "keepalive_idle": 100.0, "keepalive_interval": 10.0, "keepalive_probes": 3})


def test_keepalive_is_off_by_default():
    script = established()
    assert script.connection.next_deadline() is None
    script.advance(10000.0)
    script.expect_nothing()


def test_idle_connection_is_probed_and_an_answer_resets_the_count():
    script = established(KEEPALIVE)
    assert script.connection.timers_armed() == {"keepalive": 100.0}
    assert script.advance_to_next_timer() == 100.0
    probe = outgoing(local(0), remote(1))  # SEQ = SND.NXT - 1 forces the peer to answer
    script.expect(probe)
    script.receive(incoming(remote(1), local(1)))
    assert script.connection.timers_armed() == {"keepalive": 200.0}


def test_unanswered_probes_time_the_connection_out():
    script = established(KEEPALIVE)
    probe = outgoing(local(0), remote(1))
    for expected in (100.0, 110.0, 120.0):
        assert script.advance_to_next_timer() == expected
        script.expect(probe)
    assert script.advance_to_next_timer() == 130.0
    script.expect_nothing()
    assert script.state is State.CLOSED and script.connection.error is TcpError.TIMED_OUT


def test_keepalive_probe_is_answered_by_the_peer_side():
    # Our own core, receiving a keepalive probe (an old sequence number), answers with an ACK.
    script = established()
    script.receive(incoming(remote(0), local(1)))
    script.expect(outgoing(local(1), remote(1)))


def test_keepalive_stops_when_the_connection_leaves_established():
    # Keepalive probes only in ESTABLISHED and CLOSE-WAIT (timers._keepalive_timeout); once our
    # FIN is out the retransmission timer watches the peer, and an idle FIN-WAIT-2 must not
    # wake up for nothing (DESIGN.md rule 6).
    script = established(KEEPALIVE)
    script.connection.close(script.now)
    script.expect(outgoing(local(1), remote(1), ACK | FIN))
    script.receive(incoming(remote(1), local(2)))
    assert script.state is State.FIN_WAIT_2
    # No keepalive: the one timer left is the FIN-WAIT-2 limit that follows close().
    assert script.connection.timers_armed() == {"fin_wait_2": script.now + 60.0}


def test_keepalive_goes_on_in_close_wait():
    script = established(KEEPALIVE)
    script.receive(incoming(remote(1), local(1), ACK | FIN))
    script.expect(outgoing(local(1), remote(2), window=AFTER_FIN))
    assert script.state is State.CLOSE_WAIT
    assert script.connection.timers_armed() == {"keepalive": 100.0}

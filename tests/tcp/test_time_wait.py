"""TIME-WAIT: 2*MSL, re-ACKing a repeated FIN, and RST (RFC 1337 as an option)."""

from __future__ import annotations

from tcp_script import *  # noqa: F403
from ustack.tcp import State, TcpConfig, TcpError


def test_time_wait_lasts_two_msl_then_closes():
    script = time_wait()
    assert script.connection.next_deadline() == 60.0  # MSL 30 s by default
    script.advance(59.9)
    assert script.state is State.TIME_WAIT
    script.advance(0.1)
    script.expect_nothing()
    assert script.state_changes()[-1] == (State.TIME_WAIT, State.CLOSED)
    assert script.connection.is_finished and script.connection.next_deadline() is None
    assert script.connection.error is None


def test_msl_is_configurable():
    config = TcpConfig(**{**CONFIG.__dict__, "msl": 2.0})
    script = established(config)
    script.connection.close(0.0)
    script.expect(outgoing(local(1), remote(1), ACK | FIN))
    script.receive(incoming(remote(1), local(2), ACK | FIN))
    script.expect(outgoing(local(2), remote(2), window=AFTER_FIN))
    assert script.connection.next_deadline() == 4.0


def test_repeated_fin_is_acknowledged_and_restarts_the_timer():
    script = time_wait()
    script.advance(50.0)
    script.receive(incoming(remote(1), local(2), ACK | FIN))
    script.expect(outgoing(local(2), remote(2), window=AFTER_FIN))
    assert script.connection.next_deadline() == 110.0
    script.advance(59.0)
    assert script.state is State.TIME_WAIT


def test_reset_in_time_wait_closes_by_default():
    script = time_wait()
    script.receive(incoming(remote(2), 0, RST))
    script.expect_nothing()
    assert script.state_changes()[-1] == (State.TIME_WAIT, State.CLOSED)


def test_rfc1337_option_ignores_reset_in_time_wait():
    config = TcpConfig(**{**CONFIG.__dict__, "rfc1337": True})
    script = established(config)
    script.connection.close(0.0)
    script.expect(outgoing(local(1), remote(1), ACK | FIN))
    script.receive(incoming(remote(1), local(2), ACK | FIN))
    script.expect(outgoing(local(2), remote(2), window=AFTER_FIN))
    script.receive(incoming(remote(2), 0, RST))
    script.expect_nothing()
    assert script.state is State.TIME_WAIT
    assert script.connection.drops["rst_in_time_wait_rfc1337"] == 1


def test_abort_in_time_wait_sends_nothing():
    script = time_wait()
    script.connection.abort(1.0)
    script.expect_nothing()
    assert script.state_changes()[-1] == (State.TIME_WAIT, State.CLOSED)
    assert script.connection.error is TcpError.ABORTED


def test_a_new_syn_beyond_the_old_connection_reopens_the_four_tuple():
    # RFC 1122 4.2.2.13 / RFC 6191: the SYN is kept for the stack to give to its listener.
    script = time_wait()
    syn = incoming(remote(100000), 0, SYN)
    script.receive(syn)
    script.expect_nothing()
    assert script.state_changes()[-1] == (State.TIME_WAIT, State.CLOSED)
    assert script.connection.time_wait.reopening_syn == syn and script.connection.is_finished


def test_an_old_syn_in_time_wait_is_answered_with_an_ack():
    script = time_wait()
    script.receive(incoming(remote(0), 0, SYN))
    script.expect(outgoing(local(2), remote(2), window=AFTER_FIN))
    assert script.state is State.TIME_WAIT

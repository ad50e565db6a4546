"""CLOSE-WAIT and LAST-ACK: the passive close."""

from __future__ import annotations

from tcp_script import *  # noqa: F403
from ustack.tcp import State, TcpConfig, TcpError


def test_close_in_close_wait_sends_fin_and_enters_last_ack():
    script = last_ack()
    assert script.state_changes()[-1] == (State.CLOSE_WAIT, State.LAST_ACK)


def test_ack_of_fin_in_last_ack_closes():
    script = last_ack()
    script.receive(incoming(remote(2), local(2)))
    script.expect_nothing()
    assert script.state_changes()[-1] == (State.LAST_ACK, State.CLOSED)
    assert script.connection.error is None and script.connection.is_finished


def test_close_wait_still_sends_data():
    script = close_wait()
    assert script.connection.send(b"response", 0.0) == 8
    script.expect(outgoing(local(1), remote(2), ACK | PSH, window=AFTER_FIN, payload=b"response"))
    assert script.connection.recv(10, 0.0) == b""  # end of stream


def test_fin_in_last_ack_is_retransmitted_and_gives_up_eventually():
    config = TcpConfig(**{**CONFIG.__dict__, "max_retransmissions": 2})
    script = established(config)
    script.receive(incoming(remote(1), local(1), ACK | FIN))
    script.expect(outgoing(local(1), remote(2), window=AFTER_FIN))
    script.connection.close(0.0)
    fin = outgoing(local(1), remote(2), ACK | FIN, window=AFTER_FIN)
    script.expect(fin)
    assert script.advance_to_next_timer() == 0.2
    script.expect(fin)
    assert script.advance_to_next_timer() == 0.6
    script.expect(fin)
    assert script.advance_to_next_timer() == 1.4
    assert script.state_changes()[-1] == (State.LAST_ACK, State.CLOSED)
    assert script.connection.error is TcpError.TIMED_OUT


def test_repeated_fin_in_close_wait_is_acknowledged_again():
    script = close_wait()
    script.receive(incoming(remote(1), local(1), ACK | FIN))
    script.expect(outgoing(local(1), remote(2), window=AFTER_FIN))
    assert script.state is State.CLOSE_WAIT


def test_reset_in_close_wait_and_last_ack():
    script = close_wait()
    script.receive(incoming(remote(2), 0, RST))
    assert script.state_changes()[-1] == (State.CLOSE_WAIT, State.CLOSED)
    assert script.connection.error is TcpError.RESET
    script = last_ack()
    script.receive(incoming(remote(2), 0, RST))
    assert script.state_changes()[-1] == (State.LAST_ACK, State.CLOSED)
    assert script.connection.error is TcpError.RESET  # our FIN was never acknowledged

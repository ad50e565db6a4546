"""Delayed ACKs (RFC 9293 3.8.6.3, RFC 5681 4.2)."""

from __future__ import annotations

from tcp_script import *  # noqa: F403
from ustack.tcp import TcpConfig


def test_a_lone_segment_is_acknowledged_after_the_delay():
    script = established()
    script.receive(incoming(remote(1), local(1), payload=b"x" * 10))
    script.expect_nothing()
    assert script.connection.timers_armed() == {"delayed_ack": 0.04}
    assert script.advance_to_next_timer() == 0.04
    script.expect(outgoing(local(1), remote(11), window=BUFFER - 10))
    script.expect_nothing()


def test_every_second_segment_is_acknowledged_at_once():
    script = established()
    for n in range(4):
        script.receive(incoming(remote(1 + 100 * n), local(1), payload=bytes(100)))
        if n % 2:
            script.expect(outgoing(local(1), remote(101 + 100 * n), window=BUFFER - 100 * (n + 1)))
        else:
            script.expect_nothing()
    assert "delayed_ack" not in script.connection.timers_armed()


def test_delay_and_count_are_configurable():
    config = TcpConfig(**{**CONFIG.__dict__, "delayed_ack_timeout": 0.2, "ack_every_segments": 3})
    script = established(config)
    script.receive(incoming(remote(1), local(1), payload=bytes(10)))
    script.receive(incoming(remote(11), local(1), payload=bytes(10)))
    script.expect_nothing()
    script.receive(incoming(remote(21), local(1), payload=bytes(10)))
    script.expect(outgoing(local(1), remote(31), window=BUFFER - 30))
    script.receive(incoming(remote(31), local(1), payload=bytes(10)))
    assert script.advance_to_next_timer() == 0.2
    script.expect(outgoing(local(1), remote(41), window=BUFFER - 40))


def test_out_of_order_data_is_acknowledged_immediately():
    script = established()
    script.receive(incoming(remote(11), local(1), payload=bytes(10)))
    script.expect(outgoing(local(1), remote(1)))


def test_ack_every_segment_when_configured_to():
    config = TcpConfig(**{**CONFIG.__dict__, "ack_every_segments": 1})
    script = established(config)
    script.receive(incoming(remote(1), local(1), payload=bytes(10)))
    script.expect(outgoing(local(1), remote(11), window=BUFFER - 10))


def test_a_fin_is_acknowledged_immediately_along_with_pending_data():
    script = established()
    script.receive(incoming(remote(1), local(1), payload=bytes(10)))
    script.receive(incoming(remote(11), local(1), ACK | FIN))
    script.expect(outgoing(local(1), remote(12), window=BUFFER - 11))
    assert "delayed_ack" not in script.connection.timers_armed()

"""Nagle's algorithm (RFC 9293 3.7.4) and the no-delay option."""

from tcp_script import *  # noqa: F403
from ustack.tcp import TcpConfig

NO_DELAY = TcpConfig(**{**CONFIG.__dict__, "nagle": False})


def test_small_writes_wait_while_a_small_segment_is_unacknowledged():
    script = established()
    connection = script.connection
    connection.send(b"a", 0.0)
    script.expect(outgoing(local(1), remote(1), ACK | PSH, payload=b"a"))
    connection.send(b"b", 0.0)
    connection.send(b"c", 0.0)
    script.expect_nothing()
    script.receive(incoming(remote(1), local(2)))
    # The held bytes go together, as one segment.
    script.expect(outgoing(local(2), remote(1), ACK | PSH, payload=b"bc"))


def test_full_segments_are_not_held():
    script = established()
    connection = script.connection
    connection.send(b"a", 0.0)
    script.expect(outgoing(local(1), remote(1), ACK | PSH, payload=b"a"))
    connection.send(bytes(1460), 0.0)
    script.expect(outgoing(local(2), remote(1), ACK | PSH, payload=bytes(1460)))


def test_no_delay_sends_every_write_at_once():
    script = established(NO_DELAY)
    connection = script.connection
    connection.send(b"a", 0.0)
    script.expect(outgoing(local(1), remote(1), ACK | PSH, payload=b"a"))
    connection.send(b"b", 0.0)
    script.expect(outgoing(local(2), remote(1), ACK | PSH, payload=b"b"))


def test_fin_is_not_held_by_nagle_when_nothing_is_pending():
    script = established()
    connection = script.connection
    connection.send(b"a", 0.0)
    script.expect(outgoing(local(1), remote(1), ACK | PSH, payload=b"a"))
    connection.close(0.0)
    script.expect(outgoing(local(2), remote(1), ACK | FIN))

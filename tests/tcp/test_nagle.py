"""Nagle's algorithm (RFC 9293 3.7.4) and the no-delay option.

The scripts' CONFIG uses RFC 896's Nagle (nagle_minshall=False); MINSHALL is the default's:
Minshall's variant, as Linux (tcp_nagle_check, tcp_minshall_check)."""

from __future__ import annotations

from tcp_script import *  # noqa: F403
from ustack.tcp import TcpConfig

NO_DELAY = TcpConfig(**{**CONFIG.__dict__, "nagle": False})
MINSHALL = TcpConfig(**{**CONFIG.__dict__, "nagle_minshall": True})


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


def test_rfc_896_holds_a_short_tail_behind_full_segments():
    script = established()
    script.connection.send(bytes(2 * 1460 + 100), 0.0)
    assert [len(s.payload) for s in script.connection.transmit(0.0)] == [1460, 1460]
    script.receive(incoming(remote(1), local(1 + 2 * 1460)))
    script.expect(outgoing(local(1 + 2 * 1460), remote(1), ACK | PSH, payload=bytes(100)))


def test_minshall_sends_a_short_tail_behind_full_segments_at_once():
    assert TcpConfig().nagle_minshall  # the default, as Linux
    script = established(MINSHALL)
    script.connection.send(bytes(2 * 1460 + 100), 0.0)
    assert [len(s.payload) for s in script.connection.transmit(0.0)] == [1460, 1460, 100]


def test_minshall_holds_a_short_segment_while_an_earlier_short_one_is_unacknowledged():
    script = established(MINSHALL)
    connection = script.connection
    connection.send(b"a", 0.0)
    script.expect(outgoing(local(1), remote(1), ACK | PSH, payload=b"a"))
    connection.send(bytes(1460), 0.0)  # a full segment still goes
    script.expect(outgoing(local(2), remote(1), ACK | PSH, payload=bytes(1460)))
    connection.send(b"bc", 0.0)
    script.expect_nothing()  # "a" is unacknowledged: at most one short segment in flight
    script.receive(incoming(remote(1), local(2)))  # "a" acknowledged, the full segment not yet
    script.expect(outgoing(local(2 + 1460), remote(1), ACK | PSH, payload=b"bc"))
    connection.send(b"d", 0.0)
    script.expect_nothing()  # now "bc" is the short one in flight
    script.receive(incoming(remote(1), local(4 + 1460)))
    script.expect(outgoing(local(4 + 1460), remote(1), ACK | PSH, payload=b"d"))

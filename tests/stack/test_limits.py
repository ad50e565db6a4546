"""Connection limits per stack and per listener (issue 9, bounded resources), on virtual time.

A local call beyond the stack's limit fails with StackError(EMFILE); a peer's SYN beyond either
limit is dropped for a named, counted reason and answered with nothing (the client retries, as
with a full SYN queue). The remote side here is anyone who can send SYNs to an open port."""

from __future__ import annotations

import errno

import pytest

from ustack.stack import DEFAULT_MAX_CONNECTIONS, Stack, StackError
from ustack.tcp import State, TcpConfig
from ustack.tcp.isn import IsnGenerator
from ustack.wire import TcpSegment, build_tcp_packet, parse_packet
from ustack.wire.ipv4 import address_value
from ustack.wire.tcp import ACK, FIN, RST, SYN

OURS = address_value("10.77.0.2")
PEER = address_value("10.77.0.1")
PORT = 80


def make_stack(**limits) -> Stack:
    return Stack(OURS, TcpConfig(msl=1.0), isn_generator=IsnGenerator(fixed_isn=1000), port_seed=1, **limits)


def syn_from(stack: Stack, port: int, now: float = 0.0) -> list[TcpSegment]:
    stack.receive(build_tcp_packet(PEER, OURS, TcpSegment(port, PORT, 5000, 0, SYN, 64240)), now)
    return [parse_packet(packet).tcp for packet in stack.transmit(now)]


def handshake(stack: Stack, port: int, now: float = 0.0) -> None:
    (syn_ack,) = syn_from(stack, port, now)
    assert syn_ack.flags == SYN | ACK
    stack.receive(build_tcp_packet(PEER, OURS, TcpSegment(port, PORT, 5001, syn_ack.seq + 1, ACK, 64240)), now)
    assert stack.transmit(now) == []


def reset_from(stack: Stack, port: int, now: float) -> None:
    """The peer aborts: the connection leaves the tables at once."""
    stack.receive(build_tcp_packet(PEER, OURS, TcpSegment(port, PORT, 5001, 0, RST, 0)), now)
    stack.transmit(now)


def test_the_default_limit_and_bad_values():
    assert Stack(OURS).max_connections == DEFAULT_MAX_CONNECTIONS
    assert Stack(OURS, max_connections=None).max_connections is None
    with pytest.raises(ValueError):
        Stack(OURS, max_connections=0)
    with pytest.raises(ValueError):
        make_stack().listen(PORT, max_connections=0)


def test_connect_and_listen_beyond_the_stack_limit_fail_with_emfile():
    stack = make_stack(max_connections=3)
    stack.listen(PORT)
    stack.connect(PEER, 8000, 0.0)
    stack.connect(PEER, 8001, 0.0)
    with pytest.raises(StackError) as refused:
        stack.connect(PEER, 8002, 0.0)
    assert refused.value.errno == errno.EMFILE
    assert "max_connections=3" in str(refused.value)
    with pytest.raises(StackError) as refused:
        stack.listen(PORT + 1)
    assert refused.value.errno == errno.EMFILE
    assert len(stack.connections) == 2 and len(stack.listeners) == 1


def test_a_syn_beyond_the_stack_limit_is_dropped_and_counted_until_room_returns():
    stack = make_stack(max_connections=3)
    stack.listen(PORT)
    handshake(stack, 40001)
    handshake(stack, 40002)
    assert syn_from(stack, 40003) == []  # no SYN-ACK, and no RST either: the client retries
    assert stack.drops["stack_connection_limit"] == 1
    assert len(stack.connections) == 2
    # A SYN for an existing connection is not a new one: it still reaches that connection.
    (challenge,) = syn_from(stack, 40001)
    assert challenge.flags == ACK  # RFC 5961 4: a challenge ACK
    assert stack.drops["stack_connection_limit"] == 1
    reset_from(stack, 40001, 0.1)
    assert len(stack.connections) == 1
    (syn_ack,) = syn_from(stack, 40003, 0.2)
    assert syn_ack.flags == SYN | ACK


def test_time_wait_counts_until_it_ends():
    stack = make_stack(max_connections=2)
    stack.listen(PORT)
    handshake(stack, 40001)
    (connection,) = stack.connections.values()
    # We close first, the peer acknowledges our FIN with its own: we hold TIME-WAIT for 2*MSL.
    connection.close(0.0)
    stack.poke(connection)
    (fin,) = [parse_packet(packet).tcp for packet in stack.transmit(0.0)]
    stack.receive(build_tcp_packet(PEER, OURS, TcpSegment(40001, PORT, 5001, fin.seq + 1, ACK | FIN, 64240)), 0.0)
    stack.transmit(0.0)
    assert connection.state is State.TIME_WAIT
    assert syn_from(stack, 40002, 0.1) == []
    assert stack.drops["stack_connection_limit"] == 1
    deadline = stack.next_deadline()
    assert deadline == pytest.approx(2.0)  # 2 * MSL
    stack.on_timer(deadline)
    stack.transmit(deadline)
    assert not stack.connections
    (syn_ack,) = syn_from(stack, 40002, deadline)
    assert syn_ack.flags == SYN | ACK


def test_a_syn_beyond_the_listener_limit_is_dropped_and_counted():
    stack = make_stack()
    listener = stack.listen(PORT, max_connections=2)
    other = stack.listen(PORT + 1)
    handshake(stack, 40001)
    syn_from(stack, 40002)  # half-open connections count too
    assert listener.open_connections == 2
    assert syn_from(stack, 40003) == []
    assert listener.drops["listener_connection_limit"] == 1
    assert stack.drops["stack_connection_limit"] == 0
    # An accepted connection still counts: the limit is on clients, not on a queue.
    accepted = listener.accept()
    assert accepted is not None and accepted.state is State.ESTABLISHED
    assert syn_from(stack, 40003) == []
    assert listener.drops["listener_connection_limit"] == 2
    # Another listener has its own count.
    stack.receive(build_tcp_packet(PEER, OURS, TcpSegment(40009, PORT + 1, 1, 0, SYN, 64240)), 0.0)
    assert [parse_packet(p).tcp.flags for p in stack.transmit(0.0)] == [SYN | ACK]
    assert other.open_connections == 1
    # When a connection of the listener is gone, a new client is served.
    reset_from(stack, 40001, 0.5)
    assert listener.open_connections == 1
    (syn_ack,) = syn_from(stack, 40003, 0.6)
    assert syn_ack.flags == SYN | ACK
    assert listener.open_connections == 2


def test_connections_returning_syn_cookies_count_against_both_limits():
    # With SYN cookies always on, the connection is made by the ACK that returns the cookie:
    # two clients get their cookies while the listener is below its limit of one...
    stack = Stack(OURS, TcpConfig(msl=1.0, syncookies="always"), isn_generator=IsnGenerator(fixed_isn=1000),
                  port_seed=1, max_connections=3)
    listener = stack.listen(PORT, max_connections=1)
    (first,) = syn_from(stack, 40001)
    (second,) = syn_from(stack, 40002)
    assert not stack.connections  # cookies keep no state
    for port, syn_ack in ((40001, first), (40002, second)):
        stack.receive(build_tcp_packet(PEER, OURS, TcpSegment(port, PORT, 5001, syn_ack.seq + 1, ACK, 64240)), 0.0)
        assert stack.transmit(0.0) == []
    # ...and only the first return makes a connection.
    assert listener.counters["syncookies_validated"] == 1 and listener.open_connections == 1
    assert listener.drops["listener_connection_limit"] == 1 and len(stack.connections) == 1
    assert syn_from(stack, 40003) == [] and listener.drops["listener_connection_limit"] == 2
    # The stack full (a connection and two listeners), a returning ACK is dropped before the
    # listener sees it.
    stack.listen(PORT + 1)
    stack.receive(build_tcp_packet(PEER, OURS, TcpSegment(40004, PORT + 1, 5001, 777, ACK, 64240)), 0.0)
    assert stack.transmit(0.0) == [] and stack.drops["stack_connection_limit"] == 1

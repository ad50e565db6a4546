"""The active set (Stack.drain_active: the connections touched since the runtime last asked) is
written where a connection is touched (a segment, a timer, a user call's poke), in the same
order as the touched set transmit() works through, so transmit() merges nothing (a dict.update
fewer per call, issue 12). Every kind of touch must reach it, whether transmit() ran in between
or not, each connection once, in the order of its first touch."""

from __future__ import annotations

import cProfile
import pstats
import sys
from pathlib import Path

from ustack.stack import Stack
from ustack.tcp import State, TcpConfig
from ustack.wire.ipv4 import address_value

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from bench_lifecycles import exchange  # noqa: E402

SERVER, CLIENT = address_value("10.77.0.2"), address_value("10.77.0.1")


def pair():
    client, server = Stack(CLIENT, TcpConfig(), port_seed=1), Stack(SERVER, TcpConfig(), port_seed=2)
    listener = server.listen(80)
    return client, server, listener


def connected(client, server, listener, now):
    connection = client.connect(SERVER, 80, now)
    exchange(client, server, now)
    return connection, listener.accept()


def test_a_segment_received_and_transmitted_on_stays_active_until_drained():
    client, server, listener = pair()
    connection, accepted = connected(client, server, listener, 0.0)
    client.drain_active(), server.drain_active()
    connection.send(b"hello", 0.01)
    client.poke(connection)
    for packet in client.transmit(0.01):
        server.receive(packet, 0.01)  # touched by the segment
    server.transmit(0.01)  # the touched set is worked through; the active set keeps it
    assert server.drain_active() == [accepted] and server.drain_active() == []
    assert client.drain_active() == [connection]


def test_a_poke_without_transmit_is_active():
    client, server, listener = pair()
    connection, accepted = connected(client, server, listener, 0.0)
    client.drain_active()
    connection.send(b"x", 0.01)
    client.poke(connection)
    assert client.drain_active() == [connection]  # a runtime may look before it transmits
    assert client.transmit(0.01)  # and the poke still has it transmit
    assert client.drain_active() == []


def test_a_timer_touches_the_active_set():
    client, server, listener = pair()
    connection, accepted = connected(client, server, listener, 0.0)
    connection.send(b"lost", 0.01)
    client.poke(connection)
    client.transmit(0.01)  # the segment is lost: the retransmission timer runs
    client.drain_active()
    deadline = client.next_deadline()
    client.on_timer(deadline)
    client.transmit(deadline)
    assert client.drain_active() == [connection]
    assert connection.state is State.ESTABLISHED


def test_each_connection_once_in_the_order_of_its_first_touch_across_transmits():
    client, server, listener = pair()
    first, _ = connected(client, server, listener, 0.0)
    second, _ = connected(client, server, listener, 0.0)
    client.drain_active()
    second.send(b"a", 0.1)
    client.poke(second)
    client.transmit(0.1)
    first.send(b"b", 0.1)
    client.poke(first)
    second.send(b"c", 0.1)
    client.poke(second)
    client.transmit(0.1)
    assert client.drain_active() == [second, first]


def test_transmit_merges_no_set():
    client, server, listener = pair()
    connection, accepted = connected(client, server, listener, 0.0)
    connection.send(b"x", 0.01)
    client.poke(connection)
    client.transmit(0.01)  # the active set is not empty now (not drained)
    connection.send(b"y", 0.01)
    client.poke(connection)
    profile = cProfile.Profile()
    profile.runcall(client.transmit, 0.01)
    names = [name for (_, _, name) in pstats.Stats(profile).stats]
    assert "<method 'update' of 'dict' objects>" not in names, names
    assert client.drain_active() == [connection]

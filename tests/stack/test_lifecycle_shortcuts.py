"""Whole connection lifecycles between two Stacks on virtual time: the shortcuts a lifecycle takes
when nobody reads events (a listener's child made in LISTEN, TIME-WAIT's reopening SYN left
undescribed, counters of connections that counted nothing not summed) change no packet and no
state, and a 4-tuple reopened from TIME-WAIT (RFC 6191) goes through the same path."""

from __future__ import annotations

from ustack.stack import Stack
from ustack.tcp import State, TcpConfig
from ustack.tcp.events import StateChanged
from ustack.tcp.isn import IsnGenerator

CLIENT, SERVER, PORT = 0x0A4E0001, 0x0A4E0002, 80
REQUEST, RESPONSE = b"GET / HTTP/1.0\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\nhello"


def pair(events: bool) -> tuple[Stack, Stack, object]:
    # Fixed ISNs and port walk: two runs of the same lifecycles send the same bytes.
    client = Stack(CLIENT, TcpConfig(), port_seed=1, isn_generator=IsnGenerator(fixed_isn=1000))
    server = Stack(SERVER, TcpConfig(), port_seed=2, isn_generator=IsnGenerator(fixed_isn=5000))
    client.events_wanted = server.events_wanted = events
    return client, server, server.listen(PORT, backlog=16)


def exchange(client: Stack, server: Stack, now: float, wire: list) -> None:
    while True:
        to_server, to_client = client.transmit(now), server.transmit(now)
        if not to_server and not to_client:
            return
        wire.extend(to_server + to_client)
        for packet in to_server:
            server.receive(packet, now)
        for packet in to_client:
            client.receive(packet, now)


def lifecycle(client: Stack, server: Stack, listener, now: float, wire: list, local_port: int | None = None):
    """Connect, request, answer and close first on the server (its side ends in TIME-WAIT), then
    the client closes. Returns the server's connection."""
    connection = client.connect(SERVER, PORT, now, local_port=local_port)
    exchange(client, server, now, wire)
    accepted = listener.accept()
    assert accepted is not None and accepted.state is State.ESTABLISHED
    connection.send(REQUEST, now)
    client.poke(connection)
    exchange(client, server, now, wire)
    assert accepted.recv(100, now) == REQUEST
    accepted.send(RESPONSE, now)
    accepted.close(now)
    server.poke(accepted)
    exchange(client, server, now, wire)
    assert connection.recv(100, now) == RESPONSE
    connection.close(now)
    client.poke(connection)
    exchange(client, server, now, wire)
    assert connection.state is State.CLOSED and connection.error is None
    return accepted


def run(events: bool) -> tuple[list, Stack, Stack, list]:
    client, server, listener = pair(events)
    wire: list[bytes] = []
    changes = []
    # The same client port each time: from the second lifecycle on, the SYN finds the server's
    # TIME-WAIT record of the 4-tuple and reopens it (newer timestamp, RFC 6191).
    for index in range(3):
        accepted = lifecycle(client, server, listener, 0.010 * (index + 1), wire, local_port=40000)
        assert server.connections[(SERVER, PORT, CLIENT, 40000)].state is State.TIME_WAIT
        assert accepted.state is State.TIME_WAIT
        changes.extend((event.event.old, event.event.new) for event in server.events()
                       if isinstance(event.event, StateChanged))
    return wire, client, server, changes


def test_events_off_and_on_send_the_same_packets_through_three_reopened_lifecycles():
    wire_off, client_off, server_off, changes_off = run(events=False)
    wire_on, client_on, server_on, changes_on = run(events=True)
    assert wire_off == wire_on
    assert len(wire_off) == 3 * 8  # SYN, SYN-ACK, ACK, request, answer+FIN, its ACK, FIN, last ACK
    assert changes_off == []
    # With events, every child is seen from its passive OPEN on, the reopened ones too.
    assert changes_on.count((State.CLOSED, State.LISTEN)) == 3
    assert changes_on.count((State.LISTEN, State.SYN_RECEIVED)) == 3
    assert changes_on.count((State.TIME_WAIT, State.CLOSED)) == 2  # reopened by a new SYN
    for client, server in ((client_off, server_off), (client_on, server_on)):
        assert client.connections == {} and len(server.connections) == 1
        assert server.listeners[(0, PORT)].open_connections == 1  # the last TIME-WAIT only


def test_connections_that_counted_nothing_leave_no_ended_counters():
    _, client, server, _ = run(events=False)
    assert client.ended_connection_counters == {} and server.ended_connection_counters == {}


def test_a_reopened_four_tuple_is_counted_once_its_record_counted_a_drop():
    client, server, listener = pair(events=False)
    wire: list[bytes] = []
    lifecycle(client, server, listener, 0.010, wire, local_port=40000)
    record = server.connections[(SERVER, PORT, CLIENT, 40000)]
    record.drops["example_reason"] += 1  # as TIME-WAIT counts its own drops
    lifecycle(client, server, listener, 0.020, wire, local_port=40000)  # the SYN ends that record
    assert server.ended_connection_counters["drops"]["example_reason"] == 1

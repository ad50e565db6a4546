"""Our timestamp clock (RFC 7323 5.4) has one owner, options.timestamp_value; the per-packet paths
write its expression in place (syn_options, output.py's ACK fields, a TIME-WAIT record's ACK,
the RTT sample of acknowledgement.py). Whole connection lifecycles between two stacks on virtual
time, at clock readings on both sides of the 32-bit wrap and between milliseconds: every TSval
on the wire must be timestamp_value(now), and the RTT measured from a TSecr must be the one the
clock gives, across the wrap too."""

from __future__ import annotations

import pytest

from ustack.stack import Stack
from ustack.tcp import State
from ustack.tcp.config import TcpConfig
from ustack.tcp.options import timestamp_value
from ustack.tcp.time_wait import TimeWait
from ustack.wire.codec import parse_packet

CLIENT, SERVER, PORT = 0x0A4D0001, 0x0A4D0002, 80
WRAP_SECONDS = 2**32 / 1000  # where the 1 ms clock wraps


def exchange(client: Stack, server: Stack, now: float, seen: list) -> None:
    """Move packets both ways until neither stack has more, noting (now, packet) for each."""
    while True:
        to_server, to_client = client.transmit(now), server.transmit(now)
        if not to_server and not to_client:
            return
        for packet in to_server:
            seen.append((now, packet))
            server.receive(packet, now)
        for packet in to_client:
            seen.append((now, packet))
            client.receive(packet, now)


@pytest.mark.parametrize("start", [12.3456, WRAP_SECONDS - 0.0105, WRAP_SECONDS - 0.0004, 3 * WRAP_SECONDS + 0.7777])
def test_every_tsval_is_the_clock_and_rtt_samples_cross_the_wrap(start):
    client, server = Stack(CLIENT, TcpConfig(), port_seed=1), Stack(SERVER, TcpConfig(), port_seed=2)
    listener = server.listen(PORT)
    seen: list = []
    now = start
    connection = client.connect(SERVER, PORT, now)
    exchange(client, server, now, seen)
    accepted = listener.accept()
    assert connection.state is State.ESTABLISHED and accepted.state is State.ESTABLISHED
    # The request at `now`, its ACK 7.3 ms later (the server answers after a delay): the client's
    # RTT sample comes from the TSecr of that ACK.
    connection.send(b"GET / HTTP/1.0\r\n\r\n", now)
    client.poke(connection)
    for packet in client.transmit(now):
        seen.append((now, packet))
        server.receive(packet, now)
    sent_at = now
    now += 0.0073
    assert accepted.recv(100, now) == b"GET / HTTP/1.0\r\n\r\n"
    accepted.send(b"HTTP/1.0 200 OK\r\n\r\nhello", now)
    accepted.close(now)
    server.poke(accepted)
    samples_before = connection.rtt.sample_count
    exchange(client, server, now, seen)
    assert connection.rtt.sample_count > samples_before
    # What the ACK's TSecr measures: the clock's ticks between the request and its ACK.
    expected = ((timestamp_value(now) - timestamp_value(sent_at)) & 0xFFFFFFFF) / 1000
    assert connection.rtt.latest_rtt == pytest.approx(expected)
    assert 0.006 <= expected <= 0.008
    connection.recv(100, now)
    now += 0.0011
    connection.close(now)
    client.poke(connection)
    exchange(client, server, now, seen)
    # The server closed first: TIME-WAIT. A retransmission of the client's FIN draws the TIME-WAIT
    # record's ACK, which carries the clock too.
    (record,) = server.connections.values()
    assert record.__class__ is TimeWait
    client_fin = [packet for _, packet in seen
                  if parse_packet(packet).ip.src == CLIENT and parse_packet(packet).tcp.flags & 0x01][-1]
    now += 0.0137
    server.receive(client_fin, now)
    answer = server.transmit(now)
    assert len(answer) == 1
    seen.append((now, answer[0]))

    tsvals = 0
    for when, packet in seen:
        options = parse_packet(packet).tcp.options
        assert options.timestamps is not None
        assert options.timestamps[0] == timestamp_value(when), (when, parse_packet(packet).tcp)
        tsvals += 1
    assert tsvals >= 9  # SYN, SYN-ACK, ACKs, data, FINs and the TIME-WAIT ACK

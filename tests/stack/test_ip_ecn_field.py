"""The IP header's ECN field reaches the connection (RFC 3168 6.1.3): a CE mark on a segment of an
ECN connection is counted and echoed with ECE, in both families; ECT(0) and Not-ECT are not. The
IPv4 path reads the TOS byte in place (Stack._to_connection), without the header's `ecn`
property: a call fewer per packet received (issue 12)."""

from __future__ import annotations

import pytest

from ustack.stack import Stack
from ustack.tcp import State, TcpConfig
from ustack.tcp.isn import IsnGenerator
from ustack.wire import build_tcp_packet, parse_packet
from ustack.wire.ipv4 import CE, ECT_0, NOT_ECT, Ipv4Header, address_value
from ustack.wire.ipv6 import address6_value
from ustack.wire.tcp import ECE

SERVER4, CLIENT4 = address_value("10.77.0.2"), address_value("10.77.0.1")
SERVER6, CLIENT6 = address6_value("fd00:77::2"), address6_value("fd00:77::1")
PORT = 80


def host(address, address6, port_seed) -> Stack:
    return Stack(address, TcpConfig(ecn="on"), address6=address6, isn_generator=IsnGenerator(secret=b"e" * 32),
                 port_seed=port_seed)


def exchange(a: Stack, b: Stack, now: float) -> None:
    for _ in range(100):
        moved = False
        for sender, receiver in ((a, b), (b, a)):
            for packet in sender.transmit(now):
                moved = True
                receiver.receive(packet, now)
        if not moved:
            return
    raise AssertionError("the hosts never went quiet")


def one_marked_segment(family: int, mark: int):
    """An ECN connection of `family`; the client's next data segment reaches the server with the
    ECN field `mark`. Returns the server's connection and the server's answer to it."""
    client, server = host(CLIENT4, CLIENT6, 2), host(SERVER4, SERVER6, 1)
    listener = server.listen(PORT)
    connection = client.connect(SERVER6 if family == 6 else SERVER4, PORT, 0.0)
    exchange(client, server, 0.0)
    accepted = listener.accept()
    assert accepted.state is State.ESTABLISHED and accepted.ecn is not None and connection.ecn is not None
    connection.send(b"x" * 100, 0.01)
    client.poke(connection)
    (packet,) = client.transmit(0.01)
    parsed = parse_packet(packet)
    assert parsed.ip.ecn == ECT_0  # RFC 3168 6.1.2: data of an ECN connection is ECT(0)
    remarked = build_tcp_packet(parsed.ip.src, parsed.ip.dst, parsed.tcp, tos=mark)
    assert parse_packet(remarked).ip.ecn == mark
    server.receive(remarked, 0.01)
    return accepted, [parse_packet(answer).tcp for answer in server.transmit(0.01)]


@pytest.mark.parametrize("family", [4, 6])
def test_a_ce_mark_is_counted_and_echoed_at_once(family):
    accepted, answers = one_marked_segment(family, CE)
    assert accepted.ecn.ce_received == 1
    # Acknowledged at once (not delayed), with ECE (RFC 3168 6.1.3).
    assert len(answers) == 1 and answers[0].flags & ECE


@pytest.mark.parametrize("mark", [ECT_0, NOT_ECT])
@pytest.mark.parametrize("family", [4, 6])
def test_an_unmarked_segment_is_no_congestion(family, mark):
    accepted, answers = one_marked_segment(family, mark)
    assert accepted.ecn.ce_received == 0 and not any(answer.flags & ECE for answer in answers)


def test_ipv4_packets_reach_their_connection_without_the_ecn_property(monkeypatch):
    reads = []
    monkeypatch.setattr(Ipv4Header, "ecn", property(lambda ip: reads.append(ip) or ip.tos & 3))
    accepted, answers = one_marked_segment(4, CE)
    assert accepted.ecn.ce_received == 1
    # Only the test's own two reads (the ECT(0) check and the remark's): none by the stack.
    assert len(reads) == 2

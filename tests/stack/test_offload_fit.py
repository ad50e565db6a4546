"""With segmentation offload (TSO, link/tun.py), a connection hands the link several segments at
once only while its segment size (send MSS plus the timestamp option's room) with the IP and TCP
headers fills the MTU, in either family; a smaller peer MSS leaves it at one. Stack.transmit
works that out for every connection it looks at, and makes no call of its own for it unless
the connection's config must change (issue 12: ~4 transmits per `ab` connection)."""

from __future__ import annotations

import sys

import pytest

from ustack.host_addresses import host_address
from ustack.stack import Stack
from ustack.tcp import TcpConfig

SERVER, CLIENT = "10.0.0.1", "10.0.0.2"
SERVER6, CLIENT6 = "fd00::1", "fd00::2"
PORT = 80


def exchange(a: Stack, b: Stack, now: float) -> None:
    """Packets back and forth until neither side has any."""
    for _ in range(50):
        moved = False
        for source, target in ((a, b), (b, a)):
            for packet in source.transmit(now):
                target.receive(packet, now)
                moved = True
        if not moved:
            return
    raise AssertionError("the two stacks kept sending")


def accepted_child(family: int, client_config: TcpConfig | None = None):
    if family == 6:
        client = Stack(None, client_config, address6=CLIENT6, port_seed=1)
        server = Stack(None, address6=SERVER6, segmentation_offload=True, port_seed=2)
        address = SERVER6
    else:
        client = Stack(CLIENT, client_config, port_seed=1)
        server = Stack(SERVER, segmentation_offload=True, port_seed=2)
        address = SERVER
    listener = server.listen(PORT)
    client.connect(host_address(address), PORT, 0.0)
    exchange(client, server, 0.0)
    child = listener.accept()
    child.send(b"x" * 100_000, 1.0)
    server.poke(child)
    exchange(client, server, 1.0)
    return client, server, child


@pytest.mark.parametrize("family", [4, 6])
def test_a_connection_whose_segments_fill_the_mtu_hands_the_link_several(family):
    _, server, child = accepted_child(family)
    assert child.config.offload_segments == server.offload_segments > 1


@pytest.mark.parametrize("family", [4, 6])
def test_a_smaller_peer_mss_keeps_one_segment_at_a_time(family):
    _, server, child = accepted_child(family, TcpConfig(mss=1000))
    assert child.send_mss <= 1000
    assert child.config.offload_segments == 1


@pytest.mark.parametrize("family", [4, 6])
def test_a_fitted_connection_costs_transmit_no_call_of_its_own(family):
    """A transmit looking at a connection whose config already fits makes no call into stack.py
    besides transmit itself (before: one _fit_segmentation_offload call per connection)."""
    _, server, child = accepted_child(family)
    server.events_wanted = False  # as the asyncio runtime runs it while nothing observes events
    server.poke(child)
    calls = []

    def profile(frame, event, argument):
        if event == "call" and frame.f_code.co_filename.endswith("ustack/stack.py"):
            calls.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        server.transmit(2.0)
    finally:
        sys.setprofile(None)
    assert calls == ["transmit"]


@pytest.mark.parametrize("family", [4, 6])
def test_a_lowered_path_mtu_takes_a_fitted_connection_back_to_one_segment(family):
    """RFC 1191 (RFC 8201 over IPv6): fragmentation needed lowers the send MSS below what fills
    our MTU, and the connection's next transmit hands the link one segment at a time again."""
    client, server, child = accepted_child(family)
    assert child.config.offload_segments > 1
    child.send(b"y" * 50_000, 2.0)
    server.poke(child)
    in_flight = server.transmit(2.0)
    assert in_flight
    child.on_icmp_unreachable(4, 1400, child.snd.una, 2.0, 40 if family == 6 else 20)
    server.poke(child)
    server.transmit(2.0)
    assert child.config.offload_segments == 1


def test_big_tcp_lets_a_fitted_connection_hand_down_up_to_256_kib():
    """Stack(gso_max_size=) (issue 12: BIG TCP, link/tun.py): at MTU 1500 a fitted connection
    hands down (262144 - 60) // 1460 = 179 segments at once over IPv4, and (262144 - 108) // 1440
    = 181 over IPv6 (jumbograms: 8 bytes of hop-by-hop header more, 20 bytes of IP header more
    per segment); without it 44 in both."""
    big = Stack(SERVER, address6=SERVER6, segmentation_offload=True, gso_max_size=262144)
    assert (big.offload_segments, big.offload_segments6) == (179, 181)
    plain = Stack(SERVER, address6=SERVER6, segmentation_offload=True)
    assert (plain.offload_segments, plain.offload_segments6) == (44, 44)
    assert Stack(SERVER, segmentation_offload=False, gso_max_size=262144).offload_segments == 1


@pytest.mark.parametrize("size", [65534, 262145])
def test_a_gso_size_out_of_range_is_refused(size):
    with pytest.raises(ValueError, match="gso_max_size"):
        Stack(SERVER, segmentation_offload=True, gso_max_size=size)


@pytest.mark.parametrize("family", [4, 6])
def test_a_download_in_big_tcp_packets_reaches_the_peer_byte_for_byte(family):
    """The receiving stack takes a segment past 64 KB whole (IPv4's Total Length 0, csrc/ipv4.c;
    an IPv6 jumbogram, csrc/ipv6.c), as Linux's TCP takes what its receive of our frame hands it."""
    if family == 6:
        client = Stack(None, address6=CLIENT6, port_seed=1)
        server = Stack(None, address6=SERVER6, segmentation_offload=True, gso_max_size=262144, port_seed=2)
        address = SERVER6
    else:
        client = Stack(CLIENT, port_seed=1)
        server = Stack(SERVER, segmentation_offload=True, gso_max_size=262144, port_seed=2)
        address = SERVER
    listener = server.listen(PORT)
    connection = client.connect(host_address(address), PORT, 0.0)
    exchange(client, server, 0.0)
    child = listener.accept()
    data = bytes((index * 31 + 7) & 0xFF for index in range(3_000_000))
    received, largest, now = bytearray(), 0, 1.0
    sent = child.send(data, now)
    while len(received) < len(data) and now < 30.0:
        server.poke(child)
        for packet in server.transmit(now):
            largest = max(largest, len(packet))
            client.receive(packet, now)
        for packet in client.transmit(now):
            server.receive(packet, now)
        received += connection.receive_buffer.read(1 << 30) if connection.readable else b""
        if sent < len(data):
            sent += child.send(data[sent:], now)
        now += 0.001
    assert bytes(received) == data
    assert 65535 + (40 if family == 6 else 0) < largest <= 262144

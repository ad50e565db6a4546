"""TCP_CONGESTION on ustack's blocking sockets, as on Linux: per socket, before or after connect."""

from __future__ import annotations

import errno

import pytest

from test_sock import connected_pair, lossless_networks  # noqa: F401  (the fixture)
from ustack import sock


def test_tcp_congestion_is_read_and_changed_per_socket(lossless_networks):  # noqa: F811
    network_a, _ = lossless_networks
    assert network_a.stack.config.congestion_control == "cubic"
    before = network_a.socket()
    before.setsockopt(sock.IPPROTO_TCP, sock.TCP_CONGESTION, b"reno")
    assert before.getsockopt(sock.IPPROTO_TCP, sock.TCP_CONGESTION, 16).rstrip(b"\0") == b"reno"
    assert network_a.socket().getsockopt(sock.IPPROTO_TCP, sock.TCP_CONGESTION, 16).rstrip(b"\0") == b"cubic"
    with pytest.raises(OSError) as caught:
        before.setsockopt(sock.IPPROTO_TCP, sock.TCP_CONGESTION, b"vegas")
    assert caught.value.errno == errno.ENOENT
    before.close()

    listening, client, server_side = connected_pair(lossless_networks, 8100)
    connection = client._stream.transport.get_extra_info("connection")
    assert connection.congestion.name == "cubic"
    client.setsockopt(sock.IPPROTO_TCP, sock.TCP_CONGESTION, b"newreno")  # on the open connection
    assert connection.congestion.name == "newreno"
    assert client.getsockopt(sock.IPPROTO_TCP, sock.TCP_CONGESTION, 16).rstrip(b"\0") == b"newreno"
    client.sendall(b"still works")
    assert server_side.recv(100) == b"still works"
    for each in (client, server_side, listening):
        each.close()

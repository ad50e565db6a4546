"""MemoryLink: two links joined by a SOCK_SEQPACKET socketpair."""

from __future__ import annotations

import select

import pytest

from ustack.link import LinkClosed, MemoryLink

from link_helpers import numbered_packets


@pytest.fixture
def pair():
    a, b = MemoryLink.pair(mtu=1500)
    yield a, b
    a.close()
    b.close()


def test_packets_cross_in_order_with_boundaries_kept(pair):
    a, b = pair
    packets = numbered_packets(10)
    a.send_batch(packets, now=0.0)
    assert b.receive_batch(0.0) == packets
    assert b.receive_batch(0.0) == []  # drained: never blocks
    assert a.counters["packets_out"] == 10 and b.counters["packets_in"] == 10
    assert b.counters["bytes_in"] == sum(map(len, packets))


def test_both_directions(pair):
    a, b = pair
    a.send(b"E" + bytes(39), 0.0)
    b.send(b"E" + bytes(59), 0.0)
    assert b.receive_batch(0.0) == [b"E" + bytes(39)]
    assert a.receive_batch(0.0) == [b"E" + bytes(59)]


def test_receive_batch_takes_at_most_max_packets_and_keeps_the_rest(pair):
    a, b = pair
    packets = numbered_packets(150)
    a.send_batch(packets, 0.0)
    first = b.receive_batch(0.0, max_packets=64)
    second = b.receive_batch(0.0, max_packets=64)
    third = b.receive_batch(0.0, max_packets=64)
    assert (len(first), len(second), len(third)) == (64, 64, 22)
    assert first + second + third == packets


def test_fd_is_readable_exactly_when_packets_wait(pair):
    a, b = pair
    assert select.select([b.fileno()], [], [], 0)[0] == []
    a.send(numbered_packets(1)[0], 0.0)
    assert select.select([b.fileno()], [], [], 1.0)[0] == [b.fileno()]
    b.receive_batch(0.0)
    assert select.select([b.fileno()], [], [], 0)[0] == []


def test_oversized_and_empty_packets_are_counted_drops(pair):
    a, b = pair
    a.send(b"E" + bytes(1500), 0.0)  # 1501 bytes > mtu
    a.send(b"", 0.0)
    assert b.receive_batch(0.0) == []
    assert a.counters["drop_larger_than_mtu"] == 1
    assert a.counters["drop_empty_packet"] == 1


def test_a_full_queue_is_a_counted_drop_not_an_exception():
    a, b = MemoryLink.pair(mtu=65535)
    try:
        big = b"E" + bytes(65534)
        for _ in range(500):  # ~32 MB, far beyond the 4 MiB socket buffer
            a.send(big, 0.0)
        delivered = 0
        while batch := b.receive_batch(0.0):
            delivered += len(batch)
        assert a.counters["drop_queue_full"] > 0
        assert delivered == a.counters["packets_out"] == 500 - a.counters["drop_queue_full"]
    finally:
        a.close()
        b.close()


def test_peer_closing_is_reported_after_pending_packets():
    a, b = MemoryLink.pair()
    a.send(b"E" + bytes(39), 0.0)
    a.close()
    assert b.receive_batch(0.0) == [b"E" + bytes(39)]
    with pytest.raises(LinkClosed):
        b.receive_batch(0.0)
    b.send(b"E" + bytes(39), 0.0)
    assert b.counters["drop_peer_closed"] == 1
    b.close()


def test_mtu_is_checked():
    with pytest.raises(ValueError):
        MemoryLink.pair(mtu=40)

"""The out-of-order queue is bounded (issue 9, "SegmentSmack"): at most max_blocks blocks, the
data in one ring of the buffer size; beyond the limit the furthest blocks are pruned, or an
arrival that would be the furthest is refused, each counted by named reason.

The attacker in these tests is the peer itself: it knows the 4-tuple and the sequence numbers
and sends tiny segments beyond a hole it never fills."""

from __future__ import annotations

import dataclasses
import random
from unittest import mock

import pytest
from hypothesis import given, settings, strategies as st

from tcp_script import *  # noqa: F403
from test_dsack import established_with_sack, sack
from ustack.tcp import receive_buffer
from ustack.tcp.receive_buffer import BLOCK_COST, MAX_BLOCKS, MIN_BLOCKS, ReceiveBuffer, max_blocks_for
from ustack.tcp.seq import seq_add

NEAR_WRAP = 2**32 - 100


def at(offset: int, base: int = NEAR_WRAP) -> int:
    return seq_add(base, offset)


def test_the_default_limit_is_what_the_buffer_pays_for_within_bounds():
    assert max_blocks_for(256 * 1024) == 256 * 1024 // BLOCK_COST == 1024
    assert max_blocks_for(100) == MIN_BLOCKS
    assert max_blocks_for(1 << 30) == MAX_BLOCKS
    assert ReceiveBuffer(256 * 1024, 0).max_blocks == 1024
    assert ReceiveBuffer(256 * 1024, 0, max_blocks=10).max_blocks == 10
    with pytest.raises(ValueError):
        ReceiveBuffer(100, 0, max_blocks=0)


def test_rising_tiny_segments_beyond_the_limit_are_refused_and_counted():
    buffer = ReceiveBuffer(1000, NEAR_WRAP, max_blocks=8)
    for n in range(20):  # bytes 1, 3, 5, ...: byte 0 (the hole) never comes
        buffer.insert(at(1 + 2 * n), b"x")
    assert buffer.out_of_order_blocks == 8 and buffer.out_of_order_bytes == 8
    assert buffer.refused_arrivals == 12
    assert buffer.pruned_blocks == 0
    # The furthest kept block is byte 15; the newest reported first (RFC 2018 4).
    assert buffer.sack_blocks(2) == ((at(15), at(16)), (at(13), at(14)))
    # Data that extends an existing block is not a new block: still accepted.
    buffer.insert(at(2), b"y")
    assert buffer.out_of_order_blocks == 7 and buffer.sack_blocks(1) == ((at(1), at(4)),)


def test_falling_tiny_segments_prune_the_furthest_blocks_an_eighth_at_a_time():
    buffer = ReceiveBuffer(1000, NEAR_WRAP, max_blocks=16)
    for n in reversed(range(16)):  # bytes 61, 57, ..., 5, 1: gaps of three bytes
        buffer.insert(at(1 + 4 * n), b"x")
    assert buffer.out_of_order_blocks == 16 and not buffer.refused_arrivals and not buffer.pruned_blocks
    buffer.insert(at(100), b"far")  # would be the furthest: refused, nothing pruned
    assert buffer.refused_arrivals == 1 and buffer.out_of_order_blocks == 16
    # A new block near the front (byte 3, touching neither 1 nor 5) prunes the two furthest
    # blocks (an eighth of 16) rather than one per arrival.
    buffer.insert(at(3), b"m")
    assert buffer.pruned_blocks == 2 and buffer.pruned_bytes == 2
    assert buffer.out_of_order_blocks == 15 and buffer.out_of_order_bytes == 15
    assert max(buffer.sack_blocks(100)) == (at(53), at(54))  # 57 and 61 are gone
    assert buffer.sack_blocks(1) == ((at(3), at(4)),)
    # Merging into an existing block never prunes, even at the limit.
    buffer.insert(at(91), b"y")  # a 16th block, furthest: room for it
    buffer.insert(at(6), b"zz")  # extends [5, 6) to [5, 8)
    assert buffer.pruned_blocks == 2 and buffer.out_of_order_blocks == 16


def test_a_limit_lowered_by_shrinking_the_buffer_is_met_at_the_next_new_block():
    buffer = ReceiveBuffer(64 * 1024, 0)
    assert buffer.max_blocks == 256
    for n in range(200):
        buffer.insert(10 + 3 * n, b"z")
    buffer.set_capacity(1000)  # the default limit follows the buffer: now 64
    assert buffer.max_blocks == MIN_BLOCKS and buffer.out_of_order_blocks == 200  # nothing lost yet
    buffer.insert(5, b"n")  # a new block, first of all: the furthest go, down to the limit
    assert buffer.out_of_order_blocks == MIN_BLOCKS
    assert buffer.pruned_blocks == 200 - MIN_BLOCKS + 1


def test_pruned_data_is_reneged_and_arrives_again_from_the_retransmission():
    # RFC 2018 8: the sender keeps SACKed data until it is cumulatively acknowledged.
    stream = bytes(range(256)) * 4
    buffer = ReceiveBuffer(2000, NEAR_WRAP, max_blocks=4)
    for start in (900, 700, 500, 300, 100):  # falling: the fifth prunes the furthest
        buffer.insert(at(start), stream[start : start + 50])
    assert buffer.pruned_blocks == 1
    assert sorted(buffer.sack_blocks(10)) == [(at(s), at(s + 50)) for s in (100, 300, 500, 700)]
    received = bytearray()
    for start in range(0, len(stream), 100):  # the sender retransmits everything not acknowledged
        buffer.insert(at(start), stream[start : start + 100])
        received += buffer.read(1 << 20)
    assert bytes(received) == stream and not buffer.has_out_of_order


def test_the_ring_grows_with_the_spread_of_the_data_and_is_freed_once_nothing_is_out_of_order():
    buffer = ReceiveBuffer(256 * 1024, 0)
    buffer.insert(10, b"k" * 10)
    assert len(buffer._ring) == 4096  # one small hole holds little
    buffer.insert(100_000, b"f" * 10)
    assert len(buffer._ring) == 131072  # doubled until it spans RCV.NXT..100,010
    buffer.insert(200_000, b"g" * 100_000)  # clipped at the window, 262,144
    assert len(buffer._ring) == 256 * 1024
    assert buffer.insert(0, b"a" * 10) == 20
    assert buffer.read(100) == b"a" * 10 + b"k" * 10
    assert buffer._ring is not None  # still out of order: 100,000 and 200,000
    buffer.insert(20, bytes(99_980))
    buffer.insert(100_010, bytes(99_990))
    assert buffer._ring is None and buffer.readable == 262_144 - 20
    assert buffer.read(1 << 20)[99_980:99_990] == b"f" * 10


def test_out_of_order_data_across_the_end_of_the_ring():
    # The ring has the buffer's size; after reading, offsets wrap around its end.
    buffer = ReceiveBuffer(100, NEAR_WRAP)
    stream = bytes((7 * n) & 0xFF for n in range(400))
    received = bytearray()
    position = 0
    while position < len(stream):
        # In order up to 60 bytes ahead, then a later piece first, then the hole.
        hole = stream[position : position + 30]
        later = stream[position + 30 : position + 90]
        buffer.insert(at(position + 30), later)
        buffer.insert(at(position), hole)
        received += buffer.read(1 << 20)
        position = len(received)
    assert bytes(received) == stream


def test_growing_the_buffer_while_data_is_out_of_order_keeps_it():
    buffer = ReceiveBuffer(100, 0)
    buffer.insert(50, b"B" * 40)  # [50, 90) in a ring of 100
    buffer.set_capacity(300)  # [150, 190) would share slots with it in the old ring
    buffer.insert(150, b"D" * 40)
    buffer.insert(0, b"A" * 50)
    assert buffer.read(1000) == b"A" * 50 + b"B" * 40
    buffer.insert(90, b"C" * 60)
    assert buffer.read(1000) == b"C" * 60 + b"D" * 40


def test_sack_order_follows_the_latest_arrival_among_many_blocks():
    buffer = ReceiveBuffer(1 << 20, 0)
    for n in range(500):
        buffer.insert(10 + 3 * n, b"z")
    buffer.insert(10 + 3 * 7, b"z")  # a duplicate touches block 7: it is reported first
    assert buffer.sack_blocks(3) == ((31, 32), (1507, 1508), (1504, 1505))
    buffer.insert(11 + 3 * 9, b"zz")  # bridges blocks 9 and 10
    assert buffer.sack_blocks(2) == ((37, 41), (31, 32))


# --- random arrivals with a small limit: the invariants hold and the stream comes through ----


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    capacity=st.integers(20, 400),
    max_blocks=st.integers(1, 6),
    base=st.sampled_from([0, 2**32 - 1, 2**32 - 150, 123456]),
)
def test_random_arrivals_under_a_small_limit_keep_the_bounds_and_reassemble(seed, capacity, max_blocks, base):
    # A ring that starts at 16 bytes grows (and moves its blocks) many times in these runs.
    with mock.patch.object(receive_buffer, "RING_START", 16):
        check_random_arrivals(seed, capacity, max_blocks, base)


def check_random_arrivals(seed, capacity, max_blocks, base):
    generator = random.Random(seed)
    length = generator.randrange(1, 800)
    stream = bytes(generator.randrange(256) for _ in range(length))
    buffer = ReceiveBuffer(capacity, base, max_blocks=max_blocks)
    received = bytearray()
    for _ in range(generator.randrange(1, 120)):
        start = len(received) + generator.randrange(0, capacity)
        piece = stream[start : start + generator.randrange(1, 40)]
        if piece:
            before = buffer.rcv_nxt
            duplicate = buffer.first_duplicate(at(start, base), len(piece))
            if duplicate is not None:
                left, right = ((edge - base) % 2**32 for edge in duplicate)
                assert start <= left < right <= start + len(piece)
            advanced = buffer.insert(at(start, base), piece)
            assert (buffer.rcv_nxt - before) % 2**32 == advanced
        if generator.random() < 0.3:
            received += buffer.read(generator.randrange(0, 100))
        blocks = buffer.sack_blocks(1000)
        assert len(blocks) == buffer.out_of_order_blocks <= max_blocks
        assert buffer.out_of_order_bytes == sum((right - left) % 2**32 for left, right in blocks)
        offsets = sorted(((left - base) % 2**32, (right - base) % 2**32) for left, right in blocks)
        for (_, end), (start_next, _) in zip(offsets, offsets[1:]):
            assert end < start_next  # sorted, never touching
        for left, right in offsets:  # every byte held is the stream's byte
            assert buffer._slice(buffer._ring, left, right) == stream[left:right]
        assert buffer.out_of_order_bytes <= capacity
    # The sender retransmits what is missing, in order, until everything is through.
    while len(received) < length:
        offset = (buffer.rcv_nxt - base) % 2**32
        buffer.insert(buffer.rcv_nxt, stream[offset : offset + 50])
        received += buffer.read(37)
    assert bytes(received) == stream


# --- in a connection -------------------------------------------------------------------------

SACK_LIMITED = dataclasses.replace(CONFIG, sack=True, out_of_order_max_blocks=2)


def test_a_connection_refuses_a_block_beyond_its_limit_without_an_ack():
    script = established_with_sack(SACK_LIMITED)
    script.receive(incoming(remote(11), local(1), payload=b"b"))
    script.expect(outgoing(local(1), remote(1), options=sack((remote(11), remote(12)))))
    script.receive(incoming(remote(21), local(1), payload=b"c"))
    script.expect(outgoing(local(1), remote(1), options=sack((remote(21), remote(22)), (remote(11), remote(12)))))
    # A third block, furthest of all: dropped, counted, and not answered (as Linux).
    script.receive(incoming(remote(31), local(1), payload=b"d"))
    script.expect_nothing()
    drops = script.connection.drops
    assert drops["out_of_order_queue_full"] == 1 and drops["duplicate_or_beyond_window"] == 0
    # A block in between prunes the furthest one (byte 21) and is acknowledged with SACK.
    script.receive(incoming(remote(16), local(1), payload=b"e"))
    script.expect(outgoing(local(1), remote(1), options=sack((remote(16), remote(17)), (remote(11), remote(12)))))
    assert drops["out_of_order_pruned"] == 1
    # The hole fills; what was pruned comes again from the sender (RFC 2018 8).
    script.receive(incoming(remote(1), local(1), payload=b"a" * 10))
    script.expect(outgoing(local(1), remote(12), window=BUFFER - 11, options=sack((remote(16), remote(17)))))
    assert script.connection.recv(100, script.now) == b"a" * 10 + b"b"


# --- both ends of a lossy transfer, with a tiny limit: reneging never loses or stalls data --------


@pytest.mark.parametrize("seed", range(4))
def test_a_lossy_transfer_completes_when_receivers_renege(seed):
    # One block at most: at 15% loss with reordering, receivers refuse and prune SACKed data
    # often; the senders (RFC 2018 8, RFC 6675) keep it until the cumulative ACK and resend it.
    from ustack.testing.simulator import BulkTransfer, Simulator

    config = TcpConfig(out_of_order_max_blocks=1)
    data = bytes(range(256)) * 4096  # 1 MiB each way
    sim = Simulator(seed=seed, loss=0.15, reorder=0.3, client_config=config, server_config=config)
    sim.client_app, sim.server_app = BulkTransfer(data), BulkTransfer(data)
    finished = sim.run(until=lambda s: s.client.state is State.CLOSED and s.server_closed, max_time=20000.0)
    assert finished, f"seed={seed} t={sim.now}"
    assert bytes(sim.server_app.received) == data and bytes(sim.client_app.received) == data, f"seed={seed}"
    limited = sum(end.drops[name] for end in (sim.client, sim.server) for name in ("out_of_order_pruned", "out_of_order_queue_full"))
    assert limited > 0, f"seed={seed}: the limit was never reached"

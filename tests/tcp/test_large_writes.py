"""Large writes and large segments (issue 12): every byte goes out once and in order however the
application's writes and the segments (up to 64 KB with TcpConfig.offload_segments, peeked
through a memoryview, send_buffer.py) cut each other, through retransmissions from the middle of
a write, SACKed ranges and a FIN behind the last write."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from ustack.tcp import State, TcpConfig
from ustack.tcp.send_buffer import LARGE_PEEK, SendBuffer
from ustack.tcp.seq import seq_add
from ustack.testing.simulator import BulkTransfer, Simulator

START = 2**32 - 1000  # the sequence numbers wrap inside the first write


def test_a_large_peek_is_a_view_that_stays_valid_while_the_buffer_takes_writes_and_acks():
    buffer = SendBuffer(1 << 20, START)
    written = bytes(range(256)) * 300
    buffer.write(written)
    segment = buffer.peek(seq_add(START, 100), 65_000)
    assert type(segment) is memoryview and segment.readonly and segment == written[100:65_100]
    assert buffer.write(b"more" * 50_000) == 200_000
    assert buffer.acknowledge(seq_add(START, 70_000)) == 70_000  # drops the chunk the view is of
    assert segment == written[100:65_100]  # the application's bytes, unchanged
    assert buffer.peek(seq_add(START, 76_800), 10_000) == b"more" * 2500
    assert type(buffer.peek(seq_add(START, 76_800), 100)) is bytes  # short: a copy


def test_a_peek_across_chunks_joins_them_and_short_writes_share_a_chunk():
    buffer = SendBuffer(1 << 20, START)
    for _ in range(100):
        buffer.write(b"ab")  # short writes: one chunk, not a hundred
    buffer.write(b"c" * 20_000)
    assert len(buffer._chunks) == 2
    assert buffer.peek(START, 10_000) == b"ab" * 100 + b"c" * 9_800
    assert buffer.acknowledge(seq_add(START, 150)) == 150 and buffer._first == 0
    assert buffer.acknowledge(seq_add(START, 250)) == 100 and buffer._first == 1  # the first chunk let go
    assert buffer.peek(seq_add(START, 250), 10) == b"c" * 10


sizes = st.one_of(st.integers(0, 200), st.integers(LARGE_PEEK - 10, LARGE_PEEK + 10), st.integers(5000, 70_000))


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("write"), sizes),
            st.tuples(st.just("ack"), st.integers(0, 80_000)),
            st.tuples(st.just("peek"), st.integers(0, 200_000), st.integers(0, 70_000)),
        ),
        max_size=40,
    )
)
def test_random_writes_acks_and_peeks_match_the_stream(steps):
    capacity = 300_000
    buffer = SendBuffer(capacity, START)
    stream = bytearray()
    acked = 0
    for step in steps:
        if step[0] == "write":
            data = bytes((len(stream) + i) * 7 & 0xFF for i in range(step[1]))
            accepted = buffer.write(data)
            assert accepted == min(step[1], capacity - (len(stream) - acked))
            stream += data[:accepted]
        elif step[0] == "ack":
            released = min(step[1], len(stream) - acked)
            assert buffer.acknowledge(seq_add(START, acked + released)) == released
            acked += released
        else:
            offset = acked + min(step[1], len(stream) - acked)
            assert buffer.peek(seq_add(START, offset), step[2]) == bytes(stream[offset:offset + step[2]])
        assert buffer.length == len(stream) - acked
        assert buffer.end_seq == seq_add(START, len(stream))


class ChunkedTransfer(BulkTransfer):
    """Writes `data` in pieces of assorted sizes (what an HTTP server's writes look like:
    headers, file chunks, small pieces), then half-closes: a FIN behind the last write."""

    def __init__(self, data: bytes, rng: random.Random):
        super().__init__(data)
        self.data = data
        self.sizes = rng.choices([1, 90, LARGE_PEEK - 1, 7000, 65_536, 100_000], k=len(data) // 1000 + 1)

    def poll(self, connection, now):
        if connection is not None and connection.state in (State.ESTABLISHED, State.CLOSE_WAIT):
            while self.offset < len(self.data):
                size = self.sizes[self.offset % len(self.sizes)]
                accepted = connection.send(self.data[self.offset:self.offset + size], now)
                self.offset += accepted
                if not accepted:
                    break
        super().poll(connection, now)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("offload_segments", [1, 44])
def test_chunks_arrive_whole_through_loss_sack_and_large_segments(seed, offload_segments):
    rng = random.Random(seed)
    data = rng.randbytes(1_500_000)
    config = TcpConfig(offload_segments=offload_segments)
    sim = Simulator(config, config, seed=seed, loss=0.05)
    sim.client_app = ChunkedTransfer(data, rng)
    sim.server_app = BulkTransfer(b"")
    finished = sim.run(until=lambda s: s.client.state is State.CLOSED and s.server_closed, max_time=20000.0)
    where = f"seed={seed} offload_segments={offload_segments} t={sim.now:.3f}"
    assert finished, where
    assert bytes(sim.server_app.received) == data, where
    assert sim.client.retransmissions > 0, f"nothing was resent: {where}"  # from the middle of a write, mostly
    assert sim.client.sack_permitted, where

"""The send buffer: written, sent and not yet acknowledged data (RFC 9293 3.3.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from ustack.tcp.send_buffer import SendBuffer
from ustack.tcp.seq import seq_add

NEAR_WRAP = 2**32 - 4


def at(offset: int) -> int:
    return seq_add(NEAR_WRAP, offset)


def test_an_empty_buffer():
    buffer = SendBuffer(100, NEAR_WRAP)
    assert buffer.start_seq == buffer.end_seq == NEAR_WRAP
    assert buffer.length == 0 and buffer.free_space == 100 and buffer.capacity == 100
    assert buffer.peek(NEAR_WRAP, 10) == b""
    assert buffer.acknowledge(at(1)) == 0


def test_write_accepts_up_to_the_free_space():
    buffer = SendBuffer(10, NEAR_WRAP)
    assert buffer.write(b"abcdef") == 6
    assert buffer.write(b"ghijklmn") == 4  # only part fits
    assert buffer.length == 10 and buffer.free_space == 0
    assert buffer.write(b"x") == 0
    assert buffer.write(b"") == 0
    assert buffer.end_seq == at(10) == 6  # wrapped past 2**32
    assert buffer.peek(NEAR_WRAP, 100) == b"abcdefghij"


def test_write_accepts_bytearray_and_memoryview():
    buffer = SendBuffer(5, 0)
    assert buffer.write(bytearray(b"ab")) == 2
    assert buffer.write(memoryview(b"cdefg")) == 3
    assert buffer.peek(0, 10) == b"abcde"


def test_peek_at_any_offset_across_the_wrap():
    buffer = SendBuffer(100, NEAR_WRAP)
    buffer.write(b"0123456789")
    assert buffer.peek(at(3), 4) == b"3456"  # starts before 2**32, ends after
    assert buffer.peek(at(4), 3) == b"456"  # seq 0
    assert buffer.peek(at(8), 100) == b"89"  # fewer at the end
    assert buffer.peek(at(10), 5) == b""  # end_seq: nothing more yet
    assert buffer.peek(at(2), 0) == b""
    assert isinstance(buffer.peek(at(0), 4), bytes)


def test_peek_outside_the_buffer_is_a_caller_bug():
    buffer = SendBuffer(100, NEAR_WRAP)
    buffer.write(b"0123456789")
    with pytest.raises(ValueError):
        buffer.peek(at(-1), 1)
    with pytest.raises(ValueError):
        buffer.peek(at(11), 1)


def test_acknowledge_releases_the_front_including_partial_segments():
    buffer = SendBuffer(100, NEAR_WRAP)
    buffer.write(b"0123456789")
    assert buffer.acknowledge(at(3)) == 3  # a partial ACK
    assert buffer.start_seq == at(3) and buffer.length == 7 and buffer.free_space == 93
    assert buffer.peek(at(3), 100) == b"3456789"
    assert buffer.acknowledge(at(5)) == 2  # crosses 2**32: start_seq becomes 1
    assert buffer.start_seq == 1
    assert buffer.peek(1, 3) == b"567"
    assert buffer.acknowledge(at(10)) == 5
    assert buffer.length == 0 and buffer.start_seq == buffer.end_seq == at(10)
    assert buffer.write(b"more") == 4
    assert buffer.peek(at(10), 10) == b"more"


def test_acknowledge_ignores_old_duplicate_and_too_new_acks():
    buffer = SendBuffer(100, NEAR_WRAP)
    buffer.write(b"0123456789")
    buffer.acknowledge(at(4))
    assert buffer.acknowledge(at(4)) == 0  # duplicate: nothing new
    assert buffer.acknowledge(at(2)) == 0  # old
    assert buffer.acknowledge(at(11)) == 0  # for data never written (or a FIN: caller clips)
    assert buffer.acknowledge(at(2**31)) == 0  # far away
    assert buffer.start_seq == at(4) and buffer.length == 6


def test_capacity_can_change():
    buffer = SendBuffer(4, 0)
    buffer.write(b"abcd")
    buffer.capacity = 8
    assert buffer.free_space == 4 and buffer.write(b"efghij") == 4
    buffer.capacity = 2  # smaller than what is held: data kept, writes refused
    assert buffer.free_space == 0 and buffer.write(b"x") == 0
    assert buffer.peek(0, 100) == b"abcdefgh"
    buffer.acknowledge(7)
    assert buffer.free_space == 1 and buffer.write(b"xyz") == 1
    with pytest.raises(ValueError):
        buffer.capacity = -1
    with pytest.raises(ValueError):
        SendBuffer(-1, 0)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 300)),
        st.tuples(st.just("ack"), st.integers(-50, 400)),
        st.tuples(st.just("peek"), st.integers(0, 400), st.integers(0, 200)),
    ),
    max_size=80,
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    capacity=st.integers(0, 500),
    start=st.sampled_from([0, 2**32 - 1, 2**32 - 100, 2**31, 77]),
    steps=operations,
)
def test_random_operations_match_a_model_of_the_stream(capacity, start, steps):
    buffer = SendBuffer(capacity, start)
    stream = bytearray()  # every byte ever accepted
    acked = 0  # model: stream offsets [acked, len(stream)) are held
    for step in steps:
        if step[0] == "write":
            data = bytes((len(stream) + i) & 0xFF for i in range(step[1]))
            accepted = buffer.write(data)
            assert accepted == min(step[1], capacity - (len(stream) - acked))
            stream += data[:accepted]
        elif step[0] == "ack":
            target = acked + step[1]
            released = buffer.acknowledge(seq_add(start, target))
            expected = step[1] if 0 < step[1] <= len(stream) - acked else 0
            assert released == expected
            acked += expected
        else:
            offset = acked + min(step[1], len(stream) - acked)
            assert buffer.peek(seq_add(start, offset), step[2]) == bytes(stream[offset : offset + step[2]])
        assert buffer.start_seq == seq_add(start, acked)
        assert buffer.end_seq == seq_add(start, len(stream))
        assert buffer.length == len(stream) - acked
        assert buffer.free_space == capacity - buffer.length


def test_bytes_are_kept_as_written_and_a_bytearray_as_a_copy():
    buffer = SendBuffer(100_000, 0)
    written = b"a" * 20_000
    assert buffer.write(written) == 20_000 and buffer._chunks[-1] is written
    changing = bytearray(b"b" * 20_000)
    assert buffer.write(changing) == 20_000
    changing[:] = b"c" * 20_000  # the application reuses its buffer after the write
    assert buffer.peek(20_000, 20_000) == b"b" * 20_000
    whole = b"d" * 90_000
    assert buffer.write(whole) == 60_000  # the part that fits: a view, not a copy
    assert buffer._chunks[-1].obj is whole and buffer.peek(40_000, 60_000) == whole[:60_000]


def test_an_object_of_wider_items_counts_in_bytes():
    import array

    buffer = SendBuffer(6, 0)
    assert buffer.write(array.array("I", [1, 2])) == 6  # 8 bytes: the 6 that fit
    assert buffer.peek(0, 10) == array.array("I", [1, 2]).tobytes()[:6]

"""The receive buffer: reassembly, the window edge, wraparound and SACK blocks (RFC 2018)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from ustack.tcp.receive_buffer import MERGE_BELOW, ReceiveBuffer
from ustack.tcp.seq import SEQ_MASK, seq_add

NEAR_WRAP = 2**32 - 100  # sequence numbers wrap during these tests (DESIGN.md testing conventions)


def at(offset: int, base: int = NEAR_WRAP) -> int:
    return seq_add(base, offset)


# --- in order ---------------------------------------------------------------------------------


def test_in_order_data_advances_rcv_nxt_and_waits_for_the_application():
    buffer = ReceiveBuffer(1000, NEAR_WRAP)
    assert buffer.insert(NEAR_WRAP, b"hello ") == 6
    assert buffer.insert(at(6), b"world") == 5
    assert buffer.rcv_nxt == at(11)
    assert buffer.readable == 11 and buffer.free_space == 989
    assert not buffer.has_out_of_order and buffer.out_of_order_bytes == 0
    assert buffer.peek(5) == b"hello"
    assert buffer.readable == 11  # peek leaves the data
    assert buffer.read(6) == b"hello "
    assert buffer.free_space == 995  # reading reopens the window
    assert buffer.read(100) == b"world"
    assert buffer.read(100) == b"" and buffer.readable == 0


def test_data_crossing_the_wrap_is_in_order():
    buffer = ReceiveBuffer(1000, 2**32 - 3)
    assert buffer.insert(2**32 - 3, b"abcdef") == 6
    assert buffer.rcv_nxt == 3
    assert buffer.insert(3, b"gh") == 2
    assert buffer.read(10) == b"abcdefgh"


def test_read_and_peek_of_zero_or_negative_return_nothing():
    buffer = ReceiveBuffer(100, 0)
    buffer.insert(0, b"abc")
    assert buffer.read(0) == b"" and buffer.peek(0) == b"" and buffer.read(-1) == b""
    assert buffer.readable == 3


def test_empty_insert_changes_nothing():
    buffer = ReceiveBuffer(100, 5)
    assert buffer.insert(5, b"") == 0
    assert buffer.rcv_nxt == 5 and buffer.readable == 0


def test_bulk_reads_of_64_kib_return_the_stream_in_order():
    buffer = ReceiveBuffer(256 * 1024, NEAR_WRAP)
    stream = bytes(range(256)) * 1024  # 256 KiB
    received = bytearray()
    seq = NEAR_WRAP
    for start in range(0, len(stream), 1460):
        segment = stream[start : start + 1460]
        assert buffer.insert(seq, segment) == len(segment)
        seq = seq_add(seq, len(segment))
        if buffer.readable >= 65536:
            received += buffer.read(65536)
    received += buffer.read(1 << 30)
    assert received == stream


def test_accepts_bytearray_and_memoryview_payloads():
    buffer = ReceiveBuffer(100, 0)
    buffer.insert(0, bytearray(b"ab"))
    buffer.insert(4, memoryview(b"xxef")[2:])
    buffer.insert(2, memoryview(b"cd"))
    assert buffer.read(10) == b"abcdef"


def test_a_read_that_one_arrival_answers_hands_over_that_arrival_uncopied():
    buffer = ReceiveBuffer(1 << 20, NEAR_WRAP)
    first, second = bytes(range(256)) * 200, bytes(range(255, -1, -1)) * 200  # 51,200 bytes each
    buffer.insert(NEAR_WRAP, first)
    buffer.insert(at(len(first)), second)
    assert buffer.read(len(first)) is first  # the parser's payload object itself
    assert buffer.read(1 << 20) is second and buffer.readable == 0
    # A long read-only view (of a super-segment the TUN link handed over, whose buffer nobody
    # writes again) is kept as it is: the read makes its one copy, into bytes of its own.
    frame = bytearray(b"h" * 52 + first)
    buffer.insert(at(2 * len(first)), memoryview(frame).toreadonly()[52:])
    buffer.insert(at(3 * len(first)), memoryview(frame).toreadonly()[52:])
    data = buffer.read(1 << 20)
    assert type(data) is bytes and data == first + first
    # A writable view, or a short one, is copied when it arrives: what it looked at may change.
    offset = 4 * len(first)
    for view in (memoryview(frame)[52:], memoryview(frame).toreadonly()[52:1052]):
        expected = bytes(view)
        buffer.insert(at(offset), view)
        offset += len(view)
        frame[52:60] = b"changed!"
        assert buffer.read(1 << 20) == expected
        frame[52:60] = first[:8]


def test_reads_across_and_inside_large_chunks_return_the_stream_in_order():
    buffer = ReceiveBuffer(1 << 20, NEAR_WRAP)
    stream = bytes((index * 7 + 3) & 0xFF for index in range(200_000))
    received = bytearray()
    seq, start = NEAR_WRAP, 0
    sizes = [65_000, 3, 1_448, 900, 5, 40_000, 1_023, 1_024, 2]  # large, short and in between
    reads = [70_000, 1, 65_001, 10, 2_000, 30_000, 12]
    turn = 0
    while start < len(stream):
        piece = stream[start : start + sizes[turn % len(sizes)]]
        assert buffer.insert(seq, piece) == len(piece)
        seq, start = seq_add(seq, len(piece)), start + len(piece)
        assert buffer.peek(100) == stream[len(received) : min(start, len(received) + 100)]
        received += buffer.read(reads[turn % len(reads)])
        assert buffer.readable == start - len(received) and buffer.free_space == (1 << 20) - buffer.readable
        turn += 1
    received += buffer.read(1 << 30)
    assert received == stream and buffer.readable == 0


def test_one_byte_segments_join_into_few_chunks():
    # A peer sending its data a byte at a time: the chunks stay far fewer than the bytes, so
    # their object headers cannot cost many times the data (the module docstring's bound).
    buffer = ReceiveBuffer(100_000, 0)
    for offset in range(20_000):
        assert buffer.insert(offset, b"x") == 1
    assert len(buffer._in_order) <= 2 * 20_000 // MERGE_BELOW + 1
    assert buffer.read(1 << 20) == b"x" * 20_000


# --- duplicates, overlaps, out of order -------------------------------------------------------


def test_an_old_duplicate_is_ignored_and_an_overlap_is_trimmed():
    buffer = ReceiveBuffer(100, NEAR_WRAP)
    buffer.insert(NEAR_WRAP, b"abcd")
    assert buffer.insert(NEAR_WRAP, b"abcd") == 0  # entirely old
    assert buffer.insert(at(2), b"CDef") == 2  # the first two bytes are old: only "ef" is new
    assert buffer.read(100) == b"abcdef"  # the data held first wins


def test_out_of_order_data_waits_for_the_hole_then_is_delivered():
    buffer = ReceiveBuffer(100, NEAR_WRAP)
    assert buffer.insert(at(5), b"fgh") == 0
    assert buffer.rcv_nxt == NEAR_WRAP and buffer.readable == 0
    assert buffer.has_out_of_order and buffer.out_of_order_bytes == 3
    assert buffer.free_space == 100  # out-of-order data lies inside the window
    assert buffer.insert(NEAR_WRAP, b"abc") == 3  # a hole remains at offset 3
    assert buffer.insert(at(3), b"de") == 5  # fills it: "de" plus the held "fgh"
    assert buffer.rcv_nxt == at(8)
    assert not buffer.has_out_of_order and buffer.out_of_order_bytes == 0
    assert buffer.read(100) == b"abcdefgh"


def test_a_segment_that_fills_a_hole_and_runs_past_the_held_block():
    buffer = ReceiveBuffer(100, 0)
    buffer.insert(4, b"ef")
    buffer.insert(10, b"kl")
    # covers the hole 0..4, the held "ef" (with different bytes: held data wins), 6..8
    assert buffer.insert(0, b"abcdXXgh") == 8
    assert buffer.sack_blocks() == ((10, 12),)
    assert buffer.insert(8, b"ijk") == 4
    assert buffer.read(100) == b"abcdefghijkl"


def test_out_of_order_pieces_merge_and_count_each_byte_once():
    buffer = ReceiveBuffer(100, 0)
    buffer.insert(10, b"klm")
    buffer.insert(20, b"uvw")
    buffer.insert(12, b"mnopqrstu")  # bridges both blocks, overlapping each by one byte
    assert buffer.out_of_order_bytes == 13  # 10..23
    assert buffer.sack_blocks() == ((10, 23),)
    buffer.insert(11, b"l")  # a duplicate inside the block
    assert buffer.out_of_order_bytes == 13
    assert buffer.insert(0, b"abcdefghij") == 23
    assert buffer.read(100) == b"abcdefghijklmnopqrstuvw"


def test_out_of_order_blocks_that_touch_are_merged():
    buffer = ReceiveBuffer(100, 0)
    buffer.insert(10, b"kl")
    buffer.insert(12, b"mn")
    buffer.insert(8, b"ij")
    assert buffer.sack_blocks() == ((8, 14),)


def test_reverse_order_arrival_reassembles():
    buffer = ReceiveBuffer(10_000, NEAR_WRAP)
    stream = bytes(range(200)) * 20
    for start in reversed(range(0, len(stream), 100)):
        advanced = buffer.insert(at(start), stream[start : start + 100])
        assert advanced == (len(stream) if start == 0 else 0)
    assert buffer.read(1 << 20) == stream


# --- the window edge --------------------------------------------------------------------------


def test_data_beyond_the_window_edge_is_trimmed():
    buffer = ReceiveBuffer(10, NEAR_WRAP)
    assert buffer.insert(NEAR_WRAP, b"0123456789abcdef") == 10
    assert buffer.readable == 10 and buffer.free_space == 0
    assert buffer.insert(at(10), b"abc") == 0  # a zero window takes nothing
    assert buffer.read(4) == b"0123"
    assert buffer.free_space == 4
    assert buffer.insert(at(10), b"abcdef") == 4
    assert buffer.read(100) == b"456789abcd"


def test_out_of_order_data_beyond_the_window_edge_is_trimmed():
    buffer = ReceiveBuffer(10, 0)
    buffer.insert(0, b"ab")  # readable 2: the window is now [2, 10)
    assert buffer.insert(6, b"ghijkl") == 0
    assert buffer.out_of_order_bytes == 4 and buffer.sack_blocks() == ((6, 10),)
    assert buffer.insert(20, b"far") == 0  # entirely outside
    assert buffer.out_of_order_bytes == 4
    assert buffer.insert(2, b"cdef") == 8
    assert buffer.read(100) == b"abcdefghij"


def test_a_zero_capacity_buffer_accepts_nothing():
    buffer = ReceiveBuffer(0, 7)
    assert buffer.insert(7, b"abc") == 0 and buffer.insert(8, b"bc") == 0
    assert buffer.free_space == 0 and not buffer.has_out_of_order


def test_set_capacity_moves_the_window_edge():
    buffer = ReceiveBuffer(4, 0)
    assert buffer.insert(0, b"abcdef") == 4
    buffer.set_capacity(8)
    assert buffer.free_space == 4
    assert buffer.insert(4, b"efgh") == 4
    buffer.set_capacity(2)  # smaller than what is held: nothing is lost, the window is closed
    assert buffer.free_space == 0 and buffer.read(100) == b"abcdefgh"
    with pytest.raises(ValueError):
        buffer.set_capacity(-1)


def test_data_from_far_away_in_sequence_space_is_ignored():
    buffer = ReceiveBuffer(1000, NEAR_WRAP)
    assert buffer.insert(at(2**31), b"x") == 0
    assert buffer.insert(at(-(2**31)), b"x") == 0
    assert buffer.insert(at(-5000), b"y" * 100) == 0
    assert not buffer.has_out_of_order and buffer.readable == 0


# --- SACK blocks (RFC 2018 section 4) ---------------------------------------------------------


def test_sack_blocks_report_the_newest_block_first_and_wrap():
    base = 2**32 - 10
    buffer = ReceiveBuffer(10_000, base)
    assert buffer.sack_blocks() == ()
    buffer.insert(at(5, base), b"A" * 5)  # block [5, 10) ends exactly at 2**32
    buffer.insert(at(20, base), b"B" * 5)
    buffer.insert(at(40, base), b"C" * 5)
    a, b, c = (at(5, base), 0), (at(20, base), at(25, base)), (at(40, base), at(45, base))
    assert a[1] == 0 and b == (10, 15)
    assert buffer.sack_blocks() == (c, b, a)
    # A segment that extends block A makes A the first block (it holds the newest segment).
    buffer.insert(at(10, base), b"A" * 2)
    a = (at(5, base), at(12, base))
    assert buffer.sack_blocks() == (a, c, b)
    # A segment bridging B and C makes one block, reported first.
    buffer.insert(at(25, base), b"x" * 15)
    assert buffer.sack_blocks() == ((at(20, base), at(45, base)), a)


def test_a_duplicate_inside_a_block_moves_that_block_first():
    # RFC 2018 4: the first block reports the segment that triggered this ACK.
    buffer = ReceiveBuffer(1000, 0)
    buffer.insert(10, b"a" * 5)
    buffer.insert(30, b"b" * 5)
    assert buffer.sack_blocks() == ((30, 35), (10, 15))
    buffer.insert(11, b"a")
    assert buffer.sack_blocks() == ((10, 15), (30, 35))


def test_sack_blocks_are_limited_to_the_most_recent():
    buffer = ReceiveBuffer(10_000, 0)
    for n in range(6):
        buffer.insert(100 * (n + 1), b"z" * 10)
    assert buffer.sack_blocks(3) == ((600, 610), (500, 510), (400, 410))
    assert len(buffer.sack_blocks()) == 4
    assert buffer.sack_blocks(0) == ()


def test_a_block_that_becomes_in_order_leaves_the_sack_list():
    buffer = ReceiveBuffer(1000, 0)
    buffer.insert(10, b"k" * 10)
    buffer.insert(50, b"q" * 10)
    assert buffer.insert(0, b"a" * 10) == 20
    assert buffer.sack_blocks() == ((50, 60),)
    assert buffer.out_of_order_bytes == 10


# --- D-SACK (RFC 2883): the first run of a segment that we already hold -------------------------


def test_first_duplicate_of_data_before_rcv_nxt():
    buffer = ReceiveBuffer(1000, NEAR_WRAP)
    buffer.insert(NEAR_WRAP, b"x" * 100)  # RCV.NXT is NEAR_WRAP + 100, just past the wrap
    assert buffer.first_duplicate(at(10), 20) == (at(10), at(30))  # wholly old
    assert buffer.first_duplicate(at(50), 100) == (at(50), at(100))  # old up to RCV.NXT, then new
    assert buffer.first_duplicate(at(100), 50) is None  # in order: nothing repeated
    buffer.read(100)
    assert buffer.first_duplicate(at(0), 100) == (at(0), at(100))  # read data was received too
    # Bytes before the buffer's first byte (IRS + 1) were never received: not duplicates.
    assert buffer.first_duplicate(at(-10), 20) == (at(0), at(10))
    assert buffer.first_duplicate(at(-10), 10) is None


def test_first_duplicate_inside_out_of_order_blocks():
    buffer = ReceiveBuffer(1000, 0)
    buffer.insert(200, b"b" * 100)
    buffer.insert(400, b"d" * 100)
    assert buffer.first_duplicate(250, 25) == (250, 275)  # inside a block
    assert buffer.first_duplicate(150, 100) == (200, 250)  # new bytes, then a block's start
    assert buffer.first_duplicate(150, 50) is None  # ends where a block starts: touching only
    assert buffer.first_duplicate(300, 100) is None  # in the hole between the blocks
    assert buffer.first_duplicate(450, 100) == (450, 500)  # a block's end, then new bytes
    assert buffer.first_duplicate(600, 100) is None  # beyond every block


def test_first_duplicate_reports_only_the_lowest_of_several_runs():
    # RFC 2883 4 puts one duplicate run in the D-SACK block; like FreeBSD we report the lowest.
    buffer = ReceiveBuffer(1000, 0)
    buffer.insert(0, b"a" * 100)
    buffer.insert(200, b"b" * 100)
    buffer.insert(400, b"d" * 100)
    assert buffer.first_duplicate(250, 200) == (250, 300)  # not 400:450
    assert buffer.first_duplicate(50, 400) == (50, 100)  # not the blocks further on


# --- against a simple model -------------------------------------------------------------------


class ModelBuffer:
    """One flag per byte of the stream: obviously right, hopelessly slow."""

    def __init__(self, capacity: int, length: int):
        self.capacity = capacity
        self.have = [False] * length
        self.rcv_nxt = 0  # stream offsets
        self.read_to = 0

    def insert(self, start: int, end: int) -> int:
        window_end = self.read_to + self.capacity
        for index in range(max(start, self.rcv_nxt), min(end, window_end)):
            self.have[index] = True
        before = self.rcv_nxt
        while self.rcv_nxt < len(self.have) and self.have[self.rcv_nxt]:
            self.rcv_nxt += 1
        return self.rcv_nxt - before

    def first_duplicate(self, start: int, end: int) -> tuple[int, int] | None:
        """The first run of bytes of [start, end) already held (everything before rcv_nxt is)."""
        for index in range(start, end):
            if self.have[index]:
                last = index
                while last < end and self.have[last]:
                    last += 1
                return index, last
        return None

    def out_of_order_runs(self) -> set[tuple[int, int]]:
        runs, index = set(), self.rcv_nxt
        while index < len(self.have):
            if self.have[index]:
                start = index
                while index < len(self.have) and self.have[index]:
                    index += 1
                runs.add((start, index))
            else:
                index += 1
        return runs


@st.composite
def arrivals(draw):
    """A stream, a capacity and a list of (start, end) pieces of it arriving in random order
    with duplicates and overlaps, interleaved with application reads (("read", n))."""
    length = draw(st.integers(1, 600))
    cuts = sorted(set(draw(st.lists(st.integers(1, length - 1), max_size=30)))) if length > 1 else []
    edges = [0, *cuts, length]
    pieces = [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    extras = draw(
        st.lists(
            st.tuples(st.integers(0, length - 1), st.integers(1, 80)).map(
                lambda pair: (pair[0], min(length, pair[0] + pair[1]))
            ),
            max_size=15,
        )
    )
    duplicates = draw(st.lists(st.sampled_from(pieces), max_size=10))
    events = draw(st.permutations(pieces + extras + duplicates))
    reads = draw(st.lists(st.tuples(st.integers(0, len(events)), st.integers(0, 200)), max_size=8))
    for position, size in sorted(reads, reverse=True):
        events.insert(position, ("read", size))
    capacity = draw(st.integers(1, 2 * length))
    base = draw(st.sampled_from([0, 2**32 - 1, 2**32 - 300, 2**31 - 5, 123456]))
    return length, capacity, base, events


@settings(derandomize=True, max_examples=400, deadline=None)
@given(arrivals())
def test_random_arrivals_reassemble_exactly_like_the_model(case):
    length, capacity, base, events = case
    stream = bytes((index * 7 + 3) & 0xFF for index in range(length))
    buffer = ReceiveBuffer(capacity, base)
    model = ModelBuffer(capacity, length)
    received = bytearray()

    def check():
        assert buffer.rcv_nxt == seq_add(base, model.rcv_nxt)
        assert buffer.readable == model.rcv_nxt - model.read_to
        assert buffer.free_space == capacity - buffer.readable
        runs = model.out_of_order_runs()
        assert buffer.out_of_order_bytes == sum(end - start for start, end in runs)
        assert buffer.has_out_of_order == bool(runs)
        reported = buffer.sack_blocks(max_blocks=1000)
        assert {(seq_add(base, s), seq_add(base, e)) for s, e in runs} == set(reported)
        assert len(reported) == len(runs)

    for event in events:
        if event[0] == "read":
            data = buffer.read(event[1])
            assert len(data) == min(event[1], model.rcv_nxt - model.read_to)
            model.read_to += len(data)
            received += data
        else:
            start, end = event
            duplicate = model.first_duplicate(start, end)
            expected = duplicate and (seq_add(base, duplicate[0]), seq_add(base, duplicate[1]))
            assert buffer.first_duplicate(seq_add(base, start), end - start) == expected
            advanced = buffer.insert(seq_add(base, start), stream[start:end])
            assert advanced == model.insert(start, end)
        check()

    # Then the sender retransmits whatever is missing, in order, until everything is through;
    # pieces beyond the window get trimmed and sent again after the application reads.
    while len(received) < length:
        offset = model.rcv_nxt
        if offset < length:
            advanced = buffer.insert(seq_add(base, offset), stream[offset : offset + 50])
            assert advanced == model.insert(offset, min(length, offset + 50))
        data = buffer.read(37)
        model.read_to += len(data)
        received += data
        check()
    assert bytes(received) == stream
    assert buffer.rcv_nxt == seq_add(base, length) and not buffer.has_out_of_order
    assert buffer.rcv_nxt <= SEQ_MASK


# --- read_chunks: the pieces as held, no copy (issue 12) --------------------------------------


def test_read_chunks_hands_over_the_pieces_themselves():
    buffer = ReceiveBuffer(1 << 20, NEAR_WRAP)
    frame = bytearray(b"h" * 52 + bytes(range(256)) * 200)
    view = memoryview(frame).toreadonly()[52:]  # a super-segment's payload, as the TUN link hands it
    arrival = bytes(range(255, -1, -1)) * 200
    buffer.insert(NEAR_WRAP, view)
    buffer.insert(at(len(view)), arrival)
    pieces = buffer.read_chunks(len(view) + 1000)
    assert pieces[0] is view and bytes(pieces[1]) == arrival[:1000]
    assert type(pieces[1]) is memoryview and pieces[1].obj is arrival  # the front of a chunk: a view
    assert buffer.readable == len(arrival) - 1000 and buffer.free_space == (1 << 20) - buffer.readable
    assert buffer.read(1 << 20) == arrival[1000:] and buffer.read_chunks(10) == []
    assert buffer.read_chunks(0) == [] and buffer.readable == 0


@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 70_000), min_size=1, max_size=30),
       st.lists(st.tuples(st.booleans(), st.integers(1, 150_000)), min_size=1, max_size=30))
@settings(max_examples=60, deadline=None)
def test_read_chunks_and_read_mixed_return_the_stream_in_order(start_seq, sizes, reads):
    """Arrivals of any size (short ones join a bytearray chunk, long ones arrive as read-only
    views), read in turn by read() and read_chunks() of any size: the stream, in order, and the
    window accounting follows every read."""
    buffer = ReceiveBuffer(1 << 22, start_seq)
    stream = bytes((index * 13 + 5) & 0xFF for index in range(sum(sizes)))
    received = bytearray()
    seq, position = start_seq, 0
    for turn, size in enumerate(sizes):
        piece = stream[position : position + size]
        if size >= 32 * 1024:
            piece = memoryview(bytearray(piece)).toreadonly()
        assert buffer.insert(seq, piece) == size
        seq, position = seq_add(seq, size), position + size
        as_chunks, count = reads[turn % len(reads)]
        if as_chunks:
            pieces = buffer.read_chunks(count)
            assert all(len(chunk) for chunk in pieces) and sum(map(len, pieces)) <= count
            for chunk in pieces:
                received += chunk
        else:
            received += buffer.read(count)
        assert buffer.readable == position - len(received)
    for chunk in buffer.read_chunks(1 << 30):
        received += chunk
    assert received == stream and buffer.readable == 0


def test_a_short_chunk_handed_over_is_never_written_again():
    buffer = ReceiveBuffer(1 << 20, NEAR_WRAP)
    buffer.insert(NEAR_WRAP, b"a" * 10)
    buffer.insert(at(10), b"b" * 10)  # joins the first into a short bytearray chunk
    (whole,) = buffer.read_chunks(100)
    front = buffer.read_chunks(0)
    buffer.insert(at(20), b"c" * 10)
    buffer.insert(at(30), b"d" * 10)
    (part,) = buffer.read_chunks(5)  # the front of a short chunk, the rest stays held
    buffer.insert(at(40), b"e" * 10)  # joins what is left of it
    assert bytes(whole) == b"a" * 10 + b"b" * 10 and front == []
    assert bytes(part) == b"c" * 5
    assert buffer.read(100) == b"c" * 5 + b"d" * 10 + b"e" * 10

"""What the receive buffer's per-arrival and per-read bookkeeping costs, in calls (issue 12: a
connection lifecycle counted in Python calls). `readable` is a plain attribute, not a property;
a read answered by the first chunk measures it once. The bytes themselves are
test_receive_buffer.py's (random arrivals and reads against a model)."""

from __future__ import annotations

import cProfile
import pstats

from ustack.tcp.receive_buffer import ReceiveBuffer


def calls_in(function, *args) -> dict[str, int]:
    """Calls made while `function(*args)` runs, by function name (builtins included)."""
    profile = cProfile.Profile()
    profile.runcall(function, *args)
    counts: dict[str, int] = {}
    for (_, _, name), row in pstats.Stats(profile).stats.items():
        counts[name] = counts.get(name, 0) + row[1]
    return counts


def test_readable_is_an_attribute_that_follows_arrivals_and_reads():
    assert not isinstance(ReceiveBuffer.__dict__["readable"], property)
    buffer = ReceiveBuffer(1 << 16, 1000)
    buffer.insert(1000, b"GET / HTTP/1.0\r\n\r\n")
    assert buffer.readable == 18 and buffer.free_space == (1 << 16) - 18
    assert buffer.read(5) == b"GET /" and buffer.readable == 13
    assert b"".join(buffer.read_chunks(100)) == b" HTTP/1.0\r\n\r\n"
    assert buffer.readable == 0


def test_a_read_the_first_chunk_answers_measures_it_once():
    for size, wanted in ((18, 100), (18, 18), (4000, 1000)):
        buffer = ReceiveBuffer(1 << 16, 7)
        buffer.insert(7, bytes(size))
        counts = calls_in(buffer.read_chunks, wanted)
        # len(first chunk), and len(chunks) when the first is short: no more (the bytes taken are
        # counted on the way, not measured again).
        # CPython's cProfile names it "<built-in method builtins.len>", PyPy's "<built-in function len>".
        lens = sum(count for name, count in counts.items() if name.startswith("<built-in") and name.endswith("len>"))
        assert lens == (2 if size < wanted else 1), (size, wanted, counts)
        assert buffer.readable == size - min(size, wanted)


def test_a_read_across_chunks_leaves_readable_exact():
    buffer = ReceiveBuffer(1 << 20, 0)
    seq = 0
    for size in (40_000, 40_000, 100, 40_000):
        view = memoryview(bytearray(size)).toreadonly()  # long arrivals stay chunks of their own
        buffer.insert(seq, view)
        seq += size
    total = 120_100
    for wanted in (50_000, 30_050, 10, 40_040):
        before = buffer.readable
        pieces = buffer.read_chunks(wanted)
        assert before - buffer.readable == sum(map(len, pieces)) == wanted
        total -= wanted
        assert buffer.readable == total


def test_a_super_segments_payload_is_kept_as_it_came_with_no_helper_call():
    # The TUN link hands a received super-segment over as a read-only view (vnet.packet_from_parts):
    # the in-order path keeps that very object, without _append_in_order (once per super-segment
    # of an upload).
    buffer = ReceiveBuffer(1 << 20, 500)
    first = memoryview(bytes(range(256)) * 256).toreadonly()  # 65,536 bytes
    buffer.insert(500, b"head")
    counts = calls_in(buffer.insert, 504, first)
    assert "_append_in_order" not in counts, counts
    assert buffer.readable == 4 + len(first)
    chunks = buffer.read_chunks(1 << 20)
    assert chunks[1] is first and b"".join(chunks) == b"head" + bytes(first)


def test_a_long_view_past_the_window_is_kept_trimmed_and_counted_trimmed():
    # RFC 9293 3.10.7.4: what lies beyond the right edge of the window is not kept.
    buffer = ReceiveBuffer(50_000, 0)
    data = memoryview(bytes(range(250)) * 256).toreadonly()  # 64,000 bytes
    assert buffer.insert(0, data) == 50_000
    assert buffer.readable == 50_000 and buffer.free_space == 0
    assert b"".join(buffer.read_chunks(1 << 20)) == bytes(data[:50_000])
    assert buffer.readable == 0

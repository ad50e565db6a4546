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

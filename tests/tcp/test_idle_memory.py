"""What an idle connection keeps (issue 12, scripts/bench_memory.py and bench_lifecycles.py): parts
made only when needed and given back when empty, and settings shared rather than copied, each with
the behaviour around it unchanged."""

from __future__ import annotations

from tcp_script import ACK, BUFFER, PSH, established, incoming, local, outgoing, remote

from ustack.tcp.congestion import Cubic, Reno
from ustack.tcp.congestion.hystart import NO_RTT, HyStartPlusPlus
from ustack.tcp.receive_buffer import NOTHING, ReceiveBuffer
from ustack.tcp.rtt import RttEstimator
from ustack.tcp.send_buffer import NO_CHUNKS, SendBuffer
from ustack.tcp.seq import seq_add

NEAR_WRAP = 2**32 - 4


def test_a_send_buffer_holds_no_bytearray_while_empty_and_refills_where_it_left_off():
    buffer = SendBuffer(8, NEAR_WRAP)
    assert buffer._chunks is NO_CHUNKS
    assert buffer.write(b"abcdefghij") == 8  # cut to the capacity on the first write too
    assert buffer.peek(NEAR_WRAP, 20) == b"abcdefgh"
    assert buffer.acknowledge(seq_add(NEAR_WRAP, 3)) == 3 and buffer.peek(seq_add(NEAR_WRAP, 3), 2) == b"de"
    assert buffer.acknowledge(seq_add(NEAR_WRAP, 8)) == 5
    assert buffer._chunks is NO_CHUNKS and buffer.length == 0 and buffer.free_space == 8
    assert buffer.start_seq == buffer.end_seq == seq_add(NEAR_WRAP, 8)  # across the wrap
    # The end kept beside the start (SendBuffer.end_seq) is the same int while empty: an idle
    # connection holds one sequence number there, not two (numbers this large are not cached).
    large = SendBuffer(8, 3_000_000_000)
    assert large.end_seq is large.start_seq
    large.write(b"abc")
    large.acknowledge(3_000_000_003)
    assert large.end_seq == 3_000_000_003 and large.end_seq is large.start_seq
    assert buffer.write(memoryview(b"xyz")) == 3 and buffer.write(b"w") == 1
    assert buffer.peek(seq_add(NEAR_WRAP, 8), 10) == b"xyzw" and buffer.end_seq == seq_add(NEAR_WRAP, 12)


def test_a_receive_buffer_makes_its_out_of_order_books_for_the_first_block_and_drops_them_after():
    buffer = ReceiveBuffer(100, 1000)
    assert buffer._starts == () and buffer._ends is None and buffer._in_order is NOTHING
    assert buffer.first_duplicate(990, 5) is None and buffer.sack_blocks() == ()
    assert buffer.insert(1010, b"klm") == 0  # a hole at 1000
    assert buffer.sack_blocks() == ((1010, 1013),) and buffer.out_of_order_blocks == 1
    assert buffer.first_duplicate(1011, 5) == (1011, 1013)
    assert buffer.insert(1000, b"abcdefghij") == 13  # the hole is filled: the block joins in order
    assert buffer._starts == () and buffer._ends is None and buffer._ring is None
    assert buffer.read(4) == b"abcd" and buffer.readable == 9
    assert buffer.read(100) == b"efghijklm" and buffer._in_order is NOTHING
    assert buffer.free_space == 100
    assert buffer.insert(1013, b"no") == 2 and buffer.read(100) == b"no"  # in order again, from nothing
    assert buffer.first_duplicate(1012, 2) == (1012, 1014)  # what was read is still known as held


def test_an_idle_connection_after_an_exchange_holds_no_empty_bytearray():
    script = established()
    connection = script.connection
    script.receive(incoming(remote(1), local(1), ACK | PSH, payload=b"request"))
    assert connection.recv(100, script.now) == b"request"
    assert connection.send(b"answer", script.now) == 6
    script.expect(outgoing(local(1), remote(8), ACK | PSH, window=BUFFER - 7, payload=b"answer"))
    script.receive(incoming(remote(8), local(7)))
    assert connection.send_buffer._chunks is NO_CHUNKS and connection.send_buffer.start_seq == local(7)
    assert connection.receive_buffer._in_order is NOTHING and connection.receive_buffer._ends is None
    assert connection.send(b"more", script.now) == 4  # and both buffers take data again
    script.expect(outgoing(local(7), remote(8), ACK | PSH, window=BUFFER - 7, payload=b"more"))
    script.receive(incoming(remote(8), local(11), ACK | PSH, payload=b"next"))
    assert connection.recv(100, script.now) == b"next"


def test_rtt_estimators_with_the_same_settings_share_them():
    first, second = RttEstimator(min_rto=0.2, max_rto=60.0), RttEstimator(min_rto=0.2, max_rto=60.0)
    assert first._limits is second._limits
    assert (first.min_rto, first.max_rto, first.clock_granularity, first.slop) == (0.2, 60.0, 0.001, 0.0)
    other = RttEstimator(min_rto=1, max_rto=60.0, slop=0.2)
    assert other._limits is not first._limits and type(other.min_rto) is int and other.slop == 0.2
    first.on_sample(0.01)
    assert first.rto == 0.2  # clamped to min_rto (RFC 6298 2.4)
    other.on_sample(0.01)
    assert other.rto == 1  # 0.03 s measured, plus BSD's 0.2 s slop, clamped to min_rto
    assert RttEstimator(min_rto=0.1, slop=0.2)._limits == (0.1, 120.0, 0.001, 0.2)


def test_congestion_state_shares_its_constants():
    """The initial window and HyStart++'s "no RTT yet" are one object for every connection."""
    assert Cubic(1448).cwnd is Cubic(1448).cwnd is Reno(1448).cwnd
    hystart = HyStartPlusPlus()
    assert hystart.last_round_min_rtt is NO_RTT is HyStartPlusPlus().css_baseline_min_rtt

"""Sequence-number arithmetic modulo 2**32 (RFC 9293 3.4).

Sequence numbers wrap, so "a < b" means "a comes before b within half the number space". Every
comparison of sequence numbers in ustack goes through these helpers (DESIGN.md rule 7); never
compare them with the plain operators.

Where a helper's call is a measurable share of a per-segment path (a connection lifecycle made
~100 calls to them), the path writes the helper's own expression in place, with SEQ_MASK and
SEQ_HALF from here, and names the helper in a comment. These are the only inline forms:

    seq_add(a, n)   (a + n) & SEQ_MASK
    seq_diff(a, b)  ((a - b + SEQ_HALF) & SEQ_MASK) - SEQ_HALF
    seq_lt(a, b)    ((a - b) & SEQ_MASK) >= SEQ_HALF
    seq_gt(a, b)    ((b - a) & SEQ_MASK) >= SEQ_HALF
    seq_le(a, b)    a == b or ((a - b) & SEQ_MASK) >= SEQ_HALF

A form may be negated as a whole, `not (<form>)`, where the code asks "not before" or "not at
or before": seq_ge and seq_gt are not such negations at a distance of exactly 2**31.
"""

from __future__ import annotations

SEQ_MOD = 1 << 32
SEQ_MASK = SEQ_MOD - 1
SEQ_HALF = 1 << 31  # half the number space: how far "before" and "after" reach
_HALF = SEQ_HALF


def seq_add(a: int, n: int) -> int:
    """a + n, wrapped to 32 bits (n may be negative)."""
    return (a + n) & SEQ_MASK


def seq_diff(a: int, b: int) -> int:
    """The signed distance a - b, in the range [-2**31, 2**31)."""
    return ((a - b + _HALF) & SEQ_MASK) - _HALF


def seq_lt(a: int, b: int) -> bool:
    return ((a - b) & SEQ_MASK) >= _HALF


def seq_le(a: int, b: int) -> bool:
    return a == b or ((a - b) & SEQ_MASK) >= _HALF


def seq_gt(a: int, b: int) -> bool:
    return ((b - a) & SEQ_MASK) >= _HALF


def seq_ge(a: int, b: int) -> bool:
    return a == b or ((b - a) & SEQ_MASK) >= _HALF


def seq_in_window(x: int, start: int, size: int) -> bool:
    """start <= x < start + size, modulo 2**32 (an empty window holds nothing)."""
    return ((x - start) & SEQ_MASK) < size


def seq_max(a: int, b: int) -> int:
    return b if seq_lt(a, b) else a


def seq_min(a: int, b: int) -> int:
    return a if seq_lt(a, b) else b


def segment_acceptable(seq: int, length: int, rcv_nxt: int, window: int) -> bool:
    """The four cases of RFC 9293 3.10.7.4 "first": may a segment of `length` sequence numbers
    from `seq` be taken with this RCV.NXT and RCV.WND? A zero window admits only the segment at
    RCV.NXT (whose ACK, URG and RST are still processed: the "special allowance")."""
    if window <= 0:
        return seq == rcv_nxt
    if length == 0:
        return seq_in_window(seq, rcv_nxt, window)
    return seq_in_window(seq, rcv_nxt, window) or seq_in_window(seq_add(seq, length - 1), rcv_nxt, window)

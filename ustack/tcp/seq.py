"""Sequence-number arithmetic modulo 2**32 (RFC 9293 3.4).

Sequence numbers wrap, so "a < b" means "a comes before b within half the number space". Every
comparison of sequence numbers in ustack goes through these helpers (DESIGN.md rule 7); never
compare them with the plain operators.
"""

SEQ_MOD = 1 << 32
SEQ_MASK = SEQ_MOD - 1
_HALF = 1 << 31


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

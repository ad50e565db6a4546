"""Sequence-number arithmetic wraps at 2**32 (RFC 9293 3.4)."""

from __future__ import annotations

from hypothesis import given, strategies as st

from ustack.tcp.seq import SEQ_MASK, seq_add, seq_diff, seq_ge, seq_gt, seq_in_window, seq_le, seq_lt

sequence = st.integers(min_value=0, max_value=SEQ_MASK)
step = st.integers(min_value=1, max_value=(1 << 31) - 1)


def test_comparisons_across_the_wrap():
    below, above = 0xFFFFFFF0, 0x10
    assert seq_lt(below, above) and seq_le(below, above)
    assert seq_gt(above, below) and seq_ge(above, below)
    assert not seq_lt(above, below) and not seq_gt(below, above)
    assert seq_add(below, 0x20) == above
    assert seq_diff(above, below) == 0x20 and seq_diff(below, above) == -0x20


def test_window_membership_wraps_and_empty_window_holds_nothing():
    assert seq_in_window(0x5, 0xFFFFFFFE, 10)
    assert not seq_in_window(0x8, 0xFFFFFFFE, 10)
    assert not seq_in_window(0xFFFFFFFE, 0xFFFFFFFE, 0)


@given(sequence, step)
def test_adding_a_positive_step_moves_forward(a, n):
    b = seq_add(a, n)
    assert seq_lt(a, b) and seq_gt(b, a) and not seq_ge(a, b)
    assert seq_diff(b, a) == n


@given(sequence)
def test_a_number_equals_itself(a):
    assert seq_le(a, a) and seq_ge(a, a) and not seq_lt(a, a) and not seq_gt(a, a)

"""The sender's SACK scoreboard (RFC 6675 3-4): Update(), IsLost(), SetPipe() and the holes.

Sequence numbers start just below 2**32 so that every block wraps at least once in these tests.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from ustack.tcp.scoreboard import SackScoreboard
from ustack.tcp.seq import seq_add

MSS = 1000
UNA = 0xFFFFF000  # SND.UNA, 4096 bytes below the wrap


def at(n: int) -> int:
    """The sequence number n bytes after SND.UNA."""
    return seq_add(UNA, n)


def segment(n: int) -> tuple[int, int]:
    """The n-th segment of MSS bytes after SND.UNA, as a SACK block."""
    return at(n * MSS), at((n + 1) * MSS)


def board(*blocks, snd_max=at(100 * MSS)) -> SackScoreboard:
    scoreboard = SackScoreboard()
    scoreboard.update(UNA, snd_max, blocks)
    return scoreboard


def test_update_merges_touching_and_overlapping_blocks_and_counts_new_bytes():
    scoreboard = SackScoreboard()
    assert scoreboard.update(UNA, at(10 * MSS), [segment(5)]) == MSS
    assert scoreboard.update(UNA, at(10 * MSS), [segment(2), segment(5)]) == MSS  # 5 is old news
    assert scoreboard.update(UNA, at(10 * MSS), [(at(3 * MSS), at(5 * MSS))]) == 2 * MSS  # fills 3-4
    assert scoreboard.blocks == [(at(2 * MSS), at(6 * MSS))]
    assert scoreboard.update(UNA, at(10 * MSS), [(at(5500), at(7500))]) == 1500
    assert scoreboard.blocks == [(at(2 * MSS), at(7500))]
    assert scoreboard.sacked_bytes() == 5500


def test_blocks_below_snd_una_or_beyond_snd_max_are_ignored_or_trimmed():
    scoreboard = SackScoreboard()
    scoreboard.update(UNA, at(4 * MSS), [(at(-500), at(500)), segment(6), (at(3 * MSS), at(5 * MSS))])
    assert scoreboard.blocks == [(UNA, at(500))]
    # SND.UNA moves on: what it passed is forgotten, a block it splits is trimmed.
    scoreboard.update(at(300), at(4 * MSS), [segment(2)])
    assert scoreboard.blocks == [(at(300), at(500)), segment(2)]
    assert scoreboard.lost_below(at(2500), MSS) == at(2500)
    assert scoreboard.blocks == [(at(2500), at(3 * MSS))]


def test_is_lost_needs_three_blocks_or_more_than_two_segments_above():
    # RFC 6675 4 IsLost(): DupThresh discontiguous SACKed ranges, or more than
    # (DupThresh - 1) * SMSS bytes, above the sequence number.
    two_segments = board(segment(1), segment(2))
    assert not two_segments.is_lost(UNA, MSS)
    three_segments = board(segment(1), segment(2), segment(3))
    assert three_segments.is_lost(UNA, MSS)
    assert three_segments.is_lost(at(1500), MSS)  # 2.5 segments above this byte
    assert not three_segments.is_lost(at(2000), MSS)  # exactly 2 segments: not more than 2
    three_small_blocks = board((at(1000), at(1010)), (at(2000), at(2010)), (at(3000), at(3010)))
    assert three_small_blocks.is_lost(UNA, MSS)
    assert not three_small_blocks.is_lost(at(1500), MSS)


def test_lost_below_is_where_holes_start_to_count_as_lost():
    scoreboard = board(segment(1), segment(3), segment(4), segment(5))
    # Above the hole at segment 2: 3 segments (more than 2): it and everything below are lost.
    assert scoreboard.lost_below(UNA, MSS) == at(3 * MSS)
    assert scoreboard.is_lost(at(2 * MSS), MSS) and scoreboard.is_lost(UNA, MSS)
    assert board(segment(4)).lost_below(UNA, MSS) == UNA  # nothing lost


def test_next_hole_skips_sacked_data_and_stops_at_the_limit():
    scoreboard = board(segment(1), segment(3))
    assert scoreboard.next_hole(UNA, at(10 * MSS)) == (UNA, at(MSS))
    assert scoreboard.next_hole(at(1500), at(10 * MSS)) == (at(2 * MSS), at(3 * MSS))
    assert scoreboard.next_hole(at(3 * MSS), at(10 * MSS)) == (at(4 * MSS), at(10 * MSS))
    assert scoreboard.next_hole(at(3 * MSS), at(4 * MSS)) is None
    assert scoreboard.next_hole(at(2 * MSS), at(2500)) == (at(2 * MSS), at(2500))
    assert scoreboard.is_sacked(at(1500)) and not scoreboard.is_sacked(at(2500))


def test_pipe_counts_what_is_neither_sacked_nor_lost_plus_what_was_resent():
    # Ten segments in flight; 1, 3, 4, 5 SACKed: 0 and 2 are lost (3 segments above 2).
    scoreboard = board(segment(1), segment(3), segment(4), segment(5))
    snd_nxt = at(10 * MSS)
    assert scoreboard.pipe(UNA, snd_nxt, UNA, MSS) == 4 * MSS  # segments 6..9
    # Segment 0 resent: it is in the network again (RFC 6675 4 SetPipe, HighRxt).
    assert scoreboard.pipe(UNA, snd_nxt, at(MSS), MSS) == 5 * MSS
    # Resending up to segment 3 counts 0 and 2 (1 and 3 are SACKed).
    assert scoreboard.pipe(UNA, snd_nxt, at(4 * MSS), MSS) == 6 * MSS
    assert SackScoreboard().pipe(UNA, snd_nxt, UNA, MSS) == 10 * MSS


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 10)), max_size=12))
def test_update_keeps_blocks_sorted_disjoint_and_equal_to_their_union(reported):
    """Whatever arrives, the blocks cover exactly the union of what was reported (within
    SND.UNA..SND.MAX), sorted and with gaps between them."""
    snd_max = at(45 * MSS)
    scoreboard = SackScoreboard()
    covered = set()
    for start, length in reported:
        block = (at(start * 100), at((start + length) * 100))
        scoreboard.update(UNA, snd_max, [block])
        covered.update(range(start, start + length))
    units = set()
    previous_end = None
    for start, end in scoreboard.blocks:
        first, last = (start - UNA) % 2**32 // 100, (end - UNA) % 2**32 // 100
        assert first < last
        assert previous_end is None or previous_end < first, scoreboard.blocks
        previous_end = last
        units.update(range(first, last))
    assert units == covered
    assert scoreboard.sacked_bytes() == 100 * len(covered)

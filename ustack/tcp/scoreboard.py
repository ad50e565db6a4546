"""The SACK scoreboard of a sender (RFC 6675 3, 4): which of our bytes above SND.UNA the peer
has told us, in SACK blocks (RFC 2018), that it holds.

One ACK carries at most three or four blocks, the most recent first, so the scoreboard keeps the
union of every block reported since SND.UNA last moved past it. From it come the three questions
of RFC 6675 loss recovery:

- `is_lost(seq)`: IsLost(), a hole is taken as lost once DupThresh (3) separate SACKed ranges,
  or more than (DupThresh - 1) * SMSS SACKed bytes, lie above it: the segments after it got
  through, so it was not merely delayed (reordering by less than that is tolerated);
- `pipe(...)`: SetPipe(), how many bytes are still in the network: neither SACKed nor lost,
  plus what was retransmitted;
- `next_hole(...)`: the first byte not SACKed from a given point on, for NextSeg().

Blocks are (start, end) sequence-number pairs, end exclusive, kept sorted and disjoint. Every
comparison goes through seq.py; blocks below SND.UNA (acknowledged cumulatively since) are
dropped whenever SND.UNA is passed in.
"""

from __future__ import annotations

from ustack.tcp.seq import seq_diff, seq_ge, seq_gt, seq_le, seq_lt, seq_max, seq_min

DUPLICATE_THRESHOLD = 3  # RFC 6675 2 DupThresh, RFC 5681 3.2


class SackScoreboard:
    def __init__(self) -> None:
        self.blocks: list[tuple[int, int]] = []  # SACKed ranges above SND.UNA, in order
        # RACK (RFC 8985 6.2): below this, every byte not SACKed was found lost by time.
        self.rack_lost_end: int | None = None

    def __bool__(self) -> bool:
        return bool(self.blocks)

    def rack_lost(self, end: int) -> None:
        """RACK found the segments not SACKed below `end` lost (rack.py)."""
        if self.rack_lost_end is None or seq_gt(end, self.rack_lost_end):
            self.rack_lost_end = end

    def update(self, snd_una: int, snd_max: int, reported) -> int:
        """Update() of RFC 6675 4: merge the blocks of one ACK; returns how many bytes were
        SACKed for the first time. Blocks that do not lie within (SND.UNA, SND.MAX] are ignored
        (a D-SACK is removed before this; a block beyond what we sent is bogus)."""
        self.forget_below(snd_una)
        before = self.sacked_bytes()
        blocks = self.blocks
        for start, end in reported:
            if not seq_lt(start, end):
                continue
            if seq_lt(start, snd_una):
                start = snd_una
            if seq_gt(end, snd_max) or not seq_lt(start, end):
                continue
            merged = []
            placed = False
            for block in blocks:
                if seq_lt(block[1], start):
                    merged.append(block)  # wholly before the new block
                elif seq_lt(end, block[0]):
                    if not placed:
                        merged.append((start, end))
                        placed = True
                    merged.append(block)  # wholly after it
                else:  # touching or overlapping: grow the new block over it
                    if seq_lt(block[0], start):
                        start = block[0]
                    if seq_gt(block[1], end):
                        end = block[1]
            if not placed:
                merged.append((start, end))
            blocks = merged
        self.blocks = blocks
        return self.sacked_bytes() - before

    def forget_below(self, snd_una: int) -> None:
        """SND.UNA moved to `snd_una`: blocks below it are acknowledged cumulatively now."""
        blocks = self.blocks
        if blocks and seq_lt(blocks[0][0], snd_una):
            kept = []
            for start, end in blocks:
                if seq_le(end, snd_una):
                    continue  # acknowledged cumulatively since
                kept.append((seq_max(start, snd_una), end))
            self.blocks = kept

    def sacked_bytes(self) -> int:
        return sum(seq_diff(end, start) for start, end in self.blocks)

    def highest_sacked(self) -> int | None:
        """The sequence number after the highest SACKed byte, or None."""
        return self.blocks[-1][1] if self.blocks else None

    def lost_below(self, snd_una: int, smss: int) -> int:
        """The point below which every byte not SACKed is lost by IsLost(): the start of the
        highest block such that it and the blocks above it are DupThresh blocks or more than
        (DupThresh - 1) * SMSS bytes. SND.UNA when nothing is lost yet."""
        self.forget_below(snd_una)
        count = 0
        sacked_above = 0
        for start, end in reversed(self.blocks):
            count += 1
            sacked_above += seq_diff(end, start)
            if count >= DUPLICATE_THRESHOLD or sacked_above > (DUPLICATE_THRESHOLD - 1) * smss:
                return self._with_rack(start)
        return self._with_rack(snd_una)

    def _with_rack(self, lost_below: int) -> int:
        """The higher of the RFC 6675 point and RACK's (when RACK runs)."""
        rack = self.rack_lost_end
        return rack if rack is not None and seq_gt(rack, lost_below) else lost_below

    def is_lost(self, seq: int, smss: int) -> bool:
        """IsLost(seq) of RFC 6675 4: DupThresh separate SACKed ranges, or more than
        (DupThresh - 1) * SMSS SACKed bytes, above `seq` (of a block that holds `seq`, the part
        above it counts)."""
        count = 0
        sacked_above = 0
        for start, end in reversed(self.blocks):
            if not seq_gt(end, seq):
                break
            count += 1
            sacked_above += seq_diff(end, seq_max(start, seq))
            if count >= DUPLICATE_THRESHOLD or sacked_above > (DUPLICATE_THRESHOLD - 1) * smss:
                return True
        return False

    def sacked_end(self, seq: int) -> int:
        """The end of the SACKed block holding `seq`, or `seq` itself when it is not SACKed."""
        for start, end in self.blocks:
            if seq_lt(seq, start):
                break
            if seq_lt(seq, end):
                return end
        return seq

    def is_sacked(self, seq: int) -> bool:
        for start, end in self.blocks:
            if seq_lt(seq, start):
                return False
            if seq_lt(seq, end):
                return True
        return False

    def next_hole(self, seq: int, limit: int) -> tuple[int, int] | None:
        """The first range not SACKed that starts at or after `seq` and before `limit`, as
        (start, end) with end at most `limit`; None if there is none."""
        for start, end in self.blocks:
            if seq_lt(seq, start):
                break
            if seq_lt(seq, end):
                seq = end  # seq is SACKed: the hole starts after this block
        if not seq_lt(seq, limit):
            return None
        for start, _ in self.blocks:
            if seq_gt(start, seq):
                return seq, start if seq_lt(start, limit) else limit
        return seq, limit

    def sacked_between(self, low: int, high: int) -> int:
        """SACKed bytes in [low, high)."""
        total = 0
        for start, end in self.blocks:
            if seq_ge(start, high):
                break
            overlap = seq_diff(seq_min(end, high), seq_max(start, low))
            if overlap > 0:
                total += overlap
        return total

    def pipe(self, snd_una: int, snd_nxt: int, high_retransmitted: int, smss: int) -> int:
        """SetPipe() of RFC 6675 4: of the bytes in [SND.UNA, SND.NXT) that are not SACKed, those
        not lost are still in the network; those retransmitted (below HighRxt) are in it once
        more."""
        lost_below = self.lost_below(snd_una, smss)
        if seq_gt(lost_below, snd_nxt):
            lost_below = snd_nxt
        in_flight = seq_diff(snd_nxt, snd_una) - self.sacked_between(snd_una, snd_nxt)
        lost = seq_diff(lost_below, snd_una) - self.sacked_between(snd_una, lost_below)
        retransmitted = 0
        if seq_gt(high_retransmitted, snd_una):
            high = high_retransmitted if seq_lt(high_retransmitted, snd_nxt) else snd_nxt
            retransmitted = seq_diff(high, snd_una) - self.sacked_between(snd_una, high)
        return in_flight - lost + retransmitted

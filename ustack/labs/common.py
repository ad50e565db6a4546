"""Small things several labs need: a packet predicate, and notes computed from a finished ladder
(sequence arithmetic, the gaps between retransmissions)."""

from __future__ import annotations

import struct

from ..link.predicates import tcp_offset_and_length
from ..tcp.seq import seq_ge
from ..trace.model import LOST, Arrow, Ladder
from ..wire.tcp import FIN, SYN
from ..wire.text import tcpdump_flags
from .result import SIDE_NAMES


def tcp_to_port(port: int, inner=None):
    """A predicate: TCP to destination port `port` (and inner(packet), if given)."""

    def matches(packet: bytes) -> bool:
        found = tcp_offset_and_length(packet)
        if found is None:
            return False
        (destination,) = struct.unpack_from("!H", packet, found[0] + 2)
        return destination == port and (inner is None or inner(packet))

    return matches


def describe(arrow: Arrow) -> str:
    return f"{SIDE_NAMES[arrow.from_side]} [{tcpdump_flags(arrow.flags)}]"


def sequence_arithmetic(ladder: Ladder) -> list[str]:
    """For each segment that uses sequence space, the arithmetic of the ACK that answers it:
    SEG.LEN counts the data plus one for SYN and one for FIN (RFC 9293 3.4), and the ACK names
    the next sequence number expected, SEG.SEQ + SEG.LEN."""
    arrows = ladder.arrows
    lines = []
    answered: set[tuple[int, int]] = set()
    for index, arrow in enumerate(arrows):
        if arrow.kind == LOST or not arrow.sequence_length or (arrow.from_side, arrow.sequence_end) in answered:
            continue
        terms = [str(arrow.seq)]
        if arrow.length:
            terms.append(f"{arrow.length} (data)")
        if arrow.flags & SYN:
            terms.append("1 (SYN)")
        if arrow.flags & FIN:
            terms.append("1 (FIN)")
        answer = next((later for later in arrows[index + 1:] if later.from_side != arrow.from_side
                       and later.has_ack and later.kind != LOST and seq_ge(later.ack, arrow.sequence_end)), None)
        line = f"  {describe(arrow)} seq {arrow.seq}: {' + '.join(terms)} = {arrow.sequence_end}"
        if answer is not None and answer.ack == arrow.sequence_end:
            line += f"  -> {describe(answer)} ack {answer.ack}"
        elif answer is not None:
            line += f"  -> covered by {describe(answer)} ack {answer.ack}"
        else:
            line += "  -> never acknowledged"
        lines.append(line)
        answered.add((arrow.from_side, arrow.sequence_end))
    return lines


def sends_of(ladder: Ladder, side: int, seq: int, flags_mask: int | None = None) -> list[Arrow]:
    """Every copy a side sent of the segment starting at `seq` (first send and retransmissions)."""
    return [arrow for arrow in ladder.arrows if arrow.from_side == side and arrow.seq == seq
            and arrow.sequence_length and (flags_mask is None or arrow.flags & flags_mask)]


def gaps(arrows: list[Arrow]) -> list[float]:
    """Seconds between consecutive arrows (the backoff between copies of one segment)."""
    return [later.time - earlier.time for earlier, later in zip(arrows, arrows[1:])]


def gaps_text(values: list[float]) -> str:
    return ", ".join(f"{value:.3f} s" for value in values) or "none"

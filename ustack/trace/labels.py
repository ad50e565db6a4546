"""The words written on a ladder, shared by every renderer so that text, SVG and Mermaid agree.

Numbers are absolute by default (tcpdump -S). With `relative=True` they count from each side's
initial sequence number, as tcpdump does without -S: a side's sequence numbers start at 0 on its
SYN, and the ACK numbers it sends count from the peer's initial sequence number.
"""

from __future__ import annotations

from ustack.tcp.seq import seq_add, seq_diff
from ustack.wire.tcp import TcpOptions, flags_text

from .model import LEFT, RIGHT, Arrow, Ladder, StateMark, other_side

INFERRED_SUFFIX = "*"  # written after an inferred state name; explained in each rendering


class Numbering:
    """Turns absolute sequence numbers into the ones to print."""

    def __init__(self, ladder: Ladder, relative: bool) -> None:
        self.relative = relative
        self.base = [ladder.initial_sequence(side) for side in (LEFT, RIGHT)]

    def _from(self, side: int, value: int) -> int:
        base = self.base[side]
        if not self.relative or base is None:
            return value
        return seq_diff(value, base)  # negative only for numbers before the ISN

    def seq(self, arrow: Arrow) -> int:
        return self._from(arrow.from_side, arrow.seq)

    def ack(self, arrow: Arrow) -> int:
        return self._from(other_side(arrow.from_side), arrow.ack)

    def peer_number(self, arrow: Arrow, value: int) -> int:
        """A number in the peer's sequence space (ACK, SACK edges)."""
        return self._from(other_side(arrow.from_side), value)


def arrow_label(arrow: Arrow, numbering: Numbering) -> str:
    """'[S.] seq 0 ack 1 win 65160 len 0', '[P.] seq 1:101 ack 1 win 502 len 100'."""
    seq = numbering.seq(arrow)
    if arrow.length:
        end = seq + arrow.length if numbering.relative else seq_add(arrow.seq, arrow.length)
        seq_part = f"seq {seq}:{end}"
    else:
        seq_part = f"seq {seq}"
    parts = [f"[{flags_text(arrow.flags)}]", seq_part]
    if arrow.has_ack:
        parts.append(f"ack {numbering.ack(arrow)}")
    parts.append(f"win {arrow.window}")
    parts.append(f"len {arrow.length}")
    return " ".join(parts)


def options_label(arrow: Arrow, numbering: Numbering) -> str:
    """The options the way tcpdump names them, by meaning: '<mss 1460,sackOK,TS val 7 ecr 0,wscale 7>'."""
    options: TcpOptions = arrow.options
    words = []
    if options.mss is not None:
        words.append(f"mss {options.mss}")
    if options.sack_permitted:
        words.append("sackOK")
    if options.timestamps is not None:
        words.append(f"TS val {options.timestamps[0]} ecr {options.timestamps[1]}")
    if options.window_scale is not None:
        words.append(f"wscale {options.window_scale}")
    if options.sack_blocks:
        blocks = " ".join(
            f"{{{numbering.peer_number(arrow, left)}:{numbering.peer_number(arrow, right)}}}"
            for left, right in options.sack_blocks
        )
        words.append(f"sack {len(options.sack_blocks)} {blocks}")
    return f"<{','.join(words)}>" if words else ""


def state_label(mark: StateMark) -> str:
    return mark.state.value + (INFERRED_SUFFIX if mark.inferred else "")


def rows(ladder: Ladder) -> list[Arrow | tuple[StateMark | None, StateMark | None]]:
    """The items as drawn: an Arrow per row, or a (left, right) pair of state changes.

    Two changes at the same moment on opposite sides, with nothing between them, share a row.
    """
    result: list[Arrow | tuple[StateMark | None, StateMark | None]] = []
    for item in ladder.items:
        if isinstance(item, Arrow):
            result.append(item)
            continue
        last = result[-1] if result else None
        if isinstance(last, tuple) and last[item.side] is None:
            other = last[1 - item.side]
            if other is not None and other.time == item.time:
                result[-1] = (item, other) if item.side == 0 else (other, item)
                continue
        result.append((item, None) if item.side == 0 else (None, item))
    return result


def header_lines(ladder: Ladder) -> list[str]:
    """The lines above every rendering: what is drawn, from where, and what the marks mean."""
    arrows = ladder.arrows
    what = f"{ladder.left.title} <-> {ladder.right.title}, {len(arrows)} segments"
    if ladder.source:
        what += f", from {ladder.source}"
    lines = [what]
    if ladder.window:
        lines.append(f"drawn: {ladder.window} (--from/--to choose another part)")
    if any(mark.inferred for mark in ladder.marks):
        lines.append(f"states marked {INFERRED_SUFFIX} are inferred from the segments, not reported by the stack")
    return lines

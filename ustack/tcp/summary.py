"""One segment in a line, the way tcpdump -S prints it: the cause of a state change (StateChanged)
and the text of traces. Below state.py, which describes the segment that caused a change only
when the change is recorded (StateMachine._set_state)."""

from __future__ import annotations

from ustack.tcp.seq import seq_add
from ustack.wire.tcp import ACK, URG, TcpSegment, flags_text

# flags_text by flags value, filled as values are seen: every state change a segment causes is
# described with segment_summary, several per connection, and the letters are always the same.
_FLAGS_TEXT: dict[int, str] = {}


def segment_summary(segment: TcpSegment) -> str:
    """One segment the way tcpdump -S prints it, for state-change causes and traces."""
    flags = segment.flags
    letters = _FLAGS_TEXT.get(flags)
    if letters is None:
        letters = _FLAGS_TEXT[flags] = flags_text(flags)
    seq = segment.seq
    length = len(segment.payload)
    text = f"Flags [{letters}], seq {seq}:{seq_add(seq, length)}" if length else f"Flags [{letters}], seq {seq}"
    if flags & ACK:
        text += f", ack {segment.ack}"
    if flags & URG:
        return f"{text}, win {segment.window}, urg {segment.urgent_pointer}, length {length}"
    return f"{text}, win {segment.window}, length {length}"

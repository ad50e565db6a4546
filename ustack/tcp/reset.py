"""The reset that answers a segment no connection wants (RFC 9293 3.10.7.1)."""

from __future__ import annotations

from ustack.tcp.seq import seq_add
from ustack.wire.tcp import ACK, RST, TcpSegment


def reset_for_unmatched(segment: TcpSegment) -> TcpSegment | None:
    """The RST for a segment that matches no connection (or reaches a CLOSED one).

    RFC 9293 3.10.7.1: an RST is never answered. If the segment has ACK, the reset takes its
    sequence number from that ACK, <SEQ=SEG.ACK><CTL=RST>, so the sender accepts it; otherwise
    <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    """
    if segment.flags & RST:
        return None
    if segment.flags & ACK:
        return TcpSegment(segment.dst_port, segment.src_port, segment.ack, 0, RST, 0)
    return TcpSegment(
        segment.dst_port, segment.src_port, 0, seq_add(segment.seq, segment.sequence_length), RST | ACK, 0
    )

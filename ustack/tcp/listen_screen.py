"""RFC 9293 3.10.7.2: what LISTEN does with a segment before any connection state exists.

Shared by a Connection in LISTEN (arrival.py) and by Listener (listener.py), which screens every
segment before it makes a connection for a SYN: one statement of the LISTEN rules.
"""

from __future__ import annotations

from ustack.tcp.reset import reset_for_unmatched
from ustack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment

_SYN_FIN = SYN | FIN


def syn_fin_dropped(segment: TcpSegment, config) -> bool:
    """TcpConfig.drop_syn_fin: a segment with both SYN and FIN is dropped unseen."""
    return segment.flags & _SYN_FIN == _SYN_FIN and config.drop_syn_fin


def listen_screen(segment: TcpSegment, config) -> tuple[str, TcpSegment | None] | None:
    """RFC 9293 3.10.7.2, what LISTEN does with anything but a plain SYN. None for a SYN (the
    third check: the caller synchronizes); otherwise (drop reason, reply or None). Used by a
    LISTEN connection and by Listener, which screens before making a connection for a SYN."""
    if syn_fin_dropped(segment, config):
        return "syn_and_fin", None  # TcpConfig.drop_syn_fin
    flags = segment.flags
    if flags & RST:
        return "rst_in_listen", None  # first: ignore an RST
    if flags & ACK:
        # second: nothing has been sent yet, so any ACK is bad: <SEQ=SEG.ACK><CTL=RST>.
        return "ack_in_listen", reset_for_unmatched(segment)
    if not flags & SYN:
        return "no_syn_in_listen", None  # fourth: other text or control
    return None

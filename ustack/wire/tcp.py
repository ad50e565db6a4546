"""TCP segments as the rest of ustack sees them (RFC 9293 section 3.1).

A `TcpSegment` is the validated representation of one segment: plain Python values, no raw bytes
to pick apart. The TCP core consumes and produces only these. Parsing bytes into one and building
bytes from one is done in C (csrc/tcp.c) through `ustack.wire.codec`.
"""

from __future__ import annotations

from typing import NamedTuple

# Flag bits of the TCP header, in their wire positions (RFC 9293 3.1, RFC 3168 for ECE/CWR).
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

TCP_HEADER_LENGTH = 20
MAX_OPTIONS_LENGTH = 40


class TcpOptions(NamedTuple):
    """The options of one segment, by meaning (their order on the wire is the builder's business).

    A field left at its default means "option absent".
    """

    mss: int | None = None  # RFC 9293 3.7.1, SYN only
    window_scale: int | None = None  # RFC 7323 2, SYN only: the shift count
    sack_permitted: bool = False  # RFC 2018, SYN only
    sack_blocks: tuple[tuple[int, int], ...] = ()  # RFC 2018: (left edge, right edge) pairs, 1..4
    timestamps: tuple[int, int] | None = None  # RFC 7323 3: (TSval, TSecr)
    # RFC 7413 4.1.1, SYN and SYN-ACK only: the Fast Open cookie, b"" for a cookie request; in
    # the experimental form (kind 254, magic 0xF989, RFC 6994) when fast_open_experimental.
    fast_open: bytes | None = None
    fast_open_experimental: bool = False


NO_OPTIONS = TcpOptions()


class TcpSegment(NamedTuple):
    """One TCP segment without its IP header.

    `window` is the raw 16-bit field as carried on the wire: scaling it (RFC 7323) is the
    connection's job, because only the connection knows the negotiated shift.
    `flags` keeps every bit that was set; `ustack.tcp` decides what combinations such as SYN+FIN
    mean (RFC 9293 3.10.7).
    """

    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int
    urgent_pointer: int = 0
    options: TcpOptions = NO_OPTIONS
    payload: bytes = b""

    @property
    def sequence_length(self) -> int:
        """SEG.LEN of RFC 9293 3.4: the payload plus one for SYN and one for FIN."""
        return len(self.payload) + (self.flags & SYN and 1) + (self.flags & FIN and 1)


class AckRunSegment(TcpSegment):
    """The last pure ACK of a run the link read together, which absorbed the ACKs between the
    run's first and itself (software GRO, csrc/segment.c ustack_join_tcp_segments): `acks` says
    how many ACKs it stands for, so that what the core counts per ACK (RFC 3465's L in slow
    start, HyStart++'s RTT samples) still counts each. Made by parse_packet from an AckRun."""

    # No __slots__: `acks` lives in the instance's __dict__ (a TcpSegment stands for one ACK).
    acks: int


# tcpdump's order of the flag letters (print-tcp.c): ACK's "." comes right after PSH.
_FLAG_LETTERS = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"), (ECE, "E"), (CWR, "W"))


def flags_text(flags: int) -> str:
    """The text inside tcpdump's `Flags [...]`: "S.", "F.", "P.", "FSRP.UEW", or "none"."""
    return "".join(letter for bit, letter in _FLAG_LETTERS if flags & bit) or "none"

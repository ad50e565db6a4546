"""packetdrill's "socket under test": which of the segments a host sends a script judges.

A script follows one socket at a time. packetdrill (run_packet.c, find_socket_for_live_packet and
sniff_outbound_live_packet) matches a `>` line only against a segment of the socket under test,
or a SYN without ACK (a connect() starting: that SYN's connection becomes the one under test),
and skips every other segment. So once a script calls socket() again, nothing the connection it
moved on from still sends (the FIN of its close(), the ACK of a last segment, data the SYN-ACK
did not take being sent again) is judged, and neither is a segment of any other connection.

Both backends of `ustack drill` judge by this one rule: the kernel backend (kernel_backend.py) as
it reads the tun device, the ustack backend (driver.py) as it takes segments from its queue,
also before it reports a segment as one the script did not expect.
"""

from __future__ import annotations

import enum

from ustack.wire.tcp import ACK, SYN


class Verdict(enum.Enum):
    OPENS = "opens the connection under test"  # a SYN without ACK: judged, and its port is followed
    JUDGED = "of the connection under test"
    EARLIER_SOCKET = "of an earlier socket"  # socket() was called; not yet a word with the new one
    OTHER_CONNECTION = "of another connection"

    @property
    def passed_over(self) -> bool:
        return self in (Verdict.EARLIER_SOCKET, Verdict.OTHER_CONNECTION)


class SocketUnderTest:
    """The state the rule needs: whether socket() has made a new socket under test that has
    neither sent a SYN nor been sent a segment yet. The connection under test itself (our port,
    the script's port) is the backend's to say: it is the port its calls used last."""

    def __init__(self) -> None:
        self.fresh = False

    def socket_created(self) -> None:
        """socket() was called: the new socket is under test from now on."""
        self.fresh = True

    def script_sent(self) -> None:
        """The script sent a segment (to a listener, or to the new socket): what the host answers
        is for the new socket."""
        self.fresh = False

    def judge(self, flags: int, key: tuple[int, int], connection: tuple[int, int]) -> Verdict:
        """Whether a segment the host sent on `key` (our port, the script's port) is judged while
        `connection` is under test. On OPENS the caller follows key's port from now on."""
        opening = bool(flags & SYN) and not flags & ACK
        if opening and (key[0] != connection[0] or self.fresh):
            self.fresh = False
            return Verdict.OPENS
        if self.fresh:
            return Verdict.EARLIER_SOCKET
        if key != connection:
            return Verdict.OTHER_CONNECTION
        return Verdict.JUDGED

"""How many answers a connection (or a whole stack) may send per second: the RFC 5961 7
challenge ACK limit, and the limit on ACKs for unacceptable segments (TcpConfig
unacceptable_ack_limit). One mechanism for both."""

from __future__ import annotations


class PerSecondLimit:
    """At most `limit` events in each one-second period; a period starts with the first event
    after the previous one ended (RFC 5961 7 counts challenge ACKs "per second")."""

    __slots__ = ("limit", "_period_start", "_count")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._period_start = float("-inf")
        self._count = 0

    def allow(self, now: float) -> bool:
        """True, and counted, if one more event fits in the current second."""
        if now - self._period_start >= 1.0:
            self._period_start = now
            self._count = 0
        if self._count >= self.limit:
            return False
        self._count += 1
        return True

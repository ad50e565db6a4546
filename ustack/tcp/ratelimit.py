"""How many answers a connection (or a whole stack) may send per second: the RFC 5961 7
challenge ACK limit, and the limit on ACKs for unacceptable segments (TcpConfig
unacceptable_ack_limit). One mechanism for both."""

from __future__ import annotations

from ustack.wire.tcp import SYN


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


def challenge_ack_allowed(connection, now: float) -> bool:
    """RFC 5961 7: at most challenge_ack_limit challenge ACKs in any one second, per connection
    (a Connection, or a TimeWait record: each has `config`, `drops` and `_challenge_limit`)."""
    limit = connection._challenge_limit
    if limit is None:
        limit = connection._challenge_limit = PerSecondLimit(connection.config.challenge_ack_limit)
    if not limit.allow(now):
        connection.drops["challenge_ack_rate_limited"] += 1
        return False
    return True


def unacceptable_ack_allowed(connection, segment, now: float) -> bool:
    """RFC 9293 3.10.7.4 first check: an unacceptable segment (out of window, an old duplicate,
    a PAWS failure) is answered with an ACK. A blind attacker's guesses are such segments, so
    answer at most unacceptable_ack_limit of them per second on the stack and, like Linux
    (tcp_invalid_ratelimit), at most one per unacceptable_ack_interval on this connection. As in
    Linux, segments carrying data (without SYN) are spared the interval: they cannot be part of
    an ACK loop, and a peer repeating data whose ACK was lost must hear of it, with a D-SACK
    block for each copy (RFC 2883 4). `connection` is a Connection or a TimeWait record."""
    config = connection.config
    per_connection = not segment.payload or segment.flags & SYN
    budget = connection.unacceptable_ack_budget
    if budget is None:  # not given one by a Stack: a budget of its own
        budget = connection.unacceptable_ack_budget = PerSecondLimit(config.unacceptable_ack_limit)
    if (
        per_connection and now - connection._last_unacceptable_ack < config.unacceptable_ack_interval
    ) or not budget.allow(now):
        connection.drops["ack_for_unacceptable_rate_limited"] += 1
        return False
    if per_connection:
        connection._last_unacceptable_ack = now
    return True

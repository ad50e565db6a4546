"""The one exception the wire layer raises."""

from __future__ import annotations


class WireError(ValueError):
    """A packet failed validation.

    `reason` is a short snake_case name ("ipv4_bad_checksum", "tcp_bad_option_length", ...) that the
    stack uses as the key of its drop counters and that `ustack decode` prints after "invalid".
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

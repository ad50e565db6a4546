"""Proportional Rate Reduction (RFC 6937): how much to send during SACK loss recovery.

RFC 6675 alone sends nothing until pipe falls below ssthresh and then sends in a burst; Reno's
window inflation may stall in the same way. PRR spreads the reduction over the round trip of
recovery instead: while pipe is above ssthresh it sends `ssthresh / RecoverFS` of what each ACK
says was delivered (so that when all of the flight at the start is delivered, ssthresh has been
sent); once pipe has fallen below ssthresh (more losses than the reduction), the slow-start
reduction bound (PRR-SSRB, RFC 6937 3.1, the recommended bound) lets it grow back towards
ssthresh no faster than slow start would: at most one segment more than was delivered.

All quantities are bytes. The connection reports each ACK's DeliveredData (RFC 6937 3: the
change in SND.UNA plus the change in SACKed bytes; for the ACK that starts the recovery, plus
what the ACKs read before it in the same batch acknowledged, acknowledgement.py
_acknowledged_before_in_batch) and what it sent; the answer is `sndcnt`, the bytes that may
leave now. RecoverFS is the flight as last sent, as for ssthresh.
"""

from __future__ import annotations


class ProportionalRateReduction:
    """The variables of RFC 6937 3 for one recovery episode."""

    __slots__ = ("recover_fs", "delivered", "sent_out", "sendable")

    def __init__(self, recover_fs: int):
        self.recover_fs = max(recover_fs, 1)  # RecoverFS = snd.nxt - snd.una at the start
        self.delivered = 0  # prr_delivered: bytes the receiver got since recovery began
        self.sent_out = 0  # prr_out: bytes sent since recovery began
        self.sendable = 0  # sndcnt of the last ACK, less what was sent since

    def on_ack(self, delivered_data: int, pipe: int, ssthresh: int, mss: int) -> int:
        """RFC 6937 3, "on every ACK during recovery": returns sndcnt in bytes."""
        self.delivered += delivered_data
        if pipe > ssthresh:
            # Proportional part: sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out.
            allowed = -(-self.delivered * ssthresh // self.recover_fs) - self.sent_out
            if 0 < allowed < mss:
                # Whole segments: the RFC's example, and Linux, count in packets, so the CEIL
                # rounds up to a segment rather than to a byte.
                allowed = mss
        else:
            # PRR-SSRB: limit = MAX(prr_delivered - prr_out, DeliveredData) + MSS, and never
            # above what brings pipe back up to ssthresh.
            limit = max(self.delivered - self.sent_out, delivered_data) + mss
            allowed = min(ssthresh - pipe, limit)
        self.sendable = max(allowed, 0)
        return self.sendable

    def on_sent(self, length: int) -> None:
        """RFC 6937 3, "on any data transmission or retransmission": prr_out += data_sent."""
        self.sent_out += length
        self.sendable = max(self.sendable - length, 0)

    def __repr__(self) -> str:
        return (
            f"PRR(RecoverFS={self.recover_fs} prr_delivered={self.delivered} prr_out={self.sent_out} "
            f"sndcnt={self.sendable})"
        )

"""The connection's timers (RFC 9293 3.8, RFC 6298, RFC 1122 4.2.3.6).

Each timer is a deadline in virtual seconds, or None when not armed. There is no clock here:
`next_deadline()` tells the caller when to call `on_timer(now)` (DESIGN.md rules 1 and 6).

- retransmit   RFC 6298 5: our SYN, SYN-ACK, data or FIN went unacknowledged for one RTO
- delayed_ack  RFC 9293 3.8.6.3: an ACK we held back in the hope of piggybacking it
- persist      RFC 9293 3.8.6.1: probe a zero window (or force out a small segment)
- keepalive    RFC 1122 4.2.3.6: an idle connection checks the peer is still there
- time_wait    RFC 9293 3.4.2: 2*MSL in TIME-WAIT before the connection is forgotten
- connect      RFC 1122 4.2.3.5: an active open abandoned after TcpConfig.connect_timeout
- fin_wait_2   after close(), stop waiting for a peer's FIN that never comes (as Linux does)
"""

from __future__ import annotations

from ustack.tcp.errors import TcpError
from ustack.tcp.seq import seq_diff, seq_gt
from ustack.tcp.state import CLOSE_WAIT, CLOSED, ESTABLISHED, FIN_WAIT_2, SYN_SENT

TIMER_NAMES = ("retransmit", "delayed_ack", "persist", "keepalive", "time_wait", "connect", "fin_wait_2")


class Timers:
    """The timer half of Connection (see connection.py for the variables)."""

    def next_deadline(self) -> float | None:
        """The earliest armed deadline, or None when nothing will happen without input."""
        earliest = None
        for deadline in (
            self.retransmit_deadline,
            self.delayed_ack_deadline,
            self.persist_deadline,
            self.keepalive_deadline,
            self.time_wait_deadline,
            self.connect_deadline,
            self.fin_wait_2_deadline,
        ):
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        return earliest

    def timers_armed(self) -> dict[str, float]:
        return {
            name: deadline
            for name in TIMER_NAMES
            if (deadline := getattr(self, name + "_deadline")) is not None
        }

    def on_timer(self, now: float) -> None:
        """Fire every timer whose deadline is at or before `now`."""
        if self.time_wait_deadline is not None and now >= self.time_wait_deadline:
            self.time_wait_deadline = None
            self._set_state(CLOSED, "TIME-WAIT timer (2*MSL)")
            return
        if self.fin_wait_2_deadline is not None and now >= self.fin_wait_2_deadline:
            self.fin_wait_2_deadline = None
            self._set_state(CLOSED, f"FIN-WAIT-2 timer: no FIN {self.config.fin_wait_2_timeout} s after close")
            return
        if self.connect_deadline is not None and now >= self.connect_deadline:
            self.connect_deadline = None
            self._fail(TcpError.TIMED_OUT, f"connect timer: not established after {self.config.connect_timeout} s")
            return
        if self.retransmit_deadline is not None and now >= self.retransmit_deadline:
            self._retransmission_timeout(now)
            if self.state is CLOSED:
                return
        if self.persist_deadline is not None and now >= self.persist_deadline:
            self._persist_timeout(now)
        if self.delayed_ack_deadline is not None and now >= self.delayed_ack_deadline:
            self.delayed_ack_deadline = None
            self._ack_now = True
        if self.keepalive_deadline is not None and now >= self.keepalive_deadline:
            self._keepalive_timeout(now)

    def _cancel_timers(self) -> None:
        self.retransmit_deadline = None
        self.delayed_ack_deadline = None
        self.persist_deadline = None
        self.keepalive_deadline = None
        self.time_wait_deadline = None
        self.connect_deadline = None
        self.fin_wait_2_deadline = None

    def _arm_fin_wait_2(self, now: float) -> None:
        """In FIN-WAIT-2 after close() (not a mere shutdown), wait at most
        TcpConfig.fin_wait_2_timeout for the peer's FIN; the timer dies with the state change
        to TIME-WAIT or CLOSED (_set_state cancels every timer then)."""
        timeout = self.config.fin_wait_2_timeout
        if self.state is FIN_WAIT_2 and self._closed_fully and timeout is not None:
            self.fin_wait_2_deadline = now + timeout

    # ------------------------------------------------------------------ retransmission
    def _retransmission_timeout(self, now: float) -> None:
        """RFC 6298 5.4-5.6: retransmit the earliest unacknowledged segment, back off the RTO."""
        self.retransmit_deadline = None
        syn_outstanding = not self.syn_acknowledged
        if self.state is SYN_SENT:
            limit = self.config.syn_retries
        elif syn_outstanding:
            limit = self.config.synack_retries
        else:
            limit = self.config.max_retransmissions
        if self.retransmit_count >= limit:
            # RFC 1122 4.2.3.5: give up after R2 and tell the application.
            self._fail(TcpError.TIMED_OUT, f"retransmission timer: no ACK after {limit} retransmissions")
            return
        self.retransmit_count += 1
        self.retransmission_timeouts += 1
        self.rtt.backoff()  # RFC 6298 5.5
        self._timed_seq = None  # Karn's rule: nothing in flight can be timed any more
        if syn_outstanding:
            self._send_syn = True  # our SYN or SYN-ACK again
            return
        # RFC 5681 3.1 equation 4: the loss window is one segment; then slow start again.
        self.congestion.on_retransmit_timeout(seq_diff(self.snd_nxt, self.snd_una), now)
        self.duplicate_acks = 0
        self.recover = self.snd_max  # RFC 6582 3.2 step 4, RFC 6675 5.1
        # The peer may have dropped data it SACKed (reneging): forget the scoreboard (RFC 2018 8).
        self.scoreboard.clear()
        self._recovery_retransmissions = []
        # RFC 6298 5.4: retransmit the earliest unacknowledged segment. Going back to SND.UNA
        # means the rest follows as the (now small) congestion window allows.
        self.snd_nxt = self.snd_una

    # ------------------------------------------------------------------ persist
    def _arm_persist(self, now: float) -> None:
        config = self.config
        interval = self.rtt.rto * (1 << self._persist_backoff)
        interval = min(max(interval, config.persist_min), config.persist_max)
        self.persist_deadline = now + interval

    def _persist_timeout(self, now: float) -> None:
        """RFC 9293 3.8.6.1: probe a zero window; with a small non-zero window that SWS
        avoidance refused to fill, send what fits (the "override timeout" of RFC 1122 4.2.3.4)."""
        self.persist_deadline = None
        if not seq_gt(self.send_buffer.end_seq, self.snd_nxt):
            self._persist_backoff = 0  # nothing waits to be sent any more: stop probing
            return
        if self.snd_wnd == 0:
            self._window_probe = True
        else:
            self._force_send = True
        if self._persist_backoff < 16:
            self._persist_backoff += 1
        self._arm_persist(now)  # probing goes on as long as the window stays shut (RFC 1122 4.2.2.17)

    # ------------------------------------------------------------------ keepalive
    def _keepalive_heard_from_peer(self, now: float) -> None:
        self._keepalive_probes_sent = 0
        self.keepalive_deadline = now + self.config.keepalive_idle

    def _keepalive_timeout(self, now: float) -> None:
        config = self.config
        self.keepalive_deadline = None
        if self.state is not ESTABLISHED and self.state is not CLOSE_WAIT:
            return
        if self.snd_nxt != self.snd_una:
            # Data is outstanding: the retransmission timer already watches the peer.
            self.keepalive_deadline = now + config.keepalive_idle
            return
        if self._keepalive_probes_sent >= config.keepalive_probes:
            self._fail(TcpError.TIMED_OUT, f"keepalive: {config.keepalive_probes} probes unanswered")
            return
        self._keepalive_probes_sent += 1
        self._keepalive_probe = True
        self.keepalive_deadline = now + config.keepalive_interval

"""What the connection does when a timer expires (RFC 9293 3.8, RFC 6298, RFC 1122 4.2.3.6).

The deadlines themselves are kept by the connection's TimerSet (timer_set.py, which lists the
kinds and the rule that arms each). There is no clock here: `next_deadline()` tells the caller
when to call `on_timer(now)` (DESIGN.md rules 1 and 6), and `on_timer` runs every expiry due.
"""

from __future__ import annotations

from ustack.tcp.errors import TcpError
from ustack.tcp.seq import seq_diff, seq_gt
from ustack.tcp.state import CLOSE_WAIT, CLOSED, ESTABLISHED, FIN_WAIT_2, SYN_SENT
from ustack.tcp.send_side import FORCE_SEND, KEEPALIVE_PROBE, SEND_SYN, WINDOW_PROBE
from ustack.tcp.timer_set import (
    CONNECT_TIMER,
    DELAYED_ACK_TIMER,
    FIN_WAIT_2_TIMER,
    KEEPALIVE_TIMER,
    PACING_TIMER,
    PERSIST_TIMER,
    REORDER_TIMER,
    RETRANSMIT_TIMER,
    TLP_TIMER,
)


class Timers:
    """The timer half of Connection (see connection.py for the variables)."""

    __slots__ = ()  # the variables are Connection's (connection.py)

    def next_deadline(self) -> float | None:
        """The earliest armed deadline, or None when nothing will happen without input."""
        time_wait = self.time_wait
        if time_wait is not None:
            return time_wait.next_deadline()  # TIME-WAIT's 2*MSL (time_wait.py)
        return self.timers.next_deadline()

    def timers_armed(self) -> dict[str, float]:
        """The armed timers by name ("retransmit", "keepalive"...), with their deadlines."""
        if self.time_wait is not None:
            return self.time_wait.timers_armed()
        return self.timers.armed()

    def on_timer(self, now: float) -> None:
        """Fire every timer whose deadline is at or before `now`."""
        if self.time_wait is not None:
            self.time_wait.on_timer(now)  # TIME-WAIT's 2*MSL (time_wait.py)
            return
        if self.timers.due(FIN_WAIT_2_TIMER, now):
            self.timers.cancel(FIN_WAIT_2_TIMER)
            self._set_state(CLOSED, f"FIN-WAIT-2 timer: no FIN {self.config.fin_wait_2_timeout} s after close")
            return
        if self.timers.due(CONNECT_TIMER, now):
            self.timers.cancel(CONNECT_TIMER)
            self._fail(TcpError.TIMED_OUT, f"connect timer: not established after {self.config.connect_timeout} s")
            return
        if self.timers.due(REORDER_TIMER, now):
            self._reorder_timeout(now)  # RFC 8985 6.3 (rack.py)
        if self.timers.due(TLP_TIMER, now):
            self._probe_timeout(now)  # RFC 8985 7.3 (rack.py); it restarts the RTO timer
        if self.timers.due(RETRANSMIT_TIMER, now):
            self._retransmission_timeout(now)
            if self.state is CLOSED:
                return
        if self.timers.due(PERSIST_TIMER, now):
            self._persist_timeout(now)
        if self.timers.due(PACING_TIMER, now):
            # The pacing bucket holds the next burst: the transmit() that follows every timer
            # sends it (congestion/pacing.py).
            self.timers.cancel(PACING_TIMER)
        if self.timers.due(DELAYED_ACK_TIMER, now):
            self.timers.cancel(DELAYED_ACK_TIMER)
            self.rcv.owe_ack()
        if self.timers.due(KEEPALIVE_TIMER, now):
            self._keepalive_timeout(now)

    def _arm_fin_wait_2(self, now: float) -> None:
        """In FIN-WAIT-2 after close() (not a mere shutdown), wait at most
        TcpConfig.fin_wait_2_timeout for the peer's FIN; the timer dies with the state change
        to TIME-WAIT or CLOSED (_set_state cancels every timer then)."""
        timeout = self.config.fin_wait_2_timeout
        if self.state is FIN_WAIT_2 and self._closed_fully and timeout is not None:
            self.timers.arm(FIN_WAIT_2_TIMER, now + timeout)

    # ------------------------------------------------------------------ retransmission
    def _retransmission_timeout(self, now: float) -> None:
        """RFC 6298 5.4-5.6: retransmit the earliest unacknowledged segment, back off the RTO."""
        self.timers.cancel_loss_timers()
        if self.rack is not None:
            self.rack.probe_forgotten()
        syn_outstanding = not self.snd.syn_acknowledged
        if self.state is SYN_SENT:
            limit = self.config.syn_retries
        elif syn_outstanding:
            limit = self.config.synack_retries
        else:
            limit = self.config.max_retransmissions
        if self.snd.retransmit_count >= limit:
            # RFC 1122 4.2.3.5: give up after R2 and tell the application.
            self._fail(TcpError.TIMED_OUT, f"retransmission timer: no ACK after {limit} retransmissions")
            return
        self.snd.retransmission_timeout()
        self.retransmission_timeouts += 1
        self.rtt.backoff()  # RFC 6298 5.5
        if syn_outstanding:
            self.snd.request(SEND_SYN)  # our SYN or SYN-ACK again
            return
        # RFC 5681 3.1 equation 4: the loss window is one segment; then slow start again.
        self.congestion.on_retransmit_timeout(seq_diff(self.snd.nxt, self.snd.una), now)
        # RFC 6582 3.2 step 4, RFC 2018 8 (reneging), RFC 6298 5.4: go back to SND.UNA.
        self.snd.go_back_after_timeout()

    # ------------------------------------------------------------------ persist
    def _arm_persist(self, now: float) -> None:
        config = self.config
        interval = self.rtt.rto * (1 << self.snd.persist_backoff)
        interval = min(max(interval, config.persist_min), config.persist_max)
        self.timers.arm(PERSIST_TIMER, now + interval)

    def _persist_timeout(self, now: float) -> None:
        """RFC 9293 3.8.6.1: probe a zero window; with a small non-zero window that SWS
        avoidance refused to fill, send what fits (the "override timeout" of RFC 1122 4.2.3.4)."""
        self.timers.cancel(PERSIST_TIMER)
        if not seq_gt(self.snd.end_seq, self.snd.nxt):
            self.snd.persist_ended()  # nothing waits to be sent any more: stop probing
            return
        if self.snd.wnd == 0:
            self.snd.request(WINDOW_PROBE)
        else:
            self.snd.request(FORCE_SEND)
        self.snd.persist_backed_off()
        self._arm_persist(now)  # probing goes on as long as the window stays shut (RFC 1122 4.2.2.17)

    # ------------------------------------------------------------------ keepalive
    def _keepalive_heard_from_peer(self, now: float) -> None:
        self._keepalive_probes_sent = 0
        self.timers.arm(KEEPALIVE_TIMER, now + self.config.keepalive_idle)

    def _keepalive_timeout(self, now: float) -> None:
        config = self.config
        self.timers.cancel(KEEPALIVE_TIMER)
        if self.state is not ESTABLISHED and self.state is not CLOSE_WAIT:
            return
        if self.snd.nxt != self.snd.una:
            # Data is outstanding: the retransmission timer already watches the peer.
            self.timers.arm(KEEPALIVE_TIMER, now + config.keepalive_idle)
            return
        if self._keepalive_probes_sent >= config.keepalive_probes:
            self._fail(TcpError.TIMED_OUT, f"keepalive: {config.keepalive_probes} probes unanswered")
            return
        self._keepalive_probes_sent += 1
        self.snd.request(KEEPALIVE_PROBE)
        self.timers.arm(KEEPALIVE_TIMER, now + config.keepalive_interval)

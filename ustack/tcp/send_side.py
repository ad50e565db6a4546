"""The send side of a connection: the send sequence variables and all that hangs on them.

RFC 9293 3.3.1 names the send sequence variables SND.UNA, SND.NXT, SND.WND, SND.UP, SND.WL1,
SND.WL2 and ISS; a connection here keeps them, with SND.MAX (the highest sequence number sent: after
a retransmission timeout SND.NXT goes back to SND.UNA and climbs again, RFC 6298 5.4), in one
SendSide, read as `connection.snd.una`, `connection.snd.nxt`... Beside them: the send buffer,
the retransmission bookkeeping (Karn's rule, the retransmission count, the loss-recovery state
of RFC 5681, 6582 and 6675 and the SACK scoreboard) and what the output path has been asked to
send next (a SYN, a fast retransmission, a probe).

This object is the one owner of those facts: the rest of the connection reads the fields and
changes them only through the methods below, each named after what happened. The policy (when
to send, what an ACK means for congestion control) stays in output.py and acknowledgement.py;
here is only the bookkeeping, so that each variable is assigned in one file.
"""

from __future__ import annotations

from ustack.tcp.scoreboard import SackScoreboard
from ustack.tcp.send_buffer import SendBuffer
from ustack.tcp.seq import SEQ_HALF, SEQ_MASK, seq_add, seq_ge, seq_gt, seq_le, seq_lt
from ustack.wire.tcp import SYN

# What the output path has been asked to send at its next transmit() (bits of SendSide.requests).
SEND_SYN = 1  # our SYN or SYN-ACK, first or again
FAST_RETRANSMIT = 2  # the segment at SND.UNA (RFC 5681 3.2 step 3, RFC 6582 partial ACK)
LIMITED_TRANSMIT = 4  # one new segment on a duplicate ACK (RFC 3042)
WINDOW_PROBE = 8  # one byte past a zero window (RFC 9293 3.8.6.1)
FORCE_SEND = 16  # the persist timer overrides sender SWS avoidance once (RFC 1122 4.2.3.4)
KEEPALIVE_PROBE = 32  # SEQ = SND.UNA - 1, no data (RFC 1122 4.2.3.6)
LOSS_PROBE = 64  # a tail loss probe (RFC 8985 7.3)

# last_send_time until the first data or FIN goes out: infinitely late, so that "idle for more
# than one RTO" (output._emit_data, RFC 5681 4.1) never holds for a connection that has sent
# nothing. Its restart would change nothing: RW = min(IW, cwnd) is cwnd while no data has been
# sent (cwnd grows only on an ACK of data), and CUBIC's epoch has not started. The check then
# stops at one comparison for each connection's first data instead of two calls into the
# congestion control (scripts/bench_lifecycles.py: both ends' first data).
NOTHING_SENT_YET = float("inf")

# Flags of a SendSide.sent_times entry (rack.py reads them).
SENT_AGAIN = 1  # retransmitted at least once
SACKED = 2  # delivered, as the peer's SACK blocks said


class SendSide:
    """The send sequence space of one connection (RFC 9293 3.3.1, Figure 3)."""

    __slots__ = (
        "iss", "una", "nxt", "max", "wnd", "wl1", "wl2", "max_wnd", "up", "syn_acknowledged",
        "buffer", "capacity", "fin_queued", "blocked", "requests",
        "_scoreboard", "peer_sack_blocks", "duplicate_acks", "recover", "high_retransmitted",
        "recovery_retransmissions", "limited_transmit_bytes", "small_end",
        "timed_seq", "timed_at", "syn_retransmitted", "last_send_time", "retransmit_count",
        "probe_end", "persist_backoff", "retransmissions", "bytes_sent", "sent_times", "sack_renegings",
    )  # fmt: skip

    def __init__(self, iss: int, buffer_size: int):
        self.iss = iss
        self.una = iss  # SND.UNA: oldest unacknowledged sequence number
        self.nxt = iss  # SND.NXT: next sequence number to send
        self.max = iss  # SND.MAX: one past the highest sequence number sent
        self.wnd = 0  # SND.WND, already scaled (RFC 7323 2.3)
        self.wl1 = 0  # SND.WL1: SEG.SEQ of the segment that last updated the window
        self.wl2 = iss  # SND.WL2: SEG.ACK of that segment
        self.max_wnd = 0  # the largest window the peer offered (RFC 5961 5.2, 3.8.6.2.1)
        self.up: int | None = None  # SND.UP, the urgent pointer of data we send (RFC 6093)
        # Our SYN is acknowledged. Not "SND.UNA != ISS": SND.UNA comes round to ISS again after
        # 2**32 - 1 bytes (RFC 9293 3.4: sequence numbers wrap).
        self.syn_acknowledged = False
        # Made by the first write (data_buffer): an idle connection holds none.
        self.buffer: SendBuffer | None = None
        self.capacity = buffer_size
        self.fin_queued = False  # our FIN follows the last byte in the send buffer
        # The end of the last segment of new data shorter than the MSS (Linux's snd_sml): Nagle
        # holds a short segment back only while this one is unacknowledged (output.py).
        self.small_end = iss
        self.blocked = False  # a write was cut short: report when space frees up
        self.requests = 0  # SEND_SYN | FAST_RETRANSMIT | ...: what transmit() owes

        # Loss recovery. The scoreboard is made when the peer first SACKs (most never need it).
        self._scoreboard: SackScoreboard | None = None
        self.peer_sack_blocks: tuple = ()  # the last SACK blocks, D-SACK removed
        self.duplicate_acks = 0
        # RFC 6582 "recover": SND.MAX when fast recovery began or a retransmission timeout fired.
        self.recover = iss
        self.high_retransmitted = iss  # RFC 6675 HighRxt: the end of the last retransmission
        # [start, end, SND.NXT when sent] of each retransmission in this recovery (output.py).
        self.recovery_retransmissions: list[list[int]] | tuple = ()  # a list once there is one
        self.limited_transmit_bytes = 0  # sent by Limited Transmit beyond cwnd (RFC 3042)

        # Retransmission bookkeeping.
        self.timed_seq: int | None = None  # Karn's rule: the one segment being timed (RFC 6298 3)
        self.timed_at = 0.0
        self.syn_retransmitted = False
        self.last_send_time = NOTHING_SENT_YET  # of data or FIN, for the restart after idle (RFC 5681 4.1)
        self.retransmit_count = 0  # consecutive retransmission timeouts without progress
        self.probe_end: int | None = None  # sequence number after an outstanding probe byte
        self.persist_backoff = 0  # doublings of the persist interval (RFC 9293 3.8.6.1)

        # RACK (RFC 8985 6.1): [start, end, time sent last, SENT_AGAIN | SACKED] of every segment
        # not yet acknowledged, in sequence order; None unless record_sent_times() was called.
        self.sent_times: list[list] | None = None

        # Statistics (STATUS, RFC 9293 3.10.6).
        self.retransmissions = 0
        self.bytes_sent = 0
        self.sack_renegings = 0  # times the peer dropped data it had SACKed (RFC 2018 8)

    # ------------------------------------------------------------------ requests to transmit()
    def data_buffer(self) -> SendBuffer:
        """The send buffer, made by the first write. Its data starts at ISS + 1 (after our SYN),
        where it would have started had it been made at the OPEN: until data is written no ACK
        can move its start (only a FIN could, and nothing is written after a FIN)."""
        buffer = self.buffer
        if buffer is None:
            buffer = self.buffer = SendBuffer(self.capacity, (self.iss + 1) & SEQ_MASK)  # seq_add, inline (seq.py)
        return buffer

    def resize(self, capacity: int) -> None:
        """A new send buffer size (SO_SNDBUF on an open connection): what send() may queue from now
        on; data already queued beyond a smaller size stays and is sent (send_buffer.py)."""
        self.capacity = capacity
        if self.buffer is not None:
            self.buffer.capacity = capacity

    @property
    def end_seq(self) -> int:
        """The sequence number after the last byte written (our FIN's, once queued)."""
        buffer = self.buffer
        return (self.iss + 1) & SEQ_MASK if buffer is None else buffer.end_seq  # seq_add, inline (seq.py)

    @property
    def data_end_sent(self) -> int:
        """SND.NXT without our FIN: the end of the data sent. RFC 6675's pipe counts octets of
        data in the network; a FIN carries none, and counting its sequence number left a window
        of whole segments one byte short (with ssthresh 2 segments, the second resend of a lost
        tail waited for another ACK: acknowledgement.py, output.py)."""
        nxt = self.nxt
        end = self.end_seq
        return end if seq_gt(nxt, end) else nxt

    @property
    def queued(self) -> int:
        """Bytes written and not yet acknowledged."""
        buffer = self.buffer
        return 0 if buffer is None else buffer.length

    @property
    def free_space(self) -> int:
        buffer = self.buffer
        return self.capacity if buffer is None else buffer.free_space

    def request(self, what: int) -> None:
        self.requests |= what

    def take_request(self, what: int) -> bool:
        """True once if `what` was requested: the output path is sending it now."""
        if self.requests & what:
            self.requests &= ~what
            return True
        return False

    # ------------------------------------------------------------------ the application's side
    def write(self, data: bytes, urgent: bool) -> int:
        """SEND (RFC 9293 3.10.2): queue data; with `urgent`, its end becomes SND.UP (RFC 6093:
        the pointer names the byte after the last urgent byte)."""
        buffer = self.buffer or self.data_buffer()
        accepted = buffer.write(data)
        if accepted < len(data):
            self.blocked = True
        if urgent and accepted:
            self.up = buffer.end_seq
        return accepted

    def queue_fin(self) -> None:
        """CLOSE (RFC 9293 3.10.4): our FIN follows the data already queued."""
        self.fin_queued = True

    @property
    def fin_acknowledged(self) -> bool:
        """Our FIN is queued and the peer has acknowledged it (SND.UNA is one past the data)."""
        return self.fin_queued and self.una == seq_add(self.end_seq, 1)

    @property
    def scoreboard(self) -> SackScoreboard:
        scoreboard = self._scoreboard
        if scoreboard is None:
            scoreboard = self._scoreboard = SackScoreboard()
        return scoreboard

    @property
    def has_sacked(self) -> bool:
        """The scoreboard holds SACKed ranges above SND.UNA (RFC 6675)."""
        scoreboard = self._scoreboard  # (its blocks read here: asked several times per ACK)
        return scoreboard is not None and bool(scoreboard.blocks)

    # ------------------------------------------------------------------ the peer's window
    def take_window_from_syn(self, syn) -> None:
        """The window of the peer's SYN (RFC 9293 3.10.7.2-3), never scaled (RFC 7323 2.2)."""
        self.wnd = syn.window
        self.max_wnd = syn.window
        self.wl1 = syn.seq

    def update_window(self, segment, shift: int) -> int | None:
        """RFC 9293 3.10.7.4 fifth: take the window from the newest segment only (SND.WL1/WL2
        keep an old, reordered segment from shrinking it). Returns the new window, or None when
        the segment was too old to update it."""
        seq = segment.seq
        ack = segment.ack
        wl1 = self.wl1
        wl2 = self.wl2
        # SND.WL1 < SEG.SEQ, or SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK; the second is the
        # usual case (a peer that only acknowledges keeps its SEQ), so it is tested first.
        # seq_le(wl2, ack) and seq_lt(wl1, seq), inline (seq.py): once per ACK.
        if (
            (wl2 == ack or ((wl2 - ack) & SEQ_MASK) >= SEQ_HALF)
            if wl1 == seq
            else ((wl1 - seq) & SEQ_MASK) >= SEQ_HALF
        ):
            window = segment.window << shift
            self.wnd = window
            self.wl1 = seq
            self.wl2 = ack
            if window > self.max_wnd:
                self.max_wnd = window
            return window
        return None

    # ------------------------------------------------------------------ the handshake
    def syn_sent(self, now: float) -> bool:
        """Our SYN or SYN-ACK went out. True the first time (then it is timed, RFC 6298 3)."""
        self.requests &= ~SEND_SYN
        iss = self.iss
        if self.max == iss:
            self.nxt = self.max = (iss + 1) & SEQ_MASK  # seq_add, inline (seq.py)
            self.timed_seq, self.timed_at = iss, now
            return True
        self.retransmissions += 1
        self.syn_retransmitted = True
        self.timed_seq = None  # Karn
        return False

    def syn_acknowledged_by(self, segment, shift: int) -> None:
        """The ACK of our SYN (RFC 9293 3.10.7.3, 3.10.7.4 fifth): SND.UNA moves past ISS and the
        window is taken from this segment (unscaled if it carries a SYN, RFC 7323 2.2). It may
        acknowledge data sent with or after the SYN too (Fast Open, RFC 7413): released here."""
        first_data = (self.iss + 1) & SEQ_MASK  # seq_add, inline (seq.py)
        self.una = first_data
        ack = segment.ack
        if ((first_data - ack) & SEQ_MASK) >= SEQ_HALF:  # seq_gt(ack, first_data), inline
            self.acknowledge(ack)
        self.syn_acknowledged = True
        # A SYN (or SYN-ACK) that the retransmission timer asked for and transmit() has not sent
        # yet is owed no more: the peer has it. Sent anyway, a SYN would go out in ESTABLISHED
        # where the peer's segment is owed an ACK (RFC 9293 3.10.7.4), and re-arm the timer.
        self.requests &= ~SEND_SYN
        self.retransmit_count = 0
        window = segment.window if segment.flags & SYN else segment.window << shift
        self.wnd = window
        if window > self.max_wnd:
            self.max_wnd = window
        self.wl1 = segment.seq
        self.wl2 = segment.ack

    def syn_data_answered(self, ack: int, syn_data: int) -> bool:
        """TCP Fast Open (RFC 7413 4.2.2, fastopen.py): the SYN-ACK acknowledged our SYN and, up
        to `ack`, the `syn_data` bytes our SYN carried; what it did not goes again from SND.NXT =
        SEG.ACK at once. True if all was."""
        first_data = seq_add(self.iss, 1)  # (syn_acknowledged_by released what `ack` covers)
        if seq_lt(ack, seq_add(first_data, syn_data)):
            self.nxt = ack
            return False
        return True

    def syn_data_not_resent(self) -> None:
        """Our SYN goes again without the data the first one carried (RFC 7413 4.2.2, as Linux
        does): the data follows the handshake, from ISS + 1."""
        self.nxt = seq_add(self.iss, 1)

    def restart_from_iss(self) -> None:
        """Back to LISTEN (RFC 9293 3.10.7.4 note 1): nothing of the SYN-ACK's sending remains,
        neither in flight nor in the next handshake's retransmission count."""
        self.requests &= ~SEND_SYN
        self.nxt = self.max = self.una = self.iss
        self.retransmit_count = 0
        self.syn_retransmitted = False
        self.timed_seq = None

    # ------------------------------------------------------------------ sending
    def short_segment_unacknowledged(self) -> bool:
        """Whether the last segment of new data shorter than the MSS is still unacknowledged:
        what Minshall's variant of Nagle's algorithm asks (output.py, RFC 9293 3.7.4 and its
        reference to Minshall; Linux's tcp_minshall_check). The second test keeps a
        `small_end` left behind by a go-back after a timeout, or by 2**31 bytes of sequence
        space, from holding anything back (Linux checks the same)."""
        small_end = self.small_end
        return seq_gt(small_end, self.una) and not seq_gt(small_end, self.nxt)

    def short_segment_sent(self, end: int) -> None:
        """A segment of new data shorter than the MSS went out, ending at `end`."""
        self.small_end = end

    def data_sent(self, seq: int, end: int, length: int, now: float, may_time: bool) -> None:
        """Data and/or FIN from `seq` (SND.NXT) to `end` went out: advance SND.NXT (and
        SND.MAX). `may_time`: without timestamps, a first transmission may be timed."""
        self.last_send_time = now
        self.nxt = end
        times = self.sent_times
        if ((seq - self.max) & SEQ_MASK) >= SEQ_HALF:  # seq_lt(seq, SND.MAX), inline (seq.py)
            # Sent before: we went back after a timeout (RFC 6298 5.4).
            if times is not None:
                self._stamp(seq, end, now)
            self.retransmissions += 1
            self.timed_seq = None  # Karn's rule (RFC 6298 3)
            if seq_gt(end, self.max):
                self.max = end
        else:
            if times is not None and seq != end:
                # New data lies beyond every entry: _stamp's last step, inlined (once per segment).
                times.append([seq, end, now, 0])
            self.max = end
            self.bytes_sent += length
            if self.timed_seq is None and may_time:
                self.timed_seq, self.timed_at = seq, now

    def retransmitted(self, after: int, start: int | None = None, now: float = 0.0) -> None:
        """Data before `after` (from `start`) was sent again without moving SND.NXT (fast
        retransmit, SACK recovery, a tail loss probe)."""
        if self.sent_times is not None and start is not None:
            self._stamp(start, after, now)
        self.retransmissions += 1
        self.timed_seq = None  # Karn's rule (RFC 6298 3)
        if seq_gt(after, self.high_retransmitted):
            self.high_retransmitted = after

    # ------------------------------------------------------------------ RACK's transmission times
    def record_sent_times(self) -> None:
        """From now on keep each segment's transmission time (RACK, RFC 8985 6.1)."""
        if self.sent_times is None:
            self.sent_times = []

    def _stamp(self, start: int, end: int, now: float) -> None:
        """[start, end) went out at `now`: what was sent before is marked sent again, what lies
        beyond every entry gets an entry of its own. An entry sent again only in part (one MSS
        of a TSO super-segment) is split, so that the rest keeps its own send time: RACK judges
        each segment by when it was last sent (RFC 8985 6.1)."""
        times = self.sent_times
        if times and seq_lt(start, times[-1][1]):
            index = 0
            while index < len(times):
                entry = times[index]
                if seq_le(entry[1], start):
                    index += 1
                    continue
                if seq_ge(entry[0], end):
                    break
                if seq_lt(entry[0], start):
                    times.insert(index, [entry[0], start, entry[2], entry[3]])
                    entry[0] = start
                    index += 1
                if seq_gt(entry[1], end):
                    times.insert(index + 1, [end, entry[1], entry[2], entry[3]])
                    entry[1] = end
                entry[2] = now
                entry[3] |= SENT_AGAIN
                index += 1
            start = times[-1][1]
        if seq_lt(start, end):
            times.append([start, end, now, 0])

    def sent_time_delivered(self, index: int) -> None:
        """The entry at `index` was SACKed (rack.py)."""
        self.sent_times[index][3] |= SACKED

    def forget_first_sent_times(self, count: int) -> None:
        """The first `count` entries were acknowledged cumulatively (rack.py counted them while
        it went through them): they are of no more use."""
        if count:
            del self.sent_times[:count]

    def recovery_retransmission(self, start: int, after: int) -> None:
        """Remember a retransmission made in this recovery, with SND.NXT at the time (for
        output._resend_lost_retransmissions)."""
        entry = [start, after, self.nxt]
        if self.recovery_retransmissions:
            self.recovery_retransmissions.append(entry)
        else:
            self.recovery_retransmissions = [entry]

    def resent_again(self, entry: list, start: int) -> None:
        """A recovery retransmission was itself lost and went out again from `start`."""
        entry[0], entry[2] = start, self.nxt

    def keep_recovery_retransmissions(self, kept: list) -> None:
        """Forget the recovery retransmissions acknowledged since (output.py decides which)."""
        self.recovery_retransmissions = kept or ()

    def limited_transmit_sent(self, beyond_cwnd: int) -> None:
        """RFC 5681 3.2 step 2: what Limited Transmit sent beyond cwnd stays out of FlightSize."""
        self.limited_transmit_bytes += beyond_cwnd

    def probe_sent(self, end: int) -> None:
        """A zero-window probe byte went out; an ACK up to `end` is acceptable (3.8.6.1)."""
        self.probe_end = end

    def persist_backed_off(self) -> None:
        if self.persist_backoff < 16:
            self.persist_backoff += 1

    def persist_ended(self) -> None:
        self.persist_backoff = 0

    def go_back(self) -> None:
        """Send again from SND.UNA (RFC 6298 5.4; RFC 1191 after a smaller MTU)."""
        self.nxt = self.una

    # ------------------------------------------------------------------ acknowledgements
    def acknowledge(self, ack: int) -> int:
        """SND.UNA < SEG.ACK =< SND.MAX (RFC 9293 3.10.7.4 fifth): release the acknowledged data
        and move SND.UNA; returns the bytes released from the send buffer."""
        buffer = self.buffer
        released = 0
        if buffer is not None:
            # SendBuffer.acknowledge releases nothing for an ACK beyond its data; an ACK of our
            # FIN too (one past the data) releases all of it. Asked in this order, the usual ACK
            # costs one call.
            released = buffer.acknowledge(ack)
            if not released:
                data_end = buffer.end_seq
                if ((data_end - ack) & SEQ_MASK) >= SEQ_HALF:  # seq_gt(ack, data_end), inline (seq.py)
                    released = buffer.acknowledge(data_end)
        self.una = ack
        scoreboard = self._scoreboard
        if scoreboard is not None and scoreboard.blocks:
            # Blocks SND.UNA has passed say nothing any more: has_sacked must not count them (it
            # would keep the tail loss probe from being armed, rack.py, long after recovery).
            scoreboard.forget_below(ack)
        nxt = self.nxt
        if ack != nxt and ((nxt - ack) & SEQ_MASK) >= SEQ_HALF:  # seq_lt(SND.NXT, ack), inline (seq.py): once per ACK
            self.nxt = ack
            if seq_lt(self.max, ack):
                self.max = ack  # the peer took our zero-window probe byte
        self.probe_end = None
        if self.up is not None and seq_le(self.up, ack):
            self.up = None  # all urgent data is acknowledged
        self.retransmit_count = 0  # RFC 6298 5.3: progress
        return released

    def space_reported(self) -> None:
        """SendSpaceAvailable was reported after a cut-short write."""
        self.blocked = False

    def rtt_sample_taken(self) -> None:
        self.timed_seq = None

    def record_sack(self, blocks: tuple, update_scoreboard: bool) -> bool:
        """The peer's SACK blocks, D-SACK removed (RFC 2018, RFC 6675 4 Update()). True if they
        say something new."""
        new_information = bool(blocks) and blocks != self.peer_sack_blocks
        self.peer_sack_blocks = blocks
        if blocks and update_scoreboard:
            self.scoreboard.update(self.una, self.max, blocks)
        return new_information

    def duplicate_ack(self) -> int:
        """One more duplicate ACK (RFC 5681 2); returns how many in a row."""
        self.duplicate_acks += 1
        return self.duplicate_acks

    def duplicate_acks_ended(self) -> None:
        self.duplicate_acks = 0

    def limited_transmit_started(self) -> None:
        """The first duplicate ACK: count Limited Transmit's extra bytes afresh (RFC 3042)."""
        self.limited_transmit_bytes = 0

    def enter_recovery(self) -> None:
        """Fast recovery begins (RFC 5681 3.2 steps 2-3, RFC 6582 3.2 step 2, RFC 6675 5): remember
        SND.MAX as "recover", resend the segment at SND.UNA."""
        self.recover = self.max
        self.limited_transmit_bytes = 0
        self.high_retransmitted = self.una
        self.recovery_retransmissions = ()
        self.requests |= FAST_RETRANSMIT
        self.timed_seq = None  # Karn

    def forget_timing(self) -> None:
        """What is in flight gives no RTT sample: it was not sent when we think (a SYN-ACK that
        carried a SYN cookie left before this connection existed, syn_cookies.py)."""
        self.timed_seq = None

    # ------------------------------------------------------------------ timeouts
    def retransmission_timeout(self) -> None:
        """The retransmission timer expired (RFC 6298 5.4-5.6): one more try, nothing in flight
        can be timed any more (Karn's rule)."""
        self.retransmit_count += 1
        self.timed_seq = None

    def forget_loss_recovery(self) -> None:
        """Everything we sent is acknowledged for good (TIME-WAIT): the SACK scoreboard, the
        last SACK blocks and RACK's send times have nothing left to describe."""
        self._scoreboard = None
        self.peer_sack_blocks = ()
        self.recovery_retransmissions = ()
        if self.sent_times is not None:
            self.sent_times = None

    def go_back_after_timeout(self) -> None:
        """After a timeout with our SYN acknowledged: loss recovery starts over from SND.UNA.
        RFC 6582 3.2 step 4 (and RFC 6675 5.1) set "recover" to SND.MAX; RFC 6298 5.4
        retransmits the earliest unacknowledged segment, and the rest follows as the (now small)
        congestion window allows. The SACK scoreboard is kept, as Linux keeps its SACKed marks
        (tcp_timeout_mark_lost), so that what the peer holds is not sent again (output.py
        skips it: RFC 6675 5.1 lets a sender use SACK information across a timeout when it
        tests for reneging) -- unless the peer has reneged: the segment at SND.UNA is SACKed,
        yet the timer expired on it. Then, as RFC 2018 8 asks, every SACKed mark goes."""
        self.duplicate_acks = 0
        self.recover = self.max
        scoreboard = self._scoreboard
        if scoreboard is not None and scoreboard.is_sacked(self.una):
            self.sack_reneged()
        self.recovery_retransmissions = ()
        self.nxt = self.una

    def sack_reneged(self) -> None:
        """The peer dropped data it had SACKed (RFC 2018 8 "reneging"): forget every SACKed mark,
        in the scoreboard and in RACK's records, so that all of it is sent again."""
        self._scoreboard = None
        self.peer_sack_blocks = ()
        self.sack_renegings += 1
        if self.sent_times:
            for entry in self.sent_times:
                entry[3] &= ~SACKED

    def skip_sacked(self, end: int) -> None:
        """Going back after a timeout, SND.NXT passes a range the peer has SACKed (not sent again)."""
        self.nxt = end

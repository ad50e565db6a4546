"""The receive side of a connection: the receive sequence variables and all that hangs on them.

RFC 9293 3.3.1 names the receive sequence variables RCV.NXT, RCV.WND, RCV.UP and IRS. A
connection here keeps them in one ReceiveSide, read as `connection.rcv.nxt`...: RCV.WND as
the right edge we advertised (`adv`, so RCV.WND = adv - nxt and the edge never moves left,
RFC 9293 3.8.6.2.2), the receive buffer with its reassembly queue (receive_buffer.py), the
peer's urgent pointer and FIN, TS.Recent (RFC 7323 4.3), a D-SACK block to report (RFC 2883)
and the ACK we owe the peer (RFC 9293 3.8.6.3, delayed or at once).

This object is the one owner of those facts: the rest of the connection reads the fields and
changes them only through the methods below. SEGMENT ARRIVES (arrival.py) decides, in the order
of RFC 9293 3.10.7, what an arriving segment means; this side keeps the books.
"""

from __future__ import annotations

from ustack.tcp.receive_buffer import ReceiveBuffer
from ustack.tcp.seq import SEQ_HALF, SEQ_MASK, seq_diff, seq_gt, seq_le


class ReceiveSide:
    """The receive sequence space of one connection (RFC 9293 3.3.1, Figure 4)."""

    __slots__ = (
        "irs", "nxt", "adv", "up", "buffer", "capacity", "read_seq", "fin_received", "peer_fin_seq", "syn_text",
        "dsack_block", "ts_recent", "last_ack_sent", "segments_since_ack", "ack_owed", "bytes_received",
        "max_blocks", "quick_acks_left", "last_arrival",
    )  # fmt: skip

    def __init__(self) -> None:
        self.irs: int | None = None  # IRS, known once the peer's SYN arrives
        self.nxt = 0  # RCV.NXT: the next sequence number expected
        self.adv = 0  # right edge of the window we advertised: RCV.WND = adv - nxt
        self.up: int | None = None  # RCV.UP, the peer's urgent pointer (RFC 6093)
        # Made by the first data (data_buffer): an idle connection holds none.
        self.buffer: ReceiveBuffer | None = None
        self.capacity = 0  # the receive buffer's size, known once synchronized
        self.read_seq = 0  # sequence number of the next byte the application reads
        self.fin_received = False
        self.peer_fin_seq: int | None = None  # a FIN that arrived before the data in front of it
        self.syn_text = b""  # data on the peer's SYN in a simultaneous open, until ESTABLISHED
        self.dsack_block: tuple | None = None  # a duplicate range for our next ACK (RFC 2883)
        self.ts_recent = 0  # TS.Recent (RFC 7323 4.3)
        self.last_ack_sent = 0  # Last.ACK.sent (RFC 7323 4.3)
        self.segments_since_ack = 0  # full-sized segments not yet acknowledged (RFC 9293 3.8.6.3)
        self.ack_owed = False  # an ACK must go out at the next transmit()
        self.bytes_received = 0  # statistics (STATUS, RFC 9293 3.10.6)
        self.max_blocks: int | None = None  # the buffer's limit on out-of-order blocks
        # Quick-ACK mode at connection start (TcpConfig.quick_ack_segments): how many more data
        # segments are acknowledged at once; None until the first data arrives.
        self.quick_acks_left: int | None = None
        self.last_arrival: float | None = None  # of the peer's SYN or data (quick-ACK mode only)

    # ------------------------------------------------------------------ the peer's SYN
    def synchronize(self, syn_seq: int, buffer_size: int, window_offered: int, *, max_blocks: int | None = None) -> None:
        """The peer's SYN tells us IRS (RFC 9293 3.10.7.2-3): RCV.NXT = IRS + 1. `window_offered`
        is what our own SYN already advertised (0 if we have sent none yet); `max_blocks` is for
        the receive buffer (TcpConfig.out_of_order_max_blocks)."""
        self.max_blocks = max_blocks
        self.irs = syn_seq
        nxt = self.nxt = self.read_seq = (syn_seq + 1) & SEQ_MASK  # seq_add, inline (seq.py)
        self.capacity = buffer_size
        self.adv = (nxt + window_offered) & SEQ_MASK  # seq_add

    def data_buffer(self) -> ReceiveBuffer:
        """The receive buffer, made when the first data needs it. It starts at IRS + 1 as if
        made on the SYN: only data moves its RCV.NXT, and none came before."""
        buffer = self.buffer
        if buffer is None:
            buffer = self.buffer = ReceiveBuffer(
                self.capacity, (self.irs + 1) & SEQ_MASK, max_blocks=self.max_blocks  # seq_add, inline
            )
        return buffer

    @property
    def free_space(self) -> int:
        """Room for data: what the window may offer (RFC 9293 3.8.6.2.2)."""
        buffer = self.buffer
        return self.capacity if buffer is None else buffer.free_space

    @property
    def has_out_of_order(self) -> bool:
        buffer = self.buffer
        return buffer is not None and buffer.has_out_of_order

    def release_empty_buffer(self) -> None:
        """Give back a receive buffer that holds nothing, when no data can arrive any more
        (TIME-WAIT: the peer's FIN is in). free_space then reads `capacity`, as the empty buffer
        said, and recv() finds nothing to read, as before."""
        buffer = self.buffer
        if buffer is not None and not buffer.readable and not buffer.has_out_of_order and buffer.capacity == self.capacity:
            self.buffer = None

    def forget_peer(self) -> None:
        """Back to LISTEN (RFC 9293 3.10.7.4 note 1): nothing of the peer's SYN remains."""
        self.irs = None
        self.buffer = None

    def take_timestamp(self, tsval: int) -> None:
        """TS.Recent from the peer's SYN, or from a segment that covers Last.ACK.sent."""
        self.ts_recent = tsval

    def remember_timestamp(self, segment) -> None:
        """RFC 7323 4.3: TS.Recent follows the segment that covers Last.ACK.sent."""
        timestamps = segment.options.timestamps
        if timestamps is None:
            return
        # seq_le twice, inline (seq.py): this runs for every segment with timestamps.
        seq = segment.seq
        last_ack_sent = self.last_ack_sent
        if seq == last_ack_sent or ((seq - last_ack_sent) & SEQ_MASK) >= SEQ_HALF:
            tsval = timestamps[0]
            ts_recent = self.ts_recent
            if ts_recent == tsval or ((ts_recent - tsval) & SEQ_MASK) >= SEQ_HALF:
                self.ts_recent = tsval

    def hold_syn_text(self, text: bytes) -> None:
        """RFC 9293 3.10.7.3: text on a SYN in a simultaneous open waits for ESTABLISHED."""
        self.syn_text = text

    def take_syn_text(self) -> bytes:
        text, self.syn_text = self.syn_text, b""
        return text

    # ------------------------------------------------------------------ data, URG, FIN
    def store(self, seq: int, payload) -> int:
        """Data from `seq` into the receive buffer; RCV.NXT moves over what became in-order.
        Returns by how much it moved."""
        advanced = (self.buffer or self.data_buffer()).insert(seq, payload)
        if advanced:
            self.nxt = (self.nxt + advanced) & SEQ_MASK  # seq_add, inline (seq.py)
            self.bytes_received += advanced
        return advanced

    def read(self, max_bytes: int) -> bytes:
        """RECEIVE (RFC 9293 3.10.3): in-order bytes for the application."""
        data = self.buffer.read(max_bytes)
        self._taken(len(data))
        return data

    def read_chunks(self, max_bytes: int) -> list:
        """read(), as the chunks the receive buffer held (ReceiveBuffer.read_chunks: no copy)."""
        chunks = self.buffer.read_chunks(max_bytes)
        self._taken(sum(map(len, chunks)))
        return chunks

    def _taken(self, count: int) -> None:
        """The application took `count` bytes."""
        self.read_seq = (self.read_seq + count) & SEQ_MASK  # seq_add, inline (seq.py)
        if self.up is not None and seq_le(self.up, self.read_seq):
            # The urgent data has been read: forget the pointer, which would otherwise seem
            # ahead again (modulo 2**32) after 2 GiB more (RFC 9293 3.8.5, RFC 6093).
            self.up = None

    def urgent_pointer(self, pointer: int) -> int | None:
        """RCV.UP <- max(RCV.UP, SEG.UP) (RFC 9293 3.10.7.4 sixth, RFC 6093). Returns how many
        bytes the application has to read up to it if it moved, else None. A pointer the
        application has already read past is not kept."""
        distance = seq_diff(pointer, self.read_seq)
        if distance > 0 and (self.up is None or seq_gt(pointer, self.up)):
            self.up = pointer
            return distance
        return None

    def fin_ahead(self, fin_seq: int) -> None:
        """A FIN beyond missing data: remember where it is, so the peer need not send it again."""
        self.peer_fin_seq = fin_seq

    def accept_fin(self) -> None:
        """RFC 9293 3.10.7.4 eighth: the FIN counts; RCV.NXT moves over it."""
        self.nxt = (self.nxt + 1) & SEQ_MASK  # seq_add, inline (seq.py)
        self.fin_received = True
        self.peer_fin_seq = None

    def note_duplicate(self, seq: int, length: int) -> None:
        """RFC 2883 4: remember the first range of these bytes that we already hold, for a D-SACK
        block in our next ACK (or forget an older one: a D-SACK block reports the most recent
        arrival only). Bytes before RCV.NXT count as held even when the segment is too old to
        be acceptable (RFC 2883 4.1.1: the ACK of a segment was lost and the sender repeated it)."""
        self.dsack_block = (self.buffer or self.data_buffer()).first_duplicate(seq, length)

    def sack_blocks(self, max_blocks: int) -> tuple:
        """The SACK blocks of RFC 2018 4, the most recent first, behind a D-SACK block if one is
        waiting (RFC 2883 4: the duplicate range goes first, and only once)."""
        buffer = self.buffer
        dsack = self.dsack_block
        if dsack is not None:
            self.dsack_block = None
            return (dsack,) + buffer.sack_blocks(max_blocks - 1)  # note_duplicate made it
        return buffer.sack_blocks(max_blocks) if buffer is not None and buffer.has_out_of_order else ()

    # ------------------------------------------------------------------ the ACK we owe
    def owe_ack(self) -> None:
        """An ACK must go out at once (RFC 9293 3.10.7.4, RFC 5681 4.2)."""
        self.ack_owed = True

    def note_arrival(self, now: float) -> None:
        """The peer's SYN or SYN-ACK arrived (quick_ack's interactive test)."""
        self.last_arrival = now

    def quick_ack(self, most: int, mss: int, now: float, last_send_time: float | None, delay: float) -> bool:
        """Quick-ACK mode at connection start, as Linux does it: the first data segments are
        acknowledged at once so the sender's slow start is not slowed by our delayed ACKs. How
        many: `most`, but no more than the window has room for pairs of small (536-byte, the
        RFC 9293 3.7.1 default MSS) segments, and at least 2. True: acknowledge this one now.
        The mode ends once the connection sent data within `delay` after something arrived: it
        answers requests, and its ACKs can wait to ride on its replies (Linux's interactive
        "pingpong" mode, approximated)."""
        left = self.quick_acks_left
        previous, self.last_arrival = self.last_arrival, now
        if previous is not None and last_send_time is not None and 0 <= last_send_time - previous < delay:
            left = 0
        if left is None:
            window = seq_diff(self.adv, self.nxt)
            left = min(most, max(2, window // (2 * min(mss, 536))))
        if left <= 0:
            self.quick_acks_left = 0
            return False
        self.quick_acks_left = left - 1
        self.ack_owed = True
        return True

    def segment_to_acknowledge(self, ack_every: int) -> bool:
        """One more in-order segment (RFC 9293 3.8.6.3): True once `ack_every` of them wait,
        and then the ACK is owed at once; False means the ACK may be delayed."""
        self.segments_since_ack += 1
        if self.segments_since_ack >= ack_every:
            self.ack_owed = True
            return True
        return False

    def acknowledgement_sent(self) -> None:
        """A segment carrying ACK = RCV.NXT is going out: nothing is owed any more, and it is
        Last.ACK.sent (RFC 7323 4.3)."""
        self.last_ack_sent = self.nxt
        self.segments_since_ack = 0
        self.ack_owed = False

    def ack_carried(self) -> None:
        """Another segment of the same transmit() carries the ACK too."""
        self.ack_owed = False

    # ------------------------------------------------------------------ the window we advertise
    def advertise(self, edge: int) -> None:
        """We advertised a window up to `edge`; the right edge never moves left (RFC 9293
        3.8.6.2.2, "shrinking the window" is discouraged)."""
        if seq_gt(edge, self.adv):
            self.adv = edge

    @property
    def advertised(self) -> int:
        """RCV.WND as we last advertised it: adv - RCV.NXT (never below zero)."""
        window = seq_diff(self.adv, self.nxt)
        return window if window > 0 else 0

    def window_field(self, config, shift: int) -> int:
        """The 16-bit window to advertise, with receiver SWS avoidance (RFC 9293 3.8.6.2.2): the
        right edge moves only in steps of min(buffer/2, MSS), and never moves left."""
        # Runs for every transmit that sends (output.py): free_space, seq_diff, min, seq_add and
        # advertise (seq_gt) inlined, in the forms seq.py gives.
        nxt = self.nxt
        adv = self.adv
        buffer = self.buffer
        free = self.capacity if buffer is None else buffer.free_space
        advertised = ((adv - nxt + SEQ_HALF) & SEQ_MASK) - SEQ_HALF  # seq_diff(adv, nxt)
        if config.window_advertisement == "free_space":
            # BSD's policy (TcpConfig.window_advertisement): all the free space, but a sliver
            # smaller than min(buffer/4, MSS) counts as none; the edge still never moves left.
            window = free
            if window < (config.receive_buffer_size >> 2) and window < config.mss:
                window = 0
            if window < advertised:
                window = advertised
        else:
            step = config.receive_buffer_size >> 1  # min(buffer/2, MSS)
            if config.mss < step:
                step = config.mss
            if free - advertised >= step:
                window = free
            else:
                window = advertised if advertised > 0 else 0
        field = window >> shift
        if field > 0xFFFF:
            field = 0xFFFF
        edge = (nxt + (field << shift)) & SEQ_MASK  # seq_add
        if ((adv - edge) & SEQ_MASK) >= SEQ_HALF:  # advertise(edge): seq_gt(edge, adv)
            self.adv = edge
        return field

    def window_update_due(self, config, shift: int) -> bool:
        """After the application read: is the window worth an update segment of its own?

        Only if it grew by the receiver-SWS step, min(buffer/2, MSS) (RFC 9293 3.8.6.2.2), and
        the growth matters to the sender: it at least doubles the window the sender knows
        (a sender at or near a zero window is stalled until told), or it is half the buffer.
        Smaller growth rides on the next segment we send anyway."""
        advertised = seq_diff(self.adv, self.nxt)
        if config.window_advertisement == "free_space":
            return self._bsd_window_update_due(advertised, config, shift)
        growth = self.free_space - advertised
        return growth >= min(config.receive_buffer_size >> 1, config.mss) and (
            growth >= advertised or growth >= config.receive_buffer_size >> 1
        )

    def _bsd_window_update_due(self, advertised: int, config, shift: int) -> bool:
        """The window-update rule of BSD's tcp_output, for window_advertisement="free_space":
        an update of its own is worth sending when the window could grow by at least two
        segments and that growth is a quarter of the buffer (or the window is nearly closed, or
        the buffer is small), or when it grows by half the buffer. A growth that would not
        change the scaled 16-bit field is never worth a segment."""
        capacity = self.capacity
        largest = 0xFFFF << shift
        window = min(self.free_space, largest)
        growth = window - advertised
        if growth <= 0 or (advertised >> shift) >= (window >> shift):
            return False
        two_segments = 2 * config.mss  # the largest segments the peer may send us
        if growth >= two_segments and (
            growth >= capacity >> 2 or window <= capacity >> 3 or capacity <= 4 * two_segments or growth >= largest
        ):
            return True
        return 2 * growth >= capacity

    def acceptance_window(self, config, advertised_only: bool) -> int:
        """RCV.WND for the acceptability test (RFC 9293 3.10.7.4 first): what we advertised,
        adv - RCV.NXT.

        With BSD's window policy (TcpConfig.window_advertisement "free_space") it is all the free
        space, even beyond what the 16-bit field could say (FreeBSD: rcv_wnd = max(sbspace,
        rcv_adv - rcv_nxt)); but only where FreeBSD has a socket buffer (`advertised_only` False:
        not in a passive SYN-RECEIVED, its SYN cache, nor in TIME-WAIT)."""
        window = seq_diff(self.adv, self.nxt)
        if config.window_advertisement == "free_space" and not advertised_only:
            free = self.free_space
            if free > window:
                window = free
        return window

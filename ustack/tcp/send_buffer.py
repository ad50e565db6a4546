"""The send buffer: bytes the application wrote that the peer has not yet acknowledged.

RFC 9293 3.3.1 divides the send sequence space into acknowledged, sent but unacknowledged, and
not yet sent. This buffer holds the last two parts, from SND.UNA (`start_seq`) to the end of what
the application wrote (`end_seq`). It does not know SND.NXT: what has been sent is the connection's
business. The connection reads any range with `peek` (first transmissions and retransmissions
alike) and releases the front with `acknowledge` when an ACK moves SND.UNA forward.

Only data: SYN and FIN occupy sequence numbers but no bytes here. The connection creates the
buffer with start_seq = ISS + 1 and, when an ACK also covers our FIN (ACK = end_seq + 1), passes
`end_seq` to `acknowledge`.

Cost: the bytes live in one bytearray. Writing appends; a peek copies only the bytes asked for
(once; a large segment through a memoryview).
Acknowledging only moves `_front`, the index of SND.UNA in the bytearray; the released prefix is
cut off once it is at least half the bytearray, so the bytes still held are moved at most once
per byte acknowledged on average (cutting the prefix at every ACK lets CPython move the whole
live buffer each time its small spare room runs out, about eight bytes moved per byte
acknowledged). A buffer that holds nothing (none written yet, or all acknowledged) keeps no
bytearray, only the shared empty bytes `NOTHING`: an idle connection that has sent a response,
and every TIME-WAIT connection, would otherwise keep an empty bytearray and its spare room (about
90 bytes, scripts/bench_lifecycles.py).
"""

from ustack.tcp.seq import SEQ_MASK, seq_add, seq_diff

NOTHING = b""  # what an empty buffer holds: one shared object, no bytearray
LARGE_PEEK = 8192  # from this length on, peek copies through a memoryview (see peek)


class SendBuffer:
    __slots__ = ("_capacity", "start_seq", "_data", "_front")

    def __init__(self, capacity: int, start_seq: int):
        if capacity < 0:
            raise ValueError(f"capacity cannot be negative: {capacity}")
        self._capacity = capacity
        self.start_seq = start_seq & SEQ_MASK  # SND.UNA: the first byte not yet acknowledged
        self._data: bytearray | bytes = NOTHING  # released bytes [0, _front), then the bytes held
        self._front = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @capacity.setter
    def capacity(self, capacity: int) -> None:
        # Shrinking below what is held keeps the data; writes are refused until it drains.
        if capacity < 0:
            raise ValueError(f"capacity cannot be negative: {capacity}")
        self._capacity = capacity

    @property
    def length(self) -> int:
        """Bytes held: written and not yet acknowledged."""
        return len(self._data) - self._front

    @property
    def end_seq(self) -> int:
        """The sequence number just after the last byte written."""
        return seq_add(self.start_seq, len(self._data) - self._front)

    @property
    def free_space(self) -> int:
        return max(0, self._capacity - (len(self._data) - self._front))

    def write(self, data) -> int:
        """Append as much of data as fits; return how many bytes were accepted."""
        held = self._data
        accepted = min(len(data), self._capacity - (len(held) - self._front))
        if accepted <= 0:
            return 0
        if held is NOTHING:
            if accepted == len(data):
                self._data = bytearray(data)
            else:
                with memoryview(data) as view:
                    self._data = bytearray(view[:accepted])
        elif accepted == len(data):
            held += data
        else:
            with memoryview(data) as view:
                held += view[:accepted]
        return accepted

    def peek(self, seq: int, length: int) -> bytes:
        """Up to `length` bytes starting at sequence number `seq` (fewer at the end of the data).

        `seq` must lie in [start_seq, end_seq]; anything else is a bug in the caller.
        """
        offset = seq_diff(seq, self.start_seq)
        if offset < 0 or offset > len(self._data) - self._front:
            raise ValueError(
                f"sequence number {seq} is outside the send buffer [{self.start_seq}, {self.end_seq}]"
            )
        if length <= 0:
            return b""
        index = self._front + offset
        if length < LARGE_PEEK:
            # For a segment-sized range, slicing then converting is faster than a memoryview.
            return bytes(self._data[index : index + length])
        # A large segment (TcpConfig.offload_segments): one copy through a view, not two (the
        # slice's bytearray, then bytes of it): ~2 us saved per 64 KB here. The view is gone
        # before the bytearray is next resized.
        with memoryview(self._data) as view:
            return bytes(view[index : index + length])

    def acknowledge(self, ack_seq: int) -> int:
        """Release every byte before ack_seq; return how many were released.

        An ack_seq outside (start_seq, end_seq] releases nothing: an old or duplicate ACK, or one
        for data never written (the connection validates ACKs against SND.NXT, RFC 9293 3.10.7.4).
        """
        released = seq_diff(ack_seq, self.start_seq)
        data = self._data
        if released <= 0 or released > len(data) - self._front:
            return 0
        self._front += released
        if self._front == len(data):
            # Everything is acknowledged: start afresh, holding no bytearray (module docstring).
            self._data = NOTHING
            self._front = 0
        elif self._front >= len(data) // 2:
            del data[: self._front]
            self._front = 0
        self.start_seq = ack_seq & SEQ_MASK
        return released

    def __repr__(self) -> str:
        return f"SendBuffer(start_seq={self.start_seq} length={self.length} capacity={self._capacity})"

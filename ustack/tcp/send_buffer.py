"""The send buffer: bytes the application wrote that the peer has not yet acknowledged.

RFC 9293 3.3.1 divides the send sequence space into acknowledged, sent but unacknowledged, and
not yet sent. This buffer holds the last two parts, from SND.UNA (`start_seq`) to the end of what
the application wrote (`end_seq`). It does not know SND.NXT: what has been sent is the connection's
business. The connection reads any range with `peek` (first transmissions and retransmissions
alike) and releases the front with `acknowledge` when an ACK moves SND.UNA forward.

Only data: SYN and FIN occupy sequence numbers but no bytes here. The connection creates the
buffer with start_seq = ISS + 1 and, when an ACK also covers our FIN (ACK = end_seq + 1), passes
`end_seq` to `acknowledge`.

Cost: the bytes live in a list of immutable chunks, the application's own bytes objects as it
wrote them (or read-only views of them: the part that fit, the rest of a write the transport
held back). Writing bytes keeps them as they are (no copy); acknowledging drops the chunks
it covered entirely (no bytes moved); a large peek inside one chunk is a memoryview of it (no
copy: bytes never change, so the view stays valid whatever happens to the buffer after). On a
bulk transfer (64 KB writes, 64 KB segments) that is three copies of every byte fewer than one
bytearray written to, cut at the front and sliced (issue 12). A range across chunks is joined,
one copy. Short writes join a short last chunk instead of adding one, so a buffer of capacity C
holds at most about 2C / MERGE_BELOW chunks whatever the write sizes. Each chunk's end, as a
position in the stream written since the buffer was last empty, is kept beside it, so a peek
finds its chunk by bisection. A buffer that holds nothing keeps no list, only the shared empty
tuple `NO_CHUNKS`: an idle connection that has sent a response, and every TIME-WAIT
connection, would otherwise keep two empty lists (scripts/bench_lifecycles.py).
"""

from __future__ import annotations

from bisect import bisect_right

from ustack.compat import byte_view
from ustack.tcp.seq import SEQ_HALF, SEQ_MASK

NO_CHUNKS = ()  # what an empty buffer holds: one shared object, no list
LARGE_PEEK = 8192  # from this length on, a peek inside one chunk is a view of it, not a copy
MERGE_BELOW = 1024  # a write shorter than this joins a last chunk shorter than this
COMPACT_AFTER = 64  # acknowledged chunks left at the front of the lists before they are cut off


class SendBuffer:
    __slots__ = ("_capacity", "start_seq", "end_seq", "_chunks", "_ends", "_first", "_base")

    def __init__(self, capacity: int, start_seq: int):
        if capacity < 0:
            raise ValueError(f"capacity cannot be negative: {capacity}")
        self._capacity = capacity
        self.start_seq = start_seq & SEQ_MASK  # SND.UNA: the first byte not yet acknowledged
        # The sequence number just after the last byte written: kept, not worked out from
        # start_seq and the length at each ask (about seven times in a connection's life, two
        # calls each). Only a write moves it; an ACK moves start_seq and the length by as much.
        # An empty buffer shares start_seq's int object (no second int per idle connection).
        self.end_seq = self.start_seq
        self._chunks: list[bytes | memoryview] | tuple = NO_CHUNKS  # the bytes written, oldest first
        self._ends: list[int] | tuple = NO_CHUNKS  # _ends[i]: the stream position just after _chunks[i]
        self._first = 0  # the first chunk still holding a byte not yet acknowledged
        self._base = 0  # the stream position of start_seq

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
        ends = self._ends
        return ends[-1] - self._base if ends else 0

    @property
    def free_space(self) -> int:
        return max(0, self._capacity - self.length)

    def write(self, data) -> int:
        """Append as much of data as fits; return how many bytes were accepted."""
        if type(data) is not bytes:
            data = byte_view(data)  # any bytes-like object as its bytes, counted one by one
        accepted = min(len(data), self._capacity - self.length)
        if accepted <= 0:
            return 0
        if type(data) is bytes:
            chunk = data if accepted == len(data) else memoryview(data)[:accepted]
        elif type(data.obj) is bytes:
            chunk = data if accepted == len(data) else data[:accepted]  # a view of bytes: unchanging too
        else:
            # A bytearray (or a view of one) may change after this call: our own copy.
            chunk = bytes(data[:accepted])
        # Kept as written: bytes never change. A view keeps its whole bytes object alive until
        # acknowledged; that is the application's write, whose rest it is still sending.
        self.end_seq = (self.end_seq + accepted) & SEQ_MASK  # seq_add, inline (seq.py)
        chunks = self._chunks
        if chunks is NO_CHUNKS:
            self._chunks, self._ends, self._first, self._base = [chunk], [accepted], 0, 0
        elif accepted < MERGE_BELOW and len(chunks[-1]) < MERGE_BELOW:
            chunks[-1] = b"".join((chunks[-1], chunk))  # short pieces join: the chunk count stays bounded
            self._ends[-1] += accepted
        else:
            chunks.append(chunk)
            self._ends.append(self._ends[-1] + accepted)
        return accepted

    def peek(self, seq: int, length: int) -> bytes | memoryview:
        """Up to `length` bytes starting at sequence number `seq` (fewer at the end of the data):
        bytes, or from LARGE_PEEK bytes on possibly a read-only memoryview of them.

        `seq` must lie in [start_seq, end_seq]; anything else is a bug in the caller.
        """
        # seq_diff and the length property, inline (seq.py): once per data segment sent.
        offset = ((seq - self.start_seq + SEQ_HALF) & SEQ_MASK) - SEQ_HALF
        ends = self._ends
        held = ends[-1] - self._base if ends else 0
        if offset < 0 or offset > held:
            raise ValueError(
                f"sequence number {seq} is outside the send buffer [{self.start_seq}, {self.end_seq}]"
            )
        if length <= 0 or offset == held:
            return b""
        position = self._base + offset
        chunks, ends = self._chunks, self._ends
        index = bisect_right(ends, position, self._first)  # the first chunk ending after position
        chunk = chunks[index]
        start = position - (ends[index] - len(chunk))
        stop = start + length
        if stop <= len(chunk):
            if length >= LARGE_PEEK:
                return memoryview(chunk)[start:stop]
            piece = chunk[start:stop]  # for a segment-sized range, a copy costs less than a view
            return piece if type(piece) is bytes else bytes(piece)
        pieces = [memoryview(chunk)[start:]]
        wanted = length - (len(chunk) - start)
        for chunk in chunks[index + 1 :]:
            if wanted <= len(chunk):
                pieces.append(memoryview(chunk)[:wanted])
                break
            pieces.append(chunk)
            wanted -= len(chunk)
        return b"".join(pieces)

    def acknowledge(self, ack_seq: int) -> int:
        """Release every byte before ack_seq; return how many were released.

        An ack_seq outside (start_seq, end_seq] releases nothing: an old or duplicate ACK, or one
        for data never written (the connection validates ACKs against SND.NXT, RFC 9293 3.10.7.4).
        """
        # seq_diff and the length property, inline (seq.py): once per ACK of new data.
        released = ((ack_seq - self.start_seq + SEQ_HALF) & SEQ_MASK) - SEQ_HALF
        ends = self._ends
        held = ends[-1] - self._base if ends else 0
        if released <= 0 or released > held:
            return 0
        self.start_seq = ack_seq & SEQ_MASK
        if released == held:
            # Everything is acknowledged: start afresh, holding no list (module docstring), and
            # end_seq (the same number) as the same int object.
            self.end_seq = self.start_seq
            self._chunks = self._ends = NO_CHUNKS
            self._first = self._base = 0
            return released
        base = self._base = self._base + released
        ends, first = self._ends, self._first
        while ends[first] <= base:  # chunks acknowledged entirely: let them go
            self._chunks[first] = b""
            first += 1
        if first >= COMPACT_AFTER and 2 * first >= len(ends):
            del self._chunks[:first]  # pointers only, at most twice per chunk on average
            del ends[:first]
            first = 0
        self._first = first
        return released

    def __repr__(self) -> str:
        return f"SendBuffer(start_seq={self.start_seq} length={self.length} capacity={self._capacity})"

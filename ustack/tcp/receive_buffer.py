"""The receive buffer: reassembly of arriving data and the queue the application reads from.

Data arrives in segments that may be duplicated, overlap each other, arrive out of order or
stretch past the window we advertised. This buffer keeps

- the in-order bytes (from the last byte the application read up to RCV.NXT), waiting for the
  application: `readable` of them, in one bytearray;
- out-of-order pieces beyond RCV.NXT, waiting for the holes before them to be filled
  (RFC 9293 3.10.7.4: "segments with higher beginning sequence numbers SHOULD be held for later
  processing"), as a short sorted list of non-overlapping blocks.

For SACK (RFC 2018) the buffer reports its out-of-order blocks, most recently touched first;
for D-SACK (RFC 2883) it says which part of an arriving segment it already holds
(`first_duplicate`), which the connection reports once as the first SACK block of its ACK.

The window: we accept bytes in [RCV.NXT, RCV.NXT + capacity - readable). The connection
advertises `free_space` (RFC 9293 3.8.6.2.2); out-of-order bytes lie inside that window and
therefore do not reduce it. The memory held is never more than `capacity`.

Only data: the buffer knows nothing of SYN or FIN, which also occupy sequence numbers. The
connection creates the buffer with rcv_nxt = IRS + 1 and handles the FIN itself (the FIN's sequence
number is the buffer's rcv_nxt once all data before it has arrived).

How sequence numbers are handled: sequence numbers wrap at 2**32, so on arrival each one is
turned into a stream offset, an ordinary unbounded integer counting bytes since the buffer was
created (offset = offset of RCV.NXT + seq_diff(seq, RCV.NXT)). Offsets never wrap, so the block
bookkeeping below compares them with plain operators; converting back uses seq_add.
"""

from bisect import bisect_left, bisect_right

from ustack.tcp.seq import SEQ_MASK, seq_add, seq_diff


class _Block:
    """One contiguous run of out-of-order bytes [start, end) in stream offsets.

    The bytes are kept as the list of pieces they arrived in, so that merging blocks costs a list
    concatenation, not a copy of the data; the pieces are joined once, when they become
    in-order. `stamp` orders blocks by when they last received data (for SACK, RFC 2018 4).
    """

    __slots__ = ("start", "end", "pieces", "stamp")

    def __init__(self, start: int, end: int, pieces: list, stamp: int):
        self.start = start
        self.end = end
        self.pieces = pieces
        self.stamp = stamp


def _by_stamp(block: _Block) -> int:
    return block.stamp


class ReceiveBuffer:
    def __init__(self, capacity: int, rcv_nxt: int):
        if capacity < 0:
            raise ValueError(f"capacity cannot be negative: {capacity}")
        self.capacity = capacity
        self._rcv_nxt = rcv_nxt & SEQ_MASK
        self._in_order = bytearray()  # bytes before RCV.NXT the application has not read
        self._rcv_nxt_offset = 0  # stream offset of RCV.NXT (see the module docstring)
        self._blocks: list[_Block] = []  # out-of-order data, sorted by start, never touching
        self._block_starts: list[int] = []  # the blocks' starts, kept in step, for bisect
        self._out_of_order_bytes = 0
        self._stamp = 0  # bumped on every arrival that adds to or touches a block

    # --- what the connection and the application see ---
    @property
    def rcv_nxt(self) -> int:
        """RCV.NXT counting data only (read-only: it moves when in-order data arrives)."""
        return self._rcv_nxt

    @property
    def readable(self) -> int:
        """In-order bytes waiting for the application."""
        return len(self._in_order)

    @property
    def free_space(self) -> int:
        """The window to advertise: capacity minus what waits for the application."""
        return max(0, self.capacity - len(self._in_order))

    @property
    def has_out_of_order(self) -> bool:
        return bool(self._blocks)

    @property
    def out_of_order_bytes(self) -> int:
        return self._out_of_order_bytes

    def set_capacity(self, capacity: int) -> None:
        """Change the buffer size. Shrinking below what is held keeps the data (free_space is 0
        until it is read); out-of-order data beyond the new window edge is kept too, since we may
        already have advertised that window (RFC 9293 3.8.6.2.2 discourages shrinking it)."""
        if capacity < 0:
            raise ValueError(f"capacity cannot be negative: {capacity}")
        self.capacity = capacity

    # --- arriving data ---
    def insert(self, seq: int, data: bytes) -> int:
        """Store the part of `data` (starting at sequence number `seq`) that lies inside the
        window and is new; return by how much RCV.NXT advanced (0 if the data was out of order,
        a duplicate or outside the window)."""
        length = len(data)
        if length == 0:
            return 0
        window_start = self._rcv_nxt_offset
        window_end = window_start + self.capacity - len(self._in_order)
        start = window_start + seq_diff(seq, self._rcv_nxt)
        end = start + length

        # The common case of a bulk transfer: the next in-order segment, nothing out of order.
        if start == window_start and not self._blocks:
            if end > window_end:
                # RFC 9293 3.10.7.4: trim what lies beyond the window's right edge.
                end = window_end
                if end <= start:
                    return 0
                data = memoryview(data)[: end - start]
            self._in_order += data
            self._advance(end - start)
            return end - start

        # Trim to the window (RFC 9293 3.10.7.4): bytes before RCV.NXT are duplicates of what we
        # hold, bytes past the right edge we have no room for.
        skip_front = max(0, window_start - start)
        start = max(start, window_start)
        end = min(end, window_end)
        if end <= start:
            return 0
        if skip_front or end - start != length:
            data = memoryview(data)[skip_front : skip_front + end - start]

        if start == window_start and (not self._blocks or end < self._blocks[0].start):
            # In order and not reaching the first out-of-order block: append directly.
            self._in_order += data
            self._advance(end - start)
            return end - start

        self._store_block(start, end, data)
        first = self._blocks[0]
        if first.start != window_start:
            return 0
        # The hole at RCV.NXT is filled: the first block becomes in-order data.
        for piece in first.pieces:
            self._in_order += piece
        advanced = first.end - first.start
        self._out_of_order_bytes -= advanced
        del self._blocks[0]
        del self._block_starts[0]
        self._advance(advanced)
        return advanced

    def first_duplicate(self, seq: int, length: int) -> tuple[int, int] | None:
        """The first run of bytes of the segment [seq, seq + length) that we already hold, as
        (left edge, right edge) sequence numbers, or None: what a D-SACK block reports
        (RFC 2883 4). Call it before `insert`, and only off the in-order path: a segment that
        starts at RCV.NXT with nothing held out of order cannot repeat anything.

        Held means before RCV.NXT (in order, whether the application has read it or not) or
        inside an out-of-order block. A segment may repeat several separate runs (its start
        before RCV.NXT and a block further on); RFC 2883 4 reports one duplicate run per
        arrival, and, as FreeBSD does, this is the one with the lowest sequence numbers.
        """
        window_start = self._rcv_nxt_offset
        start = window_start + seq_diff(seq, self._rcv_nxt)
        end = start + length
        if start < 0:
            start = 0  # before the first byte (IRS + 1): nothing there was ever received
        if start < window_start:
            first, last = start, min(end, window_start)
        else:
            blocks = self._blocks
            # The last block starting at or before the segment, else the first one after it.
            index = max(bisect_right(self._block_starts, start) - 1, 0)
            while index < len(blocks) and blocks[index].end <= start:
                index += 1
            if index == len(blocks) or blocks[index].start >= end:
                return None
            block = blocks[index]
            first, last = max(start, block.start), min(end, block.end)
        if last <= first:
            return None
        base = self._rcv_nxt
        return seq_add(base, first - window_start), seq_add(base, last - window_start)

    def _advance(self, count: int) -> None:
        self._rcv_nxt_offset += count
        self._rcv_nxt = seq_add(self._rcv_nxt, count)

    def _store_block(self, start: int, end: int, data) -> None:
        """Merge [start, end) into the block list, keeping only bytes not already held.

        The new range absorbs every block it overlaps or touches; the bytes of `data` that fall
        into the gaps between those blocks are the only ones copied in.
        """
        blocks = self._blocks
        # The first block that ends at or after `start` (touching counts: it merges).
        first = bisect_left(self._block_starts, start)
        if first > 0 and blocks[first - 1].end >= start:
            first -= 1
        last = first  # one past the last block to merge
        while last < len(blocks) and blocks[last].start <= end:
            last += 1

        self._stamp += 1
        pieces: list = []
        new_start = start
        position = start  # everything before `position` is already in `pieces`
        added = 0
        for block in blocks[first:last]:
            if block.start < new_start:
                new_start = block.start
            if position < block.start:
                pieces.append(bytes(data[position - start : block.start - start]))
                added += block.start - position
            pieces.extend(block.pieces)
            position = max(position, block.end)
        if position < end:
            pieces.append(bytes(data[position - start : end - start]))
            added += end - position
            position = end
        merged = _Block(new_start, position, pieces, self._stamp)
        blocks[first:last] = [merged]
        self._block_starts[first:last] = [new_start]
        self._out_of_order_bytes += added

    # --- the application's side ---
    def read(self, max_bytes: int) -> bytes:
        """Take up to max_bytes of in-order data; reading reopens the window."""
        in_order = self._in_order
        if max_bytes >= len(in_order):
            data = bytes(in_order)
            in_order.clear()
            return data
        if max_bytes <= 0:
            return b""
        with memoryview(in_order) as view:
            data = bytes(view[:max_bytes])
        # Deleting a prefix of a bytearray is cheap in CPython: it moves the start pointer.
        del in_order[:max_bytes]
        return data

    def peek(self, max_bytes: int) -> bytes:
        """Up to max_bytes of in-order data, left in the buffer."""
        if max_bytes <= 0:
            return b""
        with memoryview(self._in_order) as view:
            return bytes(view[:max_bytes])

    # --- SACK (RFC 2018) ---
    def sack_blocks(self, max_blocks: int = 4) -> tuple[tuple[int, int], ...]:
        """The out-of-order data as (left edge, right edge) sequence numbers, right edge exclusive.

        RFC 2018 section 4: the first block holds the most recently received segment, the others
        follow most recently updated first, so that over several ACKs the sender hears about every
        block even if only a few fit in one option. Blocks never overlap, so none is a subset of
        another.
        """
        if not self._blocks or max_blocks <= 0:
            return ()
        # Sorting the few blocks in C is faster than heapq.nlargest in Python.
        newest = sorted(self._blocks, key=_by_stamp, reverse=True)[:max_blocks]
        base_seq, base_offset = self._rcv_nxt, self._rcv_nxt_offset
        return tuple(
            (seq_add(base_seq, block.start - base_offset), seq_add(base_seq, block.end - base_offset))
            for block in newest
        )

    def __repr__(self) -> str:
        return (
            f"ReceiveBuffer(rcv_nxt={self.rcv_nxt} readable={self.readable} "
            f"out_of_order={self._out_of_order_bytes} in {len(self._blocks)} blocks "
            f"capacity={self.capacity})"
        )

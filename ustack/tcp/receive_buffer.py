"""The receive buffer: reassembly of arriving data and the queue the application reads from.

Data arrives in segments that may be duplicated, overlap each other, arrive out of order or
stretch past the window we advertised. This buffer keeps

- the in-order bytes (from the last byte the application read up to RCV.NXT), waiting for the
  application: `readable` of them, as a list of chunks (see "Copies" below);
- out-of-order pieces beyond RCV.NXT, waiting for the holes before them to be filled
  (RFC 9293 3.10.7.4: "segments with higher beginning sequence numbers SHOULD be held for later
  processing"), as sorted, non-overlapping blocks.

For SACK (RFC 2018) the buffer reports its out-of-order blocks, most recently touched first;
for D-SACK (RFC 2883) it says which part of an arriving segment it already holds
(`first_duplicate`), which the connection reports once as the first SACK block of its ACK.

The window: we accept bytes in [RCV.NXT, RCV.NXT + capacity - readable). The connection
advertises `free_space` (RFC 9293 3.8.6.2.2); out-of-order bytes lie inside that window and
therefore do not reduce it.

Only data: the buffer knows nothing of SYN or FIN, which also occupy sequence numbers. The
connection creates the buffer with rcv_nxt = IRS + 1 and handles the FIN itself (the FIN's sequence
number is the buffer's rcv_nxt once all data before it has arrived).

Copies: in-order data is kept as the chunks it arrived in and handed to the application as they
are. A payload that is bytes (the parser's slice of a packet that is bytes) is kept without a copy.
So is a read-only view of at least KEPT_AS_VIEW_FROM bytes: the payload of a super-segment the TUN
link handed over (ustack/link/vnet.py packet_from_parts), whose buffer nobody writes again; the
application's read then makes the one copy of those bytes on their way up, as bytes of its own
(joining the chunks it spans, or copying the one chunk). Keeping views costs memory, not copies: a
view keeps its packet's whole buffer (at most 64 KiB) alive, so one of at least 32 KiB holds at most
twice its length. Copying each view into bytes here, and then joining those bytes again for a read
that spans chunks, cost one copy more of every byte of an upload (issue 12); one bytearray,
appended to and then cut into bytes, cost two copies more and a move of everything held whenever it
grew. Arrivals shorter than MERGE_BELOW join a short last chunk (a bytearray) instead of adding one,
so the chunks of a buffer holding B bytes number at most about 2 * B / MERGE_BELOW, whatever a
peer's segment sizes: each costs a list slot and an object header (~60 bytes), at most ~12 % on top
of the data even for a peer sending 1-byte segments. Anything else (a shorter view, a writable one)
is copied into bytes when stored, so such a chunk keeps no more memory alive than its own length
(the first one, partly read, keeps all of itself until the rest is read).

How sequence numbers are handled: sequence numbers wrap at 2**32, so on arrival each one is
turned into a stream offset, an ordinary unbounded integer counting bytes since the buffer was
created (offset = offset of RCV.NXT + seq_diff(seq, RCV.NXT)). Offsets never wrap, so the block
bookkeeping below compares them with plain operators; converting back uses seq_add.

Bounded memory against a hostile peer (the "SegmentSmack" pattern: thousands of tiny segments,
each beyond a hole that never fills):

- Out-of-order bytes are written into one ring, at their offset modulo its size, which spans at
  least from RCV.NXT to the furthest byte held (so two held bytes never share a slot): it starts
  at 4 KiB and doubles as the data spreads, up to the window, and it is freed once nothing is
  out of order. However small the segments, the data costs at most the buffer size, with no
  object per segment.
- A block costs bookkeeping only: its start in a sorted list (found by bisect, so an arrival
  costs O(log n) comparisons, not a scan) and its end in a dict whose order is the order of
  last arrival (for the SACK blocks, RFC 2018 4: reading the newest few costs O(few), with no
  sort). That bookkeeping is charged BLOCK_COST bytes per block, our counterpart of the
  per-packet overhead Linux charges as an skb's truesize, and the number of blocks is limited so
  that it never costs more than the buffer (`max_blocks`, at least 64, at most 4096).
- When an arrival would make one block too many, the blocks furthest from RCV.NXT (the highest
  sequence numbers, the most recently sent) are pruned first, an eighth of the limit at a time so
  that pruning stays rare; an arrival that would itself be the furthest block is refused
  instead. Linux's tcp_prune_ofo_queue makes the same choices. Pruned data has been SACKed, and
  RFC 2018 8 allows a receiver to discard it ("reneging"): the sender keeps every byte until the
  cumulative ACK covers it and sends it again. Both are counted here (`pruned_blocks`,
  `refused_arrivals`); the connection reports them as the drops out_of_order_pruned and
  out_of_order_queue_full.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import islice

from ustack.tcp.seq import SEQ_HALF, SEQ_MASK, seq_add, seq_diff

NOTHING = ()  # what an empty buffer holds in order: one shared object, no list
MERGE_BELOW = 1024  # an arrival shorter than this joins a last chunk shorter than this
# A read-only view at least this long is kept as it is, not copied (the module docstring's
# "Copies"): half the largest packet, so a kept view holds at most twice its length alive.
KEPT_AS_VIEW_FROM = 32 * 1024


def _kept_as_view(data, length: int) -> bool:
    """`data` (of `length` bytes) is a chunk kept as the view it came in: a read-only view of at
    least KEPT_AS_VIEW_FROM bytes (the module docstring's "Copies"); any other view is copied."""
    return type(data) is memoryview and length >= KEPT_AS_VIEW_FROM and data.readonly

# What one out-of-order block costs beyond its data: a start in a list and an entry in a dict,
# with their int objects (100 to 180 bytes in CPython, measured with tracemalloc by
# scripts/bench_ooo.py), rounded up like Linux's truesize rounds up an skb.
BLOCK_COST = 256
MIN_BLOCKS = 64  # even a tiny buffer reassembles this many holes' worth
MAX_BLOCKS = 4096  # and a huge one keeps the sorted list short (each insertion moves it in memory)
RING_START = 4096  # bytes; the ring doubles from there as the out-of-order data spreads


def max_blocks_for(capacity: int) -> int:
    """The default limit on out-of-order blocks: as many as the buffer size pays for at
    BLOCK_COST each, clamped to [MIN_BLOCKS, MAX_BLOCKS]."""
    return min(MAX_BLOCKS, max(MIN_BLOCKS, capacity // BLOCK_COST))


class ReceiveBuffer:
    # Slots, not a __dict__: every connection that has received data holds one, TIME-WAIT ones
    # included (scripts/bench_lifecycles.py, bench_memory.py).
    __slots__ = (
        "capacity", "_fixed_max_blocks", "max_blocks", "refused_arrivals", "pruned_blocks", "pruned_bytes",
        "_rcv_nxt", "_in_order", "readable", "_rcv_nxt_offset", "_starts", "_ends", "_ring", "_out_of_order_bytes",
    )  # fmt: skip

    def __init__(self, capacity: int, rcv_nxt: int, *, max_blocks: int | None = None):
        if capacity < 0:
            raise ValueError(f"capacity cannot be negative: {capacity}")
        if max_blocks is not None and max_blocks < 1:
            raise ValueError(f"max_blocks must be at least 1: {max_blocks}")
        self.capacity = capacity
        self._fixed_max_blocks = max_blocks
        self.max_blocks = max_blocks or max_blocks_for(capacity)
        # What the limit cost (plain ints: the connection turns them into named drops).
        self.refused_arrivals = 0  # arrivals that would have been one block too many, furthest
        self.pruned_blocks = 0  # blocks discarded from the far end to make room
        self.pruned_bytes = 0  # the out-of-order bytes they held
        self._rcv_nxt = rcv_nxt & SEQ_MASK
        # Bytes before RCV.NXT the application has not read: a list of chunks (bytes, a view of
        # the rest of a chunk partly read, or a short bytearray that short arrivals join) while
        # there are some, else the shared empty tuple (an idle connection keeps no list).
        self._in_order: list | tuple = NOTHING
        # Their total length: `readable`, the in-order bytes waiting for the application. A plain
        # attribute, not a property (asked on every arrival, read and close: a call fewer each),
        # read-only outside this class: insert and the reads move it.
        self.readable = 0
        self._rcv_nxt_offset = 0  # stream offset of RCV.NXT (see the module docstring)
        # Out-of-order data: the blocks' starts, sorted, never touching; their ends by start, in the
        # order the blocks last received data (oldest first); the bytes, in the ring. The list and
        # the dict are made by the first block and dropped with the last (most connections never
        # hold data out of order): until then an empty tuple and None.
        self._starts: list[int] | tuple = ()
        self._ends: dict[int, int] | None = None
        self._ring: bytearray | None = None
        self._out_of_order_bytes = 0

    # --- what the connection and the application see ---
    @property
    def rcv_nxt(self) -> int:
        """RCV.NXT counting data only (read-only: it moves when in-order data arrives)."""
        return self._rcv_nxt

    @property
    def free_space(self) -> int:
        """The window to advertise: capacity minus what waits for the application."""
        return max(0, self.capacity - self.readable)

    @property
    def has_out_of_order(self) -> bool:
        return bool(self._starts)

    @property
    def out_of_order_bytes(self) -> int:
        return self._out_of_order_bytes

    @property
    def out_of_order_blocks(self) -> int:
        return len(self._starts)

    def set_capacity(self, capacity: int) -> None:
        """Change the buffer size. Shrinking below what is held keeps the data (free_space is 0
        until it is read); out-of-order data beyond the new window edge is kept too, since we may
        already have advertised that window (RFC 9293 3.8.6.2.2 discourages shrinking it)."""
        if capacity < 0:
            raise ValueError(f"capacity cannot be negative: {capacity}")
        self.capacity = capacity
        self.max_blocks = self._fixed_max_blocks or max_blocks_for(capacity)

    # --- arriving data ---
    def insert(self, seq: int, data: bytes) -> int:
        """Store the part of `data` (starting at sequence number `seq`) that lies inside the
        window and is new; return by how much RCV.NXT advanced (0 if the data was out of order,
        a duplicate or outside the window)."""
        length = len(data)
        if length == 0:
            return 0
        window_start = self._rcv_nxt_offset
        window_end = window_start + self.capacity - self.readable
        # seq_diff(seq, RCV.NXT), inline (seq.py): once per data segment.
        start = window_start + ((seq - self._rcv_nxt + SEQ_HALF) & SEQ_MASK) - SEQ_HALF
        end = start + length

        # The common case of a bulk transfer: the next in-order segment, nothing out of order.
        if start == window_start and not self._starts:
            if end > window_end:
                # RFC 9293 3.10.7.4: trim what lies beyond the window's right edge.
                end = window_end
                if end <= start:
                    return 0
                data = memoryview(data)[: end - start]
                length = end - start
            in_order = self._in_order
            # Kept as it came, no copy (the module docstring's "Copies"): bytes that need no merge
            # with a short last chunk, or a received super-segment's payload (as _append_in_order
            # would keep either, without its call).
            if type(data) is bytes:
                kept = length >= MERGE_BELOW or in_order is NOTHING
            else:
                kept = _kept_as_view(data, length)
            if kept:
                if in_order is NOTHING:
                    self._in_order = [data]
                else:
                    in_order.append(data)
                self.readable += length
            else:
                self._append_in_order(data)
            # _advance, in line: once per in-order data segment.
            advanced = end - start
            self._rcv_nxt_offset += advanced
            self._rcv_nxt = (self._rcv_nxt + advanced) & SEQ_MASK  # seq_add, inline (seq.py)
            return advanced

        # Trim to the window (RFC 9293 3.10.7.4): bytes before RCV.NXT are duplicates of what we
        # hold, bytes past the right edge we have no room for.
        skip_front = max(0, window_start - start)
        start = max(start, window_start)
        end = min(end, window_end)
        if end <= start:
            return 0
        if skip_front or end - start != length:
            data = memoryview(data)[skip_front : skip_front + end - start]

        starts = self._starts
        if start == window_start and (not starts or end < starts[0]):
            # In order and not reaching the first out-of-order block: append directly.
            self._append_in_order(data)
            self._advance(end - start)
            return end - start

        if not self._store_block(start, end, data):
            return 0
        starts = self._starts  # made by the first block
        first = starts[0]
        if first != window_start:
            return 0
        # The hole at RCV.NXT is filled: the first block becomes in-order data.
        last = self._ends.pop(first)
        del starts[0]
        self._append_in_order(self._slice(self._ring, first, last))
        advanced = last - first
        self._out_of_order_bytes -= advanced
        if not starts:
            # Nothing out of order: give the memory back (a dict keeps its size after deletions).
            self._ring = None
            self._starts = ()
            self._ends = None
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
            starts = self._starts
            # The last block starting at or before the segment, else the first one after it.
            index = bisect_right(starts, start) - 1
            if index < 0 or self._ends[starts[index]] <= start:
                index += 1
            if index == len(starts) or starts[index] >= end:
                return None
            block_start = starts[index]
            first, last = max(start, block_start), min(end, self._ends[block_start])
        if last <= first:
            return None
        base = self._rcv_nxt
        return seq_add(base, first - window_start), seq_add(base, last - window_start)

    def _append_in_order(self, data) -> None:
        """Add data to the in-order chunks: as a chunk of its own (bytes, or a long read-only view;
        anything else copied into bytes), or joined to a short last chunk if it is short too."""
        in_order = self._in_order
        length = len(data)
        self.readable += length
        if in_order is not NOTHING and length < MERGE_BELOW and len(in_order[-1]) < MERGE_BELOW:
            last = in_order[-1]
            if type(last) is not bytearray:
                last = in_order[-1] = bytearray(last)
            last += data
            return
        if type(data) is not bytes and not _kept_as_view(data, length):
            data = bytes(data)
        if in_order is NOTHING:
            self._in_order = [data]
        else:
            in_order.append(data)

    def _advance(self, count: int) -> None:
        # (Written in line in insert's common case, the next in-order segment.)
        self._rcv_nxt_offset += count
        self._rcv_nxt = (self._rcv_nxt + count) & SEQ_MASK  # seq_add, inline (seq.py)

    def _store_block(self, start: int, end: int, data) -> bool:
        """Merge [start, end) into the blocks, writing only the bytes not already held (the data
        held first wins). False if the arrival was refused because the blocks are at their limit.

        The new range absorbs every block it overlaps or touches: those from index `first` up to
        (not including) `last` of the sorted starts, found by bisection.
        """
        starts, ends = self._starts, self._ends
        if ends is None:  # the first block: its bookkeeping is made now
            starts, ends = self._starts, self._ends = [], {}
        first = bisect_left(starts, start)
        if first > 0 and ends[starts[first - 1]] >= start:
            first -= 1  # the block before ends at or after `start` (touching counts: it merges)
        last = bisect_right(starts, end, first)
        if first == last and len(starts) >= self.max_blocks:
            # One block too many. Linux's rule: refuse an arrival that would be the furthest
            # block; otherwise make room by pruning from the far end.
            if first == len(starts):
                self.refused_arrivals += 1
                return False
            self._prune_from_the_far_end(first)
        self._make_room(end)  # the blocks it may merge with fit already

        position = start  # everything before `position` is held or written
        added = 0
        new_start, new_end = start, end
        if first < last:
            data = memoryview(data)  # slices of it below copy nothing
            new_start = min(start, starts[first])
            for block_start in starts[first:last]:
                block_end = ends.pop(block_start)
                if position < block_start:
                    self._write(position, data[position - start : block_start - start])
                    added += block_start - position
                position = max(position, block_end)
            new_end = max(end, position)
        if position < end:
            self._write(position, data[position - start :] if position > start else data)
            added += end - position
        starts[first:last] = [new_start]
        ends[new_start] = new_end  # inserted last: the most recently touched block
        self._out_of_order_bytes += added
        return True

    def _prune_from_the_far_end(self, keep: int) -> None:
        """Discard the highest blocks, never those before index `keep`: an eighth of the limit
        at once (at least one, and enough to get under a limit just lowered by set_capacity), so
        that a peer that keeps pushing pays for pruning rarely."""
        starts, ends = self._starts, self._ends
        count = min(len(starts) - keep, max(1, self.max_blocks // 8, len(starts) - self.max_blocks + 1))
        pruned = 0
        for block_start in starts[-count:]:
            pruned += ends.pop(block_start) - block_start
        del starts[-count:]
        self._out_of_order_bytes -= pruned
        self.pruned_bytes += pruned
        self.pruned_blocks += count

    def _make_room(self, end: int) -> None:
        """Make the ring large enough for out-of-order bytes up to offset `end`: it must span
        everything from RCV.NXT to the furthest byte held, so that no two share a slot. It starts
        small and doubles, up to the window, so a connection with one small hole holds little."""
        needed = end - self._rcv_nxt_offset
        ring = self._ring
        if ring is not None and needed <= len(ring):
            return
        size = len(ring) if ring is not None else RING_START
        while size < needed:
            size *= 2
        # Never beyond the window (which bounds `needed`, except for data kept after a shrink).
        self._ring = bytearray(max(min(size, self.capacity), needed))
        if ring is not None:  # the blocks move to their places modulo the new size
            for start, block_end in self._ends.items():
                self._write(start, self._slice(ring, start, block_end))

    def _write(self, offset: int, data) -> None:
        """Copy data into the ring at `offset` (modulo its size, wrapping around its end)."""
        ring = self._ring
        size = len(ring)
        position = offset % size
        room = size - position
        if len(data) <= room:
            ring[position : position + len(data)] = data
        else:
            ring[position:] = data[:room]
            ring[: len(data) - room] = data[room:]

    @staticmethod
    def _slice(ring: bytearray, start: int, end: int) -> bytes:
        """The bytes [start, end) of the stream, from the ring."""
        size = len(ring)
        position = start % size
        length = end - start
        with memoryview(ring) as view:
            if position + length <= size:
                return bytes(view[position : position + length])
            return bytes(view[position:]) + bytes(view[: position + length - size])

    # --- the application's side ---
    def read(self, max_bytes: int) -> bytes:
        """Take up to max_bytes of in-order data; reading reopens the window. A read that a whole
        chunk answers returns that chunk itself (no copy); otherwise one copy joins the pieces."""
        pieces = self.read_chunks(max_bytes)
        if len(pieces) == 1:
            piece = pieces[0]
            return piece if type(piece) is bytes else bytes(piece)
        return b"".join(pieces)

    def read_chunks(self, max_bytes: int) -> list:
        """Take up to max_bytes of in-order data as the chunks it is held in, none copied: bytes,
        read-only views (of a received packet, or of the rest of a chunk partly read), or a short
        bytearray that short arrivals joined. An application that can take them as they are (a
        parser that appends them to a buffer of its own) saves read()'s copy (issue 12). Each is
        the caller's alone: nothing here writes to it again."""
        chunks = self._in_order
        if max_bytes <= 0 or chunks is NOTHING:
            return []
        first = chunks[0]
        taken = len(first)
        if taken >= max_bytes or len(chunks) == 1:
            # The first chunk answers the read: all of it, or its front (the common cases).
            if taken <= max_bytes:
                del chunks[0]
                pieces = [first]
            else:
                view = memoryview(first)
                pieces = [view[:max_bytes]]
                chunks[0] = view[max_bytes:]  # the rest, without a copy
                taken = max_bytes
        else:
            # Whole chunks while they fit, then the front of the next one.
            count = taken = 0
            for chunk in chunks:
                if taken + len(chunk) > max_bytes:
                    break
                taken += len(chunk)
                count += 1
            pieces = chunks[:count]
            del chunks[:count]
            if chunks and taken < max_bytes:
                view = memoryview(chunks[0])
                pieces.append(view[: max_bytes - taken])
                chunks[0] = view[max_bytes - taken :]
                taken = max_bytes
        if not chunks:
            self._in_order = NOTHING  # everything read: no list kept
        self.readable -= taken  # the bytes in `pieces`, counted on the way
        return pieces

    def peek(self, max_bytes: int) -> bytes:
        """Up to max_bytes of in-order data, left in the buffer."""
        if max_bytes <= 0:
            return b""
        pieces = []
        taken = 0
        for chunk in self._in_order:
            if taken >= max_bytes:
                break
            pieces.append(chunk[: max_bytes - taken])
            taken += len(pieces[-1])
        return b"".join(pieces)

    # --- SACK (RFC 2018) ---
    def sack_blocks(self, max_blocks: int = 4) -> tuple[tuple[int, int], ...]:
        """The out-of-order data as (left edge, right edge) sequence numbers, right edge exclusive.

        RFC 2018 section 4: the first block holds the most recently received segment, the others
        follow most recently updated first, so that over several ACKs the sender hears about every
        block even if only a few fit in one option. Blocks never overlap, so none is a subset of
        another. The dict of ends is kept in that order, so this reads the newest few from its
        end: the cost does not grow with the number of blocks held.
        """
        if not self._starts or max_blocks <= 0:
            return ()
        # seq_add inlined: this runs for every ACK sent while data is out of order.
        shift = self._rcv_nxt - self._rcv_nxt_offset
        blocks = []
        for start, end in islice(reversed(self._ends.items()), max_blocks):
            blocks.append(((start + shift) & SEQ_MASK, (end + shift) & SEQ_MASK))
        return tuple(blocks)

    def __repr__(self) -> str:
        return (
            f"ReceiveBuffer(rcv_nxt={self.rcv_nxt} readable={self.readable} "
            f"out_of_order={self._out_of_order_bytes} in {len(self._starts)} blocks "
            f"capacity={self.capacity})"
        )

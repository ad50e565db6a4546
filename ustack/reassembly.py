"""Fragment reassembly: datagrams put back together from their fragments, with bounded memory.

Two parts, so that IPv6 can reuse the first (DESIGN.md rule 12):

- `Reassembler`, the bookkeeping, which knows nothing of IP headers: a datagram is a key, its
  fragments are (offset, bytes, more-to-come) triples, and the limits are a timeout, a memory
  ceiling over all incomplete datagrams and a number of fragments per datagram.
- `Ipv4Reassembly`, the IPv4 front: the key (RFC 791 3.2: source, destination, protocol,
  identification), the TCP tiny-fragment rules (RFC 1858), and the finished datagram rebuilt and
  parsed again, so that it goes on through the stack's normal path as if it had come in one piece.
- `Ipv6Reassembly`, the IPv6 front (RFC 8200 4.5): the key (source, destination, identification),
  a first fragment that must hold the upper-layer header (RFC 7112), the same limits and the same
  rebuild-and-parse. Its drops and counters are named "reassembly6_..." where IPv4's are
  "reassembly_...". Atomic fragments (offset 0, M clear) never come here (RFC 6946).

The rules, and why:

- Fragments of one datagram are held as disjoint byte ranges sorted by offset (RFC 815's holes
  are the gaps between them). The datagram is complete when the last fragment (more=False) has
  said how long it is and the ranges cover it.
- Overlap discards the whole datagram, including the fragments still to come (RFC 5722 section
  3, written for IPv6 and applied here to IPv4 as well): overlapping fragments are how an attacker
  rewrites a TCP header a filter has already checked (RFC 1858 section 4), and no honest sender
  produces them. An exact duplicate (same offset, same bytes) is only a duplicate: the network can
  copy a packet, so it is dropped alone (RFC 8200 section 4.5 allows this exception).
- A datagram whose fragments disagree about its length, or that would end past the largest
  datagram, is discarded the same way (the "ping of death" is a datagram that ends past 65,535).
- Each datagram lives `timeout` seconds from its first fragment, like Linux's
  net.ipv4.ipfrag_time (30 s); RFC 791 3.2 and RFC 1122 3.3.2 ask for a bounded reassembly time.
  The timer is not restarted by later fragments, so a trickle cannot hold memory forever.
- All incomplete datagrams together hold at most `memory_limit` bytes (Linux's
  net.ipv4.ipfrag_high_thresh, 4 MB), counting each fragment's bytes plus an estimate of what
  Python spends holding it. When a fragment does not fit, the OLDEST incomplete datagrams are
  evicted to make room (what Linux did before 4.17). Linux now drops the new fragment instead;
  but then a flood of never-finished datagrams shuts every honest one out for the whole timeout,
  while evicting the oldest leaves an honest datagram its chance whenever its fragments arrive
  closer together than the flood fills the ceiling.
- A datagram may have at most `max_fragments` fragments (a 65,535-byte datagram over a 576-byte
  path needs 119): a sender cutting a datagram into thousands of 8-byte pieces only costs us.

Every fragment that is not kept is counted in `drops` under a named reason (DESIGN.md rule 8);
`counters` count fragments received and datagrams completed. Sans-IO: `now` comes in as an
argument; `next_deadline()` / `on_timer(now)` let the stack's timer machinery expire datagrams,
and each arrival also expires those due, so the bounds hold even if no timer ever fires.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from typing import Any, Hashable

from .wire import Packet, WireError, build_ipv4_packet, build_ipv6_packet, parse_packet
from .wire.fragment import FRAGMENT_UNIT
from .wire.ipv4 import IPV4_HEADER_LENGTH, PROTOCOL_TCP, Ipv4Header
from .wire.ipv6 import LARGEST_PAYLOAD, PROTOCOL_ICMPV6, Ipv6Header

# What Python spends to hold one fragment beside its bytes (the bytes object's header, the tuple,
# an int and the list slots that index it), and one datagram's bookkeeping (its record, its key,
# the header kept for it, its dict entry): counted against the memory ceiling, like the truesize
# Linux charges for each buffer, so tiny fragments cannot hold many times their share. Measured
# with tracemalloc by scripts/bench_reassembly.py.
FRAGMENT_OVERHEAD = 200
DATAGRAM_OVERHEAD = 650

# RFC 1858 3.2: the first fragment of a TCP datagram must carry the TCP header up to and
# including the flags; we ask for the whole fixed header (20 bytes), which every honest sender
# puts in its first fragment (an MTU is at least 68 bytes: RFC 791 3.2).
TCP_MINIMUM_FIRST_FRAGMENT = 20


@dataclass(frozen=True)
class ReassemblyLimits:
    timeout: float = 30.0  # seconds from the first fragment (Linux: net.ipv4.ipfrag_time)
    memory_limit: int = 4 * 1024 * 1024  # bytes over all incomplete datagrams (ipfrag_high_thresh)
    max_fragments: int = 128  # per datagram

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.memory_limit <= 0 or self.max_fragments < 1:
            raise ValueError("reassembly limits must be positive")


class _Datagram:
    """One datagram being put together."""

    __slots__ = ("expires", "starts", "pieces", "received", "length", "empty_last", "head", "memory", "discarded")

    def __init__(self, expires: float) -> None:
        self.expires = expires
        self.starts: list[int] = []  # the offset of each piece, sorted (for bisect)
        self.pieces: list[tuple[int, int, bytes]] = []  # (start, end, data), in the same order
        self.received = 0  # bytes held: the datagram is complete when this reaches `length`
        self.length: int | None = None  # known once the last fragment arrived
        self.empty_last = False  # the last fragment came with no data: it only set `length`
        self.head: Any = None  # what the caller gave with the fragment at offset 0
        self.memory = DATAGRAM_OVERHEAD
        # After an overlap or a length conflict the datagram is refused for the rest of its
        # lifetime (RFC 5722 3: "including those not yet received"): it keeps its key and
        # deadline but no data.
        self.discarded = False

    @property
    def fragments_held(self) -> int:
        return len(self.pieces) + self.empty_last


class _Names(dict):
    """"overlap" -> "<name>_overlap", made once per name and remembered."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def __missing__(self, what: str) -> str:
        value = self[what] = f"{self.name}_{what}"
        return value


class Reassembler:
    """Fragments in, whole datagrams out; knows nothing of the headers that carried them.

        reassembler.add(key, offset, data, more, now, head=...) -> (head, payload) | None

    `head` is whatever the caller wants back with the finished datagram; it is kept from the
    fragment at offset 0 (RFC 791 3.2: the reassembled datagram takes the first fragment's header).
    """

    def __init__(
        self,
        max_length: int,
        limits: ReassemblyLimits | None = None,
        *,
        drops: Counter[str] | None = None,
        counters: Counter[str] | None = None,
        name: str = "reassembly",
    ) -> None:
        self.max_length = max_length  # the largest payload a datagram may have
        self.limits = limits or ReassemblyLimits()
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self.counters: Counter[str] = counters if counters is not None else Counter()
        # Insertion order is the order of first fragments, hence of deadlines (a fixed timeout
        # from the first fragment): the first entry is always the next to expire and the oldest
        # to evict, with no heap.
        self._datagrams: dict[Hashable, _Datagram] = {}
        self.memory_used = 0
        # Every drop and counter is named "<name>_<what>": "reassembly_overlap" for IPv4,
        # "reassembly6_overlap" for IPv6, so `ustack stats` tells the families apart.
        self._reason = _Names(name)

    # ------------------------------------------------------------------------------------------
    def add(self, key: Hashable, offset: int, data: bytes, more: bool, now: float, head: Any = None):
        """Take one fragment; returns (head, payload) when it completes its datagram, else None."""
        self.on_timer(now)
        self.counters[self._reason["fragments_received"]] += 1
        end = offset + len(data)
        if more and (len(data) == 0 or len(data) % FRAGMENT_UNIT):
            # RFC 791 3.2: the next fragment's offset is this one's end, in 8-byte units.
            self.drops[self._reason["bad_fragment_length"]] += 1
            return None
        datagram = self._datagrams.get(key)
        if datagram is not None and datagram.discarded:
            self.drops[self._reason["datagram_discarded"]] += 1
            return None
        if datagram is None:
            if not self._make_room(DATAGRAM_OVERHEAD, keep=None):
                self.drops[self._reason["memory_limit"]] += 1
                return None
            datagram = _Datagram(now + self.limits.timeout)
            self._datagrams[key] = datagram
            self.memory_used += datagram.memory
        if end > self.max_length:
            return self._discard(datagram, self._reason["too_long"])
        if not more:
            if datagram.length is not None and datagram.length != end:
                return self._discard(datagram, self._reason["length_conflict"])
            if datagram.pieces and datagram.pieces[-1][1] > end:
                return self._discard(datagram, self._reason["length_conflict"])
            datagram.length = end
        elif datagram.length is not None and end > datagram.length:
            return self._discard(datagram, self._reason["length_conflict"])

        index = bisect_right(datagram.starts, offset)
        if index and datagram.pieces[index - 1][1] > offset:
            start_before, end_before, data_before = datagram.pieces[index - 1]
            if start_before == offset and end_before == end and data_before == data:
                self.drops[self._reason["duplicate_fragment"]] += 1
                return None
            return self._discard(datagram, self._reason["overlap"])
        if index < len(datagram.pieces) and datagram.pieces[index][0] < end:
            return self._discard(datagram, self._reason["overlap"])
        if not data:
            # An empty last fragment only says where the datagram ends: nothing to store.
            if datagram.empty_last:
                self.drops[self._reason["duplicate_fragment"]] += 1
                return None
            datagram.empty_last = True
        elif len(datagram.pieces) >= self.limits.max_fragments:
            return self._discard(datagram, self._reason["too_many_fragments"])
        else:
            cost = len(data) + FRAGMENT_OVERHEAD
            if not self._make_room(cost, keep=key):
                self.drops[self._reason["memory_limit"]] += 1
                return None
            datagram.starts.insert(index, offset)
            datagram.pieces.insert(index, (offset, end, bytes(data)))
            datagram.received += len(data)
            datagram.memory += cost
            self.memory_used += cost
        if offset == 0:
            datagram.head = head
        if datagram.length is None or datagram.received != datagram.length:
            return None
        # Complete: the pieces are disjoint and cover 0..length, so joined in order they are it.
        del self._datagrams[key]
        self.memory_used -= datagram.memory
        self.counters[self._reason["datagrams_completed"]] += 1
        return datagram.head, b"".join(piece for _, _, piece in datagram.pieces)

    def refuse(self, reason: str) -> None:
        """Count a fragment the caller rejected on sight (by rules of its own protocol)."""
        self.counters[self._reason["fragments_received"]] += 1
        self.drops[reason] += 1

    # ------------------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        for datagram in self._datagrams.values():
            return datagram.expires
        return None

    def on_timer(self, now: float) -> None:
        """Forget every datagram whose time is up, counting the fragments it still held."""
        datagrams = self._datagrams
        while datagrams:
            key = next(iter(datagrams))
            datagram = datagrams[key]
            if datagram.expires > now:
                break
            self._forget(key, datagram)
            if not datagram.discarded:
                self.drops[self._reason["timeout"]] += datagram.fragments_held
                self.counters[self._reason["datagrams_timed_out"]] += 1

    @property
    def pending(self) -> int:
        """How many datagrams are incomplete (or discarded and still refused)."""
        return len(self._datagrams)

    def statistics(self) -> dict[str, float | int]:
        return {"pending_datagrams": self.pending, "memory_used": self.memory_used,
                "memory_limit": self.limits.memory_limit, "timeout": self.limits.timeout,
                "max_fragments": self.limits.max_fragments}

    # ------------------------------------------------------------------------------------------
    def _discard(self, datagram: _Datagram, reason: str) -> None:
        """Drop what the datagram held and this fragment; refuse the rest until it expires."""
        self.drops[reason] += datagram.fragments_held + 1
        self.counters[self._reason["datagrams_discarded"]] += 1
        self.memory_used -= datagram.memory - DATAGRAM_OVERHEAD
        datagram.memory = DATAGRAM_OVERHEAD
        datagram.starts, datagram.pieces, datagram.head, datagram.received = [], [], None, 0
        datagram.empty_last = False
        datagram.discarded = True
        return None

    def _forget(self, key: Hashable, datagram: _Datagram) -> None:
        del self._datagrams[key]
        self.memory_used -= datagram.memory

    def _make_room(self, cost: int, keep: Hashable) -> bool:
        """Evict the oldest datagrams (never `keep`) until `cost` more bytes fit the ceiling."""
        excess = self.memory_used + cost - self.limits.memory_limit
        if excess <= 0:
            return True
        victims = []
        for key, datagram in self._datagrams.items():  # oldest first; only as far as needed
            if key != keep:
                victims.append((key, datagram))
                excess -= datagram.memory
                if excess <= 0:
                    break
        if excess > 0:
            return False  # even evicting every other datagram would not make room
        for key, datagram in victims:
            self._forget(key, datagram)
            if not datagram.discarded:
                self.drops[self._reason["memory_limit"]] += datagram.fragments_held
                self.counters[self._reason["datagrams_evicted"]] += 1
        return True


# The largest IPv4 payload: the total length field is 16 bits, and the datagram we rebuild has a
# 20-byte header.
IPV4_MAX_PAYLOAD = 65535 - IPV4_HEADER_LENGTH


class _ReassemblyFront:
    """What both fronts pass straight to their Reassembler: its timer and its figures."""

    reassembler: Reassembler

    def next_deadline(self) -> float | None:
        return self.reassembler.next_deadline()

    def on_timer(self, now: float) -> None:
        self.reassembler.on_timer(now)

    def statistics(self) -> dict[str, float | int]:
        return self.reassembler.statistics()


class Ipv4Reassembly(_ReassemblyFront):
    """The IPv4 side: fragments as parsed packets in, the whole datagram as a parsed packet out."""

    def __init__(
        self, limits: ReassemblyLimits | None = None, *, drops: Counter[str] | None = None,
        counters: Counter[str] | None = None,
    ) -> None:
        self.reassembler = Reassembler(IPV4_MAX_PAYLOAD, limits, drops=drops, counters=counters)
        self.drops = self.reassembler.drops

    def receive(self, fragment: Packet, now: float) -> Packet | None:
        """Take one fragment (a Packet whose header says it is one); returns the whole datagram,
        parsed, when this fragment completes it."""
        ip = fragment.ip
        if ip.protocol == PROTOCOL_TCP:
            # RFC 1858 3.2: a first fragment too short to hold the TCP flags, or a fragment at
            # offset 8 (which could only rewrite the header the first one carried), is an attack.
            if ip.fragment_offset == 0 and len(fragment.payload) < TCP_MINIMUM_FIRST_FRAGMENT:
                self.reassembler.refuse("reassembly_tiny_tcp_first_fragment")
                return None
            if ip.fragment_offset == FRAGMENT_UNIT:
                self.reassembler.refuse("reassembly_tcp_header_overwrite")
                return None
        key = (ip.src, ip.dst, ip.protocol, ip.identification)
        done = self.reassembler.add(key, ip.fragment_offset, fragment.payload, ip.more_fragments, now, head=ip)
        if done is None:
            return None
        head, payload = done
        whole: Ipv4Header = head._replace(more_fragments=False, fragment_offset=0)
        try:
            # Parsed again as one packet: the TCP or ICMP checksum covers the whole datagram.
            return parse_packet(build_ipv4_packet(whole, payload))
        except WireError as error:
            self.drops[error.reason] += 1
            return None


# The largest IPv6 payload without a jumbogram (RFC 8200 3: Payload Length is 16 bits, wire/ipv6.py);
# the packet we rebuild has only the fixed header, so the reassembled data may be that long.
IPV6_MAX_PAYLOAD = LARGEST_PAYLOAD

# RFC 7112 / RFC 8200 4.5: the first fragment carries the whole header chain up to and including
# the upper-layer header; how long that header is at least, for the protocols we take.
UPPER_LAYER_HEADER_LENGTH = {PROTOCOL_TCP: TCP_MINIMUM_FIRST_FRAGMENT, PROTOCOL_ICMPV6: 8}


class Ipv6Reassembly(_ReassemblyFront):
    """The IPv6 side: fragments as parsed packets in, the whole packet as a parsed packet out."""

    def __init__(
        self, limits: ReassemblyLimits | None = None, *, drops: Counter[str] | None = None,
        counters: Counter[str] | None = None,
    ) -> None:
        self.reassembler = Reassembler(IPV6_MAX_PAYLOAD, limits, drops=drops, counters=counters, name="reassembly6")
        self.drops = self.reassembler.drops

    def receive(self, fragment: Packet, now: float) -> Packet | None:
        """Take one fragment (a Packet whose Ipv6Header says it is one); returns the whole packet,
        parsed, when this fragment completes it."""
        ip = fragment.ip
        if ip.fragment_offset == 0 and len(fragment.payload) < UPPER_LAYER_HEADER_LENGTH.get(ip.protocol, 0):
            # RFC 7112 5: a first fragment without the upper-layer header cannot be checked by a
            # filter and no honest sender makes it; drop it (a TCP header overwritten later would
            # also be an overlap, RFC 5722).
            self.reassembler.refuse("reassembly6_first_fragment_without_upper_header")
            return None
        # RFC 8200 4.5: fragments of one packet share source, destination and identification.
        key = (ip.src, ip.dst, ip.identification)
        done = self.reassembler.add(key, ip.fragment_offset, fragment.payload, ip.more_fragments, now, head=ip)
        if done is None:
            return None
        head, payload = done
        # The unfragmentable part is the first fragment's fixed header; the extension headers
        # before its fragment header were for the hops on the way (hop-by-hop, routing) and were
        # already walked. The Next Header is the one the fragment header named.
        whole = Ipv6Header(head.src, head.dst, head.protocol, head.hop_limit, flow_label=head.flow_label,
                           traffic_class=head.traffic_class)
        try:
            # Parsed again as one packet: the TCP or ICMPv6 checksum covers the whole of it.
            return parse_packet(build_ipv6_packet(whole, payload))
        except WireError as error:
            self.drops[error.reason] += 1
            return None

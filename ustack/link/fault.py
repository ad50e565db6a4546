"""FaultInjector: a middleware that breaks a link on purpose, reproducibly.

    link = FaultInjector(
        TunLink("ustun0"),
        seed=7,
        inbound=Faults(drop=0.01),                           # received from the wrapped link
        outbound=Faults(delay=0.050, jitter=0.010, duplicate=0.02),   # sent to it
    )
    link.drop_when(nth(tcp_with_data(), 3))      # scripted: "lose the 3rd data segment"
                                                 # (predicates in ustack.link.predicates)
    link.on_drop = lambda now, packet, direction, reason: ...   # told of every packet dropped

Each direction has its own random generator derived from the seed, so traffic in one direction
never changes the decisions taken in the other, and the same seed with the same packets gives the
same decisions on every run (tests print the seed when they fail).

What happens to one packet, in this order (each decision is counted in `counters`):
1. scripted drops (drop_when): the first matching rule with count left drops it;
2. rate limit: a token bucket of bytes per second; no tokens -> dropped ("rate_limited");
3. drop with probability `drop`;
4. mark CE with probability `ce`, on ECN-capable packets only (ECT(0) or ECT(1) in the ECN field
   of the IPv4 TOS byte or the IPv6 traffic class, RFC 3168 5): what a router with an AQM does
   instead of dropping (RFC 3168 5, 6.1.3), so that ECN can be tested and shown. The IPv4 header
   checksum is updated (RFC 1624);
5. corrupt with probability `corrupt`: one random bit is flipped, by default after the IPv4
   header, so the receiver's TCP/ICMP checksum rejects it (a single flipped bit always changes an
   Internet checksum, RFC 1071). corrupt_header=True flips anywhere, header included;
6. duplicate with probability `duplicate`: the copy follows the original;
7. delay: held until now + delay + uniform(0, jitter); with jitter, packets can overtake each
   other, as through Linux netem;
8. reorder with probability `reorder` (packets not delayed by 6): held back until the next packet
   in the same direction has gone past, or until `reorder_timeout` has passed if none comes.

Whoever must know exactly which packets were lost (the live ladder of `ustack serve --ladder`)
sets `on_drop`: it is called as on_drop(now, packet, direction, reason) for every dropped packet,
at the moment of the decision, with direction "inbound" or "outbound" and reason "scripted",
"rate_limited" or "random". It draws no random numbers, so it changes no decision.

A received super-segment whose TCP checksum the TUN link left partial (ustack/link/vnet.py
packet_from_parts), or a large segment the stack built partial and in parts (SegmentParts),
gets its checksum completed (vnet.complete_checksum, in its buffer; the parts joined into one
first) before anything here looks at its bytes as a wire's: a scripted rule's predicate, a drop
(on_drop and the rule's `dropped` list get the packet a wire would have carried, in one piece),
CE marking and corruption, which both copy it. A packet that goes on goes as it came (parts stay
parts: the TUN link writes them without joining). So a corrupted copy is an ordinary packet with a wrong checksum that the
parser sums and drops ("tcp_bad_checksum"): it never carries the link's mark that the checksum
is known. A duplicate, a delayed or a reordered packet is the same object again, mark and all.

Held packets come out through the timer: next_deadline() says when; the runtime then calls
on_timer(now) (releases outbound packets to the wrapped link) and receive_batch(now) (returns the
inbound packets that are due).
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass
from typing import Callable

from ..wire import checksum_update
from ..wire.ipv4 import CE, ECT_0, ECT_1  # the ECN field's code points (RFC 3168 5)
from .base import Link, Middleware, earliest
from .vnet import complete_checksum

IPV4_MINIMUM_HEADER = 20

# on_drop(now, packet, direction, reason): direction "inbound"/"outbound", reason as counted.
DropHook = Callable[[float, bytes, str, str], None]


@dataclass(frozen=True)
class Faults:
    """What to do to the packets of one direction. Probabilities are 0..1, times in seconds."""

    drop: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0
    corrupt_header: bool = False
    ce: float = 0.0  # mark Congestion Experienced on this fraction of the ECN-capable packets
    reorder: float = 0.0
    reorder_timeout: float = 0.010
    delay: float = 0.0
    jitter: float = 0.0
    rate_bytes_per_second: float | None = None
    burst_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        for name in ("drop", "duplicate", "corrupt", "reorder", "ce"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} probability {value} is outside 0..1")
        for name in ("delay", "jitter", "reorder_timeout"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} cannot be negative")

    @property
    def holds_packets(self) -> bool:
        return self.delay > 0 or self.jitter > 0 or self.reorder > 0


NO_FAULTS = Faults()


class ScriptedDrop:
    """A rule made by drop_when(): drops the next `count` packets for which predicate is true."""

    def __init__(self, predicate: Callable[[bytes], bool], count: int, direction: str) -> None:
        self.predicate = predicate
        self.remaining = count
        self.direction = direction
        self.dropped: list[bytes] = []  # the packets it dropped, for the test to inspect

    @property
    def done(self) -> bool:
        return self.remaining == 0


class _Direction:
    """The state of one direction: its faults, its generator, its held packets."""

    def __init__(self, name: str, faults: Faults, seed: int) -> None:
        self.name = name
        self.faults = faults
        # A string seed is hashed deterministically (sha512), unlike hash(); one stream per direction.
        self.random = random.Random(f"{seed}/{name}")
        self.held: list[tuple[float, int, bytes]] = []  # heap of (release time, order, packet)
        self.reorder_held: tuple[float, bytes] | None = None  # (release time, packet)
        self.tokens = float(faults.burst_bytes)
        self.tokens_time: float | None = None

    def next_deadline(self) -> float | None:
        return earliest(
            self.held[0][0] if self.held else None,
            self.reorder_held[0] if self.reorder_held else None,
        )


class FaultInjector(Middleware):
    def __init__(
        self,
        inner: Link,
        seed: int = 0,
        inbound: Faults = NO_FAULTS,
        outbound: Faults = NO_FAULTS,
        on_drop: DropHook | None = None,
    ) -> None:
        super().__init__(inner)
        self.seed = seed
        self.on_drop = on_drop
        self._inbound = _Direction("inbound", inbound, seed)
        self._outbound = _Direction("outbound", outbound, seed)
        self._scripted: list[ScriptedDrop] = []
        self._order = itertools.count()  # ties in the heap keep arrival order

    def layer_name(self) -> str:
        return f"FaultInjector(seed={self.seed})"

    def drop_when(
        self, predicate: Callable[[bytes], bool], count: int = 1, direction: str = "both"
    ) -> ScriptedDrop:
        """Drop the next `count` packets for which predicate(packet) is true.

        direction is "inbound", "outbound" or "both". Returns the rule, whose `remaining` and
        `dropped` let a test check that the drop really happened."""
        if direction not in ("inbound", "outbound", "both"):
            raise ValueError(f"direction must be inbound, outbound or both, not {direction!r}")
        rule = ScriptedDrop(predicate, count, direction)
        self._scripted.append(rule)
        return rule

    def set_faults(self, direction: str, faults: Faults) -> None:
        """Change one direction's faults from now on (a lab adds a delay after the handshake)."""
        if direction not in ("inbound", "outbound"):
            raise ValueError(f"direction must be inbound or outbound, not {direction!r}")
        (self._inbound if direction == "inbound" else self._outbound).faults = faults

    def reseed(self, direction: str, stream: str) -> None:
        """Restart one direction's random decisions from the named stream of this seed. A
        benchmark that sends one way and then the other gives each transfer's data the same
        stream, so that both meet the same losses (scripts/bench_recovery.py)."""
        if direction not in ("inbound", "outbound"):
            raise ValueError(f"direction must be inbound or outbound, not {direction!r}")
        (self._inbound if direction == "inbound" else self._outbound).random = random.Random(f"{self.seed}/{stream}")

    # --- the two directions --------------------------------------------------------------------

    def receive_batch(self, now: float, max_packets: int = 64) -> list[bytes]:
        direction = self._inbound
        ready: list[bytes] = []
        self._release_due(direction, now, ready.append)  # held packets left first: keep the order
        for packet in self.inner.receive_batch(now, max_packets):
            self._apply(direction, packet, now, ready.append)
        # More than asked for (duplicates, released packets): keep the rest for the next call;
        # next_deadline() is then already due, so the runtime comes back at once.
        if len(ready) > max_packets:
            for packet in ready[max_packets:]:
                heapq.heappush(direction.held, (now, next(self._order), packet))
            del ready[max_packets:]
        return ready

    def send(self, packet: bytes, now: float) -> None:
        direction = self._outbound
        self._release_due(direction, now, self._send_inner(now))
        self._apply(direction, packet, now, self._send_inner(now))

    def send_batch(self, packets, now: float) -> None:
        direction = self._outbound
        forward = self._send_inner(now)
        self._release_due(direction, now, forward)
        for packet in packets:
            self._apply(direction, packet, now, forward)

    def _send_inner(self, now: float) -> Callable[[bytes], None]:
        inner = self.inner
        return lambda packet: inner.send(packet, now)

    def next_deadline(self) -> float | None:
        return earliest(
            self.inner.next_deadline(), self._inbound.next_deadline(), self._outbound.next_deadline()
        )

    def on_timer(self, now: float) -> None:
        self.inner.on_timer(now)
        self._release_due(self._outbound, now, self._send_inner(now))
        # Inbound packets that are due wait in the heap until receive_batch(now) collects them.

    # --- one packet ----------------------------------------------------------------------------

    def _apply(self, direction: _Direction, packet: bytes, now: float, emit) -> None:
        name = direction.name
        faults = direction.faults
        chance = direction.random.random

        for rule in self._scripted:
            if rule.remaining and rule.direction in (name, "both"):
                seen = complete_checksum(packet)  # the packet as a wire carries it
                if rule.predicate(seen):
                    rule.remaining -= 1
                    rule.dropped.append(seen)
                    self._dropped(now, seen, name, "scripted")
                    return
        if faults.rate_bytes_per_second is not None and not self._take_tokens(direction, packet, now):
            self._dropped(now, packet, name, "rate_limited")
            return
        if faults.drop and chance() < faults.drop:
            self._dropped(now, packet, name, "random")
            return
        if faults.ce and _ecn_field(packet) in (ECT_0, ECT_1) and chance() < faults.ce:
            packet = _with_ce(packet)
            self.counters[f"ce_marked_{name}"] += 1
        if faults.corrupt and chance() < faults.corrupt:
            packet = self._flip_one_bit(direction, packet)
            self.counters[f"corrupted_{name}"] += 1
        copies = 1
        if faults.duplicate and chance() < faults.duplicate:
            copies = 2
            self.counters[f"duplicated_{name}"] += 1
        for _ in range(copies):
            self._schedule(direction, packet, now, emit)

    def _dropped(self, now: float, packet: bytes, direction: str, reason: str) -> None:
        # What the peer misses, as a wire carries it (done already for a scripted drop: its
        # predicate saw it): a segment built in parts (SegmentParts) as one completed packet.
        packet = complete_checksum(packet)
        # Counter names predate the hook: a random drop is counted as plain "dropped_<direction>".
        self.counters[f"dropped_{direction}" if reason == "random" else f"dropped_{direction}_{reason}"] += 1
        if self.on_drop is not None:
            self.on_drop(now, packet, direction, reason)

    def _schedule(self, direction: _Direction, packet: bytes, now: float, emit) -> None:
        faults = direction.faults
        name = direction.name
        if faults.delay or faults.jitter:
            release = now + faults.delay + direction.random.uniform(0.0, faults.jitter)
            heapq.heappush(direction.held, (release, next(self._order), packet))
            self.counters[f"delayed_{name}"] += 1
            return
        if direction.reorder_held is None and faults.reorder and direction.random.random() < faults.reorder:
            direction.reorder_held = (now + faults.reorder_timeout, packet)
            self.counters[f"reordered_{name}"] += 1
            return
        emit(packet)
        if direction.reorder_held is not None:
            # The packet held back goes out right behind the one that overtook it.
            _, held = direction.reorder_held
            direction.reorder_held = None
            emit(held)

    def _release_due(self, direction: _Direction, now: float, emit) -> None:
        held = direction.held
        while held and held[0][0] <= now:
            emit(heapq.heappop(held)[2])
        if direction.reorder_held is not None and direction.reorder_held[0] <= now:
            _, packet = direction.reorder_held
            direction.reorder_held = None
            self.counters[f"reorder_timeouts_{direction.name}"] += 1
            emit(packet)  # nothing overtook it in time: it goes out late, in order

    def _take_tokens(self, direction: _Direction, packet: bytes, now: float) -> bool:
        faults = direction.faults
        if direction.tokens_time is not None:
            refill = (now - direction.tokens_time) * faults.rate_bytes_per_second
            direction.tokens = min(float(faults.burst_bytes), direction.tokens + max(refill, 0.0))
        direction.tokens_time = now
        if direction.tokens < len(packet):
            return False
        direction.tokens -= len(packet)
        return True

    def _flip_one_bit(self, direction: _Direction, packet: bytes) -> bytes:
        packet = complete_checksum(packet)  # the copy must fail the parser's sum for the bit alone
        start = 0
        if not direction.faults.corrupt_header and packet:
            header_length = (packet[0] & 0x0F) * 4
            if IPV4_MINIMUM_HEADER <= header_length < len(packet):
                start = header_length  # corrupt the transport part: the checksum must catch it
        bit = direction.random.randrange(start * 8, len(packet) * 8)
        corrupted = bytearray(packet)
        corrupted[bit // 8] ^= 0x80 >> (bit % 8)
        return bytes(corrupted)


def _ecn_field(packet: bytes) -> int | None:
    """The ECN bits of an IPv4 or IPv6 packet, None for anything else."""
    if len(packet) < IPV4_MINIMUM_HEADER:
        return None
    version = packet[0] >> 4
    if version == 4:
        return packet[1] & 0b11
    if version == 6:
        return (packet[1] >> 4) & 0b11  # the traffic class spans bytes 0 and 1 (RFC 8200 3)
    return None


def _with_ce(packet: bytes) -> bytes:
    """The packet marked CE, as a congested router marks it (RFC 3168 5)."""
    packet = complete_checksum(packet)  # as a wire carries it, in one piece
    marked = bytearray(packet)  # a copy carries no partial-checksum mark
    if packet[0] >> 4 == 4:
        old_word = packet[0] << 8 | packet[1]
        marked[1] |= CE
        checksum = packet[10] << 8 | packet[11]
        checksum = checksum_update(checksum, old_word, marked[0] << 8 | marked[1])
        marked[10], marked[11] = checksum >> 8, checksum & 0xFF
    else:
        marked[1] |= CE << 4
    return bytes(marked)

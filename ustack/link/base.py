"""What every link is: a thing that moves whole IPv4 packets (bytes) in and out.

A link is the only place in ustack that owns a file descriptor. The stack above it is sans-IO; the
asyncio runtime glues the two together like this (the whole contract, in order):

    loop.add_reader(link.fileno(), on_readable)      # the fd is readable: packets are waiting

    def on_readable_or_timer():
        now = loop.time()
        link.on_timer(now)                           # middlewares release packets they held back
        for packet in link.receive_batch(now):       # never blocks; at most max_packets
            stack.receive(packet, now)
            ...                                      # (tracer.annotate(...) for state changes)
        link.send_batch(stack.transmit(now), now)    # a full kernel queue is a counted drop
        link.flush()                                 # end of one round: pcap/tracer output visible
        rearm_one_timer(min(stack.next_deadline(), link.next_deadline()))

The interface (every device and every middleware has exactly these):

    receive_batch(now, max_packets=64) -> list[bytes]   drain what is ready, never block
    send(packet, now) -> None                            one packet; drops are counted, not raised
    send_batch(packets, now) -> None                     many packets, same rule
    fileno() -> int                                      for loop.add_reader / select
    next_deadline() -> float | None                      when on_timer wants to run (held packets)
    on_timer(now) -> None                                release what is due
    flush() -> None                                      end of a round: push buffered output out
    close() -> None                                      idempotent; also `with link: ...`
    mtu: int                                             largest packet this link carries
    counters: dict[str, int]                             this layer's named counts
    stats() -> dict[str, dict[str, int]]                 counters of every layer, outermost first

Middlewares (FaultInjector, PcapWriter, Tracer) wrap any link and are links themselves, so they
compose: `Tracer(PcapWriter(FaultInjector(TunLink(...))))`. What each one sees depends on its
place in the chain: a PcapWriter outside the FaultInjector records what the stack sends and
receives; inside it, what actually crosses the wire.

What a packet is, either way: bytes, or one of two forms with the TCP checksum still partial.
- Received: a read-only memoryview of a LinkBuffer (ustack/wire/buffers.py), the TUN link's
  super-segments (ustack/link/vnet.py packet_from_parts: the kernel vouched for the checksum, and
  the stack's parser does not read it).
- Sent: SegmentParts (ustack/wire/buffers.py), a segment the Stack built with its checksum partial
  for a link that takes that (Stack(segmentation_offload=True): every segment larger than the MTU,
  and from codec.PARTIAL_CHECKSUM_FROM bytes on at a large MTU), kept as its headers and its
  payload. It has len() and its header bytes by index (packet[9], packet[t + 13]), nothing more:
  it is no buffer. The TUN link writes the parts (vnet.large_segment_parts,
  vnet.partial_packet_parts) or cuts them in software (cut_tcp_segment); a link that cannot take
  a partial checksum writes complete_checksum(packet).
A middleware that reads a packet's bytes as a wire would (writes them out, copies or changes
them, parses a copy) calls vnet.complete_checksum(packet) first, and reads what it returns: the
packet in one piece with its checksum complete (for SegmentParts a joined copy, made once, the
same object on every call; the parts themselves stay as the kernel is to get them). One that only
peeks at addresses, ports or flags, holds or passes packets on needs nothing, and passes on the
packet it was given.

Why `now` is passed in rather than read here: the same links run under the asyncio runtime (real
monotonic time) and under the deterministic tests (virtual time), exactly like the stack.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable


class LinkError(Exception):
    """A link could not be opened or used; the message is one line a user can act on."""


class LinkClosed(LinkError):
    """The other end went away (a memory link whose peer was closed)."""


class Link:
    """The base of every device. Subclasses implement read_packet (or receive_batch), send and
    fileno."""

    mtu: int = 1500

    def __init__(self) -> None:
        # Counter so that `counters["drop_queue_full"] += 1` works for a reason seen the first time.
        self.counters: Counter[str] = Counter()
        self.closed = False

    # --- the data path -------------------------------------------------------------------------

    def receive_batch(self, now: float, max_packets: int = 64) -> list[bytes]:
        """Read packets until the fd has none ready (or max_packets), so that one wake-up of the
        event loop handles a whole burst. A packet read_packet dropped is not handed over and does
        not count towards max_packets."""
        packets: list[bytes] = []
        try:
            while len(packets) < max_packets:
                packet = self.read_packet()
                if packet is not None:
                    packets.append(packet)
        except BlockingIOError:
            pass  # nothing more is ready
        except LinkClosed:
            if not packets:
                raise
            # Hand over what we have; the next call sees the end again.
        self.counters["packets_in"] += len(packets)
        self.counters["bytes_in"] += sum(map(len, packets))
        return packets

    def read_packet(self) -> bytes | None:
        """One packet from the non-blocking fd, or None if it was dropped (counted by name).
        Raises BlockingIOError when nothing is ready, LinkClosed when the other end is gone."""
        raise NotImplementedError

    def send(self, packet: bytes, now: float) -> None:
        raise NotImplementedError

    def send_batch(self, packets: Iterable[bytes], now: float) -> None:
        for packet in packets:
            self.send(packet, now)

    # --- what the runtime needs ----------------------------------------------------------------

    def fileno(self) -> int:
        raise NotImplementedError

    def next_deadline(self) -> float | None:
        return None  # a plain device holds nothing back

    def on_timer(self, now: float) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def stats(self) -> dict[str, dict[str, int]]:
        return {self.layer_name(): dict(self.counters)}

    def layer_name(self) -> str:
        return type(self).__name__

    def count_drop(self, reason: str) -> None:
        """Every packet a link drops is dropped for a named reason (DESIGN.md rule 8)."""
        self.counters["drop_" + reason] += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class Middleware(Link):
    """A link that wraps another one. By default every call goes straight through; subclasses
    override the calls they care about and call the inner link for the rest."""

    def __init__(self, inner: Link) -> None:
        super().__init__()
        self.inner = inner

    @property
    def mtu(self) -> int:  # type: ignore[override]
        return self.inner.mtu

    def receive_batch(self, now: float, max_packets: int = 64) -> list[bytes]:
        return self.inner.receive_batch(now, max_packets)

    def send(self, packet: bytes, now: float) -> None:
        self.inner.send(packet, now)

    def send_batch(self, packets: Iterable[bytes], now: float) -> None:
        for packet in packets:
            self.send(packet, now)

    def fileno(self) -> int:
        return self.inner.fileno()

    def next_deadline(self) -> float | None:
        return self.inner.next_deadline()

    def on_timer(self, now: float) -> None:
        self.inner.on_timer(now)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.inner.close()

    def stats(self) -> dict[str, dict[str, int]]:
        return {self.layer_name(): dict(self.counters), **self.inner.stats()}

    def innermost(self) -> Link:
        """The device at the bottom of the chain (the TunLink or MemoryLink)."""
        link: Link = self
        while isinstance(link, Middleware):
            link = link.inner
        return link


def earliest(*deadlines: float | None) -> float | None:
    """The smallest of some optional deadlines (None means "no timer wanted")."""
    present = [deadline for deadline in deadlines if deadline is not None]
    return min(present) if present else None

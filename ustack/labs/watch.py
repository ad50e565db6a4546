"""How a lab watches and steers the packets between ustack and the kernel.

The lab's link chain, from the stack down to the TUN device:

    OuterTap -> FaultInjector -> WireTap -> Gate -> [PcapWriter] -> TunLink

- The FaultInjector (ustack.link) drops the packets the lab scripts with `drop_when`.
- The Gate holds back packets the lab wants to arrive later (to make both FINs cross, for
  example), until the lab releases them. It is the lab's hand on the wire.
- The two taps feed the lab's `PacketWatch`, which hands every packet to the current scene's
  LadderRecorder in the order it crossed the wire, marking the ones the FaultInjector dropped:
  the OuterTap sees what the stack sends (before any drop) and what it finally receives, one
  packet at a time as the runtime takes it; the WireTap sees what came from the kernel (before
  any drop). Together they tell "sent and lost" from "sent and delivered" in both directions.
- The PcapWriter (with --pcap) sits next to the device, so the file holds what `tcpdump` on the
  kernel's side of the TUN would show: a packet ustack sent and the injector dropped is absent,
  one the kernel sent and the injector dropped is present.
"""

from __future__ import annotations

from typing import Callable, Iterable

from ..link.base import Link, Middleware

Predicate = Callable[[bytes], bool]


class PacketWatch:
    """Where the taps report; the lab points `recorder` at the current scene's LadderRecorder."""

    def __init__(self, ustack_address: bytes = b"", kernel_address: bytes = b"") -> None:
        self.recorder = None  # a ustack.trace.LadderRecorder, or None between scenes
        # Only packets between these two addresses (4 bytes each) are drawn: a lab that spoofs
        # other sources (the SYN flood) keeps its ladder for the real conversation.
        self._pairs = {ustack_address + kernel_address, kernel_address + ustack_address} if ustack_address else None
        # Extra observers: listener(direction, packet, dropped) for each packet drawn.
        self.listeners: list = []
        self._arrived: list[bytes] = []  # from the kernel, not yet past the FaultInjector
        self._dropped: dict[int, str] = {}  # id(packet) -> note, for packets dropped on purpose
        self.now = 0.0

    def _record(self, packet: bytes, direction: str, dropped: bool = False, note: str = "") -> None:
        if self._pairs is not None and bytes(packet[12:20]) not in self._pairs:
            return
        if self.recorder is not None:
            self.recorder.on_packet(self.now, packet, direction, dropped=dropped, note=note)
        for listener in self.listeners:
            listener(direction, packet, dropped)

    # --- called by the drop rules the lab scripts ---
    def dropping(self, predicate: Predicate, note: str) -> Predicate:
        """predicate, plus a note of each packet it picks (the FaultInjector drops it)."""

        def matches(packet: bytes) -> bool:
            if predicate(packet):
                self._dropped[id(packet)] = note
                return True
            return False

        return matches

    # --- called by the taps ---
    def arrived_from_wire(self, packets: Iterable[bytes]) -> None:
        self._arrived.extend(packets)

    def delivering(self, packet: bytes, now: float) -> None:
        """The stack is about to take `packet`: record it, after the dropped packets that came
        before it on the wire (so each arrow lands before the state changes it causes)."""
        self.now = now
        still_held = []
        while self._arrived:
            item = self._arrived.pop(0)
            if item is packet:
                self._record(item, "in")
                break
            if id(item) in self._dropped:
                self._record(item, "in", True, self._dropped.pop(id(item)))
            else:
                still_held.append(item)  # held back by a middleware (a delay): it comes later
        self._arrived[:0] = still_held

    def batch_done(self, now: float) -> None:
        """Dropped packets that came after the last delivered one."""
        self.now = now
        remaining = []
        for item in self._arrived:
            if id(item) in self._dropped:
                self._record(item, "in", True, self._dropped.pop(id(item)))
            else:
                remaining.append(item)
        self._arrived = remaining

    def sent(self, packet: bytes, now: float) -> None:
        self.now = now
        note = self._dropped.pop(id(packet), None)
        self._record(packet, "out", note is not None, note or "")


class OuterTap(Middleware):
    """The outermost layer: sees what the stack sends and what it receives."""

    def __init__(self, inner: Link, watch: PacketWatch) -> None:
        super().__init__(inner)
        self.watch = watch

    def receive_batch(self, now: float, max_packets: int = 64) -> list[bytes]:
        self.watch.batch_done(now)  # in case the previous batch was not iterated to its end
        return _AnnouncingBatch(self.inner.receive_batch(now, max_packets), self.watch, now)

    def send(self, packet: bytes, now: float) -> None:
        self.inner.send(packet, now)  # the FaultInjector decides here, and tells the watch
        self.watch.sent(packet, now)


class _AnnouncingBatch(list):
    """A batch of received packets that tells the watch about each one as the runtime's `for`
    loop reaches it: the packet is drawn, then the stack processes it and reports the state
    changes it caused, which land after its arrow (as the Tracer does with its lines)."""

    def __init__(self, packets: list[bytes], watch: PacketWatch, now: float) -> None:
        super().__init__(packets)
        self._watch = watch
        self._now = now

    def __iter__(self):
        for packet in list.__iter__(self):
            self._watch.delivering(packet, self._now)
            yield packet
        self._watch.batch_done(self._now)


class WireTap(Middleware):
    """Just above the wire: sees every packet the kernel sent, before any drop."""

    def __init__(self, inner: Link, watch: PacketWatch) -> None:
        super().__init__(inner)
        self.watch = watch

    def receive_batch(self, now: float, max_packets: int = 64) -> list[bytes]:
        packets = self.inner.receive_batch(now, max_packets)
        self.watch.arrived_from_wire(packets)
        return packets


class Gate(Middleware):
    """Holds back packets from the kernel that match `hold(predicate)` until `release()`.

    Held packets stay in arrival order. While held, the kernel has sent them and ustack has not
    seen them: the lab can make two segments cross on the wire (both FINs of a simultaneous close).
    """

    def __init__(self, inner: Link) -> None:
        super().__init__(inner)
        self._holding: Predicate | None = None
        self.held: list[bytes] = []
        self._released: list[bytes] = []

    def hold(self, predicate: Predicate) -> None:
        self._holding = predicate

    def release(self, count: int | None = None) -> int:
        """Let the first `count` held packets (default: all) through, and stop holding when all
        are out. Returns how many were released. The runtime picks them up at its next timer."""
        count = len(self.held) if count is None else min(count, len(self.held))
        self._released.extend(self.held[:count])
        del self.held[:count]
        if not self.held:
            self._holding = None
        return count

    def receive_batch(self, now: float, max_packets: int = 64) -> list[bytes]:
        ready, self._released = self._released, []
        for packet in self.inner.receive_batch(now, max_packets):
            if self._holding is not None and self._holding(packet):
                self.held.append(packet)
                self.counters["held"] += 1
            else:
                ready.append(packet)
        return ready

    def next_deadline(self) -> float | None:
        if self._released:
            return 0.0  # due at once: the runtime's timer calls receive_batch right away
        return self.inner.next_deadline()

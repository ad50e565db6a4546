"""How a lab watches and steers the packets between ustack and the kernel.

The lab's network is ustack.network's, with a FaultInjector and a Gate always in the chain:

    FaultInjector -> WireTap -> Gate -> [PcapWriter] -> TunLink

- The FaultInjector (ustack.link) drops the packets the lab scripts with `drop_when`.
- The WireTap and the stack's observer feed the lab's SceneWatch, the same pipeline as
  `ustack serve --ladder` (ustack.trace.live.WireWatch): it puts the packets in the order they
  crossed the wire, the ones the FaultInjector dropped included, and hands them with ustack's
  exact state changes to the current scene's LadderRecorder.
- The Gate holds back packets from the kernel that the lab wants to arrive later (to make both
  FINs cross, for example), until the lab releases them. It is the lab's hand on the wire.
- The PcapWriter (with --pcap) sits next to the device, so the file holds what `tcpdump` on the
  kernel's side of the TUN would show: a packet ustack sent and the injector dropped is absent,
  one the kernel sent and the injector dropped is present.
"""

from __future__ import annotations

from typing import Callable

from ..link.base import Link, Middleware
from ..trace import LOCAL
from ..trace.live import WireWatch

Predicate = Callable[[bytes], bool]


class SceneWatch(WireWatch):
    """What the lab draws: packets between ustack and the kernel only (a lab that spoofs other
    sources, the SYN flood, keeps its ladder for the real conversation), and the state changes of
    the scene's connection: the first one with the scene's port on either side."""

    def __init__(self, ustack_address: int | bytes, kernel_address: int | bytes) -> None:
        super().__init__()
        self.recorder = None  # a ustack.trace.LadderRecorder, or None between scenes
        self.port: int | None = None  # the scene's port
        self.connection = None  # the scene's core connection, once it reported a state change
        self._kernel_address = kernel_address
        if type(kernel_address) is bytes:  # IPv6: 16-byte addresses at bytes 8..40 of the header
            ustack, kernel, self._addresses = ustack_address, kernel_address, slice(8, 40)
        else:  # IPv4: 4-byte addresses at bytes 12..20
            ustack, kernel = ustack_address.to_bytes(4, "big"), kernel_address.to_bytes(4, "big")
            self._addresses = slice(12, 20)
        self._pairs = {ustack + kernel, kernel + ustack}  # source and destination, as in the IP header
        # Extra observers: listener(direction, packet, dropped) for each packet drawn.
        self.listeners: list = []

    def start_scene(self, recorder, port: int | None) -> None:
        self.recorder = recorder
        self.port = port
        self.connection = None

    def _record(self, now: float, packet: bytes, direction: str, lost_note: str = "") -> None:
        if bytes(packet[self._addresses]) not in self._pairs:
            return
        if self.recorder is not None:
            self.recorder.on_packet(now, packet, direction, dropped=bool(lost_note), note=lost_note)
        for listener in self.listeners:
            listener(direction, packet, bool(lost_note))

    def _state_changed(self, now: float, connection, change) -> None:
        if self.recorder is None or connection.remote_address != self._kernel_address:
            return  # connections with spoofed addresses are not drawn
        if self.connection is None:
            if self.port is not None and self.port not in (connection.local_port, connection.remote_port):
                return
            self.connection = connection
        if connection is self.connection:
            self.recorder.on_state(now, LOCAL, change.old, change.new, change.cause)


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

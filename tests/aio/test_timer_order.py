"""AsyncStack._on_timer reads the packets already waiting on the link before it fires the
stack's due timers, so that a timer acts on the state those packets made (issue 12: a tail loss
probe due while the ACK of the whole flight waited unread resent data the peer had).

The stack and the link here are stand-ins that record the order of calls; the loop is never
run: `_on_timer` is called as asyncio would call it at the deadline.
"""

from __future__ import annotations

import asyncio

from ustack.aio import AsyncStack
from ustack.stack import Stack

WAITING_PACKET = b"\x45" + bytes(19)  # what the stack makes of it does not matter here


class RecordingStack(Stack):
    def __init__(self, calls: list[str]) -> None:
        super().__init__("10.77.0.2")
        self.calls = calls

    def receive(self, packet: bytes, now: float) -> None:
        self.calls.append("receive")
        super().receive(packet, now)

    def on_timer(self, now: float) -> None:
        self.calls.append("stack timers")
        super().on_timer(now)


class WaitingLink:
    """A link with one packet ready to read, and nothing else to do."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.waiting = [WAITING_PACKET]

    def receive_batch(self, now: float, max_packets: int = 64) -> list[bytes]:
        batch, self.waiting = self.waiting, []
        return batch

    def on_timer(self, now: float) -> None:
        self.calls.append("link timers")

    def next_deadline(self) -> float | None:
        return None

    def send_batch(self, packets, now: float) -> None:
        pass

    def flush(self) -> None:
        pass


def test_the_packets_waiting_on_the_link_are_read_before_the_stacks_timers_fire():
    calls: list[str] = []
    astack = AsyncStack(RecordingStack(calls), WaitingLink(calls), control=False)
    loop = asyncio.new_event_loop()
    try:
        astack.loop = loop
        astack._timer_deadline = loop.time()
        astack._on_timer()
    finally:
        loop.close()
    assert calls == ["link timers", "receive", "stack timers"]
    assert astack.counters["timer_fired"] == 1

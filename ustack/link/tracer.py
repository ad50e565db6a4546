"""Tracer: a middleware that prints one tcpdump-style line per packet, so you can watch the stack
talk, with what each packet did to a connection on the same line:

      0.000000 < IP 10.77.0.1.40000 > 10.77.0.2.80: Flags [S], seq 1, win 64240, length 0  LISTEN -> SYN-RECEIVED
      0.000042 > IP 10.77.0.2.80 > 10.77.0.1.40000: Flags [S.], seq 7, ack 2, win 65535, length 0

`<` is a packet received, `>` a packet sent; the time is seconds since the first packet (or since
`time_origin`). The text comes from `formatter(packet) -> str`, by default
ustack.wire.text.format_packet (the same text as `tcpdump -nn`). The formatter gets each packet
as a wire would carry it: a received super-segment whose TCP checksum the TUN link left partial
(ustack/link/vnet.py packet_from_parts) is completed first (vnet.complete_checksum), so that a
formatter that copies the packet and parses the copy, or shows the checksum, finds it right.

Annotations: annotate(text) appends text to the line of the received packet being handled (an
annotation with no such packet, e.g. a state change caused by a timer or by the application, is
a line of its own). The line of a received packet is therefore written only when the next line
starts, when the batch has been fully iterated, or on flush() (the runtime calls flush() at the
end of each round); lines of sent packets are written at once. To make annotations land on the
right packet, the batch returned by receive_batch announces each packet as the caller's `for`
loop reaches it: the runtime does

    for packet in link.receive_batch(now):    # this line of the trace starts here
        stack.receive(packet, now)
        report the stack's events            # ... and the state changes among them land on it

State changes reach the tracer the way they reach every other observer of the runtime: register
its `observe` method, which annotates each StateChanged event ("LISTEN -> SYN-RECEIVED"):

    tracer = Tracer(link)
    astack = AsyncStack(stack, tracer)
    astack.add_observer(tracer.observe)

Keep the Tracer outermost in a chain, so no other middleware iterates the batch first.

Output goes to a text stream (default sys.stderr, flushed per line) or to a callback that gets
each finished line without its newline.
"""

from __future__ import annotations

import struct
import sys
from collections import deque
from typing import Any, Callable, Iterable, TextIO

from ..tcp.events import StateChanged
from .base import Link, Middleware
from .vnet import complete_checksum

Formatter = Callable[[bytes], str]


def default_formatter() -> Formatter:
    """ustack.wire.text.format_packet when it is there, else a one-line IPv4 summary."""
    try:
        from ..wire.text import format_packet
    except ImportError:
        return minimal_format
    return format_packet


def minimal_format(packet: bytes) -> str:
    """Addresses, protocol and length: enough to follow the traffic, nothing more."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return f"not IPv4, length {len(packet)}"
    protocol = packet[9]
    source = ".".join(map(str, packet[12:16]))
    destination = ".".join(map(str, packet[16:20]))
    (total_length,) = struct.unpack_from("!H", packet, 2)
    return f"IP {source} > {destination}: proto {protocol}, length {total_length}"


class Tracer(Middleware):
    def __init__(
        self,
        inner: Link,
        output: TextIO | Callable[[str], None] | None = None,
        formatter: Formatter | None = None,
        time_origin: float | None = None,
    ) -> None:
        super().__init__(inner)
        if output is None:
            output = sys.stderr
        if hasattr(output, "write"):
            stream = output
            self._emit = lambda line: (stream.write(line + "\n"), stream.flush())
        else:
            self._emit = output
        self.formatter = formatter or default_formatter()
        self.time_origin = time_origin
        self._line: str | None = None  # the current line, waiting for annotations
        self._unannounced: deque[tuple[float, bytes]] = deque()  # received, not yet iterated

    def layer_name(self) -> str:
        return "Tracer"

    # --- the data path -------------------------------------------------------------------------

    def receive_batch(self, now: float, max_packets: int = 64) -> list[bytes]:
        self._announce_all()
        packets = self.inner.receive_batch(now, max_packets)
        self._unannounced.extend((now, packet) for packet in packets)
        return _TracedBatch(packets, self)

    def send(self, packet: bytes, now: float) -> None:
        # Not _announce_all() here: a reply sent while the caller is still looping over a batch
        # belongs between the packet that caused it and the packets after it.
        self._start_line(now, ">", packet)
        # Written at once: the runtime reports the state changes of a round before it sends, so
        # an annotation arriving after a sent packet is never about that packet.
        self._finish_line()
        self.inner.send(packet, now)

    def send_batch(self, packets: Iterable[bytes], now: float) -> None:
        for packet in packets:
            self.send(packet, now)

    def annotate(self, text: str) -> None:
        """Append text (a state change, a drop reason) to the line of the current packet."""
        if self._line is None:
            self._emit(" " * 13 + text)  # nothing to attach to: a line of its own
        else:
            self._line += "  " + text

    def observe(self, now: float, kind: str, item: Any) -> None:
        """An observer for AsyncStack.add_observer: each state change of a connection becomes an
        annotation. Packets are ignored here: the tracer sees them as a link already."""
        if kind == "event" and isinstance(item.event, StateChanged):
            self.annotate(f"{item.event.old} -> {item.event.new}")

    def flush(self) -> None:
        self._announce_all()
        self._finish_line()
        self.inner.flush()

    def close(self) -> None:
        if not self.closed:
            self.flush()
        super().close()

    # --- lines ---------------------------------------------------------------------------------

    def _start_line(self, now: float, arrow: str, packet: bytes) -> None:
        self._finish_line()
        if self.time_origin is None:
            self.time_origin = now
        try:
            text = self.formatter(complete_checksum(packet))
        except Exception as error:  # a tracer must never take the stack down
            text = f"[cannot format: {error}] length {len(packet)}"
        self._line = f"{now - self.time_origin:11.6f} {arrow} {text}"
        self.counters["lines"] += 1

    def _finish_line(self) -> None:
        if self._line is not None:
            line, self._line = self._line, None
            self._emit(line)

    def _announce_next(self) -> None:
        if self._unannounced:
            now, packet = self._unannounced.popleft()
            self._start_line(now, "<", packet)

    def _announce_all(self) -> None:
        while self._unannounced:
            self._announce_next()


class _TracedBatch(list):
    """A list of received packets that starts each packet's trace line as a `for` loop reaches it,
    and finishes the last line when the loop is over."""

    def __init__(self, packets: list[bytes], tracer: Tracer) -> None:
        super().__init__(packets)
        self._tracer = tracer

    def __iter__(self):
        for packet in super().__iter__():
            self._tracer._announce_next()
            yield packet
        self._tracer._finish_line()

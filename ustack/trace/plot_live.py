"""`ustack serve --plot DIR`: for each connection, once it has ended (or when ustack stops), a
time-sequence graph (plot.py) of the side that sent more data, with a second panel of its
congestion-control variables (samples.py), written to DIR as an SVG file.

It is a LiveLadders (the one live pipeline, live.py): the same recorder builds each
connection's ladder from the wire, and the graph is drawn from that ladder. On each packet of a
connection the stack knows (one that has reported a state change), the connection's own
snapshot is sampled: cwnd, ssthresh, smoothed RTT, RTO.

Bounded: samples per connection (samples.SAMPLE_LIMIT), points per graph (plot.POINT_LIMIT), and
at most `limit` files in a run (drawing one takes a good part of a second, and runs on the
stack's own loop once the connection is over); past that, one line says so.
"""

from __future__ import annotations

import os

from ustack.wire import parse_packet
from ustack.wire.errors import WireError
from ustack.wire.ipv4 import address_text

from .live import Key, LiveLadders
from .model import LOST, RETRANSMISSION
from .plot import time_sequence
from .samples import Samples

PLOT_FILE_LIMIT = 100


def packet_key(packet: bytes, direction: str) -> Key | None:
    """(our address, our port, the peer's address, the peer's port) of a packet, as LiveLadders keys it."""
    try:
        parsed = parse_packet(bytes(packet))
    except WireError:
        return None
    ip, tcp = parsed.ip, parsed.tcp
    if tcp is None:
        return None
    if direction == "out":
        return (ip.src, tcp.src_port, ip.dst, tcp.dst_port)
    return (ip.dst, tcp.dst_port, ip.src, tcp.src_port)


def plot_file_name(number: int, key: Key) -> str:
    """The file a connection's graph is written to: its number in the run, then our endpoint and
    the peer's as tcpdump writes them (address.port), with each colon of an IPv6 address made a
    '-' (a colon is refused by some file systems, and `::` reads badly in a shell):
    '1-10.77.0.2.80-10.77.0.1.41234.svg', '2-fd00-77--2.80-fd00-77--1.41234.svg'. The number keeps
    two connections on the same four numbers (one after the other) apart and the files in order."""
    ours, peer = (f"{address_text(address).replace(':', '-')}.{port}" for address, port in (key[:2], key[2:]))
    return f"{number}-{ours}-{peer}.svg"


class LivePlots(LiveLadders):
    def __init__(self, directory: str, output=None, port: int | None = None, text: bool = False,
                 relative: bool = False, colour: bool = False, limit: int = PLOT_FILE_LIMIT) -> None:
        super().__init__(output=output, port=port, relative=relative, colour=colour)
        self.directory = directory
        self.text = text  # --ladder too: print the ladder as LiveLadders does
        self.limit = limit
        self.written: list[str] = []
        self._samples: dict[Key, Samples] = {}

    def _record(self, now: float, packet: bytes, direction: str, lost_note: str = "") -> None:
        super()._record(now, packet, direction, lost_note)
        key = packet_key(packet, direction)
        connection = self._connections.get(key) if key else None
        if connection is not None and connection.core is not None:
            self._samples.setdefault(key, Samples()).add(now, connection.core.snapshot())

    def _print(self, key: Key, still_open: bool = False) -> None:
        connection = self._connections[key]
        samples = self._samples.pop(key, None)
        self._draw(key, connection.recorder.ladder(), samples)
        if self.text:
            super()._print(key, still_open)
        else:
            self._connections.pop(key)

    def _draw(self, key: Key, ladder, samples: Samples | None) -> None:
        if not ladder.arrows:
            return
        if len(self.written) >= self.limit:
            if len(self.written) == self.limit:
                self._say(f"--plot: {self.limit} plots written; no more in this run")
                self.written.append("")
            return
        from .plot_render import render

        graph = time_sequence(ladder)
        origin = ladder.start_time
        drawn = [sample._replace(time=sample.time - origin) for sample in samples.samples] if samples else []
        path = os.path.join(self.directory, plot_file_name(len(self.written) + 1, key))
        try:
            render(graph, path, samples=drawn, image_format="svg")
        except OSError as error:
            self._say(f"--plot: cannot write {path}: {error.strerror or error}")
            return
        self.written.append(path)
        resent = len(graph.of_kind(RETRANSMISSION))
        self._say(f"plot: {path} ({graph.title}, {len(graph.segments)} segments, {resent} retransmitted, "
                  f"{len(graph.of_kind(LOST))} lost, {len(drawn)} samples)")

    def _say(self, line: str) -> None:
        try:
            self.output.write(line + "\n")
            self.output.flush()
        except (BrokenPipeError, ValueError):
            pass

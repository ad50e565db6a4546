"""Two ustack hosts joined by a simulated link, on virtual time (for tests, benchmarks, labs).

Each side is a real host, `ustack.stack.Stack`, exactly as the TUN runtime drives it: IPv4
packets go in through `receive`, come out of `transmit`, and time moves through
`next_deadline` / `on_timer`. So demultiplexing, the RST for segments that match nothing, a SYN
that reopens a TIME-WAIT 4-tuple (RFC 6191) and the listener's queues are the host's own.

No sockets, no clock: the simulator keeps its own `now`, jumps straight to the next event (a
packet arriving or a timer falling due) and is fully deterministic for a given seed. The link
can lose, duplicate and reorder packets (like smoltcp's FaultInjector, but between two hosts).

    sim = Simulator(seed=7, loss=0.1)
    sim.client_app = BulkTransfer(b"x" * 100_000)
    sim.server_app = BulkTransfer(b"y" * 100_000)
    sim.run(until=lambda s: s.client.state is State.CLOSED and s.server_closed)
    sim.events(sim.client)      # everything the client connection reported, in order

The client host opens one connection to the server host's listener; `sim.server` is the
connection the server accepted (None until its handshake completes). It lives outside
ustack/tcp/ because it drives the whole host, not the core alone; like the core it does no I/O.
"""

from __future__ import annotations

import heapq
import random
from typing import Callable

from ustack.stack import Stack
from ustack.tcp.config import TcpConfig
from ustack.tcp.connection import Connection
from ustack.tcp.errors import TcpCallError
from ustack.tcp.isn import IsnGenerator
from ustack.tcp.state import CLOSE_WAIT, CLOSED, ESTABLISHED, State
from ustack.wire import TcpSegment, parse_packet

CLIENT_ADDRESS = 0x0A000001  # 10.0.0.1
SERVER_ADDRESS = 0x0A000002  # 10.0.0.2


class Link:
    """One direction of the wire: a fixed delay plus seeded loss, duplication and reordering.

    With a `rate` (bytes per second) the link also has a bottleneck with an unbounded queue:
    segments leave one after another, each taking its size (plus 40 bytes of IPv4 and TCP
    headers) over the rate. Without one, a burst sent at one instant arrives at one instant,
    so the receiver sees it as one batch and answers it with one ACK."""

    def __init__(self, rng: random.Random, delay: float, loss: float, duplicate: float, reorder: float,
                 rate: float | None = None):
        self.rng = rng
        self.delay = delay
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
        self.rate = rate
        self.busy_until = 0.0  # when the bottleneck has sent everything queued so far
        self.sent = self.lost = self.duplicated = self.reordered = 0

    def arrival_times(self, now: float, size: int = 0) -> list[float]:
        """When the copies of a segment of `size` payload bytes sent at `now` arrive (none if
        it is lost)."""
        self.sent += 1
        if self.rate:
            self.busy_until = max(now, self.busy_until) + (size + 40) / self.rate
            now = self.busy_until
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            self.lost += 1
            return []
        copies = 1
        if self.duplicate and rng.random() < self.duplicate:
            self.duplicated += 1
            copies = 2
        times = []
        for _ in range(copies):
            delay = self.delay
            if self.reorder and rng.random() < self.reorder:
                self.reordered += 1
                delay += rng.random() * 3 * self.delay  # overtaken by later segments
            times.append(now + delay)
        return times


class BulkTransfer:
    """An application that sends `data`, reads everything, half-closes when all is written and
    closes once the peer has finished too."""

    def __init__(self, data: bytes, chunk: int = 65536):
        self.data = memoryview(data)
        self.chunk = chunk
        self.offset = 0
        self.received = bytearray()
        self.shut = False
        self.closed = False

    def poll(self, connection: Connection | None, now: float) -> None:
        if connection is None or connection.state is CLOSED:
            return
        state = connection.state
        if state is ESTABLISHED or state is CLOSE_WAIT:
            while self.offset < len(self.data):
                accepted = connection.send(self.data[self.offset : self.offset + self.chunk], now)
                self.offset += accepted
                if not accepted:
                    break
            if self.offset == len(self.data) and not self.shut:
                connection.shutdown(now)
                self.shut = True
        while connection.readable:
            self.received += connection.recv(1 << 20, now)
        self.close_when_both_finished(connection, now)

    def close_when_both_finished(self, connection: Connection, now: float) -> None:
        """Close once we have half-closed and the peer's FIN has arrived (the connection may
        already be gone: nothing to do then)."""
        if connection.at_eof and self.shut and not self.closed:
            self.closed = True
            try:
                connection.close(now)
            except TcpCallError:
                pass


class Simulator:
    def __init__(
        self,
        client_config: TcpConfig | None = None,
        server_config: TcpConfig | None = None,
        *,
        seed: int = 0,
        delay: float = 0.005,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        rate: float | None = None,
        mtu: int = 1500,
        client_iss: int = 0xFFFFFF00,
        server_iss: int = 0xFFFFF000,
        client_port: int = 40000,
        server_port: int = 80,
    ):
        rng = random.Random(seed)
        self.seed = seed
        self.now = 0.0
        self.to_server = Link(rng, delay, loss, duplicate, reorder, rate)
        self.to_client = Link(rng, delay, loss, duplicate, reorder, rate)
        # A fixed ISN on each host, so that a run can be compared with a recorded one.
        self.client_stack = Stack(CLIENT_ADDRESS, client_config, mtu=mtu, isn_generator=IsnGenerator(fixed_isn=client_iss))
        self.server_stack = Stack(SERVER_ADDRESS, server_config, mtu=mtu, isn_generator=IsnGenerator(fixed_isn=server_iss))
        self.listener = self.server_stack.listen(server_port)
        self.client = self.client_stack.connect(SERVER_ADDRESS, server_port, self.now, local_port=client_port)
        self.server: Connection | None = None
        self.client_app = None
        self.server_app = None
        self._queue: list = []  # heap of (arrival time, order, to_server, packet)
        self._order = 0
        self.trace: list[tuple[float, str, TcpSegment]] | None = None  # set to [] to record
        self._history: dict[Connection, list] = {}
        self.flush()

    def events(self, connection: Connection) -> list:
        """What `connection` reported so far (StateChanged, DataReadable, ...), in order. The
        hosts collect the events; the simulator keeps them so a test can read them afterwards."""
        return list(self._history.get(connection, ()))

    # --- the hosts ---
    def _deliver(self, to_server: bool, packet: bytes) -> None:
        if self.trace is not None:
            self.trace.append((self.now, "c>s" if to_server else "s>c", parse_packet(packet).tcp))
        (self.server_stack if to_server else self.client_stack).receive(packet, self.now)

    def flush(self) -> None:
        """Let the applications act, then put everything the hosts transmit on the wire."""
        now = self.now
        if self.server is None:
            self.server = self.listener.accept()
        if self.client_app is not None:
            self.client_app.poll(self.client, now)
        if self.server_app is not None:
            self.server_app.poll(self.server, now)
        # As the runtime does after a user call: the host transmits what it produced.
        self.client_stack.poke(self.client)
        if self.server is not None:
            self.server_stack.poke(self.server)
        for packet in self.client_stack.transmit(now):
            self._put(True, packet)
        for packet in self.server_stack.transmit(now):
            self._put(False, packet)
        for stack in (self.client_stack, self.server_stack):
            for connection, event in stack.events():
                self._history.setdefault(connection, []).append(event)

    def _put(self, to_server: bool, packet: bytes) -> None:
        link = self.to_server if to_server else self.to_client
        for arrival in link.arrival_times(self.now, len(parse_packet(packet).tcp.payload)):
            self._order += 1
            heapq.heappush(self._queue, (arrival, self._order, to_server, packet))

    # --- time ---
    def next_event_time(self) -> float | None:
        times = [time for time in (self.client_stack.next_deadline(), self.server_stack.next_deadline()) if time is not None]
        if self._queue:
            times.append(self._queue[0][0])
        return min(times) if times else None

    def step(self) -> bool:
        """Advance to the next event and process everything due then. False when idle."""
        when = self.next_event_time()
        if when is None:
            return False
        if when > self.now:
            self.now = when
        queue = self._queue
        while queue and queue[0][0] <= self.now:
            _, _, to_server, packet = heapq.heappop(queue)
            self._deliver(to_server, packet)
        self.client_stack.on_timer(self.now)
        self.server_stack.on_timer(self.now)
        self.flush()
        return True

    def run(self, until: Callable[[Simulator], bool] | None = None, max_time: float = 3600.0) -> bool:
        """Step until `until(self)` holds (True), the network is idle, or max_time passes."""
        while self.now <= max_time:
            if until is not None and until(self):
                return True
            if not self.step():
                return until is None or until(self)
        return False

    @property
    def server_closed(self) -> bool:
        return self.server is not None and self.server.state is State.CLOSED

"""AsyncStack: the sans-IO Stack driven by an asyncio event loop.

The whole runtime is two callbacks and one rule (DESIGN.md rules 2 and 6):

- `loop.add_reader(link.fileno(), ...)`: the link has packets. Take a batch, feed each packet to
  the stack, then run one *round*.
- ONE `loop.call_at` timer, armed for the earliest deadline of the stack and of the link. When it
  fires: `stack.on_timer(now)`, `link.on_timer(now)`, collect any packets the link released, run
  one round.
- A round: `stack.transmit(now)` goes out through the link, then every connection the stack
  reports active (`stack.drain_active()`) has its transport brought up to date (data to the
  protocol, pending writes into the send buffer, end of stream, errors), repeated while that
  produced more to send; finally the timer is re-armed for the new earliest deadline.

User calls on a transport (write, close, resume_reading, ...) happen outside a round: they
`poke` the stack and ask for a round with `loop.call_soon`, once, however many calls there are in
one loop iteration. A round that handed data to a protocol asks for the next round itself, at its
end: asyncio runs the application's reply (a task woken by that data) in the next loop iteration,
and the round queued behind it sends the reply in that same iteration, instead of one iteration
later (an echo or an HTTP answer: one loop pass less per request). Nothing else runs: with no packets and no deadline, the loop sleeps and the
stack costs no CPU at all, however many connections have come and gone.

`now` is always `loop.time()` (the monotonic clock asyncio itself uses).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import Any, Callable

from ..link.base import LinkClosed
from ..stack import Stack, StackError
from ..tcp.config import TcpConfig
from ..tcp.events import ConnectionSnapshot
from ..tcp.state import State
from ..wire.ipv4 import address_text, address_value
from ..wire.ipv6 import address6_value
from .registry import register, unregister, default_program
from .errors import os_error
from .options import client_options, server_options
from .server import Server
from .transport import FINISHED_STATES, TcpTransport, _socket_address


logger = logging.getLogger("ustack.aio")

MAX_BATCH = 64  # packets taken from the link per readable event
MAX_ROUNDS = 16  # transmit/update passes in one round before yielding to the loop

# An observer is called as observer(now, kind, item):
#   kind "<": item is a packet (bytes) received from the link
#   kind ">": item is a packet (bytes) sent to the link
#   kind "event": item is a ustack.stack.StackEvent (connection, event), e.g. StateChanged
Observer = Callable[[float, str, Any], None]


class AsyncStack:
    """A ustack Stack driven by the running asyncio loop, with asyncio's server and connection API.

        async with AsyncStack(Stack("10.77.0.2"), link) as astack:
            server = await astack.start_server(handle, port=7)

    Unless `control=False`, a started AsyncStack registers with this process's control socket,
    so `ustack ss` and `ustack stats` show it under `program` (default: "python SCRIPT").
    To build the TUN device and namespace too, use `ustack.aio.open_tun_stack`."""

    def __init__(self, stack: Stack, link: Any, *, max_batch: int = MAX_BATCH, control: bool = True,
                 program: str | None = None) -> None:
        self.stack = stack
        # Only observers read the stack's events (_report_events): none, none made (stack.py).
        stack.events_wanted = False
        self.link = link
        self.control = control
        self.program = program or default_program()
        self.max_batch = max_batch
        self.loop: asyncio.AbstractEventLoop | None = None
        self._transports: dict[Any, TcpTransport] = {}  # core Connection -> its transport
        self._servers: list[Server] = []
        self._dirty: dict[TcpTransport, None] = {}  # transports to update in the next round
        self._observers: list[Observer] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future]] = []
        self._client_tasks: set[asyncio.Task] = set()  # start_server handlers running (held: tasks are weak)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._round_scheduled = False
        self._in_round = False
        self._poked = False  # a user call touched a connection during this round
        self._delivered = False  # a transport handed data to its protocol during this round
        self._started = False
        self._closed = False
        self._fd = -1
        self.counters: dict[str, int] = {"rounds": 0, "timer_fired": 0, "batches": 0}

    # ------------------------------------------------------------------------------------------
    # Life cycle
    # ------------------------------------------------------------------------------------------
    async def start(self) -> "AsyncStack":
        if self._started:
            return self
        self.loop = asyncio.get_running_loop()
        self._fd = self.link.fileno()  # kept: the link may be closed before we are
        self.loop.add_reader(self._fd, self._on_readable)
        self._started = True
        self._round(self.loop.time())
        if self.control:
            await register(self)
        return self

    async def close(self, grace: float = 0.0) -> None:
        """Stop listening and let go of the link's fd and the timer. The link itself stays open:
        whoever made it closes it.

        Unlike the kernel, ustack's TCP stops running when its AsyncStack does, so a connection
        that still has work to do (data or a FIN not yet acknowledged, even one the application
        already closed) cannot finish later. With `grace` seconds, close() first waits for such
        connections to finish; then it aborts (RST, RFC 9293 3.10.5) every connection not in
        TIME-WAIT or CLOSED, so no peer is left waiting for data that will never come."""
        if self._closed or not self._started:
            self._closed = True
            return
        if self.control:
            await unregister(self)
        for server in list(self._servers):
            server.close()
        if grace > 0:
            try:
                await self.wait_until(lambda: not self._unfinished_connections(), grace)
            except TimeoutError:
                pass
        for transport in list(self._transports.values()):
            transport.abort()
        now = self.loop.time()
        for connection in self._unfinished_connections():
            connection.abort(now)
            self.stack.poke(connection)
        self._round(now)
        self._closed = True
        self.loop.remove_reader(self._fd)
        self._cancel_timer()
        for _, future in self._waiters:
            if not future.done():
                future.cancel()
        self._waiters.clear()

    def _unfinished_connections(self) -> list:
        """Connections that still need this stack to run: all but TIME-WAIT and CLOSED ones
        (TIME-WAIT only waits; nothing is owed to the peer)."""
        return [c for c in self.stack.all_connections() if c.state not in FINISHED_STATES]

    async def __aenter__(self) -> "AsyncStack":
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    @property
    def timer_armed(self) -> bool:
        """True while the one timer is set (false when the stack is idle: nothing is due)."""
        return self._timer is not None

    # ------------------------------------------------------------------------------------------
    # The asyncio API
    # ------------------------------------------------------------------------------------------
    async def create_connection(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int | None = None,
        *,
        local_port: int | None = None,
        config: TcpConfig | None = None,
        fast_open: bool = False,
        data: bytes = b"",
        **options: Any,
    ) -> tuple[TcpTransport, asyncio.BaseProtocol]:
        """Active open (RFC 9293 3.10.1), like loop.create_connection. Raises
        ConnectionRefusedError when an RST answers the SYN, TimeoutError when the SYN retries run
        out. `config` replaces the stack's TcpConfig for this connection (what socket options do).
        `data` is written before the SYN leaves; with `fast_open` (TCP Fast Open, RFC 7413: what
        MSG_FASTOPEN and TCP_FASTOPEN_CONNECT ask of Linux) the SYN asks for a cookie, or, with
        one cached for the server, carries the start of `data` (tcp/fastopen.py).

        The standard keyword arguments are taken (`ssl=None`, `family`, `proto`, `flags`,
        `local_addr=(host, port)`, `happy_eyeballs_delay`, `interleave`, `all_errors`, ...); those
        ustack cannot honour (`ssl`, `sock`, another family) raise ValueError saying so."""
        self._require_running()
        local_port = client_options(options, (self.stack.address, self.stack.address6), local_port, host)
        if host is None or port is None:
            raise ValueError("host and port are needed (ustack has no sock= to connect instead)")
        remote = _parse_address(host)
        _check_port(port)
        try:
            connection = self.stack.connect(remote, port, self.loop.time(), local_port=local_port, config=config,
                                            fast_open=fast_open)
        except StackError as error:
            raise os_error(error.errno, str(error)) from None
        written = connection.send(bytes(data), self.loop.time()) if data else 0  # SEND in SYN-SENT queues (3.10.2)
        protocol = protocol_factory()
        transport = TcpTransport(self, connection, protocol)
        transport.open_waiter = self.loop.create_future()
        self._transports[connection] = transport
        self.request_round()
        try:
            await transport.open_waiter
        except asyncio.CancelledError:
            transport.abort()  # wait_for() gave up: the attempt must not linger in SYN-SENT
            raise
        if written < len(data):  # beyond the send buffer: the transport keeps the rest, in order
            transport.write(data[written:])
        return transport, protocol

    async def open_connection(
        self, host: str | None = None, port: int | None = None, *, limit: int = 2**16, **options: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Like asyncio.open_connection, over ustack (the keywords of create_connection)."""
        loop = self._require_running()
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport, _ = await self.create_connection(lambda: protocol, host, port, **options)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        return reader, writer

    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | list[str] | None = None,
        port: int | None = None,
        *,
        backlog: int = 100,
        start_serving: bool = True,
        reuse_address: bool | None = None,
        config: TcpConfig | None = None,
        **options: Any,
    ) -> Server:
        """Passive open, like loop.create_server: a listener; every accepted connection gets
        protocol_factory(). Port 0 or None picks a free port (read it from
        `server.sockets[0].getsockname()`). With `start_serving=False` the port is reserved but
        nothing is accepted until `await server.start_serving()` (or `serve_forever()`).

        `reuse_address` is accepted and has nothing to do: a ustack listener can always take a
        port whose old connections are in TIME-WAIT. `keep_alive=True` turns keep-alive on.
        `ssl`, `sock`, `reuse_port` and other families raise ValueError."""
        self._require_running()
        config = server_options(options, config, self.stack.config)
        address, wildcards = self._listening_address(host)
        if port is None or port == 0:
            port = self.free_listening_port()
        _check_port(port)
        if self.stack.listening_clash(address, port) or any(
            server.port == port and not server.is_serving() for server in self._servers
        ):
            raise os_error(errno.EADDRINUSE, f"port {port} is already listened on")

        def listen() -> Any:
            try:
                return self.stack.listen(port, address=address, backlog=backlog, config=config,
                                         any_address=bool(wildcards))
            except StackError as error:
                raise os_error(error.errno, str(error)) from None

        # What server.sockets shows, as asyncio's: one socket per address listened on, the
        # wildcards as asyncio binds them ("0.0.0.0", and "::" with IPV6_V6ONLY).
        names = [(wildcard, port) if wildcard == "0.0.0.0" else (wildcard, port, 0, 0) for wildcard in wildcards]
        server = Server(self, listen, protocol_factory, names or [_socket_address(address, port)])
        if start_serving:
            server._start()
        self._servers.append(server)
        return server

    async def start_server(
        self,
        client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
        host: str | None = None,
        port: int | None = None,
        *,
        limit: int = 2**16,
        **options: Any,
    ) -> Server:
        """Like asyncio.start_server: client_connected_cb(reader, writer) per connection (a
        coroutine function runs as a task); the keywords of create_server."""
        loop = self._require_running()

        def start_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # The handler's task is made here rather than by StreamReaderProtocol: asyncio 3.11's
            # done-callback calls task.exception() on it, which raises for a task cancelled by
            # asyncio.run() at shutdown and prints a traceback ("Exception in callback ...") for
            # every connection still open when the program stops (Ctrl-C on `ustack serve`).
            result = client_connected_cb(reader, writer)
            if asyncio.iscoroutine(result):
                task = loop.create_task(result)
                self._client_tasks.add(task)
                task.add_done_callback(self._client_tasks.discard)
                task.add_done_callback(lambda task: _client_task_done(loop, task, writer.transport))

        def factory() -> asyncio.StreamReaderProtocol:
            reader = asyncio.StreamReader(limit=limit, loop=loop)
            return asyncio.StreamReaderProtocol(reader, start_client, loop=loop)

        return await self.create_server(factory, host, port, **options)

    def _listening_address(self, host: str | list[str] | None) -> tuple[int | bytes, list[str]]:
        """Where create_server's `host` listens, as asyncio's create_server would: the stack's
        address (0: every one of ours, both families), and the wildcards it stands for.

        asyncio makes one socket per address of getaddrinfo(host, AI_PASSIVE) and sets
        IPV6_V6ONLY on each AF_INET6 one (base_events.create_server): "0.0.0.0" takes IPv4 only,
        "::" IPv6 only, and None or "" both (two sockets, 0.0.0.0 and ::). On this host, with one
        address per family, a family's wildcard takes what its address takes; both families is
        one dual-stack listener (address 0)."""
        hosts = [host] if host is None or isinstance(host, str) else list(host)
        family_address = {"0.0.0.0": self.stack.address, "::": self.stack.address6}
        if any(item in (None, "") for item in hosts):  # every address: both families
            return 0, [wildcard for wildcard, address in family_address.items() if address is not None]
        wildcards: list[str] = []
        addresses: set[int | bytes] = set()
        for item in hosts:
            if item in family_address:
                if family_address[item] is None:
                    raise os_error(errno.EADDRNOTAVAIL, f"this stack has no address of {item}'s family")
                wildcards.append(item)
                addresses.add(family_address[item])
            else:
                addresses.add(_parse_address(item))
        for address in addresses:
            if address not in (self.stack.address, self.stack.address6):
                raise os_error(errno.EADDRNOTAVAIL,
                               f"{address_text(address)} is not this stack's address ({address_text(self.stack.address)})")
        wildcards = list(dict.fromkeys(wildcards))
        if len(addresses) > 1:
            return 0, wildcards
        address = addresses.pop()
        # A family's wildcard, or its one address named as such: shown as the wildcard only if asked.
        return address, [w for w in wildcards if (w == "::") == (type(address) is bytes)]

    # ------------------------------------------------------------------------------------------
    # Looking in
    # ------------------------------------------------------------------------------------------
    def snapshots(self) -> list[ConnectionSnapshot]:
        """Every listener (state LISTEN) and every connection, for `ustack ss`."""
        listening = [_listener_snapshot(listener) for listener in self.stack.listeners.values()]
        return listening + [connection.snapshot() for connection in self.stack.all_connections()]

    def add_observer(self, observer: Observer) -> None:
        """observer(now, "<" | ">", packet) for each packet, observer(now, "event", StackEvent)
        for each event of a connection (state changes first among them)."""
        self._observers.append(observer)
        self.stack.events_wanted = True

    def remove_observer(self, observer: Observer) -> None:
        self._observers.remove(observer)
        self.stack.events_wanted = bool(self._observers)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        """Wait until predicate() is true, checking it after every round (no polling).
        Raises TimeoutError after `timeout` seconds."""
        loop = self._require_running()
        if predicate():
            return
        future = loop.create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    # ------------------------------------------------------------------------------------------
    # For transports and servers
    # ------------------------------------------------------------------------------------------
    def poke(self, connection: Any) -> None:
        """A user call touched `connection`: transmit what it produced in the next round."""
        self.stack.poke(connection)
        self._poked = True
        self.request_round()

    def poke_later(self, connection: Any) -> None:
        """Like poke, for what may wait for the round that follows a delivery (a window update
        after the application took data): this round makes no second pass for it."""
        self.stack.poke(connection)
        self._delivered = True
        if not self._in_round:
            self.request_round()

    def delivered(self) -> None:
        """A transport handed data to its protocol: the reply is likely in the next iteration."""
        self._delivered = True

    def mark_dirty(self, transport: TcpTransport) -> None:
        """Bring `transport` up to date in the next round (e.g. after resume_reading)."""
        self._dirty[transport] = None
        self.request_round()

    def forget(self, transport: TcpTransport) -> None:
        if self._transports.get(transport._connection) is transport:
            del self._transports[transport._connection]
        self._dirty.pop(transport, None)

    def register(self, transport: TcpTransport) -> None:
        self._transports[transport._connection] = transport

    def remove_server(self, server: Server, was_listening: bool) -> None:
        if server in self._servers:
            self._servers.remove(server)
        if not was_listening:
            return
        self.stack.close_listener(server.listener, self.loop.time())
        self._poked = True  # the resets of the connections nobody accepted go out in the next round
        self.request_round()

    def request_round(self) -> None:
        """Run a round soon: once per loop iteration however many calls ask (batched flush)."""
        if self._in_round or self._round_scheduled or self._closed or self.loop is None:
            return
        self._round_scheduled = True
        self.loop.call_soon(self._scheduled_round)

    # ------------------------------------------------------------------------------------------
    # The driver
    # ------------------------------------------------------------------------------------------
    def _on_readable(self) -> None:
        now = self.loop.time()
        self._receive_from_link(now)
        self._round(now)

    def _on_timer(self) -> None:
        deadline = self._timer_deadline
        self._timer = None
        self._timer_deadline = None
        self.counters["timer_fired"] += 1
        # asyncio may run a timer up to one clock tick early; never let the stack see a time
        # before the deadline it asked for, or the timer would fire again for nothing.
        now = max(self.loop.time(), deadline or 0.0)
        # The packets already waiting on the link first (a non-blocking batch; with them those a
        # middleware held back and releases now), then the stack's due timers: a timer acts on
        # the state those packets made. Fired first, a probe timer due as the ACK of the whole
        # flight waited unread asked for a probe that ACK made needless (issue 12), and a
        # retransmission timer could resend what an ACK waiting there had acknowledged.
        self.link.on_timer(now)
        self._receive_from_link(now)
        self.stack.on_timer(now)
        self._report_events(now)
        self._round(now)

    def _scheduled_round(self) -> None:
        self._round_scheduled = False
        if not self._closed:
            self._round(self.loop.time())

    def _receive_from_link(self, now: float) -> None:
        try:
            batch = self.link.receive_batch(now, self.max_batch)
        except LinkClosed as error:
            logger.warning("ustack: %s; no more packets will arrive", error)
            self.loop.remove_reader(self._fd)
            return
        self.counters["batches"] += 1
        for packet in batch:  # a Tracer in the link starts this packet's line as the loop reaches it
            if self._observers:
                self._notify(now, "<", packet)
            try:
                self.stack.receive(packet, now)
            except Exception:
                # A bug below us must not take every other connection down with it.
                self.counters["packets_failed"] = self.counters.get("packets_failed", 0) + 1
                logger.exception("ustack: the stack failed on a packet of %d bytes; it was dropped", len(packet))
            self._report_events(now)  # state changes land on the line of the packet that caused them

    def _round(self, now: float) -> None:
        if self._closed:
            return
        self.counters["rounds"] += 1
        self._in_round = True
        try:
            for _ in range(MAX_ROUNDS):
                self._poked = False
                self._report_events(now)  # changes made by user calls (connect, close, ...)
                packets = self.stack.transmit(now)
                self._report_events(now)
                if packets:
                    self._send(packets, now)
                self._accept_new_connections(now)
                for connection in self.stack.drain_active():
                    transport = self._transports.get(connection)
                    if transport is not None:
                        self._dirty[transport] = None
                dirty, self._dirty = self._dirty, {}
                for transport in dirty:
                    transport._update(now)
                if not (self._poked or self._dirty):
                    break  # nothing new to transmit, nobody left to update
            else:
                # Still busy after MAX_ROUNDS passes: let other callbacks run, then go on.
                if not self._round_scheduled:
                    self._round_scheduled = True
                    self.loop.call_soon(self._scheduled_round)
        finally:
            self._in_round = False
        if self._delivered:
            # Queued behind the callbacks that data woke (call_soon keeps order): the reply they
            # write goes out in the same loop iteration.
            self._delivered = False
            self.request_round()
        self.link.flush()
        self._rearm_timer()
        if self._waiters:
            self._check_waiters()

    def _send(self, packets: list[bytes], now: float) -> None:
        if self._observers:
            for packet in packets:
                self._notify(now, ">", packet)
        self.link.send_batch(packets, now)

    def _notify(self, now: float, kind: str, item: Any) -> None:
        for observer in list(self._observers):
            try:
                observer(now, kind, item)
            except Exception as error:
                self.loop.call_exception_handler({"message": f"ustack observer {observer!r} failed", "exception": error})

    def _accept_new_connections(self, now: float) -> None:
        for server in self._servers:
            while server.is_serving() and server.wants_connection():
                connection = server.listener.accept()
                if connection is None:
                    break
                server._accept(connection, now)

    def _report_events(self, now: float) -> None:
        events = self.stack.events()
        if not events:
            return
        if self._observers:
            for item in events:
                self._notify(now, "event", item)

    def _rearm_timer(self) -> None:
        """Keep the one timer at or before the earliest deadline. A deadline that moved later
        (the retransmission timer restarted by an ACK, as on nearly every round of a busy
        connection) leaves the armed timer alone: it fires early, finds nothing due and is armed
        again then. Moving it each time made a TimerHandle and left a cancelled one in asyncio's
        heap per round."""
        deadline = _earliest(self.stack.next_deadline(), self.link.next_deadline())
        armed = self._timer_deadline
        if deadline == armed or (deadline is not None and armed is not None and deadline > armed):
            return
        self._cancel_timer()
        if deadline is not None:
            self._timer_deadline = deadline
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_deadline = None

    def _check_waiters(self) -> None:
        for predicate, future in list(self._waiters):
            if future.done():
                continue
            try:
                if predicate():
                    future.set_result(None)
            except Exception as error:  # a broken predicate fails its waiter, not the runtime
                future.set_exception(error)

    def _require_running(self) -> asyncio.AbstractEventLoop:
        if not self._started or self._closed:
            raise RuntimeError("AsyncStack is not running: await astack.start() first")
        return self.loop

    def free_listening_port(self) -> int:
        """A port no listener, server (also one not serving yet) or connection of ours uses."""
        from ..stack import EPHEMERAL_PORTS

        taken = {port for (_, port) in self.stack.listeners} | {server.port for server in self._servers}
        taken |= {connection.local_port for connection in self.stack.all_connections()}
        for port in EPHEMERAL_PORTS:
            if port not in taken:
                return port
        raise os_error(errno.EADDRINUSE, "no free port to listen on")


def _earliest(*deadlines: float | None) -> float | None:
    present = [deadline for deadline in deadlines if deadline is not None]
    return min(present) if present else None


def _parse_address(host: str) -> int | bytes:
    """An IPv4 literal as an int, an IPv6 literal (also in [brackets]) as 16 bytes."""
    if host == "localhost":
        raise os_error(errno.EADDRNOTAVAIL, "ustack has no loopback interface: use the peer's IP address")
    try:
        if ":" in host:
            return address6_value(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
        return address_value(host)
    except ValueError:
        raise os_error(errno.EINVAL, f"{host!r} is not an IPv4 or IPv6 address (ustack does not resolve names)") from None


def _check_port(port: int) -> None:
    if not isinstance(port, int) or not 0 < port < 65536:
        raise os_error(errno.EINVAL, f"port {port!r} is not in 1..65535")


def _listener_snapshot(listener: Any) -> ConnectionSnapshot:
    """A listener in the shape of a connection snapshot, as `ss` shows it: LISTEN, the local
    address, the accept queue as Recv-Q and the backlog as Send-Q."""
    if hasattr(listener, "snapshot"):
        return listener.snapshot()
    return ConnectionSnapshot(
        state=State.LISTEN,
        local=(listener.local_address, listener.local_port),
        remote=(0, 0),
        snd_una=0,
        snd_nxt=0,
        snd_wnd=0,
        rcv_nxt=0,
        rcv_wnd=0,
        cwnd=0,
        ssthresh=0,
        srtt=None,
        rttvar=None,
        rto=0.0,
        retransmissions=0,
        bytes_sent=0,
        bytes_received=0,
        send_queue=getattr(listener, "backlog", 0),
        receive_queue=len(getattr(listener, "accept_queue", ())),
        timers={},
        error=None,
        listening_on=getattr(listener, "listening_on", None),
    )


def _client_task_done(loop: asyncio.AbstractEventLoop, task: asyncio.Task, transport) -> None:
    """A start_server handler ended: an exception it let out is reported (as asyncio does, through
    the loop's exception handler) and its connection closed; a cancelled one just ends."""
    if task.cancelled():
        transport.close()
        return
    error = task.exception()
    if error is not None:
        loop.call_exception_handler({"message": "Unhandled exception in client_connected_cb",
                                     "exception": error, "transport": transport})
        transport.close()

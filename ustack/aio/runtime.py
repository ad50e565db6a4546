"""AsyncStack: a ustack Stack on the running asyncio loop, with asyncio's API.

The loop machinery (the link's reader, rounds, the one timer) is driver.Driver's; this file adds
what an application calls: create_connection / open_connection, create_server / start_server,
start and close, and what `ustack ss` and observers look at.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import weakref
from typing import Any, Callable

from ..stack import Stack, StackError
from ..tcp.config import TcpConfig
from ..tcp.events import ConnectionSnapshot
from ..tcp.state import State
from ..wire.ipv4 import address_text, address_value
from ..wire.ipv6 import address6_value
from .driver import MAX_BATCH, Driver, Observer
from .registry import register, unregister, default_program
from .errors import os_error
from .options import client_options, server_options
from .server import Server
from .transport import FINISHED_STATES, READ_CHUNK, TcpTransport, _socket_address


class AsyncStack(Driver):
    """A ustack Stack driven by the running asyncio loop, with asyncio's server and connection API.

        async with AsyncStack(Stack("10.77.0.2"), link) as astack:
            server = await astack.start_server(handle, port=7)

    Unless `control=False`, a started AsyncStack registers with this process's control socket,
    so `ustack ss` and `ustack stats` show it under `program` (default: "python SCRIPT").
    To build the TUN device and namespace too, use `ustack.aio.open_tun_stack`."""

    def __init__(self, stack: Stack, link: Any, *, max_batch: int = MAX_BATCH, control: bool = True,
                 program: str | None = None) -> None:
        super().__init__(stack, link, max_batch)
        self.control = control
        self.program = program or default_program()
        # start_server handlers running, by their transport (held here: the loop holds tasks weakly).
        self._client_tasks: dict[TcpTransport, asyncio.Task] = {}
        self._started = False

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
        reader = TcpStreamReader(limit=limit, loop=loop)
        protocol = StreamProtocol(reader, loop=loop)
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
        # A coroutine function (also a method, a partial, or an object with `async def __call__`).
        handler_is_async = inspect.iscoroutinefunction(client_connected_cb) or inspect.iscoroutinefunction(
            getattr(type(client_connected_cb), "__call__", None))

        def start_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # The handler's task is made here rather than by StreamReaderProtocol: asyncio 3.11's
            # done-callback calls task.exception() on it, which raises for a task cancelled by
            # asyncio.run() at shutdown and prints a traceback ("Exception in callback ...") for
            # every connection still open when the program stops (Ctrl-C on `ustack serve`).
            if handler_is_async:
                # Called inside its task: a task cancelled before its first step (asyncio.run at
                # shutdown) has then made no coroutine that nobody awaits ("never awaited").
                handler = client_connected_cb
            else:
                result = client_connected_cb(reader, writer)  # a plain function runs now, as with asyncio
                if not asyncio.iscoroutine(result):
                    return
                handler = lambda _reader, _writer: result  # noqa: E731 (it returned a coroutine)
            self._client_tasks[writer.transport] = loop.create_task(self._run_client(handler, reader, writer))

        def factory() -> asyncio.StreamReaderProtocol:
            reader = TcpStreamReader(limit=limit, loop=loop)
            return StreamProtocol(reader, start_client, loop=loop)

        return await self.create_server(factory, host, port, **options)

    async def _run_client(self, handler: Callable[..., Any], reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        """A start_server handler's task: the handler, then what asyncio's done-callback would do,
        in the task's own last step rather than in a loop callback after it (one per connection,
        issue 12): the task is let go, an exception it let out is reported (as asyncio does,
        through the loop's exception handler) and its connection closed; a cancelled one closes
        its connection and ends cancelled."""
        transport = writer.transport
        try:
            await handler(reader, writer)
        except asyncio.CancelledError:
            transport.close()
            raise
        except Exception as error:
            self.loop.call_exception_handler({"message": "Unhandled exception in client_connected_cb",
                                              "exception": error, "transport": transport})
            transport.close()
        finally:
            self._client_tasks.pop(transport, None)

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
        if not self._observers:
            self.stack.events()  # dropped: rounds read events only for observers

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
        except asyncio.TimeoutError:
            # The built-in TimeoutError from 3.11 on; before (PyPy 3.9) asyncio's own class,
            # which callers that catch TimeoutError would miss (compat.py).
            raise TimeoutError(f"not true within {timeout} s") from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    # ------------------------------------------------------------------------------------------
    # For transports and servers
    # ------------------------------------------------------------------------------------------
    def remove_server(self, server: Server, was_listening: bool) -> None:
        if server in self._servers:
            self._servers.remove(server)
        if not was_listening:
            return
        self.stack.close_listener(server.listener, self.loop.time())
        self._poked = True  # the resets of the connections nobody accepted go out in the next round
        self.request_round()

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


class TcpStreamReader(asyncio.StreamReader):
    """asyncio's StreamReader, whose read(n) takes the data straight out of the connection's
    receive buffer (issue 12).

    asyncio's reader keeps a buffer of its own: the transport copies what arrives into it
    (data_received, feed_data) and read(n) copies it out again, two copies of every byte and a
    Python round of callbacks per delivery. Here the transport leaves the data in the receive
    buffer and only wakes a waiting reader (StreamProtocol.data_readable); read(n) then takes up
    to n bytes with one `conn.recv`, which is also what reopens the window (DESIGN.md rule 5:
    the receive buffer, the window the peer sees, is the only buffer, so backpressure is the
    window itself). The other reads (readline, readuntil, readexactly) work on asyncio's own
    buffer as before: before they wait, they move up to READ_CHUNK bytes into it
    (_wait_for_data). Data that arrives with a reset, or while this reader holds bytes in its own
    buffer, still comes through data_received."""

    async def read(self, n: int = -1) -> bytes:
        if n <= 0 or self._buffer:
            return await super().read(n)  # read all until EOF, or what asyncio's buffer holds first
        while True:
            if self._exception is not None:
                raise self._exception
            transport = self._transport
            data = transport.take_data(n) if transport is not None else b""
            if data or self._eof:
                return data
            if self._buffer:  # pushed while we waited (a reset, or the transport could not pull)
                return await super().read(n)
            await self._wait_until_readable()

    async def read_chunks(self, n: int) -> list:
        """Like read(n), the data as the pieces ustack's receive buffer held it in, none copied
        (bytes-like: bytes, read-only memoryviews of received packets, a short bytearray); []
        at the end of the stream. For a parser that copies what it is given into a buffer of
        its own anyway (h11's receive_data): read() would join the pieces into bytes first,
        one more copy of every byte (issue 12). Not part of asyncio's StreamReader."""
        if n <= 0:
            raise ValueError(f"read_chunks needs a positive size, not {n}")
        while not self._buffer:
            if self._exception is not None:
                raise self._exception
            transport = self._transport
            chunks = transport.take_data(n, True) if transport is not None else []
            if chunks or self._eof:
                return chunks
            if not self._buffer:
                await self._wait_until_readable()
        data = await super().read(n)  # what asyncio's buffer holds comes first
        return [data] if data else []

    async def _wait_for_data(self, func_name: str) -> None:
        # readline / readuntil / readexactly need asyncio's buffer: fill it from the receive
        # buffer, and wait only if there is nothing to take.
        transport = self._transport
        if transport is None:
            return await super()._wait_for_data(func_name)
        data = transport.take_data(READ_CHUNK)
        if not data:
            await super()._wait_for_data(func_name)
            data = transport.take_data(READ_CHUNK)
        if data:
            self._buffer.extend(data)

    async def _wait_until_readable(self) -> None:
        """StreamReader._wait_for_data without the filling: read() takes the data itself."""
        if self._waiter is not None:
            raise RuntimeError("read() called while another coroutine is already waiting for incoming data")
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


class StreamProtocol(asyncio.StreamReaderProtocol):
    """asyncio's stream protocol, for a TcpStreamReader that takes its data itself, and whose close
    future never reports an error nobody asked for.

    With a TcpStreamReader, the transport calls `data_readable()` instead of data_received when
    data waits in the receive buffer (`pulls_data`): the reader is woken, and takes it.

    connection_lost(exc) leaves `exc` (a reset: ConnectionResetError) in the future that
    `writer.wait_closed()` awaits. asyncio counts on StreamReaderProtocol.__del__ to mark it
    retrieved before that future is freed, but a stream that saw an error is freed by the cyclic
    GC (the exception's traceback holds the reader's frames, the reader its transport, the
    transport its protocol), whose finalizers run in the order of its lists: the future's could
    come first and print "Future exception was never retrieved" to the user (`ustack connect`
    after a reset). The application hears the error from read() or drain(); wait_closed() still
    raises it: retrieved here is not swallowed. A future cancelled with a task that awaited
    wait_closed() has nothing to retrieve (asking would raise CancelledError here)."""

    # connection_lost only records the end (the reader's EOF, the close future, drain's waiters):
    # the transport may call it inside close(), so that `writer.close(); await
    # writer.wait_closed()` ends without a loop iteration in between (transport._finish_close).
    connection_lost_inside_close = True

    def __init__(self, stream_reader: asyncio.StreamReader, *args: Any, **kwargs: Any) -> None:
        super().__init__(stream_reader, *args, **kwargs)
        self.pulls_data = isinstance(stream_reader, TcpStreamReader)
        # Weak, as asyncio holds it (the application may drop its reader); read here on every
        # delivery without the property asyncio reads it through.
        self._reader_ref = weakref.ref(stream_reader)

    def data_readable(self) -> bool:
        """Data waits in the receive buffer: wake the reader if it waits for some. True if it
        did (its task runs next; it may answer)."""
        reader = self._reader_ref()
        if reader is None:
            return False
        waiter = reader._waiter
        if waiter is None:
            return False
        reader._waiter = None  # StreamReader._wakeup_waiter, in line
        if not waiter.cancelled():
            waiter.set_result(None)
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        closed = self._closed
        if exc is not None and not closed.cancelled():
            closed.exception()  # what __del__ does, now rather than at the GC's whim


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

"""`ustack connect HOST PORT`: a netcat-like client whose TCP is ustack's and whose peer is the
kernel (a server listening on the kernel side of the TUN device).

    sudo ip netns add ust-lab
    sudo ustack connect --netns ust-lab 10.77.0.1 5000 < request.txt
    (meanwhile: ip netns exec ust-lab nc -l 10.77.0.1 5000)

What is read from stdin is sent; what arrives is written to stdout. End of stdin half-closes the
connection (our FIN, like `nc -N`); the command ends when both directions are over: the peer
closed its side and all of stdin was sent (like nc, it keeps sending after the peer's FIN).
Exit status 0 after a clean close; 1 with one line on stderr when the connection is refused,
reset or times out.

With --ladder, the connection is drawn as a ladder diagram on stderr when the command ends
(stdout carries the data); --relative numbers it like tcpdump without -S.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading

from ..network import UstackNetwork
from .arguments import add_ladder_arguments, add_network_arguments, ip_address, port_value, seconds_value
from .errors import CliError
from .live import make_ladders, open_network, start_control_server, tcp_config
from .signals import sigterm_as_interrupt, stop_on_signals

READ_SIZE = 65536
CLOSE_GRACE = 10.0  # at most this long for our last data and FIN to be acknowledged, at the end


class ConnectFailed(Exception):
    """The connection failed in a way to report in one line, with exit status 1."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("connect", help="connect from ustack to a kernel server: stdin out, stdout in (like nc)")
    parser.add_argument("host", metavar="HOST", type=ip_address,
                        help="the server's IPv4 or IPv6 address (e.g. the kernel side, 10.77.0.1 or fd00:77::1)")
    parser.add_argument("port", metavar="PORT", type=port_value)
    parser.add_argument("--timeout", metavar="SECONDS", type=seconds_value, default=10.0,
                        help="give up connecting after this long (default 10; 0 means no time limit, "
                             "as with curl --connect-timeout 0 and timeout(1))")
    parser.add_argument("-v", "--verbose", action="store_true", help="say on stderr when connected and when closed")
    add_network_arguments(parser)
    add_ladder_arguments(parser, with_port=False)
    parser.set_defaults(run=run)


def run(args) -> int:
    if args.host == args.addr:
        # Our own address: the packets would never reach the TUN device (ustack does not talk to
        # itself through the kernel), so the connection would only wait out --timeout.
        raise CliError(f"{args.host} is ustack's own address (--addr); connect to the kernel side, "
                       f"like {args.host_addr.split('/')[0]}")
    ladders = make_ladders(args, sys.stderr)
    with sigterm_as_interrupt(), open_network(args, trace_output=sys.stderr, ladders=ladders) as network:
        try:
            return asyncio.run(_connect(args, network, ladders))
        except ConnectFailed as failure:
            print(f"ustack connect: {failure}", file=sys.stderr)
            return 1
        finally:
            if ladders is not None:
                ladders.finish()  # (normally done already, before the stack stopped)


async def _connect(args, network: UstackNetwork, ladders=None) -> int:
    from ..aio import AsyncStack
    from ..aio.transport import FINISHED_STATES

    stop = stop_on_signals()
    peer = f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"

    async with AsyncStack(network.make_stack(tcp_config(args)), network.link, control=False) as astack:
        for observer in network.observers:
            astack.add_observer(observer)
        if ladders is not None:
            astack.add_observer(ladders.observe)
        control = await start_control_server(network, astack, "ustack connect")
        try:
            try:
                opened = await _unless_stopped(
                    asyncio.wait_for(astack.open_connection(args.host, args.port), args.timeout or None), stop)
                if opened is None:
                    return 130  # Ctrl-C or SIGTERM while connecting (the stack aborts the SYN-SENT)
                reader, writer = opened
            except asyncio.TimeoutError:
                raise ConnectFailed(f"connecting to {peer} timed out") from None
            except ConnectionRefusedError:
                raise ConnectFailed(f"connection to {peer} refused") from None
            except OSError as error:
                raise ConnectFailed(f"connecting to {peer}: {error.strerror or error}") from None
            if args.verbose:
                print(f"ustack connect: connected to {peer}", file=sys.stderr)

            outgoing = asyncio.ensure_future(_stdin_to_connection(writer))
            incoming = asyncio.ensure_future(_connection_to_stdout(reader))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({incoming, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if incoming.done() and incoming.exception() is None and incoming.result():
                # The peer's FIN ends only what we receive: a half-closed connection still
                # carries our data (RFC 9293 3.10.4), so send the rest of stdin, as nc does.
                await asyncio.wait({outgoing, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            # Both tasks' errors are read, even when the first is the one reported: asyncio prints
            # "Task exception was never retrieved" for one nobody read (a reset can end both, the
            # read and a drain() of stdin's data).
            errors = [_error_of(incoming), _error_of(outgoing)]
            if stop.is_set() and not (incoming.done() and outgoing.done()):
                incoming.cancel()
                outgoing.cancel()
                writer.close()
                return 130  # interrupted, as a shell reports Ctrl-C
            outgoing.cancel()
            error = errors[0] or errors[1]
            if isinstance(error, ConnectionResetError):
                raise ConnectFailed(f"connection reset by {peer}")
            if isinstance(error, TimeoutError):
                raise ConnectFailed(f"connection to {peer} timed out (no acknowledgement)")
            if isinstance(error, OSError):
                raise ConnectFailed(f"connection to {peer}: {error.strerror or error}")
            if error is not None:
                raise error
            # Both directions are over: close, and let what we sent (the end of the data and our
            # FIN) be acknowledged before the TUN device goes away with this process.
            writer.close()
            connection = writer.get_extra_info("connection")
            try:
                await astack.wait_until(lambda: connection.state in FINISHED_STATES, CLOSE_GRACE)
            except TimeoutError:
                pass
            if args.verbose:
                print(f"ustack connect: {peer} closed the connection", file=sys.stderr)
            return 0
        finally:
            if ladders is not None:
                ladders.finish()  # before the stack aborts the connection if it is still open
            await control.close()


def _error_of(task: asyncio.Future) -> BaseException | None:
    """The exception a finished task ended with (now retrieved), or None."""
    return task.exception() if task.done() and not task.cancelled() else None


async def _unless_stopped(awaitable, stop: asyncio.Event):
    """The result of `awaitable`, or None if `stop` is set first (the awaitable is then cancelled)."""
    work = asyncio.ensure_future(awaitable)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        work.cancel()
        raise
    finally:
        stopped.cancel()
    if not work.done():
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        return None
    return work.result()


async def _connection_to_stdout(reader: asyncio.StreamReader) -> bool:
    """Copy until the peer's FIN: True; False if nobody reads our output any more."""
    output = sys.stdout.buffer
    while data := await reader.read(READ_SIZE):
        try:
            output.write(data)
            output.flush()
        except BrokenPipeError:
            return False  # `| head` is satisfied: stop, like nc does
    return True


async def _stdin_to_connection(writer: asyncio.StreamWriter) -> None:
    # Small and bounded: the reading thread waits while the connection is slower than stdin, so
    # backpressure reaches the program feeding us instead of piling up here.
    chunks: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)
    loop = asyncio.get_running_loop()

    def read_stdin() -> None:
        # A thread, because stdin may be a terminal, a pipe or a regular file, and only the first
        # two can be watched by the event loop. Daemon: a read blocked on a terminal must not keep
        # the process alive once the connection is over.
        while True:
            try:
                data = os.read(sys.stdin.fileno(), READ_SIZE)
            except OSError:
                data = b""
            put = chunks.put(data)
            try:
                asyncio.run_coroutine_threadsafe(put, loop).result()
            except (RuntimeError, concurrent.futures.CancelledError):
                put.close()  # never ran (the loop is closed) or was cancelled: finish it quietly
                return  # the event loop is gone: the connection is over
            if not data:
                return

    if sys.stdin is not None:  # (no stdin at all counts as an empty one)
        threading.Thread(target=read_stdin, name="stdin", daemon=True).start()
        while data := await chunks.get():
            writer.write(data)
            await writer.drain()  # backpressure: stop taking stdin while the send buffer is full
    # End of stdin: half-close (RFC 9293 3.10.4), we may still receive.
    if writer.can_write_eof():
        writer.write_eof()

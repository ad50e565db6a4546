"""`ustack serve`: ustack on a TUN device, serving files over HTTP and the small classic services,
reachable from the kernel with ordinary tools until Ctrl-C (SIGINT) or SIGTERM.

    sudo ustack serve --netns ust-lab --http ./site --echo
    ustack: 10.77.0.2 on ustun0 in namespace ust-lab (kernel side 10.77.0.1/24, mtu 1500)
    http   : ip netns exec ust-lab curl http://10.77.0.2/
    echo   : ip netns exec ust-lab nc 10.77.0.2 7
    ping   : ip netns exec ust-lab ping 10.77.0.2
    ustack: ready (pid 4242)

With --ladder [PORT], each connection (with PORT, each with that port on either side) is drawn
as a ladder diagram on stdout once it has ended (CLOSED, after TIME-WAIT too), and those still open
when ustack stops (Ctrl-C, SIGTERM) are drawn then; --relative numbers them like tcpdump without -S.
With --loss, the packets dropped are drawn as lost arrows ending in an X. With --plot DIR, each
connection's time-sequence graph, with its cwnd/ssthresh/RTT/RTO below, is written to DIR as SVG.

With --workers N (N > 1), N processes serve, one per queue of a multi-queue TUN device, each with
its own Stack listening on the same ports (ustack/workers.py); `ustack ss` shows their
connections in one table. No --pcap, --trace, faults, --ladder or --web then.

With --cpu N, serve runs on CPU N alone and the packets it writes are taken in by the kernel on
the other CPUs (Receive Packet Steering on the TUN device, ustack/netns.py): a bulk transfer
without offloads goes faster, a round trip gets slower (keep_to_cpu says why both are needed).

Without --netns the TUN device is in the current namespace and the kernel side is reachable
directly (curl http://10.77.0.2/). Everything made here is taken down on exit, on errors too: the
TUN device always, the namespace only if this command created it. The line `ustack: ready` on
stdout (flushed) is the signal scripts wait for.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from pathlib import Path

from ..collector import collect_cycles_less_often
from ..heap import keep_freed_heap_for_reuse
from ..priority import NICE_RANGE, STACK_RENICE, run_ahead_of_clients
from ..network import UstackNetwork
from ..tcp.config import SYNCOOKIE_MODES
from .arguments import (add_ladder_arguments, add_network_arguments, add_web_arguments, backlog_value,
                        fast_open_queue_value, path_value, port_value, retries_value)
from .errors import CliError
from .faults import describe_faults
from .live import make_ladders, open_network, start_control_server, tcp_config
from .plot import add_plot_argument, live_plots
from .signals import sigterm_as_interrupt, stop_on_signals

READY_LINE = "ustack: ready"


def register(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="run ustack on a TUN device and serve HTTP, echo, discard, chargen")
    services = parser.add_argument_group("services")
    services.add_argument("--http", metavar="DIR", type=path_value,
                          help="serve this directory over HTTP/1.1 (GET, HEAD; PUT and POST only with --allow-upload)")
    services.add_argument("--allow-upload", action="store_true",
                          help="let HTTP PUT and POST store files in the --http directory (never outside it); "
                               "off by default: anyone who reaches the server could overwrite files")
    services.add_argument("--http-port", metavar="N", type=port_value, default=80, help="HTTP port (default 80)")
    services.add_argument("--echo", action="store_true", help="echo service on port 7 (RFC 862)")
    services.add_argument("--discard", action="store_true", help="discard service on port 9 (RFC 863)")
    services.add_argument("--chargen", action="store_true", help="character generator on port 19 (RFC 864)")
    flood = parser.add_argument_group("SYN flood defence (RFC 4987)")
    flood.add_argument("--backlog", metavar="N", type=backlog_value, default=128,
                       help="each listener's SYN queue and accept queue (default 128, like listen(2)'s backlog)")
    flood.add_argument("--syncookies", choices=SYNCOOKIE_MODES, default="auto",
                       help="SYN cookies when a SYN queue is full (auto, the default), never, or for every SYN")
    flood.add_argument("--synack-retries", metavar="N", type=retries_value, default=5,
                       help="SYN-ACK retransmissions before a half-open connection is dropped (default 5, as Linux)")
    parser.add_argument("--ecn", choices=("on", "passive", "off"), default="passive",
                        help="ECN (RFC 3168): passive (the default, as Linux's tcp_ecn=2) agrees when a peer's "
                             "SYN asks; on also asks on ustack's own SYNs; off never agrees")
    parser.add_argument("--fast-open", metavar="N", type=fast_open_queue_value, default=None,
                        help="TCP Fast Open (RFC 7413) on every listener: data on SYNs with a valid cookie, "
                             "at most N such connections waiting for their handshake per listener (off by default)")
    parser.add_argument("--workers", metavar="N", type=workers_value, default=1,
                        help="N processes, one per TUN queue, each with its own stack on the same ports "
                             "(one core each; default 1)")
    parser.add_argument("--cpu", metavar="N", type=cpu_value, default=None,
                        help="run on CPU N alone and steer the kernel's work for the packets serve writes to the "
                             "other CPUs (RPS on the TUN device): faster bulk transfers, slower round trips "
                             "(off by default; see the README)")
    parser.add_argument("--renice", metavar="N", type=renice_value, default=STACK_RENICE,
                        help=f"add N to serve's nice value: the stack runs ahead of its clients, as the kernel's "
                             f"does (default {STACK_RENICE}; 0 keeps the priority it was started with; ustack/priority.py)")
    add_network_arguments(parser)
    add_ladder_arguments(parser, with_port=True)
    add_plot_argument(parser)
    add_web_arguments(parser)
    parser.set_defaults(run=run)



def renice_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"renice must be a whole number, not {text!r}") from None
    low, high = NICE_RANGE
    if not low - high <= value <= high - low:
        raise argparse.ArgumentTypeError(f"renice {value} is outside {low - high}..{high - low}")
    return value


def workers_value(text: str) -> int:
    from ..workers import MAX_WORKERS

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"workers must be a whole number, not {text!r}") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"workers {value} is outside 1..{MAX_WORKERS}")
    return value


def cpu_value(text: str) -> int:
    """--cpu N: a CPU this process may run on, with another one left for the kernel's work."""
    from ..netns import cpu_list_text

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"cpu must be a CPU number, not {text!r}") from None
    allowed = os.sched_getaffinity(0)
    if value not in allowed:
        raise argparse.ArgumentTypeError(f"cpu {value} is not one this process may run on "
                                         f"({cpu_list_text(allowed)})")
    if len(allowed) < 2:
        raise argparse.ArgumentTypeError(f"cpu {value}: only one CPU here, none left to steer the kernel's work to")
    return value


def keep_to_cpu(cpu: int) -> frozenset[int]:
    """Run this process on `cpu` alone (before any thread starts: threads inherit it); the other
    CPUs it could run on, where the TUN device's received packets are then steered.

    Why both: each packet serve writes to the TUN device is received by the kernel inside that
    write(2), which runs IP, TCP and the wake-up of the reader (curl) on serve's CPU, and the
    woken reader then competes with serve for it. Steering (RPS) moves that work to another CPU's
    backlog, but only pays when serve stays off that CPU: unpinned, the scheduler sometimes puts
    serve there, and the figures swing between the two cases."""
    others = frozenset(os.sched_getaffinity(0) - {cpu})
    os.sched_setaffinity(0, {cpu})
    return others


def run(args) -> int:
    if args.http is not None and not Path(args.http).is_dir():
        raise CliError(f"--http {args.http}: not a directory")
    if args.allow_upload and args.http is None:
        raise CliError("--allow-upload needs --http DIR (the directory uploads go to)")
    if args.cpu is not None and args.workers > 1:
        raise CliError("--cpu takes one process: with --workers, pin the workers with taskset instead")
    keep_freed_heap_for_reuse()  # bulk transfers: no heap given back and faulted in again (ustack/heap.py)
    collect_cycles_less_often()  # many short connections: fewer collections of their objects (ustack/collector.py)
    run_ahead_of_clients(args.renice)  # not preempted by every client it wakes (ustack/priority.py)
    rps_cpus = None if args.cpu is None else keep_to_cpu(args.cpu)
    if sys.stdout is None:
        return _run(args, None, rps_cpus)
    real_stdout = sys.stdout
    sys.stdout = output = ServeOutput(real_stdout)  # print(), --trace and --ladder all write here
    try:
        return _run(args, output, rps_cpus)
    finally:
        sys.stdout = real_stdout


def _run(args, output, rps_cpus: frozenset[int] | None = None) -> int:
    from ..web.cli import follow, make_feed

    feed = make_feed(args, "ustack serve")  # --web: the page follows the ladders' WireWatch
    ladders = follow(live_plots(args, sys.stdout) or make_ladders(args, sys.stdout), feed)
    if args.workers > 1:
        from ..workers import run_workers

        with sigterm_as_interrupt(), open_network(args, ladders=ladders, queues=args.workers) as network:
            code = run_workers(network.queues, lambda place: asyncio.run(_serve(args, network, output=output, place=place)),
                               lambda pids: _announce(args, network, _services(args), workers=pids))
        print("ustack: stopped", flush=True)
        return code
    with sigterm_as_interrupt(), open_network(args, ladders=ladders, rps_cpus=rps_cpus) as network:
        try:
            return asyncio.run(_serve(args, network, ladders, output, feed))
        finally:
            if ladders is not None:
                ladders.finish()  # (normally done already, before the stack stopped)


class ServeOutput:
    """serve's stdout: line by line (each line visible at once, also in a pipe), and when whoever
    reads it goes away (`ustack serve --trace | head`), serve stops through its normal cleanup,
    as a program stopped by SIGPIPE would but with its TUN device and namespace removed, instead
    of a traceback for each packet it could not trace."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.reader_gone = False
        self.on_reader_gone = None  # called once, when a write finds the pipe closed

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                self.stream.write(text)
                if "\n" in text:
                    self.stream.flush()
            except BrokenPipeError:
                self._reader_went_away()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_went_away()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def _reader_went_away(self) -> None:
        self.reader_gone = True
        # What is left in the stream's buffer would fail again when Python flushes it on exit
        # ("Exception ignored ... BrokenPipeError"): send it, and anything later, to /dev/null.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass  # not a real file descriptor (a test's StringIO): nothing will be flushed there
        if self.on_reader_gone is not None:
            self.on_reader_gone()


def _services(args) -> list:
    """(name, port, handler, how to reach it) for each service the flags ask for."""
    from ..apps import CHARGEN_PORT, DISCARD_PORT, ECHO_PORT, HttpFileServer, handle_chargen, handle_discard, handle_echo

    # The address the hints below use: IPv4's unless it is off (IPv6 in URLs goes in brackets).
    address = args.addr6 if args.no_ipv4 else args.addr
    url_host = f"[{address}]" if ":" in address else address
    services = []  # (name, port, handler, how to reach it)
    if args.http is not None:
        url = f"http://{url_host}/" if args.http_port == 80 else f"http://{url_host}:{args.http_port}/"
        # One write per request's line, its newline included: print() writes the end apart, two
        # system calls per request with an unbuffered stdout (PYTHONUNBUFFERED, `python -u`).
        files = HttpFileServer(args.http, log=lambda line: sys.stdout.write(f"http   : {line}\n"),
                               allow_upload=args.allow_upload)
        services.append(("http", args.http_port, files, f"curl {url}"))
    if args.echo:
        services.append(("echo", ECHO_PORT, handle_echo, f"nc {address} {ECHO_PORT}"))
    if args.discard:
        services.append(("discard", DISCARD_PORT, handle_discard, f"nc -N {address} {DISCARD_PORT} < FILE"))
    if args.chargen:
        services.append(("chargen", CHARGEN_PORT, handle_chargen, f"nc {address} {CHARGEN_PORT} | head"))
    return services



def serve_config(args) -> "TcpConfig":  # noqa: F821
    """The stack's TcpConfig from serve's flags (--msl, --syncookies, --synack-retries, --ecn,
    --fast-open)."""
    config = dataclasses.replace(tcp_config(args), syncookies=args.syncookies, synack_retries=args.synack_retries,
                                 ecn=args.ecn)
    if args.fast_open:
        config = dataclasses.replace(config, fast_open_server=True, fast_open_queue=args.fast_open)
    return config


async def _serve(args, network: UstackNetwork, ladders=None, output: ServeOutput | None = None, feed=None,
                 place=None) -> int:
    """Serve until Ctrl-C or SIGTERM. `place` (a ustack.workers.WorkerPlace): this is one worker
    of several, on its own queue; its parent prints the banner."""
    from ..aio import AsyncStack

    loop = asyncio.get_running_loop()
    stop = stop_on_signals()
    if output is not None:
        output.on_reader_gone = stop.set
        if output.reader_gone:
            stop.set()

    services = _services(args)
    config = serve_config(args)
    stack = network.make_stack(config, secret=None if place is None else place.secret)
    link = network.link if place is None else place.link
    async with AsyncStack(stack, link, control=False) as astack:
        for observer in network.observers:
            astack.add_observer(observer)
        if ladders is not None:
            astack.add_observer(ladders.observe)
            ladders.schedule = loop.call_soon  # a closed connection's ladder, once its round is over
        servers = []
        for name, port, handler, _ in services:
            try:
                servers.append(await astack.start_server(handler, port=port, backlog=args.backlog))
            except OSError as error:
                raise CliError(f"{name} on port {port}: {error.strerror or error}") from None
        control = await start_control_server(network, astack, "ustack serve",
                                             worker=None if place is None else place.describe())
        web = None
        try:
            if feed is not None:
                from ..web.cli import start_web

                web = await start_web(args, feed, astack.snapshots)
            if place is None:
                _announce(args, network, services, web)
            else:
                place.ready()
            await stop.wait()
        finally:
            if ladders is not None:
                ladders.finish()  # before the stack aborts what is still open
            if web is not None:
                await web.close()
            await control.close()
            for server in servers:
                server.close()
    if place is None:
        print("ustack: stopped", flush=True)
    return 0


def _announce(args, network: UstackNetwork, services: list, web=None, workers: list[int] | None = None) -> None:
    """The banner: where ustack is, how to reach each service, and last the ready line."""
    from ..link.fault import Faults
    from ..netns import cpu_list_text

    address = args.addr6 if args.no_ipv4 else args.addr
    where = f" in namespace {args.netns}" if args.netns else ""
    ours = [ip for ip, off in ((args.addr, args.no_ipv4), (args.addr6, args.no_ipv6)) if not off]
    kernel = [ip for ip, off in ((args.host_addr, args.no_ipv4), (args.host_addr6, args.no_ipv6)) if not off]
    print(f"ustack: {' and '.join(ours)} on {args.tun}{where} (kernel side {' and '.join(kernel)}, mtu {args.mtu})")
    if network.device is not None:
        print(f"ustack: {network.device.offload_summary()}")
    if network.settings.rps_cpus:
        print(f"ustack: on CPU {args.cpu}; the kernel receives what it writes on CPU "
              f"{cpu_list_text(network.settings.rps_cpus)} (RPS on {args.tun})")
    if workers:
        print(f"ustack: {len(workers)} workers, one per queue of {args.tun} (pids {' '.join(map(str, workers))})")
    if args.netns and network.reused_from is not None:
        print(f"ustack: reusing namespace {args.netns}, left by ustack pid {network.reused_from['pid']} "
              f"which died without removing it; it is removed when this one stops")
    elif args.netns and not network.created_namespace:
        print(f"ustack: using the existing namespace {args.netns} (not made by ustack: left in place on exit)")
    if network.fault is not None:
        print(f"faults : {describe_faults(network.settings.inbound_faults or Faults(), network.settings.outbound_faults or Faults())} "
              f"(seed {args.seed})")
    for name, _, _, how in services:
        print(f"{name:<7}: {network.how_to_run(how)}")
    print(f"{'ping':<7}: {network.how_to_run(f'ping {address}')}")
    if not args.no_ipv4 and not args.no_ipv6:
        print(f"{'ping6':<7}: {network.how_to_run(f'ping -6 {args.addr6}')}")
    print(f"{'ss':<7}: ustack ss")
    if web is not None:
        print(f"{'web':<7}: {web.view.url} (this host's browser)")
    print(f"{READY_LINE} (pid {os.getpid()}; Ctrl-C to stop)", flush=True)

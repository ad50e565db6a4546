#!/usr/bin/env python3
"""Loss recovery beside Linux's, on the same path (issue 13's "Figures").

    sudo .venv/bin/python scripts/bench_recovery.py [--size-mb 20] [--losses 0.5,1,2,5]
                                                    [--algorithms reno,cubic] [--seed 1]

ustack's network (ustack/network.py) in a namespace named ust-rec-<pid>-<n>, always removed at the
end; no packet leaves it. The FaultInjector on ustack's TUN link makes the path: a rate limit of
`--rate-mbit` (20 Mbit/s; the FaultInjector's limit is a token bucket that drops what exceeds it,
a policer) and `--delay-ms` (20 ms) each way, and random loss of each `--losses` percentage each
way, the same random sequence for each transfer's data (FaultInjector.reseed), so that both
senders meet the same losses. The TUN offloads are off (NetworkSettings.offload=False): with
them, a 64 KB TSO/GRO packet would cross the FaultInjector as one packet and be lost as rarely as
one MTU-sized packet, which is not the path being measured; so are the link's own software GRO/GSO
(NetworkSettings.software_offload=False), which would join and cut segments the same way. Over it, for each loss rate and each algorithm:

  (a) the kernel sends `--size-mb` MB to ustack (a Python client on the kernel's socket, to a sink
      on ustack): Linux's sender;
  (b) ustack sends the same to the kernel: ustack's sender.

Both are timed by their receiver, from the first byte to the end of the stream, and the goodput
(MB/s of data delivered) of each is printed with b/a: ustack's sender against Linux's on the same
path (the issue's goal: at least 0.9). The RTOs are the sender's: the kernel's TcpExtTCPTimeouts
(from /proc/net/netstat in the namespace) and ustack's connection.retransmission_timeouts; beside
them, each sender's retransmitted segments ("rexmit": the kernel's RetransSegs, ustack's
connection.retransmissions), those the receiver reported as duplicates with a D-SACK ("dsack":
retransmissions that were not needed; the kernel's TCPDSACKRecv in (a), TCPDSACKOldSent +
TCPDSACKOfoSent in (b)),
the packets of each direction's data that the rate limiter dropped ("policed": a sender's
bursts beyond the bucket are lost on top of the random loss) and ustack's tail loss probes.

The kernel's algorithm is set explicitly (the machine defaults to bbr) on each of its sockets
with TCP_CONGESTION, and the sender's is read back and printed in the "kernel cc" column. (The
sysctl net.ipv4.tcp_congestion_control cannot name cubic inside a namespace here: a namespace may
only default to an algorithm in the host's tcp_allowed_congestion_control, "reno bbr" on this
machine, while a socket of a process with CAP_NET_ADMIN may use any available one.) ustack's is
the same name (TcpConfig.congestion_control). net.ipv4.tcp_no_metrics_save=1 so that no row
inherits the ssthresh of the one before. The receivers' windows are made alike: ustack's offers
its 256 KB buffer from the start, and the kernel's receiver sets a large SO_RCVBUF (without it,
Linux's receive autotuning starts near 64 KB, below the path's 100 KB bandwidth-delay product,
and limited ustack's sender: b/a 0.84 -> 0.89 at 0.5 % loss, 0.89 -> 0.95 at 2 %, Reno, 5 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ustack.commands.signals import sigterm_as_interrupt  # noqa: E402
from ustack.link import Faults  # noqa: E402
from ustack.network import KERNEL_ADDRESS, USTACK_ADDRESS, NetworkError, NetworkSettings, UstackNetwork  # noqa: E402
from ustack.tcp import TcpConfig  # noqa: E402

SINK_PORT = 5009  # ustack receives here (a)
SOURCE_PORT = 5019  # ustack sends from here (b)
MEGABYTE = 1e6
CHUNK = 65536
TRANSFER_TIMEOUT = 600.0

# The kernel's half of each transfer, on a socket with the row's algorithm (TCP_CONGESTION): the
# sender prints the algorithm its socket ran, the receiver "<bytes> <seconds from first byte to end>".
KERNEL_SENDER = """
import socket, sys
address, port, size, algorithm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
connection = socket.socket()
connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, algorithm.encode())
connection.settimeout(120)
connection.connect((address, port))
block = bytes(65536)
left = size
while left:
    left -= connection.send(block[:min(left, len(block))])
connection.shutdown(socket.SHUT_WR)
while connection.recv(65536):
    pass
print(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\\0").decode())
"""
KERNEL_RECEIVER = """
import socket, sys, time
RECEIVE_BUFFER = 4 << 20  # the kernel caps it at twice net.core.rmem_max
address, port, algorithm = sys.argv[1], int(sys.argv[2]), sys.argv[3]
connection = socket.socket()
connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, algorithm.encode())  # its ACKs only
# A receive buffer fixed large from the start, as ustack's receiver in (a) offers (256 KB): Linux's
# autotuning starts near 64 KB, under this path's BDP, and would limit ustack's sender early on.
connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
connection.settimeout(120)
connection.connect((address, port))
received, first = 0, None
while True:
    chunk = connection.recv(262144)
    if not chunk:
        break
    if first is None:
        first = time.perf_counter()
    received += len(chunk)
print(received, time.perf_counter() - first)
"""


class BenchError(Exception):
    """Something the benchmark could not do, in one line."""


async def kernel_program(network: UstackNetwork, script: str, *arguments: str) -> str:
    """Run a Python snippet on the kernel's side of the TUN device, inside the namespace."""
    command = network.namespace.command([sys.executable, "-c", script, *arguments])
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), TRANSFER_TIMEOUT)
    except asyncio.TimeoutError:
        process.kill()  # the one process we started, by its PID
        await process.wait()
        raise BenchError(f"the kernel's side did not finish within {TRANSFER_TIMEOUT:g} s") from None
    if process.returncode != 0:
        raise BenchError(f"the kernel's side failed: {err.decode().strip()[-300:]}")
    return out.decode()


async def namespace_output(network: UstackNetwork, *command: str) -> str:
    process = await asyncio.create_subprocess_exec(*network.namespace.command(list(command)),
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode != 0:
        raise BenchError(f"{' '.join(command)} failed in the namespace: {err.decode().strip()}")
    return out.decode()


async def kernel_counters(network: UstackNetwork) -> dict[str, int]:
    """The namespace's TCP counters (Linux counts per network namespace): TcpExt from
    /proc/net/netstat and Tcp from /proc/net/snmp, by name."""
    counters = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        lines = [line.split() for line in (await namespace_output(network, "cat", path)).splitlines()]
        for names, values in zip(lines[::2], lines[1::2]):
            if names[0] in ("TcpExt:", "Tcp:"):
                counters.update(zip(names[1:], (int(value) for value in values[1:])))
    return counters


def counted(before: dict, after: dict, name: str) -> int:
    return after[name] - before[name]


async def one_path(network: UstackNetwork, algorithm: str, size: int, pacing: bool) -> dict:
    """Both directions over one network; the figures of both."""
    from ustack.aio import AsyncStack

    await namespace_output(network, "sysctl", "-q", "-w", "net.ipv4.tcp_no_metrics_save=1")
    figures = {}
    sink_done = asyncio.get_running_loop().create_future()
    source_connections = []
    source_racks = []  # each source connection's RackState (rack.py), for its probe count

    async def sink(reader, writer):
        received, first = 0, None
        while True:
            chunk = await reader.read(262144)
            if not chunk:
                break
            if first is None:
                first = time.perf_counter()
            received += len(chunk)
        elapsed = time.perf_counter() - first if first is not None else 0.0
        writer.close()
        if not sink_done.done():
            sink_done.set_result((received, elapsed))

    async def source(reader, writer):
        connection = writer.get_extra_info("connection")
        source_connections.append(connection)
        block = bytes(CHUNK)
        left = size
        while left:
            writer.write(block[:min(left, CHUNK)])
            left -= min(left, CHUNK)
            if connection.rack is not None and not any(rack is connection.rack for rack in source_racks):
                # Kept here: the connection lets its RACK-TLP state go in TIME-WAIT, before the
                # figures are read, and its count of tail loss probes with it.
                source_racks.append(connection.rack)
            await writer.drain()
        writer.close()

    stack = network.make_stack(TcpConfig(congestion_control=algorithm, pacing=pacing))
    async with AsyncStack(stack, network.link) as astack:
        servers = [await astack.start_server(sink, port=SINK_PORT), await astack.start_server(source, port=SOURCE_PORT)]
        try:
            counters = network.fault.counters
            # The same random losses for both senders' data (and for both receivers' ACKs): each
            # transfer starts its data's direction on the "data" stream of the seed.
            network.fault.reseed("inbound", "data")
            network.fault.reseed("outbound", "acks")
            policed_before = policed(counters)
            before = await kernel_counters(network)
            kernel_algorithm = await kernel_program(network, KERNEL_SENDER, USTACK_ADDRESS, str(SINK_PORT), str(size),
                                                    algorithm)
            figures["kernel_algorithm"] = kernel_algorithm.strip()
            if figures["kernel_algorithm"] != algorithm:
                raise BenchError(f"the kernel's socket ran {kernel_algorithm.strip()}, not {algorithm}")
            received, elapsed = await asyncio.wait_for(sink_done, TRANSFER_TIMEOUT)
            if received != size:
                raise BenchError(f"ustack received {received} of {size} bytes")
            figures["a_goodput"] = received / elapsed / MEGABYTE
            after_a = await kernel_counters(network)
            figures["a_rtos"] = counted(before, after_a, "TCPTimeouts")
            figures["a_retransmissions"] = counted(before, after_a, "RetransSegs")
            # D-SACKs the kernel's sender got from ustack: its retransmissions that were not needed.
            figures["a_spurious"] = counted(before, after_a, "TCPDSACKRecv")
            policed_after_a = policed(counters)
            # The data of (a) goes in to ustack (inbound), of (b) out from it (outbound).
            figures["a_policed"] = policed_after_a[0] - policed_before[0]
            network.fault.reseed("outbound", "data")
            network.fault.reseed("inbound", "acks")
            output = await kernel_program(network, KERNEL_RECEIVER, USTACK_ADDRESS, str(SOURCE_PORT), algorithm)
            received_text, elapsed_text = output.split()
            if int(received_text) != size:
                raise BenchError(f"the kernel received {received_text} of {size} bytes")
            figures["b_goodput"] = size / float(elapsed_text) / MEGABYTE
            figures["b_rtos"] = sum(connection.retransmission_timeouts for connection in source_connections)
            figures["b_retransmissions"] = sum(connection.retransmissions for connection in source_connections)
            # D-SACKs the kernel's receiver sent: data ustack's sender sent twice without need.
            after_b = await kernel_counters(network)
            figures["b_spurious"] = (counted(after_a, after_b, "TCPDSACKOldSent")
                                     + counted(after_a, after_b, "TCPDSACKOfoSent"))
            figures["b_policed"] = policed(counters)[1] - policed_after_a[1]
            figures["b_probes"] = sum(rack.probes_sent for rack in source_racks)
        finally:
            for server in servers:
                server.close()
    return figures


def policed(counters) -> tuple[int, int]:
    """Packets the rate limiter (a policer) dropped so far: (inbound, outbound). A sender whose
    bursts exceed the bucket loses more than the random loss rate."""
    return counters["dropped_inbound_rate_limited"], counters["dropped_outbound_rate_limited"]


def run(args) -> list[tuple]:
    rows = []
    number = 0
    for loss in args.losses:
        for algorithm in args.algorithms:
            number += 1
            path = Faults(drop=loss / 100, delay=args.delay_ms / 1000, rate_bytes_per_second=args.rate_mbit * 125_000)
            settings = NetworkSettings(namespace=f"ust-rec-{os.getpid()}-{number}", seed=args.seed,
                                       inbound_faults=path, outbound_faults=path, program="bench_recovery",
                                       offload=False, software_offload=False)
            with UstackNetwork(settings) as network:
                figures = asyncio.run(one_path(network, algorithm, int(args.size_mb * MEGABYTE), args.pacing == "on"))
            ratio = figures["b_goodput"] / figures["a_goodput"]
            row = (loss, algorithm, figures["kernel_algorithm"], figures["a_goodput"], figures["a_rtos"],
                   figures["a_retransmissions"], figures["a_spurious"], figures["a_policed"], figures["b_goodput"],
                   figures["b_rtos"], figures["b_retransmissions"], figures["b_spurious"], figures["b_policed"],
                   figures["b_probes"], ratio)
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


HEADER = (f"{'loss %':>6} {'cc':>5} {'kernel':>6} {'(a) Linux MB/s':>14} {'RTOs':>4} {'rexmit':>6} {'dsack':>5} "
          f"{'policed':>7} {'(b) ustack MB/s':>15} {'RTOs':>4} {'rexmit':>6} {'dsack':>5} {'policed':>7} {'TLPs':>4} "
          f"{'b/a':>5} {'goal':>5}")


def format_row(row: tuple) -> str:
    (loss, algorithm, kernel_algorithm, a, a_rtos, a_retransmissions, a_spurious, a_policed, b, b_rtos,
     b_retransmissions, b_spurious, b_policed, b_probes, ratio) = row
    return (f"{loss:>6g} {algorithm:>5} {kernel_algorithm:>6} {a:>14.3f} {a_rtos:>4} {a_retransmissions:>6} "
            f"{a_spurious:>5} {a_policed:>7} {b:>15.3f} {b_rtos:>4} {b_retransmissions:>6} {b_spurious:>5} "
            f"{b_policed:>7} {b_probes:>4} {ratio:>5.2f} {'ok' if ratio >= 0.9 else 'below':>5}")


def percent_list(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of percentages") from None
    if not values or any(not 0 <= value < 100 for value in values):
        raise argparse.ArgumentTypeError(f"loss percentages must be in [0, 100): {text}")
    return values


def algorithm_list(text: str) -> list[str]:
    from ustack.tcp.congestion import CONGESTION_CONTROLS

    names = [part for part in text.split(",") if part]
    unknown = [name for name in names if name not in CONGESTION_CONTROLS or name == "newreno"]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"algorithms known to both ustack and Linux: reno, cubic (got {text})")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", "--size", type=float, default=20.0, help="MB each way (default 20)")
    parser.add_argument("--losses", type=percent_list, default=[0.5, 1, 2, 5], help="loss %% each way, comma-separated")
    parser.add_argument("--algorithms", type=algorithm_list, default=["reno", "cubic"])
    parser.add_argument("--rate-mbit", type=float, default=20.0, help="rate limit each way (default 20 Mbit/s)")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="delay each way (default 20 ms)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the FaultInjector's losses")
    parser.add_argument("--pacing", choices=("on", "off"), default="on" if TcpConfig().pacing else "off",
                        help="ustack's sender paces (TcpConfig.pacing; default: TcpConfig's)")
    args = parser.parse_args()
    if args.size_mb <= 0:
        parser.error("--size-mb must be positive")
    print(f"{args.size_mb:g} MB each way over ustack's TUN link: {args.rate_mbit:g} Mbit/s (policer), "
          f"{args.delay_ms:g} ms each way, random loss each way; kernel {KERNEL_ADDRESS}, ustack {USTACK_ADDRESS}, "
          f"seed {args.seed}, ustack pacing {args.pacing}")
    print(HEADER, flush=True)
    start = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            run(args)
    except (BenchError, NetworkError) as error:
        print(f"bench_recovery: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench_recovery: interrupted", file=sys.stderr)
        return 130
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

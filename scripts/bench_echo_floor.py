#!/usr/bin/env python3
"""How fast can any Python TCP echo over TUN be? The floor under bench.py's echo rows, from one run.

    sudo .venv/bin/python scripts/bench_echo_floor.py [--echoes 2000] [--rounds 5]
    sudo ./scripts/pypy python scripts/bench_echo_floor.py

Issue 12 asks for an echo round trip (64 bytes, the kernel's client) at most 1.2 times the
kernel's with the same app, p50, and 1.5 times at p99. On one CPU a round trip is all CPU work:
the client, the kernel on both sides, and the server. This script measures, beside the kernel's
own echo server (bench.py's twin: the same asyncio app over a veth pair) and `ustack serve`, two
*reflectors*: the least a Python program can do per round trip over a TUN device and still echo
over TCP, each in a namespace of its own with the TUN device set up as serve sets up its own
(ustack.network, offloads off: plain IP packets):

- `reflector, blocking`: a loop of os.read on the TUN device, a few struct calls to read the
  addresses, ports, sequence numbers and flags, a reply built in a preallocated buffer (C
  checksums), os.write. No asyncio, no connection object, no timers, no buffers, no options, no
  retransmission: it answers SYN with SYN-ACK, data with the same data and the ACK, FIN with
  FIN-ACK, and forgets a connection at FIN or RST. A real TCP does all this and more.
- `reflector, asyncio`: the same answer, run from an asyncio reader callback (loop.add_reader),
  as every server on asyncio is woken, ustack's runtime (ustack/aio) included: the event loop's
  own cost per wake-up (epoll_wait, its ready queue, the callback) on top of the blocking one.

Each is pinned with the client on the first CPU this script may use (bench.py's one-CPU
placement, bench_placement.py), then on two CPUs; the servers are measured in turn, `--rounds`
times, and each row is the median of its rounds' p50 and p99 (the CPU per echo: the server's own
user and system time, bench.process_cpu_seconds, which includes the kernel's work inside its
reads and writes). If even a reflector's ratio to the kernel stands above the goal's, no TCP
written in Python over TUN, on this interpreter and machine, can meet it: that row's floor is
the TUN device and the interpreter, not ustack's TCP.

The reflectors are instruments, not servers: they speak to this script's own echo client only,
inside this script's namespaces (all removed at the end, on errors, Ctrl-C and SIGTERM too).
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ustack.commands.signals import sigterm_as_interrupt  # noqa: E402
from ustack.netns import Namespace  # noqa: E402
from ustack.network import USTACK_ADDRESS  # noqa: E402
from ustack.wire.tcp import ACK, FIN, PSH, RST, SYN  # noqa: E402

from bench import WARM_UP_ECHOES as BENCH_WARM_UP_ECHOES  # noqa: E402
from bench import (KERNEL_APP_SERVER, KERNEL_SERVER_ADDRESS, BenchError, Server, connect_kernel_twin,  # noqa: E402
                   echo_latency, echo_latency_and_cpu, remove_all)
from bench_placement import echo_placements, pinned_servers  # noqa: E402

GOAL_P50, GOAL_P99 = 1.2, 1.5  # issue 12's echo goals (bench.py's GOAL_ECHO_P50_FACTOR, _P99_)
# Untimed round trips to each server first: on CPython a few for caches and slow start; on PyPy
# bench.py's own count (its WARM_UP_ECHOES), since its JIT compiles serve's echo path over the
# first tens of thousands (with 2,000, serve's p50 ratio read 1.73-1.76; with 30,000, 1.30-1.53).
WARM_UP_ECHOES = max(BENCH_WARM_UP_ECHOES, 2000)

# --- the reflector -------------------------------------------------------------------------------

IP_HEADER = struct.Struct("!BBHHHBBH4s4s")  # version/IHL .. destination (RFC 791 3.1)
TCP_HEADER = struct.Struct("!HHIIBBHHH")  # ports, SEQ, ACK, data offset, flags, window, checksum, urgent
ADDRESSES_AND_PORTS = struct.Struct("!4s4s")
SEQUENCE_AND_FLAGS = struct.Struct("!HHIIBB")
MSS_OPTION = struct.Struct("!BBH")
OUR_ISS = 0x12345678  # a reflector has no secrets to keep (RFC 9293 3.4.1 is for real stacks)
WINDOW = 65535
MAX_PAYLOAD = 2048  # the most data a reply carries (the echo client sends 64 bytes; MTU 1500 at most 1,460)


class Reflector:
    """The answer to each packet of a TCP echo client, with as little work as TCP allows (module
    docstring). `answer(packet)` returns the number of bytes of the reply it built in `reply`
    (0: nothing to send)."""

    def __init__(self) -> None:
        from ustack.wire.checksum import checksum_add, checksum_finish, internet_checksum_of, pseudo_header_sum

        self.reply = bytearray(20 + 24 + MAX_PAYLOAD)
        self._checksum_add, self._checksum_finish = checksum_add, checksum_finish
        self._checksum_of, self._pseudo_header_sum = internet_checksum_of, pseudo_header_sum
        self.next_to_send: dict[tuple, int] = {}  # (client address, client port) -> our SND.NXT

    def answer(self, packet: bytes) -> int:
        if len(packet) < 40 or packet[0] != 0x45 or packet[9] != 6:
            return 0  # only IPv4 without options, only TCP: all the echo client sends us
        source, destination = ADDRESSES_AND_PORTS.unpack_from(packet, 12)
        source_port, destination_port, sequence, _, offset, flags = SEQUENCE_AND_FLAGS.unpack_from(packet, 20)
        payload_start = 20 + (offset >> 4) * 4
        length = len(packet) - payload_start
        if not 0 <= length <= MAX_PAYLOAD:
            return 0  # a data offset past the packet's end, or more than one reply holds: no answer
        key = (source, source_port)
        if flags & RST:
            self.next_to_send.pop(key, None)
            return 0
        if flags & SYN:
            self.next_to_send[key] = OUR_ISS + 1
            return self._build(destination, source, destination_port, source_port, OUR_ISS, sequence + 1,
                               SYN | ACK, packet, 0, 0, mss=1460)
        ours = self.next_to_send.get(key)
        if ours is None:
            return 0
        if flags & FIN:
            del self.next_to_send[key]
            return self._build(destination, source, destination_port, source_port, ours,
                               (sequence + length + 1) & 0xFFFFFFFF, FIN | ACK, packet, 0, 0)
        if not length:
            return 0  # a pure ACK: nothing to say
        self.next_to_send[key] = (ours + length) & 0xFFFFFFFF
        return self._build(destination, source, destination_port, source_port, ours,
                           (sequence + length) & 0xFFFFFFFF, PSH | ACK, packet, payload_start, length)

    def _build(self, source, destination, source_port, destination_port, sequence, acknowledgement, flags,
               packet, payload_start, length, mss=0) -> int:
        reply = self.reply
        tcp_length = (24 if mss else 20) + length
        total = 20 + tcp_length
        IP_HEADER.pack_into(reply, 0, 0x45, 0, total, 0, 0x4000, 64, 6, 0, source, destination)
        struct.pack_into("!H", reply, 10, self._checksum_of(reply, 0, 20))
        TCP_HEADER.pack_into(reply, 20, source_port, destination_port, sequence, acknowledgement,
                             (6 if mss else 5) << 4, flags, WINDOW, 0, 0)
        start = 40
        if mss:
            MSS_OPTION.pack_into(reply, 40, 2, 4, mss)
            start = 44
        reply[start:start + length] = packet[payload_start:payload_start + length]
        partial = self._pseudo_header_sum(int.from_bytes(source, "big"), int.from_bytes(destination, "big"), 6,
                                          tcp_length)
        checksum = self._checksum_finish(self._checksum_add(partial, memoryview(reply)[20:total]))
        struct.pack_into("!H", reply, 36, checksum)
        return total


def reflect(namespace: str, mode: str) -> int:
    """The reflector process: the TUN device in `namespace` (ustack.network's set-up, offloads
    off), then answer until SIGTERM, with a blocking loop or from an asyncio reader callback."""
    from ustack.network import NetworkSettings, UstackNetwork

    with sigterm_as_interrupt(), UstackNetwork(NetworkSettings(namespace=namespace, offload=False,
                                                               software_offload=False,
                                                               program="bench_echo_floor")) as network:
        fd = network.device.fileno()
        reflector = Reflector()
        answer, reply, read, write = reflector.answer, reflector.reply, os.read, os.write
        print("reflector: ready", flush=True)
        try:
            if mode == "blocking":
                os.set_blocking(fd, True)
                while True:
                    length = answer(read(fd, 65536))
                    if length:
                        write(fd, reply[:length])
            else:
                import asyncio

                os.set_blocking(fd, False)

                def on_readable() -> None:
                    try:
                        while True:
                            length = answer(read(fd, 65536))
                            if length:
                                write(fd, reply[:length])
                    except BlockingIOError:
                        pass  # all read: back to the loop

                async def serve() -> None:
                    asyncio.get_running_loop().add_reader(fd, on_readable)
                    await asyncio.Event().wait()

                asyncio.run(serve())
        except KeyboardInterrupt:
            pass
    return 0


# --- the measurement ------------------------------------------------------------------------------


def measure(args, work: Path, spaces: list[Namespace]) -> list[tuple]:
    prefix = f"ust-floor-{os.getpid()}"
    client_space, server_space = Namespace(f"{prefix}-c"), Namespace(f"{prefix}-s")
    for space in (client_space, server_space):
        spaces.append(space)
        space.open()
    connect_kernel_twin(client_space, server_space, "ust-floor-c", "ust-floor-s")
    site = work / "site"
    site.mkdir()
    environment = {**os.environ, "USTACK_RUN_DIR": str(work)}
    # name, client's namespace, the address it echoes to, the server
    servers = [("kernel (bench.py's twin)", client_space, KERNEL_SERVER_ADDRESS,
                Server(server_space.command([sys.executable, "-c", KERNEL_APP_SERVER, str(site)])), "ready")]
    for mode in ("blocking", "asyncio"):
        space = Namespace(f"{prefix}-{mode[0]}")
        spaces.append(space)  # ours, as bench.py's for serve: it goes even if the reflector dies badly
        space.open()
        servers.append((f"reflector, {mode}", space, USTACK_ADDRESS,
                        Server([sys.executable, __file__, "--reflect", mode, "--netns", space.name], environment),
                        "reflector: ready"))
    space = Namespace(f"{prefix}-u")
    spaces.append(space)
    space.open()
    servers.append(("ustack serve", space, USTACK_ADDRESS,
                    Server([sys.executable, "-m", "ustack", "serve", "--netns", space.name, "--echo"], environment),
                    "ustack: ready"))
    rows = []
    try:
        for _, _, _, server, ready in servers:
            server.wait_ready(ready)
        for _, space, address, _, _ in servers:
            echo_latency(space, address, args.warm_up_echoes)
        pids = [server.process.pid for _, _, _, server, _ in servers]
        for placement in echo_placements(os.sched_getaffinity(0)):
            print(f"  echo, {placement.name}: {args.rounds} rounds of {args.echoes}, each server in turn",
                  file=sys.stderr, flush=True)
            results: list[list[tuple]] = [[] for _ in servers]
            with pinned_servers(pids, placement.server_cpu):
                for _ in range(args.rounds):
                    for index, (_, space, address, server, _) in enumerate(servers):
                        results[index].append(echo_latency_and_cpu(space, address, args.echoes, placement.client_cpu,
                                                                   server.process.pid))
            medians = [tuple(statistics.median(values) for values in zip(*result)) for result in results]
            kernel_p50, kernel_p99, _ = medians[0]
            for (name, *_), (p50, p99, cpu) in zip(servers, medians):
                rows.append((placement.name, name, p50, p99, cpu, p50 / kernel_p50, p99 / kernel_p99))
    finally:
        for _, _, _, server, _ in servers:
            server.stop()
    return rows


def _marked(ratio: float, goal: float) -> str:
    """A ratio, with ' >' after it when it stands above the goal."""
    return f"{ratio:.2f}{'' if ratio <= goal else ' >'}"


def format_rows(rows: list[tuple]) -> str:
    lines = []
    placement = None
    for where, name, p50, p99, cpu, p50_ratio, p99_ratio in rows:
        if where != placement:
            placement = where
            lines += ["", f"echo round trip (64 B), {where}:",
                      f"  {'server':26} {'p50 us':>8} {'p99 us':>8} {'CPU us/echo':>12} {'p50 ratio':>10} {'p99 ratio':>10}"]
        lines.append(f"  {name:26} {p50:8.1f} {p99:8.1f} {cpu:12.1f} {_marked(p50_ratio, GOAL_P50):>10} "
                     f"{_marked(p99_ratio, GOAL_P99):>10}")
    lines.append("")
    lines.append(f"(ratios to the kernel's row; '>' marks one above issue 12's goal, p50 {GOAL_P50}x, p99 {GOAL_P99}x; "
                 f"{sys.implementation.name} {'.'.join(map(str, sys.version_info[:3]))})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--echoes", type=int, default=2000, help="round trips per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per server and placement (default 5)")
    parser.add_argument("--warm-up-echoes", type=int, default=WARM_UP_ECHOES,
                        help=f"untimed round trips to each server first (default {WARM_UP_ECHOES})")
    parser.add_argument("--reflect", choices=("blocking", "asyncio"), help=argparse.SUPPRESS)
    parser.add_argument("--netns", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reflect:
        return reflect(args.netns, args.reflect)
    for name in ("echoes", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warm_up_echoes < 0:
        parser.error("--warm-up-echoes must not be negative")
    if os.geteuid() != 0:
        print("bench_echo_floor.py: needs root (namespaces and TUN devices)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="ustack-floor-"))
    spaces: list[Namespace] = []
    try:
        with sigterm_as_interrupt():
            rows = measure(args, work, spaces)
    except KeyboardInterrupt:
        print("bench_echo_floor.py: interrupted; namespaces removed", file=sys.stderr)
        return 130
    except BenchError as error:
        print(f"bench_echo_floor.py: {error}", file=sys.stderr)
        return 1
    finally:
        remove_all(spaces, work, "bench_echo_floor.py")
    print(format_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark the TCP core alone: two Connections in one process, joined by an in-memory link.

No C parsing and no I/O: segments pass between the cores as TcpSegment tuples. A bulk transfer
at MSS 1460 (timestamps on, so 1448 bytes of payload per segment) from client to server; the
server application reads everything as it arrives. Virtual time advances 50 microseconds per
round so RTT estimation and the delayed-ACK timer see a plausible clock.

    .venv/bin/python scripts/bench_core.py [--megabytes 200] [--no-timestamps] [--repeat 3] [--profile] [--calls]

Two modes: "burst-ack", where the receiver transmits once per burst of segments (a stack that
reads a batch of packets before answering), and "ack-every-2", where it transmits after every
segment and so acknowledges every second one.

`--calls` counts instead the Python calls (functions and builtins, as cProfile counts them) the
sender makes per pure ACK it receives and per data segment it sends, and the receiver per data
segment it receives (its receive() of the segment and its transmit() calls, which send an ACK
for every second segment), in the ack-every-2 mode: figures that do not move with the machine's
load, to compare commits by.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from ustack.tcp import Connection, Listener, State, TcpConfig
from ustack.tcp.isn import IsnGenerator

CLIENT, SERVER = 0x0A000001, 0x0A000002


def connect(config: TcpConfig) -> tuple[Connection, Connection, float]:
    now = 0.0
    client = Connection.open_active(config, CLIENT, 40000, SERVER, 5001, 0xFFFF0000, now)
    listener = Listener(config, SERVER, 5001, isn_generator=IsnGenerator(fixed_isn=0xFFF00000))
    (syn,) = client.transmit(now)
    server = listener.receive(CLIENT, syn, now)
    for segment in server.transmit(now):
        client.receive(segment, now)
    for segment in client.transmit(now):
        server.receive(segment, now)
    assert client.state is State.ESTABLISHED and server.state is State.ESTABLISHED
    return client, server, now


class SenderCalls:
    """Three profilers: one on around the sender's receive() of each ACK, one around its
    transmit(), one around the receiver's receive() of each data segment and transmit() of ACKs."""

    def __init__(self) -> None:
        self.on_ack, self.on_transmit = cProfile.Profile(), cProfile.Profile()
        self.on_data = cProfile.Profile()
        self.acks = 0
        self.client: Connection | None = None  # the sender, set by transfer()
        self.server: Connection | None = None  # the receiver, set by transfer()

    def receive(self, ack, now: float) -> None:
        self.on_ack.enable()
        self.client.receive(ack, now)
        self.on_ack.disable()
        self.acks += 1

    def transmit(self, now: float) -> list:
        self.on_transmit.enable()
        segments = self.client.transmit(now)
        self.on_transmit.disable()
        return segments

    def receive_data(self, segment, now: float) -> None:
        self.on_data.enable()
        self.server.receive(segment, now)
        self.on_data.disable()

    def transmit_acks(self, now: float) -> list:
        self.on_data.enable()
        acks = self.server.transmit(now)
        self.on_data.disable()
        return acks

    def report(self, segments: int) -> None:
        rows = ((self.on_ack, self.acks, "sender's", "ACK received"),
                (self.on_transmit, segments, "sender's", "data segment sent"),
                (self.on_data, segments, "receiver's", "data segment received (with its share of the ACKs sent)"))
        for profile, count, who, what in rows:
            calls = sum(calls for _, calls, _, _, _ in pstats.Stats(profile).stats.values())
            print(f"{who} Python calls per {what}: {calls / count:.1f} (over {count:,})")


def transfer(total: int, config: TcpConfig, per_segment: bool, calls: SenderCalls | None = None) -> tuple[float, int, int]:
    """Move `total` bytes client -> server. per_segment=False: the receiver answers once per
    burst (as a stack that reads a batch of packets before transmitting); True: the receiver
    runs transmit() after every segment, so it ACKs every second one (RFC 9293 3.8.6.3).
    `calls`: count the sender's calls (--calls)."""
    client, server, now = connect(config)
    if calls is not None:
        calls.client, calls.server = client, server
        receive, transmit = calls.receive, calls.transmit
        receive_data, transmit_acks = calls.receive_data, calls.transmit_acks
    else:
        receive, transmit = client.receive, client.transmit
        receive_data, transmit_acks = server.receive, server.transmit
    chunk = memoryview(bytes(range(256)) * 256)  # 64 KiB the application writes at a time
    written = received = segments = 0
    tick = 0.00005
    started = time.perf_counter()
    while received < total:
        while written < total:
            accepted = client.send(chunk[: min(len(chunk), total - written)], now)
            if not accepted:
                break
            written += accepted
        data_segments = transmit(now)
        segments += len(data_segments)
        for segment in data_segments:
            receive_data(segment, now)
            if per_segment:
                for ack in transmit_acks(now):
                    receive(ack, now)
        while server.readable:
            received += len(server.recv(1 << 20, now))
        for segment in transmit_acks(now):
            receive(segment, now)
        now += tick
        if not data_segments:
            # Nothing could be sent: let the next timer (delayed ACK, usually) fire.
            deadline = min(d for d in (client.next_deadline(), server.next_deadline(), now + 1) if d is not None)
            now = max(now, deadline)
            client.on_timer(now)
            server.on_timer(now)
            for segment in transmit_acks(now):
                receive(segment, now)
    elapsed = time.perf_counter() - started
    return elapsed, segments, client.retransmissions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--no-timestamps", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode; the best is shown (the machine is shared)")
    parser.add_argument("--calls", action="store_true", help="count the sender's calls per ACK and per segment instead")
    args = parser.parse_args()
    config = TcpConfig(mss=1460, timestamps=not args.no_timestamps, receive_buffer_size=1 << 20, send_buffer_size=1 << 20)
    total = args.megabytes * 1_000_000
    if args.calls:
        calls = SenderCalls()
        _, segments, _ = transfer(total, config, True, calls)
        print(f"ack-every-2, {total / 1e6:.0f} MB, timestamps {'on' if config.timestamps else 'off'}")
        calls.report(segments)
        return
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
    results = []
    for name, per_segment in (("burst-ack", False), ("ack-every-2", True)):
        runs = [transfer(total, config, per_segment) for _ in range(1 if args.profile else args.repeat)]
        results.append((name, min(runs)))
    if args.profile:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    print(f"timestamps={'on' if config.timestamps else 'off'}, MSS 1460, 1 MiB buffers")
    print(f"{'mode':<12} {'MB':>6} {'seconds':>8} {'MB/s':>8} {'segments':>9} {'us/segment':>11} {'retrans':>8}")
    for name, (elapsed, segments, retransmissions) in results:
        print(
            f"{name:<12} {total / 1e6:>6.0f} {elapsed:>8.3f} {total / 1e6 / elapsed:>8.1f} {segments:>9} "
            f"{elapsed / segments * 1e6:>11.2f} {retransmissions:>8}"
        )
    print("(kernel figure: not applicable; this measures the pure-Python core in one process)")


if __name__ == "__main__":
    main()

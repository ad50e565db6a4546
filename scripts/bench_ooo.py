#!/usr/bin/env python3
"""The "SegmentSmack" pattern against the receive side, on virtual time.

A peer that knows the connection (it is the peer) sends N one-byte segments, every other byte,
all beyond a hole at RCV.NXT, so that none can ever be delivered. The receiver answers each
with an ACK carrying SACK blocks (RFC 2018), as it must. We print

- the memory the receiver holds afterwards (tracemalloc, everything allocated since the
  handshake and still alive) beside its receive window;
- the CPU per segment of that out-of-order pattern beside N one-byte in-order segments on a
  fresh connection (the same receive + transmit per segment), for the first and the last
  tenth of the run: flat means the cost does not grow as blocks accumulate;
- what the receiver dropped, by named reason.

    .venv/bin/python scripts/bench_ooo.py [--segments 40000] [--buffer 262144]

Goals (issue 9): memory at most a few times the window; out-of-order CPU per segment within 2x
of the in-order cost.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc

from ustack.stack import Stack
from ustack.tcp import Connection, Listener, State, TcpConfig
from ustack.tcp.isn import IsnGenerator
from ustack.tcp.seq import seq_add
from ustack.wire import build_tcp_packet, parse_packet
from ustack.wire.tcp import ACK, SYN, TcpOptions, TcpSegment

PEER, US = 0x0A000001, 0x0A000002
PEER_PORT, OUR_PORT = 40000, 5001
PEER_ISS = 0xFFFF0000  # near the wrap, like the tests


def established_receiver(config: TcpConfig) -> tuple[Connection, int]:
    """Our side after a real handshake with a scripted peer; returns it and the peer's next seq."""
    listener = Listener(config, US, OUR_PORT, isn_generator=IsnGenerator(fixed_isn=0xFFF00000))
    syn_options = TcpOptions(mss=1460, window_scale=7, sack_permitted=True)
    syn = TcpSegment(PEER_PORT, OUR_PORT, PEER_ISS, 0, 0x02, 65535, options=syn_options)
    server = listener.receive(PEER, syn, 0.0)
    (syn_ack,) = server.transmit(0.0)
    server.receive(TcpSegment(PEER_PORT, OUR_PORT, seq_add(PEER_ISS, 1), seq_add(syn_ack.seq, 1), ACK, 65535), 0.0)
    assert server.state is State.ESTABLISHED and server.sack_permitted
    return server, seq_add(PEER_ISS, 1)


def established_stack(config: TcpConfig) -> tuple[Stack, Connection, int]:
    """A Stack listening, after a real handshake with a scripted peer, as packets."""
    stack = Stack(US, config, isn_generator=IsnGenerator(fixed_isn=0xFFF00000))
    stack.listen(OUR_PORT)
    syn_options = TcpOptions(mss=1460, window_scale=7, sack_permitted=True)
    stack.receive(build_tcp_packet(PEER, US, TcpSegment(PEER_PORT, OUR_PORT, PEER_ISS, 0, SYN, 65535, options=syn_options)), 0.0)
    (syn_ack,) = [parse_packet(packet).tcp for packet in stack.transmit(0.0)]
    ack = TcpSegment(PEER_PORT, OUR_PORT, seq_add(PEER_ISS, 1), seq_add(syn_ack.seq, 1), ACK, 65535)
    stack.receive(build_tcp_packet(PEER, US, ack), 0.0)
    stack.transmit(0.0)
    (server,) = stack.all_connections()
    assert server.state is State.ESTABLISHED and server.sack_permitted
    return stack, server, seq_add(PEER_ISS, 1)


def run(config: TcpConfig, segments: int, pattern: str, level: str = "core") -> tuple[list[float], Connection]:
    """Feed the segments (as TcpSegments to a Connection, or as IPv4 packets to a Stack, which
    adds parsing, checksums and demultiplexing); return the CPU seconds per segment of each
    tenth of the run."""
    if level == "stack":
        stack, server, next_seq = established_stack(config)
    else:
        server, next_seq = established_receiver(config)
    ack = server.snd_nxt
    # PATTERNS: the offsets (after RCV.NXT) of the one-byte segments.
    prepared = [
        TcpSegment(PEER_PORT, OUR_PORT, seq_add(next_seq, offset), ack, ACK, 65535, payload=b"x")
        for offset in PATTERNS[pattern](segments)
    ]
    if level == "stack":
        prepared = [build_tcp_packet(PEER, US, segment) for segment in prepared]
        receiver = stack
    else:
        receiver = server
    now = 0.0
    tenth = max(1, segments // 10)
    times = []
    started = time.process_time()
    for index, item in enumerate(prepared, 1):
        receiver.receive(item, now)
        receiver.transmit(now)
        now += 0.00001
        if index % tenth == 0:
            finished = time.process_time()
            times.append(finished - started)
            started = finished
    return [t / tenth for t in times], server


# Byte 0 after RCV.NXT, the hole, never comes in the out-of-order patterns.
PATTERNS = {
    "in order": lambda count: range(count),
    "out of order, rising": lambda count: range(1, 2 * count, 2),  # every other byte: 1, 3, 5, ...
    "out of order, falling": lambda count: range(2 * count - 1, 0, -2),  # the same, last first
}
LEVELS = {
    "core": "TcpSegments into a Connection, its ACKs out",
    "stack": "IPv4 packets into a Stack, parsed and checksummed, its ACK packets out",
}


def held_memory(config: TcpConfig, segments: int, pattern: str) -> tuple[int, Connection]:
    run(config, 100, pattern)  # warm up: first-use allocations of the interpreter are not the receiver's
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _, server = run(config, segments, pattern)
        return tracemalloc.get_traced_memory()[0] - before, server
    finally:
        tracemalloc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=40000)
    parser.add_argument("--buffer", type=int, default=256 * 1024, help="receive buffer (window) size")
    args = parser.parse_args()
    if args.segments < 10 or args.buffer < 1024:
        parser.error("--segments must be at least 10 and --buffer at least 1024")
    config = TcpConfig(receive_buffer_size=args.buffer)

    print(f"{args.segments} one-byte segments, receive window {args.buffer} bytes")
    for pattern in PATTERNS:
        memory, server = held_memory(config, args.segments, pattern)
        buffer = server.receive_buffer
        print(f"  {pattern + ':':24} memory held {memory:10,} bytes = {memory / args.buffer:4.1f} x the window; "
              f"{buffer.out_of_order_bytes} bytes out of order in {buffer.out_of_order_blocks} blocks")
    print("  (goal: at most a few times the window)")
    for level in ("core", "stack"):
        print(f"  CPU per segment ({level}: {LEVELS[level]})")
        results = {pattern: run(config, args.segments, pattern, level) for pattern in PATTERNS}
        mean_in = sum(results["in order"][0]) / len(results["in order"][0])
        for pattern, (times, server) in results.items():
            mean = sum(times) / len(times)
            drops = {reason: count for reason, count in sorted(server.drops.items()) if count}
            print(f"    {pattern + ':':24} {mean * 1e6:6.1f} us, {mean / mean_in:4.2f} x in order (goal <= 2); "
                  f"first tenth {times[0] * 1e6:.1f}, last {times[-1] * 1e6:.1f} (flat: about equal); drops {drops or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

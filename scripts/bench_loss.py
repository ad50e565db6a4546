#!/usr/bin/env python3
"""Loss recovery of the TCP core, in virtual time: a 5 MB download through a lossy link.

Two hosts joined by ustack.testing.simulator (no I/O, no clock): the client sends a small request,
the server answers with `--megabytes` of data, both close. The link drops `--loss` of the
segments in each direction. For each seed it prints the virtual seconds the transfer took, the
retransmission timeouts and the retransmitted segments of the sender, then the mean.

    .venv/bin/python scripts/bench_loss.py [--loss 0.05] [--seeds 10] [--delay 0.0005]
                                           [--rate 100] [--congestion-control reno] [--megabytes 5]
                                           [--no-limited-transmit] [--no-sack-recovery]

Every retransmission timeout costs at least min_rto (200 ms) and a collapse of cwnd to one
segment; loss recovery that needs fewer of them (RFC 3042, RFC 6582, RFC 6675) shows here.
"""

from __future__ import annotations

import argparse
import statistics

from ustack.tcp import TcpConfig
from ustack.testing.simulator import BulkTransfer, Simulator


def run(seed: int, config: TcpConfig, size: int, loss: float, delay: float, rate: float | None):
    sim = Simulator(config, config, seed=seed, loss=loss, delay=delay, rate=rate)
    sim.client_app = BulkTransfer(b"GET /five.bin HTTP/1.0\r\n\r\n")
    sim.server_app = BulkTransfer(bytes(size))
    # Timed until the client has read every byte (as curl's transfer time is), not until the
    # connections have closed: TIME-WAIT alone would add 2*MSL.
    if not sim.run(until=lambda sim: len(sim.client_app.received) == size, max_time=20000.0):
        raise SystemExit(f"seed {seed}: transfer did not finish (t={sim.now:.1f})")
    server = sim.server
    return sim.now, server.retransmission_timeouts, server.retransmissions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.0005, help="one-way delay in seconds")
    parser.add_argument("--rate", type=float, default=100.0,
                        help="bottleneck in Mbit/s each way (0: none, a burst arrives at one instant)")
    parser.add_argument("--megabytes", type=float, default=5)
    parser.add_argument("--congestion-control", default="reno,newreno,cubic",
                        help="one algorithm or a comma-separated list, one block of rows each (default all three)")
    parser.add_argument("--no-limited-transmit", action="store_true", help="TcpConfig(limited_transmit=False)")
    parser.add_argument("--no-sack-recovery", action="store_true", help="TcpConfig(sack_recovery=False)")
    args = parser.parse_args()
    knobs = {}
    if args.no_limited_transmit:
        knobs["limited_transmit"] = False
    if args.no_sack_recovery:
        knobs["sack_recovery"] = False
    size = int(args.megabytes * 1024 * 1024)
    summary = []
    for algorithm in args.congestion_control.split(","):
        config = TcpConfig(congestion_control=algorithm, **knobs)
        print(f"{args.megabytes:g} MB download, loss {args.loss:g} each way, one-way delay {args.delay * 1000:g} ms, "
              f"bottleneck {args.rate:g} Mbit/s, "
              f"congestion control {algorithm}", " ".join(f"{k}={v}" for k, v in knobs.items()))
        print(f"{'seed':>4} {'virtual s':>10} {'RTOs':>6} {'retransmitted':>14}")
        rows = []
        for seed in range(args.seeds):
            seconds, timeouts, retransmitted = run(seed, config, size, args.loss, args.delay, args.rate * 125_000 or None)
            rows.append((seconds, timeouts, retransmitted))
            print(f"{seed:>4} {seconds:>10.2f} {timeouts:>6} {retransmitted:>14}")
        means = tuple(statistics.mean(row[column] for row in rows) for column in range(3))
        print(f"mean {means[0]:>10.2f} {means[1]:>6.1f} {means[2]:>14.1f}")
        summary.append((algorithm, *means))
    if len(summary) > 1:
        print(f"{'algorithm':>9} {'mean virtual s':>14} {'RTOs':>6} {'retransmitted':>14}")
        for algorithm, seconds, timeouts, retransmitted in summary:
            print(f"{algorithm:>9} {seconds:>14.2f} {timeouts:>6.1f} {retransmitted:>14.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

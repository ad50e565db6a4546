#!/usr/bin/env python3
"""`ustack serve` from two or more source trees, measured in turn in one run: a change's effect on
connections/s and on the echo, where bench.py's rows, a kernel twin beside one serve, move more
between runs on a noisy machine than a change of 10 % (issue 12, seventeenth pass).

    sudo .venv/bin/python scripts/bench_trees.py before=/work/main after=/work/wt/mine
    sudo ./scripts/pypy python scripts/bench_trees.py before=/work/main after=. --rounds 7
    sudo .venv/bin/python scripts/bench_trees.py before=/work/main after=. --upload 100

Each TREE is a checkout of ustack (a `git worktree` of another commit, say) with its C extension
built for the runtime that runs this script. Its serve runs from inside it (`cd TREE && python
-m ustack serve --netns ... --http ... --echo`, the interpreter running this script), in a
namespace of its own (ust-trees-<pid>-<n>, always removed at the end, on errors, Ctrl-C and
SIGTERM too). Every server gets the same load, in turn, one round at a time:

1. warm-up, untimed: bench.py's WARM_UP_CONNECTIONS and WARM_UP_ECHOES (PyPy's JIT), at least
   2,000 connections and 2,000 echoes;
2. `--rounds` rounds of `ab -c 20` (`--connections` requests, a new connection each, as bench.py's
   connections/s row): ab's connections/s and the server's CPU per connection;
3. `--rounds` rounds of `--echoes` sequential echo round trips, the client and every server pinned
   to one CPU: p50, p99 and the server's CPU per echo. By then each server holds a TIME-WAIT
   record for every connection of step 2 (TIME-WAIT lasts 60 s; serve closes first), as serve
   does in bench.py's echo rows.

With --upload MB, steps 2 and 3 are instead `--rounds` rounds of one upload each: `curl -T` of a
file of MB megabytes to serve's HTTP port (serve with --allow-upload stores it on tmpfs), as
bench.py's upload row: curl's MB/s and the server's CPU per MB (after one untimed upload each).

Each figure is the median over the rounds; the last columns divide it by the first tree's.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ustack.netns import Namespace  # noqa: E402
from ustack.network import USTACK_ADDRESS  # noqa: E402

from bench import (WARM_UP_CONNECTIONS, WARM_UP_ECHOES, Server, connections_and_cpu, echo_latency,  # noqa: E402
                   echo_latency_and_cpu, run_and_clean_up, upload_and_cpu, upload_rate)
from bench_placement import pinned_servers  # noqa: E402

ECHO_CPU = 0  # the one CPU of the echo rounds


def parse_tree(text: str) -> tuple[str, Path]:
    """LABEL=TREE, TREE a directory with ustack in it."""
    label, equals, path = text.partition("=")
    if not equals or not label or not path:
        raise argparse.ArgumentTypeError(f"{text!r} is not LABEL=TREE (e.g. before=/work/main)")
    tree = Path(path).resolve()
    if not (tree / "ustack" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError(f"{tree} has no ustack/ in it (give a checkout of ustack)")
    return label, tree


def measure(args, work: Path, spaces: list[Namespace]) -> str:
    site = work / "site"
    site.mkdir()
    (site / "small.html").write_text("<p>hello</p>\n" * 20)  # bench.py's page
    servers: list[tuple[str, Namespace, Server]] = []
    try:
        for index, (label, tree) in enumerate(args.trees):
            space = Namespace(f"ust-trees-{os.getpid()}-{index}")
            spaces.append(space)
            space.open()
            serve = (f"cd {shlex.quote(str(tree))} && exec {shlex.quote(sys.executable)} -m ustack serve "
                     f"--netns {space.name} --http {shlex.quote(str(site))} --echo"
                     + (" --allow-upload" if args.upload else ""))
            servers.append((label, space, Server(["sh", "-c", serve], {**os.environ, "USTACK_RUN_DIR": str(work)})))
        for _, _, server in servers:
            server.wait_ready("ustack: ready")
        if args.upload:
            return uploads_in_turn(args, work, servers)
        url = f"http://{USTACK_ADDRESS}/small.html"
        warm_connections = max(WARM_UP_CONNECTIONS, 2000)
        for _, space, server in servers:
            for start in range(0, warm_connections, 5000):  # ab runs of 5,000, as bench.py's
                connections_and_cpu(space, url, min(5000, warm_connections - start), server.process.pid)
            echo_latency(space, USTACK_ADDRESS, max(WARM_UP_ECHOES, 2000))
        connections = {label: [] for label, _, _ in servers}
        for _ in range(args.rounds):
            for label, space, server in servers:
                connections[label].append(connections_and_cpu(space, url, args.connections, server.process.pid))
        echoes = {label: [] for label, _, _ in servers}
        with pinned_servers([server.process.pid for _, _, server in servers], ECHO_CPU):
            for _ in range(args.rounds):
                for label, space, server in servers:
                    echoes[label].append(echo_latency_and_cpu(space, USTACK_ADDRESS, args.echoes, ECHO_CPU,
                                                              server.process.pid))
    finally:
        for _, _, server in servers:
            server.stop()
    rows = []
    for label, _ in args.trees:
        rate, cpu = (statistics.median(column) for column in zip(*connections[label]))
        p50, p99, echo_cpu = (statistics.median(column) for column in zip(*echoes[label]))
        rows.append((label, rate, cpu, p50, p99, echo_cpu))
    first = rows[0]
    lines = [f"{len(rows)} trees, {args.rounds} rounds in turn: ab -c 20 x {args.connections:,} connections, then "
             f"{args.echoes:,} echoes on CPU {ECHO_CPU} (each server holding the TIME-WAIT records of its connections); "
             f"medians, and each over the first tree ({first[0]})",
             f"{'tree':12} {'conn/s':>8} {'CPU us/conn':>12} {'echo p50 us':>12} {'p99 us':>8} {'CPU us/echo':>12}"
             f"   {'conn/s':>7} {'CPU/conn':>8} {'p50':>6} {'p99':>6} {'CPU/echo':>8}"]
    for label, rate, cpu, p50, p99, echo_cpu in rows:
        ratios = (rate / first[1], cpu / first[2], p50 / first[3], p99 / first[4], echo_cpu / first[5])
        lines.append(f"{label:12} {rate:8,.0f} {cpu:12,.0f} {p50:12.1f} {p99:8.1f} {echo_cpu:12.1f}   "
                     + " ".join(f"{ratio:{width}.2f}" for ratio, width in zip(ratios, (7, 8, 6, 6, 8))))
    return "\n".join(lines)


def uploads_in_turn(args, work: Path, servers: list) -> str:
    """--upload: rounds of one upload to each server in turn; MB/s and the server's CPU per MB."""
    source = work / "upload.bin"
    source.write_bytes(os.urandom(1_000_000) * args.upload)  # random-looking, as bench.py's
    url = f"http://{USTACK_ADDRESS}/up.bin"
    for _, space, _ in servers:
        upload_rate(space, url, source)  # untimed
    uploads = {label: [] for label, _, _ in servers}
    for _ in range(args.rounds):
        for label, space, server in servers:
            uploads[label].append(upload_and_cpu(space, url, source, server.process.pid))
    rows = [(label, *(statistics.median(column) for column in zip(*uploads[label]))) for label, _, _ in servers]
    first = rows[0]
    lines = [f"{len(rows)} trees, {args.rounds} rounds in turn: curl -T of {args.upload:,} MB; medians, and each "
             f"over the first tree ({first[0]}); every round's CPU us per MB in brackets",
             f"{'tree':12} {'MB/s':>8} {'CPU us/MB':>10}   {'MB/s':>6} {'CPU/MB':>7}"]
    for label, rate, cpu in rows:
        every = " ".join(f"{round_cpu:,.0f}" for _, round_cpu in uploads[label])
        lines.append(f"{label:12} {rate:8,.0f} {cpu:10,.0f}   {rate / first[1]:6.2f} {cpu / first[2]:7.2f}   [{every}]")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", type=parse_tree, metavar="LABEL=TREE", help="two or more checkouts of ustack")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each measurement, in turn (default 5)")
    parser.add_argument("--connections", type=int, default=4000, help="ab requests per round (default 4000)")
    parser.add_argument("--echoes", type=int, default=20000, help="echo round trips per round (default 20000)")
    parser.add_argument("--upload", type=int, metavar="MB",
                        help="measure uploads of MB megabytes (curl -T) instead of connections and echoes")
    args = parser.parse_args()
    if len(args.trees) < 2:
        parser.error("give two trees or more to compare")
    if len({label for label, _ in args.trees}) < len(args.trees):
        parser.error("each tree needs a label of its own")
    if min(args.rounds, args.connections, args.echoes) < 1 or (args.upload is not None and args.upload < 1):
        parser.error("--rounds, --connections, --echoes and --upload must be at least 1")
    if os.geteuid() != 0:
        print("bench_trees.py: needs root (namespaces, TUN)", file=sys.stderr)
        return 2
    for tool in ("curl", "ip") if args.upload else ("ab", "ip", "taskset"):
        if shutil.which(tool) is None:
            print(f"bench_trees.py: `{tool}` is not installed", file=sys.stderr)
            return 2
    return run_and_clean_up("bench_trees.py", "ust-trees-", lambda work, spaces: measure(args, work, spaces))


if __name__ == "__main__":
    sys.exit(main())

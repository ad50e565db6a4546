#!/usr/bin/env python3
"""Python calls inside `ustack serve` per `ab` connection, echo round trip or MB uploaded, by part
of the house: a figure that the machine's load does not move, to compare commits by (bench.py's
connections/s, echo and upload rows are timed).

    sudo .venv/bin/python scripts/bench_serve_calls.py [--requests 2000] [--echo | --upload MB] [--strace] [--save DIR]

Run it from inside the tree to measure (`cd TREE && PYTHONPATH=TREE ...`): serve is started with
`-m ustack`, which imports from the current directory.

`ustack serve --http` runs in a namespace of its own (ust-calls-<pid>, always removed at the end,
on errors, Ctrl-C and SIGTERM too), under cProfile switched on by SIGUSR1 and written out by
SIGUSR2, and the kernel's `ab -c 20` fetches a small page over its TUN device, a new connection per
request, as bench.py's connections/s row does. After a warm-up run (500 requests), one run
measures serve's CPU time per connection without the profiler (user and system, bench.py's
process_cpu_seconds); the next one, with the profiler on, counts every Python function and
builtin called (cProfile's count), over the requests. With --strace a third run counts serve's
system calls (strace -c).

With --echo the load is bench.py's echo client instead (one connection, sequential 64-byte round
trips to serve's Echo service, --requests of them per run), and every figure is per round trip.

With --upload MB it is bench.py's upload row instead: `curl -T` of a file of MB megabytes to
serve's HTTP port (serve with --allow-upload stores the body as a file on tmpfs, as in bench.py),
one upload per run, and every figure is per MB (10**6 bytes, as bench.py counts them). The run
without the profiler is UPLOAD_CPU_RUNS uploads, each one's CPU per MB told (serve's uploads have
slow runs now and then: README, "Uploads at MTU 1500 on CPython").

The calls are grouped by part (bench_profile.AREAS, DESIGN.md's layers), a builtin charged to the
part that called it. The HTTP app (ustack/apps, h11, and the stdlib it calls: pathlib,
email.utils) runs the same on the kernel's sockets in bench.py's twin: only the other parts can
move the connections/s ratio.
"""

from __future__ import annotations

import argparse
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ustack.netns import Namespace  # noqa: E402
from ustack.network import USTACK_ADDRESS  # noqa: E402

from bench import (ECHO_CLIENT_WARM_UP, MEGABYTE, BenchError, Server, connections_and_cpu,  # noqa: E402
                   connections_per_second, echo_latency, echo_latency_and_cpu, run_and_clean_up, upload_and_cpu,
                   upload_rate)
from bench_profile import AREAS  # noqa: E402

WARM_UP_REQUESTS = 500
UPLOAD_CPU_RUNS = 3
DUMP_TIMEOUT = 30.0

# `python -m ustack ...` with cProfile: SIGUSR1 switches it on, SIGUSR2 switches it off and writes
# the counts to argv[1] (under a temporary name first, so that a reader never sees half a file).
SERVE_UNDER_CPROFILE = """
import cProfile, os, runpy, signal, sys
profiler = cProfile.Profile()
out = sys.argv[1]
def switch_on(*_):
    profiler.enable()
def switch_off_and_write(*_):
    profiler.disable()
    profiler.dump_stats(out + ".part")
    os.rename(out + ".part", out)
    profiler.clear()
signal.signal(signal.SIGUSR1, switch_on)
signal.signal(signal.SIGUSR2, switch_off_and_write)
sys.argv = ["ustack"] + sys.argv[2:]
runpy.run_module("ustack", run_name="__main__", alter_sys=True)
"""


def area_of(path: str) -> str:
    """The part of the house a function's file belongs to (bench_profile.AREAS)."""
    for marker, area in AREAS:
        if marker in path:
            return area
    return "other (stdlib, files)"


def calls_by_area(stats: dict) -> tuple[Counter, Counter]:
    """Calls by area and by (area, function), from pstats' table; a builtin ("~" as its file) is
    charged to the area of each caller, with the count that caller made."""
    areas: Counter[str] = Counter()
    functions: Counter[tuple[str, str]] = Counter()
    for (path, line, name), (_, calls, _, _, callers) in stats.items():
        if path == "~":
            for (caller_path, _, caller_name), caller_counts in callers.items():
                count = caller_counts[1] if isinstance(caller_counts, tuple) else caller_counts
                area = area_of(caller_path)
                areas[area] += count
                functions[(area, f"{name} (from {caller_name})")] += count
        else:
            area = area_of(path)
            areas[area] += calls
            functions[(area, f"{name} ({Path(path).name}:{line})")] += calls
    return areas, functions


def report(stats: dict, requests: float, top: int, unit: str = "ab connection") -> str:
    areas, functions = calls_by_area(stats)
    total = sum(areas.values())
    lines = [f"Python calls per {unit} in serve: {total / requests:,.1f} (cProfile, over {requests:,g})",
             "by part (a builtin counted in the part that called it):"]
    lines += [f"  {count / requests:8.1f}  {area}" for area, count in areas.most_common()]
    lines.append(f"the {top} functions called most:")
    for (area, function), count in functions.most_common(top):
        lines.append(f"  {count / requests:8.2f}  {function}  [{area}]")
    for area, _ in areas.most_common():
        rows = [(function, count) for (in_area, function), count in functions.most_common()
                if in_area == area and count >= requests / 2]
        if rows:
            lines.append(f"--- {area}: every function called at least once per two of them")
            lines += [f"  {count / requests:8.2f}  {function}" for function, count in rows]
    return "\n".join(lines)


def wait_for_file(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + DUMP_TIMEOUT
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"serve never wrote its profile to {path}")
        threading.Event().wait(0.05)  # a script polling a file, not a test: no event to wait on


def measure(args, work: Path, spaces: list[Namespace]) -> str:
    site = work / "site"
    site.mkdir()
    (site / "small.html").write_text("<p>hello</p>\n" * 20)  # bench.py's page
    space = Namespace(f"ust-calls-{os.getpid()}")
    spaces.append(space)
    space.open()
    profile_path = work / "serve.prof"
    serve = Server([sys.executable, "-c", SERVE_UNDER_CPROFILE, str(profile_path), "serve", "--netns", space.name,
                    "--http", str(site), "--echo"] + (["--allow-upload"] if args.upload else []),
                   {**os.environ, "USTACK_RUN_DIR": str(work)})
    url = f"http://{USTACK_ADDRESS}/small.html"
    upload_url = f"http://{USTACK_ADDRESS}/up.bin"
    upload_source = work / "upload.bin"
    if args.upload:
        # random-looking, as bench.py's; outside the served directory
        upload_source.write_bytes(os.urandom(1_000_000) * args.upload)

    def load(requests: int) -> None:
        if args.upload:
            upload_rate(space, upload_url, upload_source)
        elif args.echo:
            echo_latency(space, USTACK_ADDRESS, requests)
        else:
            connections_per_second(space, url, requests)
    try:
        serve.wait_ready("ustack: ready")
        load(WARM_UP_REQUESTS)
        if args.upload:
            rates, cpus = zip(*(upload_and_cpu(space, upload_url, upload_source, serve.process.pid)
                                for _ in range(UPLOAD_CPU_RUNS)))
            lines = [f"without the profiler, {UPLOAD_CPU_RUNS} uploads of {args.upload:,} MB: curl "
                     + " / ".join(f"{rate:,.0f}" for rate in rates) + " MB/s; serve's CPU "
                     + " / ".join(f"{cpu:,.0f}" for cpu in cpus) + f" us per MB (median {statistics.median(cpus):,.0f})"]
        elif args.echo:
            p50, p99, cpu = echo_latency_and_cpu(space, USTACK_ADDRESS, args.requests, None, serve.process.pid)
            lines = [f"without the profiler: echo p50 {p50:.1f} us, p99 {p99:.1f} us; serve's CPU {cpu:,.1f} us per echo"]
        else:
            rate, cpu = connections_and_cpu(space, url, args.requests, serve.process.pid)
            lines = [f"without the profiler: ab {rate:,.0f} connections/s; serve's CPU {cpu:,.0f} us per connection"]
        serve.process.send_signal(signal.SIGUSR1)
        load(args.requests)
        serve.process.send_signal(signal.SIGUSR2)
        wait_for_file(profile_path, serve.process)
        # (the echo client makes ECHO_CLIENT_WARM_UP round trips more than it times)
        if args.upload:
            unit, count = "MB uploaded", args.upload * 1e6 / MEGABYTE
        elif args.echo:
            unit, count = "echo round trip", args.requests + ECHO_CLIENT_WARM_UP
        else:
            unit, count = "ab connection", args.requests
        lines.append(report(pstats.Stats(str(profile_path)).stats, count, args.top, unit))
        if args.save:
            shutil.copyfile(profile_path, Path(args.save) / "serve.prof")
        if args.strace:
            counts = work / "strace.txt"
            strace = subprocess.Popen(["strace", "-c", "-f", "-o", str(counts), "-p", str(serve.process.pid)],
                                      stderr=subprocess.PIPE, text=True)
            strace.stderr.readline()  # "strace: Process N attached": counting starts after that
            load(args.requests)
            strace.send_signal(signal.SIGINT)
            strace.wait(timeout=DUMP_TIMEOUT)
            over = f"an upload of {args.upload:,} MB" if args.upload else f"{args.requests:,} of them"
            lines.append(f"system calls of serve over {over} (strace -c -f):")
            lines.append(counts.read_text().rstrip())
        return "\n".join(lines)
    finally:
        serve.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="ab requests in each measured run (default 2000)")
    parser.add_argument("--top", type=int, default=40, help="how many functions to list (default 40)")
    load = parser.add_mutually_exclusive_group()
    load.add_argument("--echo", action="store_true",
                      help="echo round trips (bench.py's echo client) instead of ab connections")
    load.add_argument("--upload", type=int, metavar="MB",
                      help="uploads of MB megabytes each (curl -T, bench.py's upload row) instead of ab connections")
    parser.add_argument("--strace", action="store_true", help="also count serve's system calls (strace -c)")
    parser.add_argument("--save", metavar="DIR", help="also keep the profile there (DIR/serve.prof, for pstats)")
    args = parser.parse_args()
    if args.requests < 1 or args.top < 0 or (args.upload is not None and args.upload < 1):
        parser.error("--requests and --upload must be at least 1, --top not negative")
    if os.geteuid() != 0:
        print("bench_serve_calls.py: needs root (namespaces, TUN)", file=sys.stderr)
        return 2
    for tool in ("curl" if args.upload else "ab", "ip") + (("strace",) if args.strace else ()):
        if shutil.which(tool) is None:
            print(f"bench_serve_calls.py: `{tool}` is not installed", file=sys.stderr)
            return 2
    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)
    return run_and_clean_up("bench_serve_calls.py", "ust-calls-", lambda work, spaces: measure(args, work, spaces))


if __name__ == "__main__":
    sys.exit(main())

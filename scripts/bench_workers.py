"""ustack serve --workers 1 against --workers 2: connections per second and downloads, twice each.

    sudo .venv/bin/python scripts/bench_workers.py [--requests 2000] [--size-mb 20] [--runs 2]

For each worker count a fresh `ustack serve --workers N` in its own namespace ust-bw-<pid>-<N>,
reached by the kernel's ab and curl there (as scripts/bench.py does, whose helpers this uses):
- connections/s: ab -c 20 -n REQUESTS, a new connection per request (many flows: the kernel
  spreads them over the queues, so this is where workers add up), and the same requests per
  CPU-second that ustack (all its workers together) spent on them: the per-worker capacity C of
  the model in docs/architecture.md ("Beyond one core");
- 1-flow download MB/s: one curl; one flow stays on one queue, so one worker serves it all;
- 2-flow download MB/s: two curls at once, their rates summed (two flows, one per queue when their
  hashes fall apart; with 2 queues they share one half the time).
Beside each worker count, the kernel's twin: N processes of the same Python app on the kernel's
sockets (bench.py's KERNEL_APP_SERVER, its listeners sharing port 80 with SO_REUSEPORT, so the
kernel spreads new connections over them as the TUN device spreads them over serve's queues),
reached over a veth pair by the same ab, its runs taken in turn with ustack's: the ratio is
ustack's connections/s over the kernel's with the same number of processes.
The kernel's ab/curl and the servers share this machine's cores: read the figures with
`nproc` beside them. Everything runs in namespaces made here and removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (KERNEL_APP_SERVER, KERNEL_SERVER_ADDRESS, MEGABYTE, BenchError, Server,  # noqa: E402
                   connect_kernel_twin, connections_and_cpu, download_rate, inside, remove_all)

from ustack.commands.signals import sigterm_as_interrupt  # noqa: E402
from ustack.netns import Namespace  # noqa: E402
from ustack.network import USTACK_ADDRESS  # noqa: E402

URL = f"http://{USTACK_ADDRESS}"
KERNEL_URL = f"http://{KERNEL_SERVER_ADDRESS}"


def parallel_download_rate(namespace: Namespace, url: str, flows: int) -> float:
    """Sum of the rates of `flows` curls started together (each curl's own figure)."""
    script = " & ".join(f"curl -sS --fail -o /dev/null -w '%{{speed_download}}\\n' {url}" for _ in range(flows))
    return sum(float(rate) for rate in inside(namespace, "sh", "-c", f"{script}; wait").split()) / MEGABYTE


def measure(workers: int, args, work: Path, spaces: list[Namespace], kernel_client: Namespace,
            kernel_server: Namespace) -> list[tuple[float, ...]]:
    """`args.runs` rounds of: ustack's ab run and the kernel twin's, in turn (which goes first
    alternates), then ustack's downloads."""
    space = Namespace(f"ust-bw-{os.getpid()}-{workers}")
    spaces.append(space)
    space.open()
    environment = {**os.environ, "USTACK_RUN_DIR": str(work)}
    server = Server([sys.executable, "-m", "ustack", "serve", "--netns", space.name, "--http", str(work / "site"),
                     "--workers", str(workers)], environment)
    twins = [Server(kernel_server.command([sys.executable, "-c", KERNEL_APP_SERVER, str(work / "site")]))
             for _ in range(workers)]
    try:
        server.wait_ready("ustack: ready")
        for twin in twins:
            twin.wait_ready("ready")
        twin_pids = [twin.process.pid for twin in twins]
        runs = []
        for run in range(args.runs):
            ours = lambda: connections_and_cpu(space, f"{URL}/small.html", args.requests,  # noqa: E731
                                               server.process.pid)
            theirs = lambda: connections_and_cpu(kernel_client, f"{KERNEL_URL}/small.html",  # noqa: E731
                                                 args.requests, *twin_pids)
            if run % 2:
                kernel_rate, _ = theirs()
                rate, cpu_per_connection = ours()
            else:
                rate, cpu_per_connection = ours()
                kernel_rate, _ = theirs()
            # serve's workers are its children: process_cpu_seconds counts them with it
            per_cpu = 1e6 / cpu_per_connection if cpu_per_connection else float("nan")
            runs.append((rate, per_cpu, kernel_rate, download_rate(space, f"{URL}/big.bin"),
                         parallel_download_rate(space, f"{URL}/big.bin", 2)))
        return runs
    finally:
        server.stop()
        for twin in twins:
            twin.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="ab requests per run (default 2000)")
    parser.add_argument("--size-mb", type=int, default=20, help="size of each download (default 20)")
    parser.add_argument("--runs", type=int, default=2, help="runs per worker count (default 2)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_workers.py: needs root (namespaces, TUN)", file=sys.stderr)
        return 2
    for tool in ("ab", "curl", "ip"):
        if shutil.which(tool) is None:
            print(f"bench_workers.py: `{tool}` is not installed (apt-get install apache2-utils curl iproute2)",
                  file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="ust-bw-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    spaces: list[Namespace] = []
    started = time.monotonic()
    try:
        with sigterm_as_interrupt():
            site = work / "site"
            site.mkdir()
            (site / "big.bin").write_bytes(os.urandom(1_000_000) * args.size_mb)
            (site / "small.html").write_text("<p>hello</p>\n" * 20)
            kernel_client = Namespace(f"ust-bw-{os.getpid()}-c")
            kernel_server = Namespace(f"ust-bw-{os.getpid()}-s")
            for space in (kernel_client, kernel_server):
                spaces.append(space)
                space.open()
            connect_kernel_twin(kernel_client, kernel_server, "ust-bw-c", "ust-bw-s")
            print(f"{'workers':>7}  {'run':>3}  {'connections/s (ab -c 20)':>24}  {'per ustack CPU-s':>16}  "
                  f"{'kernel, N processes':>19}  {'ratio':>5}  {'1-flow MB/s':>11}  {'2-flow MB/s':>11}")
            for workers in (1, 2):
                measured = measure(workers, args, work, spaces, kernel_client, kernel_server)
                for run, (rate, per_cpu, kernel_rate, one, two) in enumerate(measured, start=1):
                    print(f"{workers:>7}  {run:>3}  {rate:>24.0f}  {per_cpu:>16.0f}  {kernel_rate:>19.0f}  "
                          f"{rate / kernel_rate:>5.2f}  {one:>11.1f}  {two:>11.1f}", flush=True)
            print(f"({time.monotonic() - started:.0f} s; {os.cpu_count()} cores shared by ustack and the kernel's "
                  f"ab/curl; {args.requests} requests, {args.size_mb} MB downloads)")
        return 0
    except BenchError as error:
        print(f"bench_workers.py: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench_workers.py: interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        remove_all(spaces, work, "bench_workers.py")


if __name__ == "__main__":
    sys.exit(main())

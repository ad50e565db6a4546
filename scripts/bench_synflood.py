#!/usr/bin/env python3
"""A spoofed SYN flood against `ustack serve` while real curls fetch a page: how many of them
are served during and after it, and how much memory the flood costs ustack, with SYN cookies off
and on (issue 9's goal: at least 99 % of curls succeed during the flood, each within 1 s, 100 %
after it, RSS growth under 10 MB).

    sudo .venv/bin/python scripts/bench_synflood.py [--syns 100000] [--interval u10] [--modes off,auto]

For each mode, in a namespace this script creates (ust-synflood-<pid>, always removed at the end,
on errors and Ctrl-C too): `ustack serve --netns ... --http DIR --syncookies MODE`, then
`hping3 -S --rand-source -c SYNS -i INTERVAL` towards it (bounded in count, and by a timeout),
while curl fetches a page again and again, each with a 1 s limit, during the flood and for 10 s
after it.

Nothing leaves the namespace: it has no device but its loopback and ustack's TUN, no default
route and IPv4 forwarding off. The flood's random source addresses exist nowhere; the SYN-ACKs
ustack sends them come back out of the TUN into the namespace's kernel, which has no route for
them (and would not forward them) and drops them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ustack.netns import Namespace, stop_process  # noqa: E402

ADDRESS = "10.77.0.2"
URL = f"http://{ADDRESS}/index.html"
READY_TIMEOUT = 30.0
CURL_LIMIT = 1.0  # seconds: a curl slower than this counts as failed ("each within 1 s")
AFTER = 10.0  # seconds of curls after the flood
GOAL_DURING, GOAL_AFTER, GOAL_RSS_MB = 99.0, 100.0, 10.0


class BenchError(Exception):
    """Something the benchmark could not do, in one line."""


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for process {pid}")


class Curls:
    """curl after curl in the namespace, each recorded as (start, seconds, succeeded)."""

    def __init__(self, namespace: Namespace) -> None:
        self.namespace = namespace
        self.results: list[tuple[float, float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        command = self.namespace.command(["curl", "-s", "-o", "/dev/null", "--max-time", str(CURL_LIMIT),
                                          "-w", "%{http_code} %{time_total}", URL])
        while not self._stop.is_set():
            started = time.monotonic()
            result = subprocess.run(command, capture_output=True, text=True, timeout=10)
            fields = result.stdout.split()
            ok = result.returncode == 0 and len(fields) == 2 and fields[0] == "200" and float(fields[1]) <= CURL_LIMIT
            self.results.append((started, time.monotonic() - started, ok))
            self._stop.wait(0.05)

    def between(self, start: float, end: float) -> tuple[int, int]:
        """(succeeded, tried) among the curls started in [start, end)."""
        chosen = [ok for began, _, ok in self.results if start <= began < end]
        return sum(chosen), len(chosen)


def run_mode(mode: str, args, site: Path) -> dict:
    name = f"ust-synflood-{os.getpid()}"
    with Namespace(name) as namespace:
        namespace.run(["sysctl", "-qw", "net.ipv4.ip_forward=0"])
        serve = subprocess.Popen(
            [sys.executable, "-m", "ustack", "serve", "--netns", name, "--http", str(site), "--syncookies", mode,
             "--backlog", str(args.backlog)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_ready(serve)
            routes = namespace.run(["ip", "route", "show", "default"]).stdout
            if routes.strip():
                raise BenchError(f"namespace {name} has a default route ({routes.strip()}): the flood could leave it")
            curls = Curls(namespace)
            curls.start()
            time.sleep(1.0)  # a few curls before the flood: the page is served at all
            baseline = peak = rss_kib(serve.pid)  # after them: what serving costs is not the flood's
            flood_start = time.monotonic()
            hping = subprocess.Popen(
                namespace.command(["timeout", str(args.flood_timeout), "hping3", "-S", "--rand-source", "-p", "80",
                                   "-c", str(args.syns), "-i", args.interval, ADDRESS]),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            while hping.poll() is None:
                peak = max(peak, rss_kib(serve.pid))
                time.sleep(0.1)
            flood_end = time.monotonic()
            hping_output = hping.stdout.read()
            syn_recv = _count_syn_recv(serve.pid)
            sent = re.search(r"(\d+) packets transmitted", hping_output)
            after_end = flood_end + AFTER
            while time.monotonic() < after_end:
                peak = max(peak, rss_kib(serve.pid))
                time.sleep(0.1)
            curls.stop()
            counters = _listener_counters(serve.pid)
        finally:
            stop_process(serve, grace=15)
    return {
        "mode": mode,
        "sent": int(sent.group(1)) if sent else None,
        "flood_seconds": flood_end - flood_start,
        "before": curls.between(0, flood_start),
        "during": curls.between(flood_start, flood_end),
        "after_0_5": curls.between(flood_end, flood_end + 5),
        "after_5_10": curls.between(flood_end + 5, flood_end + AFTER),
        "rss_growth_mb": (peak - baseline) / 1024,
        "syn_recv_after": syn_recv,
        "counters": counters,
        "slowest_during": max((seconds for began, seconds, _ in curls.results if flood_start <= began < flood_end),
                              default=0.0),
    }


def _wait_ready(serve: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    for line in serve.stdout:
        if line.startswith("ustack: ready"):
            threading.Thread(target=lambda: [None for _ in serve.stdout], daemon=True).start()  # keep draining
            return
        if time.monotonic() > deadline:
            break
    raise BenchError(f"ustack serve did not start: {serve.stderr.read() if serve.poll() is not None else 'timeout'}")


def _count_syn_recv(pid: int) -> int | None:
    """SYN-RECV connections of our ustack serve, as `ustack ss` shows them (the netstat | grep
    SYN_RECV of the course text)."""
    result = subprocess.run([sys.executable, "-m", "ustack", "ss", "--json", "--state", "syn-recv"],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        return None
    return sum(1 for connection in json.loads(result.stdout) if connection.get("pid") == pid)


def _listener_counters(pid: int) -> dict:
    """The HTTP listener's counters and drops, as `ustack stats` shows them."""
    result = subprocess.run([sys.executable, "-m", "ustack", "stats", "--json", "--pid", str(pid)],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0 or not result.stdout.strip():
        return {}
    for answer in json.loads(result.stdout):
        for listener in answer.get("statistics", {}).get("listeners", []):
            if listener.get("local", {}).get("port") == 80:
                return {**listener.get("counters", {}), **listener.get("drops", {})}
    return {}


def percent(pair: tuple[int, int]) -> str:
    succeeded, tried = pair
    return f"{100.0 * succeeded / tried:5.1f} % ({succeeded}/{tried})" if tried else "   - (0 curls)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--syns", type=int, default=100_000, help="SYNs in the flood (default 100000)")
    parser.add_argument("--interval", default="u10", help="hping3 -i between SYNs (default u10: 10 us)")
    parser.add_argument("--flood-timeout", type=int, default=120, help="hping3 is stopped after this many seconds")
    parser.add_argument("--backlog", type=int, default=128, help="ustack serve --backlog (default 128)")
    parser.add_argument("--modes", default="off,auto", help="--syncookies modes to run, in order (default off,auto)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_synflood: needs root (namespaces, TUN, hping3's raw socket)", file=sys.stderr)
        return 2
    modes = args.modes.split(",")
    if not 1 <= args.syns <= 1_000_000 or any(mode not in ("off", "auto", "always") for mode in modes):
        print("bench_synflood: --syns must be 1..1000000, --modes off/auto/always", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="ust-synflood-", dir="/dev/shm") as directory:
        site = Path(directory)
        (site / "index.html").write_text("<h1>served during a SYN flood</h1>\n" * 20)
        try:
            for mode in modes:
                results.append(run_mode(mode, args, site))
        except (BenchError, OSError, subprocess.SubprocessError) as error:
            print(f"bench_synflood: {error}", file=sys.stderr)
            return 1
    print(f"\n{args.syns} spoofed SYNs (hping3 -S --rand-source -i {args.interval}) against ustack serve "
          f"--backlog {args.backlog}; curls with a {CURL_LIMIT:.0f} s limit")
    header = f"{'syncookies':<11}{'flood':>10}  {'curls during':<22}{'0-5 s after':<22}{'5-10 s after':<22}{'RSS +MB':>8}  SYN-RECV at its end"
    print(header)
    for r in results:
        print(f"{r['mode']:<11}{r['flood_seconds']:>8.1f} s  {percent(r['during']):<22}{percent(r['after_0_5']):<22}"
              f"{percent(r['after_5_10']):<22}{r['rss_growth_mb']:>8.1f}  {r['syn_recv_after']}")
    print(f"{'goal':<11}{'':>10}  {f'>= {GOAL_DURING:.0f} %':<22}{'':<22}{f'{GOAL_AFTER:.0f} %':<22}{f'< {GOAL_RSS_MB:.0f}':>8}")
    for r in results:
        print(f"  {r['mode']}: hping3 sent {r['sent']}; before the flood {percent(r['before'])}; "
              f"slowest curl during it {r['slowest_during']:.2f} s")
        print(f"    listener: " + ", ".join(f"{name} {value}" for name, value in sorted(r["counters"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

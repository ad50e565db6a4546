"""A bounded spoofed SYN flood (hping3) against `ustack serve` while the kernel's curl fetches a
page: with SYN cookies every curl is served, without them the SYN queue stays full of half-open
connections and a real client is shut out (RFC 4987).

The attacker: a program in the namespace that knows ustack's address and port and nothing else.
It forges random source addresses (hping3 --rand-source), so it never sees a SYN-ACK: it learns no
ISN and no cookie, and it never completes a handshake. It sends FLOOD SYNs as fast as hping3's
10 us interval lets it (a second or two), bounded in count and by a timeout.

Network safety: the flood runs in the namespace that serve creates, whose only devices are its
loopback and ustack's TUN, with no default route; the SYN-ACKs to the forged addresses come back
out of the TUN into the namespace's kernel, which does not forward and drops them.
Speed is bench_synflood.py's business: curls here have generous limits, as hang guards.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import json

from interop_helpers import STACK_ADDRESS, run_cli, tcp_segments

from ustack.netns import namespace_test_problems, stop_process
from ustack.wire.tcp import ACK, SYN

FLOOD = 20_000
BACKLOG = 16
CURL_GUARD = 10  # seconds: a hang guard for one curl, never a measurement


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<h1>served during a SYN flood</h1>\n")
    return root


@pytest.fixture
def hping3():
    problems = namespace_test_problems(("hping3",), " (./scripts/test installs it)")
    if problems:
        pytest.fail("the SYN flood test cannot run: " + "; ".join(problems), pytrace=False)


def start_flood(serve) -> subprocess.Popen:
    routes = serve.inside("ip", "route", "show", "default")
    assert routes.returncode == 0 and routes.stdout.strip() == "", f"a default route would let the flood out: {routes.stdout}"
    assert serve.inside("sysctl", "-qw", "net.ipv4.ip_forward=0").returncode == 0
    return subprocess.Popen(
        ["ip", "netns", "exec", serve.namespace, "timeout", "60", "hping3", "-S", "--rand-source", "-p", "80",
         "-c", str(FLOOD), "-i", "u10", STACK_ADDRESS],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def curl(serve) -> bool:
    result = serve.inside("curl", "-sS", "--fail", "--max-time", str(CURL_GUARD), f"http://{STACK_ADDRESS}/",
                          timeout=CURL_GUARD + 5)
    return result.returncode == 0 and result.stdout == "<h1>served during a SYN flood</h1>\n"


def finish_flood(flood: subprocess.Popen) -> int:
    """hping3's own count of the SYNs it sent."""
    try:
        output, _ = flood.communicate(timeout=90)
    finally:
        stop_process(flood)
    sent = re.search(r"(\d+) packets transmitted", output)
    assert sent, f"cannot read hping3's report: {output[-500:]}"
    return int(sent.group(1))


def syn_recv_count(serve) -> int:
    return len(serve.ss("--state", "syn-recv"))


def listener_counters(serve) -> dict:
    """The port-80 listener's counters and drops, as `ustack stats --json` shows them."""
    result = run_cli("stats", "--json", "--pid", str(serve.process.pid), environment=serve.environment)
    assert result.returncode == 0, result.stderr
    [answer] = json.loads(result.stdout)
    [listener] = [item for item in answer["statistics"]["listeners"] if item["local"]["port"] == 80]
    return {**listener.get("counters", {}), **listener.get("drops", {})}


def test_with_syn_cookies_every_real_curl_is_served_during_the_flood(ustack_serve, site, hping3):
    serve = ustack_serve("--http", str(site), "--syncookies", "auto", "--backlog", str(BACKLOG))
    assert curl(serve)  # served before the flood
    flood = start_flood(serve)
    during = []
    while flood.poll() is None:
        during.append(curl(serve))
    sent = finish_flood(flood)
    after = [curl(serve) for _ in range(5)]
    half_open = syn_recv_count(serve)
    print(f"hping3 sent {sent} SYNs; curls served during the flood {during.count(True)}/{len(during)}, "
          f"after it {after.count(True)}/{len(after)}; SYN-RECV entries {half_open}")

    assert sent == FLOOD
    assert len(during) >= 1, "the flood ended before a curl could run"
    assert all(during), f"{during.count(False)} of {len(during)} curls failed during the flood"
    assert all(after), f"{after.count(False)} of 5 curls failed after the flood"
    # Memory stays bounded: the SYN queue never holds more than the backlog; the rest got cookies.
    assert half_open <= BACKLOG
    segments = tcp_segments(serve.pcap_path)
    syn_acks = sum(1 for s in segments if s.flags & (SYN | ACK) == SYN | ACK and s.source[0] == STACK_ADDRESS)
    served = sum(1 for s in segments if s.flags & (SYN | ACK) == SYN | ACK and s.destination[0] == "10.77.0.1")
    assert served >= len(during) + len(after) + 1
    print(f"SYN-ACKs sent: {syn_acks}, {served} of them to the real client")
    assert syn_acks > BACKLOG * 6 + served, f"only {syn_acks} SYN-ACKs for {sent} SYNs: were cookies sent at all?"
    counters = listener_counters(serve)
    print("listener counters:", counters)
    assert counters["syncookies_sent"] >= syn_acks - BACKLOG * 6 - 1  # all but the queue's own SYN-ACKs
    assert counters["syn_queue_overflows"] == counters["syncookies_sent"]
    # The curls that ran while the queue was full came in through cookies.
    assert 1 <= counters["syncookies_validated"] <= len(during) + len(after)
    assert counters.get("syncookies_failed", 0) == 0 and counters.get("syn_queue_full", 0) == 0


def test_without_syn_cookies_the_queue_stays_full_and_a_real_client_is_shut_out(ustack_serve, site, hping3):
    serve = ustack_serve("--http", str(site), "--syncookies", "off", "--backlog", str(BACKLOG))
    assert curl(serve)
    sent = finish_flood(start_flood(serve))
    assert sent == FLOOD
    # Half-open entries for forged addresses live through 5 SYN-ACK retransmissions (about 63 s):
    # the queue is full, and a real client's SYNs are dropped.
    assert syn_recv_count(serve) == BACKLOG
    result = serve.inside("curl", "-sS", "--max-time", "3", f"http://{STACK_ADDRESS}/", timeout=10)
    assert result.returncode == 28, (result.returncode, result.stdout, result.stderr)  # curl's "timed out"
    assert syn_recv_count(serve) == BACKLOG
    counters = listener_counters(serve)
    assert counters["syn_queue_full"] == counters["syn_queue_overflows"] > FLOOD // 2
    assert "syncookies_sent" not in counters

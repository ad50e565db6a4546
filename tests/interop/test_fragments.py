"""IPv4 fragments between the real Linux kernel and `ustack serve`, in a namespace the test makes.

- `ping -s 3000`, `-s 60000` and `-s 65507`: the kernel fragments each request, ustack reassembles it and
  fragments its reply, the kernel reassembles that.
- A TCP connection whose SYN and data come in fragments, crafted with scapy inside the namespace
  (the kernel's own TCP never fragments: it sizes segments to the path MTU). The crafted packets
  come from 10.77.0.3, an address nobody in the namespace owns, so ustack's answers are seen on
  the TUN device by a sniffer and the kernel drops them quietly instead of resetting a connection
  it knows nothing of.
"""

from __future__ import annotations

import json
import re
import sys

from interop_helpers import STACK_ADDRESS, run_cli, wait_for

PING_TIMEOUT = 60

# Runs inside the namespace. Attacker/peer knowledge: everything (it is the peer).
FRAGMENTED_TCP_PEER = r"""
import json, queue, sys, threading
from scapy.all import IP, TCP, AsyncSniffer, Raw, conf, fragment, send
from scapy.supersocket import L3RawSocket

conf.L3socket = L3RawSocket  # a raw IP socket: our fragments leave exactly as made
SOURCE, USTACK, DEVICE, PORT = "10.77.0.3", sys.argv[1], "ustun0", 7
arrived = queue.Queue()
started = threading.Event()
sniffer = AsyncSniffer(iface=DEVICE, store=False, started_callback=started.set, prn=arrived.put,
                       lfilter=lambda p: IP in p and TCP in p and p[IP].dst == SOURCE)
sniffer.start()
if not started.wait(10):
    sys.exit("the sniffer did not start")

def next_from_ustack(wanted, what):
    while True:
        try:
            packet = arrived.get(timeout=10)
        except queue.Empty:
            sys.exit(f"no {what} from ustack within 10 s")
        if wanted(packet[TCP]):
            return packet[TCP]

def send_fragmented(segment, size, identification):
    # Last fragment first: ustack must hold them all, whatever the order.
    pieces = fragment(IP(src=SOURCE, dst=USTACK, id=identification, flags=0) / segment, fragsize=size)
    for piece in reversed(pieces):
        send(piece, verbose=False)
    return len(pieces)

# The SYN in two fragments: 24 bytes of its 28-byte header, then the last 4.
options = [("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b"")]
syn_fragments = send_fragmented(TCP(sport=40000, dport=PORT, flags="S", seq=1000, window=65535, options=options),
                                24, 101)
syn_ack = next_from_ustack(lambda tcp: tcp.flags == "SA", "SYN-ACK")
send(IP(src=SOURCE, dst=USTACK) / TCP(sport=40000, dport=PORT, flags="A", seq=1001, ack=syn_ack.seq + 1,
                                      window=65535), verbose=False)
# 3000 bytes of data in one segment, in 1000-byte fragments: ustack's echo service sends them back.
data = bytes(range(256)) * 11 + bytes(184)
data_fragments = send_fragmented(TCP(sport=40000, dport=PORT, flags="PA", seq=1001, ack=syn_ack.seq + 1,
                                     window=65535) / Raw(data), 1000, 102)
echoed = {}
while sum(len(piece) for piece in echoed.values()) < len(data):
    tcp = next_from_ustack(lambda tcp: len(tcp.payload) > 0, "echoed data")
    echoed[tcp.seq] = bytes(tcp.payload)
    # Acknowledge it, or Nagle's algorithm holds the last small piece back.
    send(IP(src=SOURCE, dst=USTACK) / TCP(sport=40000, dport=PORT, flags="A", seq=1001 + len(data),
                                          ack=tcp.seq + len(tcp.payload), window=65535), verbose=False)
echo = b"".join(echoed[seq] for seq in sorted(echoed))
send(IP(src=SOURCE, dst=USTACK) / TCP(sport=40000, dport=PORT, flags="R", seq=1001 + len(data)), verbose=False)
# A datagram whose second fragment overlaps the first (bytes 16..24 twice): RFC 5722 says drop it all.
send(IP(src=SOURCE, dst=USTACK, id=103, flags="MF", frag=0, proto=6) / Raw(bytes(24)), verbose=False)
send(IP(src=SOURCE, dst=USTACK, id=103, frag=2, proto=6) / Raw(bytes(16)), verbose=False)
sniffer.stop()
print(json.dumps({"syn_fragments": syn_fragments, "data_fragments": data_fragments,
                  "echo_intact": echo == data, "echoed": len(echo)}))
"""


def ping(serve, size: int) -> str:
    result = serve.inside("ping", "-c", "3", "-i", "0.2", "-W", "5", "-s", str(size), STACK_ADDRESS,
                          timeout=PING_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def statistics(serve) -> dict:
    result = run_cli("stats", "--json", "--pid", str(serve.process.pid), environment=serve.environment)
    assert result.returncode == 0, result.stderr
    [answer] = json.loads(result.stdout)
    return answer["statistics"]


def test_large_pings_are_answered(ustack_serve):
    serve = ustack_serve()
    # 65,507 is the largest: 65,535 bytes with the IPv4 and ICMP headers.
    for size in (3000, 60000, 65507):
        output = ping(serve, size)
        assert "3 received" in output
        # Each reply is the full size: the kernel put ustack's fragments back together.
        assert len(re.findall(rf"^{size + 8} bytes from {re.escape(STACK_ADDRESS)}", output, re.MULTILINE)) == 3
    counters = statistics(serve)["stack"]["counters"]
    assert counters["reassembly_datagrams_completed"] == 9
    assert counters["icmp_echo_replies"] == 9
    # 1,480 bytes of each reply in a fragment over the 1,500-byte MTU: 3 fragments for 3,008
    # bytes, 41 for 60,008, 45 for 65,515; three of each.
    assert counters["fragments_created"] == 3 * (3 + 41 + 45)
    assert not any(reason.startswith("reassembly") for reason in statistics(serve)["stack"].get("drops", {}))


def test_fragmented_tcp_syn_and_data_are_accepted(ustack_serve):
    serve = ustack_serve("--echo")
    result = serve.inside(sys.executable, "-c", FRAGMENTED_TCP_PEER, STACK_ADDRESS, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"syn_fragments": 2, "data_fragments": 4, "echo_intact": True, "echoed": 3000}
    # The overlapping pair went out last; the stats command reads the drop once it is counted.
    def counted_the_overlap():
        current = statistics(serve)
        return current if current["stack"].get("drops", {}).get("reassembly_overlap") else None

    found = wait_for(counted_the_overlap, 10, "the overlap drop in ustack stats")
    assert found["stack"]["drops"]["reassembly_overlap"] == 2
    assert found["stack"]["counters"]["reassembly_datagrams_completed"] == 2
    assert found["stack"]["counters"]["reassembly_fragments_received"] == 8

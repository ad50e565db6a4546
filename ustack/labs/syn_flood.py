"""Lab `syn-flood`: a bounded burst of SYNs from made-up addresses fills a listener's SYN queue
with half-open connections; what that does to a real client, and the defences.

Everything stays in the lab's namespace: the spoofed sources are unused addresses of its own
10.77.0.0/24 (fd00:77::/64 with --ipv6), the SYN-ACKs sent to them go nowhere (the kernel does not
forward; ustack drops packets not addressed to it, counted as ipv4_not_our_address or
ipv6_not_our_address).

Scene 1, SYN cookies off: a raw socket in the namespace sends the burst to ustack. Its SYN queue
(16 here) fills with SYN-RECEIVED entries, the rest of the burst is dropped, and so is the real
client's SYN: the client only gets in when its retransmitted SYN finds room, after ustack gave up
on some half-open entries (synack_retries).
Scene 2, SYN cookies on (ustack's default, "auto"): the same burst against another port. The
queue fills the same way, but every SYN beyond it is answered with a SYN cookie and forgotten; the
real client is served at once, and the lab takes its cookie apart bit by bit.
Scene 3: the same burst towards a kernel listener (backlog 8) with net.ipv4.tcp_syncookies=1:
the kernel keeps 8 half-open entries, answers the rest with SYN cookies, and serves ustack as a
real client at once.
"""

from __future__ import annotations

import dataclasses

from ..tcp import TcpConfig
from ..tcp.syn_cookies import MAX_AGE_SLOTS, MSS_TABLE, OPTION_BITS, SLOT_SECONDS, CookieFields, CookieOptions
from ..trace import RIGHT
from ..wire import build_tcp_packet, parse_packet
from ..wire.ipv4 import address_text
from ..wire.tcp import ACK, SYN, TcpOptions, TcpSegment
from .session import LabOptions, LabSession, address_of, run_lab

NAME = "syn-flood"
SUMMARY = "spoofed SYNs fill the SYN queue (SYN-RECV piles up); queue limits and SYN cookies keep a real client served"
PORT = 8000
COOKIE_PORT = 8001
KERNEL_PORT = 9000
FLOOD = 64  # SYNs in the burst: bounded, and only ever inside the namespace
SYN_QUEUE = 16  # ustack's SYN queue for this lab
KERNEL_BACKLOG = 8
SPOOFED_FIRST_HOST = 100  # sources 10.77.0.100 .. 10.77.0.163 (fd00:77::64 .. over IPv6): unused addresses
SYNACK_RETRIES = 1
INITIAL_RTO = 1.0
# A half-open entry lasts the initial RTO, doubled after each retransmission, until ustack gives up.
ENTRY_LIFETIME = sum(INITIAL_RTO * 2 ** attempt for attempt in range(SYNACK_RETRIES + 1))

EXPLANATION = f"""\
A SYN costs the sender one packet and the listener a half-open connection: state kept in
SYN-RECEIVED while the SYN-ACK is retransmitted (RFC 9293 3.5; the syn-received lab). A SYN
flood (RFC 4987) sends SYNs from addresses that will never answer, so the half-open entries only
go when the listener gives up on them.

Defence 1, bound the SYN queue. ustack keeps at most syn_queue_size half-open connections per
listener ({SYN_QUEUE} here; `ustack ss` shows them as SYN-RECV) and drops further SYNs, counted as
syn_queue_full; memory stays bounded whatever the attacker sends. But a legitimate client's SYN is
dropped just the same: it waits for its own SYN retransmission (1 s, then 2 s... on Linux) to find
a free slot, which appears when ustack's SYN-ACK retries for a spoofed entry run out (synack_retries
= {SYNACK_RETRIES} and initial_rto = {INITIAL_RTO} s here: an entry lasts {ENTRY_LIFETIME} s).
Shorter retries and RFC 4987's other ideas (recycling the oldest half-open entry) trade robustness
against slow clients for availability.

Defence 2, SYN cookies (RFC 4987 3.6). When the queue is full, the listener keeps nothing: it
folds what it must remember into the initial sequence number of its SYN-ACK, the cookie: a time
slot (now / {SLOT_SECONDS} s, mod 32) in the top 5 bits, the client's MSS as an index into a small table
in the next 3, and in the low 24 a MAC, a keyed hash of the 4-tuple, the client's ISN, the slot
and the index under a secret only the listener knows (rotated every few minutes). A real client's
ACK returns that number + 1; the listener recomputes the MAC, checks the slot is at most
{MAX_AGE_SLOTS} slot old, and only then builds the connection, in ESTABLISHED. Spoofed sources never
answer, so they cost one SYN-ACK and no memory; an attacker guessing cookies blindly has one chance
in 2**24. What does not fit in 32 bits, the client's window scale and SACK-permitted, rides in the
low {OPTION_BITS} bits of the SYN-ACK's timestamp, which the client echoes (as Linux does); a client
without timestamps gets a connection without those options.

ustack answers with cookies once a listener's SYN queue is full (TcpConfig.syncookies "auto",
`ustack serve --syncookies auto`), as Linux does with net.ipv4.tcp_syncookies = 1; "always" (2)
answers every SYN so, "off" (0) is scene 1. Its counters: syn_queue_overflows, syncookies_sent,
syncookies_validated, syncookies_failed (Linux's nstat: TcpExtListenOverflows,
TcpExtSyncookiesSent, TcpExtSyncookiesRecv, TcpExtSyncookiesFailed). In scene 3 the kernel holds
about its backlog ({KERNEL_BACKLOG}) of half-open entries and cookies answer the rest; ustack, as a
real client, connects without a single retransmission.

What to look for: the pile of SYN-RECV lines in `ustack ss` and in the kernel's ss (`netstat
-n -p TCP | grep SYN_RECV` in older texts); the real client's SYN retransmitted in scene 1 and
answered at once in scenes 2 and 3; the cookie taken apart in scene 2; the counters under each
scene.
"""


def run(options: LabOptions) -> "LabResult":  # noqa: F821
    config = TcpConfig(msl=0.5, synack_retries=SYNACK_RETRIES, initial_rto=INITIAL_RTO, syncookies="off")
    return run_lab(NAME, SUMMARY, scenario, options, config)


def spoofed_source(lab: LabSession, number: int) -> int | bytes:
    """The number-th made-up source: host SPOOFED_FIRST_HOST + number of the lab's subnet
    (10.77.0.0/24, or fd00:77::/64 over IPv6), an address nobody has."""
    host = SPOOFED_FIRST_HOST + number
    if lab.ipv6:
        return lab.kernel_value[:14] + host.to_bytes(2, "big")
    return (lab.kernel_value & 0xFFFFFF00) | host


def spoofed_syns(lab: LabSession, destination: str, port: int) -> list[bytes]:
    """FLOOD SYNs to destination:port from unused addresses of the lab's subnet."""
    packets = []
    mss = 1440 if lab.ipv6 else 1460  # what a host on a 1500-byte link offers (RFC 9293 3.7.1)
    for number in range(FLOOD):
        segment = TcpSegment(40000 + number, port, (number * 2654435761) & 0xFFFFFFFF, 0, SYN, 64240,
                             options=TcpOptions(mss=mss))
        packets.append(build_tcp_packet(spoofed_source(lab, number), address_of(destination), segment))
    return packets


def spoofed_range(lab: LabSession) -> str:
    return f"{address_text(spoofed_source(lab, 0))} .. {address_text(spoofed_source(lab, FLOOD - 1))}"


async def scenario(lab: LabSession) -> str:
    await _flood_ustack(lab)
    await _flood_ustack_with_cookies(lab)
    await _flood_kernel(lab)
    return EXPLANATION


async def _flood_ustack(lab: LabSession) -> None:
    scene = lab.scene(f"SYN cookies off: {FLOOD} spoofed SYNs fill ustack's SYN queue; a real client waits", port=PORT)
    accepted = await lab.listen(PORT, backlog=SYN_QUEUE)  # the SYN queue is as long as the backlog
    listener = accepted.server.listener
    lab.step(f"ustack: listen on port {PORT}, SYN queue of {listener.syn_queue_size}, synack_retries {SYNACK_RETRIES},"
             f" syncookies {listener.config.syncookies}")
    flooder = await lab.kernel_peer()
    packets = spoofed_syns(lab, lab.ustack_address, PORT)
    await flooder.call("raw", *(packet.hex() for packet in packets))
    lab.step(f"namespace: a raw socket sends {FLOOD} SYNs from {spoofed_range(lab)} (addresses nobody has)")
    await lab.wait_for(lambda: len(listener.syn_queue) + listener.drops["syn_queue_full"] >= FLOOD,
                       "ustack to take in the burst")
    peak = len(listener.syn_queue)
    flood_drops = listener.drops["syn_queue_full"]
    lab.step(f"ustack: {peak} half-open connections in SYN-RECEIVED, {flood_drops} SYNs dropped (syn_queue_full)")
    await lab.ustack_ss("during the flood: the SYN queue is full of SYN-RECV entries")

    client = await lab.kernel_peer()
    started = lab.now()
    connecting = client.start("connect", lab.ustack_address, PORT, 20)
    await lab.wait_for(lambda: listener.drops["syn_queue_full"] > flood_drops, "the real client's SYN")
    lab.step("kernel: a real client connects; its SYN finds the queue full and is dropped")
    await lab.kernel_ss("the real client waits in SYN-SENT", ("-tano", "state", "syn-sent"))
    await connecting
    waited = lab.now() - started
    _, writer, connection = await accepted.next()
    lab.step(f"kernel: connect() returns after {waited:.3f} s, once a retransmitted SYN found a free slot")
    client_syns = [a for a in lab.ladder().arrows if a.from_side == RIGHT and a.flags == SYN]
    scene.facts.update(syn_queue_peak=peak, flood_drops=flood_drops, client_wait=waited,
                       client_syns=len(client_syns), syn_queue_full=listener.drops["syn_queue_full"],
                       not_ours=lab.not_our_address_drops)
    lab.note(f"Counters: SYN queue peak {peak}/{SYN_QUEUE}; SYNs dropped because it was full: "
             f"{listener.drops['syn_queue_full']} (the burst's and the real client's); SYN-ACKs to the spoofed "
             f"addresses came back to nobody. The real client sent its SYN {len(client_syns)} times and waited {waited:.3f} s.")
    lab.cut()
    writer.transport.abort()
    await client.call("close")
    accepted.server.close()


async def _flood_ustack_with_cookies(lab: LabSession) -> None:
    scene = lab.scene("SYN cookies on: the same burst, and the real client is served at once", port=COOKIE_PORT)
    # Half-open entries kept for Linux's 63 s (synack_retries 5): the queue stays full all scene long.
    config = dataclasses.replace(lab.stack.config, syncookies="auto", synack_retries=TcpConfig().synack_retries)
    accepted = await lab.listen(COOKIE_PORT, backlog=SYN_QUEUE, config=config)
    listener = accepted.server.listener
    lab.step(f"ustack: listen on port {COOKIE_PORT}, SYN queue of {listener.syn_queue_size}, syncookies auto "
             "(cookies once the queue is full)")
    flooder = await lab.kernel_peer()
    await flooder.call("raw", *(packet.hex() for packet in spoofed_syns(lab, lab.ustack_address, COOKIE_PORT)))
    lab.step(f"namespace: the raw socket sends the same {FLOOD} spoofed SYNs")
    await lab.wait_for(lambda: len(listener.syn_queue) + listener.counters["syncookies_sent"] >= FLOOD,
                       "ustack to take in the burst")
    peak, cookies = len(listener.syn_queue), listener.counters["syncookies_sent"]
    lab.step(f"ustack: {peak} half-open connections in SYN-RECEIVED; {cookies} SYNs answered with a cookie "
             "and forgotten (nothing kept for them)")
    await lab.ustack_ss("during the flood: the SYN queue is just as full")

    syn_acks = []  # ustack's SYN-ACKs to the real client, as sent

    def watch(now: float, kind: str, packet) -> None:
        if kind == ">":
            parsed = parse_packet(packet)
            if parsed.tcp is not None and parsed.tcp.flags == SYN | ACK and parsed.ip.dst == lab.kernel_value:
                syn_acks.append(parsed.tcp)

    lab.astack.add_observer(watch)
    client = await lab.kernel_peer()
    started = lab.now()
    try:
        await client.call("connect", lab.ustack_address, COOKIE_PORT, 20)
    finally:
        lab.astack.remove_observer(watch)
    waited = lab.now() - started
    _, writer, connection = await accepted.next()
    lab.step(f"kernel: a real client connects: its SYN finds the queue full, the SYN-ACK carries a cookie, "
             f"connect() returns after {waited:.3f} s")
    lab.step("ustack: the client's ACK returns cookie + 1; the cookie checks out and the connection is rebuilt, "
             "straight into ESTABLISHED")
    await lab.kernel_ss("the real client served while the queue is still full", ("-tano", "state", "established"))
    syn_ack = syn_acks[0]
    for line in explain_cookie(syn_ack.seq, syn_ack.options.timestamps, lab.endpoint(lab.kernel_address, syn_ack.dst_port),
                               lab.endpoint(lab.ustack_address, COOKIE_PORT)):
        lab.note(line)
    fields = CookieFields.of(syn_ack.seq)
    saved = CookieOptions.decode(syn_ack.options.timestamps[0]) if syn_ack.options.timestamps else None
    client_syns = [a for a in lab.ladder().arrows if a.from_side == RIGHT and a.flags == SYN]
    counters = dict(listener.counters)
    scene.facts.update(syn_queue_peak=peak, cookies_sent=counters.get("syncookies_sent", 0),
                       cookies_validated=counters.get("syncookies_validated", 0),
                       syn_queue_overflows=counters.get("syn_queue_overflows", 0), client_wait=waited,
                       client_syns=len(client_syns), cookie=syn_ack.seq, cookie_mss=fields.mss,
                       cookie_window_scale=saved.window_scale if saved else None, cookie_sack=saved.sack if saved else None,
                       send_shift=connection.send_shift, sack_permitted=connection.sack_permitted,
                       send_mss=connection.send_mss, timestamps_enabled=connection.timestamps_enabled,
                       syn_queue_full_drops=listener.drops["syn_queue_full"])
    lab.note("Counters: " + ", ".join(f"{name} {value}" for name, value in sorted(counters.items()))
             + f"; the connection uses window scale {connection.send_shift}, SACK "
             f"{'on' if connection.sack_permitted else 'off'}, MSS {connection.send_mss} (+12 bytes of timestamps): "
             "the options of the forgotten SYN, recovered.")
    lab.cut()
    writer.transport.abort()
    await client.call("close")
    accepted.server.close()


def explain_cookie(cookie: int, timestamps, client: str, server: str) -> list[str]:
    """The cookie ISN of a SYN-ACK (and its TSval) taken apart, bit by bit, for the lab's text."""
    fields = CookieFields.of(cookie)
    bits = f"{cookie:032b}"
    lines = [
        f"The SYN-ACK's ISN {cookie} is a SYN cookie: {bits[:5]} {bits[5:8]} {bits[8:]} in binary.",
        f"  bits 31..27  {bits[:5]} = {fields.slot:2}: the time slot, (now / {SLOT_SECONDS} s) mod 32; "
        f"accepted in this slot and the next",
        f"  bits 26..24  {bits[5:8]} = {fields.mss_index:2}: MSS table entry {fields.mss} (of {', '.join(map(str, MSS_TABLE))}),"
        " the client's MSS rounded down",
        f"  bits 23..0   0x{fields.mac:06x}: MAC = keyed hash of {client} -> {server}, the client's ISN, "
        "the slot and the index, under ustack's secret",
    ]
    if timestamps is None:
        lines.append("No timestamps on the SYN: window scale and SACK could not be kept.")
        return lines
    saved = CookieOptions.decode(timestamps[0])
    low = f"{timestamps[0] & ((1 << OPTION_BITS) - 1):06b}"
    scale = "none" if saved.window_scale is None else saved.window_scale
    lines.append(f"Its TSval {timestamps[0]} ends in {low}: ECN {low[0]}, SACK {low[1]}, window scale {low[2:]} = "
                 f"{scale} (the client's SYN options, echoed back in the TSecr of its ACK).")
    return lines


async def _flood_kernel(lab: LabSession) -> None:
    scene = lab.scene("The same burst against a kernel listener with SYN cookies; ustack is the real client",
                      port=KERNEL_PORT)
    await lab.sysctl("net.ipv4.tcp_syncookies", 1)
    kernel = await lab.kernel_peer()
    await kernel.call("listen", KERNEL_PORT, KERNEL_BACKLOG)
    lab.step(f"kernel: listen on port {KERNEL_PORT} with a backlog of {KERNEL_BACKLOG}")
    before = lab.not_our_address_drops
    lab.inject(spoofed_syns(lab, lab.kernel_address, KERNEL_PORT))
    lab.step(f"the lab: {FLOOD} SYNs from the same spoofed addresses onto the wire, towards the kernel")
    await lab.wait_for(lambda: lab.not_our_address_drops - before >= FLOOD,
                       "the kernel to answer the burst (its SYN-ACKs go to the spoofed addresses)")
    snapshot = await lab.kernel_ss("after the burst: the kernel's SYN queue holds about its backlog's worth",
                                   ("-tan", "state", "syn-recv"))
    counters = await _cookie_counters(lab)
    lab.step(f"kernel: {len(snapshot.states)} SYN-RECV entries; SYN cookies sent: {counters.get('TcpExtSyncookiesSent', 0)}")
    accepting = kernel.start("accept")
    started = lab.now()
    _, writer, connection = await lab.connect(KERNEL_PORT)
    waited = lab.now() - started
    await accepting
    lab.step(f"ustack: connect() succeeds in {waited:.3f} s: the SYN-ACK carried a cookie, ustack's ACK returned it")
    after = await _cookie_counters(lab)
    lab.step(f"kernel: accept() returns the connection rebuilt from the cookie "
             f"(SYN cookies received: {after.get('TcpExtSyncookiesRecv', 0)})")
    await lab.kernel_ss("the real client served", ("-tano", "state", "established"))
    scene.facts.update(kernel_syn_recv=len(snapshot.states), cookies_sent=after.get("TcpExtSyncookiesSent", 0),
                       cookies_received=after.get("TcpExtSyncookiesRecv", 0), client_wait=waited)
    lab.note("Kernel counters (nstat, in the namespace): " + ", ".join(f"{name} {value}" for name, value in after.items()))
    lab.cut()
    writer.transport.abort()


async def _cookie_counters(lab: LabSession) -> dict[str, int]:
    names = ["TcpExtSyncookiesSent", "TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed", "TcpExtListenOverflows",
             "TcpExtTCPReqQFullDoCookies"]
    result = await lab.run_in_namespace(["nstat", "-asz", *names])
    counters = {}
    for line in result.stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in names:
            counters[words[0]] = int(words[1])
    return counters

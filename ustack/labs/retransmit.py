"""Lab `retransmit`: ustack sends data to the kernel and the lab loses some of it.

Scene 1: one small segment is lost three times in a row. Nothing comes back, so only the
retransmission timer can help: it fires after one RTO, then after 2*RTO, then 4*RTO
(exponential backoff), until the fourth copy gets through.
Scene 2: one segment in the middle of a burst is lost once. The segments after it arrive out of
order, and the kernel answers each with a duplicate ACK (carrying SACK blocks); at the third
duplicate ustack retransmits the missing segment at once, long before its timer (fast
retransmit).
"""

from __future__ import annotations

from ..link.predicates import nth, tcp_with_data
from ..tcp import TcpConfig
from ..trace import LEFT, RIGHT
from ..wire.tcp import ACK
from .common import gaps, gaps_text, sends_of
from .session import LabOptions, LabSession, run_lab

NAME = "retransmit"
SUMMARY = "data loss: RTO with exponential backoff, and fast retransmit after three duplicate ACKs"
PORT = 9000
PORT_FAST = 9001
LOSSES = 3
BURST = 10000
LOST_SEGMENT = 2

EXPLANATION = """\
TCP keeps every segment it sent until it is acknowledged, and retransmits it when there is
evidence it was lost (RFC 9293 3.8.1). There are two kinds of evidence.

Silence: the retransmission timer (RFC 6298). Each RTT measurement updates SRTT and RTTVAR and
RTO = SRTT + 4*RTTVAR, bounded below (RFC 6298 says 1 s; Linux and ustack use 200 ms, ustack's
TcpConfig.min_rto). When the RTO expires, the oldest unacknowledged segment is sent again and the
RTO is doubled (RFC 6298 5.5, exponential backoff), up to max_rto, so a path that lost everything
is not hammered; no RTT is measured from a retransmitted segment (Karn's algorithm, RFC 6298 3).
Scene 1 shows the copies of one segment spaced RTO, 2*RTO, 4*RTO apart. The congestion window
also falls back to one segment (RFC 5681 3.1: loss by timeout).

Duplicate ACKs: fast retransmit (RFC 5681 3.2). A receiver that gets a segment beyond a hole
immediately repeats its ACK for the byte it still misses (RFC 9293 3.10.7.4, RFC 5681 4.2); with
SACK (RFC 2018) the ACK also says which blocks above the hole did arrive. One or two duplicates
may just mean reordering; the third is taken as loss: the missing segment is retransmitted at
once, and the sender enters fast recovery, halving its congestion window instead of dropping to
one segment (RFC 5681 3.2, RFC 6582 NewReno). Scene 2: the hole is filled within a round trip
instead of after an RTO.

What to look for: the lost segments (X), the === retransmissions and the gaps between them under
scene 1; in scene 2, the duplicate ACKs with the same ack number and growing SACK blocks, and the
retransmission right after the third.
"""


def run(options: LabOptions) -> "LabResult":  # noqa: F821
    # The classic loss detection: with RACK-TLP (the default, RFC 8985) a tail loss probe would go
    # out before the first timeout, and the doubling RTOs this lab shows would start one later.
    return run_lab(NAME, SUMMARY, scenario, options, TcpConfig(msl=0.5, loss_detection="dupack"))


async def scenario(lab: LabSession) -> str:
    await _timeouts(lab)
    await _fast_retransmit(lab)
    return EXPLANATION


async def _timeouts(lab: LabSession) -> None:
    scene = lab.scene(f"One segment lost {LOSSES} times: RTO and exponential backoff", port=PORT)
    kernel, _, writer, connection, _ = await lab.ustack_connects(PORT)
    lab.step(f"ustack: connect() to the kernel's port {PORT}; the kernel accepts")
    rto = connection.snapshot().rto
    lab.step(f"ustack: RTO after the handshake's RTT sample: {rto:.3f} s (the round trip is far shorter: "
             "this is the floor, min_rto)")
    rule = lab.drop(tcp_with_data(), LOSSES, "outbound", "dropped by the lab")
    lab.step(f"the lab: drop ustack's next {LOSSES} data segments")
    ss = await lab.prepare_ustack_ss(("-i",))  # started now: the moment below lasts only 2 * min_rto
    writer.write(b"x" * 100)
    lab.step("ustack: send 100 bytes")
    await lab.wait_for(lambda: rule.remaining == 1, "two copies to be lost")
    # Read in-process at that very moment too: the test checks the doubling exactly from this.
    rto_after_first_timeout = connection.snapshot().rto
    await lab.ustack_ss("after the first timeout (two copies lost): rto doubled, retrans 1", prepared=ss)
    await lab.kernel_ss("the kernel has received nothing yet")
    await lab.wait_for(lambda: connection.snapshot().send_queue == 0, "the data to be acknowledged", timeout=30)
    lab.step(f"kernel: the copy number {LOSSES + 1} arrives and is acknowledged")
    copies = sends_of(lab.ladder(), LEFT, connection.iss + 1)
    gap_values = gaps(copies)
    scene.facts.update(initial_rto=rto, rto_after_first_timeout=rto_after_first_timeout, copies=len(copies), gaps=gap_values,
                       retransmissions=connection.snapshot().retransmissions)
    lab.note(f"Copies of the segment: {len(copies)}, spaced {gaps_text(gap_values)} (RTO {rto:.3f} s, doubled each time).")
    lab.cut()
    writer.transport.abort()
    await kernel.call("close")


async def _fast_retransmit(lab: LabSession) -> None:
    scene = lab.scene("One segment of a burst lost: three duplicate ACKs, fast retransmit", port=PORT_FAST)
    kernel, _, writer, connection, _ = await lab.ustack_connects(PORT_FAST)
    lab.step(f"ustack: connect() to the kernel's port {PORT_FAST}; the kernel accepts")
    lab.drop(nth(tcp_with_data(), LOST_SEGMENT), 1, "outbound", "dropped by the lab")
    lab.step(f"the lab: drop ustack's data segment number {LOST_SEGMENT}, once")
    started = lab.now()
    writer.write(b"y" * BURST)
    lab.step(f"ustack: send {BURST} bytes at once (several full segments)")
    await lab.wait_for(lambda: connection.snapshot().send_queue == 0, "the burst to be acknowledged")
    elapsed = lab.now() - started
    received = (await kernel.call("recv_exactly", BURST, 5))["received"]
    lab.step(f"kernel: all {received} bytes arrived in {elapsed:.3f} s, in order, the hole filled")
    await lab.kernel_ss("after the recovery (the receiver's view: nothing left to say)", ("-tanoi", "state", "established"))

    ladder = lab.ladder()
    data = [a for a in ladder.arrows if a.from_side == LEFT and a.length]
    lost = next((a for a in data if a.kind == "lost"), None)
    duplicates = []
    retransmitted_at = None
    if lost is not None:
        for arrow in ladder.arrows:
            if arrow.time < lost.time:
                continue
            if arrow.from_side == RIGHT and arrow.flags & ACK and arrow.ack == lost.seq and not arrow.length:
                duplicates.append(arrow)
            if arrow.from_side == LEFT and arrow.seq == lost.seq and arrow is not lost and arrow.length:
                retransmitted_at = arrow
                break
    acks_for_hole = len(duplicates)
    scene.facts.update(lost_seq=lost.seq if lost else None, duplicate_acks=max(acks_for_hole - 1, 0),
                       acks_for_hole=acks_for_hole, fast_retransmit_after=(retransmitted_at.time - lost.time)
                       if (lost and retransmitted_at) else None, rto=connection.snapshot().rto)
    if lost and retransmitted_at:
        lab.note(f"The lost segment (seq {lost.seq}) was sent again {(retransmitted_at.time - lost.time) * 1000:.3f} ms after "
                 f"the first copy, after {max(acks_for_hole - 1, 0)} duplicate ACKs; the RTO was "
                 f"{connection.snapshot().rto:.3f} s.")
    lab.cut()
    writer.transport.abort()
    await kernel.call("close")

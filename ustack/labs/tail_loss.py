"""Lab `tail-loss`: ustack sends a burst to the kernel and the lab loses the last segments of it.

Scene 1 (loss_detection="dupack", the classic detection): nothing is sent after the lost tail, so
no duplicate ACK can come back; only the retransmission timer repairs it, one RTO later.
Scene 2 (RACK-TLP, RFC 8985, ustack's default): about two round trips after the burst a tail loss
probe re-sends the last segment; the kernel's SACK for it tells RACK the segment before it was
lost, and that is repaired at once, long before the RTO would have fired.

Both scenes lose the same segments of the same burst; the facts are the time from the first copy
of the lost tail to its first retransmission, and to the moment everything is acknowledged.
"""

from __future__ import annotations

from ..link import Faults
from ..link.predicates import tcp_with_data
from ..tcp import TcpConfig
from ..trace import LEFT
from ..trace.model import LOST
from .session import LabOptions, LabSession, run_lab

NAME = "tail-loss"
SUMMARY = "a lost tail: repaired by the RTO (dupack detection) or by a tail loss probe (RACK-TLP)"
PORT_DUPACK = 9100
PORT_RACK = 9101
BURST_SEGMENTS = 5
LOST_TAIL = 2  # the last two segments of the burst
DELAY = 0.010  # seconds added to every packet from the kernel to ustack, after the handshake
WARM_UP = 6  # small writes, one round trip each, before the burst

EXPLANATION = """\
A loss at the tail of a flight is the hard case for loss detection by duplicate ACKs (RFC 5681
3.2): the receiver sends a duplicate ACK only when a segment arrives beyond a hole, and after a
lost tail nothing arrives at all. The sender hears the ACK for the part that got through, then
silence.

Scene 1 (TcpConfig(loss_detection="dupack")): the silence lasts until the retransmission timer
expires (RFC 6298 5.4-5.6): the oldest unacknowledged segment is sent again one RTO after the
timer was last restarted, the RTO is doubled and the congestion window falls to one segment
(RFC 5681 3.1). With Linux's 200 ms floor on the RTO (ustack's TcpConfig.min_rto) that is about
200 ms on a path whose round trip is about 10 ms (the lab delays the kernel's packets).

Scene 2 (RACK-TLP, RFC 8985, the default): when new data goes out the sender also arms a probe
timer, PTO = 2*SRTT (plus the peer's delayed-ACK time when one segment is in flight), never later
than the RTO (RFC 8985 7.2). When it expires with data still unacknowledged, the sender sends one
probe: new data if there is some, else the last segment again (RFC 8985 7.3). The kernel answers
the probe with an ACK carrying a SACK block for it, so the sender now knows that the segment just
before was lost: RACK (RFC 8985 6) marks it lost and it is retransmitted at once. The tail is
repaired about two round trips after it was sent, without a timeout, and the congestion window is
reduced once as for a fast recovery (RFC 8985 7.4), not collapsed to one segment.

What to look for: in both ladders the two segments marked X (lost). Under scene 1 the ===
retransmission comes after a gap of one RTO; under scene 2 the probe (the last segment again)
comes about two round trips after the burst (some 20-30 ms), followed by the kernel's SACK and the retransmission of the hole.
"""


def run(options: LabOptions) -> "LabResult":  # noqa: F821
    # The stack's config is RACK-TLP (the default); scene 1 connects with loss_detection="dupack".
    return run_lab(NAME, SUMMARY, scenario, options, TcpConfig(msl=0.5))


async def scenario(lab: LabSession) -> str:
    await _tail_loss(lab, "dupack", PORT_DUPACK,
                     f"The last {LOST_TAIL} segments of a burst lost, loss_detection=\"dupack\": the RTO repairs them")
    await _tail_loss(lab, "rack", PORT_RACK,
                     f"The same loss with RACK-TLP: a tail loss probe repairs it about two round trips later")
    return EXPLANATION


def _drop_data_segments(numbers: set[int]):
    """A predicate: the data segments with these numbers (1-based), counted from now on."""
    seen = 0
    is_data = tcp_with_data()

    def matches(packet: bytes) -> bool:
        nonlocal seen
        if not is_data(packet):
            return False
        seen += 1
        return seen in numbers

    return matches


async def _tail_loss(lab: LabSession, loss_detection: str, port: int, title: str) -> None:
    scene = lab.scene(title, port=port)
    kernel = await lab.kernel_peer()
    await kernel.call("listen", port)
    accepting = kernel.start("accept")
    config = TcpConfig(msl=0.5, loss_detection=loss_detection)
    _, writer, connection = await lab.connect(port, config=config)
    await accepting
    lab.step(f"ustack: connect() to the kernel's port {port} with TcpConfig(loss_detection={loss_detection!r}); "
             "the kernel accepts")
    # After the handshake, the lab's FaultInjector delays what the kernel sends by DELAY: a round
    # trip of about 10 ms, long enough to see the probe come "two round trips" after the burst.
    # The handshake itself is not delayed, so the smallest RTT seen (RACK.min_RTT) stays below the
    # time the kernel takes to answer the probe: an answer sooner than min_RTT would look like the
    # answer to the original copy, which RACK does not count (RFC 8985 6.2 step 2).
    lab.fault.set_faults("inbound", Faults(delay=DELAY))
    lab.step(f"the lab: from now on delay every packet from the kernel to ustack by {DELAY * 1000:.0f} ms")
    for _ in range(WARM_UP):
        writer.write(b"w" * 100)
        await lab.wait_for(lambda: connection.snapshot().send_queue == 0, "a warm-up write to be acknowledged")
    await kernel.call("recv_exactly", 100 * WARM_UP, 5)
    lab.step(f"ustack: {WARM_UP} writes of 100 bytes, each acknowledged before the next: SRTT moves towards the "
             "new round trip")
    burst = BURST_SEGMENTS * connection.send_mss
    first_lost = BURST_SEGMENTS - LOST_TAIL + 1
    lab.drop(_drop_data_segments(set(range(first_lost, BURST_SEGMENTS + 1))), LOST_TAIL, "outbound", "dropped by the lab")
    lab.step(f"the lab: drop ustack's data segments {first_lost} to {BURST_SEGMENTS} (the tail of the next burst), once")
    rto = connection.snapshot().rto
    srtt = connection.snapshot().srtt
    writer.write(b"t" * burst)
    lab.step(f"ustack: send {burst} bytes at once ({BURST_SEGMENTS} segments of {connection.send_mss} bytes); "
             f"SRTT {srtt * 1000:.3f} ms, RTO {rto:.3f} s")
    await lab.wait_for(lambda: connection.snapshot().send_queue == 0, "the burst to be acknowledged", timeout=10)
    repaired = lab.now()
    received = (await kernel.call("recv_exactly", burst, 5))["received"]
    lab.step(f"kernel: all {received} bytes arrived, in order, the tail repaired")
    await lab.kernel_ss("after the repair", ("-tanoi", "state", "established"))

    ladder = lab.ladder()
    data = [a for a in ladder.arrows if a.from_side == LEFT and a.length]
    lost = [a for a in data if a.kind == LOST]
    lost_seqs = {a.seq for a in lost}
    later = [a for a in data if a.kind != LOST and lost and a.time > lost[0].time]
    first_retransmission = next((a for a in later if a.seq in lost_seqs or a.seq in {d.seq for d in data[:data.index(a)]}), None)
    probes = connection.rack.probes_sent if connection.rack is not None else 0
    snapshot = connection.snapshot()
    facts = dict(loss_detection=loss_detection, burst=burst, lost_seqs=sorted(lost_seqs), rto=rto, srtt=srtt,
                 probes_sent=probes, retransmissions=snapshot.retransmissions, rto_after=snapshot.rto,
                 first_retransmission_seq=first_retransmission.seq if first_retransmission else None,
                 first_retransmission_after=(first_retransmission.time - lost[0].time)
                 if (lost and first_retransmission) else None,
                 repaired_after=(repaired - lost[0].time) if lost else None, received=received)
    scene.facts.update(facts)
    if lost and first_retransmission:
        how = "a tail loss probe" if probes else "the retransmission timer"
        lab.note(f"Lost: {len(lost)} segments (seq {', '.join(str(a.seq) for a in lost)}). The first retransmission "
                 f"(seq {first_retransmission.seq}, sent by {how}) came "
                 f"{facts['first_retransmission_after'] * 1000:.1f} ms after the first lost copy; everything was "
                 f"acknowledged {facts['repaired_after'] * 1000:.1f} ms after it. The RTO was {rto * 1000:.0f} ms, "
                 f"SRTT {srtt * 1000:.3f} ms; probes sent: {probes}; RTO afterwards {snapshot.rto * 1000:.0f} ms.")
    lab.cut()
    lab.fault.set_faults("inbound", Faults())
    writer.transport.abort()
    await kernel.call("close")

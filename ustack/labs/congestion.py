"""Lab `congestion`: slow start, one loss, recovery, and the window growing back; Reno beside CUBIC.

Each scene sends the same TRANSFER bytes from ustack to the kernel over a path with a round trip
of about 10 ms (the lab delays the kernel's packets after the handshake) and loses the same data
segment once. After every round of the stack the lab reads the connection's snapshot and keeps
each new (time, cwnd, ssthresh): the table under each ladder is the congestion window over time.
"""

from __future__ import annotations

from ..link import Faults
from ..link.predicates import nth, tcp_with_data
from ..tcp import TcpConfig
from .session import LabOptions, LabSession, run_lab

NAME = "congestion"
SUMMARY = "slow start, a loss, recovery and growth back: Reno beside CUBIC (cwnd over time)"
PORTS = {"reno": 9200, "cubic": 9201}
TRANSFER = 1_000_000
LOST_SEGMENT = 60  # the data segment the lab loses, once: in slow start's fourth round trip
DELAY = 0.010  # added to every packet from the kernel to ustack, after the handshake
TABLE_ROWS = 24

EXPLANATION = """\
Slow start (RFC 5681 3.1): the connection starts with an initial window of 10 segments (RFC 6928)
and cwnd grows by the amount acknowledged, doubling every round trip, until a loss. The lab drops
one segment; the kernel's duplicate ACKs with SACK blocks tell ustack (RFC 6675, RACK RFC 8985 6),
which retransmits it and reduces its window once for this loss: ssthresh = cwnd * beta.

Reno (RFC 5681 3.2, equation 4): ssthresh = max(FlightSize / 2, 2 * SMSS), half of what was in
flight (which can be less than cwnd); afterwards, in congestion avoidance, cwnd grows by one
segment per round trip: a straight line.

CUBIC (RFC 9438, Linux's default and ustack's): ssthresh = 0.7 * FlightSize, the window falls
by only 30 % of what was in flight (RFC 9438 4.6); afterwards it follows W_cubic(t) = C*(t-K)^3 + W_max (4.2), a curve that is
concave up to the window where the loss happened and convex beyond it, and never grows slower
than Reno would in the same time (the Reno-friendly region, 4.3). On a short round trip like
this one the Reno-friendly estimate is what CUBIC follows at first.

Proportional Rate Reduction (RFC 6937) spaces the sending during the recovery itself, so cwnd
comes down to ssthresh over a round trip rather than at once.

What to look for: in each table the rows doubling (slow start), the drop at the loss, and the
slope after it; the facts under each scene: cwnd when the loss was found, ssthresh after it, and
their ratio (at most 0.5 for Reno, at most 0.7 for CUBIC: both take a share of what was in
flight, which can be less than cwnd).
"""


def run(options: LabOptions) -> "LabResult":  # noqa: F821
    return run_lab(NAME, SUMMARY, scenario, options, TcpConfig(msl=0.5))


async def scenario(lab: LabSession) -> str:
    for algorithm in PORTS:
        await _transfer_with_one_loss(lab, algorithm)
    return EXPLANATION


async def _transfer_with_one_loss(lab: LabSession, algorithm: str) -> None:
    port = PORTS[algorithm]
    scene = lab.scene(f"{algorithm}: slow start, segment {LOST_SEGMENT} lost, recovery, growth", port=port)
    kernel = await lab.kernel_peer()
    await kernel.call("listen", port)
    accepting = kernel.start("accept")
    _, writer, connection = await lab.connect(port, config=TcpConfig(msl=0.5, congestion_control=algorithm))
    await accepting
    lab.step(f"ustack: connect() to the kernel's port {port} with TcpConfig(congestion_control={algorithm!r})")
    # Not on the handshake: RACK's min_RTT stays below the round trips of the transfer (see tail_loss.py).
    lab.fault.set_faults("inbound", Faults(delay=DELAY))
    lab.step(f"the lab: from now on delay every packet from the kernel to ustack by {DELAY * 1000:.0f} ms")
    lab.drop(nth(tcp_with_data(), LOST_SEGMENT), 1, "outbound", "dropped by the lab")
    lab.step(f"the lab: drop ustack's data segment number {LOST_SEGMENT}, once")
    reading = kernel.start("recv_exactly", TRANSFER, 20)
    started = lab.now()
    samples: list[tuple[float, int, int]] = []

    def sample_until_done() -> bool:
        # Called after every round of the stack: keep each change of (cwnd, ssthresh).
        snapshot = connection.snapshot()
        if not samples or samples[-1][1:] != (snapshot.cwnd, snapshot.ssthresh):
            samples.append((lab.now() - started, snapshot.cwnd, snapshot.ssthresh))
        return snapshot.send_queue == 0

    writer.write(b"c" * TRANSFER)
    lab.step(f"ustack: send {TRANSFER} bytes; the kernel reads them as they come")
    await lab.wait_for(sample_until_done, "the transfer to be acknowledged", timeout=30)
    received = (await reading)["received"]
    elapsed = lab.now() - started
    lab.step(f"kernel: all {received} bytes arrived in {elapsed:.3f} s")
    await lab.ustack_ss("after the transfer: cwnd and ssthresh as ss -i shows them", ("-i",))
    lab.cut()
    lab.fault.set_faults("inbound", Faults())

    mss = connection.send_mss
    reduced = next((index for index, (_, _, ssthresh) in enumerate(samples) if ssthresh < 1 << 30), None)
    cwnd_at_loss = max(cwnd for _, cwnd, _ in samples[:reduced]) if reduced else None
    ssthresh_after = samples[reduced][2] if reduced is not None else None
    scene.facts.update(algorithm=algorithm, samples=samples, mss=mss, received=received, elapsed=elapsed,
                       cwnd_at_loss=cwnd_at_loss, ssthresh_after=ssthresh_after,
                       beta=(ssthresh_after / cwnd_at_loss) if cwnd_at_loss and ssthresh_after else None,
                       cwnd_at_end=samples[-1][1] if samples else None,
                       retransmissions=connection.snapshot().retransmissions)
    lab.note(_table(samples, mss))
    if cwnd_at_loss and ssthresh_after:
        lab.note(f"cwnd when the loss was found: {cwnd_at_loss // mss} segments; ssthresh after it: "
                 f"{ssthresh_after // mss} segments (ratio {ssthresh_after / cwnd_at_loss:.2f}); cwnd at the end: "
                 f"{samples[-1][1] // mss} segments.")
    writer.transport.abort()
    await kernel.call("close")


def _table(samples: list[tuple[float, int, int]], mss: int) -> str:
    """At most TABLE_ROWS samples, evenly chosen (the first and last always), in segments."""
    if len(samples) > TABLE_ROWS:
        step = (len(samples) - 1) / (TABLE_ROWS - 1)
        samples = [samples[round(index * step)] for index in range(TABLE_ROWS)]
    lines = ["cwnd over time (segments of %d bytes):" % mss, "   time ms   cwnd  ssthresh"]
    for time, cwnd, ssthresh in samples:
        threshold = "-" if ssthresh >= 1 << 30 else str(ssthresh // mss)
        lines.append(f"  {time * 1000:8.1f} {cwnd // mss:6d} {threshold:>9}")
    return "\n".join(lines)

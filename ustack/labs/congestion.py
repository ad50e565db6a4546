"""Lab `congestion`: slow start, one loss, recovery, and the window growing back; Reno beside CUBIC.

Each scene sends from ustack to the kernel for RUN_SECONDS over a path with a round trip of about
DELAY (the lab delays the kernel's packets, from before the handshake so that HyStart++ sees one
round-trip time throughout) and loses the same data segment once, in slow start. After every
round of the stack the lab reads the connection's snapshot and keeps each new (time, cwnd,
ssthresh). The ladder shows slow start, the loss and its repair; the table and the drawn plot
(cwnd over time, Reno beside CUBIC, saved as a PNG or SVG file) show what came after.

The round trip is long (0.2 s) on purpose: CUBIC's curve is a function of time, K seconds to
climb back to W_max whatever the round trip, while the Reno-friendly estimate it must never fall
below (RFC 9438 4.3) grows per round trip. On a short round trip that estimate would win and
CUBIC would draw Reno's straight line.
"""

from __future__ import annotations

import asyncio
import os
import tempfile

from ..link import Faults
from ..link.predicates import nth, tcp_with_data
from ..tcp import TcpConfig
from ..trace.plot_render import WindowSeries, render_windows
from .session import LabError, LabOptions, LabSession, run_lab

NAME = "congestion"
SUMMARY = "slow start, a loss, recovery and growth back: Reno beside CUBIC (cwnd over time, drawn)"
PORTS = {"reno": 9200, "cubic": 9201}
LOST_SEGMENT = 45  # the data segment the lab loses, once: in slow start's third round trip (cwnd 40 -> 80)
DELAY = 0.200  # added to every packet from the kernel to ustack
RUN_SECONDS = 7.0  # how long each scene sends: past CUBIC's K (about 3.5 s here) and beyond W_max
# RFC 6298's RTO on a path whose delay never varies is the RTT plus a few milliseconds (RTTVAR
# decays towards 0; the 200 ms floor is below this path's RTT), so an ACK a little late from the
# lab's own scheduling would fire the retransmission timer. Linux keeps at least 200 ms of margin
# above SRTT (its RTTVAR never falls below TCP_RTO_MIN); the lab gives ustack the same margin
# with BSD's rexmit_slop setting, so the picture shows the one loss and nothing else.
RTO_MARGIN = 0.2
BLOCK = 65536
KERNEL_RECEIVE_BUFFER = 1 << 20  # SO_RCVBUF: the kernel's window never limits this flight
TABLE_ROWS = 24

EXPLANATION = """\
Slow start (RFC 5681 3.1): the connection starts with an initial window of 10 segments (RFC 6928)
and cwnd grows by the amount acknowledged (at most 2 segments per ACK, RFC 3465), doubling every
round trip, until a loss. The lab drops one segment; the kernel's SACK blocks tell ustack (RACK,
RFC 8985 6), which retransmits it and reduces its window once for this loss.

Reno (RFC 5681 3.2, equation 4): ssthresh = max(FlightSize / 2, 2 * SMSS), half of what was in
flight; afterwards, in congestion avoidance, cwnd grows by one segment per round trip: a straight
line, about one segment every 0.2 s here.

CUBIC (RFC 9438, Linux's default and ustack's): ssthresh = 0.7 * FlightSize (4.6), and W_max,
the window where the loss happened, is remembered. Afterwards cwnd follows
W_cubic(t) = C*(t-K)^3 + W_max (4.2) with C = 0.4 and K = cbrt(W_max * (1 - 0.7) / C) seconds:
fast at first, flattening as it nears W_max (concave: carefully, where the last loss was), flat
around t = K, then faster again beyond it (convex: the path has more room). The dotted line in
the plot is W_max.

Proportional Rate Reduction (RFC 6937) spaces the sending during the recovery itself, so the
flight comes down to ssthresh over a round trip rather than at once.

What to look for: in the plot, the same slow start on both sides, then Reno's half-size window
and straight line, against CUBIC's 0.7 and its S-shaped curve through W_max. In each table the
rows doubling (slow start), the drop at the loss, and the growth after it.
"""


def run(options: LabOptions) -> "LabResult":  # noqa: F821
    return run_lab(NAME, SUMMARY, scenario, options, TcpConfig(msl=0.5))


def plot_path(options: LabOptions) -> str:
    """Where the drawing goes: --plot FILE, else a file in the temporary directory."""
    return options.plot or os.path.join(tempfile.gettempdir(), f"ustack-lab-congestion-{os.getpid()}.png")


async def scenario(lab: LabSession) -> str:
    series = []
    for algorithm in PORTS:
        series.append(await _transfer_with_one_loss(lab, algorithm))
    path = plot_path(lab.options)
    try:
        render_windows(series, path, f"cwnd over time, one segment lost in slow start (RTT about {DELAY * 1000:.0f} ms)")
    except OSError as error:
        raise LabError(f"cannot write {path}: {error.strerror or error}") from None
    for scene in lab.scenes:
        scene.facts["plot"] = path
    lab.scenes[-1].notes.append(f"The plot of cwnd over time, Reno beside CUBIC, is saved in {path}")
    return EXPLANATION


async def _transfer_with_one_loss(lab: LabSession, algorithm: str) -> WindowSeries:
    port = PORTS[algorithm]
    scene = lab.scene(f"{algorithm}: slow start, segment {LOST_SEGMENT} lost, recovery, growth", port=port)
    lab.fault.set_faults("inbound", Faults(delay=DELAY))
    lab.step(f"the lab: delay every packet from the kernel to ustack by {DELAY * 1000:.0f} ms (the handshake too)")
    kernel = await lab.kernel_peer()
    await kernel.call("rcvbuf", KERNEL_RECEIVE_BUFFER)
    await kernel.call("listen", port)
    accepting = kernel.start("accept")
    config = TcpConfig(msl=0.5, congestion_control=algorithm, rto_slop=RTO_MARGIN)
    _, writer, connection = await lab.connect(port, config=config)
    await accepting
    lab.step(f"ustack: connect() to the kernel's port {port} with TcpConfig(congestion_control={algorithm!r}, "
             f"rto_slop={RTO_MARGIN})")
    lab.drop(nth(tcp_with_data(), LOST_SEGMENT), 1, "outbound", "dropped by the lab")
    lab.step(f"the lab: drop ustack's data segment number {LOST_SEGMENT}, once")
    reading = kernel.start("recv_exactly", 1 << 40, RUN_SECONDS + 30)
    started = lab.now()
    samples: list[tuple[float, int, int]] = []
    recovered = False

    def sample() -> bool:
        # Called after every round of the stack: keep each change of (cwnd, ssthresh).
        nonlocal recovered
        snapshot = connection.snapshot()
        if not samples or samples[-1][1:] != (snapshot.cwnd, snapshot.ssthresh):
            samples.append((lab.now() - started, snapshot.cwnd, snapshot.ssthresh))
        if not recovered and snapshot.ssthresh < 1 << 30 and not connection.congestion.in_recovery:
            recovered = True
            lab.cut()  # the ladder ends with the repair; the samples go on
        return False

    sampling = asyncio.create_task(lab.wait_for(sample, "the scene to end", timeout=RUN_SECONDS + 60))
    sent = 0
    lab.step(f"ustack: send for {RUN_SECONDS:g} s, then close; the kernel reads everything")
    while lab.now() - started < RUN_SECONDS:
        writer.write(bytes(BLOCK))
        sent += BLOCK
        await writer.drain()
    writer.close()
    await lab.wait_for(lambda: connection.snapshot().send_queue == 0, "the data to be acknowledged", timeout=30)
    sampling.cancel()  # the stack may be idle now: no round would check the predicate again
    sample()
    await lab.ustack_ss("after the transfer: cwnd and ssthresh (in segments) as ss -i shows them", ("-i",))
    received = (await reading)["received"]
    elapsed = lab.now() - started
    if not recovered:
        lab.cut()
    scene.steps.append(f"kernel: {received} bytes arrived in {elapsed:.3f} s")

    mss = connection.send_mss
    reduced = next((index for index, (_, _, ssthresh) in enumerate(samples) if ssthresh < 1 << 30), None)
    cwnd_at_loss = max(cwnd for _, cwnd, _ in samples[:reduced]) if reduced else None
    ssthresh_after = samples[reduced][2] if reduced is not None else None
    congestion = connection.congestion
    w_max = getattr(congestion, "w_max", 0.0) * mss  # CUBIC's (segments there), in bytes
    scene.facts.update(algorithm=algorithm, samples=samples, mss=mss, received=received, sent=sent,
                       elapsed=elapsed, cwnd_at_loss=cwnd_at_loss, ssthresh_after=ssthresh_after,
                       beta=(ssthresh_after / cwnd_at_loss) if cwnd_at_loss and ssthresh_after else None,
                       cwnd_at_end=samples[-1][1] if samples else None, w_max=w_max or None,
                       k=getattr(congestion, "k", None), retransmissions=connection.snapshot().retransmissions,
                       timeouts=connection.retransmission_timeouts)
    lab.note(_table(samples, mss))
    if cwnd_at_loss and ssthresh_after:
        lab.note(f"cwnd when the loss was found: {cwnd_at_loss // mss} segments; ssthresh after it: "
                 f"{ssthresh_after // mss} segments (ratio {ssthresh_after / cwnd_at_loss:.2f}); cwnd at the end: "
                 f"{samples[-1][1] // mss} segments.")
    if w_max:
        lab.note(f"CUBIC: W_max = {w_max / mss:.1f} segments, K = {congestion.k:.2f} s (RFC 9438 4.2).")
    writer.transport.abort()
    await kernel.call("close")
    marks = (("W_max", w_max),) if w_max else ()
    return WindowSeries(algorithm, samples, mss, marks)


def _table(samples: list[tuple[float, int, int]], mss: int) -> str:
    """At most TABLE_ROWS samples, evenly spread in time (the first and last always), in segments."""
    if len(samples) > TABLE_ROWS:
        end = samples[-1][0]
        chosen, index = [], 0
        for row in range(TABLE_ROWS):
            moment = end * row / (TABLE_ROWS - 1)
            while index < len(samples) - 1 and samples[index + 1][0] <= moment:
                index += 1
            chosen.append(samples[index])
        samples = chosen
    lines = ["cwnd over time (segments of %d bytes):" % mss, "   time ms   cwnd  ssthresh"]
    for time, cwnd, ssthresh in samples:
        threshold = "-" if ssthresh >= 1 << 30 else str(ssthresh // mss)
        lines.append(f"  {time * 1000:8.1f} {cwnd // mss:6d} {threshold:>9}")
    return "\n".join(lines)

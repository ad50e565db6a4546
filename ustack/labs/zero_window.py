"""Lab `zero-window`: a reader that does not read closes the window; the sender probes it; reading
reopens it.

Scene 1: the kernel is the slow reader (a small SO_RCVBUF, and it does not call recv()). ustack
sends until the kernel advertises a zero window, then probes it on its persist timer, with the
interval doubling. When the kernel reads, it announces the reopened window and the rest flows.
Scene 2: ustack is the slow reader (transport.pause_reading(), a small receive buffer): the
kernel probes, and its ss shows the persist timer. resume_reading() reopens the window.
"""

from __future__ import annotations

import asyncio

from ..tcp import TcpConfig
from ..trace import LEFT, RIGHT
from ..wire.tcp import FIN, RST, SYN
from .session import LabOptions, LabSession, run_lab

NAME = "zero-window"
SUMMARY = "a slow reader closes the window; persist (zero-window) probes; the window reopens"
PORT = 9000
PORT_USTACK_READS = 8000
DATA = 16 * 1024
KERNEL_RECEIVE_BUFFER = 4096  # SO_RCVBUF; Linux doubles it and advertises about half of that
USTACK_RECEIVE_BUFFER = 8192
PROBES_TO_WATCH = 3

EXPLANATION = """\
Flow control (RFC 9293 3.8.6): every segment advertises the receive window, the space left in
the receiver's buffer (RCV.WND, scaled by the window scale option, RFC 7323 2). The sender never
sends beyond it. A receiving application that does not read lets the buffer fill and the window
shrinks to zero: the sender must stop. Data is not lost, it waits.

The danger is deadlock: the window update that reopens the window is an ACK carrying no data,
and such ACKs are not retransmitted if lost. So the sender of data probes a zero window
(RFC 9293 3.8.6.1, RFC 1122 4.2.2.17): on its persist timer it sends a segment with one new byte
(or, like Linux, an old sequence number: a "window probe"), which forces the receiver to answer
with an ACK giving its current window. The interval backs off exponentially like the RTO
(ustack: RTO doubled, within TcpConfig persist_min..persist_max; Linux: the "persist" timer in
`ss -o`), and probing goes on as long as the receiver keeps answering, however long: a zero
window is not a failure.

When the application reads, the window opens again; to avoid the silly window syndrome
(RFC 9293 3.8.6.2.2) a receiver announces it only when a useful amount is free (one MSS, or half
the buffer), and the sender waits for a useful window too (3.8.6.2.1).

What to look for: "win 0" in the receiver's ACKs, the probes (notes say "zero-window probe")
answered with win 0, the gaps between probes doubling, the window update when the reader reads,
and in the kernel's ss output the full Recv-Q (scene 1) or the persist timer (scene 2).
"""


def run(options: LabOptions) -> "LabResult":  # noqa: F821
    return run_lab(NAME, SUMMARY, scenario, options, TcpConfig(msl=0.5))


async def scenario(lab: LabSession) -> str:
    await _kernel_reads_slowly(lab)
    await _ustack_reads_slowly(lab)
    return EXPLANATION


def _probe_times(lab: LabSession, sender: int) -> list[float]:
    """When `sender` probed: a segment of at most one byte sent while the other side's last
    advertised window was zero. (ustack probes with one new byte; Linux with no data and an
    old sequence number, which the ladder may call a keep-alive: the same segment shape.)"""
    times = []
    window_shut = False
    for arrow in lab.ladder().arrows:
        if arrow.from_side != sender:
            window_shut = arrow.window == 0
        elif window_shut and arrow.length <= 1 and not arrow.flags & (SYN | FIN | RST):
            times.append(arrow.time)
    return times


async def _kernel_reads_slowly(lab: LabSession) -> None:
    scene = lab.scene("The kernel does not read: ustack probes its zero window", port=PORT)
    kernel = await lab.kernel_peer()
    await kernel.call("rcvbuf", KERNEL_RECEIVE_BUFFER)
    await kernel.call("listen", PORT)
    accepting = kernel.start("accept")
    _, writer, connection = await lab.connect(PORT)
    await accepting
    lab.step(f"kernel: SO_RCVBUF {KERNEL_RECEIVE_BUFFER}, listen, accept; ustack connects. The kernel does not read.")
    writer.write(b"z" * DATA)
    lab.step(f"ustack: send {DATA} bytes")
    await lab.wait_for(lambda: "persist" in connection.snapshot().timers, "the kernel's window to close")
    lab.step("kernel: its buffer is full and it advertises win 0; ustack stops and arms its persist timer")
    await lab.wait_for(lambda: len(_probe_times(lab, LEFT)) >= PROBES_TO_WATCH, "ustack's window probes")
    await lab.kernel_ss("the window is shut: the kernel's Recv-Q is full", ("-tanoi", "state", "established"))
    await lab.ustack_ss("ustack: data waiting in Send-Q, the persist timer armed", ("-i",))
    lab.step(f"ustack: {PROBES_TO_WATCH} probes so far, each answered with win 0")
    reply = await kernel.call("recv_exactly", DATA, 20)
    lab.step(f"kernel: reads at last ({reply['received']} bytes in all): the window reopens, the rest flows")
    await lab.wait_for(lambda: connection.snapshot().send_queue == 0, "all the data to be acknowledged")
    probes = _probe_times(lab, LEFT)
    intervals = [later - earlier for earlier, later in zip(probes, probes[1:])]
    scene.facts.update(probes=len(probes), probe_intervals=intervals, kernel_received=reply["received"],
                       zero_windows=len([a for a in lab.ladder().arrows if a.from_side == RIGHT and a.window == 0]))
    lab.note("ustack's probes, spaced " + ", ".join(f"{value:.3f} s" for value in intervals) + " (doubling).")
    lab.cut()
    writer.transport.abort()
    await kernel.call("close")


async def _ustack_reads_slowly(lab: LabSession) -> None:
    scene = lab.scene("ustack does not read: the kernel probes ustack's zero window", port=PORT_USTACK_READS)
    config = TcpConfig(msl=0.5, receive_buffer_size=USTACK_RECEIVE_BUFFER)
    kernel, reader, writer, connection, _ = await lab.kernel_connects(PORT_USTACK_READS, config=config)
    writer.transport.pause_reading()
    lab.step(f"ustack: accepts with a {USTACK_RECEIVE_BUFFER}-byte receive buffer and pause_reading(): it reads nothing")
    sending = kernel.start("send", DATA)
    lab.step(f"kernel: send {DATA} bytes")
    await lab.wait_for(lambda: connection.snapshot().rcv_wnd == 0, "ustack's window to close")
    lab.step("ustack: its buffer is full; it advertises win 0")
    await lab.wait_for(lambda: len(_probe_times(lab, RIGHT)) >= PROBES_TO_WATCH, "the kernel's window probes")
    await lab.kernel_ss("the kernel probing ustack's zero window: timer:(persist,...)", ("-tano", "state", "established"))
    await lab.ustack_ss("ustack: Recv-Q full, window 0", ("-i",))
    writer.transport.resume_reading()
    lab.step("ustack: resume_reading(): the application reads, the window reopens")
    received = 0
    while received < DATA:
        chunk = await asyncio.wait_for(reader.read(DATA), 20)
        if not chunk:
            break
        received += len(chunk)
    await sending
    lab.step(f"ustack: read all {received} bytes")
    probes = _probe_times(lab, RIGHT)
    intervals = [later - earlier for earlier, later in zip(probes, probes[1:])]
    scene.facts.update(probes=len(probes), probe_intervals=intervals, ustack_received=received,
                       zero_windows=len([a for a in lab.ladder().arrows if a.from_side == LEFT and a.window == 0]))
    lab.note("The kernel's probes, spaced " + ", ".join(f"{value:.3f} s" for value in intervals) + ".")
    lab.cut()
    writer.transport.abort()
    await kernel.call("close")

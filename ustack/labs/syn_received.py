"""Lab `syn-received`: lose the last ACK of the handshake and the server is left in SYN-RECEIVED,
retransmitting its SYN-ACK with a doubling timeout until an ACK gets through.

Scene 1: ustack is the client, the kernel the server. ustack's final ACK (and its answer to the
first retransmitted SYN-ACK) are dropped: `ss` in the namespace shows the kernel's SYN-RECV and
its retransmission timer, while ustack already believes the connection is ESTABLISHED.
Scene 2: the roles swap. The kernel's final ACK is dropped on its way in: `ustack ss` shows
ustack's SYN-RECV while the kernel is already ESTABLISHED.
"""

from __future__ import annotations

from ..link.predicates import tcp_flags_equal
from ..tcp import State, TcpConfig
from ..trace import LEFT, RIGHT
from ..wire.tcp import ACK, SYN
from .common import gaps, gaps_text, sends_of, tcp_to_port
from .session import LabOptions, LabSession, run_lab

NAME = "syn-received"
SUMMARY = "the handshake's last ACK is lost: SYN-RECEIVED on either side, SYN-ACK retransmitted with backoff"
KERNEL_PORT = 9000
USTACK_PORT = 8000
INITIAL_RTO = 0.5  # ustack's, so its backoff (0.5 s, 1 s, ...) is told apart from Linux's (1 s, 2 s)
LOST_ACKS = 2

EXPLANATION = """\
SYN-RECEIVED (RFC 9293 3.3.2, 3.5) is the server's state between sending its SYN-ACK and
receiving the ACK of it. It is normally too short to see; losing that last ACK stretches it.

The client does not know: for it, the SYN-ACK completed the handshake (SYN-SENT -> ESTABLISHED on
"rcv SYN,ACK / snd ACK"), and its connect() has returned. The two ends now disagree on the state
of the connection until the server hears an ACK; `ss` on one side and `ustack ss` on the other
show it.

The server's SYN-ACK has sequence space (the SYN), so it sits on the retransmission queue
(RFC 9293 3.8.1) and is sent again when the timer expires, with the timeout doubled each time
(exponential backoff, RFC 6298 5.5). Linux starts at 1 s (its TCP_TIMEOUT_INIT, RFC 6298 2.1) and
gives up after net.ipv4.tcp_synack_retries (5) retransmissions; ustack here starts at {rto} s
(TcpConfig initial_rto) and gives up after synack_retries. A retransmitted SYN-ACK reaching the client, which
is already ESTABLISHED, is an old duplicate: not acceptable, so the client answers with an ACK
(RFC 9293 3.10.7.4, first check) - and that ACK, if it gets through, completes the server's
handshake.

Until then the server counts the connection in its SYN queue, not its accept queue: accept() does
not return it. The syn-flood lab uses exactly this: SYN-RECEIVED entries that never complete.

What to look for: SYN-RECV in the ss outputs, the timer:(on,...) Linux prints for the SYN-ACK
retransmission, and the gaps between the copies of the SYN-ACK doubling.
""".format(rto=INITIAL_RTO)


def run(options: LabOptions) -> "LabResult":  # noqa: F821
    return run_lab(NAME, SUMMARY, scenario, options, TcpConfig(msl=0.5, initial_rto=INITIAL_RTO))


def _synack_gaps(lab: LabSession, side: int) -> list[float]:
    ladder = lab.ladder()
    synacks = [arrow for arrow in ladder.arrows if arrow.from_side == side and arrow.flags & SYN and arrow.flags & ACK]
    return gaps(sends_of(ladder, side, synacks[0].seq)) if synacks else []


async def scenario(lab: LabSession) -> str:
    # Linux answers an out-of-window segment with at most one ACK per 500 ms by default; switch
    # that limit off so the answer to every retransmitted SYN-ACK is visible.
    await lab.sysctl("net.ipv4.tcp_invalid_ratelimit", 0)
    await _kernel_is_server(lab)
    await _ustack_is_server(lab)
    return EXPLANATION


async def _kernel_is_server(lab: LabSession) -> None:
    scene = lab.scene("ustack connects to the kernel; ustack's final ACK is lost", port=KERNEL_PORT)
    kernel = await lab.kernel_peer()
    await kernel.call("listen", KERNEL_PORT)
    lab.step(f"kernel: listen on {lab.endpoint(lab.kernel_address, KERNEL_PORT)}")
    lab.drop(tcp_to_port(KERNEL_PORT, tcp_flags_equal(ACK)), LOST_ACKS, "outbound",
             "dropped by the lab: the handshake's ACK")
    lab.step(f"the lab: drop ustack's next {LOST_ACKS} pure ACKs to port {KERNEL_PORT}")
    _, writer, connection = await lab.connect(KERNEL_PORT)
    lab.step("ustack: connect() returns: ustack is ESTABLISHED, its ACK was lost on the way")
    await lab.kernel_ss("right after the lost ACK: the kernel is still in SYN-RECV")
    accepted = kernel.start("accept")
    await accepted
    lab.step("kernel: accept() returns once an ACK of its SYN-ACK finally arrives")
    await lab.kernel_ss("after the handshake completed")
    gap_values = _synack_gaps(lab, RIGHT)
    scene.facts["synack_gaps"] = gap_values
    lab.note(f"The kernel's SYN-ACK copies were {gaps_text(gap_values)} apart (Linux: 1 s, then doubling).")
    lab.cut()
    writer.transport.abort()
    await kernel.call("close")
    await kernel.call("close_listener")


async def _ustack_is_server(lab: LabSession) -> None:
    scene = lab.scene("the kernel connects to ustack; the kernel's final ACK is lost", port=USTACK_PORT)
    server = await lab.listen(USTACK_PORT)
    lab.step(f"ustack: listen on {lab.endpoint(lab.ustack_address, USTACK_PORT)}")
    lab.drop(tcp_to_port(USTACK_PORT, tcp_flags_equal(ACK)), LOST_ACKS, "inbound",
             "dropped by the lab: the handshake's ACK")
    lab.step(f"the lab: drop the kernel's next {LOST_ACKS} pure ACKs to port {USTACK_PORT}")
    kernel = await lab.kernel_peer()
    await kernel.call("connect", lab.ustack_address, USTACK_PORT)
    lab.step("kernel: connect() returns: the kernel is ESTABLISHED, its ACK was lost on the way")
    connections = [c for c in lab.stack.all_connections() if c.local_port == USTACK_PORT]
    await lab.wait_for(lambda: bool(connections) and connections[0].state is State.SYN_RECEIVED,
                       "ustack's connection in SYN-RECEIVED")
    await lab.ustack_ss("right after the lost ACK: ustack is still in SYN-RECEIVED")
    await lab.kernel_ss("at the same moment: the kernel is ESTABLISHED")
    _, writer, connection = await server.next()
    await lab.wait_state(connection, State.ESTABLISHED)
    lab.step("ustack: an ACK finally arrives; the connection is ESTABLISHED and accepted")
    await lab.ustack_ss("after the handshake completed")
    gap_values = _synack_gaps(lab, LEFT)
    scene.facts["synack_gaps"] = gap_values
    lab.note(f"ustack's SYN-ACK copies were {gaps_text(gap_values)} apart (initial_rto {INITIAL_RTO} s, then doubling).")
    lab.cut()
    writer.transport.abort()
    await kernel.call("close")

"""Lab `simultaneous-close`: both sides close at once, their FINs cross on the wire, and both
pass through CLOSING on their way to TIME-WAIT.

"At once" is arranged, not hoped for: the lab's Gate holds the kernel's segments back on the
wire. The kernel closes (its FIN is held), then ustack closes (its FIN reaches the kernel, which
is in FIN-WAIT-1 and answers with an ACK, also held). Only then does the lab let the kernel's
segments through, one at a time: each FIN reached its receiver after that receiver had sent its
own, which is exactly what a simultaneous close is.
"""

from __future__ import annotations

from ..tcp import State, TcpConfig
from .common import sequence_arithmetic, tcp_to_port
from .session import LabOptions, LabSession, run_lab

NAME = "simultaneous-close"
SUMMARY = "both sides close at once, the FINs cross, both pass through CLOSING"
PORT = 8000
MSL = 0.5
RTO_FLOOR = 3.0  # seconds: longer than the lab holds any segment

EXPLANATION = f"""\
RFC 9293 3.6 (Figure 13) describes the simultaneous close: each side sends its FIN before it has
received the other's. A FIN arriving in FIN-WAIT-1 that does not acknowledge our own FIN moves us
to CLOSING (Figure 5: "rcv FIN / snd ACK"): we have closed, the peer has closed, but our FIN is not
yet acknowledged. The ACK of our FIN then moves us to TIME-WAIT (CLOSING -> TIME-WAIT, "rcv ACK of
FIN"). Both sides take the same path, FIN-WAIT-1 -> CLOSING -> TIME-WAIT, and BOTH end in
TIME-WAIT (2*MSL, MSL = {MSL} s here for ustack; Linux waits 60 s), unlike an ordinary close where
only the first closer does.

Still four segments: two FINs and two ACKs, but they cross instead of alternating. Compare the ack
fields: each FIN acknowledges only what was received before it was sent, so neither acknowledges
the other FIN (RFC 9293 3.10.7.4, the FIN check in FIN-WAIT-1: a FIN that also acknowledges ours
leads to TIME-WAIT, one that does not leads to CLOSING).

In practice this happens when both applications close at nearly the same time, within one round
trip. The kernel's ss output while its segments were held shows CLOSING on its side, with the
retransmission timer running for its unacknowledged FIN.
"""


def run(options: LabOptions) -> "LabResult":  # noqa: F821
    # ustack's RTO floor is raised too, so neither side retransmits while the lab holds segments;
    # and no tail loss probe (RACK-TLP, RFC 8985 7) goes before it: the classic loss detection.
    config = TcpConfig(msl=MSL, min_rto=RTO_FLOOR, initial_rto=RTO_FLOOR, loss_detection="dupack")
    return run_lab(NAME, SUMMARY, scenario, options, config)


async def scenario(lab: LabSession) -> str:
    await lab.kernel_rto_min(RTO_FLOOR)
    lab.step(f"ustack: TcpConfig(min_rto={RTO_FLOOR}): no retransmission while the lab holds segments either")
    scene = lab.scene("Both sides close before either FIN arrives", port=PORT)
    kernel, _, writer, connection, _ = await lab.kernel_connects(PORT)
    await lab.wait_state(connection, State.ESTABLISHED)
    lab.step("kernel: connect(); ustack accepts: ESTABLISHED on both sides")

    lab.hold(tcp_to_port(PORT))
    lab.step("the lab: hold every segment from the kernel on the wire for now")
    await kernel.call("close")
    await lab.wait_held(1, "the kernel's FIN")
    lab.step("kernel: close(): its FIN is on the wire (held); the kernel is in FIN-WAIT-1")
    writer.close()
    await lab.wait_state(connection, State.FIN_WAIT_1)
    lab.step("ustack: close() before the kernel's FIN arrived: ustack's FIN crosses it")
    await lab.wait_held(2, "the kernel's ACK of ustack's FIN")
    await lab.kernel_ss("both FINs sent, the kernel has ustack's FIN: the kernel is in CLOSING")
    await lab.ustack_ss("at the same moment: ustack has not seen the kernel's FIN yet")

    lab.release(1)
    await lab.wait_state(connection, State.CLOSING)
    lab.step("the lab: let the kernel's FIN through: it arrives in FIN-WAIT-1 without acknowledging ustack's FIN, so CLOSING")
    await lab.ustack_ss("ustack in CLOSING")
    lab.release()
    await lab.wait_state(connection, State.TIME_WAIT)
    lab.step("the lab: let the rest through: the kernel's ACK of ustack's FIN takes ustack to TIME-WAIT")
    await lab.kernel_ss("after ustack's ACK reached the kernel: the kernel is in TIME-WAIT too")
    await lab.wait_state(connection, State.CLOSED, timeout=4 * MSL + 5)
    lab.step(f"ustack: CLOSED after 2*MSL = {2 * MSL} s (the kernel's TIME-WAIT lasts 60 s; the namespace goes first)")

    lab.note("Sequence arithmetic: neither FIN acknowledges the other FIN; the two ACKs do:")
    lab.current.notes.extend(sequence_arithmetic(lab.ladder()))
    scene.facts["held_segments"] = lab.gate.counters["held"]
    lab.cut()
    return EXPLANATION

"""Lab `time-wait`: why the side that closes first waits 2*MSL in TIME-WAIT.

Scene 1: ustack closes first and reaches TIME-WAIT; its ACK of the kernel's FIN is lost. The
kernel, in LAST-ACK, retransmits its FIN; ustack, still in TIME-WAIT, answers it again and
restarts its 2*MSL timer. MSL is 1 s here so the whole story fits in a few seconds.
Scene 2: the same loss with MSL = 0 (no TIME-WAIT at all): the retransmitted FIN finds no
connection and is answered with RST.
"""

from __future__ import annotations

from ..link.predicates import tcp_flags_equal
from ..tcp import State, TcpConfig
from ..trace import LEFT, RIGHT
from ..wire.tcp import ACK, FIN, RST
from .session import LabOptions, LabSession, run_lab

NAME = "time-wait"
SUMMARY = "the last ACK is lost: the FIN comes again and TIME-WAIT answers it and restarts 2*MSL"
PORT = 8000
PORT_WITHOUT = 8001
MSL = 1.0

EXPLANATION = f"""\
The side that closes first ends in TIME-WAIT (RFC 9293 3.3.2, 3.6) and stays there for 2*MSL,
twice the maximum segment lifetime (RFC 9293 3.4.2: MSL is 2 minutes in the RFC, Linux waits
60 s, this lab uses MSL = {MSL} s). Two reasons:

1. The last ACK may be lost (scene 1). The other side, in LAST-ACK, then retransmits its FIN.
   Only a side that still remembers the connection can answer it with the right ACK. RFC 9293
   3.10.7.4 (the FIN check, in TIME-WAIT) says that a FIN arriving in TIME-WAIT can only be the
   peer's FIN sent again: acknowledge it once more and start the 2*MSL wait over.
   2*MSL is long enough for the lost ACK's lifetime plus the retransmitted FIN's lifetime.
   Without TIME-WAIT (scene 2, MSL = 0) the FIN meets no connection and RFC 9293 3.10.7.1 says
   to answer it with RST: the peer's orderly close ends in a reset.

2. Old duplicates. A segment of this connection still wandering in the network must not be
   taken for part of a new connection with the same 4-tuple (RFC 9293 3.4.2, 3.4.3). Waiting
   2*MSL lets every one of them expire first. This is why TIME-WAIT also blocks reusing the
   same local port towards the same peer (ustack's ephemeral port choice skips such tuples).

What to look for: the FIN arriving twice (the second drawn as a retransmission), ustack's ACK
sent twice, the TIME-WAIT timer moving later when the second FIN arrives (the numbers under the
ladder), LAST-ACK with its retransmission timer in the kernel's ss, and in scene 2 the RST.
"""


def run(options: LabOptions) -> "LabResult":  # noqa: F821
    return run_lab(NAME, SUMMARY, scenario, options, TcpConfig(msl=MSL))


async def scenario(lab: LabSession) -> str:
    await _with_time_wait(lab)
    await _without_time_wait(lab)
    return EXPLANATION


async def _open_and_close_first(lab: LabSession, port: int, config: TcpConfig | None = None):
    """ustack serves on `port`, the kernel connects, ustack closes first and the lab drops the
    ACK of the kernel's FIN. Returns (kernel peer, ustack's connection)."""
    kernel, _, writer, connection, _ = await lab.kernel_connects(port, config=config)
    lab.step(f"kernel: connect() to ustack's port {port}; ustack accepts")
    writer.close()
    lab.step("ustack: close() first (the active close)")
    await lab.wait_state(connection, State.FIN_WAIT_2)
    lab.drop(tcp_flags_equal(ACK), 1, "outbound", "dropped by the lab: the last ACK")
    lab.step("the lab: drop ustack's next pure ACK (it will be the last ACK of the connection)")
    await kernel.call("recv", 100)
    await kernel.call("close")
    lab.step("kernel: recv() sees the end of stream, close() sends its FIN")
    await lab.wait_for(lambda: connection.state in (State.TIME_WAIT, State.CLOSED), "ustack to reach TIME-WAIT")
    return kernel, connection


async def _with_time_wait(lab: LabSession) -> None:
    scene = lab.scene(f"ustack in TIME-WAIT (MSL {MSL} s) answers the retransmitted FIN", port=PORT)
    _, connection = await _open_and_close_first(lab, PORT)
    entered = lab.now()
    first_deadline = connection.snapshot().timers["time_wait"]
    lab.step(f"ustack: TIME-WAIT; its timer is due in {first_deadline - entered:.3f} s (2*MSL); its ACK was lost")
    await lab.kernel_ss("after the last ACK was lost: the kernel waits in LAST-ACK")
    await lab.ustack_ss("at the same moment")

    def timer_moved() -> bool:
        deadline = connection.snapshot().timers.get("time_wait")
        return connection.state is State.CLOSED or deadline != first_deadline

    await lab.wait_for(timer_moved, "the kernel's FIN to come again")
    second_arrival = lab.now()
    second_deadline = connection.snapshot().timers.get("time_wait")
    if second_deadline is None:
        lab.step("ustack: the TIME-WAIT timer expired before the FIN came again")
    else:
        lab.step(f"kernel: its FIN again ({second_arrival - entered:.3f} s later); ustack ACKs it and restarts the timer: "
                 f"due in {second_deadline - second_arrival:.3f} s, {second_deadline - first_deadline:.3f} s later than before")
    await lab.kernel_ss("after ustack answered the retransmitted FIN")
    await lab.wait_state(connection, State.CLOSED, timeout=4 * MSL + 5)
    closed = lab.now()
    lab.step(f"ustack: TIME-WAIT over after {closed - entered:.3f} s in it: CLOSED")

    ladder = lab.ladder()
    kernel_fins = [a for a in ladder.arrows if a.from_side == RIGHT and a.flags & FIN]
    ustack_acks = [a for a in ladder.arrows if a.from_side == LEFT and a.flags == ACK and kernel_fins
                   and a.time >= kernel_fins[0].time]
    scene.facts.update(
        time_wait_first_deadline=first_deadline - entered,
        time_wait_restarted_by=(second_deadline - first_deadline) if second_deadline is not None else 0.0,
        time_in_time_wait=closed - entered,
        kernel_fins=len(kernel_fins),
        ustack_acks_after_fin=len(ustack_acks),
    )
    if second_deadline is not None:
        lab.note(f"TIME-WAIT timer: first due {first_deadline - entered:.3f} s after entering TIME-WAIT; the "
                 f"retransmitted FIN at +{second_arrival - entered:.3f} s restarted it to +{second_deadline - entered:.3f} s; "
                 f"the connection was forgotten at +{closed - entered:.3f} s.")
    lab.cut()


async def _without_time_wait(lab: LabSession) -> None:
    scene = lab.scene("the same loss without TIME-WAIT (MSL 0): the retransmitted FIN meets an RST", port=PORT_WITHOUT)
    _, connection = await _open_and_close_first(lab, PORT_WITHOUT, config=TcpConfig(msl=0.0))
    await lab.wait_state(connection, State.CLOSED)
    lab.step("ustack: TIME-WAIT of 0 s: the connection is forgotten at once")
    await lab.kernel_ss("right after: the kernel waits in LAST-ACK")
    await lab.wait_for(lambda: any(a.from_side == LEFT and a.flags & RST for a in lab.ladder().arrows),
                       "the kernel's FIN to come again and be answered")
    lab.step("kernel: its FIN again; ustack has no connection for it and answers RST (RFC 9293 3.10.7.1)")
    await lab.kernel_ss("after the RST: the kernel's side is gone too, closed by a reset")
    scene.facts["ustack_resets"] = len([a for a in lab.ladder().arrows if a.from_side == LEFT and a.flags & RST])
    lab.cut()

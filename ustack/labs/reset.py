"""Lab `reset`: where RST segments come from.

Scene 1: curl (the kernel) connects to a ustack port nobody listens on: RST, "connection refused".
Scene 2: ustack aborts an open connection: RST, and the kernel's recv() fails with ECONNRESET.
Scene 3: the kernel aborts (close() with SO_LINGER 0): RST, ustack's read fails the same way.
Scene 4: ustack restarts and forgets its connections; the kernel, still ESTABLISHED, sends data
on the stale connection and gets RST back: "connection reset by peer".
"""

from __future__ import annotations

from collections import Counter

from ..tcp import State, TcpConfig
from ..trace import LEFT, RIGHT
from ..wire.tcp import RST
from .session import LabOptions, LabSession, run_lab

NAME = "reset"
SUMMARY = "RST to a port with no listener, RST from an abort, RST for a stale connection after a restart"
CLOSED_PORT = 7777
ABORT_PORT = 8000
KERNEL_ABORT_PORT = 8001
RESTART_PORT = 8002

EXPLANATION = """\
A reset (RST) says "this connection does not exist (any more)". RFC 9293 3.5.2 lists when one
is sent:

1. A segment for a connection that does not exist, other than a reset, is answered with RST
   (RFC 9293 3.10.7.1, state CLOSED). For a SYN to a port with no listener this is how a
   connection is refused: the RST acknowledges the SYN (seq 0, ACK = SYN + 1, flags R.), and
   the client's connect() fails with ECONNREFUSED (curl: "Couldn't connect to server").
   The rule is: if the incoming segment has an ACK, the reset takes its sequence number from
   that ACK; otherwise the reset has sequence 0 and acknowledges SEG.SEQ + SEG.LEN.

2. ABORT (RFC 9293 3.10.5): an application that gives up on a connection sends RST instead of
   FIN; queued data is thrown away and the peer learns at once. Sockets abort when close() is
   called with SO_LINGER set to 0 seconds, or with unread data in the receive buffer (RFC 1122
   4.2.2.13); asyncio's transport.abort() does it in ustack. The receiving side checks that the
   RST's sequence number is exactly the next one expected (RFC 9293 3.10.7.4 first check,
   RFC 5961 3.2: an RST merely inside the window only earns a challenge ACK), then drops the
   connection: ESTABLISHED -> CLOSED, with "connection reset" (ECONNRESET) for the application.

3. A half-open connection (RFC 9293 3.5.1, Figure 10-11): one side crashed or restarted and
   lost its memory of the connection, the other still believes it is ESTABLISHED. The next
   segment it sends meets case 1: no such connection, RST. Only then does it find out, and its
   application gets "connection reset by peer". (Without traffic it would never notice: that
   is what keep-alives are for, RFC 1122 4.2.3.6.)

A reset is never answered with a reset (RFC 9293 3.10.7.1), and a reset is never acknowledged:
the connection ends where it arrives, without TIME-WAIT.

What to look for: the flags and numbers of each RST (R. with ack 1 past the SYN in scene 1,
R with the exact next sequence number in scenes 2-4), the state jumping straight to CLOSED on
both sides, and the errors the applications got.
"""


def run(options: LabOptions) -> "LabResult":  # noqa: F821
    return run_lab(NAME, SUMMARY, scenario, options, TcpConfig(msl=0.5))


async def scenario(lab: LabSession) -> str:
    await _no_listener(lab)
    await _ustack_aborts(lab)
    await _kernel_aborts(lab)
    await _stale_after_restart(lab)
    return EXPLANATION


def _resets(lab: LabSession, side: int) -> int:
    return len([a for a in lab.ladder().arrows if a.from_side == side and a.flags & RST])


async def _no_listener(lab: LabSession) -> None:
    scene = lab.scene(f"curl to a ustack port with no listener ({CLOSED_PORT})", port=CLOSED_PORT)
    url = f"http://{lab.endpoint(lab.ustack_address, CLOSED_PORT)}/"
    result = await lab.run_in_namespace(["curl", "-sS", "--max-time", "5", url])
    message = (result.stderr or result.stdout).strip()
    lab.step(f"kernel: curl {url} exits with status {result.returncode}: {message}")
    scene.facts.update(curl_status=result.returncode, curl_message=message, ustack_resets=_resets(lab, LEFT))
    lab.note(f"ustack's drop counters: tcp_no_connection = {lab.stack.drops['tcp_no_connection']} "
             f"(the SYN, answered by the RST)")
    lab.cut()


async def _ustack_aborts(lab: LabSession) -> None:
    scene = lab.scene("ustack aborts an open connection", port=ABORT_PORT)
    kernel, _, writer, connection, server = await lab.kernel_connects(ABORT_PORT)
    lab.step("kernel: connect(); ustack accepts")
    await kernel.call("say", "request")
    await lab.wait_for(lambda: connection.snapshot().bytes_received == 7, "the kernel's 7 bytes to arrive")
    lab.step("kernel: send(b'request'), which ustack never reads")
    writer.transport.abort()
    lab.step("ustack: transport.abort(): RST instead of FIN, unsent and unread data thrown away")
    await lab.wait_state(connection, State.CLOSED)
    reply = await kernel.call("recv", 100, check=False)
    lab.step(f"kernel: recv() fails: {reply.get('error')} ({reply.get('text')})")
    await lab.kernel_ss("after the RST: the kernel's socket is closed, nothing left")
    scene.facts.update(kernel_error=reply.get("error"), ustack_resets=_resets(lab, LEFT))
    lab.cut()
    server.server.close()
    await kernel.call("close")


async def _kernel_aborts(lab: LabSession) -> None:
    scene = lab.scene("the kernel aborts: close() with SO_LINGER 0", port=KERNEL_ABORT_PORT)
    kernel, reader, _, connection, server = await lab.kernel_connects(KERNEL_ABORT_PORT)
    lab.step("kernel: connect(); ustack accepts")
    await lab.kernel_ss("before the abort")
    await kernel.call("abort")
    lab.step("kernel: setsockopt(SO_LINGER, on, 0 s) and close(): RST")
    await lab.wait_state(connection, State.CLOSED)
    try:
        await reader.read(100)
        outcome = "no error"
    except ConnectionResetError as error:
        outcome = f"ConnectionResetError: {error.strerror}"
    lab.step(f"ustack: read() raises {outcome}; the core's error is {connection.error}")
    await lab.ustack_ss("after the kernel's RST: ustack has forgotten the connection (only the listener is left)")
    scene.facts.update(ustack_error=str(connection.error), ustack_read=outcome, kernel_resets=_resets(lab, RIGHT))
    lab.cut()
    server.server.close()


async def _stale_after_restart(lab: LabSession) -> None:
    scene = lab.scene("ustack restarts; the kernel's stale connection is answered with RST", port=RESTART_PORT)
    kernel = (await lab.kernel_connects(RESTART_PORT)).kernel
    lab.step("kernel: connect(); ustack accepts: ESTABLISHED on both sides")
    await lab.restart_ustack()
    lab.step("ustack: crashes and restarts (a new Stack on the same TUN): it remembers no connection, "
             "and nothing was sent to tell the kernel")
    await lab.listen(RESTART_PORT)
    lab.step(f"ustack: the restarted server listens on port {RESTART_PORT} again")
    await lab.kernel_ss("after ustack's restart: the kernel still believes the connection is ESTABLISHED")
    await kernel.call("say", "anyone there?")
    lab.step("kernel: send(b'anyone there?') on the stale connection")
    reply = await kernel.call("recv", 100, check=False)
    lab.step(f"kernel: recv() fails: {reply.get('error')} ({reply.get('text')})")
    await lab.kernel_ss("after the RST")
    scene.facts.update(kernel_error=reply.get("error"), kernel_error_text=reply.get("text"),
                       ustack_resets=_resets(lab, LEFT))
    listener_drops = Counter()
    for listener in lab.stack.listeners.values():
        listener_drops.update(listener.drops)
    lab.note("ustack's states stop at ESTABLISHED: the restarted stack never had this connection. Its RST came "
             f"from the new listener, which answers any ACK it gets with a reset (its drops: {dict(listener_drops)}).")
    lab.cut()

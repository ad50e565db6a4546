"""The frame every lab runs in: a private namespace with the kernel on one side of a TUN device
and ustack (in this process) on the other, plus the tools a lab uses to make things happen and
to watch them.

    def run(options: LabOptions) -> LabResult:
        return run_lab(NAME, SUMMARY, scenario, options, config=TcpConfig(msl=1.0))

    async def scenario(lab: LabSession) -> str:      # returns the explanation
        lab.scene("The three-way handshake", port=8000)
        server = await lab.listen(8000)
        kernel = await lab.kernel_peer()
        await kernel.call("connect", lab.ustack_address, 8000)
        ...
        await lab.kernel_ss("with both sides ESTABLISHED")

What `run_lab` sets up, and takes down at the end whatever happens (error, Ctrl-C):

- ustack.network's network in the namespace `ust-lab-<name>-<pid>`, with its defaults (the TUN
  device `ustun0`, the kernel at 10.77.0.1 and fd00:77::1, ustack answering as 10.77.0.2 and
  fd00:77::2; a lab talks over IPv4, or over IPv6 with LabOptions(ipv6=True)) and the link chain of
  ustack.labs.watch (FaultInjector, WireTap, Gate, PcapWriter with --pcap);
- a Stack and its AsyncStack in this process, observed by the SceneWatch that draws the current
  scene's ladder with ustack's exact state changes;
- programs started in the namespace (the kernel peer, ss, curl, nc, nstat) are tracked by PID and
  killed by PID when the network is closed (ustack.netns.Namespace).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, NamedTuple

from ..aio import AsyncStack
from ..link import FaultInjector
from ..netns import Namespace, stop_process
from ..network import KERNEL_ADDRESS, KERNEL_ADDRESS6, TUN_NAME, USTACK_ADDRESS, USTACK_ADDRESS6, NetworkSettings, UstackNetwork
from ..stack import Stack
from ..tcp import State, TcpConfig
from ..trace import LadderRecorder, render_svg, render_text
from ..wire.ipv4 import address_value
from ..wire.ipv6 import address6_value, endpoint_text
from .result import LabResult, Scene, SsSnapshot
from .watch import Gate, SceneWatch

KERNEL_PEER = Path(__file__).with_name("kernel_peer.py")
WAIT_TIMEOUT = 20.0  # no step of a lab waits longer than this for something to happen


class LabError(Exception):
    """A lab could not show what it meant to show (one line for the user)."""


@dataclass
class LabOptions:
    pcap: str | None = None  # keep the capture here
    svg: str | None = None  # draw the (first) ladder here
    plot: str | None = None  # labs that draw a plot (congestion: cwnd over time) save it here
    log: Callable[[str], None] | None = None  # each step as it happens (the CLI prints them)
    seed: int = 1  # the FaultInjector's seed (labs script their drops; nothing is random)
    web: object | None = None  # a ustack.web.WebFeed to follow the lab (ustack lab --web)
    ipv6: bool = False  # the same scenes over the TUN device's IPv6 addresses (ustack lab --ipv6)


def lab_addresses(ipv6: bool) -> tuple[str, str]:
    """(ustack's address, the kernel's) on the lab's TUN device, in the family the lab runs in:
    the only place a lab picks them (ustack.network owns the defaults)."""
    return (USTACK_ADDRESS6, KERNEL_ADDRESS6) if ipv6 else (USTACK_ADDRESS, KERNEL_ADDRESS)


def address_of(text: str) -> int | bytes:
    """An address as packets and the stack hold it: an int for IPv4, 16 bytes for IPv6."""
    return address6_value(text) if ":" in text else address_value(text)


class KernelPeer:
    """One kernel socket, driven through ustack/labs/kernel_peer.py inside the namespace."""

    def __init__(self, lab: "LabSession", process: subprocess.Popen, name: str) -> None:
        self.lab = lab
        self.process = process
        self.name = name

    async def call(self, *words: object, timeout: float = WAIT_TIMEOUT, check: bool = True) -> dict:
        """Send one command, wait for its answer. With check, an error answer raises LabError."""
        line = " ".join(str(word) for word in words) + "\n"
        self.process.stdin.write(line)
        self.process.stdin.flush()
        try:
            answer = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), timeout)
        except asyncio.TimeoutError:
            raise LabError(f"the kernel peer did not answer {line.strip()!r} within {timeout} s") from None
        if not answer:
            raise LabError(f"the kernel peer exited during {line.strip()!r}")
        reply = json.loads(answer)
        if check and not reply.get("ok"):
            raise LabError(f"kernel {line.strip()!r} failed: {reply.get('error')} ({reply.get('text')})")
        return reply

    def start(self, *words: object) -> asyncio.Task:
        """Start a command that blocks (accept, connect, recv) and return at once; await the task."""
        return asyncio.ensure_future(self.call(*words))


class LabSession:
    def __init__(self, name: str, options: LabOptions, network: UstackNetwork, astack: AsyncStack,
                 watch: SceneWatch) -> None:
        self.name = name
        self.options = options
        self.network = network
        self.namespace: Namespace = network.namespace
        self.astack = astack
        self.stack: Stack = astack.stack
        self.fault: FaultInjector = network.fault
        self.gate: Gate = network.gate
        self.watch = watch
        self.ipv6 = options.ipv6
        # The addresses as text (for the kernel's calls, the steps, curl and nc) and as values.
        self.ustack_address, self.kernel_address = lab_addresses(options.ipv6)
        self.ustack_value = address_of(self.ustack_address)
        self._kernel_value = self.kernel_value = address_of(self.kernel_address)
        self.scenes: list[Scene] = []
        self.setup: list[str] = []  # steps taken before the first scene
        self.events: list[tuple[float, object, object]] = []  # (time, connection, event) with the kernel
        self._recorder: LadderRecorder | None = None
        self._peers: list[KernelPeer] = []
        self._ss_processes: list[subprocess.Popen] = []  # `ustack ss` processes we started
        self._control = None
        self._control_directory: tempfile.TemporaryDirectory | None = None
        astack.add_observer(watch.observe)
        astack.add_observer(self._observe)

    # --- scenes and narration -------------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.astack.loop

    def now(self) -> float:
        return self.loop.time()

    def scene(self, title: str, port: int | None = None) -> Scene:
        """Start a new scene: a fresh ladder of the first connection with `port` on either side."""
        self._finish_scene()
        scene = Scene(title)
        self.scenes.append(scene)
        self._recorder = LadderRecorder(port=port, local_label="ustack", remote_label="kernel")
        self.watch.start_scene(self._recorder, port)
        self._log(f"--- {title} ---")
        return scene

    @property
    def current(self) -> Scene:
        return self.scenes[-1]

    def step(self, text: str) -> None:
        if not self.scenes:  # before the first scene: the lab's set-up
            self.setup.append(text)
            self._log(f"set-up: {text}")
            return
        self.current.steps.append(text)
        self._log(f"  {len(self.current.steps)}. {text}")

    def note(self, text: str) -> None:
        self.current.notes.append(text)

    def cut(self) -> None:
        """End the current scene's recording here: what the lab does next (tidying up) is not drawn."""
        self._finish_scene()

    def ladder(self):
        """The current scene's ladder so far (or as it was cut)."""
        self.watch.draw_lost()
        return self._recorder.ladder() if self._recorder is not None else self.current.ladder

    def endpoint(self, address: str, port: object) -> str:
        """'10.77.0.2:8000' or '[fd00:77::2]:8000', as ss writes it."""
        return endpoint_text(address, port)

    @property
    def not_our_address_drops(self) -> int:
        """Packets ustack dropped because they were for another address (of the lab's family)."""
        return self.stack.drops["ipv6_not_our_address" if self.ipv6 else "ipv4_not_our_address"]

    def _log(self, text: str) -> None:
        if self.options.log is not None:
            self.options.log(text)

    def _finish_scene(self) -> None:
        if self.scenes and self._recorder is not None and self.current.ladder is None:
            self.watch.draw_lost()  # the packets dropped last, with nothing after them yet
            ladder = self._recorder.ladder()
            self.current.ladder = ladder
            self.current.ladder_text = render_text(ladder)
        self.watch.start_scene(None, None)
        self._recorder = None

    def _observe(self, now: float, kind: str, item) -> None:
        """What ustack's connections with the kernel report (the watch draws; this keeps)."""
        if kind == "event" and item.connection.remote_address == self._kernel_value:
            self.events.append((now, item.connection, item.event))

    # --- ustack's side ------------------------------------------------------------------------------
    async def listen(self, port: int, *, backlog: int = 16, config: TcpConfig | None = None) -> "Accepted":
        accepted = Accepted()
        server = await self.astack.start_server(accepted.connected, port=port, backlog=backlog, config=config)
        accepted.server = server
        return accepted

    async def connect(self, port: int, *, config: TcpConfig | None = None):
        """Active open from ustack to the kernel; returns (reader, writer, core connection)."""
        reader, writer = await asyncio.wait_for(
            self.astack.open_connection(self.kernel_address, port, config=config), WAIT_TIMEOUT)
        return reader, writer, writer.transport.get_extra_info("connection")

    # --- both sides at once: how most scenes start --------------------------------------------------
    async def kernel_connects(self, port: int, *, config: TcpConfig | None = None) -> Opened:
        """ustack listens on `port` (with `config`), a new kernel peer connects, ustack accepts."""
        server = await self.listen(port, config=config)
        kernel = await self.kernel_peer()
        await kernel.call("connect", self.ustack_address, port)
        reader, writer, connection = await server.next()
        return Opened(kernel, reader, writer, connection, server)

    async def ustack_connects(self, port: int) -> Opened:
        """A new kernel peer listens on `port`, ustack connects, the kernel accepts."""
        kernel = await self.kernel_peer()
        await kernel.call("listen", port)
        accepting = kernel.start("accept")
        reader, writer, connection = await self.connect(port)
        await accepting
        return Opened(kernel, reader, writer, connection, None)

    async def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT_TIMEOUT) -> None:
        """Wait until predicate() holds (checked after every round of the stack: no polling)."""
        try:
            await self.astack.wait_until(predicate, timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise LabError(f"timed out after {timeout} s waiting for {what}") from None

    async def wait_state(self, connection, state: State, timeout: float = WAIT_TIMEOUT) -> None:
        await self.wait_for(lambda: connection.state is state, f"ustack's connection to reach {state.value} "
                            f"(it is {connection.state.value})", timeout)

    def poke(self, connection) -> None:
        """After calling the core connection directly (e.g. send(urgent=True)): transmit now."""
        self.astack.poke(connection)

    async def restart_ustack(self) -> None:
        """ustack "crashes" and comes back: the stack and all it knew are thrown away without a
        word on the wire (the resets its shutdown would send are dropped, as if the power had been
        cut), and a fresh Stack starts on the same link, remembering no connection at all."""
        # Nothing of the crash is drawn: not the packets, not the old stack's last state changes.
        recorder, self._recorder = self._recorder, None
        port = self.watch.port
        self.watch.start_scene(None, None)
        silence = self.fault.drop_when(lambda packet: True, 1 << 30, "outbound")
        if self._control is not None:
            await self._control.close()
            self._control = None
        await self.astack.close()
        silence.remaining = 0
        self.stack = self.network.make_stack(self.stack.config)
        self.astack = AsyncStack(self.stack, self.astack.link, control=False)
        await self.astack.start()
        self.astack.add_observer(self.watch.observe)
        self.astack.add_observer(self._observe)
        self._recorder = recorder
        self.watch.start_scene(recorder, port)

    # --- the wire ---------------------------------------------------------------------------------
    def drop(self, predicate, count: int = 1, direction: str = "outbound", note: str = "dropped by the lab's FaultInjector"):
        """Script a loss: the next `count` packets matching predicate, in that direction."""
        return self.fault.drop_when(self.watch.dropping(predicate, note), count, direction)

    def inject(self, packets: list[bytes]) -> None:
        """Put packets on the wire as if ustack had sent them (the lab's own, e.g. spoofed SYNs)."""
        self.astack.link.send_batch(packets, self.now())
        self.astack.link.flush()

    def hold(self, predicate) -> None:
        """Keep packets from the kernel that match predicate out of ustack's reach for now."""
        self.gate.hold(predicate)

    def release(self, count: int | None = None) -> int:
        released = self.gate.release(count)
        self.astack.request_round()  # the round re-arms the timer, which collects them
        return released

    async def wait_held(self, count: int, what: str) -> None:
        """Wait until `count` segments from the kernel are held. A packet reaching the gate wakes
        the loop through the TUN fd, and each round checks again: no polling."""
        await self.wait_for(lambda: len(self.gate.held) >= count, what)

    # --- the kernel's side ------------------------------------------------------------------------
    async def kernel_peer(self) -> KernelPeer:
        process = self.namespace.popen(
            [sys.executable, "-u", str(KERNEL_PEER), *(["--ipv6"] if self.ipv6 else [])], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, bufsize=1)
        peer = KernelPeer(self, process, f"kernel peer {len(self._peers) + 1}")
        self._peers.append(peer)
        return peer

    async def run_in_namespace(self, args: list[str], timeout: float = WAIT_TIMEOUT,
                               input: str | None = None) -> subprocess.CompletedProcess:
        """Run a program (ss, curl, nc, ...) inside the namespace to its end, without blocking ustack."""
        return await asyncio.to_thread(self.namespace.run, args, timeout, True, input)

    async def sysctl(self, name: str, value: object) -> None:
        """A kernel knob, inside the lab's namespace only (net.ipv4.* knobs are per namespace)."""
        result = await self.run_in_namespace(["sysctl", "-q", "-w", f"{name}={value}"])
        if result.returncode != 0:
            raise LabError(f"sysctl {name}={value} failed in {self.namespace.name}: {result.stderr.strip()}")
        self.step(f"kernel: sysctl -w {name}={value} (in the namespace only)")

    async def kernel_rto_min(self, seconds: float) -> None:
        """Raise the kernel's minimum retransmission timeout towards ustack (a route metric, in the
        namespace only), so the kernel does not retransmit while the lab holds its segments."""
        milliseconds = int(seconds * 1000)
        family, host_prefix = (["-6"], 128) if self.ipv6 else ([], 32)
        command = ["ip", *family, "route", "add", f"{self.ustack_address}/{host_prefix}", "dev", TUN_NAME,
                   "rto_min", f"{milliseconds}ms"]
        result = await self.run_in_namespace(command)
        if result.returncode != 0:
            raise LabError(f"cannot set rto_min in {self.namespace.name}: {result.stderr.strip()}")
        self.step(f"kernel: {' '.join(command)} (its retransmission timer waits at least that long)")

    async def kernel_ss(self, moment: str, arguments: tuple[str, ...] = ("-tano",)) -> SsSnapshot:
        """Run `ss` in the namespace now and keep what it printed in the current scene."""
        result = await self.run_in_namespace(["ss", *arguments])
        if result.returncode != 0:
            raise LabError(f"ss failed: {result.stderr.strip()}")
        output = result.stdout
        snapshot = SsSnapshot(moment, f"ip netns exec {self.namespace.name} ss {' '.join(arguments)}", output,
                              "kernel", _ss_states(output, arguments))
        self.current.snapshots.append(snapshot)
        self._log(f"  ({snapshot.command}: {', '.join(snapshot.states) or 'nothing'})")
        return snapshot

    async def ustack_ss(self, moment: str, arguments: tuple[str, ...] = (),
                        prepared: "PreparedSs | None" = None) -> SsSnapshot:
        """Run `ustack ss` (a separate process) against this lab's stack, through its control
        socket. With `prepared` (from prepare_ustack_ss), the process started then asks now."""
        prepared = prepared or await self.prepare_ustack_ss(arguments)
        arguments = prepared.arguments

        def answer() -> tuple[str, str]:
            try:
                return prepared.process.communicate("go\n", timeout=WAIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                stop_process(prepared.process)
                raise LabError(f"ustack ss did not answer within {WAIT_TIMEOUT} s") from None

        stdout, stderr = await asyncio.to_thread(answer)
        if prepared.process.returncode != 0:
            raise LabError(f"ustack ss failed: {stderr.strip()}")
        snapshot = SsSnapshot(moment, " ".join(["ustack ss", *arguments]), stdout, "ustack",
                              _ss_states(stdout, arguments))
        self.current.snapshots.append(snapshot)
        self._log(f"  ({snapshot.command}: {', '.join(snapshot.states) or 'nothing'})")
        return snapshot

    async def prepare_ustack_ss(self, arguments: tuple[str, ...] = ()) -> "PreparedSs":
        """Start `ustack ss ARGUMENTS` now, to ask the stack only when ustack_ss(prepared=...)
        says so: starting Python and importing ustack takes about half a second, longer than some
        moments last (after a first retransmission timeout, the next one comes 2 * min_rto later)."""
        await self._start_control()
        environment = {**os.environ, "USTACK_RUN_DIR": self._control_directory.name}
        # The `ustack` program itself, run by this interpreter (not `-m ustack.cli`, which would
        # load the CLI module twice): it loads its command modules, says so, and waits for "go".
        program = ("import sys; from ustack.cli import build_parser, main; build_parser(); "
                   f"print({_SS_READY!r}, flush=True); sys.stdin.readline(); sys.exit(main())")
        process = subprocess.Popen([sys.executable, "-c", program, "ss", *arguments], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
        self._ss_processes.append(process)
        try:
            ready = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), WAIT_TIMEOUT)
        except asyncio.TimeoutError:
            raise LabError(f"ustack ss did not start within {WAIT_TIMEOUT} s") from None
        if ready.strip() != _SS_READY:
            raise LabError(f"ustack ss failed to start: {process.stderr.read().strip()}")
        return PreparedSs(process, tuple(arguments))

    async def _start_control(self) -> None:
        if self._control is not None:
            return
        self._control_directory = tempfile.TemporaryDirectory(prefix="ustack-lab-")
        self._control = await self.network.start_control(self.astack, f"ustack lab {self.name}",
                                                         Path(self._control_directory.name))

    async def close(self) -> None:
        self._finish_scene()
        # Stop the kernel peers now (by PID), so no thread stays blocked reading from one, and
        # any prepared `ustack ss` never asked.
        for process in [peer.process for peer in self._peers] + self._ss_processes:
            await asyncio.to_thread(stop_process, process)
        if self._control is not None:
            await self._control.close()
            self._control = None
        if self._control_directory is not None:
            self._control_directory.cleanup()
            self._control_directory = None
        await self.astack.close()  # resets whatever is still open; nobody records it any more


_SS_READY = "ustack ss: ready"


class PreparedSs(NamedTuple):
    """A `ustack ss` process started ahead of its moment (LabSession.prepare_ustack_ss)."""

    process: subprocess.Popen
    arguments: tuple[str, ...]


class Opened(NamedTuple):
    """A connection between the kernel and ustack, as a scene starts with it."""

    kernel: KernelPeer  # the kernel's socket
    reader: asyncio.StreamReader  # ustack's side of the connection...
    writer: asyncio.StreamWriter
    connection: object  # ...and its core Connection (state, snapshot())
    server: Accepted | None  # ustack's server, when ustack accepted the connection


class Accepted:
    """The connections a ustack server accepted, in order: `await accepted.next()`."""

    def __init__(self) -> None:
        self.server = None
        self._queue: asyncio.Queue = asyncio.Queue()

    def connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._queue.put_nowait((reader, writer))

    async def next(self, timeout: float = WAIT_TIMEOUT):
        """(reader, writer, core connection) of the next accepted connection."""
        try:
            reader, writer = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            raise LabError(f"no connection was accepted within {timeout} s") from None
        return reader, writer, writer.transport.get_extra_info("connection")


# ss's filter names -> the names in its State column
_SS_FILTER_STATES = {"established": "ESTAB", "syn-sent": "SYN-SENT", "syn-recv": "SYN-RECV",
                     "fin-wait-1": "FIN-WAIT-1", "fin-wait-2": "FIN-WAIT-2", "time-wait": "TIME-WAIT",
                     "close-wait": "CLOSE-WAIT", "last-ack": "LAST-ACK", "closing": "CLOSING", "listening": "LISTEN"}


def _ss_states(output: str, arguments: tuple[str, ...] = ()) -> list[str]:
    """The State column of ss's (or ustack ss's) table, one entry per socket. With a `state NAME`
    filter ss leaves the column out, so every row is in that state."""
    lines = output.splitlines()
    if not lines:
        return []
    rows = [line for line in lines[1:] if line.strip() and not line.startswith((" ", "\t"))]
    if lines[0].split()[:1] == ["State"]:
        return [row.split()[0] for row in rows]
    filtered = list(arguments)
    if "state" in filtered and filtered.index("state") + 1 < len(filtered):
        name = filtered[filtered.index("state") + 1]
        return [_SS_FILTER_STATES.get(name, name.upper())] * len(rows)
    return []


# ------------------------------------------------------------------------------------------------
# Running one lab
# ------------------------------------------------------------------------------------------------
Scenario = Callable[[LabSession], Awaitable[str]]


def run_lab(name: str, summary: str, scenario: Scenario, options: LabOptions, config: TcpConfig) -> LabResult:
    """Set up, run the scenario, take everything down; the scenario returns the explanation."""
    if os.geteuid() != 0:
        raise LabError("labs need root: they create a network namespace and a TUN device (sudo ustack lab ...)")
    # offload=False: a lab shows TCP segment by segment. With TSO the kernel would take a run of
    # our segments as one and answer it with one ACK (three duplicate ACKs would become one);
    # software_offload=False: nor does the link join or cut them in software.
    settings = NetworkSettings(namespace=f"ust-lab-{name}-{os.getpid()}", pcap=options.pcap, faults=True,
                               seed=options.seed, offload=False, software_offload=False)
    watch = SceneWatch(*(address_of(address) for address in lab_addresses(options.ipv6)))
    network = UstackNetwork(settings, watch=watch, wire_layer=Gate)
    if options.web is not None:
        watch.followers.append(options.web)  # the web view: a second consumer of the same pipeline
    scenes: list[Scene] = []
    setup: list[str] = []

    async def main() -> str:
        astack = AsyncStack(network.make_stack(config), network.link, control=False)
        await astack.start()
        session = LabSession(name, options, network, astack, watch)
        sampler = None
        if options.web is not None:
            from ..web import sample_snapshots

            options.web.schedule = asyncio.get_running_loop().call_soon
            sampler = asyncio.create_task(sample_snapshots(options.web, lambda: session.astack.snapshots()))
        try:
            return await scenario(session)
        finally:
            if sampler is not None:
                sampler.cancel()
                options.web.detach()
            scenes.extend(session.scenes)
            setup.extend(session.setup)
            await session.close()

    # On leaving, whatever happens (Ctrl-C waits for it): the programs started in the namespace
    # are stopped (by PID), the pcap is flushed, the TUN device closed, the namespace removed.
    with network:
        explanation = asyncio.run(main())
    result = LabResult(name, summary, scenes, explanation, settings.namespace, options.pcap, options.svg, setup)
    if options.svg:
        ladder = next((scene.ladder for scene in scenes if scene.ladder and scene.ladder.arrows), None)
        if ladder is not None:
            try:
                Path(options.svg).write_text(render_svg(ladder), encoding="utf-8")
            except OSError as error:
                raise LabError(f"cannot write {options.svg}: {error.strerror}") from None
    return result

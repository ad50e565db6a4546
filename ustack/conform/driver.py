"""Run a parsed script against ustack on virtual time.

The driver plays packetdrill's part: it walks the events in order, keeps the clock, injects the
`<` segments, runs the system calls through the socket emulation (syscalls.py), and checks every
segment ustack sends against the `>` lines (matcher.py).

The host under test is the real one, `ustack.stack.Stack`, as the TUN runtime drives it: every
`<` line becomes an IPv4 packet (built by ustack.wire) for `Stack.receive`, what
`Stack.transmit` returns is parsed back and matched, and time moves through
`Stack.next_deadline` / `Stack.on_timer`. So demultiplexing, the RST for the unmatched (RFC 9293
3.10.7.1), a SYN that reopens a TIME-WAIT 4-tuple (RFC 6191), ICMP and the ephemeral ports are
the host's own. The only policy given for scripts: a fixed ISN (every script expects our first
sequence number to be known) and a fixed port seed, so that a run is deterministic.

Time (packetdrill's rules, run.c): `0.1` is absolute; `+0.1` counts from when the previous event
actually happened, except that consecutive inbound packets count from the previous packet's
script time; `*` is whenever. An expected segment must be sent within the script's tolerance of
its time; a blocking call (`1.0...6.0`) must return within the tolerance of its end time.

Segments: everything the host sends goes into a queue with the time it was sent. A `>` line
takes the oldest one, advancing the clock (firing timers) until one appears; one that comes
outside the line's time +- the tolerance fails the script as late or early. Before any other
event at time T, a queued segment sent before T - tolerance is one the script did not expect: the
script fails. The same check runs at the end; what the last event itself makes ustack send comes
after the script and is not judged, as in packetdrill.

The network: one peer (the script) at 192.0.2.1:REMOTE_PORT; ustack at 192.168.0.1 with the
script's MTU (1500 unless `--mtu`). bind() gives port 8080, connect() an ephemeral port. Inbound
segments go to the port of the socket used last (packetdrill's "socket under test"), and only
that socket's segments are judged (under_test.py): those of an earlier socket or of another
connection are passed over with a warning, as packetdrill and the kernel backend do.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, deque

from ustack.conform.matcher import (
    SequenceMap,
    expected_text,
    flag_bits,
    inbound_segment,
    learn_from_outbound,
    match_outbound,
    segment_text,
)
from ustack.conform.profile import (
    FREEBSD_DEFAULTS,
    FREEBSD_RECEIVE_BUFFER_ROUNDING,
    MATCHER_TOLERANCES,
    SCRIPT_ADDRESSES,
    SOCKET_OPTIONS,
    Unsupported,
    apply_script_options,
    apply_sysctl,
    freebsd_receive_buffer,
    script_tolerances,
)
from ustack.conform.linux_profile import (
    LINUX_DEFAULTS, LINUX_FAST_OPEN_COOKIE, LINUX_SEGMENTATION_OFFLOAD, LINUX_TOLERANCES, apply_linux_sysctl,
    merge_offloaded,
)
from ustack.conform.result import FAIL, PASS, SKIPPED, Result
from ustack.conform.script import CodeEvent, PacketEvent, Script, ShellEvent, SyscallEvent, scheduled_window
from ustack.conform.shell import (
    TCPI_OPTION_BITS,
    AssertOptions,
    AssertState,
    CountStates,
    DropTimeWait,
    SetSysctl,
    LinuxSysctls,
    interpret_code,
    interpret_shell,
)
from ustack.conform.linux_calls import LinuxSocketTable
from ustack.conform.tcp_info import run_code_block, ustack_tcp_info
from ustack.conform.under_test import SocketUnderTest, Verdict
from ustack.conform.syscalls import Blocked, CallFailed, Outcome, SocketTable, check_outcome, errno_name
from ustack.stack import Stack, StackError
from ustack.tcp.config import TcpConfig
from ustack.tcp.connection import Connection
from ustack.tcp.isn import IsnGenerator
from ustack.tcp.listener import Listener
from ustack.tcp.options import TIMESTAMP_TICK_USECS
from ustack.tcp.state import CLOSED, LISTEN, TIME_WAIT
from ustack.conform.icmp_errors import icmp_error_packet
from ustack.wire import TcpSegment, WireError, build_tcp_packet, parse_packet
from ustack.wire.ipv4 import CE, ECT_0, ECT_1, NOT_ECT, address_value
from ustack.wire.ipv6 import address6_value
from ustack.wire.tcp import ACK, RST, SYN

# The ECN field of an IP header (RFC 3168 5) as packetdrill writes it: `[noecn]`, `[ect0]`...
ECN_FIELDS = {"noecn": NOT_ECT, "ect1": ECT_1, "ect0": ECT_0, "ce": CE}


LOCAL_ADDRESS = address_value(SCRIPT_ADDRESSES["local_ip"])
REMOTE_ADDRESS = address_value(SCRIPT_ADDRESSES["remote_ip"])
# packetdrill's defaults for --ip_version=ipv6 (its local and remote IPv6 addresses).
LOCAL_ADDRESS6 = address6_value("fd3d:fa7b:d17d::1")
REMOTE_ADDRESS6 = address6_value("2001:db8::1")
BIND_PORT = 8080
REMOTE_PORT = 50000
SCRIPT_MTU = 1500  # packetdrill's tun device, unless the script says --mtu
# Our ISN sits just below 2**32 so that every script also exercises sequence-number wrap.
LOCAL_ISN = 0xFFFF_FF00
# The stack's ephemeral ports start from a seeded point: the same ports on every run.
PORT_SEED = 0
# How far the clock may run while waiting for a segment or for a blocked call to return.
ANY_TIME_HORIZON = 600.0
_CONFIG_FIELDS = {field.name for field in dataclasses.fields(TcpConfig)}

class ScriptFailed(Exception):
    """The first thing that went differently from the script. `what` is a short stable name:
    a packet field (flags, seq, ack, win, urg, length, options) or timing, missing-segment,
    unexpected-segment, syscall, never-returned, state, options-in-use."""

    def __init__(self, line: int | None, what: str, reason: str, mismatch=None) -> None:
        super().__init__(reason)
        self.line = line
        self.what = what
        self.reason = reason
        self.mismatch = mismatch


def drive(script: Script, linux: bool = False) -> Result:
    """Run `script` with the FreeBSD profile, or the Linux one (linux_profile.py)."""
    driver = Driver(script, linux)
    try:
        driver.run()
    except ScriptFailed as failure:
        key = f"line {failure.line} {failure.what}"
        return Result(script.path, FAIL, failure.reason, failure.line, failure.mismatch, driver.warnings, key)
    except Unsupported as problem:
        return Result(script.path, SKIPPED, str(problem), driver.line, None, driver.warnings, problem.feature)
    return Result(script.path, PASS, "", None, None, driver.warnings)


class Driver:
    def __init__(self, script: Script, linux: bool = False) -> None:
        self.script = script
        self.tolerance = script.tolerance
        self.non_fatal_syscalls = script.options.get("non_fatal") == "syscall"
        self.script_tolerances = script_tolerances(script.path)
        self.now = 0.0
        self.line: int | None = None
        self.warnings: list[str] = []
        self.linux = linux
        self.overrides: dict = dict(LINUX_DEFAULTS if self.linux else FREEBSD_DEFAULTS)
        apply_script_options(script.options, self.overrides)
        self.table = LinuxSocketTable(self) if linux else SocketTable(self)
        # The family is the script's (--ip_version): the same host, the other pair of addresses.
        self.ipv6 = script.options.get("ip_version") == "ipv6"
        self.local_address = LOCAL_ADDRESS6 if self.ipv6 else LOCAL_ADDRESS
        self.remote_address = REMOTE_ADDRESS6 if self.ipv6 else REMOTE_ADDRESS
        if self.ipv6:  # the MSS FreeBSD starts from (and rounds its buffers to) leaves room for IPv6
            self.overrides["mss"] = min(self.overrides["mss"], int(script.options.get("mtu", SCRIPT_MTU)) - 60)
        self.stack = Stack(
            None if self.ipv6 else LOCAL_ADDRESS,
            address6=LOCAL_ADDRESS6 if self.ipv6 else None,
            mtu=int(script.options.get("mtu", SCRIPT_MTU)),
            isn_generator=IsnGenerator(fixed_isn=LOCAL_ISN,
                                       fixed_fast_open_cookie=LINUX_FAST_OPEN_COOKIE if linux else None),
            port_seed=PORT_SEED,
        )
        self.numbers: dict[tuple[int, int], SequenceMap] = {}  # (local port, remote port) -> numbers
        self.remote_isn: dict[tuple[int, int], int] = {}  # the ISN the script's SYN gave its side
        self.script_isn: dict[tuple[int, int], int] = {}  # the ISN the script wrote on our SYN
        # (time, (local port, remote port), segment, ECN field of its IP header) not yet matched
        self.sent: deque = deque()
        self.blocked: list = []  # (event, Blocked)
        self.current_port: int | None = None
        # packetdrill's socket under test: which of the segments ustack sends the script judges.
        self.under_test = SocketUnderTest()
        self.last_happened = 0.0  # when the previous event actually happened
        self.previous: object = None  # the previous event
        self.previous_time = 0.0  # its script time
        self.blocking_started: dict[int, float] = {}  # id(event) -> when a blocking call began
        self.code_variables: dict = {}  # what the script's `%{ }%` blocks defined, for the later ones

    # -- the host interface the socket emulation uses --------------------------------------------

    @property
    def receive_space(self) -> int:
        return self.overrides.get("receive_buffer_size", TcpConfig.receive_buffer_size)

    def make_config(self, socket) -> TcpConfig:
        values = dict(self.overrides)
        for name, value in socket.options.items():
            level, field_name, convert = SOCKET_OPTIONS[name]
            if field_name:
                if field_name not in _CONFIG_FIELDS:
                    raise Unsupported(f"socket option {name}", f"needs TcpConfig.{field_name}")
                values[field_name] = convert(value) if convert else value
        if FREEBSD_RECEIVE_BUFFER_ROUNDING and not self.linux:
            values["receive_buffer_size"] = freebsd_receive_buffer(values["receive_buffer_size"], values["mss"])
        missing = sorted(set(values) - _CONFIG_FIELDS)
        for name in missing:
            note = f"profile value {name}={values.pop(name)!r} not applied: TcpConfig has no such field"
            if note not in self.warnings:
                self.warnings.append(note)
        return TcpConfig(**values)

    def open_active(self, socket, config: TcpConfig, now: float, fast_open: bool = False) -> Connection:
        try:
            connection = self.stack.connect(self.remote_address, REMOTE_PORT, now, config=config, fast_open=fast_open)
        except StackError as refused:
            raise CallFailed(errno_name(refused.errno)) from None
        self.numbers[(connection.local_port, REMOTE_PORT)] = self._new_numbers()
        self.current_port = connection.local_port
        return connection

    def open_listener(self, socket, config: TcpConfig, backlog: int) -> Listener:
        try:
            listener = self.stack.listen(BIND_PORT, backlog=max(backlog, 1), config=config)
        except StackError as refused:
            raise CallFailed(errno_name(refused.errno)) from None
        # Fast Open (RFC 7413): the queue TCP_FASTOPEN set, or with Linux's tcp_fastopen 0x400
        # (linux_profile._fast_open) the listen() backlog, as Linux does.
        listener.fast_open_queue = socket.options.get("TCP_FASTOPEN") or (max(backlog, 1) if config.fast_open_queue else 0)
        self.current_port = BIND_PORT
        return listener

    def close_listener(self, listener: Listener, now: float) -> None:
        self.stack.close_listener(listener, now)

    def connection_at(self, port: int) -> Connection | None:
        """The connection on (our port, the script's port): the host's, else the one a socket
        still holds after the host forgot it (a closed connection shows as CLOSED)."""
        connection = self.stack.connections.get((self.local_address, port, self.remote_address, REMOTE_PORT))
        if connection is not None:
            return connection
        for socket in reversed(self.table.sockets.values()):
            held = socket.connection
            if not socket.closed and held is not None and held.local_port == port and held.remote_port == REMOTE_PORT:
                return held
        return None

    # -- the main loop -------------------------------------------------------------------------

    def run(self) -> None:
        for event in self.script.events:
            self.line = event.line
            if isinstance(event, PacketEvent) and event.direction == ">":
                self._expect_segment(event)
            else:
                self._run_event(event)
            self.previous = event
        self._finish_blocked()
        # What the last event itself makes ustack send comes after the script's end and is not
        # judged (packetdrill stops there too); anything older than the tolerance is.
        self._check_unexpected(self.now)

    def _scheduled(self, event) -> tuple[float | None, float | None]:
        """The (earliest, latest) script time of an event; (None, None) for `*`."""
        return scheduled_window(event, self.previous, self.now, self.previous_time, self.last_happened)

    def _run_event(self, event) -> None:
        start, _ = self._scheduled(event)
        if start is None:
            start = self.now
        if start > self.now:
            self._advance_to(start)
        if isinstance(event, SyscallEvent) and event.name == "socket":
            # The new socket is under test from here: what the earlier ones sent, also a segment
            # that would be late for the script by now, is not judged (under_test.py), as in
            # packetdrill and the kernel backend.
            self.under_test.socket_created()
        self._check_unexpected(start)
        self.previous_time = start
        self.last_happened = self.now
        if isinstance(event, PacketEvent):
            self._inject(event)
        elif isinstance(event, SyscallEvent):
            self._syscall(event)
        elif isinstance(event, ShellEvent):
            self._shell(event)
        elif isinstance(event, CodeEvent):
            self._code(event)
        self._collect()
        self._poll_blocked()

    # -- time ------------------------------------------------------------------------------------

    def _next_deadline(self) -> float | None:
        """The host's next timer, or the timeout of a blocked call."""
        deadlines = [self.stack.next_deadline()] + [blocked.deadline for _, blocked in self.blocked]
        deadlines = [deadline for deadline in deadlines if deadline is not None]
        return min(deadlines) if deadlines else None

    def _step(self, limit: float) -> bool:
        """Fire the timers due next if that is no later than `limit`; False if none is."""
        deadline = self._next_deadline()
        if deadline is None or deadline > limit:
            return False
        self.now = max(self.now, deadline)
        self.stack.on_timer(self.now)
        self._collect()
        self._poll_blocked()
        return True

    def _advance_to(self, target: float) -> None:
        steps = 0
        while self._step(target):
            steps += 1
            if steps > 100000:
                raise ScriptFailed(self.line, "timers", "timers keep firing without the clock moving on")
        self.now = max(self.now, target)
        self._poll_blocked()

    # -- segments --------------------------------------------------------------------------------

    def _collect(self) -> None:
        """Queue what the host transmits now, as segments keyed by (our port, the script's)."""
        batch = len(self.sent)  # segments queued from here on were sent together
        for packet in self.stack.transmit(self.now):
            parsed = parse_packet(packet)
            segment = parsed.tcp
            if segment is None:  # ICMP from ustack: no script line can expect it (runner.py)
                self.warnings.append(f"at {self.now:.3f} s ustack sent a packet that is not TCP")
                continue
            key = (segment.src_port, segment.dst_port)
            if self.linux and LINUX_SEGMENTATION_OFFLOAD and len(self.sent) > batch and self.sent[-1][1] == key:
                merged = merge_offloaded(self.sent[-1][2], segment)
                if merged is not None:
                    self.sent[-1] = (self.now, key, merged, self.sent[-1][3])
                    continue
            self.sent.append((self.now, key, segment, parsed.ip.ecn))
        self.stack.events()  # nothing here reads them; drained so they do not pile up

    def _poke_sockets(self) -> None:
        """After system calls: tell the host which connections they may have given output or
        new timers, as the runtime does after a user call (Stack.poke)."""
        for socket in self.table.sockets.values():  # closed ones too: close() itself sends a FIN
            if socket.connection is not None:
                self.stack.poke(socket.connection)

    def _numbers_for(self, key) -> SequenceMap:
        numbers = self.numbers.get(key)
        if numbers is None:
            numbers = self.numbers[key] = self._new_numbers()
        return numbers

    def _new_numbers(self) -> SequenceMap:
        numbers = SequenceMap()
        tick = self.script.options.get("tcp_ts_tick_usecs")
        if tick is not None:  # check our TSvals, within the timing tolerance and a tick of each clock
            numbers.ts_tick_usecs = int(tick)
            numbers.ts_slack_usecs = round(self.tolerance * 1e6) + int(tick) + TIMESTAMP_TICK_USECS
        return numbers

    def _remote_numbering(self, event: PacketEvent, numbers: SequenceMap, key) -> None:
        """packetdrill's numbering of the script's side (kernel_backend._set_remote_offset): on a
        SYN or SYN-ACK line its numbers are as written, on every other line they count from the
        ISN its SYN wrote (the Fast Open client scripts answer with `S. 123:123(0)`), and ours
        from the ISN written on our SYN or SYN-ACK (`S. 1234:1234(0)`, then `ack 1`). The Linux
        scripts only: the FreeBSD suite and our own scripts write absolute numbers."""
        if not self.linux:
            return
        syn = bool(flag_bits(event.flags) & SYN)
        if syn:
            (self.remote_isn if event.direction == "<" else self.script_isn)[key] = event.seq_start
        numbers.remote_offset = 0 if syn else self.remote_isn.get(key, 0)
        if numbers.local_isn_known:  # ours likewise, from the ISN the script wrote on our SYN
            numbers.local_isn_script = self.script_isn.get(key, 0) if syn else 0

    def _pass_over_others(self) -> bool:
        """Drop the queued segments the script does not judge (those of an earlier socket or of
        another connection, under_test.py), each with a warning; True if one it judges is next."""
        while self.sent:
            when, key, segment, _ = self.sent[0]
            verdict = self.under_test.judge(segment.flags, key, (self.current_port or BIND_PORT, REMOTE_PORT))
            if verdict is Verdict.OPENS:
                self.current_port = key[0]
            if not verdict.passed_over:
                return True
            self.sent.popleft()
            self.warnings.append(f"at {when:.3f} s passed over a segment {verdict.value}: "
                                 f"{key[0]} > {key[1]} {segment_text(segment, self._numbers_for(key))}")
        return False

    def _check_unexpected(self, before: float) -> None:
        """Fail on a queued segment sent more than the tolerance before `before`."""
        while self._pass_over_others() and self.sent[0][0] < before - self.tolerance:
            when, key, segment, _ = self.sent[0]
            if segment.flags & RST and "unlisted_reset" in self.script_tolerances:
                self.sent.popleft()
                self.warnings.append(f"tolerance unlisted_reset: {segment_text(segment, self._numbers_for(key))}")
                continue
            text = segment_text(segment, self._numbers_for(key))
            reason = f"ustack sent a segment the script does not expect, at {when:.3f} s: {text}"
            raise ScriptFailed(self.line, "unexpected-segment", reason)

    def _expect_segment(self, event: PacketEvent) -> None:
        earliest, latest = self._scheduled(event)
        # Wait past the line's time if need be: a segment that comes late is reported as late.
        while not self._pass_over_others():
            if not self._step(self.now + ANY_TIME_HORIZON):
                reason = f"ustack sent nothing; the script expects {expected_text(event)}"
                raise ScriptFailed(event.line, "missing-segment", reason)
        when, key, segment, ecn = self.sent.popleft()
        if earliest is not None and not (earliest - self.tolerance <= when <= latest + self.tolerance):
            raise ScriptFailed(
                event.line,
                "timing",
                f"timing: the segment came at {when:.3f} s, the script expects it at {earliest:.3f} s "
                f"(tolerance {self.tolerance:.3f} s): {segment_text(segment, self._numbers_for(key))}",
            )
        numbers = self._numbers_for(key)
        self._remote_numbering(event, numbers, key)
        learn_from_outbound(event, segment, numbers)
        tolerances = MATCHER_TOLERANCES | LINUX_TOLERANCES.keys() if self.linux else MATCHER_TOLERANCES
        mismatch = match_outbound(event, segment, numbers, tolerances)
        if mismatch is not None:
            raise ScriptFailed(event.line, mismatch.field, mismatch.reason, mismatch)
        for name, _ in event.ip_info:  # `>[ect0]`: the ECN field of the IP header (RFC 3168 5)
            if ECN_FIELDS[name] != ecn:
                got = next(field for field, value in ECN_FIELDS.items() if value == ecn)
                reason = f"ECN field: the script expects [{name}], ustack sent [{got}]: {segment_text(segment, numbers)}"
                raise ScriptFailed(event.line, "ecn", reason)
        for name, what in numbers.tolerances_used:
            self.warnings.append(f"line {event.line}: tolerance {name}: {what}")
        numbers.tolerances_used.clear()
        self.previous_time = earliest if earliest is not None else when
        self.last_happened = when

    def _inject(self, event: PacketEvent) -> None:
        port = self.current_port or BIND_PORT
        numbers = self._numbers_for((port, REMOTE_PORT))
        if event.icmp is not None:
            self._inject_icmp(event, port, numbers)
            return
        self.under_test.script_sent()
        self._remote_numbering(event, numbers, (port, REMOTE_PORT))
        segment = inbound_segment(event, numbers, REMOTE_PORT, port)
        try:
            ecn = next((ECN_FIELDS[name] for name, _ in event.ip_info), 0)  # `<[ce]` and the like
            packet = build_tcp_packet(self.remote_address, self.local_address, segment, tos=ecn)
        except WireError as error:
            raise Unsupported("inbound segment", f"line {event.line} cannot be put on the wire: {error}") from None
        four_tuple = (self.local_address, port, self.remote_address, REMOTE_PORT)
        before = self.stack.connections.get(four_tuple)
        self.stack.receive(packet, self.now)
        after = self.stack.connections.get(four_tuple)
        if after is not None and after is not before:  # a listener made a new incarnation
            numbers.local_isn_live = numbers.local_isn_script = None

    def _inject_icmp(self, event: PacketEvent, port: int, numbers: SequenceMap) -> None:
        """An ICMP or ICMPv6 error quoting one of our segments (icmp_errors.py), for the host to
        hand to the connection or drop for a named reason."""
        icmp, kind = event.icmp, "ICMPv6" if self.ipv6 else "ICMP"
        packet = None
        if icmp.echoed_start is not None:
            quoted = TcpSegment(port, REMOTE_PORT, numbers.local_to_live(icmp.echoed_start), 0, ACK, 0)
            packet = icmp_error_packet(icmp, quoted, self.local_address, self.remote_address)
        if packet is None:
            self.warnings.append(f"line {event.line}: {kind} {icmp.type} not sent: no such error type or no quoted segment")
            return
        drops_before = Counter(self.stack.drops)
        self.stack.receive(packet, self.now)
        for reason in self.stack.drops - drops_before:
            self.warnings.append(f"line {event.line}: {kind} {icmp.type} dropped by the host: {reason}")

    # -- system calls, shell, code -----------------------------------------------------------------

    def _syscall(self, event: SyscallEvent) -> None:
        if self.blocked:  # one system call at a time, as packetdrill's syscall thread
            self._finish_blocked()
        self.blocking_started[id(event)] = self.now
        outcome = self.table.call(event, self.now)
        self._poke_sockets()
        if isinstance(outcome, Blocked):
            self.blocked.append((event, outcome))
            self._poll_blocked()
            if self.blocked and (event.time is None or event.time.kind != "blocking"):
                # A call the script writes without `...` must return at once: the kernel backend
                # (and packetdrill) fail one that blocks.
                self.blocked.clear()
                raise ScriptFailed(event.line, "syscall", f"{event.name} blocked; the script expects it to return")
            return
        self._check_returned(event, outcome, self.now)

    def _check_returned(self, event: SyscallEvent, outcome: Outcome, when: float) -> None:
        problem = check_outcome(event, outcome)
        if problem is None and event.time is not None and event.time.kind == "blocking":
            end = self.blocking_started[id(event)] + (event.time.end - event.time.start)
            if abs(when - end) > self.tolerance:
                problem = f"{event.name} returned at {when:.3f} s, the script expects {end:.3f} s"
        if problem is None:
            return
        if self.non_fatal_syscalls:
            self.warnings.append(f"line {event.line}: {problem}")
            return
        raise ScriptFailed(event.line, "syscall", problem)

    def _poll_blocked(self) -> None:
        still = []
        for event, blocked in self.blocked:
            outcome = blocked.retry(self.now)
            if outcome is None:
                still.append((event, blocked))
            else:
                self._check_returned(event, outcome, self.now)
        retried = bool(self.blocked)
        self.blocked = still
        if retried:  # the call may have read or written data: a window update or data can be due (Stack.poke)
            self._poke_sockets()
            self._collect()

    def _finish_blocked(self) -> None:
        """Run the clock until the blocked call returns (or give up after the horizon)."""
        limit = self.now + ANY_TIME_HORIZON
        self._poll_blocked()
        while self.blocked:
            if not self._step(limit):
                event = self.blocked[0][0]
                raise ScriptFailed(event.line, "never-returned", f"{event.name} never returned")

    def _shell(self, event: ShellEvent) -> None:
        action = interpret_shell(event.command)
        if isinstance(action, SetSysctl):
            apply_sysctl(action.name, action.value, self.overrides)
        elif isinstance(action, CountStates):
            if action.state is CLOSED:
                # The host forgets a CLOSED connection at once; its socket, and a socket that never
                # had a connection, still shows as CLOSED.
                count = sum(
                    1
                    for socket in self.table.sockets.values()
                    if not socket.closed and socket.listener is None and (
                        socket.connection is None
                        or socket.connection.state is CLOSED and action.port in (None, socket.connection.local_port)
                    )
                )
            else:
                count = sum(
                    1
                    for (_, port, _, _), connection in self.stack.connections.items()
                    if connection.state is action.state and (action.port is None or port == action.port)
                )
            if count != action.count:
                reason = f"{count} connections in {action.state.value} where the script expects {action.count}"
                raise ScriptFailed(event.line, "state", reason)
        elif isinstance(action, LinuxSysctls):
            for name, value in action.settings:
                apply_linux_sysctl(name, value, self.overrides)
            if action.flush_metrics:  # the Fast Open cookie and MSS cached for the script's peer
                self.stack.fast_open_cookies.forget(self.remote_address)
        elif isinstance(action, DropTimeWait):
            # tcpdrop: ABORT in TIME-WAIT deletes the TCB without a reset (RFC 9293 3.10.5).
            for connection in list(self.stack.connections.values()):
                if connection.state is TIME_WAIT:
                    connection.abort(self.now)
                    self.stack.poke(connection)

    def _code(self, event: CodeEvent) -> None:
        port = self.current_port or BIND_PORT
        connection = self.connection_at(port)
        if self.linux:  # Python against TCP_INFO, as packetdrill runs it (tcp_info.py)
            listening = connection is None and (0, port) in self.stack.listeners
            problem = run_code_block(
                event.code, ustack_tcp_info(connection, listening), self.code_variables,
                f"{self.script.path}:{event.line}", lambda text: self.warnings.append(f"line {event.line}: {text}"),
            )
            if problem:
                raise ScriptFailed(event.line, "code", problem)
            return
        check = interpret_code(event.code)
        if isinstance(check, AssertState):
            if connection is not None:
                state = connection.state
            elif (0, port) in self.stack.listeners:
                state = LISTEN
            else:
                state = CLOSED
            if state is not check.state:
                reason = f"the connection is in {state.value} where the script expects {check.state.value}"
                raise ScriptFailed(event.line, "state", reason)
        elif isinstance(check, AssertOptions):
            bits = 0  # FreeBSD's TCPI_OPT_* bits of what the SYNs negotiated (shell.TCPI_OPTION_BITS)
            if connection is not None:
                bits |= TCPI_OPTION_BITS["TCPI_OPT_TIMESTAMPS"] if connection.timestamps_enabled else 0
                bits |= TCPI_OPTION_BITS["TCPI_OPT_SACK"] if connection.sack_permitted else 0
                bits |= TCPI_OPTION_BITS["TCPI_OPT_WSCALE"] if connection.window_scaling_enabled else 0
                bits |= TCPI_OPTION_BITS["TCPI_OPT_ECN"] if connection.ecn is not None else 0
            if bits != check.bits:
                reason = f"tcpi_options is {bits:#x} where the script expects {check.bits:#x}"
                raise ScriptFailed(event.line, "options-in-use", reason)

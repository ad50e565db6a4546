"""Run a parsed script against the Linux kernel, as packetdrill does: the second backend of conform/.

    result = drive_kernel(script, tolerance=None)   # a Result, as driver.drive gives for ustack

Each script gets a network namespace of its own (always removed, also on Ctrl-C: Namespace
closes under signals_held) in which a TUN device named tun0 (the name the suite's defaults.sh
configures) plays the remote host, with packetdrill's addresses: the kernel 192.168.0.1, the peer
192.0.2.1 (driver.LOCAL_ADDRESS / REMOTE_ADDRESS), or over IPv6 LOCAL_ADDRESS6 / REMOTE_ADDRESS6.

* `<` lines are built with ustack.wire (numbers mapped by matcher.inbound_segment) and written
  into the TUN device; the kernel receives them as from the wire.
* What the kernel sends is stamped with the kernel's own time of sending (kernel_tap.py, a packet
  socket on tun0, as packetdrill); a `>` line takes the oldest and matches it. As packetdrill's,
  the device has TSO and checksum offload on, so a 2000-byte burst is one segment, as the scripts
  expect, and its TCP checksum is completed here (kernel_tap.fill_tcp_checksum).
* System calls run on real sockets inside the namespace (kernel_syscalls): as in packetdrill, on
  this thread, which enters the namespace for the run, except blocking (`...`) ones, which go to a
  syscall thread (kernel_thread). The run is a real-time task unless told otherwise
  (kernel_thread.realtime_scheduling), so that a busy machine does not delay it past 4 ms.
* Backquoted shell lines run inside the namespace (`ip netns exec`), from the script's directory.

Time is real time, with packetdrill's rules (run.c): an event at script time T happens at T; `+x`
counts from when the previous event really happened (consecutive inbound packets: from the
previous one's time): a segment when the kernel sent it, a blocking call when it returned, one that
does not block when it started, an inbound packet when it was written, a code block when it read
tcp_info; not when this thread got round to it. A `>` segment must come within the tolerance:
packetdrill's 4 ms, or the script's --tolerance_usecs or the run's, or 12.5 % of the time since
the previous event if more. As in packetdrill, a segment no line expects is noticed only when the
next `>` line meets it.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import queue
import subprocess
import sys
import time
from pathlib import Path

from ustack.conform.driver import (
    BIND_PORT,
    LOCAL_ADDRESS,
    REMOTE_ADDRESS,
    REMOTE_PORT,
    ScriptFailed,
)
from ustack.conform.kernel_syscalls import LINUX_CONSTANTS, KernelCalls, tcp_info
from ustack.conform.kernel_thread import CallBlocked, SyscallThread, network_namespace_entered, realtime_scheduling
from ustack.conform.kernel_thread import run_inline, time_limit
from ustack.conform.kernel_tap import TunReader, fill_tcp_checksum, open_packet_tap
from ustack.conform.matcher import SequenceMap, expected_text, inbound_segment, learn_from_outbound, match_outbound
from ustack.conform.matcher import segment_text
from ustack.conform.profile import FREEBSD, Unsupported, linux_command_for_freebsd_sysctl, script_profile
from ustack.conform.shell import SetSysctl, interpret_shell
from ustack.conform.raw_options import RAW_OPTIONS, add_options, compare_options_length, raw_option_bytes
from ustack.conform.ip_fields import build_arguments, compare_ip_fields
from ustack.conform.lexer import ParseError
from ustack.conform.outbound_checks import ts_val_problem, window_agnostic
from ustack.conform.parser import parse_file
from ustack.conform.result import ERROR, FAIL, PASS, SKIPPED, Result
from ustack.conform.script import CodeEvent, PacketEvent, Script, ShellEvent, SyscallEvent, scheduled_window
from ustack.conform.syscalls import check_outcome
from ustack.conform.icmp_errors import ICMP_TYPES, ICMP_UNREACHABLE_CODES, icmp_error_packet
from ustack.conform.under_test import SocketUnderTest, Verdict
from ustack.conform.tcp_info import TCP_INFO_NAMES  # the names a `%{ }%` block compares tcp_info with
from ustack.link.tun import TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUNSETOFFLOAD
from ustack.netns import Namespace, setup_tun_in_namespace
from ustack.wire import TcpSegment, WireError, build_tcp_packet, parse_packet
from ustack.wire.ipv4 import address_text, address_value
from ustack.wire.tcp import ACK, SYN

LOCAL_PREFIX = 16  # packetdrill's 192.168.0.0/16 on the device: the script's --local_ip may be any of it
# --ip_version=ipv6: packetdrill's IPv6 network (config.c): the kernel in the unique local prefix
# fd3d:fa7b:d17d::/48 (RFC 4193; packetdrill picks a random address in it, we take ::1), the peer
# 2001:db8::1 of the documentation prefix (RFC 3849). Like the IPv4 ones, they exist only in the
# namespace.
LOCAL_ADDRESS6, LOCAL_PREFIX6 = "fd3d:fa7b:d17d::1", 48
REMOTE_ADDRESS6 = "2001:db8::1"
TUN_NAME = "tun0"  # the name packetdrill gives its device, which the suite's defaults.sh configures
TUN_OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN  # what packetdrill asks for
# How long a system call without `...` may take before the script fails: packetdrill's calls that
# should not block return at once; one that blocks is an error in the script, not a hang.
NONBLOCKING_CALL_LIMIT = 2.0
# How long after the script's time a `>` line waits for its segment before giving up: past the
# tolerance the segment is late anyway, but waiting a little longer shows what came instead.
MISSING_SEGMENT_WAIT = 0.5
SHELL_TIMEOUT = 30.0
SPIN_TIME = 0.002

# tcp_ts_ecr_scaled: packetdrill then maps an inbound TS ecr it cannot pair with a TS val we sent
# by the offset between the two clocks, which is what matcher.py always does.
KERNEL_SCRIPT_OPTIONS = ("ip_version", "tolerance_usecs", "tolerance_percent", "mtu", "non_fatal",
                         "strict_segments", "local_ip", "remote_ip", "tcp_ts_ecr_scaled", "tcp_ts_tick_usecs")
DEFAULT_TOLERANCE_PERCENT = 12.5  # packetdrill's config.c
UNSUPPORTED_OPTIONS = {"md5": "the kernel's TCP MD5 signatures (RFC 2385) are not checked"}  # on `>` lines

_namespace_counter = 0


def namespace_name() -> str:
    """A name of our own for each run: the PID keeps parallel runs apart."""
    global _namespace_counter
    _namespace_counter += 1
    return f"ust-drill-{os.getpid()}-{_namespace_counter}"


def run_kernel_path(path: str | Path, defines: frozenset[str], tolerance: float | None = None,
                    realtime: bool = True, ignore_window: bool = False) -> Result:
    """Parse and run one file against the kernel; a parse error is a result ("error").
    `realtime`: run on the real-time scheduling class (kernel_thread.realtime_scheduling).
    `ignore_window`: see window_agnostic."""
    try:
        script = parse_file(path, defines)
    except ParseError as error:
        return Result(str(path), ERROR, error.message, error.line, key=f"line {error.line} parse")
    found = find_kernel_unsupported(script)
    if found is not None:
        problem, line = found
        return Result(script.path, SKIPPED, str(problem), line, key=problem.feature)
    with realtime_scheduling(realtime):
        return drive_kernel(script, tolerance, ignore_window)


def find_kernel_unsupported(script: Script) -> tuple[Unsupported, int | None] | None:
    """The first thing in `script` this backend cannot do, before anything runs (so that a
    script is skipped, not half run); None if there is none."""
    for name, value in script.options.items():
        if name not in KERNEL_SCRIPT_OPTIONS:
            return Unsupported(f"--{name}", "not supported by the kernel backend"), None
        if name == "ip_version" and value not in ("ipv4", "ipv6"):
            return Unsupported(f"--ip_version={value}", "IPv4 or IPv6 only"), None
        if name in ("local_ip", "remote_ip"):
            version = 6 if script.options.get("ip_version") == "ipv6" else 4
            try:
                ipaddress.IPv6Address(value) if version == 6 else ipaddress.IPv4Address(value)
            except ValueError:
                return Unsupported(f"--{name}", f"{value} is not an IPv{version} address"), None
    for event in script.events:
        problem = None
        if isinstance(event, SyscallEvent) and not hasattr(KernelCalls, f"_{event.name}"):
            problem = Unsupported(f"syscall {event.name}", "not in kernel_syscalls.py")
        elif isinstance(event, PacketEvent):
            if event.icmp is not None and (event.direction == ">" or event.icmp.type not in ICMP_TYPES):
                problem = Unsupported("icmp", "ICMP from the kernel, or an ICMP type icmp_errors.py does not name")
            elif event.icmp is not None and event.icmp.code and event.icmp.code not in ICMP_UNREACHABLE_CODES:
                problem = Unsupported("icmp", f"ICMP code {event.icmp.code}")
            elif event.udp_ports is not None:
                problem = Unsupported("tcp_over_udp", "TCP encapsulated in UDP")
            else:
                for option in event.options or ():
                    if option.name in UNSUPPORTED_OPTIONS and event.direction == ">":
                        problem = Unsupported(f"tcp option {option.name}", UNSUPPORTED_OPTIONS[option.name])
                    elif option.name in RAW_OPTIONS and event.direction == "<":
                        try:
                            raw_option_bytes(option)
                        except Unsupported as error:
                            problem = error
        if problem is not None:
            return problem, event.line
    return None


def drive_kernel(script: Script, tolerance: float | None = None, ignore_window: bool = False) -> Result:
    driver = KernelDriver(script, tolerance, ignore_window)
    # Three threads share the interpreter (packets, system calls, the script); Python's default
    # 5 ms switch interval would add up to 5 ms to every time stamp, more than the tolerance.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    try:
        with Namespace(namespace_name()) as namespace:
            driver.run(namespace)
    except ScriptFailed as failure:
        key = f"line {failure.line} {failure.what}"
        return Result(script.path, FAIL, failure.reason, failure.line, failure.mismatch, driver.warnings, key)
    except Unsupported as problem:
        return Result(script.path, SKIPPED, str(problem), driver.line, None, driver.warnings, problem.feature)
    finally:
        sys.setswitchinterval(switch_interval)
    return Result(script.path, PASS, "", None, None, driver.warnings)


class KernelDriver:
    def __init__(self, script: Script, tolerance: float | None = None, ignore_window: bool = False) -> None:
        self.script = script
        self.ignore_window = ignore_window
        self.tolerance = script.tolerance if tolerance is None else max(tolerance, script.tolerance)
        self.non_fatal_syscalls = script.options.get("non_fatal") == "syscall"
        self.tolerance_percent = float(script.options.get("tolerance_percent") or DEFAULT_TOLERANCE_PERCENT)
        # packetdrill's --local_ip/--remote_ip; by default driver.py's (packetdrill's own) addresses.
        self.version = 6 if script.options.get("ip_version") == "ipv6" else 4
        if self.version == 6:  # ustack.wire's IPv6 addresses are 16 bytes
            self.local_address = ipaddress.IPv6Address(script.options.get("local_ip") or LOCAL_ADDRESS6).packed
            self.remote_address = ipaddress.IPv6Address(script.options.get("remote_ip") or REMOTE_ADDRESS6).packed
        else:
            self.local_address = address_value(script.options.get("local_ip") or address_text(LOCAL_ADDRESS))
            self.remote_address = address_value(script.options.get("remote_ip") or address_text(REMOTE_ADDRESS))
        self.directory = str(Path(script.path).resolve().parent)
        self.line: int | None = None
        self.warnings: list[str] = []
        self.numbers: dict[int, SequenceMap] = {}  # our port -> the connection's numbers
        # Keyed by (our port, the peer's port): one entry per connection.
        self.remote_isn: dict[tuple[int, int], int] = {}  # the ISN the script's SYN gave the peer
        self.script_isn: dict[tuple[int, int], int] = {}  # the ISN the script wrote on our SYN
        # The peer's port: packetdrill gives every new connection to a listener a port of its own,
        # so that a second connection is not taken for the first (still in TIME-WAIT, say).
        self.remote_port = REMOTE_PORT
        self.passive_opens = 0
        self.listening = False  # listen() or accept() was called since the last SYN to the listener
        # packetdrill's socket under test: which of the kernel's segments the script judges.
        self.under_test = SocketUnderTest()
        self.start = 0.0
        # packetdrill's run.c adjust_relative_event_times: `+x` counts from when the previous
        # event was done (its call returned, its segment was matched), except that consecutive
        # inbound packets count from the previous one's scheduled time, so they keep their spacing.
        self.previous_time = 0.0  # when the previous event was done
        self.previous_scheduled = 0.0  # the time it was scheduled for
        self.previous = None
        self.blocked = None  # (event, job, start) of a `...` call still running
        self.happened_at: float | None = None  # when the last call returned / packet went in
        self.namespace: Namespace | None = None
        self.calls: KernelCalls | None = None
        self.syscall_thread: SyscallThread | None = None  # for the blocking (`...`) calls
        self.reader: TunReader | None = None
        self.link = None
        self.last_raw = b""  # the last packet read from the device, for the options ustack.wire skips
        self.last_sent_seq: dict[tuple[int, int], int] = {}  # what an ICMP error without a quote quotes
        # --tcp_ts_tick_usecs=N: our TS val is checked as a clock of N us a tick (0: not checked).
        self.ts_tick = int(script.options.get("tcp_ts_tick_usecs") or 0) / 1e6
        self.first_ts: dict[tuple[int, int], tuple[int, int]] = {}  # (script TS val, live TS val)

    def now(self) -> float:
        return time.monotonic() - self.start

    # -- set-up and the main loop -------------------------------------------------------------

    def run(self, namespace: Namespace) -> None:
        self.namespace = namespace
        mtu = int(self.script.options.get("mtu", 1500))
        local, remote = address_text(self.local_address), address_text(self.remote_address)
        addresses = (dict(host_address=None, peer_address=None, host_address6=f"{local}/{LOCAL_PREFIX6}",
                          peer_address6=remote) if self.version == 6 else
                     dict(host_address=f"{local}/{LOCAL_PREFIX}", peer_address=remote))
        self.link = setup_tun_in_namespace(namespace, TUN_NAME, mtu, **addresses,
                                           offload=False)  # packets without a vnet header, as packetdrill's device
        fcntl.ioctl(self.link.fileno(), TUNSETOFFLOAD, TUN_OFFLOADS)
        self.start = time.monotonic()
        try:  # packetdrill's way of timing what the kernel sends (kernel_tap.py)
            tap = open_packet_tap(f"/run/netns/{namespace.name}", TUN_NAME)
        except OSError as error:
            tap = None
            self.warnings.append(f"no packet tap on {TUN_NAME} ({error}): packets are timed when read")
        self.reader = TunReader(self.link.fileno(), self.now, tap)
        self.calls = KernelCalls(self.local_address, BIND_PORT, self.remote_address, REMOTE_PORT)
        # This thread makes the script's calls itself (kernel_thread.py), inside the namespace.
        with network_namespace_entered(f"/run/netns/{namespace.name}"):
            self.syscall_thread = SyscallThread(self.calls, self.now)
            self._run_events()

    def _run_events(self) -> None:
        try:
            events = list(self.script.events)
            while events and isinstance(events[0], ShellEvent) and events[0].time is None:
                self.line = events[0].line
                self._shell(events.pop(0))  # set-up (defaults.sh) before the clock starts
            self.start = time.monotonic()
            for event in events:
                self.line = event.line
                if isinstance(event, PacketEvent) and event.direction == ">":
                    self._expect_segment(event)
                else:
                    self._run_event(event)
                self.previous = event
            self._finish_blocked()
        finally:
            self.calls.close_all()
            self.syscall_thread.stop()
            self.reader.stop()

    def _scheduled(self, event) -> tuple[float | None, float | None]:
        """The (earliest, latest) script time of an event; (None, None) for `*` (script.py's rules)."""
        now = self.now()
        return scheduled_window(event, self.previous, now, self.previous_scheduled, self.previous_time)

    def _run_event(self, event) -> None:
        start, _ = self._scheduled(event)
        if start is not None:
            # As packetdrill (run.c wait_for_event): sleep until just before, then spin, since a
            # sleeping thread wakes up a scheduler tick late on a busy machine.
            delay = start - self.now()
            if delay > SPIN_TIME:
                time.sleep(delay - SPIN_TIME)
            while self.now() < start:
                pass
        if isinstance(event, PacketEvent):
            self._inject(event)
        elif isinstance(event, SyscallEvent):
            self._syscall(event, start)
        elif isinstance(event, ShellEvent):
            self._shell(event)
        elif isinstance(event, CodeEvent):
            self.happened_at = self.now()  # the moment tcp_info is taken, as packetdrill
            self._code(event)
        self.previous_scheduled = start if start is not None else self.now()
        # When the event really happened: a call's own return time, stamped by the syscall thread,
        # or the moment an inbound packet went into the device (the kernel answers within the
        # write), not when this thread got round to looking (a wake-up later on a busy machine).
        done, self.happened_at = self.happened_at, None
        self.previous_time = done if done is not None else self.now()

    # -- packets ---------------------------------------------------------------------------------

    def _numbers_for(self, port: tuple[int, int]) -> SequenceMap:
        return self.numbers.setdefault(port, SequenceMap())

    @property
    def port(self) -> int:
        return self.calls.current_port or BIND_PORT

    @property
    def connection(self) -> tuple[int, int]:
        """(our port, the peer's port) of the connection under test: on the listener's port the
        peer's port of the latest passive open, else the port connect() went to."""
        return (self.port, self.remote_port if self.port == BIND_PORT else REMOTE_PORT)

    def _inject(self, event: PacketEvent) -> None:
        if event.icmp is not None:
            self._inject_icmp(event)
            return
        # The script talks to the new socket now (a SYN to it listening, a segment to it closed):
        # what the kernel answers is for it.
        self.under_test.script_sent()
        if "S" in event.flags and "." not in event.flags and self.port == BIND_PORT and self.listening:
            if self.passive_opens:
                self.remote_port += 1
            self.passive_opens += 1
            self.listening = False  # a repeated SYN is the same connection's
        key = self.connection
        numbers = self._numbers_for(key)
        if "S" in event.flags and event.seq_start is not None:
            self.remote_isn[key] = event.seq_start
        self._set_remote_offset(numbers, key, "S" in event.flags)
        segment = inbound_segment(event, numbers, key[1], key[0])
        try:
            packet = build_tcp_packet(self.remote_address, self.local_address, segment,
                                      **build_arguments(event.ip_info))
        except WireError as error:
            raise Unsupported("inbound segment", f"line {event.line} cannot be put on the wire: {error}") from None
        # ustack.wire builds the Fast Open option itself (from matcher.inbound_segment); an md5
        # option, which it does not model, is added to the built packet.
        if self.version == 6 and any(option.name == "md5" for option in event.options or ()):
            raise Unsupported("tcp option over ipv6", "an md5 option is added to IPv4 packets only")
        extra = b"".join(raw_option_bytes(option) for option in event.options or () if option.name == "md5")
        if extra:
            packet = add_options(packet, extra)
        self.happened_at = self.now()  # see _run_event
        os.write(self.link.fileno(), packet)

    def _inject_icmp(self, event: PacketEvent) -> None:
        """An ICMP error from the peer quoting our segment (RFC 792: its IP header and first 8
        bytes of TCP): the one the line names in `[start:end(length)]`, else our last one."""
        icmp = event.icmp
        if self.version == 6:
            raise Unsupported("icmpv6", "ICMPv6 messages to the kernel are not built")
        key = self.connection
        numbers = self._numbers_for(key)
        if icmp.echoed_start is not None:
            self._set_remote_offset(numbers, key, False)
            seq = numbers.local_to_live(icmp.echoed_start)
        else:
            seq = self.last_sent_seq.get(key, 0)
        quoted = TcpSegment(key[0], key[1], seq, 0, ACK, 0)
        packet = icmp_error_packet(icmp, quoted, self.local_address, self.remote_address)
        if packet is None:
            self.warnings.append(f"line {event.line}: ICMP {icmp.type} not sent: no such error type")
            return
        os.write(self.link.fileno(), packet)

    def _next_segment(self, wait_until: float):
        """The oldest packet the kernel sent on the connection under test, as (arrival time,
        packet); None if none by then. As in packetdrill (sniff_outbound_live_packet), packets of
        other connections (a socket the script closed and no longer follows) are passed over,
        and a SYN from a new port is a connect() starting: it becomes the connection under test."""
        while True:
            try:
                when, packet = self.reader.packets.get(timeout=max(0.0, wait_until - self.now()))
            except queue.Empty:
                return None
            if packet[0] >> 4 != self.version:
                continue  # the other family: nothing of the script's (it is off on the device anyway)
            try:
                parsed = parse_packet(fill_tcp_checksum(packet))
            except WireError as error:
                self.warnings.append(f"at {when:.3f} s the kernel sent a packet we cannot parse: {error}")
                continue
            if parsed.tcp is None:
                self.warnings.append(f"at {when:.3f} s the kernel sent a packet that is not TCP")
                continue
            segment = parsed.tcp
            key = (segment.src_port, segment.dst_port)
            verdict = self.under_test.judge(segment.flags, key, self.connection)
            if verdict is Verdict.OPENS:
                self.calls.current_port = segment.src_port  # a connect still blocked names its port here
            elif verdict.passed_over:
                self.warnings.append(f"at {when:.3f} s passed over a segment {verdict.value}: "
                                     f"{segment.src_port} > {segment.dst_port} {segment_text(segment)}")
                continue
            self.last_raw = packet
            self.last_sent_seq[self.connection] = segment.seq
            return when, parsed

    def _expect_segment(self, event: PacketEvent) -> None:
        earliest, latest = self._scheduled(event)
        deadline = (latest if latest is not None else self.now() + 10.0) + self.tolerance + MISSING_SEGMENT_WAIT
        found = self._next_segment(deadline)
        if found is None:
            reason = f"the kernel sent nothing; the script expects {expected_text(event)}"
            raise ScriptFailed(event.line, "missing-segment", reason)
        when, parsed = found
        segment = parsed.tcp
        if len(segment.payload) < event.payload_length and "strict_segments" not in self.script.options:
            when, segment = self._aggregate(event, when, segment, deadline)
        key = (segment.src_port, segment.dst_port)
        numbers = self._numbers_for(key)
        if segment.flags & SYN and event.seq_start is not None and not event.seq_absolute:
            numbers.local_isn_live = None  # each SYN or SYN-ACK names its connection's ISN
        learn_from_outbound(event, segment, numbers)
        if segment.flags & SYN and numbers.local_isn_known:
            self.script_isn[key] = numbers.local_isn_script
        self._set_remote_offset(numbers, key, bool(segment.flags & SYN))
        tolerance = self._tolerance_for(earliest)
        if earliest is not None and not (earliest - tolerance <= when <= latest + tolerance):
            raise ScriptFailed(
                event.line,
                "timing",
                f"timing: the segment came at {when:.3f} s, the script expects it at {earliest:.3f} s "
                f"(tolerance {tolerance:.3f} s): {segment_text(segment, numbers)}",
            )
        if self.ignore_window:
            event = window_agnostic(event, segment)
        mismatch = match_outbound(event, segment, numbers)
        if mismatch is not None:
            raise ScriptFailed(event.line, mismatch.field, mismatch.reason, mismatch)
        problem = compare_ip_fields(event.ip_info, parsed.ip) or self._check_ts_val(event, segment, key, earliest)
        if problem is not None:
            raise ScriptFailed(event.line, "ip", f"{problem}: {segment_text(segment, numbers)}")
        problem = compare_options_length(event.options, self.last_raw)  # Fast Open: matcher.py compares it
        if problem is not None:
            raise ScriptFailed(event.line, "options", f"{problem}: {segment_text(segment, numbers)}")
        self.previous_scheduled = earliest if earliest is not None else when
        # The segment's event happened when the kernel sent it (the tap's stamp), as packetdrill
        # times it; our matching it is later by a wake-up and the parsing.
        self.previous_time = when

    def _check_ts_val(self, event: PacketEvent, segment, key: tuple[int, int], scheduled: float | None) -> str | None:
        """packetdrill's --tcp_ts_tick_usecs check (outbound_checks.ts_val_problem); the tolerance
        grows with the time since the start (12.5 %), not since the previous event: a clock drifts."""
        wanted = next((option.value[0] for option in event.options or () if option.name == "TS"), None)
        if wanted is None or segment.options.timestamps is None:
            return None
        first = self.first_ts.setdefault(key, (wanted, segment.options.timestamps[0]))
        tolerance = max(self.tolerance, self.tolerance_percent / 100.0 * (scheduled or 0.0))
        return ts_val_problem(wanted, segment.options.timestamps[0], first, self.ts_tick, tolerance)

    def _tolerance_for(self, scheduled: float | None, since: float | None = None) -> float:
        """packetdrill's tolerance (run.c verify_time): the fixed one, or --tolerance_percent
        (12.5 % by default) of the time since the previous event if that is more: a 1 s
        retransmission timer on a kernel with HZ=250 fires up to tens of milliseconds late."""
        base = self.previous_time if since is None else since
        if scheduled is None:
            return self.tolerance
        return max(self.tolerance, self.tolerance_percent / 100.0 * (scheduled - base))

    def _set_remote_offset(self, numbers: SequenceMap, key: tuple[int, int], syn: bool) -> None:
        """packetdrill's numbering (socket.h, *_seq_script_to_live_offset): on a SYN or SYN-ACK the
        peer's numbers are as written and ours count from the ISN the script wrote on our SYN; on
        every other segment both sides count from 0 at their ISN. (The FreeBSD suite's scripts
        write 0 for both ISNs, where all these agree.)"""
        numbers.remote_offset = 0 if syn else self.remote_isn.get(key, 0)
        if numbers.local_isn_known:
            numbers.local_isn_script = self.script_isn.get(key, 0) if syn else 0

    def _aggregate(self, event: PacketEvent, when: float, first, deadline: float):
        """packetdrill's rule without --strict_segments: consecutive segments of one connection are
        joined until they carry the payload the line expects, so that a script written for one
        TSO burst of 10 segments matches the kernel's bursts of 2 (its TSO autosizing). The joined
        segment has the first one's sequence number and the last one's other fields and time;
        every fragment but the last must be as long as the one before it."""
        payload = bytes(first.payload)
        last = first
        while len(payload) < event.payload_length:
            found = self._next_segment(deadline)
            if found is None:
                break
            when, parsed = found
            fragment = parsed.tcp
            left = event.payload_length - len(payload)
            if len(fragment.payload) < left and len(fragment.payload) != len(last.payload):
                raise ScriptFailed(event.line, "length", f"fragment of {len(fragment.payload)} bytes after one "
                                   f"of {len(last.payload)} (expected {event.payload_length} bytes in all)")
            payload += bytes(fragment.payload)
            last = fragment
        return when, last._replace(seq=first.seq, payload=payload)

    # -- system calls, shell, code -------------------------------------------------------------

    def _syscall(self, event: SyscallEvent, start: float | None) -> None:
        self._finish_blocked()  # one call at a time, as packetdrill's syscall thread
        if event.name in ("listen", "accept"):
            self.listening = True
        if event.name == "socket":
            self.under_test.socket_created()
        if event.time is not None and event.time.kind == "blocking":
            job = self.syscall_thread.submit(event)
            self.syscall_thread.wait_until_blocked(job)
            self.blocked = (event, job, self.now() if start is None else start)
            return
        try:
            with time_limit(NONBLOCKING_CALL_LIMIT):
                job = run_inline(self.calls, event, self.now)
        except CallBlocked:
            raise ScriptFailed(event.line, "syscall", f"{event.name} blocked; the script expects it to return") from None
        self._check_returned(event, job, None)
        # A call that does not block is done in microseconds in the kernel; what the return stamp
        # adds is this thread waiting for the GIL after it (the TUN reader took it while the call
        # was in). packetdrill's C returns within microseconds, so its next `+x` counts from about
        # the start: so does ours. (A segment the call sent is stamped by the kernel, in between.)
        self.happened_at = job.started_at

    def _check_returned(self, event: SyscallEvent, job, started: float | None) -> None:
        if job.unsupported is not None:
            raise job.unsupported
        problem = check_outcome(event, job.outcome, LINUX_CONSTANTS) or job.mismatch
        if problem is None and started is not None:
            end = started + (event.time.end - event.time.start)
            if abs(job.returned_at - end) > self._tolerance_for(end, started):
                problem = f"{event.name} returned at {job.returned_at:.3f} s, the script expects {end:.3f} s"
        if problem is None:
            return
        if self.non_fatal_syscalls:
            self.warnings.append(f"line {event.line}: {problem}")
            return
        raise ScriptFailed(event.line, "syscall", problem)

    def _finish_blocked(self) -> None:
        if self.blocked is None:
            return
        event, job, started = self.blocked
        self.blocked = None
        end = started + (event.time.end - event.time.start)
        if not job.done.wait(max(0.0, end - self.now()) + self.tolerance + MISSING_SEGMENT_WAIT):
            raise ScriptFailed(event.line, "never-returned", f"{event.name} never returned")
        self._check_returned(event, job, started)

    def _shell(self, event: ShellEvent) -> None:
        command = event.command
        if script_profile(self.directory) == FREEBSD:  # FreeBSD's commands, said the Linux way
            action = interpret_shell(command)
            if not isinstance(action, SetSysctl):
                raise Unsupported("shell command", f"{command.strip()[:60]} (FreeBSD only)")
            command = linux_command_for_freebsd_sysctl(action.name, action.value)
        # PACKETDRILL_PID: the suite's set_sysctls.py names its restore file after it.
        command = f"export PACKETDRILL_PID={os.getpid()}; cd {_quote(self.directory)} && {command}"
        try:
            # /bin/sh, as packetdrill's system(3): bash would read `&>` as a redirection where
            # Debian's dash starts a background job, and scripts were checked against the latter.
            done = self.namespace.run(["sh", "-c", command], timeout=SHELL_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ScriptFailed(event.line, "shell", f"`{event.command}` did not finish in {SHELL_TIMEOUT:.0f} s")
        if done.returncode != 0:
            output = (done.stderr or done.stdout or "").strip().splitlines()
            detail = f": {output[-1]}" if output else ""
            raise ScriptFailed(event.line, "shell", f"`{event.command.strip()}` exited with {done.returncode}{detail}")

    def _code(self, event: CodeEvent) -> None:
        """A `%{ }%` block: Python, run with the TCP_INFO fields of the socket under test."""
        sock = None
        for candidate in reversed(list(self.calls.sockets.values())):
            sock = candidate
            break
        if sock is None:
            raise Unsupported("python code block", "no socket to read TCP_INFO from")
        names = dict(tcp_info(sock))
        names.update(TCP_INFO_NAMES)
        # What the block prints is kept with the result, not mixed into the report.
        names["print"] = lambda *values, **_: self.warnings.append(f"line {event.line}: " + " ".join(map(str, values)))
        code = event.code.rstrip().rstrip("\\")  # a last `\` before `}%` continues nothing
        try:
            exec(compile(code, f"{self.script.path}:{event.line}", "exec"), {"__builtins__": __builtins__}, names)
        except AssertionError as error:
            raise ScriptFailed(event.line, "code", f"assertion failed in the Python block: {error}") from None
        except NameError as error:
            raise Unsupported("python code block", f"uses a name TCP_INFO does not give: {error}") from None
        except Exception as error:
            raise ScriptFailed(event.line, "code", f"error in the Python block: {type(error).__name__}: {error}")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"

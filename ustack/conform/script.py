"""The parsed form of a packetdrill-dialect script: plain values, no behaviour.

The parser (parser.py) turns a `.pkt` file into a `Script`; the runner walks its `events` in order.
Every event keeps the source line it came from, so that every error and every mismatch can point
at `file:line`.

The model follows the language as the FreeBSD tcp-testsuite uses it (see parser.py for the survey):

    --tolerance_usecs=50000                                   -> Script.options
    +0.00 `sysctl -w net.inet.tcp.sack.enable=1`              -> ShellEvent
    +0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3           -> SyscallEvent
    +0.10 < S. 0:0(0) ack 1 win 32767 <mss 1460,sackOK>        -> PacketEvent (inbound)
    +0.00 > . 1:1(0) ack 1 win 65535 <nop,nop,sack 200:300>    -> PacketEvent (expected outbound)
    +0.10 < icmp unreachable port_unreachable [0:0(0)]        -> PacketEvent with an IcmpSpec
    +0.00 %{ assert tcpi_state == TCPI_CLOSE_WAIT }%          -> CodeEvent
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Union

# ---------------------------------------------------------------------------------------------
# Time


@dataclass(frozen=True)
class TimeSpec:
    """When an event happens, as the script wrote it.

    kind is one of:
      "exact"    `0.10` or `+0.10`: at that time, within the script's tolerance
      "any"      `*`: whenever it happens (no timing check)
      "range"    `0.1~0.2` or `+0.1~+0.2`: anywhere in [start, end] (plus the tolerance)
      "blocking" `1.00...6.00` (system calls only): the call starts at `start` and returns at `end`
    relative is True for the `+` forms: start (and end) count from the previous event (packetdrill's
    rule: from when the previous event actually happened; consecutive inbound packets are anchored
    to the previous packet's script time instead).
    """

    kind: str
    start: float = 0.0
    end: float | None = None
    relative: bool = False

    def text(self) -> str:
        plus = "+" if self.relative else ""
        if self.kind == "any":
            return "*"
        if self.kind == "range":
            return f"{plus}{self.start:.3f}~{plus}{self.end:.3f}"
        if self.kind == "blocking":
            return f"{plus}{self.start:.3f}...{self.end:.3f}"
        return f"{plus}{self.start:.3f}"


# ---------------------------------------------------------------------------------------------
# Expressions (system-call arguments and results)


class IntExpr(NamedTuple):
    value: int
    text: str  # as written: "0x02", "-1", "65536"


class NameExpr(NamedTuple):
    """A symbolic constant or errno name: SOCK_STREAM, O_NONBLOCK, ECONNRESET, ..."""

    name: str


class StringExpr(NamedTuple):
    value: str


class EllipsisExpr(NamedTuple):
    """`...`: any value (packetdrill fills in the address, buffer, ... itself)."""


class ArrayExpr(NamedTuple):
    """`[65536]` (an in/out value passed by pointer) or `[a, b, c]`."""

    items: tuple


class StructExpr(NamedTuple):
    """`{l_onoff=1, l_linger=0}`, `{fd=3, events=POLLIN}`: fields in order as (name or None, value)."""

    fields: tuple


class BinaryExpr(NamedTuple):
    """`O_RDWR | O_NONBLOCK`."""

    operator: str
    left: "Expr"
    right: "Expr"


class CallExpr(NamedTuple):
    """`htons(8080)`, `inet_addr("192.0.2.1")`."""

    name: str
    args: tuple


Expr = Union[IntExpr, NameExpr, StringExpr, EllipsisExpr, ArrayExpr, StructExpr, BinaryExpr, CallExpr]
ELLIPSIS = EllipsisExpr()


# ---------------------------------------------------------------------------------------------
# Packets


class OptionSpec(NamedTuple):
    """One TCP option as written inside `<...>`, in script order.

    name is one of: "nop", "eol", "mss" (value int), "wscale" (value int), "sackOK",
    "sack" (value: tuple of (left, right) pairs), "TS" (value: (val or None for `val ...`, ecr)),
    "md5" (value: the word after it, e.g. "valid").
    absolute is True for `ecr N!` (do not map the echoed timestamp).
    """

    name: str
    value: object = None
    absolute: bool = False

    def text(self) -> str:
        if self.name == "sack":
            return "sack " + " ".join(f"{left}:{right}" for left, right in self.value)
        if self.name == "TS":
            val, ecr = self.value
            return f"TS val {'...' if val is None else val} ecr {ecr}{'!' if self.absolute else ''}"
        if self.value is None:
            return self.name
        return f"{self.name} {self.value}"


class IcmpSpec(NamedTuple):
    """`icmp unreachable port_unreachable [1:1(0)]`: an ICMP error quoting a TCP segment we sent.

    echoed_start/echoed_end/echoed_length are the quoted segment's sequence numbers, relative to
    our ISN like any other local sequence number.
    """

    type: str
    code: str | None
    mtu: int | None
    echoed_start: int | None
    echoed_end: int | None
    echoed_length: int | None


@dataclass(frozen=True)
class PacketEvent:
    """`<` a segment the script injects, or `>` a segment ustack must send."""

    time: TimeSpec
    line: int
    direction: str  # "<" inbound (script -> ustack) or ">" outbound (ustack -> script)
    flags: str = ""  # as written: "S", "S.", ".", "F.", "SEW", "-" for none
    seq_start: int | None = None  # None: `...(len)`, sequence number not checked
    seq_end: int | None = None
    payload_length: int = 0
    seq_absolute: bool = False  # `0:0(0)!`: the number is on-the-wire, not relative to the ISN
    ack: int | None = None
    window: int | None = None  # None: `win` absent, not checked
    urgent: int | None = None
    options: tuple[OptionSpec, ...] | None = ()  # None: `<...>`, any options
    ip_info: tuple[tuple[str, object], ...] = ()  # `(tos 0x20)`, `(ttl 64)`, `[noecn]`, `[ect0]`
    udp_ports: tuple[int, int] | None = None  # `/udp(1 > 9811)`: TCP over UDP encapsulation
    icmp: IcmpSpec | None = None

    @property
    def is_icmp(self) -> bool:
        return self.icmp is not None


# ---------------------------------------------------------------------------------------------
# System calls, shell commands, code blocks


@dataclass(frozen=True)
class SyscallEvent:
    """`connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)`."""

    time: TimeSpec
    line: int
    name: str
    args: tuple
    result: Expr
    errno: str | None = None  # "EINPROGRESS"
    note: str | None = None  # the parenthesised text after the result or errno


@dataclass(frozen=True)
class ShellEvent:
    """A backquoted shell command. time is None for a command written without a time."""

    time: TimeSpec | None
    line: int
    command: str


@dataclass(frozen=True)
class CodeEvent:
    """A `%{ ... }%` block (Python in packetdrill, run against tcp_info after the script)."""

    time: TimeSpec
    line: int
    code: str


Event = Union[PacketEvent, SyscallEvent, ShellEvent, CodeEvent]


@dataclass
class Script:
    path: str
    options: dict[str, str | None] = field(default_factory=dict)  # `--name=value` headers, in order
    events: list = field(default_factory=list)
    defines: frozenset[str] = frozenset()  # the #ifdef names that were taken as defined

    @property
    def tolerance(self) -> float:
        """The script's timing tolerance in seconds (packetdrill's default is 4 ms)."""
        value = self.options.get("tolerance_usecs")
        return int(value) / 1e6 if value else 0.004


def scheduled_window(event, previous, now: float, previous_scheduled: float, previous_done: float
                     ) -> tuple[float | None, float | None]:
    """The (earliest, latest) script time of `event`, by packetdrill's rules (run.c), shared by
    the virtual-time driver and the kernel backend: no time means now; `*` means whenever
    (None, None); `0.1` is absolute; `+0.1` counts from when the previous event was done, except
    that consecutive inbound packets count from the previous packet's scheduled time."""
    spec = event.time
    if spec is None:
        return now, now
    if spec.kind == "any":
        return None, None
    base = 0.0
    if spec.relative:
        both_inbound = (
            isinstance(event, PacketEvent) and event.direction == "<"
            and isinstance(previous, PacketEvent) and previous.direction == "<"
        )
        base = previous_scheduled if both_inbound else previous_done
    start = base + spec.start
    end = base + spec.end if spec.kind == "range" else start
    return start, end

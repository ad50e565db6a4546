"""Script packets <-> ustack segments: number mapping, comparison, and tcpdump-form text.

Two directions:

* `inbound_segment(spec, numbers, ...)` turns a `<` line into the TcpSegment to feed the core.
* `match_outbound(spec, segment, numbers, ...)` compares a `>` line with what ustack sent and
  returns None or a `Mismatch` that names the first differing field and shows both segments the
  way tcpdump -nn -S would print them, in script numbers.

Sequence numbers follow packetdrill's convention (`SequenceMap`): the script writes our sequence
numbers relative to our ISN, which it learns from the first SYN or SYN-ACK ustack sends (the
number written on that `>` SYN is the script's name for the ISN, usually 0). The remote side's
numbers are the script's own: the ISN the script wrote on its SYN is used as it is, shifted by
`remote_offset` if the driver wants the peer's numbers elsewhere (for example just below 2**32, to
make transfers wrap). A number written with `!` is on-the-wire and is not mapped.

What is compared, and what is deliberately not, is listed in profile.TOLERANCES.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ustack.conform.linux_profile import LINUX_FAST_OPEN_COOKIE
from ustack.conform.profile import Unsupported
from ustack.conform.script import OptionSpec, PacketEvent
from ustack.tcp.seq import seq_add, seq_diff
from ustack.tcp.options import TIMESTAMP_TICK_USECS
from ustack.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, TcpOptions, TcpSegment, flags_text

FLAG_BITS = {"F": FIN, "S": SYN, "R": RST, "P": PSH, ".": ACK, "U": URG, "E": ECE, "W": CWR, "C": CWR}


def flag_bits(flags: str) -> int:
    """`S.` -> SYN|ACK. `-` means no flags at all."""
    bits = 0
    for letter in flags:
        if letter != "-":
            bits |= FLAG_BITS[letter]
    return bits


@dataclass
class SequenceMap:
    """The numbers of one connection: script space <-> live space.

    Until ustack has sent a SYN, the local ISN is unknown and local numbers map to themselves;
    that is what the scripts expect for the RST that answers a segment to a closed port (its
    sequence number is the segment's acknowledgment number, written as such).
    """

    local_isn_script: int | None = None
    local_isn_live: int | None = None
    remote_offset: int = 0  # live remote number = script remote number + remote_offset
    timestamp_offset: int = 0  # our live TSval - the TS val the script wrote, on our last segment
    fin_seq: int | None = None  # the script-space sequence number of the FIN we sent, once matched
    # --tcp_ts_tick_usecs: our TSvals are checked against the script's (packetdrill does, given the
    # option): the script's tick, the slack allowed, and live minus script time of the first one.
    ts_tick_usecs: int | None = None
    ts_slack_usecs: int = 0
    ts_base_usecs: int | None = None
    tolerances_used: list = field(default_factory=list)  # (tolerance name, what it let through)

    @property
    def local_isn_known(self) -> bool:
        return self.local_isn_live is not None

    def learn_local_isn(self, script_isn: int, live_isn: int) -> None:
        self.local_isn_script = script_isn
        self.local_isn_live = live_isn

    def local_to_live(self, script_number: int) -> int:
        if not self.local_isn_known:
            return script_number
        return seq_add(self.local_isn_live, seq_diff(script_number, self.local_isn_script))

    def local_to_script(self, live_number: int) -> int:
        if not self.local_isn_known:
            return live_number
        return seq_add(self.local_isn_script, seq_diff(live_number, self.local_isn_live))

    def remote_to_live(self, script_number: int) -> int:
        return seq_add(script_number, self.remote_offset)

    def remote_to_script(self, live_number: int) -> int:
        return seq_add(live_number, -self.remote_offset)


# ---------------------------------------------------------------------------------------------
# Inbound: script line -> TcpSegment


def inbound_segment(spec: PacketEvent, numbers: SequenceMap, source_port: int, destination_port: int) -> TcpSegment:
    """The segment a `<` line injects, in live numbers. The payload is `length` zero bytes."""
    flags = flag_bits(spec.flags)
    seq = spec.seq_start if spec.seq_absolute else numbers.remote_to_live(spec.seq_start)
    ack = 0
    if spec.ack is not None:
        ack = numbers.local_to_live(spec.ack) if flags & ACK else spec.ack
    return TcpSegment(
        src_port=source_port,
        dst_port=destination_port,
        seq=seq,
        ack=ack,
        flags=flags,
        window=spec.window if spec.window is not None else 0,
        urgent_pointer=spec.urgent or 0,
        options=_inbound_options(spec.options or (), numbers),
        payload=bytes(spec.payload_length),
    )


def _inbound_options(options: tuple[OptionSpec, ...], numbers: SequenceMap) -> TcpOptions:
    values = {}
    for option in options:
        if option.name == "mss":
            values["mss"] = option.value
        elif option.name == "wscale":
            values["window_scale"] = option.value
        elif option.name == "sackOK":
            values["sack_permitted"] = True
        elif option.name == "sack":  # blocks acknowledge our data: local numbers
            values["sack_blocks"] = tuple(
                (numbers.local_to_live(left), numbers.local_to_live(right)) for left, right in option.value
            )
        elif option.name == "TS":
            value, echo = option.value
            if not option.absolute:  # the echo names a TSval of ours, written in script time
                echo = seq_add(echo, numbers.timestamp_offset)
            values["timestamps"] = (value or 0, echo)
        elif option.name in ("FO", "FOEXP"):  # RFC 7413 4.1.1; a cookie by name is the profile's
            values["fast_open"] = fast_open_cookie(option)
            values["fast_open_experimental"] = option.name == "FOEXP"
        # nop and eol are layout, which TcpOptions leaves to the builder; md5 is refused by the
        # runner before any packet is built (profile.UNSUPPORTED_FEATURES).
    return TcpOptions(**values)


# ---------------------------------------------------------------------------------------------
# Outbound: compare a `>` line with what ustack sent


@dataclass(frozen=True)
class Mismatch:
    """The first difference between an expected `>` line and a segment ustack sent."""

    field: str  # "flags", "seq", "ack", "win", "urg", "length", "options"
    reason: str  # one sentence
    expected: str  # the script's line in tcpdump form
    actual: str  # ustack's segment in tcpdump form, in script numbers

    def text(self) -> str:
        return f"{self.reason}\n  expected: {self.expected}\n  actual:   {self.actual}"


def learn_from_outbound(spec: PacketEvent, segment: TcpSegment, numbers: SequenceMap) -> None:
    """Learn our ISN from the first SYN (or SYN-ACK) ustack sends, before matching it."""
    if segment.flags & SYN and not numbers.local_isn_known and spec.seq_start is not None and not spec.seq_absolute:
        numbers.learn_local_isn(spec.seq_start, segment.seq)


def match_outbound(
    spec: PacketEvent, segment: TcpSegment, numbers: SequenceMap, tolerances: frozenset[str] = frozenset()
) -> Mismatch | None:
    """None if `segment` is what `spec` expects; else the first difference.

    Call learn_from_outbound first. On a match, the offset between our TSval and the script's is
    remembered, to map the echo of later inbound TS options. `tolerances` names the entries of
    profile.TOLERANCES that may relax the comparison beyond the ones always applied.
    """
    expected_flags = flag_bits(spec.flags)
    shown = segment_text(segment, numbers, spec.seq_absolute)
    if "repeated_fin" in tolerances and _is_ack_for_repeated_fin(spec, segment, numbers):
        numbers.tolerances_used.append(("repeated_fin", shown))
        segment = segment._replace(flags=segment.flags | FIN, seq=seq_add(segment.seq, -1))
    if "psh_policy" in tolerances and segment.payload and segment.flags ^ expected_flags == PSH:
        numbers.tolerances_used.append(("psh_policy", shown))
        segment = segment._replace(flags=expected_flags)
    seq = segment.seq if spec.seq_absolute else numbers.local_to_script(segment.seq)
    ack = numbers.remote_to_script(segment.ack) if segment.flags & ACK else segment.ack

    def mismatch(field_name: str, reason: str) -> Mismatch:
        return Mismatch(field_name, reason, expected_text(spec), shown)

    if segment.flags != expected_flags:
        reason = f"flags [{flags_text(segment.flags)}] where the script expects [{flags_text(expected_flags)}]"
        return mismatch("flags", reason)
    if spec.seq_start is not None and seq != spec.seq_start:
        return mismatch("seq", f"sequence number {seq} where the script expects {spec.seq_start}")
    if len(segment.payload) != spec.payload_length:
        reason = f"{len(segment.payload)} bytes of data where the script expects {spec.payload_length}"
        return mismatch("length", reason)
    # Tolerance "ack_without_ack_flag": the field means nothing without the ACK bit (RFC 9293 3.1).
    if expected_flags & ACK and spec.ack is not None and ack != spec.ack:
        return mismatch("ack", f"acknowledgment {ack} where the script expects {spec.ack}")
    if spec.window is not None and segment.window != spec.window:
        return mismatch("win", f"window {segment.window} where the script expects {spec.window}")
    if segment.urgent_pointer != (spec.urgent or 0):
        return mismatch("urg", f"urgent pointer {segment.urgent_pointer} where the script expects {spec.urgent or 0}")
    if spec.options is not None:
        problem = _compare_options(spec.options, segment.options, numbers)
        if problem:
            return mismatch("options", problem)
    script_ts = next((option for option in spec.options or () if option.name == "TS"), None)
    if script_ts is not None and script_ts.value[0] is not None and segment.options.timestamps:
        problem = _check_tsval(segment.options.timestamps[0], script_ts.value[0], numbers)
        if problem:
            return mismatch("options", problem)
        numbers.timestamp_offset = seq_diff(segment.options.timestamps[0], script_ts.value[0])
    if segment.flags & FIN and numbers.fin_seq is None:
        numbers.fin_seq = seq_add(seq, len(segment.payload))
    return None


def _check_tsval(live: int, script: int, numbers: SequenceMap) -> str | None:
    """--tcp_ts_tick_usecs: our TSval (ustack's clock ticks every TIMESTAMP_TICK_USECS) must have
    moved on from the first one as far as the script's has, within the slack."""
    if numbers.ts_tick_usecs is None:
        return None  # tolerance "ts_val_unchecked"
    elapsed = live * TIMESTAMP_TICK_USECS - script * numbers.ts_tick_usecs
    if numbers.ts_base_usecs is None:
        numbers.ts_base_usecs = elapsed
        return None
    if abs(elapsed - numbers.ts_base_usecs) > numbers.ts_slack_usecs:
        expected = (script * numbers.ts_tick_usecs + numbers.ts_base_usecs) // TIMESTAMP_TICK_USECS
        return f"TS val {live} where the script's clock gives {expected}"
    return None


def _is_ack_for_repeated_fin(spec: PacketEvent, segment: TcpSegment, numbers: SequenceMap) -> bool:
    """Tolerance "repeated_fin": the script expects our FIN again (`F.` at the FIN's own sequence
    number, already sent and matched) and ustack sent the plain ACK after it instead."""
    if numbers.fin_seq is None or spec.seq_start is None or spec.seq_absolute or spec.payload_length:
        return False
    expected_flags = flag_bits(spec.flags)
    return (
        expected_flags & FIN
        and segment.flags == expected_flags & ~FIN
        and not segment.payload
        and spec.seq_start == numbers.fin_seq
        and numbers.local_to_script(segment.seq) == seq_add(numbers.fin_seq, 1)
    )


def _compare_options(expected: tuple[OptionSpec, ...], actual: TcpOptions, numbers: SequenceMap) -> str | None:
    """Options are compared by meaning (tolerance "option_order"): nop/eol padding and order aside."""
    wanted = {option.name: option for option in expected}
    mss = wanted["mss"].value if "mss" in wanted else None
    if actual.mss != mss:
        return f"MSS option {actual.mss} where the script expects {mss}"
    shift = wanted["wscale"].value if "wscale" in wanted else None
    if actual.window_scale != shift:
        return f"window scale option {actual.window_scale} where the script expects {shift}"
    if actual.sack_permitted != ("sackOK" in wanted):
        presence = {True: "present", False: "absent"}
        return f"sackOK {presence[actual.sack_permitted]} where the script expects it {presence['sackOK' in wanted]}"
    blocks = wanted["sack"].value if "sack" in wanted else ()
    actual_blocks = _blocks_to_script(actual.sack_blocks, numbers)
    if actual_blocks != tuple(blocks):
        return f"SACK blocks {_blocks_text(actual_blocks)} where the script expects {_blocks_text(blocks)}"
    if "TS" in wanted:
        if actual.timestamps is None:
            return "no timestamp option where the script expects one"
        # Tolerance "ts_val_unchecked": our TSval is our own clock.
        echo = wanted["TS"].value[1]
        if actual.timestamps[1] != echo:
            return f"TS ecr {actual.timestamps[1]} where the script expects {echo}"
    elif actual.timestamps is not None:
        return "a timestamp option where the script expects none"
    fast_open = wanted.get("FO") or wanted.get("FOEXP")
    expected_form = None if fast_open is None else (fast_open_cookie(fast_open), fast_open.name == "FOEXP")
    actual_form = None if actual.fast_open is None else (actual.fast_open, actual.fast_open_experimental)
    if expected_form != actual_form:
        return f"{_fast_open_text(actual) or 'no Fast Open option'} where the script expects {fast_open.text() if fast_open else 'none'}"
    return None


def fast_open_cookie(option: OptionSpec) -> bytes:
    """The cookie of an `FO` / `FOEXP` option of a script (RFC 7413 4.1.1): hex, empty for a
    request; a cookie given by name has been replaced by the driver (linux_profile)."""
    if option.value == "TFO_COOKIE":
        return LINUX_FAST_OPEN_COOKIE
    try:
        return bytes.fromhex(option.value or "")
    except ValueError:
        raise Unsupported(f"tcp option {option.name} {option.value}", "a cookie given by name, not in hex") from None


def _fast_open_text(options: TcpOptions) -> str:
    if options.fast_open is None:
        return ""
    return ("FOEXP" if options.fast_open_experimental else "FO") + (f" {options.fast_open.hex()}" if options.fast_open else "")


def _blocks_to_script(blocks, numbers: SequenceMap) -> tuple:
    """SACK blocks ustack sent acknowledge the peer's data: peer numbers, in script space."""
    return tuple((numbers.remote_to_script(left), numbers.remote_to_script(right)) for left, right in blocks)


def _blocks_text(blocks) -> str:
    return " ".join(f"{left}:{right}" for left, right in blocks) or "none"


# ---------------------------------------------------------------------------------------------
# tcpdump form


def expected_text(spec: PacketEvent) -> str:
    """A script packet line the way tcpdump -nn -S prints a segment (`Flags [S.], seq 0, ...`)."""
    if spec.icmp is not None:
        icmp = spec.icmp
        return f"ICMP {icmp.type}{' ' + icmp.code if icmp.code else ''}"
    flags = flag_bits(spec.flags)
    if spec.seq_start is None:
        seq = "seq any"
    elif spec.payload_length:
        seq = f"seq {spec.seq_start}:{spec.seq_end}"
    else:
        seq = f"seq {spec.seq_start}"
    parts = [f"Flags [{flags_text(flags)}]", seq]
    if flags & ACK and spec.ack is not None:
        parts.append(f"ack {spec.ack}")
    parts.append("win any" if spec.window is None else f"win {spec.window}")
    if spec.urgent:
        parts.append(f"urg {spec.urgent}")
    if spec.options is None:
        parts.append("options [any]")
    elif spec.options:
        parts.append("options [" + ",".join(option.text() for option in spec.options) + "]")
    parts.append(f"length {spec.payload_length}")
    return ", ".join(parts)


def segment_text(segment: TcpSegment, numbers: SequenceMap | None = None, absolute: bool = False) -> str:
    """A segment ustack sent, in tcpdump form, with its numbers mapped into script space."""
    numbers = numbers or SequenceMap()
    seq = segment.seq if absolute else numbers.local_to_script(segment.seq)
    length = len(segment.payload)
    parts = [f"Flags [{flags_text(segment.flags)}]", f"seq {seq}:{seq_add(seq, length)}" if length else f"seq {seq}"]
    if segment.flags & ACK:
        parts.append(f"ack {numbers.remote_to_script(segment.ack)}")
    parts.append(f"win {segment.window}")
    if segment.urgent_pointer:
        parts.append(f"urg {segment.urgent_pointer}")
    options = _options_text(segment.options, numbers)
    if options:
        parts.append(f"options [{options}]")
    parts.append(f"length {length}")
    return ", ".join(parts)


def _options_text(options: TcpOptions, numbers: SequenceMap) -> str:
    """Options in the order ustack's builder lays them out for option_layout="freebsd"."""
    items = []
    if options.mss is not None:
        items.append(f"mss {options.mss}")
    if options.window_scale is not None:
        items += ["nop", f"wscale {options.window_scale}"]
    if options.sack_permitted:
        items.append("sackOK")
    if options.timestamps is not None:
        items.append(f"TS val {options.timestamps[0]} ecr {options.timestamps[1]}")
    if options.sack_blocks:
        items += ["nop", "nop", "sack " + _blocks_text(_blocks_to_script(options.sack_blocks, numbers))]
    if options.fast_open is not None:
        items.append(_fast_open_text(options))
    return ",".join(items)

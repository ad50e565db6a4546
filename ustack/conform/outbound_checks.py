"""Checks on the kernel's segments beyond what matcher.py compares, for the kernel backend.

    window_agnostic(event, segment)      -> the `>` line without its window (--ignore-window)
    ts_val_problem(wanted, live, first, tick, tolerance) -> None, or how our TS val is off
"""

from __future__ import annotations

import dataclasses

from ustack.conform.script import PacketEvent


def window_agnostic(event: PacketEvent, segment) -> PacketEvent:
    """The `>` line with the window field unchecked and its window scale option's shift taken
    from the segment (`ustack drill --ignore-window`). The window a receiver offers is its own
    choice (RFC 9293 3.8.6, RFC 7323 2.2), and it is most of what tells one stack's scripts from
    another's (FreeBSD offers 65535 with shift 6 where Linux offers 64240 with shift 7): comparing
    two systems with this on shows the differences that remain. Whether the option is there at
    all is still checked."""
    actual = segment.options.window_scale
    options = event.options
    if options is not None and actual is not None:
        options = tuple(option._replace(value=actual) if option.name == "wscale" else option for option in options)
    return dataclasses.replace(event, window=None, options=options)


def ts_val_problem(wanted: int, live: int, first: tuple[int, int], tick: float, tolerance: float) -> str | None:
    """packetdrill's --tcp_ts_tick_usecs check (run_packet.c): our TS val, counted from our first
    one on the connection (`first` = (the script's TS val, ours) there), must be the script's
    within `tolerance` seconds at `tick` seconds a tick; None if it is, or if tick is 0 (off)."""
    if not tick:
        return None
    mapped = (live - first[1] + first[0]) & 0xFFFF_FFFF
    difference = abs(((mapped - wanted + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000)  # serial arithmetic
    if difference * tick > tolerance:
        return f"TS val {mapped} where the script expects {wanted} (one tick is {tick * 1e6:.0f} us, tolerance {tolerance:.3f} s)"
    return None

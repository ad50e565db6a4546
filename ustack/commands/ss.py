"""`ustack ss [--json] [-i] [--state NAME] [--stats]`: the TCP connections of every running ustack.

The columns and state names are those of Linux's `ss -tan`, so the two can be read side by side:

    State      Recv-Q Send-Q Local Address:Port  Peer Address:Port  Process
    LISTEN     0      0      0.0.0.0:80          0.0.0.0:*          ustack serve (pid 4242)
    TIME-WAIT  0      0      10.77.0.2:80        10.77.0.1:51234    ustack serve (pid 4242)

`-i` adds a second line per connection with the core's numbers, in ss's units (times in ms):
rto, rtt (smoothed/variance), cwnd and ssthresh (bytes), retransmissions, bytes sent and
received, windows and armed timers.

The connections come from the control socket of each running ustack (ustack/control.py). With no
ustack running, the header is printed alone, a note goes to stderr and the exit status is 0: "no
connections" is an answer, not an error (as with `ss` on an idle machine). `--json` prints one
JSON list of connections, each with the `pid` and `program` of its ustack (`[]` when none).
`--stats` prints every counter instead (ustack/commands/stats.py, also `ustack stats`).
"""

from __future__ import annotations

import json
import sys

from ..control import run_directory, survey
from ..tcp.state import State
from .errors import CliError

# Where Linux's ss spells a state differently from RFC 9293 (the State's value); the others agree.
_LINUX_SPELLING = {State.SYN_RECEIVED: "SYN-RECV", State.ESTABLISHED: "ESTAB"}


def linux_state_name(state: State) -> str:
    return _LINUX_SPELLING.get(state, state.value)


HEADER = ("State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process")


def register(subparsers) -> None:
    parser = subparsers.add_parser("ss", help="list the TCP connections of every running ustack, like ss -tan")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("-i", "--info", action="store_true",
                        help="show the core's numbers too (rto, rtt, cwnd, retransmissions, ...)")
    parser.add_argument("--state", metavar="NAME", type=_state_filter,
                        help="only connections in this state (Linux or RFC name, e.g. time-wait, estab)")
    parser.add_argument("--stats", action="store_true",
                        help="every counter (drops by reason, ...) instead of the connections: the same as 'ustack stats'")
    parser.set_defaults(run=run, pid=None)


def _state_filter(text: str) -> str:
    import argparse

    wanted = text.strip().upper().replace("_", "-")
    for state in State:
        if wanted in (state.value, linux_state_name(state)):
            return linux_state_name(state)
    names = ", ".join(linux_state_name(state) for state in State).lower()
    raise argparse.ArgumentTypeError(f"unknown state {text!r} (one of: {names})")


def run(args) -> int:
    if args.stats:
        from .stats import run as run_stats

        return run_stats(args)
    directory = run_directory()
    try:
        result = survey(directory)
    except PermissionError:
        raise CliError(f"cannot read {directory}: permission denied (run as the user that runs ustack, usually root)") from None
    for problem in result.problems:
        print(f"ustack ss: {problem}", file=sys.stderr)
    rows = []
    for answer in result.answers:
        for connection in answer.get("connections") or []:
            row = describe(connection, answer)
            if args.state is None or row["linux_state"] == args.state:
                rows.append(row)
    if args.json:
        print(json.dumps([row["json"] for row in rows], indent=2))
    else:
        print_table(rows, with_info=args.info)
    if not result.answers and not args.json:
        print(f"ustack ss: no running ustack (no control sockets in {directory})", file=sys.stderr)
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------------------------
# One connection as a row
# --------------------------------------------------------------------------------------------
def describe(connection: dict, answer: dict) -> dict:
    text = str(connection.get("state", "?"))  # the State's value, as the control socket sends it
    try:
        state: State | None = State(text.upper().replace("_", "-"))
    except ValueError:
        state = None  # a newer or older ustack: show what it said
    linux_state = text if state is None else linux_state_name(state)
    local = _endpoint(connection, "local")
    remote = _endpoint(connection, "remote")
    listening = state is State.LISTEN
    if listening or remote is None:  # a listener has no peer: ss prints a wildcard
        remote = "0.0.0.0:*"
    process = f"{answer.get('program') or 'ustack'} (pid {answer.get('pid', '?')})"
    recv_q = _first(connection, "receive_queue", "recv_q", default=0)
    send_q = _first(connection, "send_queue", "send_q", default=0)
    return {
        "linux_state": linux_state,
        "cells": (linux_state, str(recv_q), str(send_q), local or "*:*", remote, process),
        "info": "" if listening else info_text(connection, answer.get("now")),
        "json": {**connection, "linux_state": linux_state, "pid": answer.get("pid"),
                 "program": answer.get("program")},
    }


def _endpoint(connection: dict, side: str) -> str | None:
    value = connection.get(side)
    if isinstance(value, dict):
        return f"{value.get('address', '0.0.0.0')}:{value.get('port', '*')}"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 2:
        return f"{value[0]}:{value[1]}"
    address = connection.get(f"{side}_address")
    port = connection.get(f"{side}_port")
    if address is None and port is None:
        return None
    return f"{address if address is not None else '0.0.0.0'}:{port if port is not None else '*'}"


def _first(connection: dict, *names: str, default=None):
    for name in names:
        if connection.get(name) is not None:
            return connection[name]
    return default


def info_text(connection: dict, now: float | None) -> str:
    """The -i line: the core's variables in ss's spelling and units (times in milliseconds)."""
    parts = ["ecn"] if connection.get("ecn") else []  # negotiated (RFC 3168), where Linux's ss puts it
    rto = _first(connection, "rto")
    if rto is not None:
        parts.append(f"rto:{_ms(rto)}")
    srtt = _first(connection, "srtt", "rtt")
    if srtt is not None:
        rttvar = _first(connection, "rttvar")
        parts.append(f"rtt:{_ms(srtt)}" + (f"/{_ms(rttvar)}" if rttvar is not None else ""))
    for name, label in (("mss", "mss"), ("cwnd", "cwnd"), ("ssthresh", "ssthresh"),
                        ("bytes_sent", "bytes_sent"), ("bytes_received", "bytes_received"),
                        ("retransmissions", "retrans"), ("snd_wnd", "snd_wnd"), ("rcv_wnd", "rcv_wnd")):
        value = connection.get(name)
        if value is not None:
            parts.append(f"{label}:{value}")
    timers = connection.get("timers")
    if isinstance(timers, dict):
        for name, deadline in sorted(timers.items(), key=lambda item: str(item[1])):
            if isinstance(deadline, (int, float)) and isinstance(now, (int, float)):
                parts.append(f"timer:({name},{max(0.0, deadline - now):.3f}sec)")
            else:
                parts.append(f"timer:({name})")
    error = connection.get("error")
    if error:
        parts.append(f"error:{error}")
    return " ".join(parts)


def _ms(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return str(seconds)
    return f"{seconds * 1000:.3f}".rstrip("0").rstrip(".")


def print_table(rows: list[dict], with_info: bool) -> None:
    all_cells = [HEADER] + [row["cells"] for row in rows]
    widths = [max(len(cells[column]) for cells in all_cells) for column in range(len(HEADER))]
    for index, cells in enumerate(all_cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip())
        if with_info and index > 0 and rows[index - 1]["info"]:
            print("\t " + rows[index - 1]["info"])

"""`ustack ss [-tanlieomHp] [-N NS] [FILTER]` (and `--json`, `--stats`): the TCP connections of every
running ustack, typed and read as Linux's `ss`.

The columns and state names are those of Linux's `ss -tan`, so the two can be read side by side;
the Process column says which stack a line belongs to (program, pid, namespace and TUN device,
from the stack's network record, ustack/network.py), so two stacks with the same addresses in two
namespaces are told apart:

    State      Recv-Q Send-Q Local Address:Port  Peer Address:Port  Process
    LISTEN     0      0      0.0.0.0:80          0.0.0.0:*          ustack serve pid=4242 netns=ust-lab dev=ustun0
    TIME-WAIT  0      0      10.77.0.2:80        10.77.0.1:51234    ustack serve pid=4242 netns=ust-lab dev=ustun0

As with ss, listening sockets are shown with -a or -l (or a state filter naming them); the
filters (state, exclude, sport, dport, src, dst, and/or/not) are ustack/commands/ss_filter.py's.
ss's flags that make no sense here (-u, -x, -6, ...) are refused with the reason. -o, -e and -m
add the timers, the sequence variables and the queued bytes at the end of the line; `-i` adds a second line per connection with the core's numbers, in ss's units (times in ms):
the congestion control (cubic, newreno, reno) and wscale first, as Linux prints them, then rto,
rtt (smoothed/variance), mss, cwnd and ssthresh (in segments of the MSS, ssthresh once set, as
Linux prints them), retransmissions, bytes sent and
received, windows and armed timers.

The connections come from the control socket of each running ustack (ustack/control.py). With no
ustack running, the header is printed alone, a note goes to stderr and the exit status is 0: "no
connections" is an answer, not an error (as with `ss` on an idle machine). `--json` prints one
JSON list of connections, each with the `pid` and `program` of its ustack (`[]` when none).
`--stats` prints every counter instead (ustack/commands/stats.py, also `ustack stats`).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..control import network_owner, run_directory, survey, worker_label
from ..network import read_records
from ..tcp.state import State
from ..wire.ipv6 import endpoint_text
from .errors import CliError
from .ss_filter import SsFilter, linux_state_name

HEADER = ("State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ss", help="list the TCP connections of every running ustack, like ss -tan (flags and filters as ss)",
        description="Like ss: flags may be combined (-tanoi), and a filter follows them: "
                    "state NAME, exclude NAME, sport/dport OP PORT, src/dst [OP] ADDR[:PORT], and/or/not, ( ).")
    parser.add_argument("filter", nargs="*", metavar="FILTER",
                        help="ss's filter: e.g. state established '( dport = :80 or sport = :80 )'")
    flags = parser.add_argument_group("ss's flags")
    flags.add_argument("-t", "--tcp", action="store_true", help="TCP sockets (ustack has only those)")
    flags.add_argument("-a", "--all", action="store_true", help="listening sockets too")
    flags.add_argument("-l", "--listening", action="store_true", help="only listening sockets")
    flags.add_argument("-n", "--numeric", action="store_true", help="numbers, not names (ustack always prints numbers)")
    flags.add_argument("-i", "--info", action="store_true",
                       help="the core's numbers on a second line (rto, rtt, cwnd, retransmissions, ...)")
    flags.add_argument("-e", "--extended", action="store_true", help="sequence variables (snd_una, snd_nxt, rcv_nxt)")
    flags.add_argument("-m", "--memory", action="store_true", help="bytes queued: skmem:(r<received>,t<to send>)")
    flags.add_argument("-o", "--options", action="store_true", help="timers, as timer:(name,seconds)")
    flags.add_argument("-H", "--no-header", action="store_true", help="no header line")
    flags.add_argument("-p", "--processes", action="store_true", help="the process (always shown)")
    flags.add_argument("-4", "--ipv4", action="store_true", help="IPv4 (ustack has only that)")
    flags.add_argument("-N", "--net", metavar="NAME", help="only the ustacks whose TUN device is in namespace NAME")
    for flag, what in _UNSUPPORTED.items():
        flags.add_argument(flag, dest=f"unsupported_{flag.strip('-')}", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--state", metavar="NAME", action="append", default=[],
                        help="only connections in this state (Linux or RFC name, e.g. time-wait, estab); "
                             "the same as the filter 'state NAME'")
    parser.add_argument("--json", action="store_true",
                        help="a JSON list instead of a table (every socket, listening too, unless filtered)")
    parser.add_argument("--stats", action="store_true",
                        help="every counter (drops by reason, ...) instead of the connections: the same as 'ustack stats'")
    parser.set_defaults(run=run, pid=None)


# ss's flags that make no sense for ustack: refused with the reason, not taken silently.
_UNSUPPORTED = {
    "-u": "UDP: ustack has only TCP", "-x": "UNIX sockets: ustack has only TCP", "-w": "raw sockets: ustack has only TCP",
    "-6": "IPv6: ustack has only IPv4", "-r": "name resolution: ustack ss prints numbers only",
    "-s": "the summary: use 'ustack stats'", "-K": "killing sockets", "-Z": "SELinux contexts",
}


def run(args) -> int:
    for flag, what in _UNSUPPORTED.items():
        if getattr(args, f"unsupported_{flag.strip('-')}"):
            raise CliError(f"{flag} is not supported ({what})")
    if args.stats:
        from .stats import run as run_stats

        return run_stats(args)
    selection = SsFilter([*(f"state {name}" for name in args.state), *args.filter])
    states = selection.allowed_states(listening=args.listening,
                                      all_states=args.all or args.json and selection.states is None)
    directory = run_directory()
    try:
        result = survey(directory)
    except PermissionError:
        raise CliError(f"cannot read {directory}: permission denied (run as the user that runs ustack, usually root)") from None
    for problem in result.problems:
        print(f"ustack ss: {problem}", file=sys.stderr)
    stacks = {record["pid"]: record for record in read_records(directory) if record["alive"]}
    rows = []
    for answer in result.answers:
        stack = stacks.get(network_owner(answer), {})
        if args.net is not None and stack.get("namespace") != args.net:
            continue
        for connection in answer.get("connections") or []:
            row = describe(connection, answer, stack)
            if row["linux_state"] in states and selection.matches(row):
                rows.append(row)
    if args.json:
        print(json.dumps([row["json"] for row in rows], indent=2))
    else:
        # ss leaves the State column out when the filter names one state: every line would repeat it.
        print_table(rows, args, with_state=len(states) != 1)
    if not result.answers and not args.json:
        print(f"ustack ss: no running ustack (no control sockets in {directory})", file=sys.stderr)
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------------------------
# One connection as a row
# --------------------------------------------------------------------------------------------
def describe(connection: dict, answer: dict, stack: dict | None = None) -> dict:
    """One connection as a row. `stack` is its ustack's network record (ustack/network.py):
    namespace and TUN device, which tell apart two stacks with the same addresses."""
    text = str(connection.get("state", "?"))  # the State's value, as the control socket sends it
    try:
        state: State | None = State(text.upper().replace("_", "-"))
    except ValueError:
        state = None  # a newer or older ustack: show what it said
    linux_state = text if state is None else linux_state_name(state)
    local = _endpoint(connection, "local")
    remote = _endpoint(connection, "remote")
    listening = state is State.LISTEN
    wildcard = connection.get("listening_on")
    if listening and wildcard and local is not None:
        # As Linux's ss: "*:80" for a dual-stack :: socket (IPV6_V6ONLY off), "0.0.0.0:80" and
        # "[::]:80" for one family's wildcard.
        local = endpoint_text(wildcard, local.rpartition(":")[2])
    if listening or remote is None:  # a listener has no peer: ss prints a wildcard
        remote = "[::]:*" if (local or "").startswith("[") else "*:*" if (local or "").startswith("*") else "0.0.0.0:*"
    stack = stack or {}
    process = f"{answer.get('program') or 'ustack'} pid={answer.get('pid', '?')}{worker_label(answer)}"
    if stack.get("namespace"):
        process += f" netns={stack['namespace']}"
    if stack.get("tun"):
        process += f" dev={stack['tun']}"
    recv_q = _first(connection, "receive_queue", "recv_q", default=0)
    send_q = _first(connection, "send_queue", "send_q", default=0)
    return {
        "linux_state": linux_state,
        "state": linux_state,
        "local": _address_and_port(local),
        "remote": None if remote in ("0.0.0.0:*", "[::]:*", "*:*") else _address_and_port(remote),
        "cells": (linux_state, str(recv_q), str(send_q), local or "*:*", remote, process),
        "info": "" if listening else info_text(connection, answer.get("now")),
        "timers": timer_text(connection, answer.get("now")),
        "extended": " ".join(f"{name}:{connection[name]}" for name in ("snd_una", "snd_nxt", "rcv_nxt")
                             if connection.get(name) is not None),
        "memory": f"skmem:(r{recv_q},t{send_q})",
        "json": {**connection, "linux_state": linux_state, "pid": answer.get("pid"),
                 "program": answer.get("program"), "worker": answer.get("worker"),
                 "namespace": stack.get("namespace"), "device": stack.get("tun")},
    }


def _address_and_port(endpoint: str | None) -> tuple[str | None, int | None] | None:
    """"10.77.0.2:80" -> ("10.77.0.2", 80), "[fd00:77::2]:80" -> ("fd00:77::2", 80), for the
    filters; "*" parts -> None."""
    if endpoint is None:
        return None
    address, _, port = endpoint.rpartition(":")
    address = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    return (None if address in ("", "*", "0.0.0.0", "::") else address, int(port) if port.isdigit() else None)


def _endpoint(connection: dict, side: str) -> str | None:
    value = connection.get(side)
    if isinstance(value, dict):
        return _host_port(value.get('address', '0.0.0.0'), value.get('port', '*'))
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 2:
        return _host_port(value[0], value[1])
    address = connection.get(f"{side}_address")
    port = connection.get(f"{side}_port")
    if address is None and port is None:
        return None
    return _host_port(address if address is not None else '0.0.0.0', port if port is not None else '*')


def _host_port(address, port) -> str:
    """'10.77.0.2:80', or '[fd00:77::2]:80' for IPv6, as `ss -tan` prints them."""
    return endpoint_text(str(address), port)


def _first(connection: dict, *names: str, default=None):
    for name in names:
        if connection.get(name) is not None:
            return connection[name]
    return default


def info_text(connection: dict, now: float | None) -> str:
    """The -i line: the core's variables in ss's spelling and units (times in milliseconds)."""
    parts = ["ecn"] if connection.get("ecn") else []  # negotiated (RFC 3168), first as in Linux's ss
    # Linux's ss -i starts with the congestion control's name, then wscale:<send>,<receive>.
    algorithm = connection.get("congestion_control")
    if algorithm:
        parts.append(str(algorithm))
    window_scale = connection.get("window_scale")
    if isinstance(window_scale, (list, tuple)) and len(window_scale) == 2:
        parts.append(f"wscale:{window_scale[0]},{window_scale[1]}")
    rto = _first(connection, "rto")
    if rto is not None:
        parts.append(f"rto:{_ms(rto)}")
    srtt = _first(connection, "srtt", "rtt")
    if srtt is not None:
        rttvar = _first(connection, "rttvar")
        parts.append(f"rtt:{_ms(srtt)}" + (f"/{_ms(rttvar)}" if rttvar is not None else ""))
    mss = connection.get("mss")
    if mss:
        parts.append(f"mss:{mss}")
    parts.extend(_window_text(connection, mss))
    pacing_rate = connection.get("pacing_rate")
    if isinstance(pacing_rate, (int, float)):
        parts.append(f"pacing_rate {rate_text(pacing_rate * 8)}")  # where Linux's ss puts it
    for name, label in (("bytes_sent", "bytes_sent"), ("bytes_received", "bytes_received"),
                        ("retransmissions", "retrans"), ("snd_wnd", "snd_wnd"), ("rcv_wnd", "rcv_wnd")):
        value = connection.get(name)
        if value is not None:
            parts.append(f"{label}:{value}")
    if timers := timer_text(connection, now):
        parts.append(timers)
    error = connection.get("error")
    if error:
        parts.append(f"error:{error}")
    return " ".join(parts)


# ssthresh starts "arbitrarily high" (RFC 5681 3.1); Linux's ss leaves it out until the first
# reduction (TCP_INFINITE_SSTHRESH), and so do we.
_UNSET_SSTHRESH = 1 << 30


def _window_text(connection: dict, mss) -> list[str]:
    """cwnd and ssthresh as Linux's ss -i prints them: in segments of the MSS (tcpi_snd_cwnd
    counts packets), ssthresh only once it has been set. A snapshot without the MSS (an older
    ustack) keeps bytes, marked as such."""
    parts = []
    for name in ("cwnd", "ssthresh"):
        value = connection.get(name)
        if not isinstance(value, int) or (name == "ssthresh" and value >= _UNSET_SSTHRESH):
            continue
        if isinstance(mss, int) and mss > 0:
            parts.append(f"{name}:{value // mss}")
        else:
            parts.append(f"{name}:{value}B")
    return parts


def rate_text(bits_per_second: float) -> str:
    """A rate as Linux's ss prints one (sprint_bw): 2.4Mbps, 512Kbps, 1.2Gbps."""
    for limit, unit in ((1e9, "Gbps"), (1e6, "Mbps"), (1e3, "Kbps")):
        if bits_per_second >= limit:
            return f"{bits_per_second / limit:.1f}{unit}"
    return f"{bits_per_second:.0f}bps"


def _ms(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return str(seconds)
    return f"{seconds * 1000:.3f}".rstrip("0").rstrip(".")


def timer_text(connection: dict, now: float | None) -> str:
    """The armed timers as ss -o prints them: timer:(name,seconds left)."""
    parts = []
    timers = connection.get("timers")
    if isinstance(timers, dict):
        for name, deadline in sorted(timers.items(), key=lambda item: str(item[1])):
            if isinstance(deadline, (int, float)) and isinstance(now, (int, float)):
                parts.append(f"timer:({name},{max(0.0, deadline - now):.3f}sec)")
            else:
                parts.append(f"timer:({name})")
    return " ".join(parts)


def print_table(rows: list[dict], args, with_state: bool = True) -> None:
    """ss's layout: the columns, then (-o, -e, -m) extras at the end of the line, (-i) a second line."""
    all_cells = [HEADER] + [row["cells"] for row in rows]
    if not with_state:
        all_cells = [cells[1:] for cells in all_cells]
    widths = [max(len(cells[column]) for cells in all_cells) for column in range(len(all_cells[0]))]
    for index, cells in enumerate(all_cells):
        if index == 0 and getattr(args, "no_header", False):
            continue
        line = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths))
        row = rows[index - 1] if index > 0 else None
        if row is not None:
            extras = [row["timers"] if getattr(args, "options", False) else "",
                      row["extended"] if getattr(args, "extended", False) else "",
                      row["memory"] if getattr(args, "memory", False) else ""]
            line += "  " + " ".join(extra for extra in extras if extra)
        print(line.rstrip())
        if row is not None and getattr(args, "info", False) and row["info"]:
            print("\t " + row["info"])

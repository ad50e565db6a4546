"""`ustack stats [--json] [--pid PID]`: every counter of every running ustack, like Linux's nstat.

Linux answers "what did the stack drop, and why?" with `nstat -az` (or `netstat -s`): one counter
per line, name then value, so the output greps and diffs well. `ss` is for sockets (its `-s` is a
count of sockets by state), so the counters get a command of their own, shaped like nstat:

    #ustack serve (pid 4242) 10.77.0.2
    stack.packets_in                                 1234
    stack.drops.reassembly_overlap                      2
    reassembly.pending_datagrams                        0
    listener.0.0.0.0:80.drops.syn_queue_full           17
    connections.open                                    3
    connections.drops.unacceptable_sequence             5
    runtime.rounds                                   5012

The names are the counters' own: `stack.<attribute>.<name>` for the stack's Counter attributes
(`counters`, `drops`), `listener.<address:port>.<attribute>.<name>` for each listener,
`connections.<attribute>.<name>` summed over every connection this stack has had (like Linux's
per-host TcpExt counters), `reassembly.*` for the fragments being held (gauges, not counters)
and `runtime.*` for the event loop. A counter the core starts keeping shows up here by itself
(ustack/control.py reads them by type). `--json` prints the same as one list, a structured object
per ustack. `ustack ss --stats` is the same command, for those who look for it there.

A process running several stacks (two AsyncStacks over a memory link, ustack.sock networks beside
an asyncio program) answers for each: one block per stack, titled with its own program name (the
`program=` it was given) and `stack=I/N`; `--json` gives one object per stack, with "stack":
{"index": I, "count": N}.

The workers of `ustack serve --workers N` answer one by one (their title says `worker=I/N`), and
after them comes one block of every number summed over them, titled with the parent's pid;
`--pid` takes a worker's pid or the parent's (then all its workers).

The counters come from each ustack's control socket (ustack/control.py). With no ustack running,
a note goes to stderr and the exit status is 0, as for `ustack ss`.
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import CliError
from ..control import network_owner, run_directory, survey, worker_label

STATISTICS_REQUEST = "statistics"


def register(subparsers) -> None:
    parser = subparsers.add_parser("stats", help="every counter of every running ustack (drops by reason, ...), like nstat")
    add_arguments(parser)
    parser.set_defaults(run=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per ustack")
    parser.add_argument("--pid", type=_pid, metavar="PID", help="only the ustack with this process id")


def _pid(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a process id is a positive number, not {text!r}")
    return value


def run(args) -> int:
    directory = run_directory()
    try:
        result = survey(directory, request=STATISTICS_REQUEST)
    except PermissionError:
        raise CliError(f"cannot read {directory}: permission denied (run as the user that runs ustack, usually root)") from None
    answers = []
    for answer in result.answers:
        if args.pid is not None and args.pid not in (answer.get("pid"), network_owner(answer)):
            continue
        for one in each_stack(answer):
            if not isinstance(one.get("statistics"), dict) or "error" in one["statistics"]:
                why = one.get("error") or (one.get("statistics") or {}).get("error") or "no statistics in its answer"
                print(f"ustack stats: pid {one.get('pid', '?')}{stack_label(one)}: {why}", file=sys.stderr)
                continue
            answers.append(one)
    for problem in result.problems:
        print(f"ustack stats: {problem}", file=sys.stderr)
    if args.pid is not None and not answers:
        running = ", ".join(str(answer.get("pid")) for answer in result.answers) or "none"
        raise CliError(f"no running ustack with pid {args.pid} (running: {running})")
    if args.json:
        print(json.dumps([{key: answer[key] for key in ("pid", "program", "address", "worker", "stack", "statistics")
                           if key in answer} for answer in answers], indent=2))
    else:
        for index, answer in enumerate(answers):
            if index:
                print()
            print_counters(answer)
        for parent, workers in workers_by_parent(answers).items():
            print()
            print_worker_totals(parent, workers)
        if not result.answers:
            print(f"ustack stats: no running ustack (no control sockets in {directory})", file=sys.stderr)
    sys.stdout.flush()
    return 0


def each_stack(answer: dict) -> list[dict]:
    """One answer per stack: a process with several stacks (ustack/aio/registry.py) lists each
    under "stacks", with its own program name, addresses and statistics."""
    stacks = answer.get("stacks")
    if not isinstance(stacks, list) or not stacks:
        return [answer]
    return [{**answer, "program": one.get("program") or answer.get("program"), "address": one.get("address"),
             "stack": {"index": one.get("index"), "count": one.get("count")}, "statistics": one.get("statistics")}
            for one in stacks if isinstance(one, dict)]


def stack_label(answer: dict) -> str:
    """" stack=2/3" for one of several stacks in a process, "" otherwise."""
    stack = answer.get("stack")
    if not isinstance(stack, dict):
        return ""
    return f" stack={stack.get('index', '?')}/{stack.get('count', '?')}"


def workers_by_parent(answers: list[dict]) -> dict[int, list[dict]]:
    """The workers' answers, grouped by the pid of the `ustack serve --workers` that started them."""
    groups: dict[int, list[dict]] = {}
    for answer in answers:
        if worker_label(answer):
            groups.setdefault(network_owner(answer), []).append(answer)
    return groups


def summed_counter_lines(answers: list[dict]) -> list[tuple[str, object]]:
    """Every number of these answers summed by name, in the order they first appear."""
    totals: dict[str, object] = {}
    for answer in answers:
        for name, value in counter_lines(answer["statistics"]):
            totals[name] = totals.get(name, 0) + value
    return list(totals.items())


def print_worker_totals(parent: int, workers: list[dict]) -> None:
    first = workers[0]
    _print_block(f"#{first.get('program') or 'ustack'} (pid {parent}) all {len(workers)} workers summed",
                 first, summed_counter_lines(workers))


def print_counters(answer: dict) -> None:
    title = f"#{answer.get('program') or 'ustack'} (pid {answer.get('pid', '?')}){worker_label(answer)}{stack_label(answer)}"
    _print_block(title, answer, counter_lines(answer["statistics"]))


def _print_block(title: str, answer: dict, lines: list[tuple[str, object]]) -> None:
    if answer.get("address"):
        title += f" {answer['address']}"
    print(title)
    width = max((len(name) for name, _ in lines), default=0)
    for name, value in lines:
        print(f"{name.ljust(width)}  {value:>12}")


def counter_lines(statistics: dict) -> list[tuple[str, object]]:
    """(name, value) for every number in the answer, named by where it sits."""
    lines: list[tuple[str, object]] = []
    for group in ("stack", "reassembly", "reassembly6", "connections", "runtime"):
        lines += _flatten(group, statistics.get(group))
    for listener in statistics.get("listeners") or []:
        local = listener.get("local") or {}
        prefix = f"listener.{local.get('address', '?')}:{local.get('port', '?')}"
        lines += _flatten(prefix, {name: value for name, value in listener.items() if name != "local"})
    # Anything a newer ustack adds at the top level still shows.
    for group, value in sorted(statistics.items()):
        if group not in ("stack", "reassembly", "reassembly6", "connections", "runtime", "listeners"):
            lines += _flatten(group, value)
    return lines


def _flatten(prefix: str, value) -> list[tuple[str, object]]:
    """The numbers in `value` by dotted name: at each level the plain numbers first, by name, then
    each group of them (a plain `counters` group first, and without a word of its own)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [(prefix, value)]
    if not isinstance(value, dict):
        return []
    numbers = sorted((name, item) for name, item in value.items() if not isinstance(item, dict))
    groups = sorted((name != "counters", name) for name, item in value.items() if isinstance(item, dict))
    lines = []
    for name, item in numbers:
        lines += _flatten(f"{prefix}.{name}", item)
    for not_counters, name in groups:
        lines += _flatten(f"{prefix}.{name}" if not_counters else prefix, value[name])
    return lines

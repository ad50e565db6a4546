"""`ustack cleanup [--dry-run]`: remove what a ustack killed without warning (SIGKILL, a crash,
a power cut of its terminal) left behind.

Every ustack that builds a network writes a marker, <run directory>/<pid>.network (ustack/
network.py, write_record), naming its namespace and whether it created it. A marker whose pid no
longer runs is a leftover: its TUN device died with its file descriptor, but a namespace it
created stays until someone removes it. Only those namespaces are removed, never one a ustack
found already there, and never one whose creator still runs.

    $ sudo ustack cleanup
    removed namespace ust-lab (left by ustack serve, pid 4242)
"""

from __future__ import annotations

import sys

from .errors import CliError


def register(subparsers) -> None:
    parser = subparsers.add_parser("cleanup", help="remove the namespaces left by a ustack that was killed (SIGKILL)")
    parser.add_argument("-n", "--dry-run", action="store_true", help="only name what would be removed")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..network import leftovers, remove_leftover

    try:
        found = leftovers()
    except PermissionError as error:
        raise CliError(f"cannot read the run directory: {error.strerror} (run as root)") from None
    if not found:
        print("ustack cleanup: nothing left behind", file=sys.stderr)
        return 0
    for record in found:
        owner = f"left by {record.get('program') or 'ustack'}, pid {record['pid']}"
        name = record.get("namespace")
        what = f"namespace {name}" if name and record.get("created_namespace") else "a marker only"
        if args.dry_run:
            print(f"would remove {what} ({owner})")
            continue
        try:
            removed = remove_leftover(record)
        except OSError as error:
            raise CliError(f"cannot remove {what} ({owner}): {error.strerror or error}") from None
        print(f"removed {', '.join(removed) or 'a stale marker'} ({owner})")
    return 0

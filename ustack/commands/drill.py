"""`ustack drill SCRIPT... [--against kernel|ustack|both] [--json] [--junit FILE] [--tolerance-usecs N]
[--no-realtime] [--ignore-window]`:
packetdrill for Linux, in Python.

Against the kernel (the default), each script runs in a network namespace of its own where a TUN
device plays the remote host (ustack/conform/kernel_backend.py); against ustack, on virtual time
as `ustack conform` does (conform/driver.py); `both` runs each script twice and prints the two
verdicts side by side, then the scripts where they differ. The profile (#ifdef branches, the
suite's conventions) is chosen per script by its location (conform/profile.script_profile).
Exit status 0 when nothing failed or errored, 1 otherwise, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os

from ustack.conform.profile import PROFILE_DEFINES, script_profile
from ustack.conform.runner import ERROR, FAIL, run_path

from .arguments import check_output_file, path_value
from .conform import collect_scripts, display_path, print_summary, result_record, summarize, write_junit
from .errors import CliError
from .signals import sigterm_as_interrupt

BACKENDS = ("kernel", "ustack")


def tolerance_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of microseconds") from None
    if not 0 <= value <= 10_000_000:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..10000000 microseconds")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser("drill", help="run packetdrill scripts against the Linux kernel and/or ustack")
    parser.add_argument("paths", nargs="+", metavar="SCRIPT", help="a .pkt script or a directory of them")
    parser.add_argument("--against", choices=("kernel", "ustack", "both"), default="kernel",
                        help="the system under test (default: kernel)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON document")
    parser.add_argument("--junit", metavar="FILE", type=path_value, help="also write a JUnit XML report to FILE")
    parser.add_argument("--tolerance-usecs", type=tolerance_value, metavar="N",
                        help="timing tolerance against the kernel, at least this (packetdrill's default: 4000; "
                             "a script's own --tolerance_usecs wins if larger)")
    parser.add_argument("--no-realtime", dest="realtime", action="store_false",
                        help="against the kernel, run on the normal scheduling class (by default the drill runs "
                             "as a real-time task, so that a busy machine does not make it miss the 4 ms timing)")
    parser.add_argument("--ignore-window", action="store_true",
                        help="against the kernel, do not compare the window field and the window scale shift of "
                             "the kernel's segments (a receiver's own choice): shows how scripts written for "
                             "another system differ beyond it")
    parser.set_defaults(run=run)


def run(args) -> int:
    scripts = collect_scripts(args.paths)
    if args.junit:
        check_output_file(args.junit)
    backends = BACKENDS if args.against == "both" else (args.against,)
    if "kernel" in backends and os.geteuid() != 0:
        raise CliError("running scripts against the kernel needs root (a network namespace and a TUN device)")
    tolerance = None if args.tolerance_usecs is None else args.tolerance_usecs / 1e6
    results: dict[str, list] = {backend: [] for backend in backends}
    with sigterm_as_interrupt():  # SIGTERM ends the run through the namespace's cleanup, as Ctrl-C
        for path in scripts:
            shown = display_path(path)
            profile = script_profile(str(path.resolve()))
            defines = PROFILE_DEFINES[profile]
            row = []
            for backend in backends:
                if backend == "kernel":
                    from ustack.conform.kernel_backend import run_kernel_path  # pyroute2, only when needed

                    result = run_kernel_path(shown, defines, tolerance, args.realtime, args.ignore_window)
                else:
                    result = run_path(shown, defines, profile)
                results[backend].append(result)
                row.append(result)
            if not args.json:
                if len(backends) == 1:
                    print(row[0].text(), flush=True)
                else:
                    print(f"{row[0].status:7} {row[1].status:7} {shown}", flush=True)
    if args.json:
        document = {backend: {"results": [result_record(result) for result in rows], "summary": summarize(rows)}
                    for backend, rows in results.items()}
        if len(backends) == 2:
            document["differ"] = differing(results)
        print(json.dumps(document if len(backends) == 2 else document[backends[0]], indent=2))
    else:
        for backend, rows in results.items():
            if len(backends) == 2:
                print(f"\n{backend}:", end="")
            print_summary(summarize(rows))
        if len(backends) == 2:
            differ = differing(results)
            print(f"\n{len(differ)} scripts where the kernel and ustack differ:")
            for item in differ:
                print(f"  {item['path']}: kernel {item['kernel']}, ustack {item['ustack']}  ({item['ustack_reason']})")
    if args.junit:
        write_junit([result for rows in results.values() for result in rows], args.junit)
    every = [result for rows in results.values() for result in rows]
    return 1 if any(result.status in (FAIL, ERROR) for result in every) else 0


def differing(results: dict[str, list]) -> list[dict]:
    """The scripts whose verdict is not the same against the kernel and against ustack."""
    differ = []
    for kernel, ustack in zip(results["kernel"], results["ustack"]):
        if kernel.status != ustack.status:
            differ.append({"path": kernel.path, "kernel": kernel.status, "ustack": ustack.status,
                           "kernel_reason": kernel.reason, "ustack_reason": ustack.key or ustack.reason})
    return differ

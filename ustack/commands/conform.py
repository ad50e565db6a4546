"""`ustack conform PATH... [--json] [--junit FILE]`: run packetdrill-dialect scripts against ustack.

Each PATH is a `.pkt` file or a directory searched recursively for `*.pkt`. One line per script
(pass, fail with the first mismatch, skipped with the unsupported feature, error for a script that
does not parse), then a summary per directory. Exit status 0 when nothing failed or errored, 1
otherwise, 2 for a usage error such as a missing path.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

from ustack.conform.profile import DEFINES
from ustack.conform.runner import ERROR, FAIL, PASS, SKIPPED, Result, run_path

from .arguments import check_output_file, path_value
from .errors import CliError

STATUSES = (PASS, FAIL, SKIPPED, ERROR)


def register(subparsers) -> None:
    parser = subparsers.add_parser("conform", help="run packetdrill-dialect conformance scripts against ustack")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="a .pkt script or a directory of them")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON document")
    parser.add_argument("--junit", metavar="FILE", type=path_value, help="also write a JUnit XML report to FILE")
    parser.add_argument(
        "-D",
        dest="defines",
        action="append",
        metavar="NAME",
        help=f"take `#ifdef NAME` branches (default: {', '.join(sorted(DEFINES))})",
    )
    parser.set_defaults(run=run)


def collect_scripts(paths: list[str]) -> list[Path]:
    """The .pkt files named by `paths`, directories expanded recursively and sorted."""
    scripts = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = sorted(path.rglob("*.pkt"))
            if not found:  # a mistyped path must not pass as "nothing failed"
                raise CliError(f"no .pkt scripts in {name}")
            scripts += found
        elif path.is_file():
            if path.suffix != ".pkt":
                raise CliError(f"{name} is not a packetdrill script (those are named *.pkt)")
            scripts.append(path)
        elif path.exists():
            raise CliError(f"{name} is neither a .pkt script nor a directory")
        else:
            raise CliError(f"no such file or directory: {name}")
    return scripts


def display_path(path: Path) -> str:
    """Paths under the current directory are shown relative to it, others as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def run(args) -> int:
    scripts = collect_scripts(args.paths)
    if args.junit:
        check_output_file(args.junit)  # before the run, which can take minutes, not after it
    defines = frozenset(args.defines) if args.defines else DEFINES
    results = []
    for path in scripts:
        result = run_path(display_path(path), defines)
        results.append(result)
        if not args.json:
            print(result.text(), flush=True)
    summary = summarize(results)
    if args.json:
        print(json.dumps({"results": [result_record(result) for result in results], "summary": summary}, indent=2))
    else:
        print_summary(summary)
    if args.junit:
        write_junit(results, args.junit)
    return 1 if any(result.status in (FAIL, ERROR) for result in results) else 0


def summarize(results: list[Result]) -> dict:
    """Counts per directory, plus a "total" row."""
    per_directory: dict[str, Counter] = {}
    for result in results:
        directory = str(Path(result.path).parent)
        per_directory.setdefault(directory, Counter())[result.status] += 1
    summary = {
        directory: {status: counts[status] for status in STATUSES} for directory, counts in sorted(per_directory.items())
    }
    summary["total"] = {status: sum(row[status] for row in summary.values()) for status in STATUSES}
    return summary


def print_summary(summary: dict) -> None:
    width = max(len(name) for name in [*summary, "directory"])
    print()
    print(f"{'directory':{width}}  " + "  ".join(f"{status:>7}" for status in STATUSES))
    for directory, row in summary.items():
        print(f"{directory:{width}}  " + "  ".join(f"{row[status]:>7}" for status in STATUSES))


def result_record(result: Result) -> dict:
    record = {"path": result.path, "status": result.status, "reason": result.reason, "line": result.line}
    if result.mismatch is not None:
        record.update(
            reason=result.mismatch.reason,
            field=result.mismatch.field,
            expected=result.mismatch.expected,
            actual=result.mismatch.actual,
        )
    if result.warnings:
        record["warnings"] = result.warnings
    return record


def write_junit(results: list[Result], file_name: str) -> None:
    """One <testsuite> per directory, one <testcase> per script."""
    root = ElementTree.Element("testsuites", name="ustack conform")
    suites: dict[str, ElementTree.Element] = {}
    for result in results:
        directory = str(Path(result.path).parent)
        suite = suites.get(directory)
        if suite is None:
            suite = suites[directory] = ElementTree.SubElement(root, "testsuite", name=directory)
        case = ElementTree.SubElement(suite, "testcase", classname=directory, name=Path(result.path).name)
        message = result.mismatch.reason if result.mismatch else result.reason
        if result.status == FAIL:
            element = ElementTree.SubElement(case, "failure", message=message)
            element.text = result.mismatch.text() if result.mismatch else message
        elif result.status == ERROR:
            ElementTree.SubElement(case, "error", message=message)
        elif result.status == SKIPPED:
            ElementTree.SubElement(case, "skipped", message=message)
    for directory, suite in suites.items():
        cases = [result for result in results if str(Path(result.path).parent) == directory]
        counts = Counter(result.status for result in cases)
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(counts[FAIL]))
        suite.set("errors", str(counts[ERROR]))
        suite.set("skipped", str(counts[SKIPPED]))
    try:
        ElementTree.ElementTree(root).write(file_name, encoding="utf-8", xml_declaration=True)
    except OSError as error:
        raise CliError(f"cannot write {file_name}: {error.strerror}") from None



#!/usr/bin/env python3
"""How far `ustack drill --against kernel` agrees with Google's packetdrill on the Linux suite.

    sudo .venv/bin/python scripts/drill_agreement.py [--suite DIR] [--json RESULTS] [--tolerance-usecs N]

Runs `ustack drill --against kernel --json` on DIR/tcp (or reads the results of such a run from
--json), reads DIR/BASELINE.md (packetdrill's own verdicts, run twice on this machine's kernel) and
prints, per baseline class (pass both runs / fail both runs / differ between runs), how many scripts
ustack drill passed, failed, skipped or could not parse; then the goal figure (scripts packetdrill
passes every time that ustack drill passes too) and every script where the two disagree, with
ustack drill's reason.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

DEFAULT_SUITE = Path("/work/shared/conformance/packetdrill-linux")
ROW = re.compile(r"^\| (tcp/\S+\.pkt) \| (pass|fail) \| (pass|fail) \|")
STATUSES = ("pass", "fail", "skipped", "error")


def baseline(path: Path) -> dict[str, str]:
    """script -> "pass" (both runs), "fail" (both runs) or "differ"."""
    verdicts = {}
    for line in path.read_text().splitlines():
        match = ROW.match(line)
        if match:
            name, first, second = match.groups()
            verdicts[name] = first if first == second else "differ"
    return verdicts


def run_drill(directory: Path, target: str, options: list[str]) -> dict:
    """`ustack drill --against kernel --json OPTIONS TARGET` run in `directory`, its JSON report
    (also used by drill_freebsd_differences.py). Exit status 1 means scripts failed, not the run."""
    command = [sys.executable, "-m", "ustack", "drill", "--against", "kernel", *options, "--json", target]
    done = subprocess.run(command, cwd=directory, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.exit(f"ustack drill failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE)
    parser.add_argument("--json", type=Path, help="results of an earlier `ustack drill --json` run of DIR/tcp")
    parser.add_argument("--tolerance-usecs", type=int)
    args = parser.parse_args()
    reference = baseline(args.suite / "BASELINE.md")
    document = json.loads(args.json.read_text()) if args.json else run_drill(args.suite, "tcp", [] if args.tolerance_usecs is None else ["--tolerance-usecs", str(args.tolerance_usecs)])
    ours = {record["path"]: record for record in document["results"]}
    table: dict[str, Counter] = {}
    for name, verdict in reference.items():
        record = ours.get(name)
        table.setdefault(verdict, Counter())[record["status"] if record else "missing"] += 1
    print(f"{'packetdrill (2 runs)':22}" + "".join(f"{status:>9}" for status in (*STATUSES, "missing")) + "    all")
    for verdict in ("pass", "fail", "differ"):
        row = table.get(verdict, Counter())
        print(f"{verdict:22}" + "".join(f"{row[status]:>9}" for status in (*STATUSES, "missing"))
              + f"{sum(row.values()):>7}")
    passing = table.get("pass", Counter())
    total = sum(passing.values())
    share = 100.0 * passing["pass"] / total if total else 0.0
    print(f"\ngoal: of the {total} scripts packetdrill passes every time, ustack drill passes "
          f"{passing['pass']} ({share:.1f} %; goal >= 95 %)")
    failing = table.get("fail", Counter())
    print(f"too lenient? scripts packetdrill fails every time that ustack drill passes: {failing['pass']}")
    print("\nwhere they disagree (packetdrill passes, ustack drill does not; or the reverse):")
    for name, verdict in sorted(reference.items()):
        record = ours.get(name, {"status": "missing", "reason": "", "line": None})
        if (verdict == "pass") != (record["status"] == "pass") and verdict != "differ":
            where = f":{record['line']}" if record.get("line") else ""
            reason = (record.get("reason") or "").splitlines()[0][:110] if record.get("reason") else ""
            print(f"  {name}{where}  packetdrill {verdict}, ustack drill {record['status']}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The libFuzzer target over the C parsers (fuzz/fuzz_wire.c) builds with clang's sanitizers and
survives a short run. The long run is `scripts/fuzz` (one million executions by default).
clang must be installed: this test FAILS without it (scripts/test installs it)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from wire_packets import require_tool

ROOT = Path(__file__).resolve().parents[2]


def test_fuzz_target_short_run(tmp_path):
    require_tool("clang", "clang libclang-rt-14-dev")
    environment = dict(os.environ, FUZZ_BUILD_DIR=str(tmp_path / "fuzz"))
    result = subprocess.run([str(ROOT / "scripts" / "fuzz"), "20000"], cwd=ROOT, env=environment, capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    report = result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0, f"scripts/fuzz failed:\n{report}"
    assert "20000 runs, no finding" in result.stdout, report
    assert "Done 20000 runs" in result.stdout, report

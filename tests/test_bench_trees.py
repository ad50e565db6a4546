"""scripts/bench_trees.py refuses what it cannot measure with one line each, before it makes any
namespace or starts any server (its measurement itself runs by hand: it takes minutes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bench_trees.py"


def run(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("arguments, said", [
    ((f"only={ROOT}",), "give two trees or more to compare"),
    ((f"same={ROOT}", f"same={ROOT}"), "each tree needs a label of its own"),
    ((f"a={ROOT}", "b=/nonexistent/tree"), "/nonexistent/tree has no ustack/ in it"),
    ((f"a={ROOT}", str(ROOT)), "is not LABEL=TREE"),
    ((f"a={ROOT}", f"b={ROOT}", "--rounds", "0"), "--rounds, --connections, --echoes and --upload must be at least 1"),
    ((f"a={ROOT}", f"b={ROOT}", "--upload", "0"), "--rounds, --connections, --echoes and --upload must be at least 1"),
])
def test_a_wrong_argument_gets_one_line_and_no_run(arguments, said):
    result = run(*arguments)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert said in last and "Traceback" not in result.stderr, result.stderr


def test_a_tree_label_and_path_are_read_as_given(monkeypatch):
    monkeypatch.chdir(ROOT)
    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_trees import parse_tree

    assert parse_tree(f"before={ROOT}") == ("before", ROOT)
    assert parse_tree("after=.")[1] == Path(".").resolve()

"""docs/state-diagram.md is generated from ustack.tcp.state: it must not drift from the table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ustack.tcp.state import FIGURE_5, NOT_IN_FIGURE, TRANSITIONS

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_state_diagram", ROOT / "scripts" / "gen_state_diagram.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_state_diagram_is_the_generated_one():
    committed = (ROOT / "docs" / "state-diagram.md").read_text(encoding="utf-8")
    assert committed == _generator().render(), "run scripts/gen_state_diagram.py and commit docs/state-diagram.md"


def test_every_transition_of_the_table_is_drawn_and_listed():
    text = _generator().render()
    for (old, new) in TRANSITIONS:
        assert f"| {old.value} | {new.value} |" in text
    for (old, new) in FIGURE_5:
        assert f"    {old.name} --> {new.name} : " in text
    arrows = [line for line in text.splitlines() if " --> " in line and not line.strip().startswith("[*]")]
    assert len(arrows) == len(FIGURE_5) + len(NOT_IN_FIGURE)

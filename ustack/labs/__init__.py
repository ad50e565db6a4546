"""Teaching labs: each one sets up a private network namespace, runs ustack in this process
against the Linux kernel's own TCP, makes one part of RFC 9293 happen on purpose, and prints the
ladder diagram with both sides' states, what `ss` said at the key moment, and an explanation.

    ustack lab list
    sudo ustack lab handshake [--pcap FILE] [--svg FILE]

Each lab is a module here with NAME, SUMMARY and `run(options) -> LabResult`. The frame they
share is session.py (ustack.network's network, kernel peer, ss), watch.py (the scene's ladder,
fed by ustack.trace.live's pipeline, and the gate on the wire) and result.py (what a lab returns). The tutorial (docs/tutorial.md) walks through them in
the order below.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .result import LabResult, Scene, SegmentFact, SsSnapshot
from .session import LabError, LabOptions

# In the tutorial's order: each lab builds on the ones before it.
LAB_MODULES = {
    "handshake": "handshake",
    "syn-received": "syn_received",
    "time-wait": "time_wait",
    "simultaneous-close": "simultaneous_close",
    "half-close": "half_close",
    "reset": "reset",
    "syn-flood": "syn_flood",
    "retransmit": "retransmit",
    "zero-window": "zero_window",
    "urgent": "urgent",
    "tail-loss": "tail_loss",
    "congestion": "congestion",
}


def names() -> list[str]:
    return list(LAB_MODULES)


def get(name: str) -> ModuleType:
    """The lab module called `name`; KeyError for an unknown name."""
    return importlib.import_module(f"{__name__}.{LAB_MODULES[name]}")


def summaries() -> list[tuple[str, str]]:
    return [(name, get(name).SUMMARY) for name in LAB_MODULES]


def run(name: str, options: LabOptions | None = None) -> LabResult:
    return get(name).run(options or LabOptions())


__all__ = ["LAB_MODULES", "LabError", "LabOptions", "LabResult", "Scene", "SegmentFact", "SsSnapshot", "get", "names", "run", "summaries"]

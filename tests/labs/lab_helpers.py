"""Small checks shared by the lab tests."""

from __future__ import annotations

from ustack.tcp.state import State
from ustack.trace.model import Arrow, Ladder, StateMark


def in_order(expected: list[str], actual: list[str]) -> bool:
    """True when `expected` appears in `actual` in this order (other items may come between)."""
    remaining = iter(actual)
    return all(any(item == wanted for item in remaining) for wanted in expected)


def state_when_sent(ladder: Ladder, arrow: Arrow) -> State | None:
    """The state the arrow's sender was in (its last mark before the arrow)."""
    state = None
    for item in ladder.items:
        if item is arrow:
            return state
        if isinstance(item, StateMark) and item.side == arrow.from_side:
            state = item.state
    raise AssertionError("arrow not in ladder")


def ratio(later: float, earlier: float) -> float:
    return later / earlier if earlier else float("inf")

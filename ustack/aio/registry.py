"""Every running AsyncStack of this process, answering `ustack ss` and `ustack stats`.

The control socket is one per process (/run/ustack/<pid>.sock, ustack/control.py), while a process
may run several AsyncStacks (two hosts over a memory link, the blocking facade's thread beside an
asyncio program). So the stacks register here, and the first one to register starts the one
ControlServer, whose answers cover them all: the connections of every stack, the addresses joined
by ", ", and the statistics of each stack: `statistics` is the first one's (what a reader that
knows one stack per process reads) and, with two stacks or more, `stacks` lists every stack with
its own program name, addresses and statistics, so that `ustack stats` shows each (`stack=2/3`).
A stack running on another thread's loop (a ustack.sock network) is read on its own loop. When
the stack whose loop runs the server stops, the server moves to the next registered stack on the
same loop, if there is one.

Registering never stops a program: if the socket cannot be made (no permission for the run
directory), that is logged and the stack runs unseen by `ustack ss`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import sys
from typing import Any

from ..control import QUERY_TIMEOUT, ControlServer, stack_statistics, to_jsonable
from ..wire.ipv4 import address_text

logger = logging.getLogger("ustack.aio")

# How long the control socket waits for another thread's loop to read its stack's counters: well
# within the reader's own wait for the whole answer (control.QUERY_TIMEOUT).
STATISTICS_WAIT = QUERY_TIMEOUT / 4

_stacks: list[Any] = []  # registered AsyncStacks, oldest first
_control: ControlServer | None = None
_control_loop: asyncio.AbstractEventLoop | None = None


def default_program() -> str:
    """How `ustack ss` names a Python program that did not say: 'python NAME' of its script."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return f"python {script}".strip()


def registered() -> list[Any]:
    """The AsyncStacks currently registered (oldest first)."""
    return list(_stacks)


async def register(astack: Any) -> None:
    """Make `astack` visible to `ustack ss` (its loop must be the running one)."""
    global _control, _control_loop
    if _control_loop is not None and _control_loop.is_closed():
        _control, _control_loop = None, None  # its loop ended without closing it: its socket is dead
        _stacks[:] = [other for other in _stacks if other.loop is not None and not other.loop.is_closed()]
    _stacks.append(astack)
    if _control is None:
        await _start_control(astack)


async def unregister(astack: Any) -> None:
    """The stack stops: it leaves the answers; the server closes if nobody else is left on it."""
    global _control, _control_loop
    if astack in _stacks:
        _stacks.remove(astack)
    if _control is None or _control_loop is not asyncio.get_running_loop():
        return
    if any(other.loop is _control_loop for other in _stacks):
        return  # another stack on this loop keeps the server running
    control, _control, _control_loop = _control, None, None
    await control.close()
    running = asyncio.get_running_loop()
    successor = next((other for other in _stacks if other.loop is running), None)
    if successor is not None:
        await _start_control(successor)


async def _start_control(astack: Any) -> None:
    global _control, _control_loop
    control = _ProcessControl(_snapshots, program=astack.program, address=_addresses(), statistics_provider=_statistics)
    try:
        await control.start()
    except OSError as error:
        logger.info("ustack: no control socket (%s); this program will not show in `ustack ss`", error)
        return
    _control, _control_loop = control, asyncio.get_running_loop()


class _ProcessControl(ControlServer):
    """The process's ControlServer, naming the addresses of the stacks registered right now."""

    def answer_for(self, request: dict) -> dict:
        self.address = _addresses()
        answer = super().answer_for(request)
        stacks = list(_stacks)
        if isinstance(answer.get("statistics"), dict) and len(stacks) > 1:
            answer["stacks"] = [
                {"index": index, "count": len(stacks), "program": astack.program, "address": _address_of(astack),
                 "statistics": answer["statistics"] if index == 1 else to_jsonable(_statistics_of(astack))}
                for index, astack in enumerate(stacks, 1)
            ]
        return answer


def _snapshots() -> list:
    return [snapshot for astack in list(_stacks) for snapshot in astack.snapshots()]


def _address_of(astack: Any) -> str:
    """A stack's addresses: IPv4, IPv6 or both ("10.77.0.2 fd00:77::2")."""
    stack = astack.stack
    return " ".join(address_text(address) for address in (stack.address, getattr(stack, "address6", None))
                    if address is not None)


def _addresses() -> str:
    return ", ".join(_address_of(astack) for astack in list(_stacks))


def _statistics() -> dict:
    stacks = list(_stacks)
    if not stacks:
        return {}
    return _statistics_of(stacks[0])


def _statistics_of(astack: Any) -> dict:
    """stack_statistics of one stack, read on the loop that runs it: a stack of a ustack.sock
    network runs on a thread of its own, and its counters change while that loop runs."""
    loop = getattr(astack, "loop", None)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is None or loop is running or loop.is_closed() or not loop.is_running():
        return stack_statistics(astack.stack, astack)
    future = asyncio.run_coroutine_threadsafe(_read_statistics(astack), loop)
    try:
        return future.result(timeout=STATISTICS_WAIT)
    except (TimeoutError, concurrent.futures.TimeoutError):
        future.cancel()
        return {"error": f"its loop did not answer within {STATISTICS_WAIT} s"}


async def _read_statistics(astack: Any) -> dict:
    return stack_statistics(astack.stack, astack)

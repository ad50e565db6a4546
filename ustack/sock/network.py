"""StackThread: one ustack host for blocking code, its stack driven by one background thread.

The thread runs an asyncio loop with the runtime (ustack.aio), one thread for the whole stack,
never one per connection. Each socket call hands a coroutine to that loop
(`asyncio.run_coroutine_threadsafe`) and waits for its result. Timeouts are enforced inside the
loop, so a call that times out has done nothing: no byte is lost.
"""

from __future__ import annotations

import asyncio
import errno
import threading
from typing import Any, Awaitable, Callable

from ..aio import AsyncStack
from ..aio.errors import os_error

_DEFAULT_TIMEOUT = object()  # "not given", as socket._GLOBAL_DEFAULT_TIMEOUT
_default_timeout: list[float | None] = [None]  # sock.setdefaulttimeout's value (a list: one shared cell)


def _timed_out() -> TimeoutError:
    return TimeoutError(errno.ETIMEDOUT, "timed out")


class StackThread:
    """The Stack and its link, driven by one background thread (sockets.Network adds the sockets)."""

    def __init__(self, stack: Any, link: Any, *, default_timeout: float | None = None, control: bool = True,
                 program: str | None = None) -> None:
        self.stack = stack
        self.link = link
        # For new sockets; None: sock.getdefaulttimeout(), like socket.setdefaulttimeout.
        self.default_timeout = default_timeout
        self.runtime = AsyncStack(stack, link, control=control, program=program)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="ustack-runtime", daemon=True)
        self._thread.start()
        self._closed = False
        try:
            self.call(self.runtime.start())
        except BaseException:
            self._stop_thread()
            raise

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def call(self, coroutine: Awaitable[Any], timeout: float | None = None) -> Any:
        """Run `coroutine` on the stack's loop and wait for its result. With a timeout the
        coroutine is cancelled inside the loop when the time is up, and TimeoutError(ETIMEDOUT)
        is raised."""
        if self._closed:
            coroutine.close()  # type: ignore[attr-defined]
            raise os_error(errno.ENETDOWN, "the ustack network is closed")
        if threading.current_thread() is self._thread:
            raise RuntimeError("blocking socket calls cannot be made from the stack's own thread")
        return asyncio.run_coroutine_threadsafe(_bounded(coroutine, timeout), self._loop).result()

    def snapshots(self) -> list[Any]:
        return self.call(_as_coroutine(self.runtime.snapshots))

    def close(self) -> None:
        """Reset what is still open, stop the thread. The link stays open (its owner closes it)."""
        if self._closed:
            return
        try:
            self.call(self.runtime.close())
        finally:
            self._stop_thread()

    def _stop_thread(self) -> None:
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> "StackThread":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()



async def _bounded(coroutine: Awaitable[Any], timeout: float | None) -> Any:
    if timeout is None:
        return await coroutine
    task = asyncio.ensure_future(coroutine)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        if timeout == 0:  # a non-blocking socket (setblocking(False)): it would have waited
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        raise _timed_out()
    return task.result()


async def _as_coroutine(function: Callable[[], Any]) -> Any:
    return function()

"""A ControlServer on an event loop in a background thread, as a running ustack has: for the tests
of the commands that read control sockets (`ustack ss`, `ustack stats`)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from ustack.control import ControlServer


class ControlThread:
    def __init__(self, provider, directory: Path, statistics_provider=None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.loop.time = lambda: 1000.0  # the answer's "now", so timer countdowns are exact
        self.control = ControlServer(provider, program="ustack serve", address="10.77.0.2", directory=directory,
                                     statistics_provider=statistics_provider)
        asyncio.run_coroutine_threadsafe(self.control.start(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.control.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

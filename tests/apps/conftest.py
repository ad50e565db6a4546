"""The apps are asyncio stream handlers, so they are tested on the kernel's own TCP on 127.0.0.1:
an asyncio server runs in a background thread and real clients (curl, http.client, sockets) talk
to it. Nothing here leaves loopback. (test_http_upload_streams.py runs its tests on ustack's own
streams too, two stacks over tests/stack's memory link.)"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import pytest

# The two-hosts helpers of tests/stack, for the tests that run the apps on ustack's own streams too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "stack"))


class ServerThread:
    """`asyncio.start_server(handler, "127.0.0.1", 0)` on an event loop in its own thread."""

    def __init__(self, handler) -> None:
        self.connections_seen = 0
        self.handlers_finished = threading.Semaphore(0)
        self.errors: list[BaseException] = []

        self.handler_tasks: set[asyncio.Task] = set()

        async def counting_handler(reader, writer):
            self.connections_seen += 1
            task = asyncio.current_task()
            self.handler_tasks.add(task)
            try:
                await handler(reader, writer)
            except asyncio.CancelledError:
                raise  # the fixture's shutdown cancels handlers still waiting (keep-alive)
            except BaseException as error:  # a handler must never raise; record it for the test
                self.errors.append(error)
                raise
            finally:
                self.handler_tasks.discard(task)
                self.handlers_finished.release()

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        start = asyncio.start_server(counting_handler, "127.0.0.1", 0)
        self.server = asyncio.run_coroutine_threadsafe(start, self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    def wait_handler_finished(self, timeout: float = 10) -> None:
        assert self.handlers_finished.acquire(timeout=timeout), "the handler did not finish"

    def close(self) -> None:
        async def shutdown():
            self.server.close()
            # A handler may still be waiting for a keep-alive client's next request: cancel it
            # and let it finish here, rather than have the closing loop destroy it mid-await.
            for task in list(self.handler_tasks):
                task.cancel()
            await asyncio.gather(*self.handler_tasks, return_exceptions=True)
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def serve_on_loopback():
    servers: list[ServerThread] = []

    def start(handler) -> ServerThread:
        server = ServerThread(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
        assert not server.errors, f"handler raised: {server.errors!r}"

"""The web view's server: aiohttp on the host's loopback, through the kernel's own sockets (never
through ustack), in a thread of its own with its own event loop, so that the page stays up while
a lab starts and stops its stacks, and a slow browser never holds up the stack.

    view = WebView(feed, "127.0.0.1", 8077)
    view.start()            # OSError if the port is taken; then http://127.0.0.1:8077/ serves:
    ...                     #   /              the page (static/index.html, plain JS and SVG)
    view.stop()             #   /diagram.svg   the RFC 9293 state diagram (ustack/web/diagram.py)
                            #   /events        the feed's messages as server-sent events
                            #   /labs, POST /labs/NAME   the labs, and "start this lab" (when
                            #                  a `lab_starter` is given: `ustack lab --web`)

Each page gets a queue of at most MAX_QUEUED messages; a page that falls that far behind is cut
off, and its browser's EventSource reconnects and starts again from a fresh `hello`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import threading
from collections.abc import Callable
from pathlib import Path

from .diagram import state_diagram_svg
from .feed import WebFeed

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8077
MAX_QUEUED = 2000  # messages waiting for one page
STATIC = Path(__file__).with_name("static")
KEEPALIVE = 15.0  # seconds between comments on an idle event stream (proxies close silent ones)


class WebAddressError(ValueError):
    """A --web value that cannot be used (one line for the user)."""


def parse_web_address(text: str, allow_remote: bool = False) -> tuple[str, int]:
    """'8077', ':8077', '127.0.0.1:8077' or '[::1]:8077' -> (address, port). Only loopback
    addresses unless `allow_remote`: the page shows every packet of the stack to whoever loads it."""
    address, _, port_text = text.rpartition(":")
    address = address.strip("[]") or DEFAULT_ADDRESS
    try:
        port = int(port_text, 10)
    except ValueError:
        raise WebAddressError(f"--web {text!r}: expected [ADDR:]PORT, like {DEFAULT_ADDRESS}:{DEFAULT_PORT}") from None
    if not 1 <= port <= 65535:
        raise WebAddressError(f"--web {text!r}: port {port} is outside 1..65535")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise WebAddressError(f"--web {text!r}: {address!r} is not an IP address") from None
    if not ip.is_loopback and not allow_remote:
        raise WebAddressError(f"--web {text!r}: {address} is not a loopback address; the page shows all of "
                              "ustack's traffic, so add --web-remote to serve it beyond this machine")
    return str(ip), port


class WebView:
    def __init__(self, feed: WebFeed, address: str = DEFAULT_ADDRESS, port: int = DEFAULT_PORT,
                 lab_starter: Callable[[str], str | None] | None = None, labs: list[tuple[str, str]] | None = None) -> None:
        self.feed = feed
        self.address = address
        self.port = port
        self.lab_starter = lab_starter  # name -> None if started, else why not (one line)
        self.labs = labs or []
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner = None
        self._queues: set[asyncio.Queue] = set()
        self._stopping: asyncio.Event | None = None

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/"

    # --- life ------------------------------------------------------------------------------------

    def start(self) -> "WebView":
        """Serve, from a thread of our own; OSError (port taken, ...) is raised here."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = self.loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._start())
            except BaseException as error:  # reported to start()'s caller
                failure.append(error)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_until_complete(self._stopping.wait())
                loop.run_until_complete(self._runner.cleanup())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="ustack-web", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            raise failure[0]
        self.feed.listeners.append(self._deliver)
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._deliver in self.feed.listeners:
            self.feed.listeners.remove(self._deliver)
        loop, stopping = self.loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._close_streams)
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:
                pass  # the loop has already stopped
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> "WebView":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    async def _start(self) -> None:
        from aiohttp import web

        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/diagram.svg", self._diagram)
        app.router.add_get("/events", self._events)
        app.router.add_get("/labs", self._labs)
        app.router.add_post("/labs/{name}", self._start_lab)
        app.router.add_static("/static/", STATIC)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise

    # --- from the stack's thread ---------------------------------------------------------------

    def _deliver(self, message: dict) -> None:
        """A feed listener: hand the message to every page, on the server's own loop."""
        loop = self.loop
        if loop is None or loop.is_closed() or not self._queues:
            return
        text = json.dumps(message, separators=(",", ":"))
        try:
            loop.call_soon_threadsafe(self._enqueue, text)
        except RuntimeError:
            pass  # the server is stopping

    def _enqueue(self, text: str) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:  # a page too far behind: cut it off; it reconnects
                self._queues.discard(queue)

    def _close_streams(self) -> None:
        for queue in self._queues:
            try:
                queue.put_nowait(None)
            except asyncio.QueueFull:
                pass

    # --- the handlers ------------------------------------------------------------------------------

    async def _index(self, request):
        from aiohttp import web

        return web.FileResponse(STATIC / "index.html")

    async def _diagram(self, request):
        from aiohttp import web

        return web.Response(text=state_diagram_svg(), content_type="image/svg+xml")

    async def _labs(self, request):
        from aiohttp import web

        return web.json_response({"can_start": self.lab_starter is not None,
                                  "labs": [{"name": name, "summary": summary} for name, summary in self.labs]})

    async def _start_lab(self, request):
        from aiohttp import web

        if self.lab_starter is None:
            return web.json_response({"error": "this ustack does not run labs (start it with ustack lab NAME --web)"},
                                     status=409)
        name = request.match_info["name"]
        problem = self.lab_starter(name)
        if problem:
            return web.json_response({"error": problem}, status=409)
        return web.json_response({"started": name})

    async def _events(self, request):
        from aiohttp import web

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        queue: asyncio.Queue = asyncio.Queue(maxsize=MAX_QUEUED)
        self._queues.add(queue)
        try:
            hello = json.dumps(self.feed.hello(), separators=(",", ":"))
            await response.write(f"data: {hello}\n\n".encode())
            while queue in self._queues or not queue.empty():
                try:
                    text = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except asyncio.TimeoutError:
                    await response.write(b": still here\n\n")
                    continue
                if text is None:
                    break
                await response.write(f"data: {text}\n\n".encode())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._queues.discard(queue)
        return response

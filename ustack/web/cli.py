"""The `--web [ADDR:]PORT` flag of `ustack serve` and `ustack lab`, kept here so that the commands
only add a few lines: the flag itself, the feed that follows the command's WireWatch, and the
server with its snapshot sampler, started and stopped with the stack.

    parser: add_web_arguments(parser)
    serve:  feed = make_feed(args, "ustack serve"); watch = follow(watch, feed)
            web = await start_web(args, feed, astack.snapshots)   # CliError if it cannot
            ...
            await web.close()
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable

from ..commands.errors import CliError
from .feed import WebFeed
from .server import DEFAULT_ADDRESS, DEFAULT_PORT, WebAddressError, WebView, parse_web_address


def web_address(text: str) -> str:
    """argparse type: the syntax only (the loopback rule waits for --web-remote)."""
    try:
        parse_web_address(text, allow_remote=True)
    except WebAddressError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--web ")) from None
    return text


def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("live view in the browser")
    group.add_argument("--web", metavar="[ADDR:]PORT", nargs="?", type=web_address,
                       const=f"{DEFAULT_ADDRESS}:{DEFAULT_PORT}", default=None,
                       help=f"serve a live page (connections, ladder, state diagram, packets, charts) on this "
                            f"host's loopback (default {DEFAULT_ADDRESS}:{DEFAULT_PORT})")
    group.add_argument("--web-remote", action="store_true",
                       help="allow --web on an address other than loopback (the page shows all of ustack's traffic)")


def web_endpoint(args) -> tuple[str, int] | None:
    if getattr(args, "web", None) is None:
        return None
    try:
        return parse_web_address(args.web, allow_remote=args.web_remote)
    except WebAddressError as error:
        raise CliError(str(error)) from None


def make_feed(args, title: str) -> WebFeed | None:
    """The feed --web asks for (the loopback rule checked now, before anything is built), or None."""
    return WebFeed(title) if web_endpoint(args) is not None else None


def follow(watch, feed: WebFeed | None):
    """The WireWatch for the network: `watch` (the --ladder one) with the feed following it, or a
    plain WireWatch that only feeds it; `watch` unchanged without --web."""
    if feed is None:
        return watch
    if watch is None:
        from ..trace.live import WireWatch

        watch = WireWatch()
    watch.followers.append(feed)
    return watch


def open_view(args, feed: WebFeed, **options) -> WebView:
    """The server, started (in its own thread); a port in use or a bad address is one line."""
    address, port = web_endpoint(args)
    view = WebView(feed, address, port, **options)
    try:
        return view.start()
    except ImportError:
        raise CliError("--web needs aiohttp: pip install 'ustack[web]'") from None
    except OSError as error:
        raise CliError(f"--web {args.web}: cannot listen on {address}:{port}: {error.strerror or error}") from None


class RunningWeb:
    """The view and the task that samples the connections for it, on the stack's loop."""

    def __init__(self, view: WebView | None, sampler: asyncio.Task) -> None:
        self.view = view
        self.sampler = sampler

    async def close(self) -> None:
        self.sampler.cancel()
        try:
            await self.sampler
        except asyncio.CancelledError:
            pass
        if self.view is not None:
            self.view.stop()


async def start_web(args, feed: WebFeed, snapshots, view: WebView | None = None) -> RunningWeb:
    """Start the view (unless already running: a lab's view outlives each lab) and the sampler."""
    from . import sample_snapshots

    loop = asyncio.get_running_loop()
    feed.schedule = loop.call_soon  # one ladder message per round of the runtime
    owned = view is None
    if owned:
        view = open_view(args, feed)
    sampler = loop.create_task(sample_snapshots(feed, snapshots))
    return RunningWeb(view if owned else None, sampler)


class LabRequests:
    """The labs the page asks for ("start lab" buttons, from the server's thread), run one at a
    time by the command's own thread: `ustack lab NAME --web` keeps its page up after NAME."""

    def __init__(self, names: list[str]) -> None:
        import queue

        self.names = set(names)
        self.running: str | None = None
        self._queue: queue.Queue[str] = queue.Queue(maxsize=1)

    def request(self, name: str) -> str | None:
        """None if the lab will start, else why not (one line for the page)."""
        import queue

        if name not in self.names:
            return f"no lab named {name!r}"
        if self.running is not None:
            return f"lab {self.running} is still running"
        try:
            self._queue.put_nowait(name)
        except queue.Full:
            return "another lab is about to start"
        return None

    def next(self, poll: float = 0.5) -> str:
        """The next lab asked for; waits (Ctrl-C stops the wait)."""
        import queue

        while True:
            try:
                return self._queue.get(timeout=poll)  # a timeout, so that Ctrl-C is seen at once
            except queue.Empty:
                continue


def run_labs_with_web(args, run_one: Callable[[str, WebFeed], None], names: list[tuple[str, str]]) -> int:
    """`ustack lab NAME --web`: NAME, then whatever the page asks for, until Ctrl-C or SIGTERM."""
    import sys

    feed = make_feed(args, f"ustack lab {args.name}")
    requests = LabRequests([name for name, _ in names])
    view = open_view(args, feed, lab_starter=requests.request, labs=names)
    print(f"web    : {view.url} (this host's browser)", file=sys.stderr, flush=True)
    try:
        name = args.name
        while True:
            requests.running = name
            feed.title = f"ustack lab {name}"
            try:
                run_one(name, feed)
            finally:
                requests.running = None
            print(f"ustack: lab {name} done; the page stays at {view.url}: start a lab there, or Ctrl-C to stop",
                  file=sys.stderr, flush=True)
            name = requests.next()
    except KeyboardInterrupt:  # the normal end of a lab with a page (SIGTERM too)
        return 0
    finally:
        view.stop()

"""The live view in the browser (`ustack serve --web`, `ustack lab NAME --web`): an observer above
ustack/aio, fed by the same events as the tracer, `ss` and the labs.

- feed.py: WebFeed, a follower of the WireWatch pipeline (ustack/trace/live.py) and a reader of
  the connections' snapshots, turning both into JSON messages;
- server.py: WebView, aiohttp on the host's loopback in a thread of its own, sending those
  messages to each page as server-sent events;
- diagram.py: the RFC 9293 state diagram as SVG, from the core's transition table;
- static/: the page (plain JavaScript and SVG, nothing fetched from elsewhere).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .feed import SAMPLE_INTERVAL, WebFeed
from .server import DEFAULT_ADDRESS, DEFAULT_PORT, WebAddressError, WebView, parse_web_address


async def sample_snapshots(feed: WebFeed, snapshots: Callable[[], list], interval: float = SAMPLE_INTERVAL) -> None:
    """Give `feed` the connections' snapshots every `interval` seconds, until cancelled; run it
    on the stack's own loop (snapshots read the stack)."""
    loop = asyncio.get_running_loop()
    while True:
        feed.sample(loop.time(), snapshots())
        await asyncio.sleep(interval)


__all__ = ["DEFAULT_ADDRESS", "DEFAULT_PORT", "WebAddressError", "WebFeed", "WebView", "parse_web_address",
           "sample_snapshots"]

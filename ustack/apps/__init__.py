"""Small servers that ustack runs, written as plain asyncio stream handlers.

Each app is `async def handle(reader, writer)` (or a factory returning one), the shape
`asyncio.start_server` expects. The same handler therefore runs on the kernel's TCP (the tests in
tests/apps use asyncio on 127.0.0.1) and on ustack's (`AsyncStack.start_server`), which is what
makes the two easy to compare.

- http.py     HTTP/1.1 static files, uploads, keep-alive (the protocol work is done by h11)
- echo.py     RFC 862: sends back what it receives
- discard.py  RFC 863: reads and throws away
- chargen.py  RFC 864: sends a rotating pattern of printable characters until the client leaves
- closing.py  what they all do last: close and wait, whatever state the client left
"""

from __future__ import annotations

from .chargen import handle_chargen
from .discard import handle_discard
from .echo import handle_echo
from .http import HttpFileServer

__all__ = ["HttpFileServer", "handle_chargen", "handle_discard", "handle_echo"]

# Well-known ports of the services (RFC 862, 863, 864; HTTP is 80).
ECHO_PORT = 7
DISCARD_PORT = 9
CHARGEN_PORT = 19
HTTP_PORT = 80

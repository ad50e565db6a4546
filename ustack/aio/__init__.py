"""The asyncio runtime: the sans-IO stack driven by an event loop, with the standard asyncio
Transport/Protocol and StreamReader/StreamWriter API on top.

    from ustack.aio import open_tun_stack

    async with open_tun_stack(namespace="ust-demo") as astack:   # ustack 10.77.0.2, kernel 10.77.0.1
        server = await astack.start_server(handle, port=7)
        reader, writer = await astack.open_connection("10.77.0.1", 80)

`AsyncStack(Stack("10.77.0.2"), link)` runs a stack over any link (a memory link between two
stacks in one process, for instance); `open_tun_stack` builds the TUN device around it.
"""

from __future__ import annotations

from .errors import exception_for
from .runtime import AsyncStack
from .server import Server, ServerSocket
from .transport import TcpTransport
from .tun import open_tun_stack

__all__ = ["AsyncStack", "Server", "ServerSocket", "TcpTransport", "exception_for", "open_tun_stack"]

"""The asyncio runtime: the sans-IO stack driven by an event loop, with the standard asyncio
Transport/Protocol and StreamReader/StreamWriter API on top.

    from ustack.aio import AsyncStack
    async with AsyncStack(stack, link) as astack:
        server = await astack.start_server(handle, port=7)
        reader, writer = await astack.open_connection("10.77.0.1", 80)
"""

from .errors import exception_for
from .runtime import AsyncStack
from .server import Server
from .transport import TcpTransport

__all__ = ["AsyncStack", "Server", "TcpTransport", "exception_for"]

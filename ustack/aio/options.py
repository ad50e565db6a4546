"""The keyword arguments of asyncio's create_connection / create_server, read for ustack.

The standard ones are taken; those ustack cannot honour raise ValueError saying why (`ssl` until
it is supported, `sock`, another address family, `reuse_port`), never silently ignored. Names
ustack does not know at all are a TypeError, as in asyncio.
"""

from __future__ import annotations

import dataclasses
import errno
import socket
from typing import Any

from ..tcp.config import TcpConfig
from ..wire.ipv4 import address_text, address_value
from .errors import os_error


def _address_or_none(host: str) -> int | None:
    try:
        return address_value(host)
    except ValueError:
        return None


# Keyword arguments of asyncio's create_connection / create_server that ustack takes as they are:
# name resolution hints (ustack resolves no names) and choices between several addresses (a ustack
# host has one).
_IGNORED_OPTIONS = frozenset({"flags", "happy_eyeballs_delay", "interleave", "all_errors"})


def _common_options(options: dict[str, Any]) -> None:
    """ValueError for what ustack cannot do; the rest of `options` is for the caller to read."""
    if options.get("ssl") not in (None, False):
        raise ValueError("ssl is not supported over ustack yet: use ssl=None (plain TCP)")
    for name in ("server_hostname", "ssl_handshake_timeout", "ssl_shutdown_timeout"):
        if options.get(name) is not None:
            raise ValueError(f"{name} is only meaningful with ssl, which ustack does not support yet")
    if options.get("sock") is not None:
        raise ValueError("sock= is not supported: ustack connections are not kernel sockets")
    if options.get("family", 0) not in (0, socket.AF_UNSPEC, socket.AF_INET):
        raise ValueError(f"family {options['family']!r} is not supported: ustack speaks IPv4 (AF_INET) only")
    if options.get("proto", 0) not in (0, socket.IPPROTO_TCP):
        raise ValueError(f"proto {options['proto']!r} is not supported: ustack speaks TCP only")
    known = _IGNORED_OPTIONS | {"ssl", "server_hostname", "ssl_handshake_timeout", "ssl_shutdown_timeout", "sock",
                                "family", "proto", "local_addr", "keep_alive", "reuse_port"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unexpected keyword argument {unknown[0]!r}")


def client_options(options: dict[str, Any], own_address: int, local_port: int | None) -> int | None:
    """Checks create_connection's keywords; the local port asked for (local_addr or local_port)."""
    _common_options(options)
    for name in ("keep_alive", "reuse_port"):
        if name in options:
            raise TypeError(f"unexpected keyword argument {name!r}")
    local_addr = options.get("local_addr")
    if local_addr is not None:
        local_host, asked_port = local_addr
        if local_host not in (None, "", "0.0.0.0") and _address_or_none(local_host) != own_address:
            raise os_error(errno.EADDRNOTAVAIL, f"{local_host} is not this stack's address ({address_text(own_address)})")
        if asked_port:
            if local_port is not None and local_port != asked_port:
                raise ValueError(f"local_addr port {asked_port} and local_port {local_port} disagree")
            local_port = asked_port
    return local_port


def server_options(options: dict[str, Any], config: TcpConfig | None, stack_config: TcpConfig) -> TcpConfig | None:
    """Checks create_server's keywords; the TcpConfig for the listener's connections."""
    _common_options(options)
    if "local_addr" in options:
        raise TypeError("unexpected keyword argument 'local_addr'")
    if options.get("reuse_port"):
        raise ValueError("reuse_port is not supported: one ustack listener per port")
    if options.get("keep_alive"):
        config = dataclasses.replace(config or stack_config, keepalive=True)
    return config

"""The keyword arguments of asyncio's create_connection / create_server, read for ustack.

The standard ones are taken; those ustack cannot honour raise ValueError saying why (`ssl` until
it is supported, `sock`, a family other than AF_INET / AF_INET6, `reuse_port`), never silently
ignored. A `family` that does not fit the host's address is socket.gaierror(EAI_ADDRFAMILY), as
asyncio's getaddrinfo step raises it. Names
ustack does not know at all are a TypeError, as in asyncio.
"""

from __future__ import annotations

import dataclasses
import errno
import socket
from typing import Any

from ..tcp.config import TcpConfig
from ..wire.ipv4 import address_text, address_value
from ..wire.ipv6 import address6_value
from .errors import os_error

FAMILIES = (0, socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6)


def _address_or_none(host: str) -> int | bytes | None:
    try:
        return address6_value(host) if ":" in host else address_value(host)
    except ValueError:
        return None


def _check_family(family: int, host: str | None) -> None:
    """gaierror(EAI_ADDRFAMILY) for an IPv4 literal with AF_INET6 or an IPv6 one with AF_INET,
    as the standard library's getaddrinfo answers it."""
    if host is None or family in (0, socket.AF_UNSPEC):
        return
    if (family == socket.AF_INET6) != (":" in host):
        raise socket.gaierror(socket.EAI_ADDRFAMILY, "Address family for hostname not supported")


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
    if options.get("family", 0) not in FAMILIES:
        raise ValueError(f"family {options['family']!r} is not supported: ustack speaks AF_INET and AF_INET6 only")
    if options.get("proto", 0) not in (0, socket.IPPROTO_TCP):
        raise ValueError(f"proto {options['proto']!r} is not supported: ustack speaks TCP only")
    known = _IGNORED_OPTIONS | {"ssl", "server_hostname", "ssl_handshake_timeout", "ssl_shutdown_timeout", "sock",
                                "family", "proto", "local_addr", "keep_alive", "reuse_port"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unexpected keyword argument {unknown[0]!r}")


def client_options(options: dict[str, Any], own_addresses: tuple[int | None, bytes | None], local_port: int | None,
                   host: str | None = None) -> int | None:
    """Checks create_connection's keywords against the stack's (IPv4, IPv6) addresses and the
    host to reach; the local port asked for (local_addr or local_port)."""
    _common_options(options)
    _check_family(options.get("family", 0), host)
    for name in ("keep_alive", "reuse_port"):
        if name in options:
            raise TypeError(f"unexpected keyword argument {name!r}")
    local_addr = options.get("local_addr")
    if local_addr is not None:
        local_host, asked_port = local_addr
        if local_host not in (None, "", "0.0.0.0", "::") and _address_or_none(local_host) not in own_addresses:
            ours = " or ".join(address_text(address) for address in own_addresses if address is not None)
            raise os_error(errno.EADDRNOTAVAIL, f"{local_host} is not this stack's address ({ours})")
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

"""The socket module's functions, over a ustack Network: socket(), create_connection(),
create_server(), getaddrinfo(), setdefaulttimeout() / getdefaulttimeout().

They use the network given as `network=`, else the one set with set_default_network().
"""

from __future__ import annotations

import ipaddress
from socket import AF_INET, AF_INET6, AF_UNSPEC, AI_PASSIVE, EAI_ADDRFAMILY, EAI_FAMILY, EAI_NONAME, EAI_SERVICE
from socket import IPPROTO_IPV6, IPPROTO_TCP, IPV6_V6ONLY, SOCK_STREAM
from socket import gaierror, getservbyname
from typing import Any

from .network import _DEFAULT_TIMEOUT, _default_timeout
from .sockets import Network, Socket

_default_network: list[Network | None] = [None]


def set_default_network(network: Network | None) -> None:
    """The Network that sock.socket() and the other functions use when none is given."""
    _default_network[0] = network


def _network(network: Network | None) -> Network:
    chosen = network or _default_network[0]
    if chosen is None:
        raise RuntimeError("no ustack network: pass network=... or call sock.set_default_network()")
    return chosen


def socket(family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0, *, network: Network | None = None) -> Socket:
    """A new TCP socket (socket.socket)."""
    return _network(network).socket(family, type, proto)


def create_connection(address: tuple[str, int], timeout: Any = _DEFAULT_TIMEOUT,
                      source_address: tuple[str, int] | None = None, *, all_errors: bool = False,
                      network: Network | None = None) -> Socket:
    """A connected socket (socket.create_connection); ustack resolves no names, so `address`
    holds an IPv4 or IPv6 address (the socket's family follows it)."""
    return _network(network).create_connection(address, timeout, source_address, all_errors=all_errors)


def create_server(address: tuple[str, int], *, family: int = AF_INET, backlog: int | None = None,
                  reuse_port: bool = False, dualstack_ipv6: bool = False, network: Network | None = None) -> Socket:
    """A socket bound to `address` and listening (socket.create_server). ValueError for what
    ustack cannot do (SO_REUSEPORT). An AF_INET6 server on "::" takes both families only with
    dualstack_ipv6=True, as the standard one (IPV6_V6ONLY otherwise)."""
    if family not in (AF_INET, AF_INET6):
        raise ValueError("ustack speaks AF_INET and AF_INET6 only")
    if dualstack_ipv6 and family != AF_INET6:
        raise ValueError("dualstack_ipv6 requires AF_INET6 family")
    if reuse_port:
        raise ValueError("reuse_port is not supported: one ustack listener per port")
    server = socket(family, network=network)
    try:
        if family == AF_INET6 and not dualstack_ipv6:  # as socket.create_server: IPv6 only unless asked
            server.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 1)
        server.bind(address)
        if backlog is None:
            server.listen()
        else:
            server.listen(backlog)
    except BaseException:
        server.close()
        raise
    return server


def getaddrinfo(host: str | None, port: int | str | None, family: int = 0, type: int = 0, proto: int = 0,
                flags: int = 0) -> list[tuple[int, int, int, str, tuple]]:
    """socket.getaddrinfo for ustack: numeric IPv4 and IPv6 addresses only (ustack has no
    resolver), so one TCP answer (an IPv6 one with the 4-tuple) or socket.gaierror. A service name
    for the port is read from /etc/services."""
    if family not in (0, AF_UNSPEC, AF_INET, AF_INET6):
        raise gaierror(EAI_FAMILY, "ustack speaks AF_INET and AF_INET6 only")
    if host is None:
        if family == AF_INET6:
            host = "::" if flags & AI_PASSIVE else "::1"
        else:
            host = "0.0.0.0" if flags & AI_PASSIVE else "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise gaierror(EAI_NONAME, f"{host!r} is not an IP address (ustack does not resolve names)") from None
    found = AF_INET6 if address.version == 6 else AF_INET
    if family not in (0, AF_UNSPEC, found):
        raise gaierror(EAI_ADDRFAMILY, "Address family for hostname not supported")
    if port is None:
        number = 0
    elif isinstance(port, int):
        number = port
    elif port.isdigit():
        number = int(port)
    else:
        try:
            number = getservbyname(port, "tcp")
        except OSError:
            raise gaierror(EAI_SERVICE, f"unknown service {port!r}") from None
    if found == AF_INET6:
        return [(AF_INET6, SOCK_STREAM, IPPROTO_TCP, "", (str(address), number, 0, 0))]
    return [(AF_INET, SOCK_STREAM, IPPROTO_TCP, "", (str(address), number))]


def setdefaulttimeout(timeout: float | None) -> None:
    """The timeout new sockets start with when their Network has no default_timeout
    (socket.setdefaulttimeout)."""
    if timeout is not None and timeout < 0:
        raise ValueError("Timeout value out of range")
    _default_timeout[0] = None if timeout is None else float(timeout)


def getdefaulttimeout() -> float | None:
    return _default_timeout[0]

"""Which addresses a host can have: the one statement of the rule, used by `Stack` (a bad address
raises ValueError) and by the command line's address arguments (one line, exit 2). Sans-IO.

A packet from such a source is dropped on arrival too, by the per-packet form of the same rule
(stack.INVALID_SOURCE_FIRST_OCTETS, stack6.py's source check), so a host holding one would hear
nothing.
"""

from __future__ import annotations

import ipaddress


def host_address(address: object) -> int | bytes:
    """The address a Stack takes, as `ipaddress` reads it ('10.77.0.2', 'fd00:77::2', an
    IPv4Address or IPv6Address, an int, 16 bytes), as the core compares it with packet headers: an
    int for IPv4, 16 bytes for IPv6. A value that is no address, or that no host can have
    (why_not_a_host_address), raises ValueError naming it."""
    if isinstance(address, bool):  # an int to ipaddress, but surely a mistake
        raise ValueError(f"{address!r} is not an IP address")
    try:
        parsed = ipaddress.ip_address(address)  # type: ignore[arg-type]
    except ValueError:
        raise ValueError(f"{address!r} is not an IP address") from None
    why = why_not_a_host_address(parsed)
    if why is not None:
        family = "IPv6 " if parsed.version == 6 else ""
        raise ValueError(f"{address!r} is not a host's {family}address: {why}")
    return parsed.packed if parsed.version == 6 else int(parsed)


def why_not_a_host_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why no host can have `address`, in words a user reads; None if one can."""
    if address.version == 6:  # RFC 4291 2.5.2, 2.5.3, 2.7, 2.5.5.2
        if address.is_unspecified:
            return ":: is the unspecified address"
        if address.is_loopback:
            return "loopback never leaves the kernel, and ustack is reached through the TUN device"
        if address.is_multicast:
            return "it is a multicast address"
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped address is IPv4 seen through the socket API, never on the wire"
        return None
    first_octet = int(address) >> 24  # RFC 1122 3.2.1.3
    if first_octet == 0:
        return "0.0.0.0/8 means 'this network'"
    if first_octet == 127:
        return "loopback never leaves the kernel, and ustack is reached through the TUN device"
    if 224 <= first_octet < 240:
        return "it is a multicast address"
    if first_octet >= 240:
        return "it is a broadcast or reserved address"
    return None

"""The ICMP and ICMPv6 errors a script's `<` line sends, built for both backends of `ustack drill`:

    +0 < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]

becomes an ICMP error from the peer quoting our segment (RFC 792: its IP header and first 8 bytes
of TCP; RFC 4443 2.4: as much of the packet as fits, here its IPv6 and TCP headers), for the
ustack host (driver.py) or the kernel's tun device (kernel_backend.py).
"""

from __future__ import annotations

from ustack.conform.profile import Unsupported
from ustack.wire import IcmpMessage, Icmpv6Message, TcpSegment, build_icmp6_packet, build_icmp_packet, build_tcp_packet
from ustack.wire.ipv4 import IPV4_HEADER_LENGTH

# packetdrill's names for the codes of ICMP destination unreachable (RFC 792, RFC 1812 5.2.7.1).
ICMP_UNREACHABLE_CODES = {
    "net_unreachable": 0,
    "host_unreachable": 1,
    "protocol_unreachable": 2,
    "port_unreachable": 3,
    "frag_needed": 4,
    "source_route_failed": 5,
    "net_unknown": 6,
    "host_unknown": 7,
    "source_host_isolated": 8,
    "net_prohibited": 9,
    "host_prohibited": 10,
    "net_unreachable_for_tos": 11,
    "host_unreachable_for_tos": 12,
    "packet_filtered": 13,
    "precedence_violation": 14,
    "precedence_cutoff": 15,
}
# packetdrill's names of ICMP error types -> their ICMP type (RFC 792).
ICMP_TYPES = {"unreachable": 3, "source_quench": 4, "redirect": 5, "time_exceeded": 11, "parameter_problem": 12}
# packetdrill's ICMPv6 names (RFC 4443 2.1, 3.1, 3.3, 3.4): type name -> (type, {code name: code}).
ICMPV6_CODES = {
    "unreachable": (1, {"no_route": 0, "admin_prohibited": 1, "not_neighbour": 2, "address_unreachable": 3,
                        "port_unreachable": 4}),
    "packet_too_big": (2, {}),
    "time_exceeded": (3, {"exceeded_hop_limit": 0, "exceeded_frag_time": 1}),
    "parameter_problem": (4, {"header_field": 0, "unknown_next_header": 1, "unknown_option": 2}),
}


def icmp_error_packet(icmp, quoted: TcpSegment, ours, peer) -> bytes | None:
    """The peer's ICMP (IPv4 addresses: ints) or ICMPv6 (16 bytes) error for a script line's
    `icmp` quoting `quoted`, a segment from `ours` to `peer`; None for an error type packetdrill
    has no number for (the caller says so); Unsupported for an unknown code."""
    if type(ours) is bytes:
        codes = ICMPV6_CODES.get(icmp.type)
        if codes is None:
            return None
        message_type, names = codes
        if icmp.code and icmp.code not in names:
            raise Unsupported("icmp code", f"unknown ICMPv6 {icmp.type} code {icmp.code!r}")
        message = Icmpv6Message(message_type, names.get(icmp.code, 0) if icmp.code else 0, mtu=icmp.mtu or 0,
                                payload=build_tcp_packet(ours, peer, quoted))
        return build_icmp6_packet(peer, ours, message)
    if icmp.type not in ICMP_TYPES:
        return None
    code = 0  # a line without a code: 0, as packetdrill sends it
    if icmp.type == "unreachable" and icmp.code:
        code = ICMP_UNREACHABLE_CODES.get(icmp.code)
        if code is None:
            raise Unsupported("icmp code", f"unknown destination unreachable code {icmp.code!r}")
    quoted_bytes = build_tcp_packet(ours, peer, quoted)[: IPV4_HEADER_LENGTH + 8]
    message = IcmpMessage(ICMP_TYPES[icmp.type], code, next_hop_mtu=icmp.mtu or 0, payload=quoted_bytes)
    return build_icmp_packet(peer, ours, message)

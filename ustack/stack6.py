"""The IPv6 side of the host (RFC 8200, RFC 4443), mixed into ustack.stack.Stack: what IPv6 does
differently once a packet is parsed. The tables (connections, listeners, timers) are the Stack's
and shared by both families; this holds the checks and control messages of IPv6 alone:

- sources no packet from the link may carry (RFC 4291), dropped by name;
- fragments to the IPv6 reassembly (RFC 8200 4.5; atomic fragments never go there, RFC 6946);
- ICMPv6: echo answered (fragmented when it came fragmented), errors handed to their connection
  in the ICMP (IPv4) numbers the core knows, packet too big never below 1280 (RFC 8201);
- one flow label per connection (RFC 6437), from the ISN generator's keyed hash.

Sans-IO like stack.py: no I/O, no clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .wire import build_icmp6_packet, icmpv6
from .wire.fragment import fragment_ipv6
from .wire.icmp import PARAMETER_PROBLEM, TIME_EXCEEDED
from .wire.icmpv6 import Icmpv6Message
from .wire.ipv6 import IPV6_HEADER_LENGTH, MINIMUM_MTU as IPV6_MINIMUM_MTU, PROTOCOL_ICMPV6, Ipv6Header

if TYPE_CHECKING:
    from .tcp import Connection, Listener, TcpConfig

# RFC 4291 2.5.2, 2.5.3, 2.7 and 2.5.5.2: IPv6 sources no packet from the link may carry. The
# unspecified address :: (only a node without an address uses it, for neighbour discovery, which a
# TUN device does not carry), the loopback ::1 ("MUST NOT be sent outside a single node"), any
# multicast address ff00::/8 (a group is never a source), and IPv4-mapped ::ffff:0:0/96 (only an
# API's view of IPv4, never on the wire; Linux drops those too). Answering them would send replies
# to a group, to ourselves or to IPv4 hosts by a side door.
UNSPECIFIED6 = bytes(16)
LOOPBACK6 = bytes(15) + b"\x01"
IPV4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"

# RFC 4443 3.1 destination unreachable codes as the ICMP (IPv4) codes the core knows, so that the
# same TcpConfig.icmp_hard_error_codes decide: port unreachable is refused like IPv4's (3); no
# route like net unreachable (0); beyond scope and address unreachable like host unreachable (1);
# the policy codes (administratively prohibited, source address policy, reject route) like
# "communication administratively prohibited" (13). The core never sees an ICMPv6 number.
ICMPV6_UNREACHABLE_AS_ICMP = {
    icmpv6.NO_ROUTE: 0,
    icmpv6.ADMINISTRATIVELY_PROHIBITED: 13,
    icmpv6.BEYOND_SCOPE: 1,
    icmpv6.ADDRESS_UNREACHABLE: 1,
    icmpv6.PORT_UNREACHABLE: 3,
    icmpv6.SOURCE_ADDRESS_POLICY: 13,
    icmpv6.REJECT_ROUTE: 13,
}
# RFC 9293 3.9.2.2 names soft errors by their ICMP types: time exceeded (11), parameter problem (12).
ICMPV6_SOFT_ERRORS_AS_ICMP = {icmpv6.TIME_EXCEEDED: TIME_EXCEEDED, icmpv6.PARAMETER_PROBLEM: PARAMETER_PROBLEM}


class Ipv6Side:
    """The methods of Stack that only IPv6 packets reach (see the module docstring)."""

    def _receive_ipv6(self, parsed, now: float) -> None:
        ip = parsed.ip
        if ip.dst != self.address6:
            # Also every multicast destination: with no neighbour discovery or MLD on a TUN device
            # (it carries IP only), no group is ours.
            self.drops["ipv6_not_our_address"] += 1
            return
        src = ip.src
        if src[0] == 0xFF or src == UNSPECIFIED6 or src == LOOPBACK6 or src == ip.dst or src[:12] == IPV4_MAPPED_PREFIX:
            self.drops["ipv6_bad_source_address"] += 1
            return
        # An atomic fragment (offset 0, M clear) is no fragment: the parser hands it on as a whole
        # packet, never through the reassembly queue (RFC 6946 4).
        self._deliver(parsed, now, self.reassembly6, self._receive_icmp6, "ipv6_next_header")

    def _receive_icmp6(self, ip: Ipv6Header, message: Icmpv6Message, now: float) -> None:
        message_type = message.type
        if message_type == icmpv6.ECHO_REQUEST:
            # RFC 4443 4.2: the reply carries the request's identifier, sequence number and data.
            reply = message._replace(type=icmpv6.ECHO_REPLY, code=0)
            packet = build_icmp6_packet(ip.dst, ip.src, reply, hop_limit=self.ttl)
            if len(packet) > self.mtu:
                # The request came in fragments (the reply is as long): only the source fragments
                # in IPv6 (RFC 8200 4.5), in pieces no larger than our link's MTU.
                header = Ipv6Header(ip.dst, ip.src, PROTOCOL_ICMPV6, self.ttl)
                fragments = fragment_ipv6(header, packet[IPV6_HEADER_LENGTH:], max(self.mtu, IPV6_MINIMUM_MTU),
                                          self._identification6())
                self._control_replies.extend(fragments)
                self.counters["fragments_created"] += len(fragments)
            else:
                self._control_replies.append(packet)
            self.counters["icmp6_echo_replies"] += 1
            return
        if message_type > icmpv6.PARAMETER_PROBLEM or message_type < icmpv6.DESTINATION_UNREACHABLE:
            # Informational messages other than echo (RFC 4443 2.1), neighbour discovery among them.
            self.drops[f"icmp6_type_{message_type}_ignored"] += 1
            return
        quoted_ip, quoted = message.quoted_ip, message.quoted_tcp
        if quoted is None or quoted_ip is None:
            self.drops["icmp6_error_not_about_tcp"] += 1
            return
        # RFC 4443 3 / RFC 9293 3.9.2.2 (MUST-54): the error goes to the connection that sent the
        # quoted packet; its source is our side of it.
        connection = self.connections.get((quoted_ip.src, quoted.src_port, quoted_ip.dst, quoted.dst_port))
        if connection is None:
            self.drops["icmp_error_no_connection"] += 1
            return
        if message_type == icmpv6.PACKET_TOO_BIG:
            path_mtu = message.mtu
            if path_mtu < IPV6_MINIMUM_MTU:
                # RFC 8201 4: a node MUST NOT lower its path MTU below IPv6's minimum link MTU,
                # whatever a (possibly forged) message says.
                self.drops["icmp6_packet_too_big_below_minimum"] += 1
                path_mtu = IPV6_MINIMUM_MTU
            # The core knows path MTU discovery as ICMP's "fragmentation needed" (code 4).
            connection.on_icmp_unreachable(4, path_mtu, quoted.seq, now, ip_header_length=IPV6_HEADER_LENGTH)
        elif message_type == icmpv6.DESTINATION_UNREACHABLE:
            code = ICMPV6_UNREACHABLE_AS_ICMP.get(message.code, 1)  # unknown codes: a soft error
            connection.on_icmp_unreachable(code, None, quoted.seq, now)
        elif message_type == icmpv6.PARAMETER_PROBLEM and message.code == icmpv6.UNRECOGNIZED_NEXT_HEADER:
            # RFC 4443 3.4 code 1 is how IPv6 says "protocol unreachable" (ICMP's code 2): the
            # other end has no TCP, a hard error like IPv4's (RFC 9293 3.9.2.2).
            connection.on_icmp_unreachable(2, None, quoted.seq, now)
        else:
            connection.on_icmp_soft_error(ICMPV6_SOFT_ERRORS_AS_ICMP[message_type], message.code, quoted.seq, now)
        self._touch(connection)

    def _ipv6_config_of(self, listener: Listener) -> TcpConfig:
        """The listener's configuration with the MSS of IPv6 (a dual-stack listener's config has
        IPv4's), made once per listener and again only when its configuration changes, never per
        SYN: a SYN flood over IPv6 costs what one over IPv4 costs (fit_to_mtu makes a new
        TcpConfig whenever the MSS differs). Kept as listener -> (its config, fitted)."""
        config = listener.config
        cached = self._listener_config6.get(listener)
        if cached is None or cached[0] is not config:
            cached = self._listener_config6[listener] = (config, config.fit_to_mtu(self.mtu, IPV6_HEADER_LENGTH))
        return cached[1]

    def _flow_label(self, connection: Connection) -> int:
        flow_label = self._flow_labels.get(connection)
        if flow_label is None:
            flow_label = self.isn_generator.flow_label(connection.local_address, connection.local_port,
                                                       connection.remote_address, connection.remote_port)
            self._flow_labels[connection] = flow_label
        return flow_label

    def _identification6(self) -> int:
        self._next_identification6 = (self._next_identification6 + 1) & 0xFFFFFFFF
        return self._next_identification6

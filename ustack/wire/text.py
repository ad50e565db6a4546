"""Packets as one line of text, the way `tcpdump -t -nn -S` prints them.

    format_packet(packet_bytes) -> str      any IPv4 or IPv6 packet; one that fails validation gives a
                                            line with "invalid <reason>"
    format_tcp(ip, segment) -> str          a TcpSegment the stack is about to send or just took in

Examples (tcpdump 4.99 prints exactly these for the same bytes):

    IP 10.0.0.1.5000 > 10.0.0.2.80: Flags [S.], seq 3001369134, ack 584734245, win 29200, options [mss 1460,nop,nop,sackOK,nop,wscale 7], length 0
    IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 7, seq 3, length 64
    IP6 fd00:77::1.5000 > fd00:77::2.80: Flags [S], seq 1, win 64800, options [mss 1440], length 0
    IP6 fd00:77::1 > fd00:77::2: HBH DSTOPT 5000 > 80: Flags [.], ack 2, win 502, length 0
    IP6 fd00:77::2 > fd00:77::1: ICMP6, packet too big, mtu 1280, length 1240

TCP options are shown in their order on the wire, read from the raw option bytes (the parsed
TcpOptions keeps meanings, not order). tcpdump also decodes application protocols by port; of
those only HTTP (ports 80 and 8080) is reproduced here.
"""

from __future__ import annotations

import struct

from .codec import build_tcp_packet, parse_packet
from .errors import WireError
from .icmp import (
    DESTINATION_UNREACHABLE,
    ECHO_REPLY,
    ECHO_REQUEST,
    PARAMETER_PROBLEM,
    SOURCE_QUENCH,
    TIME_EXCEEDED,
    IcmpMessage,
)
from .icmpv6 import Icmpv6Message
from .ipv4 import PROTOCOL_ICMP, PROTOCOL_TCP, PROTOCOL_UDP, Ipv4Header
from .ipv6 import (
    PROTOCOL_DESTINATION_OPTIONS,
    PROTOCOL_FRAGMENT,
    PROTOCOL_HOP_BY_HOP,
    PROTOCOL_ICMPV6,
    PROTOCOL_NO_NEXT_HEADER,
    PROTOCOL_ROUTING,
    Ipv6Header,
    address6_text,
)
from .tcp import ACK, FIN, RST, SYN, URG, TcpSegment, flags_text

_HTTP_PORTS = (80, 8080)
# Request methods tcpdump's HTTP printer recognises (HTTP and WebDAV), compared ignoring case.
_HTTP_METHODS = frozenset(
    "GET PUT COPY HEAD LOCK MOVE POLL POST BCOPY BMOVE MKCOL TRACE LABEL MERGE DELETE SEARCH UNLOCK REPORT "
    "UPDATE NOTIFY BDELETE CONNECT OPTIONS CHECKIN PROPFIND CHECKOUT CCM_POST SUBSCRIBE PROPPATCH BPROPFIND "
    "BPROPPATCH UNCHECKOUT MKACTIVITY MKWORKSPACE UNSUBSCRIBE RPC_CONNECT VERSION-CONTROL BASELINE-CONTROL".split()
)
_MAX_TOKEN = 128


def address(value: int) -> str:
    """0x0A000001 -> '10.0.0.1' (quicker than ipaddress, and this runs for every traced packet)."""
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


# tcpdump_flags is the name the text formatter and the labs use; there is one implementation.
tcpdump_flags = flags_text


def format_packet(packet: bytes) -> str:
    """One line for one IPv4 or IPv6 packet (bytes starting at the IP header)."""
    try:
        parsed = parse_packet(packet)
    except WireError as error:
        return _invalid_line(packet, error.reason)
    ip = parsed.ip
    if ip.version == 6:
        return _ipv6_line(bytes(packet), ip, parsed.tcp, parsed.icmp, parsed.payload)
    if parsed.tcp is not None:
        segment = parsed.tcp
        # (Total Length 0: an IPv4 BIG TCP packet, as long as its bytes; csrc/ipv4.c)
        options_end = (ip.total_length or len(packet)) - len(segment.payload)
        head = f"IP {address(ip.src)}.{segment.src_port} > {address(ip.dst)}.{segment.dst_port}: "
        return _tcp_line(head, segment, bytes(packet[ip.header_length + 20 : options_end]))
    if parsed.icmp is not None:
        return _icmp_line(ip, parsed.icmp)
    return _other_line(ip, parsed.payload)


def format_tcp(ip: Ipv4Header, segment: TcpSegment, option_layout: str = "linux") -> str:
    """The line for a parsed or about-to-be-sent segment. Options are shown in the order the
    builder puts them on the wire for `option_layout`, which is the order of the bytes sent."""
    if ip.version == 6:
        packet = build_tcp_packet(ip.src, ip.dst, segment, option_layout=option_layout)
        head = f"IP6 {address6_text(ip.src)}.{segment.src_port} > {address6_text(ip.dst)}.{segment.dst_port}: "
    else:
        packet = build_tcp_packet(ip.src, ip.dst, segment, ttl=ip.ttl, option_layout=option_layout)
        head = f"IP {address(ip.src)}.{segment.src_port} > {address(ip.dst)}.{segment.dst_port}: "
    # Built here, the IP header has no options (IPv4, 20 bytes) and no extension headers (IPv6, 40).
    options_start = (40 if ip.version == 6 else 20) + 20
    return _tcp_line(head, segment, packet[options_start : len(packet) - len(segment.payload)])


def _tcp_line(head: str, segment: TcpSegment, option_bytes: bytes) -> str:
    """`head` is what comes before the flags: 'IP 10.0.0.1.5000 > 10.0.0.2.80: '."""
    flags = segment.flags
    length = len(segment.payload)
    parts = [f"Flags [{tcpdump_flags(flags)}]"]
    # tcpdump shows the sequence number only when it means something: data or SYN/FIN/RST.
    if length or flags & (SYN | FIN | RST):
        parts.append(f"seq {segment.seq}:{(segment.seq + length) & 0xFFFFFFFF}" if length else f"seq {segment.seq}")
    if flags & ACK:
        parts.append(f"ack {segment.ack}")
    parts.append(f"win {segment.window}")
    if flags & URG:
        parts.append(f"urg {segment.urgent_pointer}")
    if option_bytes:
        parts.append(f"options [{options_text(option_bytes)}]")
    parts.append(f"length {length}")
    line = head + ", ".join(parts)
    if length and (segment.src_port in _HTTP_PORTS or segment.dst_port in _HTTP_PORTS):
        line += _http_text(bytes(segment.payload))
    return line


def options_text(options: bytes) -> str:
    """The TCP options area as tcpdump lists it: 'mss 1460,nop,wscale 7,sackOK,TS val 1 ecr 0'.

    Walks the bytes in order (RFC 9293 3.1 "Options"): EOL and NOP are one byte, every other option
    is kind, length, value. Listing stops after EOL, as tcpdump's does.
    """
    items = []
    position = 0
    while position < len(options):
        kind = options[position]
        if kind == 0:
            items.append("eol")
            break
        if kind == 1:
            items.append("nop")
            position += 1
            continue
        if position + 1 >= len(options) or options[position + 1] < 2:
            items.append("[bad opt]")
            break
        length = options[position + 1]
        value = options[position + 2 : position + length]
        items.append(_option_text(kind, value))
        position += length
    return ",".join(items)


def _option_text(kind: int, value: bytes) -> str:
    if kind == 2 and len(value) == 2:
        return f"mss {struct.unpack('!H', value)[0]}"
    if kind == 3 and len(value) == 1:
        return f"wscale {value[0]}"
    if kind == 4 and not value:
        return "sackOK"
    if kind == 5 and value and len(value) % 8 == 0:
        edges = struct.unpack(f"!{len(value) // 4}I", value)
        blocks = "".join(f"{{{edges[i]}:{edges[i + 1]}}}" for i in range(0, len(edges), 2))
        return f"sack {len(edges) // 2} {blocks}"
    if kind == 8 and len(value) == 8:
        ts_val, ts_ecr = struct.unpack("!II", value)
        return f"TS val {ts_val} ecr {ts_ecr}"
    if kind in (6, 7, 11, 12, 13) and len(value) == 4:  # echo, echo reply, CC (RFC 1072, RFC 1644)
        name = {6: "echo", 7: "echoreply", 11: "cc", 12: "ccnew", 13: ""}[kind]
        return f"{name} {struct.unpack('!I', value)[0]}"
    if kind == 28 and len(value) == 2:  # user timeout (RFC 5482): minutes when the low bit is set
        raw = struct.unpack("!H", value)[0]
        return f"uto 0x{raw:x} {(raw >> 1) * 60 if raw & 1 else raw >> 1}"
    if kind == 254 and len(value) >= 2 and value[:2] != b"\xf9\x89":  # RFC 6994 experiment
        return f"exp-{value[:2].hex()}"
    return f"unknown-{kind}" + (f" 0x{value.hex()}" if value else "")


def _http_text(payload: bytes) -> str:
    """What tcpdump appends for HTTP ports: ': HTTP', then ': <first line>' when the payload starts
    like a request (a known method) or a response (a 3-digit second word) and that line is
    printable text. A line the packet cuts short is shown with ' [|http]'."""
    first = _http_token(payload, 0)
    looks_like_http = False
    if first is not None:
        token, position = first
        looks_like_http = token.upper() in _HTTP_METHODS
        second = _http_token(payload, position)
        if second is not None and len(second[0]) == 3 and second[0].isdigit():
            looks_like_http = True
    if not looks_like_http:
        return ": HTTP"
    for index, byte in enumerate(payload):
        if byte == 0x0A or (byte == 0x0D and payload[index + 1 : index + 2] == b"\n"):
            return f": HTTP: {payload[:index].decode()}"
        if byte == 0x0D or not (0x20 <= byte <= 0x7E or byte == 0x09):
            return ": HTTP"  # binary data, or a CR that ends the packet: no line shown
    return f": HTTP: {payload.decode()} [|http]"


def _http_token(payload: bytes, start: int) -> tuple[str, int] | None:
    """One word of printable ASCII at `start` and where the next word begins, or None."""
    position = start
    while position < len(payload) and payload[position] not in b" \t\r\n":
        if not 0x20 <= payload[position] <= 0x7E or position - start >= _MAX_TOKEN - 1:
            return None
        position += 1
    if position == start:
        return None
    token = payload[start:position].decode()
    while position < len(payload) and payload[position] == 0x20:
        position += 1
    return token, position


# Destination unreachable codes (RFC 792, RFC 1122 3.2.2.1, RFC 1812 5.2.7.1) in tcpdump's words.
_UNREACHABLE_TEXT = {
    0: "net {dst} unreachable",
    1: "host {dst} unreachable",
    2: "{dst} protocol {protocol} unreachable",
    5: "{dst} unreachable - source route failed",
    6: "net {dst} unreachable - unknown",
    7: "host {dst} unreachable - unknown",
    8: "{dst} unreachable - source host isolated",
    9: "net {dst} unreachable - admin prohibited",
    10: "host {dst} unreachable - admin prohibited",
    11: "net {dst} unreachable - tos prohibited",
    12: "host {dst} unreachable - tos prohibited",
    13: "host {dst} unreachable - admin prohibited filter",
    14: "host {dst} unreachable - host precedence violation",
    15: "host {dst} unreachable - precedence cutoff",
}


def _icmp_line(ip: Ipv4Header, message: IcmpMessage) -> str:
    length = ip.total_length - ip.header_length
    prefix = f"IP {address(ip.src)} > {address(ip.dst)}: ICMP "
    if message.type in (ECHO_REQUEST, ECHO_REPLY):
        kind = "request" if message.type == ECHO_REQUEST else "reply"
        return f"{prefix}echo {kind}, id {message.identifier}, seq {message.sequence}, length {length}"
    if message.type == DESTINATION_UNREACHABLE and message.quoted_ip is not None:
        return f"{prefix}{_unreachable_text(message)}, length {length}"
    if message.type == TIME_EXCEEDED:
        text = {0: "time exceeded in-transit", 1: "ip reassembly time exceeded"}.get(
            message.code, f"time exceeded-#{message.code}"
        )
        return f"{prefix}{text}, length {length}"
    if message.type == SOURCE_QUENCH:
        return f"{prefix}source quench, length {length}"
    if message.type == PARAMETER_PROBLEM:
        where = f"octet {message.identifier >> 8}" if message.code == 0 else f"code {message.code}"
        return f"{prefix}parameter problem - {where}, length {length}"
    return f"{prefix}type-#{message.type}, length {length}"


def _unreachable_text(message: IcmpMessage) -> str:
    quoted = message.quoted_ip
    dst = address(quoted.dst)
    if message.code == 3:  # port unreachable: name the quoted transport and port
        if message.quoted_tcp is not None:
            return f"{dst} tcp port {message.quoted_tcp.dst_port} unreachable"
        if quoted.protocol == PROTOCOL_UDP and len(message.payload) >= quoted.header_length + 4:
            port = struct.unpack_from("!H", message.payload, quoted.header_length + 2)[0]
            return f"{dst} udp port {port} unreachable"
        return f"{dst} port unreachable"
    if message.code == 4:  # RFC 1191: fragmentation needed, with the next-hop MTU when given
        if message.next_hop_mtu:
            return f"{dst} unreachable - need to frag (mtu {message.next_hop_mtu})"
        return f"{dst} unreachable - need to frag"
    template = _UNREACHABLE_TEXT.get(message.code, "{dst} unreachable - #{code}")
    return template.format(dst=dst, protocol=quoted.protocol, code=message.code)


def _other_line(ip: Ipv4Header, payload: bytes) -> str:
    """Fragments and protocols other than TCP and ICMP (tcpdump's own wording where it is short)."""
    source, destination = address(ip.src), address(ip.dst)
    length = len(payload)
    if ip.is_fragment:
        more = ", more fragments" if ip.more_fragments else ""
        return (
            f"IP {source} > {destination}: fragment of protocol {ip.protocol}, id {ip.identification}, "
            f"offset {ip.fragment_offset}{more}, length {length}"
        )
    if ip.protocol == PROTOCOL_UDP and length >= 8:
        src_port, dst_port = struct.unpack_from("!HH", payload)
        return f"IP {source}.{src_port} > {destination}.{dst_port}: UDP, length {length - 8}"
    return f"IP {source} > {destination}: ip-proto-{ip.protocol} {length}"


def _invalid_line(packet: bytes, reason: str) -> str:
    """A packet that failed validation: what can be read safely, then 'invalid <reason>'."""
    if len(packet) >= 1 and packet[0] >> 4 == 6:
        if len(packet) < 40:
            return f"IP6 invalid {reason}, {len(packet)} bytes"
        source, destination = address6_text(bytes(packet[8:24])), address6_text(bytes(packet[24:40]))
        protocol = _NEXT_HEADER_NAMES.get(packet[6], f"ip-proto-{packet[6]}")
        return f"IP6 {source} > {destination}: {protocol} invalid {reason}, {len(packet)} bytes"
    if len(packet) >= 20 and packet[0] >> 4 == 4:
        src, dst = struct.unpack_from("!II", packet, 12)
        names = {PROTOCOL_TCP: "TCP", PROTOCOL_ICMP: "ICMP", PROTOCOL_UDP: "UDP"}
        protocol = names.get(packet[9], f"ip-proto-{packet[9]}")
        return f"IP {address(src)} > {address(dst)}: {protocol} invalid {reason}, {len(packet)} bytes"
    return f"IP invalid {reason}, {len(packet)} bytes"


# --- IPv6 ------------------------------------------------------------------------------------------
# tcpdump (print-ip6.c and friends) names each extension header it walks before the upper layer:
# "HBH", "DSTOPT", "RT6 (...)", "frag (offset|length)"; then TCP shows bare ports after them.
_NEXT_HEADER_NAMES = {PROTOCOL_TCP: "TCP", PROTOCOL_ICMPV6: "ICMP6", PROTOCOL_UDP: "UDP", PROTOCOL_HOP_BY_HOP: "HBH",
                      PROTOCOL_ROUTING: "RT6", PROTOCOL_FRAGMENT: "frag", PROTOCOL_DESTINATION_OPTIONS: "DSTOPT"}  # fmt: skip


def _ipv6_line(packet: bytes, ip: Ipv6Header, segment: TcpSegment | None, message, payload: bytes) -> str:
    source, destination = address6_text(ip.src), address6_text(ip.dst)
    chain = _extension_text(packet, ip)
    if chain is None:  # a routing header of a type tcpdump cannot read ends its line
        return f"IP6 {source} > {destination}: " + _routing_text(packet[40:], unknown=True)
    # (Payload Length 0: a jumbogram, as long as its bytes; csrc/ipv6.c)
    end = 40 + ip.payload_length if ip.payload_length else len(packet)
    if segment is not None:
        if chain:
            head = f"IP6 {source} > {destination}: {chain}{segment.src_port} > {segment.dst_port}: "
        else:
            head = f"IP6 {source}.{segment.src_port} > {destination}.{segment.dst_port}: "
        return _tcp_line(head, segment, packet[ip.header_length + 20 : end - len(segment.payload)])
    prefix = f"IP6 {source} > {destination}: {chain}"
    if message is not None:
        return prefix + _icmp6_text(message, end - ip.header_length)
    if ip.fragment_offset:
        return prefix.rstrip()  # a later fragment: only the fragment header says anything
    if ip.more_fragments:
        return prefix + _first_fragment_text(ip.protocol, payload)
    if ip.protocol == PROTOCOL_UDP and len(payload) >= 8:
        src_port, dst_port = struct.unpack_from("!HH", payload)
        if chain:
            return f"{prefix}{src_port} > {dst_port}: UDP, length {len(payload) - 8}"
        return f"IP6 {source}.{src_port} > {destination}.{dst_port}: UDP, length {len(payload) - 8}"
    if ip.protocol == PROTOCOL_NO_NEXT_HEADER:
        return prefix + "no next header"
    return f"{prefix} ip-proto-{ip.protocol} {len(payload)}"


def _extension_text(packet: bytes, ip: Ipv6Header) -> str | None:
    """The extension headers the parser walked, as tcpdump names them, each followed by a space
    (the parser has checked that they are all inside the packet)."""
    parts = []
    offset, next_header = 40, packet[6]
    while offset < ip.header_length:
        if next_header == PROTOCOL_FRAGMENT:
            length = 8
            parts.append(f"frag ({ip.fragment_offset}|{40 + ip.payload_length - offset - length})")
        else:
            length = (packet[offset + 1] + 1) * 8
            if next_header == PROTOCOL_HOP_BY_HOP:
                parts.append("HBH")
            elif next_header == PROTOCOL_DESTINATION_OPTIONS:
                parts.append("DSTOPT")
            else:
                if packet[offset + 2] not in (0, 2, 4):
                    return None
                parts.append(_routing_text(packet[offset : offset + length]))
        next_header = packet[offset]
        offset += length
    return "".join(part + " " for part in parts)


def _routing_text(header: bytes, unknown: bool = False) -> str:
    """A routing header (RFC 8200 4.4) as tcpdump prints it: type 0 (deprecated by RFC 5095),
    2 (mobility, RFC 6275) or 4 (segment routing, RFC 8754) with their addresses."""
    length, kind, segments_left = header[1], header[2], header[3]
    text = f"RT6 (len={length}, type={kind}"
    if unknown:
        return f"{text}, segleft={segments_left} (unknown type) (invalid)"
    if kind == 0:
        text += f" [Deprecated], segleft={segments_left}"
    elif kind == 2:
        text += f", segleft={segments_left}"
    else:
        text += f", segleft={segments_left}, last-entry={header[4]}"
        if header[5]:
            text += f", flags=0x{header[5]:02x}"
        text += f", tag={struct.unpack_from('!H', header, 6)[0]:x}"
    addresses = [address6_text(bytes(header[8 + 16 * i : 24 + 16 * i])) for i in range(length // 2)]
    return text + "".join(f", [{index}]{value}" for index, value in enumerate(addresses)) + ")"


def _first_fragment_text(protocol: int, data: bytes) -> str:
    """The start of a fragmented datagram: tcpdump reads what the fragment holds (no checksum)."""
    if protocol == PROTOCOL_TCP:
        if len(data) < 4:
            return " [|tcp]"
        header_length = (data[12] >> 4) * 4 if len(data) >= 20 else 0
        src_port, dst_port = struct.unpack_from("!HH", data)
        if header_length < 20 or header_length > len(data):
            return f"{src_port} > {dst_port}:  [|tcp]"
        seq, ack, _, flags, window, _, urgent = struct.unpack_from("!IIBBHHH", data, 4)
        segment = TcpSegment(src_port, dst_port, seq, ack, flags, window, urgent, payload=bytes(data[header_length:]))
        return _tcp_line(f"{src_port} > {dst_port}: ", segment, bytes(data[20:header_length]))
    if protocol == PROTOCOL_ICMPV6 and len(data) >= 8:
        message_type, code, identifier, sequence = struct.unpack_from("!BBxxHH", data)
        return _icmp6_text(Icmpv6Message(message_type, code, identifier, sequence), len(data))
    return f" ip-proto-{protocol} {len(data)}"


_ICMP6_TYPE_NAMES = {
    1: "destination unreachable",
    2: "packet too big",
    3: "time exceeded in-transit",
    4: "parameter problem",
    128: "echo request",
    129: "echo reply",
    130: "multicast listener query",
    131: "multicast listener report",
    132: "multicast listener done",
    133: "router solicitation",
    134: "router advertisement",
    135: "neighbor solicitation",
    136: "neighbor advertisement",
    137: "redirect",
    143: "multicast listener report v2",
}
# Destination unreachable codes (RFC 4443 3.1) in tcpdump's words (its "prohibited" has a leading space).
_UNREACHABLE6_TEXT = {0: "unreachable route", 1: " unreachable prohibited", 2: "beyond scope", 3: "unreachable address"}
_PARAMETER_PROBLEM_TEXT = {0: "erroneous", 1: "next header", 2: "option"}


def _icmp6_text(message: Icmpv6Message, length: int) -> str:
    """tcpdump's words for one ICMPv6 message; `length` is the message's (header + data)."""
    kind, code = message.type, message.code
    text = "ICMP6, " + _ICMP6_TYPE_NAMES.get(kind, f"unknown icmp6 type ({kind})")
    quoted = message.quoted_ip
    if kind in (1, 3) and quoted is None:
        return text + " [|icmp6]"
    if kind == 1:
        if code in _UNREACHABLE6_TEXT:
            text += f", {_UNREACHABLE6_TEXT[code]} {address6_text(quoted.dst)}"
            if code == 2:
                text += f", source address {address6_text(quoted.src)}"
        elif code == 4:
            port = _quoted_port(message)
            if port is None:
                return text + ", unreachable port [|icmp6]"
            text += f", unreachable port, {address6_text(quoted.dst)} {port}"
        else:  # tcpdump follows this with a hex dump of the message, which is left out here
            return text + f", unknown unreach code ({code})"
    elif kind == 2:
        text += f", mtu {message.mtu}"
    elif kind == 3:
        text += {0: f" for {address6_text(quoted.dst)}", 1: " (reassembly)"}.get(code, f", unknown code ({code})")
    elif kind == 4:
        where = _PARAMETER_PROBLEM_TEXT.get(code)
        text += f", {where} - octet {message.pointer}" if where else f", code-#{code}"
    elif kind in (128, 129):
        text += f", id {message.identifier}, seq {message.sequence}"
    return f"{text}, length {length}"


def _quoted_port(message: Icmpv6Message) -> str | None:
    """'tcp port 80' or 'udp port 53' for the packet a port unreachable quotes, when the quote
    reaches its destination port."""
    quoted = message.quoted_ip
    start = quoted.header_length
    if quoted.protocol not in (PROTOCOL_TCP, PROTOCOL_UDP) or quoted.fragment_offset or len(message.payload) < start + 4:
        return None
    name = "tcp" if quoted.protocol == PROTOCOL_TCP else "udp"
    return f"{name} port {struct.unpack_from('!H', message.payload, start + 2)[0]}"

"""The IP header fields a packetdrill line can name, for the kernel backend: `[ect0]`, `[ce]`,
`[noecn]`, `(tos 0x20)`, `(ttl 64)`, `(ecn ect0)`, `(dscp 0x2e)`.

    build_arguments(event.ip_info)        -> {"tos": 2, "ttl": 64}: for build_tcp_packet, inbound
    compare_ip_fields(event.ip_info, ip)  -> None, or what differs: outbound, the kernel's header

The ECN field is the low two bits of the IPv4 TOS byte and of the IPv6 traffic class (RFC 3168 5,
code points in wire/ipv4.py); DSCP the six bits above (RFC 2474 3). As in packetdrill, an
outbound line is checked only on the fields it names: a line without `[...]` accepts any ECN
field. `ect01` (either ECT code point) is packetdrill's too.
"""

from __future__ import annotations

from ustack.conform.profile import Unsupported
from ustack.wire.ipv4 import CE, ECT_0, ECT_1, NOT_ECT

ECN_NAMES = {"noecn": NOT_ECT, "ect0": ECT_0, "ect1": ECT_1, "ce": CE}
ANY_ECT = "ect01"


def _ecn_of(name: str, value) -> str:
    """The ECN code point's name an item sets: `[ect0]` or `(ecn ect0)`."""
    return value if name == "ecn" else name


def build_arguments(ip_info: tuple) -> dict[str, int]:
    """The tos/ttl of an inbound packet the line describes (build_tcp_packet's keywords)."""
    tos, ttl = 0, None
    for name, value in ip_info:
        if name in ECN_NAMES or name == "ecn":
            code = ECN_NAMES.get(_ecn_of(name, value))
            if code is None:
                raise Unsupported("ip field", f"ECN {_ecn_of(name, value)} on an inbound packet")
            tos = (tos & ~CE) | code
        elif name == "tos":
            tos = int(value)
        elif name == "dscp":
            tos = (int(value, 0) if isinstance(value, str) else int(value)) << 2 | (tos & CE)
        elif name == "ttl":
            ttl = int(value)
        else:
            raise Unsupported("ip field", f"{name} is not a field the kernel backend sets")
    return {"tos": tos} if ttl is None else {"tos": tos, "ttl": ttl}


def compare_ip_fields(ip_info: tuple, header) -> str | None:
    """None if the kernel's IP header (Ipv4Header or Ipv6Header) has the fields the line names."""
    tos = header.tos if header.version == 4 else header.traffic_class
    for name, value in ip_info:
        if name in ECN_NAMES or name in ("ecn", ANY_ECT):
            wanted = _ecn_of(name, value)
            actual = tos & CE
            if wanted == ANY_ECT:
                if actual not in (ECT_0, ECT_1):
                    return f"ECN field {_ecn_name(actual)} where the script expects ECT(0) or ECT(1)"
            elif wanted not in ECN_NAMES:
                raise Unsupported("ip field", f"ECN {wanted}")
            elif actual != ECN_NAMES[wanted]:
                return f"ECN field {_ecn_name(actual)} where the script expects {wanted}"
        elif name == "tos" and tos != int(value):
            return f"TOS {tos:#04x} where the script expects {int(value):#04x}"
        elif name == "dscp":
            wanted_dscp = int(value, 0) if isinstance(value, str) else int(value)
            if tos >> 2 != wanted_dscp:
                return f"DSCP {tos >> 2:#04x} where the script expects {wanted_dscp:#04x}"
        elif name == "ttl":
            hops = header.ttl if header.version == 4 else header.hop_limit
            if hops != int(value):
                return f"TTL {hops} where the script expects {int(value)}"
        elif name not in ("tos",):
            raise Unsupported("ip field", f"{name} is not a field the kernel backend checks")
    return None


def _ecn_name(code: int) -> str:
    return next(name for name, value in ECN_NAMES.items() if value == code)

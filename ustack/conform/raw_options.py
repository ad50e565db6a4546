"""TCP options of the scripts beyond what ustack.wire builds, for the kernel backend: an MD5
signature option (RFC 2385) written out by the script, added to a packet ustack.wire built; and
how many bytes a line's options take, which packetdrill compares and matcher.py (which compares
meaning) does not. The Fast Open option (RFC 7413) is ustack.wire's own (codec); fast_open_bytes
only checks that a script's cookie can be put on the wire (hex, not a name).

    packet = add_options(packet, raw_option_bytes(OptionSpec("md5", "0001...0f")))
    compare_options_length(event.options, packet)   # None, or how the lengths differ
"""

from __future__ import annotations

import struct

from ustack.conform.profile import Unsupported
from ustack.conform.script import OptionSpec
from ustack.wire.checksum import checksum_add, checksum_finish, internet_checksum, pseudo_header_sum
from ustack.wire.codec import fast_open_option_bytes

MD5_KIND, MD5_LENGTH = 19, 18  # RFC 2385 3.0: kind 19, length 18, a 16-byte digest
RAW_OPTIONS = ("FO", "FOEXP", "md5")  # what raw_option_bytes builds
NOP = 1
MAXIMUM_OPTIONS = 40  # a 60-byte TCP header, RFC 9293 3.1


def raw_option_bytes(option: OptionSpec) -> bytes:
    """The bytes of an option in RAW_OPTIONS. An `md5` digest is the one the script writes (a
    peer's signature, right or wrong as the script means it), never computed here."""
    if option.name != "md5":
        return fast_open_bytes(option)
    try:
        digest = bytes.fromhex(option.value or "")
    except ValueError:
        digest = b""
    if len(digest) != MD5_LENGTH - 2:
        raise Unsupported("tcp option md5", "a digest other than 16 bytes written in hex")
    return bytes((MD5_KIND, MD5_LENGTH)) + digest


def fast_open_bytes(option: OptionSpec) -> bytes:
    """The option's bytes; `FO` with no cookie is the cookie request (an empty cookie)."""
    text = option.value or ""
    try:
        cookie = bytes.fromhex(text)
    except ValueError:
        raise Unsupported(f"tcp option {option.name} {text}", "a cookie given by name, not in hex") from None
    return fast_open_option_bytes(cookie, option.name == "FOEXP")


def add_options(packet: bytes, extra: bytes) -> bytes:
    """An IPv4/TCP packet with `extra` option bytes after its options (NOP-padded to 32 bits),
    lengths and both checksums made right again."""
    ip_length = (packet[0] & 0x0F) * 4
    tcp_length = (packet[ip_length + 12] >> 4) * 4
    extra += bytes((NOP,)) * (-len(extra) % 4)
    if tcp_length - 20 + len(extra) > MAXIMUM_OPTIONS:
        raise Unsupported("tcp options", "more than the 40 bytes a TCP header can carry")
    header = bytearray(packet[: ip_length + tcp_length] + extra)
    payload = packet[ip_length + tcp_length :]
    total = len(header) + len(payload)
    struct.pack_into("!H", header, 2, total)
    struct.pack_into("!H", header, 10, 0)
    struct.pack_into("!H", header, 10, internet_checksum(bytes(header[:ip_length])))
    header[ip_length + 12] = ((tcp_length + len(extra)) // 4) << 4 | (header[ip_length + 12] & 0x0F)
    struct.pack_into("!H", header, ip_length + 16, 0)
    tcp = bytes(header[ip_length:]) + payload
    source, destination = struct.unpack_from("!II", header, 12)
    partial = pseudo_header_sum(source, destination, 6, len(tcp))
    struct.pack_into("!H", header, ip_length + 16, checksum_finish(checksum_add(partial, tcp)))
    return bytes(header) + payload


def ip_header_length(packet: bytes) -> int:
    """Where the TCP header starts in a packet the kernel sent: IPv6's fixed 40 bytes (the kernel
    puts no extension header on TCP) or IPv4's IHL."""
    return 40 if packet[0] >> 4 == 6 else (packet[0] & 0x0F) * 4


# Bytes each option takes as the script writes it (RFC 9293 3.2, RFC 7323, RFC 2018, RFC 7413).
_OPTION_SIZES = {"nop": 1, "eol": 1, "mss": 4, "wscale": 3, "sackOK": 2, "TS": 10, "md5": 18}


def options_length(options: tuple[OptionSpec, ...]) -> int:
    """How many bytes of TCP options a line's `<...>` list takes, padding included."""
    total = 0
    for option in options:
        if option.name == "sack":
            total += 2 + 8 * len(option.value)
        elif option.name in ("FO", "FOEXP"):
            total += len(fast_open_bytes(option))
        else:
            total += _OPTION_SIZES[option.name]
    return total


def compare_options_length(expected: tuple[OptionSpec, ...] | None, packet: bytes) -> str | None:
    """packetdrill compares the option bytes, so a different layout (an extra NOP pair, a missing
    EOL) is a mismatch there; matcher.py compares meaning only. This restores the length check:
    None if the packet's options take as many bytes as the line's (`<...>`: any)."""
    if expected is None:
        return None
    ip_length = ip_header_length(packet)
    actual = (packet[ip_length + 12] >> 4) * 4 - 20
    wanted = options_length(expected)
    if actual == wanted:
        return None
    return f"{actual} bytes of TCP options where the script's take {wanted}"

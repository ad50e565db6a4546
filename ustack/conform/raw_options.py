"""TCP options the scripts use that ustack.wire does not model: TCP Fast Open (RFC 7413).

ustack's TcpOptions carries what ustack speaks (mss, wscale, sackOK, sack, TS, and the Fast Open
option on SYNs, which ustack.wire.codec reads and writes beside its C layer). The Linux scripts
also put Fast Open cookies on SYNs, as kind 34 (`FO`, RFC 7413 4.1.1) or as the experimental
kind 254 with magic 0xF989 (`FOEXP`, RFC 6994). For the kernel backend these are added to a packet
ustack.wire built (`add_options`) and read back from what the kernel sent (`fast_open_option`).

    packet = add_options(packet, fast_open_bytes(option))   # option: OptionSpec("FO", "abcd1234")
    fast_open_option(packet)  -> ("FO", "abcd1234"), ("FO", None) for a cookie request, or None
"""

from __future__ import annotations

import struct

from ustack.conform.profile import Unsupported
from ustack.conform.script import OptionSpec
from ustack.wire.checksum import checksum_add, checksum_finish, internet_checksum, pseudo_header_sum
from ustack.wire.codec import EXPERIMENTAL_KIND, FAST_OPEN_KIND, fast_open_option_bytes
from ustack.wire.codec import FAST_OPEN_MAGIC as FAST_OPEN_MAGIC_BYTES

FAST_OPEN_MAGIC = int.from_bytes(FAST_OPEN_MAGIC_BYTES, "big")
NOP = 1
MAXIMUM_OPTIONS = 40  # a 60-byte TCP header, RFC 9293 3.1


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


def fast_open_option(packet: bytes) -> tuple[str, str | None] | None:
    """The Fast Open option of a packet the kernel sent, as the script writes it."""
    ip_length = (packet[0] & 0x0F) * 4
    tcp_length = (packet[ip_length + 12] >> 4) * 4
    options = packet[ip_length + 20 : ip_length + tcp_length]
    position = 0
    while position < len(options):
        kind = options[position]
        if kind == 0:
            break
        if kind == NOP:
            position += 1
            continue
        if position + 1 >= len(options) or options[position + 1] < 2:
            break
        length = options[position + 1]
        body = options[position + 2 : position + length]
        if kind == FAST_OPEN_KIND:
            return "FO", body.hex() or None
        if kind == EXPERIMENTAL_KIND and body[:2] == struct.pack("!H", FAST_OPEN_MAGIC):
            return "FOEXP", body[2:].hex() or None
        position += length
    return None


def compare_fast_open(expected: tuple[OptionSpec, ...] | None, packet: bytes) -> str | None:
    """None if the packet's Fast Open option is the one the line expects (`<...>`: any)."""
    if expected is None:
        return None
    wanted = next(((option.name, (option.value or "").lower() or None) for option in expected
                   if option.name in ("FO", "FOEXP")), None)
    actual = fast_open_option(packet)
    if wanted == actual:
        return None
    shown = {None: "no Fast Open option"}
    return (f"{shown.get(actual) or ' '.join(item for item in actual if item)} where the script expects "
            f"{shown.get(wanted) or ' '.join(item for item in wanted if item)}")


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
    ip_length = (packet[0] & 0x0F) * 4
    actual = (packet[ip_length + 12] >> 4) * 4 - 20
    wanted = options_length(expected)
    if actual == wanted:
        return None
    return f"{actual} bytes of TCP options where the script's take {wanted}"

"""Initial sequence numbers (RFC 9293 3.4.1, RFC 6528).

Why not start every connection at 0, or at a global counter? Two reasons.

1. Old duplicates (RFC 9293 3.4.1): a segment from an earlier incarnation of the same 4-tuple
   may still be in the network. If the new connection's sequence numbers start where the old ones
   are far away, such a segment falls outside the window and is discarded. A clock that ticks
   every 4 microseconds (250,000 per second, so the 32-bit space takes about 4.77 hours to wrap)
   keeps successive ISNs of one 4-tuple moving forward.

2. Blind spoofing (RFC 6528 section 1): an attacker who can predict the ISN a server will choose
   can complete a handshake with a forged source address without ever seeing the replies, and
   inject data or resets into connections. A global clock alone is predictable: connect once,
   read the ISN, add the elapsed time. RFC 6528 section 3 therefore adds a secret per-4-tuple
   offset:

       ISN = M + F(localip, localport, remoteip, remoteport, secretkey)

   where M is the 4-microsecond timer and F a keyed hash. Each 4-tuple still sees a monotonic
   clock (reason 1), but an attacker cannot learn one tuple's offset from another's.

Here F is BLAKE2b keyed with a per-stack random secret (RFC 6528 section 3 asks for a secret of
at least 128 bits, chosen at boot or randomly, and a cryptographic hash). `keyed_hash` is that F,
the one keyed hash of the TCP core: SYN cookies (syn_cookies.py) take their MAC from it too.
"""

from __future__ import annotations

import hashlib
import secrets
import struct

from ustack.tcp.seq import SEQ_MASK

TICKS_PER_SECOND = 250_000  # one tick every 4 microseconds (RFC 9293 3.4.1, RFC 6528 3)
FLOW_LABEL_TAG = b"flow label"  # hashed before the 4-tuple, so flow labels are not ISN offsets
FAST_OPEN_TAG = b"fast open cookie"  # likewise for Fast Open cookies (RFC 7413 4.1.2)
FAST_OPEN_COOKIE_SIZE = 8  # bytes; RFC 7413 4.1.1 allows 4 to 16
SECRET_SIZE = 32  # bytes of a random key: 256 bits, twice RFC 6528's minimum


def check_secret(secret: bytes | None) -> bytes:
    """A usable hash key: `secret` itself (1..64 bytes), or SECRET_SIZE random bytes if None."""
    if secret is None:
        return secrets.token_bytes(SECRET_SIZE)
    if not 1 <= len(secret) <= hashlib.blake2b.MAX_KEY_SIZE:
        raise ValueError(f"a hash secret must be 1..64 bytes long, got {len(secret)}")
    return bytes(secret)


# Two IPv4 addresses (ints), each zero-extended to 16 bytes, and the ports: one C call.
_IPV4_FOUR_TUPLE = struct.Struct(">12xIH12xIH")
_pack_ipv4_four_tuple = _IPV4_FOUR_TUPLE.pack


def pack_four_tuple(local_address: int | bytes, local_port: int, remote_address: int | bytes, remote_port: int) -> bytes:
    """The 4-tuple as hash input. Addresses take 16 bytes each: an IPv6 address is its own 16
    bytes (ustack/wire/ipv6.py), an IPv4 address (an int) is zero-extended to 16."""
    # (_address_bytes written out: this runs for every connection, twice with a listener.)
    if type(local_address) is int and type(remote_address) is int:
        return _pack_ipv4_four_tuple(local_address, local_port, remote_address, remote_port)
    return (
        (local_address if type(local_address) is bytes else local_address.to_bytes(16, "big"))
        + local_port.to_bytes(2, "big")
        + (remote_address if type(remote_address) is bytes else remote_address.to_bytes(16, "big"))
        + remote_port.to_bytes(2, "big")
    )


def _address_bytes(address: int | bytes) -> bytes:
    return address if type(address) is bytes else address.to_bytes(16, "big")


def keyed_hash(secret: bytes, data: bytes, size: int = 4) -> int:
    """F of RFC 6528 section 3: a cryptographic hash of `data` keyed with `secret`, as an unsigned
    integer of `size` bytes. Without the secret its output cannot be predicted, nor the secret
    learnt from outputs."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=size, key=secret).digest(), "big")


def keyed_hasher(secret: bytes, size: int = 4):
    """keyed_hash(secret, data, size) as a function of `data` alone, for a secret that hashes many
    inputs (an ISN per connection): BLAKE2b takes its key as a first block of input, which is
    hashed once here; each call copies that state and hashes only `data` (a third less time)."""
    keyed = hashlib.blake2b(digest_size=size, key=secret)

    def hash_of(data: bytes) -> int:
        state = keyed.copy()
        state.update(data)
        return int.from_bytes(state.digest(), "big")

    return hash_of


class IsnGenerator:
    """Chooses the ISN of each new connection.

    `secret`: the hash key (1..64 bytes, at least 16 recommended); a random 32-byte key from the
    operating system's generator if None. `fixed_isn`: if given, every connection starts there
    (for tests and scripted conformance runs, where the ISN must be known in advance);
    `fixed_fast_open_cookie` likewise for the Fast Open cookie of every client.
    """

    def __init__(self, secret: bytes | None = None, fixed_isn: int | None = None,
                 fixed_fast_open_cookie: bytes | None = None):  # fmt: skip
        self._secret = check_secret(secret)
        self._isn_offset = keyed_hasher(self._secret)  # F of RFC 6528 3, the secret hashed once
        self.fixed_isn = None if fixed_isn is None else fixed_isn & SEQ_MASK
        # Scripted conformance runs only: every client's Fast Open cookie is this one (the Linux
        # scripts carry the cookie Linux makes for their address and key).
        self.fixed_fast_open_cookie = fixed_fast_open_cookie

    def generate(
        self, local_address: int | bytes, local_port: int, remote_address: int | bytes, remote_port: int, now: float
    ) -> int:
        """The ISN for a connection on this 4-tuple starting at time `now` (seconds)."""
        if self.fixed_isn is not None:
            return self.fixed_isn
        # M: the 4-microsecond clock (RFC 6528 section 3).
        ticks = int(now * TICKS_PER_SECOND)
        # F: a keyed hash of the 4-tuple (pack_four_tuple's IPv4 case in line: once per connection).
        if type(local_address) is int and type(remote_address) is int:
            four_tuple = _pack_ipv4_four_tuple(local_address, local_port, remote_address, remote_port)
        else:
            four_tuple = pack_four_tuple(local_address, local_port, remote_address, remote_port)
        return (ticks + self._isn_offset(four_tuple)) & SEQ_MASK

    def flow_label(self, local_address: int | bytes, local_port: int, remote_address: int | bytes, remote_port: int) -> int:
        """The IPv6 flow label of a connection (RFC 6437 3): a keyed hash of its 4-tuple, so it is
        the same for every packet of the connection, differs between connections, and cannot be
        guessed from outside (RFC 6437 6). Never 0, which means "no flow" (RFC 6437 2). The same
        secret as the ISNs over a differently tagged input, so neither value tells of the other."""
        four_tuple = pack_four_tuple(local_address, local_port, remote_address, remote_port)
        return (keyed_hash(self._secret, FLOW_LABEL_TAG + four_tuple) & 0xFFFFF) or 1

    def fast_open_cookie(self, remote_address: int | bytes) -> bytes:
        """The Fast Open cookie of a client address (RFC 7413 4.1.2): a keyed hash of the address
        alone, so the client can reuse it on any port, and nobody without the secret can make
        one. A fixed ISN (tests, scripts) does not change it: the secret does."""
        if self.fixed_fast_open_cookie is not None:
            return self.fixed_fast_open_cookie
        value = keyed_hash(self._secret, FAST_OPEN_TAG + _address_bytes(remote_address), FAST_OPEN_COOKIE_SIZE)
        return value.to_bytes(FAST_OPEN_COOKIE_SIZE, "big")

    def __repr__(self) -> str:
        # Never show the secret: it is what keeps the ISNs unpredictable.
        if self.fixed_isn is not None:
            return f"IsnGenerator(fixed_isn={self.fixed_isn})"
        return "IsnGenerator(keyed BLAKE2b, secret hidden)"

"""SYN cookies (RFC 4987 3.6): answering a SYN without keeping any state for it.

A SYN flood fills a listener's SYN queue with half-open connections from addresses that never
answer (RFC 4987 2-3). With SYN cookies the listener keeps nothing: what it would have remembered
about the SYN is folded into the initial sequence number of its SYN-ACK, the cookie. A real client
returns that number + 1 in the acknowledgment field of its ACK; the listener checks it and only
then builds the connection. Spoofed sources never answer, so they cost one SYN-ACK and no memory.

The cookie, 32 bits, as RFC 4987 3.6 describes the classic layout:

    bits 31..27  the time slot t mod 32, t = floor(now / 64 s): a cookie expires
    bits 26..24  an index into MSS_TABLE: the peer's MSS, rounded down to a table entry
    bits 23..0   a 24-bit MAC: keyed_hash (isn.py, RFC 6528's F) of the 4-tuple, the peer's ISN,
                 t and the MSS index, under a secret key

Without the key an attacker who knows the 4-tuple has one chance in 2**24 per guess. The key is
per stack and rotated: a fresh random key every KEY_ROTATION_SLOTS slots, the previous one kept
while cookies made under it may still come back.

The SYN's other options would be lost (RFC 4987 3.6 notes this cost). When the SYN carried
timestamps, they are saved as Linux does, in the low 6 bits of the TSval of our SYN-ACK, which the
peer echoes in the TSecr of its ACK:

    bits 5 | 4    | 3..0
    ECN    | SACK | the peer's window scale shift, 15 = no window scaling

The ECN bit says the SYN asked for ECN (ECE and CWR, RFC 3168 6.1.1) and our SYN-ACK agreed
(ECE), as Linux's cookie_ecn_ok: the connection rebuilt from the returning ACK then negotiates ECN
as one from a normal handshake would. The TSval so made is never ahead of our
timestamp clock, so the connection's later TSvals keep increasing (RFC 7323 5.4). It may be up to
63 ms behind, which the first RTT sample (from the ACK's TSecr) then includes: the first RTO (three
times that sample, RFC 6298 2.2) stays near its 200 ms floor (TcpConfig.min_rto), and later samples
correct it. A SYN without timestamps gets a SYN-ACK that agrees to
neither window scaling nor SACK: there would be nowhere to remember them.
"""

from __future__ import annotations

import secrets
from typing import Callable, NamedTuple

from ustack.tcp.config import TcpConfig
from ustack.tcp.isn import SECRET_SIZE, check_secret, keyed_hash, pack_four_tuple
from ustack.tcp.options import TIMESTAMP_MASK, Negotiated, syn_options, timestamp_value
from ustack.tcp.seq import seq_add, seq_gt
from ustack.wire.tcp import ACK, CWR, ECE, SYN, TcpOptions, TcpSegment

SLOT_SECONDS = 64  # one tick of the cookie clock (RFC 4987 3.6)
SLOT_BITS, MSS_INDEX_BITS, MAC_BITS = 5, 3, 24
SLOT_SHIFT = MSS_INDEX_BITS + MAC_BITS  # 27
SLOT_MODULUS = 1 << SLOT_BITS
MAC_MASK = (1 << MAC_BITS) - 1
# A cookie is accepted in its own slot and the next: between 64 and 128 seconds, enough for any
# handshake (Linux accepts the same two minutes, MAX_SYNCOOKIE_AGE).
MAX_AGE_SLOTS = 1
KEY_ROTATION_SLOTS = 4  # a fresh key every 4 slots (4 min 16 s)

# The MSS values a cookie can carry (3 bits, 7 used; index 7 is never issued). A peer's MSS is
# rounded DOWN to an entry, so we never send more than it asked for: 48 is the smallest MSS we
# honour (options.MIN_PEER_MSS), 536 the default of RFC 9293 3.7.1, 1220-1460 what IPv4 paths over
# tunnels, PPPoE and Ethernet give, 8960 a 9000-byte jumbo frame.
MSS_TABLE = (48, 536, 1220, 1360, 1440, 1460, 8960)

OPTION_BITS = 6  # in the low bits of our TSval
OPTION_MASK = (1 << OPTION_BITS) - 1
WINDOW_SCALE_MASK = 0x0F
NO_WINDOW_SCALE = 0x0F  # 15 is no valid shift (RFC 7323 2.3 allows 0..14)
SACK_BIT = 0x10
ECN_BIT = 0x20  # reserved for ECN (RFC 3168), which ustack does not implement


class CookieFields(NamedTuple):
    """A cookie taken apart, for people (the syn-flood lab prints this)."""

    slot: int  # t mod 32
    mss_index: int
    mac: int

    @classmethod
    def of(cls, cookie: int) -> "CookieFields":
        return cls(cookie >> SLOT_SHIFT, (cookie >> MAC_BITS) & ((1 << MSS_INDEX_BITS) - 1), cookie & MAC_MASK)

    @property
    def mss(self) -> int | None:
        return MSS_TABLE[self.mss_index] if self.mss_index < len(MSS_TABLE) else None


class CookieOptions(NamedTuple):
    """The SYN options saved in the low bits of our TSval."""

    window_scale: int | None  # the peer's shift, or None: no window scaling
    sack: bool
    ecn: bool

    def encode(self) -> int:
        bits = NO_WINDOW_SCALE if self.window_scale is None else self.window_scale
        return bits | (SACK_BIT if self.sack else 0) | (ECN_BIT if self.ecn else 0)

    @classmethod
    def decode(cls, tsecr: int) -> "CookieOptions":
        shift = tsecr & WINDOW_SCALE_MASK
        return cls(None if shift == NO_WINDOW_SCALE else shift, bool(tsecr & SACK_BIT), bool(tsecr & ECN_BIT))


def mss_index_for(peer_mss: int) -> int:
    """The largest table entry not above the peer's MSS (the first entry for anything smaller)."""
    index = 0
    for candidate, value in enumerate(MSS_TABLE):
        if value <= peer_mss:
            index = candidate
    return index


def cookie_tsval(now: float, options: CookieOptions) -> int:
    """Our timestamp clock with its low bits replaced by the options, moved back one step of 64
    ticks if that put it ahead of the clock: later TSvals must not go backwards (RFC 7323 5.4)."""
    clock = timestamp_value(now)
    value = (clock & ~OPTION_MASK & TIMESTAMP_MASK) | options.encode()
    if seq_gt(value, clock):
        value = (value - (OPTION_MASK + 1)) & TIMESTAMP_MASK
    return value


class CookieCheck(NamedTuple):
    """What checking a returning cookie found: the MSS it carried, or why it failed (a drop
    reason, counted by the listener)."""

    mss: int
    failure: str = ""


class SynCookies:
    """Makes and checks cookies under a secret that is rotated (one per stack, shared by its
    listeners). `random_bytes(n)` supplies the keys: the operating system's generator by default,
    a seeded one in tests. With `secret`, each period's key is instead derived from it (keyed
    BLAKE2b of the period number), so that processes sharing the secret (ustack serve --workers)
    make and accept the same cookies; it still rotates, and cannot be guessed without the secret."""

    def __init__(self, random_bytes: Callable[[int], bytes] = secrets.token_bytes, secret: bytes | None = None):
        self._random_bytes = random_bytes
        self._secret = None if secret is None else check_secret(secret)
        self._keys: dict[int, bytes] = {}  # key period -> key: the current and the previous one

    # ------------------------------------------------------------------ the cookie itself
    def make(self, local_address: int, local_port: int, remote_address: int, remote_port: int,
             peer_isn: int, peer_mss: int, now: float) -> int:
        """The cookie ISN for a SYN with sequence number `peer_isn` announcing `peer_mss`."""
        slot = int(now // SLOT_SECONDS)
        mss_index = mss_index_for(peer_mss)
        key = self._current_key(slot)
        mac = self._mac(key, local_address, local_port, remote_address, remote_port, peer_isn, slot, mss_index)
        return ((slot % SLOT_MODULUS) << SLOT_SHIFT) | (mss_index << MAC_BITS) | mac

    def check(self, local_address: int, local_port: int, remote_address: int, remote_port: int,
              peer_isn: int, cookie: int, now: float) -> CookieCheck:
        """Is `cookie` one we made for this 4-tuple and peer ISN, recently enough?"""
        fields = CookieFields.of(cookie)
        if fields.mss is None:
            return CookieCheck(0, "syncookie_bad_mss_index")
        slot_now = int(now // SLOT_SECONDS)
        age = (slot_now - fields.slot) % SLOT_MODULUS
        if age > MAX_AGE_SLOTS:
            return CookieCheck(0, "syncookie_expired")
        slot = slot_now - age
        period = slot // KEY_ROTATION_SLOTS
        # With a shared secret the key of any period can be derived: another process sharing it
        # may have made the cookie in a period this one never made a key for.
        key = self._keys.get(period) if self._secret is None else self._derived_key(period)
        if key is None or fields.mac != self._mac(
            key, local_address, local_port, remote_address, remote_port, peer_isn, slot, fields.mss_index
        ):
            return CookieCheck(0, "syncookie_bad_mac")
        return CookieCheck(fields.mss)

    @staticmethod
    def _mac(key: bytes, local_address: int, local_port: int, remote_address: int, remote_port: int,
             peer_isn: int, slot: int, mss_index: int) -> int:
        data = (
            pack_four_tuple(local_address, local_port, remote_address, remote_port)
            + peer_isn.to_bytes(4, "big") + slot.to_bytes(8, "big", signed=True) + bytes((mss_index,))
        )
        return keyed_hash(key, data, MAC_BITS // 8)

    def _current_key(self, slot: int) -> bytes:
        period = slot // KEY_ROTATION_SLOTS
        key = self._keys.get(period)
        if key is None:
            if self._secret is None:
                key = self._random_bytes(SECRET_SIZE)
            else:
                key = self._derived_key(period)
            self._keys[period] = key
            # Keep the previous key for cookies made just before the rotation; forget older ones
            # (no cookie they signed is young enough to be accepted).
            for old in [p for p in self._keys if p < period - 1]:
                del self._keys[old]
        return key

    def _derived_key(self, period: int) -> bytes:
        return keyed_hash(self._secret, period.to_bytes(8, "big", signed=True), SECRET_SIZE).to_bytes(SECRET_SIZE, "big")

    def __repr__(self) -> str:
        return f"SynCookies({len(self._keys)} keys, hidden)"  # never show a key


# ---------------------------------------------------------------------- the segments around it
def cookie_syn_ack(config: TcpConfig, syn: TcpSegment, cookie: int, now: float) -> TcpSegment:
    """Our SYN-ACK to `syn` with the cookie as its ISN: the options a connection would answer with
    (options.Negotiated, options.syn_options), with the agreed window scale and SACK saved in the
    TSval when timestamps are agreed. The window is that of a fresh receive buffer, as a normal
    SYN-ACK's (never scaled on a SYN, RFC 7323 2.2)."""
    agreed = Negotiated(config, syn.options)
    # Without timestamps there is nowhere to keep window scaling and SACK, so the SYN-ACK must not
    # agree to them (RFC 7323 2.2, RFC 2018 2: an option is on only if both SYNs carry it).
    keeps = agreed.timestamps
    options = syn_options(config, now, window_scale=agreed.window_scaling and keeps, sack=agreed.sack and keeps,
                          timestamps=keeps, ts_recent=syn.options.timestamps[0] if keeps else 0)
    # ECN (RFC 3168 6.1.1) needs the TSval too: agreed only if it can be remembered.
    ecn = keeps and config.ecn != "off" and syn.flags & (ECE | CWR) == ECE | CWR
    if keeps:
        saved = CookieOptions(agreed.send_shift if agreed.window_scaling else None, agreed.sack, ecn)
        options = options._replace(timestamps=(cookie_tsval(now, saved), options.timestamps[1]))
    window = min(config.receive_buffer_size, 0xFFFF)
    flags = SYN | ACK | ECE if ecn else SYN | ACK
    return TcpSegment(syn.dst_port, syn.src_port, cookie, seq_add(syn.seq, 1), flags, window, 0, options, b"")


def rebuilt_syn(config: TcpConfig, ack: TcpSegment, mss: int) -> tuple[TcpSegment | None, str]:
    """The SYN as far as the cookie remembers it, from the ACK that returned the cookie: its
    sequence number, the MSS from the table and, if the ACK carries timestamps, the options saved
    in the TSval it echoes. (None, reason) if those options are ones we would not have agreed to:
    the TSecr was not ours."""
    timestamps = ack.options.timestamps if config.timestamps and not config.no_options else None
    flags = SYN
    if timestamps is None:
        options = TcpOptions(mss=mss)
    else:
        saved = CookieOptions.decode(timestamps[1])
        if (
            (saved.ecn and config.ecn == "off")
            or (saved.sack and not config.sack)
            or (saved.window_scale is not None and not config.window_scaling)
        ):
            return None, "syncookie_bad_options"
        options = TcpOptions(mss=mss, window_scale=saved.window_scale, sack_permitted=saved.sack,
                             timestamps=(timestamps[0], 0))
        if saved.ecn:
            flags = SYN | ECE | CWR  # the SYN asked for ECN and our SYN-ACK agreed
    syn = TcpSegment(ack.src_port, ack.dst_port, seq_add(ack.seq, -1), 0, flags, ack.window, 0, options, b"")
    return syn, ""

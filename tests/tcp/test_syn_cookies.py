"""SYN cookies (RFC 4987 3.6): the cookie ISN, the options saved in our TSval, and the listener that
answers with cookies when its SYN queue is full (TcpConfig.syncookies), on virtual time."""

from __future__ import annotations

import dataclasses
import itertools
import random
from operator import attrgetter

import pytest
from hypothesis import given, settings, strategies as st

from ustack.stack import Stack
from ustack.tcp import Listener, State, TcpConfig
from ustack.tcp.events import StateChanged
from ustack.tcp.isn import IsnGenerator
from ustack.tcp.options import TIMESTAMP_OPTION_SPACE, timestamp_value
from ustack.tcp.seq import seq_add, seq_le
from ustack.tcp.syn_cookies import (
    KEY_ROTATION_SLOTS,
    MSS_TABLE,
    SLOT_SECONDS,
    CookieFields,
    CookieOptions,
    SynCookies,
    cookie_tsval,
    mss_index_for,
)
from ustack.wire import build_tcp_packet, parse_packet
from ustack.wire.tcp import ACK, PSH, RST, SYN, TcpOptions, TcpSegment

LOCAL, REMOTE = 0x0A4D0002, 0x0A4D0001
PORT, PEER_PORT = 80, 40000
PEER_ISN = 0xFFFFFFF0
SEED = 20261206
CONFIG = TcpConfig(receive_buffer_size=1 << 20)  # everything on: window scale 5, SACK, timestamps


def seeded_cookies(seed: int = SEED) -> SynCookies:
    return SynCookies(random.Random(seed).randbytes)


def make_cookie(jar, now=100.0, peer_isn=PEER_ISN, mss=1460, port=PEER_PORT):
    return jar.make(LOCAL, PORT, REMOTE, port, peer_isn, mss, now)


def check_cookie(jar, cookie, now=100.0, peer_isn=PEER_ISN, port=PEER_PORT, remote=REMOTE):
    return jar.check(LOCAL, PORT, remote, port, peer_isn, cookie, now)


def make_listener(config=CONFIG, *, syncookies="always", backlog=8, syn_queue_size=8) -> Listener:
    config = dataclasses.replace(config, syncookies=syncookies)
    return Listener(config, LOCAL, PORT, backlog=backlog, syn_queue_size=syn_queue_size,
                    isn_generator=IsnGenerator(secret=b"k" * 32), syn_cookies=seeded_cookies())


def syn(port=PEER_PORT, options=TcpOptions(mss=1460), seq=PEER_ISN) -> TcpSegment:
    return TcpSegment(port, PORT, seq, 0, SYN, 64240, options=options)


def answer(syn_ack: TcpSegment, peer_tsval: int = 1001, flags=ACK, payload=b"", port=PEER_PORT) -> TcpSegment:
    """The peer's ACK of our SYN-ACK, echoing its TSval if it carried one."""
    timestamps = None if syn_ack.options.timestamps is None else (peer_tsval, syn_ack.options.timestamps[0])
    return TcpSegment(port, PORT, seq_add(syn_ack.ack, 0), seq_add(syn_ack.seq, 1), flags, 502,
                      options=TcpOptions(timestamps=timestamps), payload=payload)


def only_reply(listener: Listener, now: float) -> TcpSegment:
    replies = listener.transmit(now)
    assert len(replies) == 1, replies
    remote, segment = replies[0]
    assert remote == REMOTE
    return segment


# ---------------------------------------------------------------------- the cookie
@pytest.mark.parametrize("mss_index", range(len(MSS_TABLE)))
def test_every_mss_index_round_trips(mss_index):
    jar = seeded_cookies()
    announced = MSS_TABLE[mss_index] + 3  # rounded down to the entry
    cookie = make_cookie(jar, mss=announced)
    fields = CookieFields.of(cookie)
    assert fields.mss_index == mss_index and fields.mss == MSS_TABLE[mss_index]
    assert fields.slot == int(100.0 // SLOT_SECONDS) % 32
    assert check_cookie(jar, cookie) == (MSS_TABLE[mss_index], "")


def test_the_mss_is_rounded_down_never_up():
    assert [mss_index_for(m) for m in (48, 100, 535, 536, 1459, 1460, 1461, 9000, 65495)] == [0, 0, 0, 1, 4, 5, 5, 6, 6]
    assert all(MSS_TABLE[mss_index_for(m)] <= m for m in range(48, 20000, 7))


@settings(max_examples=300, derandomize=True, deadline=None)
@given(peer_isn=st.integers(0, 2**32 - 1), mss=st.integers(48, 65495), port=st.integers(1, 65535),
       now=st.floats(0, 1e7), later=st.floats(0, SLOT_SECONDS - 0.001))
def test_cookies_round_trip_within_their_slot_and_the_next(peer_isn, mss, port, now, later):
    jar = seeded_cookies()
    cookie = make_cookie(jar, now=now, peer_isn=peer_isn, mss=mss, port=port)
    expected = (MSS_TABLE[mss_index_for(mss)], "")
    assert check_cookie(jar, cookie, now=now, peer_isn=peer_isn, port=port) == expected
    next_slot = (int(now // SLOT_SECONDS) + 1) * SLOT_SECONDS + later
    assert check_cookie(jar, cookie, now=next_slot, peer_isn=peer_isn, port=port) == expected


def test_a_cookie_expires_after_its_slot_and_the_next():
    jar = seeded_cookies()
    cookie = make_cookie(jar, now=0.0)
    assert check_cookie(jar, cookie, now=127.9).failure == ""
    assert check_cookie(jar, cookie, now=128.0).failure == "syncookie_expired"
    assert check_cookie(jar, cookie, now=31 * SLOT_SECONDS).failure == "syncookie_expired"
    # 32 slots later the 5-bit counter has come round: the MAC (over the full slot number, and a
    # key long rotated away) still refuses it.
    assert check_cookie(jar, cookie, now=32 * SLOT_SECONDS).failure == "syncookie_bad_mac"


def test_a_cookie_from_the_future_is_expired():
    jar = seeded_cookies()
    cookie = make_cookie(jar, now=10 * SLOT_SECONDS)
    assert check_cookie(jar, cookie, now=9 * SLOT_SECONDS).failure == "syncookie_expired"


def test_the_mac_binds_the_four_tuple_the_peer_isn_and_the_mss_index():
    jar = seeded_cookies()
    cookie = make_cookie(jar)
    assert check_cookie(jar, cookie, port=PEER_PORT + 1).failure == "syncookie_bad_mac"
    assert check_cookie(jar, cookie, remote=REMOTE + 1).failure == "syncookie_bad_mac"
    assert check_cookie(jar, cookie, peer_isn=PEER_ISN + 1).failure == "syncookie_bad_mac"
    assert jar.check(LOCAL, PORT + 1, REMOTE, PEER_PORT, PEER_ISN, cookie, 100.0).failure == "syncookie_bad_mac"
    for bit in range(24):  # any change of the MAC
        assert check_cookie(jar, cookie ^ (1 << bit)).failure == "syncookie_bad_mac"
    other_index = cookie ^ (1 << 24)  # the MSS index 5 (1460) becomes 4 (1440): still in the table
    assert CookieFields.of(other_index).mss == 1440
    assert check_cookie(jar, other_index).failure == "syncookie_bad_mac"
    assert seeded_cookies(SEED + 1).check(LOCAL, PORT, REMOTE, PEER_PORT, PEER_ISN, cookie, 100.0).failure == "syncookie_bad_mac"


def test_an_mss_index_outside_the_table_is_refused_by_name():
    jar = seeded_cookies()
    cookie = make_cookie(jar) | (7 << 24)
    assert CookieFields.of(cookie).mss is None
    assert check_cookie(jar, cookie).failure == "syncookie_bad_mss_index"


def test_the_key_rotates_and_the_previous_one_serves_cookies_made_just_before():
    jar = seeded_cookies()
    boundary = KEY_ROTATION_SLOTS * SLOT_SECONDS * 10
    before = make_cookie(jar, now=boundary - 1)
    after = make_cookie(jar, now=boundary + 1)
    # Same 4-tuple and ISN a moment apart: only the slot bits and the (new key's) MAC differ.
    assert CookieFields.of(before).mac != CookieFields.of(after).mac
    assert check_cookie(jar, before, now=boundary + 1).failure == ""
    assert check_cookie(jar, after, now=boundary + 1).failure == ""
    # Two rotations on, the old key is gone (and the cookie long expired).
    make_cookie(jar, now=boundary + 2 * KEY_ROTATION_SLOTS * SLOT_SECONDS)
    assert len(jar._keys) <= 2
    assert "hidden" in repr(jar)


@pytest.mark.parametrize("window_scale,sack", list(itertools.product([None, *range(15)], [False, True])))
def test_options_in_the_tsval_round_trip_and_never_run_ahead_of_the_clock(window_scale, sack):
    options = CookieOptions(window_scale, sack, False)
    for now in (0.0, 0.0005, 0.063, 0.064, 12.345, 4294967.295, 1e6 + 0.01):
        value = cookie_tsval(now, options)
        assert CookieOptions.decode(value) == options
        clock = timestamp_value(now)
        assert seq_le(value, clock) and (clock - value) & 0xFFFFFFFF < 64


# ---------------------------------------------------------------------- through the listener
SYN_OPTION_CASES = list(itertools.product(range(len(MSS_TABLE)), [None, 0, 7, 14, 15], [False, True], [False, True]))


@pytest.mark.parametrize("mss_index,window_scale,sack,timestamps", SYN_OPTION_CASES)
def test_a_cookie_connection_gets_the_options_a_normal_handshake_would(mss_index, window_scale, sack, timestamps):
    peer_options = TcpOptions(mss=MSS_TABLE[mss_index], window_scale=window_scale, sack_permitted=sack,
                              timestamps=(1000, 0) if timestamps else None)
    listener = make_listener()
    now = 1000.0
    assert listener.receive(REMOTE, syn(options=peer_options), now) is None  # nothing kept
    assert listener.syn_queue == [] and listener.counters["syncookies_sent"] == 1
    syn_ack = only_reply(listener, now)
    assert syn_ack.flags == SYN | ACK and syn_ack.ack == seq_add(PEER_ISN, 1)

    # The same SYN through a normal handshake, for comparison.
    normal_listener = make_listener(syncookies="off")
    normal = normal_listener.receive(REMOTE, syn(options=peer_options), now)
    normal_syn_ack = normal.transmit(now)[0]
    if timestamps:
        # The same SYN-ACK but for the ISN and the TSval (which carries the options).
        assert syn_ack._replace(seq=0, options=syn_ack.options._replace(timestamps=None)) == \
            normal_syn_ack._replace(seq=0, options=normal_syn_ack.options._replace(timestamps=None))
    else:
        # Nowhere to keep window scaling and SACK, so the SYN-ACK does not agree to them (as
        # Linux does): the connection goes without (RFC 4987 3.6).
        assert syn_ack.options == TcpOptions(mss=CONFIG.mss)
        assert syn_ack._replace(seq=0, options=None) == normal_syn_ack._replace(seq=0, options=None)

    child = listener.receive(REMOTE, answer(syn_ack), now + 0.01)
    assert child is not None and child.state is State.ESTABLISHED
    assert listener.counters["syncookies_validated"] == 1 and listener.accept() is child
    normal.receive(answer(normal_syn_ack), now + 0.01)
    compared = ["rcv_nxt", "irs", "timestamps_enabled", "rcv.capacity"]
    if timestamps:
        compared += ["send_shift", "receive_shift", "window_scaling_enabled", "sack_permitted", "snd_wnd", "rcv.adv"]
    else:
        assert not child.window_scaling_enabled and not child.sack_permitted
    for name in compared:
        assert attrgetter(name)(child) == attrgetter(name)(normal), name
    assert child.iss == syn_ack.seq and child.snd_una == seq_add(syn_ack.seq, 1)
    assert child.send_mss == min(MSS_TABLE[mss_index], CONFIG.mss) - (TIMESTAMP_OPTION_SPACE if timestamps else 0)


def test_the_cookie_connection_goes_through_real_transitions_and_keeps_no_timer():
    listener = make_listener()
    listener.receive(REMOTE, syn(), 5.0)
    child = listener.receive(REMOTE, answer(only_reply(listener, 5.0)), 5.2)
    changes = [(e.old, e.new) for e in child.events() if isinstance(e, StateChanged)]
    assert changes == [(State.CLOSED, State.LISTEN), (State.LISTEN, State.SYN_RECEIVED),
                       (State.SYN_RECEIVED, State.ESTABLISHED)]
    assert child.next_deadline() is None
    assert child.transmit(5.2) == []  # nothing owed: the ACK carried no data


def test_data_on_the_returning_ack_is_delivered():
    listener = make_listener()
    listener.receive(REMOTE, syn(), 5.0)
    child = listener.receive(REMOTE, answer(only_reply(listener, 5.0), flags=ACK | PSH, payload=b"GET /"), 5.1)
    assert child.state is State.ESTABLISHED and child.recv(100, 5.1) == b"GET /"


def test_syn_queue_full_engages_cookies_in_auto_mode():
    listener = make_listener(syncookies="auto", syn_queue_size=2)
    first = listener.receive(REMOTE, syn(port=5000), 0.0)
    second = listener.receive(REMOTE, syn(port=5001), 0.0)
    assert first.state is second.state is State.SYN_RECEIVED and listener.transmit(0.0) == []
    assert listener.receive(REMOTE, syn(port=5002), 0.0) is None
    syn_ack = only_reply(listener, 0.0)
    assert listener.counters == {"syn_queue_overflows": 1, "syncookies_sent": 1}
    assert len(listener.syn_queue) == 2 and listener.drops["syn_queue_full"] == 0
    child = listener.receive(REMOTE, answer(syn_ack, port=5002), 0.1)
    assert child.state is State.ESTABLISHED and listener.accept() is child


def test_off_mode_drops_syns_beyond_the_queue():
    listener = make_listener(syncookies="off", syn_queue_size=1)
    assert listener.receive(REMOTE, syn(port=5000), 0.0) is not None
    assert listener.receive(REMOTE, syn(port=5001), 0.0) is None
    assert listener.transmit(0.0) == []
    assert listener.counters == {"syn_queue_overflows": 1} and listener.drops["syn_queue_full"] == 1


def test_always_mode_keeps_no_half_open_connection():
    listener = make_listener(syncookies="always", syn_queue_size=1)
    for port in range(5000, 5010):
        assert listener.receive(REMOTE, syn(port=port), 0.0) is None
    assert listener.syn_queue == [] and listener.counters["syncookies_sent"] == 10
    assert listener.counters["syn_queue_overflows"] == 0


def test_a_stray_ack_gets_a_reset_and_counts_as_a_failed_cookie_while_cookies_are_out():
    listener = make_listener()
    listener.receive(REMOTE, syn(), 0.0)
    syn_ack = only_reply(listener, 0.0)
    forged = answer(syn_ack)._replace(ack=seq_add(syn_ack.seq, 2))
    assert listener.receive(REMOTE, forged, 0.1) is None
    assert only_reply(listener, 0.1) == TcpSegment(PORT, PEER_PORT, forged.ack, 0, RST, 0)
    assert listener.drops["syncookie_bad_mac"] == 1 and listener.counters["syncookies_failed"] == 1


def test_cookies_are_not_checked_once_none_can_still_be_valid():
    listener = make_listener(syncookies="auto", syn_queue_size=1)
    listener.receive(REMOTE, syn(port=5000), 0.0)
    listener.receive(REMOTE, syn(port=5001), 0.0)  # a cookie
    syn_ack = only_reply(listener, 0.0)
    late = 3 * SLOT_SECONDS
    assert listener.receive(REMOTE, answer(syn_ack, port=5001), late) is None
    assert listener.drops["ack_in_listen"] == 1 and listener.counters["syncookies_failed"] == 0
    assert only_reply(listener, late).flags == RST
    # In "auto" mode with no overflow ever, an ACK is a stray ACK: no cookie check at all.
    quiet = make_listener(syncookies="auto")
    assert quiet.receive(REMOTE, answer(syn_ack, port=5001), 0.0) is None
    assert quiet.drops["ack_in_listen"] == 1 and quiet.counters["syncookies_failed"] == 0


def test_bad_options_in_the_echoed_tsval_are_refused_by_name():
    # The ECN bit where ECN is off: never ours (with ECN on or passive, the bit is a request we
    # agreed to, test_a_cookie_connection_keeps_ecn_in_the_tsval).
    listener = make_listener(dataclasses.replace(CONFIG, ecn="off"))
    listener.receive(REMOTE, syn(options=TcpOptions(mss=1460, timestamps=(7, 0))), 0.0)
    syn_ack = only_reply(listener, 0.0)
    ack = answer(syn_ack)
    ecn = ack._replace(options=TcpOptions(timestamps=(1001, syn_ack.options.timestamps[0] | 0x20)))
    assert listener.receive(REMOTE, ecn, 0.1) is None
    assert listener.drops["syncookie_bad_options"] == 1
    no_sack = make_listener(dataclasses.replace(CONFIG, sack=False))
    no_sack.receive(REMOTE, syn(options=TcpOptions(mss=1460, timestamps=(7, 0))), 0.0)
    syn_ack = only_reply(no_sack, 0.0)
    claims_sack = answer(syn_ack)._replace(options=TcpOptions(timestamps=(1001, syn_ack.options.timestamps[0] | 0x10)))
    assert no_sack.receive(REMOTE, claims_sack, 0.1) is None
    assert no_sack.drops["syncookie_bad_options"] == 1


def test_a_full_accept_queue_drops_the_returning_ack_until_there_is_room():
    listener = make_listener(backlog=1)
    listener.receive(REMOTE, syn(port=5000), 0.0)
    listener.receive(REMOTE, syn(port=5001), 0.0)
    first_syn_ack, second_syn_ack = (segment for _, segment in listener.transmit(0.0))
    first = listener.receive(REMOTE, answer(first_syn_ack, port=5000), 0.1)
    assert first.state is State.ESTABLISHED
    assert listener.receive(REMOTE, answer(second_syn_ack, port=5001), 0.1) is None
    assert listener.drops["accept_queue_full"] == 1 and listener.transmit(0.1) == []  # silently
    assert listener.accept() is first
    second = listener.receive(REMOTE, answer(second_syn_ack, port=5001), 1.1)  # the peer's retransmission
    assert second.state is State.ESTABLISHED and listener.counters["syncookies_validated"] == 2


def test_blind_acks_with_guessed_cookies_open_nothing():
    """The attacker knows the 4-tuple of a real client and the client's ISN (it forges the SYN
    itself), sees no SYN-ACK, and guesses the cookie: 20,000 ACKs with random acknowledgment
    numbers. Each has a 2**-24 chance per valid slot; none may open a connection."""
    rng = random.Random(SEED)
    print("seed", SEED)
    listener = make_listener()
    listener.receive(REMOTE, syn(), 0.0)
    listener.transmit(0.0)  # the SYN-ACK goes to the real client, not the attacker
    opened = 0
    for _ in range(20_000):
        guess = TcpSegment(PEER_PORT, PORT, seq_add(PEER_ISN, 1), rng.getrandbits(32), ACK, 502)
        opened += listener.receive(REMOTE, guess, 1.0) is not None
    failures = listener.counters["syncookies_failed"]
    assert opened == 0 and failures == 20_000 and listener.counters["syncookies_validated"] == 0
    assert sum(v for k, v in listener.drops.items() if k.startswith("syncookie_")) == 20_000
    assert len(listener.transmit(1.0)) == 20_000  # a reset each, as for any stray ACK


# ---------------------------------------------------------------------- a whole host
def test_a_stack_under_a_spoofed_flood_still_serves_a_real_client():
    """Two sans-IO stacks on virtual time: 1,000 SYNs from spoofed sources fill the server's SYN
    queue of 8 (SYN-ACKs to nowhere), then a real client connects and exchanges data at once."""
    server, client = Stack(LOCAL), Stack(REMOTE)
    listener = server.listen(PORT, backlog=8)
    now = 0.0
    for number in range(1000):
        source = 0x0A4E0000 + number  # 10.78.x.y: nobody
        spoofed = TcpSegment(1024 + number, PORT, number * 7919, 0, SYN, 64240, options=TcpOptions(mss=1460))
        server.receive(build_tcp_packet(source, LOCAL, spoofed), now)
    assert len(server.transmit(now)) == 1000  # 8 SYN-ACKs from half-open entries, 992 with cookies
    assert len(listener.syn_queue) == 8 and listener.counters["syncookies_sent"] == 992
    memory_before = len(server.connections)

    connection = client.connect(LOCAL, PORT, now)
    connection.send(b"hello", now)
    for _ in range(10):  # rounds of packets both ways
        now += 0.001
        for packet in client.transmit(now):
            server.receive(packet, now)
        for packet in server.transmit(now):
            if parse_packet(packet).ip.dst == REMOTE:
                client.receive(packet, now)
    served = listener.accept()
    assert served is not None and served.state is State.ESTABLISHED and served.recv(100, now) == b"hello"
    assert connection.state is State.ESTABLISHED and connection.retransmissions == 0
    assert listener.counters["syncookies_validated"] == 1
    assert len(server.connections) == memory_before + 1


@pytest.mark.parametrize("ecn, asked, agreed", [("passive", True, True), ("on", True, True), ("off", True, False),
                                                 ("passive", False, False)])
def test_a_cookie_connection_keeps_ecn_in_the_tsval(ecn, asked, agreed):
    # RFC 3168 6.1.1 through a SYN cookie, as Linux (cookie_ecn_ok): the SYN's request and our
    # agreement ride in the ECN bit of the TSval, and the connection rebuilt from the returning
    # ACK negotiates ECN like one from a normal handshake.
    from ustack.wire.tcp import CWR, ECE

    listener = make_listener(dataclasses.replace(CONFIG, ecn=ecn))
    request = syn(options=TcpOptions(mss=1460, timestamps=(1000, 0)))
    if asked:
        request = request._replace(flags=SYN | ECE | CWR)
    listener.receive(REMOTE, request, 50.0)
    syn_ack = only_reply(listener, 50.0)
    assert bool(syn_ack.flags & ECE) == agreed and not syn_ack.flags & CWR
    assert CookieOptions.decode(syn_ack.options.timestamps[0]).ecn == agreed
    child = listener.receive(REMOTE, answer(syn_ack), 50.1)
    assert child is not None and child.state is State.ESTABLISHED
    assert (child.ecn is not None) == agreed


def test_without_timestamps_a_cookie_cannot_remember_ecn_and_does_not_agree():
    from ustack.wire.tcp import CWR, ECE

    listener = make_listener(dataclasses.replace(CONFIG, ecn="passive"))
    listener.receive(REMOTE, syn()._replace(flags=SYN | ECE | CWR), 50.0)
    syn_ack = only_reply(listener, 50.0)
    assert not syn_ack.flags & ECE
    child = listener.receive(REMOTE, answer(syn_ack), 50.1)
    assert child is not None and child.ecn is None

"""The web view's feed without a browser: events in (packets in wire order, state changes,
snapshots), JSON messages out. Packets are built with scapy; times are given (virtual)."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
from scapy.layers.inet import IP, TCP

from ustack.tcp.events import ConnectionSnapshot, StateChanged
from ustack.tcp.state import FIGURE_5, NOT_IN_FIGURE, TRANSITIONS, State
from ustack.trace.live import WireWatch
from ustack.web import feed as feed_module
from ustack.web.diagram import edge_id, state_diagram_svg, state_id
from ustack.web.feed import WebFeed
from ustack.web.server import WebAddressError, parse_web_address
from ustack.wire.ipv4 import address_value

USTACK, KERNEL = "10.77.0.2", "10.77.0.1"
KEY = "10.77.0.2:80>10.77.0.1:40000"


def packet(direction: str, flags: str, seq: int, ack: int = 0, payload: bytes = b"", port: int = 40000) -> bytes:
    if direction == "in":
        layer = IP(src=KERNEL, dst=USTACK) / TCP(sport=port, dport=80, flags=flags, seq=seq, ack=ack, window=64240)
    else:
        layer = IP(src=USTACK, dst=KERNEL) / TCP(sport=80, dport=port, flags=flags, seq=seq, ack=ack, window=65535)
    return bytes(layer / payload) if payload else bytes(layer)


def core(port: int = 40000):
    return SimpleNamespace(local_address=address_value(USTACK), local_port=80,
                           remote_address=address_value(KERNEL), remote_port=port)


def collected(feed: WebFeed) -> list[dict]:
    messages: list[dict] = []
    feed.listeners.append(lambda message: messages.append(json.loads(json.dumps(message))))  # JSON-clean
    return messages


def handshake(feed: WebFeed, connection, port: int = 40000, isn: int = 1000) -> None:
    feed.record(1.0, packet("in", "S", isn, port=port), "in")
    feed.state_changed(1.0, connection, StateChanged(State.CLOSED, State.LISTEN, "rcv SYN"))
    feed.state_changed(1.0, connection, StateChanged(State.LISTEN, State.SYN_RECEIVED, "rcv SYN"))
    feed.record(1.0, packet("out", "SA", 5000, isn + 1, port=port), "out")
    feed.record(1.1, packet("in", "A", isn + 1, 5001, port=port), "in")
    feed.state_changed(1.1, connection, StateChanged(State.SYN_RECEIVED, State.ESTABLISHED, "rcv ACK of SYN"))


def test_packets_become_tcpdump_lines_and_a_growing_ladder():
    feed = WebFeed("test")
    messages = collected(feed)
    handshake(feed, core())
    packets = [message for message in messages if message["type"] == "packet"]
    assert [message["direction"] for message in packets] == ["in", "out", "in"]
    assert all(message["key"] == KEY for message in packets)
    assert packets[0]["line"].startswith("IP 10.77.0.1.40000 > 10.77.0.2.80: Flags [S], seq 1000")
    ladders = [message for message in messages if message["type"] == "ladder"]
    sizes = [len(message["rows"]) for message in ladders]
    assert sizes == sorted(sizes) and len(set(sizes)) >= 3, sizes  # it grows, segment by segment
    last = ladders[-1]
    assert [row["label"] for row in last["rows"] if row["kind"] == "arrow"] == [
        "[S] seq 0 win 64240 len 0", "[S.] seq 0 ack 1 win 65535 len 0", "[.] seq 1 ack 1 win 64240 len 0"]
    assert last["states"] == {"local": "ESTABLISHED", "remote": "ESTABLISHED"}
    assert last["last"] == {"side": 0, "old": "SYN-RECEIVED", "new": "ESTABLISHED"}
    # ustack's states are exact, the kernel's inferred from the segments
    marks = [(row["side"], row["state"], row["inferred"]) for row in last["rows"] if row["kind"] == "state"]
    assert (0, "SYN-RECEIVED", False) in marks and (1, "SYN-SENT", True) in marks


def test_a_scheduled_feed_sends_one_ladder_per_round():
    feed = WebFeed()
    messages = collected(feed)
    rounds = []
    feed.schedule = rounds.append
    handshake(feed, core())
    assert len(rounds) == 1 and not [message for message in messages if message["type"] == "ladder"]
    rounds.pop()()
    assert [message["type"] for message in messages].count("ladder") == 1


def test_lost_packets_are_marked_and_strays_are_listed_apart():
    feed = WebFeed()
    messages = collected(feed)
    feed.record(0.5, packet("in", "A", 7, 7, port=41000), "in")  # no SYN seen: no ladder for it
    handshake(feed, core())
    feed.record(2.0, packet("out", "PA", 5001, 1001, b"hello"), "out", "dropped by --loss")
    lost = [message for message in messages if message["type"] == "packet" and message["lost"]]
    assert lost and lost[0]["lost"] == "dropped by --loss" and lost[0]["key"] == KEY
    assert [message["key"] for message in messages if message["type"] == "packet"][0] == "other"
    arrows = [row for row in feed.hello()["connections"][0]["rows"] if row["kind"] == "arrow"]
    assert arrows[-1]["type"] == "lost"
    assert len(feed.hello()["other"]) == 1


def test_a_new_syn_on_the_same_four_numbers_is_a_new_connection():
    feed = WebFeed()
    messages = collected(feed)
    first = core()
    handshake(feed, first)
    feed.state_changed(3.0, first, StateChanged(State.ESTABLISHED, State.CLOSED, "ABORT"))
    handshake(feed, core(), isn=90000)
    keys = [message["key"] for message in messages if message["type"] == "ladder"]
    assert keys[0] == KEY and keys[-1] == KEY + "#2"
    assert [connection["key"] for connection in feed.hello()["connections"]] == [KEY, KEY + "#2"]


def test_snapshots_become_the_ss_table_and_chart_samples():
    feed = WebFeed("ustack serve")
    messages = collected(feed)
    handshake(feed, core())
    snapshot = ConnectionSnapshot(state=State.ESTABLISHED, local=(address_value(USTACK), 80),
                               remote=(address_value(KERNEL), 40000), snd_una=1, snd_nxt=1, snd_wnd=64240,
                               rcv_nxt=1, rcv_wnd=65535, cwnd=14600, ssthresh=65535, srtt=0.0123, rttvar=0.004,
                               rto=1.0, retransmissions=0, bytes_sent=0, bytes_received=0, send_queue=3,
                               receive_queue=0, timers={}, error=None)
    listener = dataclasses.replace(snapshot, state=State.LISTEN, remote=(0, 0))
    feed.sample(1.5, [listener, snapshot])
    table = [message for message in messages if message["type"] == "table"][-1]
    assert [row["cells"][0] for row in table["rows"]] == ["LISTEN", "ESTAB"]  # ss's spelling
    assert table["rows"][1]["cells"][2:] == ["3", "10.77.0.2:80", "10.77.0.1:40000"]
    assert table["rows"][1]["key"] == KEY and table["rows"][0]["key"] is None
    assert table["samples"] == {KEY: [0.5, 14600, 12.3, 64240, 65535]}
    assert feed.hello()["connections"][0]["samples"] == [[0.5, 14600, 12.3, 64240, 65535]]


def test_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(feed_module, "MAX_CONNECTIONS", 4)
    feed = WebFeed()
    messages = collected(feed)
    handshake(feed, core())
    count = max(feed_module.MAX_LADDER_SEGMENTS, feed_module.MAX_PACKET_LINES) + 40
    for number in range(count):
        feed.record(2.0 + number, packet("in", "PA", 1001 + number, 5001, b"x"), "in")
    ladder = feed.hello()["connections"][0]
    assert ladder["truncated"] == count + 3 - feed_module.MAX_LADDER_SEGMENTS  # (+ the handshake's three)
    assert sum(row["kind"] == "arrow" for row in ladder["rows"]) == feed_module.MAX_LADDER_SEGMENTS
    assert len(ladder["lines"]) == feed_module.MAX_PACKET_LINES
    # Past the limit the ladder no longer changes: a message only now and then, for the count.
    ladders = [message for message in messages if message["type"] == "ladder"]
    past = [message for message in ladders if message["truncated"]]
    assert 1 <= len(past) <= ladder["truncated"] // feed_module.TRUNCATED_STEP + 1
    for port in range(41000, 41006):
        handshake(feed, core(port), port=port)
    assert len(feed.hello()["connections"]) == 4
    assert [message["key"] for message in messages if message["type"] == "forget"][0] == KEY


def test_the_feed_follows_the_one_wirewatch_pipeline_in_wire_order():
    """A plain WireWatch draws nothing itself; its follower gets each packet once the stack takes
    it in (or as lost), and the state changes in between."""
    watch = WireWatch()
    feed = WebFeed()
    watch.followers.append(feed)
    messages = collected(feed)
    syn = packet("in", "S", 1000)
    watch.wire_in(1.0, syn)
    assert not messages  # not taken in yet
    watch.observe(1.0, "<", syn)
    watch.observe(1.0, "event", SimpleNamespace(connection=core(),
                                               event=StateChanged(State.LISTEN, State.SYN_RECEIVED, "rcv SYN")))
    watch.wire_out(1.0, packet("out", "SA", 5000, 1001))
    types = [message["type"] for message in messages]
    assert types.count("packet") == 2 and "ladder" in types
    assert feed.hello()["connections"][0]["states"]["local"] == "SYN-RECEIVED"


def test_the_diagram_has_every_state_and_every_transition_of_the_core():
    svg = state_diagram_svg()
    for state in State:
        assert f'id="{state_id(state)}"' in svg
    for old, new in TRANSITIONS:
        assert f'id="{edge_id(old, new)}"' in svg
    assert svg.count('class="edge figure"') == len(FIGURE_5)
    assert svg.count('class="edge extra"') == len(set(NOT_IN_FIGURE) - set(FIGURE_5))


@pytest.mark.parametrize("text, expected", [("8077", ("127.0.0.1", 8077)), (":9000", ("127.0.0.1", 9000)),
                                            ("127.0.0.5:80", ("127.0.0.5", 80)), ("[::1]:8077", ("::1", 8077))])
def test_web_addresses(text, expected):
    assert parse_web_address(text) == expected


@pytest.mark.parametrize("text, words", [("0.0.0.0:8077", "not a loopback address"), ("10.1.2.3:80", "--web-remote"),
                                         ("127.0.0.1:0", "outside 1..65535"), ("here:80", "not an IP address"),
                                         ("localhost", "expected [ADDR:]PORT")])
def test_bad_web_addresses_are_one_line(text, words):
    with pytest.raises(WebAddressError, match=words.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")) as error:
        parse_web_address(text)
    assert "\n" not in str(error.value)
    assert parse_web_address("10.1.2.3:80", allow_remote=True) == ("10.1.2.3", 80)

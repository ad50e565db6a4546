"""The three renderings of a ladder: terminal text, SVG, Mermaid."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

from ustack.tcp.state import State
from ustack.trace.model import LEFT, LOST, RIGHT, Arrow, Endpoint, Ladder, StateMark
from ustack.trace.render_mermaid import render_mermaid
from ustack.trace.render_svg import render_svg
from ustack.trace.render_text import ARROW_WIDTH, TIME_WIDTH, WIDTH, render_text
from ustack.wire.tcp import ACK, FIN, PSH, SYN, TcpOptions  # noqa: F401

SVG = "{http://www.w3.org/2000/svg}"
LEFT_LIFELINE = TIME_WIDTH + 1 + 13 + 1  # column of the left '|'
RIGHT_LIFELINE = LEFT_LIFELINE + ARROW_WIDTH + 1


def exchange_with_loss(conversation):
    talk = conversation()
    talk.handshake()
    talk.send("A", "PA", b"a" * 100)
    talk.send("A", "PA", b"b" * 100, advance_peer=False)
    talk.send("A", "PA", b"c" * 100)  # arrives, after a hole
    talk.send("B", "A", gap=0.030)
    talk.send("B", "A", gap=0.001)
    talk.send("A", "PA", b"b" * 100, seq=1101, gap=0.200)
    talk.send("B", "A", gap=0.030)
    talk.send("A", "FA")
    talk.send("B", "FA")
    talk.send("A", "A")
    return talk.ladder()


def arrow_rows(text):
    """The rows that draw an arrow (they have a time and a shaft between the lifelines)."""
    return [
        line for line in text.splitlines()
        if line[:TIME_WIDTH].strip()
        and line[LEFT_LIFELINE : LEFT_LIFELINE + 1] == "|"
        and re.search(r"[-=~]{3}", line[LEFT_LIFELINE:RIGHT_LIFELINE])
    ]  # fmt: skip


def in_order(text, phrases):
    position = 0
    for phrase in phrases:
        found = text.find(phrase, position)
        assert found >= 0, f"{phrase!r} missing after position {position}"
        position = found + len(phrase)


def test_text_has_one_arrow_per_segment_in_order(conversation):
    ladder = exchange_with_loss(conversation)
    text = render_text(ladder)
    rows = arrow_rows(text)
    assert len(rows) == len(ladder.arrows) == 13
    in_order(text, ["[S] seq 1000 ", "[S.] seq 5000 ack 1001 ", "[.] seq 1001 ack 5001 ", "[P.] seq 1001:1101 ",
                    "[P.] seq 1101:1201 ", "[P.] seq 1201:1301 ", "[.] seq 5001 ack 1101 ", "[.] seq 5001 ack 1101 ",
                    "[P.] seq 1101:1201 ", "[.] seq 5001 ack 1301 ", "[F.] seq 1301 ", "[F.] seq 5001 ack 1302 ",
                    "[.] seq 1302 ack 5002 "])  # fmt: skip
    # Direction: left-to-right arrows end in '>' at the right lifeline, the others start with '<'.
    for row, arrow in zip(rows, ladder.arrows):
        if arrow.kind == LOST:
            # It stops in a cross half way: nothing drawn in the right half.
            cross = LEFT_LIFELINE + ARROW_WIDTH // 2
            assert row[cross] == "X" and not row[cross + 1 : RIGHT_LIFELINE].strip()
        elif arrow.from_side == LEFT:
            assert row[RIGHT_LIFELINE - 1 : RIGHT_LIFELINE + 1] == ">|", row
        else:
            assert row[LEFT_LIFELINE : LEFT_LIFELINE + 2] == "|<", row
    assert [arrow.kind for arrow in ladder.arrows].count(LOST) == 1
    assert "(probably lost)" in text
    retransmission = rows[8]
    assert "==" in retransmission and "[P.] seq 1101:1201" in retransmission
    assert "(retransmission 1, +0.241 s)" in text
    assert "---X  lost" in text and "===>  retransmission" in text


def test_text_states_in_their_columns(conversation):
    text = render_text(exchange_with_loss(conversation))
    lines = text.splitlines()
    left = [line[TIME_WIDTH + 1 : LEFT_LIFELINE].strip() for line in lines if line[TIME_WIDTH + 1 : LEFT_LIFELINE].strip()]
    right = [line[RIGHT_LIFELINE + 1 :].strip() for line in lines if len(line) > RIGHT_LIFELINE + 1 and "|" in line]
    left = [word for word in left if word.endswith("*")]
    assert left == ["CLOSED*", "SYN-SENT*", "ESTABLISHED*", "FIN-WAIT-1*", "TIME-WAIT*"]  # FIN,ACK at once
    assert [word for word in right if word] == [
        "LISTEN*", "SYN-RECEIVED*", "ESTABLISHED*", "CLOSE-WAIT*", "LAST-ACK*", "CLOSED*",
    ]  # fmt: skip
    assert "states marked * are inferred" in text


def test_text_fits_in_100_columns_even_with_long_labels():
    ladder = Ladder(
        Endpoint("255.255.255.255", 65535, "a rather long label for the client"),
        Endpoint("255.255.255.254", 65534, "and for the server"),
        [
            Arrow(0.0, LEFT, SYN | ACK | FIN | PSH, 4294967000, 4294967295, 65535, 65000,
                  TcpOptions(mss=65535, window_scale=14, sack_permitted=True, timestamps=(4294967295, 4294967295),
                             sack_blocks=((4294967000, 4294967100), (1, 2), (3, 4))),
                  "retransmission", "retransmission 12, +120.000 s, zero-window probe, and more words"),
            Arrow(999.5, RIGHT, ACK, 1, 2, 3, 4, kind=LOST, note="dropped by FaultInjector"),
            StateMark(999.5, LEFT, State.SYN_RECEIVED, True, "x"),
            Arrow(12345.678901, LEFT, ACK, 1, 2, 3, 0),
        ],
    )  # fmt: skip
    text = render_text(ladder)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    in_order(text, ["[FSP.] seq 4294967000:64704 ack 4294967295 win 65535", "len 65000", "sack 3", "more words"])
    assert "999.500000" in text
    late = next(line for line in text.splitlines() if line.startswith("12345.6789 "))
    assert late[LEFT_LIFELINE] == "|" and late[RIGHT_LIFELINE - 1 : RIGHT_LIFELINE + 1] == ">|"  # columns kept


def test_relative_numbers_like_tcpdump(conversation):
    text = render_text(exchange_with_loss(conversation), relative=True)
    in_order(text, ["[S] seq 0 win", "[S.] seq 0 ack 1 win", "[.] seq 1 ack 1 win", "[P.] seq 1:101 ack 1 win",
                    "[P.] seq 101:201 ack 1", "[.] seq 1 ack 301 win", "[F.] seq 301 ack 1", "[F.] seq 1 ack 302",
                    "[.] seq 302 ack 2 "])  # fmt: skip
    assert "seq 1000" not in text
    assert "relative to each side's initial sequence number" in text


def test_svg_is_well_formed_and_labelled(conversation):
    ladder = exchange_with_loss(conversation)
    root = ElementTree.fromstring(render_svg(ladder).encode())
    assert root.tag == f"{SVG}svg"
    texts = ["".join(element.itertext()) for element in root.iter(f"{SVG}text")]
    for words in ("[S] seq 1000 win 64240 len 0", "[P.] seq 1101:1201 ack 5001 win 64240 len 100",
                  "10.0.0.1:40000", "10.0.0.2:80", "TIME-WAIT", "LAST-ACK"):  # fmt: skip
        assert any(words in text for text in texts), words
    assert any("probably lost" in text for text in texts)
    assert any("<mss 1460,sackOK,wscale 7>" in text for text in texts)  # escaped, then read back
    # A lost segment ends in a cross: two short red strokes, and no arrowhead for it.
    red = [line for line in root.iter(f"{SVG}line") if line.get("stroke") == "#b00020"]
    assert len(red) >= 3
    heads = list(root.iter(f"{SVG}polygon"))
    assert len(heads) == len(ladder.arrows) - 1


def test_svg_escapes_everything():
    ladder = Ladder(
        Endpoint("10.0.0.1", 1, 'a <b> & "c"'),
        Endpoint("10.0.0.2", 2, "]]> <!--"),
        [Arrow(0.0, LEFT, SYN, 1, 0, 100, 0, note="<&>"), StateMark(0.0, RIGHT, State.LISTEN, True, "<cause & co>")],
    )
    root = ElementTree.fromstring(render_svg(ladder).encode())
    texts = ["".join(element.itertext()) for element in root.iter(f"{SVG}text")]
    assert 'a <b> & "c"' in texts and "]]> <!--" in texts and "(<&>)" in texts


def test_mermaid_has_one_message_per_segment(conversation):
    ladder = exchange_with_loss(conversation)
    text = render_mermaid(ladder)
    lines = text.splitlines()
    assert lines[0] == "sequenceDiagram"
    assert "    participant L as 10.0.0.1:40000 (client)" in lines
    messages = [line for line in lines if re.match(r"    [LR](->>|-->>|-x)[LR]: ", line)]
    assert len(messages) == len(ladder.arrows)
    assert messages[0] == "    L->>R: [S] seq 1000 win 64240 len 0 (mss 1460,sackOK,wscale 7)"
    assert messages[4].startswith("    L-xR: [P.] seq 1101:1201")
    assert messages[8].startswith("    L-->>R: [P.] seq 1101:1201") and "retransmission 1" in messages[8]
    notes = [line for line in lines if line.startswith("    Note over ")]
    assert len(notes) == len(ladder.marks)
    assert "    Note over R: LAST-ACK*" in notes
    assert not any(";" in line or "#" in line for line in messages + notes)


def test_marks_hold_the_core_state_and_every_renderer_draws_its_rfc_spelling():
    ladder = Ladder(Endpoint("1.2.3.4", 5), Endpoint("6.7.8.9", 10),
                    [StateMark(0.0, LEFT, State.SYN_SENT), StateMark(0.0, RIGHT, State.TIME_WAIT, True)])
    assert ladder.states_of(LEFT) == ["SYN-SENT"] and ladder.states_of(RIGHT) == ["TIME-WAIT"]
    for text in (render_text(ladder), render_svg(ladder), render_mermaid(ladder)):  # (SVG dashes inferred boxes)
        assert "SYN-SENT" in text and "TIME-WAIT" in text and "State." not in text and "SYN_SENT" not in text
    assert render_text(Ladder(Endpoint("1.2.3.4", 5), Endpoint("6.7.8.9", 10), [])).startswith("1.2.3.4:5 <-> 6.7.8.9:10")


def test_colour_changes_nothing_but_escapes(conversation):
    ladder = exchange_with_loss(conversation)
    plain = render_text(ladder)
    coloured = render_text(ladder, colour=True)
    assert "\x1b[31m" in coloured and "\x1b[33m" in coloured and "\x1b[32mTIME-WAIT*\x1b[0m" in coloured
    assert re.sub(r"\x1b\[[0-9]*m", "", coloured) == plain

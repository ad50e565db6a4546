"""The labs about opening connections: handshake, syn-received, syn-flood (against the real kernel)."""

from __future__ import annotations

from ustack.tcp.seq import seq_add

from lab_helpers import in_order, ratio


def test_handshake_shows_both_sides_states_and_the_arithmetic(run_lab):
    result = run_lab("handshake")
    scene = result.scene(0)
    assert in_order(["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"],
                    scene.ustack_states), scene.ustack_states
    assert in_order(["SYN-SENT", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK"], scene.kernel_states), scene.kernel_states
    assert in_order(["ESTAB", "CLOSE-WAIT"], scene.kernel_ss_states)
    assert "TIME-WAIT" in scene.ustack_ss_states

    syn, syn_ack, ack = scene.segments[:3]
    assert (syn.sender, syn.flags) == ("kernel", "S")
    assert (syn_ack.sender, syn_ack.flags) == ("ustack", "S.")
    assert (ack.sender, ack.flags) == ("kernel", ".")
    assert syn_ack.ack == seq_add(syn.seq, 1)  # a SYN takes one sequence number
    assert ack.ack == seq_add(syn_ack.seq, 1)
    fins = [s for s in scene.segments if "F" in s.flags]
    assert [f.sender for f in fins] == ["ustack", "kernel"]
    for fin in fins:  # each FIN is answered by ack = seq + 1
        answer = next(s for s in scene.segments if s.sender != fin.sender and s.time >= fin.time and s.ack == seq_add(fin.seq, 1))
        assert answer.flags == "."
    assert "+ 1 (SYN)" in result.text and "+ 1 (FIN)" in result.text and "+ 5 (data)" in result.text
    assert "RFC 9293 3.5" in result.text and "RFC 9293 3.6" in result.text


def test_syn_received_kernel_server_retransmits_synack_with_backoff(run_lab):
    scene = run_lab("syn-received").scene(0)
    lost = [s for s in scene.segments if s.lost]
    assert [(s.sender, s.flags) for s in lost] == [("ustack", "."), ("ustack", ".")]
    synacks = scene.segments_from("kernel", "S.")
    assert len(synacks) == 3 and len({s.seq for s in synacks}) == 1
    first_gap, second_gap = scene.facts["synack_gaps"]
    assert 0.8 < first_gap < 1.6  # Linux's initial RTO is 1 s
    assert 1.6 < ratio(second_gap, first_gap) < 2.5  # doubled
    assert in_order(["SYN-RECV", "ESTAB"], scene.kernel_ss_states)
    assert in_order(["SYN-SENT", "ESTABLISHED"], scene.ustack_states)
    assert "SYN-RECEIVED" in scene.kernel_states  # inferred


def test_syn_received_ustack_server_seen_in_ustack_ss(run_lab):
    scene = run_lab("syn-received").scene(1)
    assert in_order(["SYN-RECV", "ESTAB"], scene.ustack_ss_states)
    assert "ESTAB" in scene.kernel_ss_states  # the kernel was already ESTABLISHED
    assert in_order(["SYN-RECEIVED", "ESTABLISHED"], scene.ustack_states)
    assert [(s.sender, s.flags) for s in scene.segments if s.lost] == [("kernel", "."), ("kernel", ".")]
    synacks = scene.segments_from("ustack", "S.")
    assert len(synacks) == 3
    first_gap, second_gap = scene.facts["synack_gaps"]
    assert 0.45 < first_gap < 0.9  # ustack's initial_rto of 0.5 s in this lab
    assert 1.6 < ratio(second_gap, first_gap) < 2.5


def test_syn_flood_fills_ustack_syn_queue_and_the_client_waits(run_lab):
    scene = run_lab("syn-flood").scene(0)
    assert scene.ustack_ss_states.count("SYN-RECV") == 16  # the queue limit, not the 64 SYNs sent
    assert scene.facts["syn_queue_peak"] == 16
    assert scene.facts["flood_drops"] == 64 - 16
    assert scene.facts["syn_queue_full"] > scene.facts["flood_drops"]  # the real client's SYN too
    assert scene.facts["client_syns"] >= 2  # so it had to retransmit
    assert "SYN-SENT" in scene.kernel_ss_states
    assert in_order(["SYN-RECEIVED", "ESTABLISHED"], scene.ustack_states)
    # The ladder is the real client's conversation only: no spoofed address on it.
    assert "10.77.0.1" in scene.ladder_text and "10.77.0.100" not in scene.ladder_text


def test_syn_flood_ustack_syn_cookies_serve_the_real_client_at_once(run_lab):
    result = run_lab("syn-flood")
    scene = result.scene(1)
    # The queue is just as full as without cookies: SYN-RECV piles up to its limit...
    assert scene.ustack_ss_states.count("SYN-RECV") == 16 and scene.facts["syn_queue_peak"] == 16
    assert scene.facts["syn_queue_overflows"] == scene.facts["cookies_sent"] == 64 - 16 + 1  # + the real client
    assert scene.facts["syn_queue_full_drops"] == 0
    # ...but the real client's one SYN is answered with a cookie, and its ACK makes the connection.
    assert scene.facts["client_syns"] == 1 and scene.facts["cookies_validated"] == 1
    assert [(s.sender, s.flags) for s in scene.segments[:3]] == [("kernel", "S"), ("ustack", "S."), ("kernel", ".")]
    assert not any(s.retransmission for s in scene.segments)
    assert scene.segments[1].seq == scene.facts["cookie"]
    assert in_order(["LISTEN", "SYN-RECEIVED", "ESTABLISHED"], scene.ustack_states)
    assert "ESTAB" in scene.kernel_ss_states
    # The cookie decoded: Linux's client announces MSS 1460 over the TUN's MTU 1500, SACK and a
    # window scale; the rebuilt connection has all of them.
    assert scene.facts["cookie_mss"] == 1460 and scene.facts["send_mss"] == 1460 - 12
    assert scene.facts["cookie_sack"] is True and scene.facts["sack_permitted"] is True
    assert scene.facts["cookie_window_scale"] == scene.facts["send_shift"] and 0 < scene.facts["send_shift"] <= 14
    assert scene.facts["timestamps_enabled"] is True
    assert "bits 31..27" in result.text and "bits 26..24" in result.text and "MAC" in result.text
    assert "SACK 1, window scale" in result.text


def test_syn_flood_kernel_syn_cookies_serve_the_real_client(run_lab):
    scene = run_lab("syn-flood").scene(2)
    assert scene.facts["kernel_syn_recv"] >= 8
    assert scene.kernel_ss_states.count("SYN-RECV") == scene.facts["kernel_syn_recv"]
    assert scene.facts["cookies_sent"] >= 1 and scene.facts["cookies_received"] >= 1
    assert "ESTAB" in scene.kernel_ss_states
    assert [s.flags for s in scene.segments[:3]] == ["S", "S.", "."]  # no retransmission needed

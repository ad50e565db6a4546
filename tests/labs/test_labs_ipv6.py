"""Labs over IPv6 (`ustack lab NAME --ipv6`): the same scenes between ustack at fd00:77::2 and the
kernel at fd00:77::1, against the real kernel, with the endpoints written [address]:port in the
ladders and in both sides' ss."""

from __future__ import annotations

import pytest

from ustack.cli import main
from ustack.tcp.seq import seq_add

from lab_helpers import in_order

USTACK, KERNEL = "fd00:77::2", "fd00:77::1"


def test_handshake_over_ipv6_shows_the_same_states_and_arithmetic(run_lab):
    result = run_lab("handshake", ipv6=True)
    scene = result.scene(0)
    assert in_order(["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"],
                    scene.ustack_states), scene.ustack_states
    assert in_order(["SYN-SENT", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK"], scene.kernel_states), scene.kernel_states
    assert in_order(["ESTAB", "CLOSE-WAIT"], scene.kernel_ss_states) and "TIME-WAIT" in scene.ustack_ss_states
    syn, syn_ack, ack = scene.segments[:3]
    assert [(s.sender, s.flags) for s in (syn, syn_ack, ack)] == [("kernel", "S"), ("ustack", "S."), ("kernel", ".")]
    assert syn_ack.ack == seq_add(syn.seq, 1) and ack.ack == seq_add(syn_ack.seq, 1)
    assert "+ 5 (data)" in result.text and "+ 1 (FIN)" in result.text
    # The ladder and both sides' ss write IPv6 endpoints in brackets.
    assert scene.ladder.left.name == f"[{USTACK}]:8000" and scene.ladder.right.name.startswith(f"[{KERNEL}]:")
    assert f"[{USTACK}]:8000 (ustack) <-> [{KERNEL}]:" in scene.ladder_text
    kernel_ss = next(s for s in scene.snapshots if s.side == "kernel")
    ustack_ss = next(s for s in scene.snapshots if s.side == "ustack")
    assert f"[{KERNEL}]:" in kernel_ss.output and f"[{USTACK}]:8000" in kernel_ss.output
    assert f"[{USTACK}]:8000" in ustack_ss.output and f"[{KERNEL}]:" in ustack_ss.output
    assert "10.77.0." not in result.text  # nothing of it went over IPv4
    # MSS over IPv6 on the 1500-byte TUN device: 1500 - 40 - 20 (RFC 8200 8.3).
    assert "mss 1440" in scene.ladder_text and "mss 1460" not in scene.ladder_text


def test_syn_flood_over_ipv6_spoofs_from_the_lab_prefix_and_cookies_still_serve(run_lab):
    result = run_lab("syn-flood", ipv6=True)
    flood, cookies, kernel = result.scene(0), result.scene(1), result.scene(2)
    assert flood.ustack_ss_states.count("SYN-RECV") == 16 and flood.facts["syn_queue_peak"] == 16
    assert flood.facts["flood_drops"] == 64 - 16 and flood.facts["client_syns"] >= 2
    assert f"[{USTACK}]:8000   [fd00:77::64]:40000" in flood.snapshots[0].output
    assert KERNEL in flood.ladder_text and "fd00:77::64" not in flood.ladder_text  # the real client's ladder
    assert cookies.facts["client_syns"] == 1 and cookies.facts["cookies_validated"] == 1
    # Linux's client announces MSS 1440 over IPv6; the cookie keeps the table entry below it.
    assert cookies.facts["cookie_mss"] <= 1440 and cookies.facts["send_mss"] == cookies.facts["cookie_mss"] - 12
    assert kernel.facts["kernel_syn_recv"] >= 8 and kernel.facts["cookies_received"] >= 1


def test_lab_command_takes_ipv6(require_lab_environment, tmp_path, capsys):
    pcap = tmp_path / "handshake6.pcap"
    assert main(["lab", "handshake", "--ipv6", "--quiet", "--pcap", str(pcap)]) == 0
    out = capsys.readouterr().out
    assert f"ustack: listen on [{USTACK}]:8000" in out
    # The kept capture draws the same conversation with `ustack ladder`.
    assert main(["ladder", str(pcap)]) == 0
    assert f"[{USTACK}]:8000 (server)" in capsys.readouterr().out


# The labs under ~6 s each over IPv6 on the 2-core CI machine (reset 1.2 s, urgent 0.3, tail-loss
# 0.8, simultaneous-close 2.5, retransmit 2.4, time-wait 2.7, half-close 2.3, zero-window 4.6,
# syn-received 5.4); handshake and syn-flood have tests of their own above, congestion (21 s) is
# run by hand. The IPv4 run of each is the one tests/labs already makes (run once per session).
SAME_OVER_IPV6 = ["reset", "urgent", "tail-loss", "simultaneous-close", "retransmit", "time-wait", "half-close",
                  "zero-window", "syn-received"]


@pytest.mark.parametrize("name", SAME_OVER_IPV6)
def test_each_lab_goes_through_the_same_states_over_ipv6(run_lab, name):
    """Scene by scene, ustack's states (exact) and the kernel's (inferred from its segments) are
    those of the IPv4 run, with the same facts measured; nothing goes over IPv4. (The segments
    themselves may differ: the IPv6 MSS is 20 bytes smaller, and ACKs interleave by timing.)"""
    four, six = run_lab(name), run_lab(name, ipv6=True)
    assert len(six.scenes) == len(four.scenes)
    for number, (v4, v6) in enumerate(zip(four.scenes, six.scenes)):
        assert v6.ustack_states == v4.ustack_states, (number, v6.ustack_states, v4.ustack_states)
        assert v6.kernel_states == v4.kernel_states, (number, v6.kernel_states, v4.kernel_states)
        assert sorted(v6.facts) == sorted(v4.facts), number
        assert (v4.ladder is None) == (v6.ladder is None) and (v6.ladder is None or f"[{USTACK}]:" in v6.ladder_text)
    assert "10.77.0." not in six.text

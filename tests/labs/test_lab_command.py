"""`ustack lab`: list, unknown names, --pcap and --svg; and every lab's report."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ustack import labs
from ustack.cli import main
from ustack.wire.codec import parse_packet
from ustack.wire.pcap import read_records
from ustack.wire.tcp import ACK, FIN, SYN

RUN_CLI = "import sys; from ustack.cli import main; sys.exit(main())"


def test_lab_list_names_every_lab_with_its_summary(capsys):
    assert main(["lab", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == labs.names()
    assert labs.names() == ["handshake", "syn-received", "time-wait", "simultaneous-close", "half-close",
                            "reset", "syn-flood", "retransmit", "zero-window", "urgent", "tail-loss",
                            "congestion"]
    assert all(len(line.split(None, 1)) == 2 for line in lines)


def test_unknown_lab_is_one_line_listing_the_names_and_exit_2():
    completed = subprocess.run([sys.executable, "-c", RUN_CLI, "lab", "no-such-lab"],
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.count("\n") == 1
    assert "no lab named 'no-such-lab'" in completed.stderr
    assert all(name in completed.stderr for name in labs.names())


def test_lab_keeps_the_pcap_and_draws_the_svg(require_lab_environment, tmp_path, capsys):
    pcap, svg = tmp_path / "handshake.pcap", tmp_path / "handshake.svg"
    assert main(["lab", "handshake", "--pcap", str(pcap), "--svg", str(svg), "--quiet"]) == 0
    out = capsys.readouterr().out
    _, records = read_records(pcap.read_bytes())
    segments = [packet.tcp for packet in map(parse_packet, (record.data for record in records)) if packet.tcp]
    # What the capture must hold whatever the timing: the handshake, data, and a FIN from each side.
    # (How many pure ACKs appear is timing: the kernel's delayed ACK may ride on its FIN, so a
    # count such as ">= 9" failed under load with 8 packets that were all correct.)
    flags = [segment.flags for segment in segments]
    assert flags[0] & (SYN | ACK) == SYN and flags[1] & (SYN | ACK) == SYN | ACK
    assert any(segment.payload for segment in segments)
    fin_senders = {(segment.src_port, segment.dst_port) for segment in segments if segment.flags & FIN}
    assert len(fin_senders) == 2
    assert "<svg" in svg.read_text()
    assert f"Capture kept in {pcap}" in out
    assert "have been removed" in out


@pytest.mark.parametrize("name", labs.names())
def test_every_lab_prints_ladder_ss_and_explanation(run_lab, name):
    result = run_lab(name)
    text = result.text
    assert text.startswith("=" * 100)
    assert f"ustack lab {name}:" in text
    assert "Ladder (ustack on the left" in text
    assert "What ss said at the key moments:" in text
    assert "--- What it shows ---" in text and "RFC" in result.explanation
    for scene in result.scenes:
        assert scene.ladder is not None and scene.ladder.arrows, scene.title
        assert scene.snapshots or scene.notes, scene.title

"""`ustack decode -`, `ustack ladder -`, `ladder --list`, `--conn` by number, 4-tuple or port (an
ambiguous port refused with the list), `--from/--to`, the bounded SVG and its layout (labels
clear of their arrows, a lost arrow's cross clear of its words), and `ustack --version`.
Captures are written with scapy (tests/trace/conftest.py's Conversation)."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import replace
from pathlib import Path

import pytest


def _load_conversation():
    """The ladder tests' scapy Conversation (tests/trace/conftest.py), loaded under its own name:
    "conftest" is taken by whichever test directory pytest read first."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "trace_conversation", Path(__file__).resolve().parents[1] / "trace" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Conversation


Conversation = _load_conversation()

from ustack import __version__
from ustack.cli import main
from ustack.commands.ladder import SVG_SEGMENT_LIMIT
from ustack.trace.model import LOST
from ustack.trace.render_svg import LABEL_GAP, LABEL_SIZE, NOTE_SIZE, _text_width, render_svg

RUN_CLI = "import sys; from ustack.cli import main; sys.exit(main())"


def run_ustack(*arguments: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN_CLI, *arguments], input=input, capture_output=True, timeout=60)


def exchange(client_port: int, server_port: int = 80, data_segments: int = 1, isn: int = 1000) -> Conversation:
    talk = Conversation(a=("10.0.0.1", client_port), b=("10.0.0.2", server_port), isn_a=isn, isn_b=isn + 50000)
    talk.handshake()
    for _ in range(data_segments):
        talk.send("A", "PA", b"x" * 100)
        talk.send("B", "A")
    return talk


@pytest.fixture
def three_connections(tmp_path) -> Path:
    """Two connections to port 80 and one to 8080, interleaved in time order of their start."""
    first, second, third = exchange(40000), exchange(40001, data_segments=2), exchange(40002, 8080)
    for offset, talk in enumerate((second, third), 1):
        talk.records = [_shifted(record, offset * 10.0) for record in talk.records]
    first.records.extend(second.records + third.records)
    return first.write(tmp_path / "three.pcap")


def _shifted(record: bytes, seconds: float) -> bytes:
    import struct

    whole, micro = struct.unpack_from("<II", record)
    total = whole + micro / 1e6 + seconds
    return struct.pack("<II", int(total), round((total % 1) * 1e6)) + record[8:]


def test_list_numbers_the_connections_with_packets_and_duration(three_connections, capsys):
    assert main(["ladder", str(three_connections), "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "#"
    rows = [line.split() for line in lines[1:]]
    assert [row[:4] for row in rows] == [
        ["#1", "10.0.0.1:40000", ">", "10.0.0.2:80"],
        ["#2", "10.0.0.1:40001", ">", "10.0.0.2:80"],
        ["#3", "10.0.0.1:40002", ">", "10.0.0.2:8080"],
    ]
    assert [int(row[4]) for row in rows] == [5, 7, 5]  # 3 handshake + 2 per data segment
    assert [row[5] for row in rows] == ["0.040000", "0.060000", "0.040000"]


@pytest.mark.parametrize("choice, client_port", [
    ("#2", 40001), ("#3", 40002), ("10.0.0.1:40001-10.0.0.2:80", 40001), ("10.0.0.2:80,10.0.0.1:40000", 40000),
    ("8080", 40002), (":8080", 40002), ("40001", 40001),
])
def test_conn_by_number_four_tuple_or_unique_port(three_connections, capsys, choice, client_port):
    assert main(["ladder", str(three_connections), "--conn", choice]) == 0
    assert capsys.readouterr().out.startswith(f"10.0.0.1:{client_port} (client) <-> ")


def test_without_conn_the_first_is_drawn_and_stderr_says_which(three_connections):
    result = run_ustack("ladder", str(three_connections))
    assert result.returncode == 0 and result.stdout.startswith(b"10.0.0.1:40000 (client) <-> 10.0.0.2:80")
    assert result.stderr.decode() == (f"ustack ladder: {three_connections} holds 3 connections; drawing #1, "
                                      f"10.0.0.1:40000 > 10.0.0.2:80 (see them with: ustack ladder "
                                      f"{three_connections} --list; choose with --conn '#N')\n")


def test_an_ambiguous_port_is_refused_with_the_list(three_connections):
    result = run_ustack("ladder", str(three_connections), "--conn", "80")
    assert result.returncode == 2 and result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert lines[0].startswith("ustack ladder: 2 connections have port 80 in ") and "--conn '#N'" in lines[0]
    assert [line.split()[0] for line in lines[2:]] == ["#1", "#2"] and "Traceback" not in result.stderr.decode()


@pytest.mark.parametrize("arguments, complaint", [
    (["--conn", "#9"], "there is no connection #9 in"),
    (["--conn", "#0"], "a connection number is #1, #2"),
    (["--conn", "10.0.0.9:1-10.0.0.2:80"], "no TCP connection with 10.0.0.9:1-10.0.0.2:80"),
    (["--from", "soon"], "is neither a segment number"),
    (["--to=-1s"], "is neither a segment number"),
    (["--from", "0"], "is neither a segment number"),
    (["--from", "50"], "--from/--to select no segment of the 5"),
    (["--from", "9s"], "--from/--to select no segment"),
])
def test_bad_choices_and_ranges_are_one_line_and_exit_2(three_connections, arguments, complaint):
    result = run_ustack("ladder", str(three_connections), *arguments)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and complaint in lines[0], result.stderr


def arrows_drawn(text: str) -> list[str]:
    return re.findall(r"\[[A-Z.]+\] seq \S+", text)


def test_from_to_by_segment_numbers_and_by_time(tmp_path, capsys):
    capture = exchange(40000, data_segments=10).write(tmp_path / "long.pcap")  # 23 segments, 10 ms apart
    assert main(["ladder", str(capture), "--from", "4", "--to", "7"]) == 0
    out = capsys.readouterr().out
    assert len(arrows_drawn(out)) == 4 and "drawn: segments 4-7 of 23" in out
    assert "ESTABLISHED" in out  # each side's state at the start of the part is drawn first
    assert main(["ladder", str(capture), "--from", "30ms", "--to", "0.06s"]) == 0
    out = capsys.readouterr().out
    assert "drawn: segments 4-7 of 23" in out  # the same four: 30, 40, 50 and 60 ms after the SYN
    assert main(["ladder", str(capture), "--from", "20"]) == 0
    assert "drawn: segments 20-23 of 23" in capsys.readouterr().out


def test_decode_and_ladder_read_standard_input(three_connections):
    blob = three_connections.read_bytes()
    from_file = run_ustack("decode", str(three_connections))
    from_pipe = run_ustack("decode", "-", input=blob)
    assert from_pipe.returncode == 0 and from_pipe.stdout == from_file.stdout and from_file.stdout.count(b"\n") == 17
    ladder = run_ustack("ladder", "-", "--conn", "#3", input=blob)
    assert ladder.returncode == 0 and b"from standard input" in ladder.stdout
    empty = run_ustack("decode", "-", input=b"")
    assert empty.returncode == 2 and empty.stderr.decode().strip() == "ustack decode: standard input is empty (not a pcap capture)"


def test_a_huge_connection_draws_a_bounded_svg_and_says_so(tmp_path):
    segments = SVG_SEGMENT_LIMIT + 200
    capture = exchange(40000, data_segments=segments // 2).write(tmp_path / "huge.pcap")
    svg = tmp_path / "huge.svg"
    result = run_ustack("ladder", str(capture), "--svg", str(svg))
    assert result.returncode == 0
    total = 3 + 2 * (segments // 2)
    assert f"draws segments 1-{SVG_SEGMENT_LIMIT} of {total}" in result.stderr.decode()
    assert result.stdout.decode().count("seq ") >= total  # the terminal still gets everything
    root = ElementTree.parse(svg).getroot()
    assert float(root.get("height")) < 60 * SVG_SEGMENT_LIMIT
    assert f"drawn: segments 1-{SVG_SEGMENT_LIMIT} of {total}" in svg.read_text()
    ranged = run_ustack("ladder", str(capture), "--svg", str(svg), "--from", "1100")
    assert ranged.returncode == 0 and ranged.stderr == b""
    assert f"drawn: segments 1100-{total} of {total}" in svg.read_text()


# --- the SVG's layout: measured on the SVG's own coordinates -------------------------------------
def _boxes_and_lines(svg_text: str):
    root = ElementTree.fromstring(svg_text)
    ns = "{http://www.w3.org/2000/svg}"
    texts, lines = [], []
    for element in root.iter(f"{ns}text"):
        size = float(element.get("font-size"))
        x, y, anchor = float(element.get("x")), float(element.get("y")), element.get("text-anchor")
        width = _text_width(element.text or "", int(size))
        low = {"middle": x - width / 2, "start": x, "end": x - width}[anchor]
        # Ascent and descent of DejaVu Sans Mono: about 0.76 and 0.24 em.
        texts.append((element.text, (low, y - 0.76 * size, low + width, y + 0.24 * size)))
    for element in root.iter(f"{ns}line"):
        lines.append(tuple(float(element.get(name)) for name in ("x1", "y1", "x2", "y2")))
    return texts, lines


def _line_inside(box, line, margin: float) -> bool:
    """Does the segment come within `margin` of the box? (sampled every pixel: exact enough)"""
    x1, y1, x2, y2 = line
    left, top, right, bottom = box
    steps = max(1, int(max(abs(x2 - x1), abs(y2 - y1))))
    for step in range(steps + 1):
        x = x1 + (x2 - x1) * step / steps
        y = y1 + (y2 - y1) * step / steps
        if left - margin <= x <= right + margin and top - margin <= y <= bottom + margin:
            return True
    return False


def test_labels_keep_clear_of_arrows_and_crosses_of_labels(tmp_path):
    talk = exchange(40000, data_segments=3)
    ladder = talk.ladder()
    # Two arrows lost, one each way, as the live ladder of `serve --loss` draws them.
    lost = {3, 6}
    numbered = [item for item in ladder.items if hasattr(item, "from_side")]
    ladder.items = [replace(item, kind=LOST, note="dropped by FaultInjector")
                    if hasattr(item, "from_side") and numbered.index(item) in lost else item for item in ladder.items]
    texts, lines = _boxes_and_lines(render_svg(ladder))
    segment_labels = [(text, box) for text, box in texts if text and ("seq" in text or text.startswith("(") or "<" in text)]
    assert len(segment_labels) >= len(numbered)
    drawn = [line for line in lines if abs(line[0] - line[2]) > 50]  # the arrows' shafts (not lifelines, crosses)
    crosses = [line for line in lines if 0 < abs(line[0] - line[2]) <= 20]
    assert len(crosses) == 2 * len(lost)
    for text, box in segment_labels:
        for line in drawn:
            assert not _line_inside(box, line, margin=LABEL_GAP - 1.5), (text, line)
        for cross in crosses:
            assert not _line_inside(box, cross, margin=8), (text, cross)
    assert LABEL_SIZE > NOTE_SIZE


def test_version():
    result = run_ustack("--version")
    assert (result.returncode, result.stdout.decode()) == (0, f"ustack {__version__}\n")

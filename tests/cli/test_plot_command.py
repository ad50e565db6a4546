"""`ustack plot FILE.pcap --svg F --png F`: the files are valid, the capture is read and the
connection chosen as `ustack ladder` does (--list, --conn, --from/--to, '-'), and every wrong
argument is one line and exit 2. Captures are written with tests/trace/conftest.py's Conversation."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from ustack.cli import main


def _load_conversation():
    """tests/trace/conftest.py's Conversation, under its own name ("conftest" is taken)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "plot_conversation", Path(__file__).resolve().parents[1] / "trace" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Conversation


Conversation = _load_conversation()


@pytest.fixture
def capture(tmp_path) -> Path:
    """Port 80: the server sends 5 segments, the 3rd lost before the capture and retransmitted;
    then a second connection, to port 8080, where the client uploads."""
    talk = Conversation()
    talk.handshake()
    for index in range(5):
        talk.send("B", "A", b"d" * 1000, lost=index == 2)
        talk.send("A", "A")
    talk.send("B", "A", b"d" * 1000, seq=5001 + 2000, gap=0.3)
    talk.send("A", "A")
    upload = Conversation(a=("10.0.0.1", 40001), b=("10.0.0.2", 8080), isn_a=7000, isn_b=9000)
    upload.time = talk.time + 1
    upload.handshake()
    upload.send("A", "PA", b"u" * 500)
    upload.send("B", "A")
    talk.records.extend(upload.records)
    return talk.write(tmp_path / "two.pcap")


def test_svg_and_png_files_and_a_summary(capture, tmp_path, capsys):
    svg, png = tmp_path / "a.svg", tmp_path / "a.png"
    assert main(["plot", str(capture), "--conn", "80", "--svg", str(svg), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert out == "10.0.0.2:80 > 10.0.0.1:40000: 6 segments (1 retransmitted, duplicate or lost), 7 ACKs, 0 SACK blocks\n"
    assert ElementTree.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_direction_conn_range_and_list(capture, tmp_path, capsys):
    svg = tmp_path / "b.svg"
    assert main(["plot", str(capture), "--conn", "#2", "--svg", str(svg)]) == 0
    assert capsys.readouterr().out.startswith("10.0.0.1:40001 > 10.0.0.2:8080: 2 segments")  # SYN + the upload
    assert main(["plot", str(capture), "--conn", "#2", "--direction", "server", "--svg", str(svg)]) == 0
    assert capsys.readouterr().out.startswith("10.0.0.2:8080 > 10.0.0.1:40001: 1 segments")  # its SYN-ACK
    assert main(["plot", str(capture), "--conn", "80", "--from", "4", "--to", "7", "--svg", str(svg)]) == 0
    assert capsys.readouterr().out.startswith("10.0.0.2:80 > 10.0.0.1:40000: 2 segments")
    assert main(["plot", str(capture), "--list"]) == 0
    out = capsys.readouterr().out
    assert "#1" in out and "#2" in out and "10.0.0.1:40001 > 10.0.0.2:8080" in out


def test_several_connections_and_no_conn_says_which_is_drawn(capture, tmp_path, capsys):
    assert main(["plot", str(capture), "--svg", str(tmp_path / "c.svg")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("ustack plot: ") and "holds 2 connections; drawing #1" in err


def test_capture_from_standard_input(capture, tmp_path):
    svg = tmp_path / "stdin.svg"
    result = subprocess.run([sys.executable, "-c", "import sys; from ustack.cli import main; sys.exit(main())",
                             "plot", "-", "--conn", "80", "--svg", str(svg)],
                            input=capture.read_bytes(), capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert ElementTree.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"


def one_line_error(capsys, argv, *words):
    with pytest.raises(SystemExit) as exited:
        code = main(argv)
        raise SystemExit(code)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ustack plot: "), err
    for word in words:
        assert word in err, err


def test_wrong_arguments_are_one_line_and_exit_2(capture, tmp_path, capsys):
    svg = str(tmp_path / "x.svg")
    one_line_error(capsys, ["plot", str(capture)], "--svg FILE")
    one_line_error(capsys, ["plot", str(tmp_path / "missing.pcap"), "--svg", svg], "cannot read")
    one_line_error(capsys, ["plot", str(capture), "--svg", str(tmp_path / "no" / "x.svg")], "no directory")
    one_line_error(capsys, ["plot", str(capture), "--png", str(tmp_path)], "it is a directory")
    one_line_error(capsys, ["plot", str(capture), "--direction", "up", "--svg", svg], "invalid choice")
    one_line_error(capsys, ["plot", str(capture), "--conn", "#9", "--svg", svg], "no connection #9")
    one_line_error(capsys, ["plot", str(capture), "--conn", "#0", "--svg", svg], "#1, #2")
    one_line_error(capsys, ["plot", str(capture), "--conn", "80", "--from", "50", "--svg", svg], "select no segment")
    one_line_error(capsys, ["plot", str(capture), "--from", "soon", "--svg", svg], "neither a segment number")
    not_pcap = tmp_path / "notes.txt"
    not_pcap.write_text("not a capture\n")
    one_line_error(capsys, ["plot", str(not_pcap), "--svg", svg], "not a pcap file")


def test_a_long_connection_is_drawn_without_loss_inference_and_says_so(capture, tmp_path, capsys, monkeypatch):
    import ustack.commands.plot as plot_command

    monkeypatch.setattr(plot_command, "LOSS_INFERENCE_LIMIT", 5)
    assert main(["plot", str(capture), "--conn", "80", "--svg", str(tmp_path / "long.svg")]) == 0
    captured = capsys.readouterr()
    assert "probable losses are not inferred past 5" in captured.err
    assert "(1 retransmitted, duplicate or lost)" in captured.out  # retransmissions are still marked
    # A part short enough gets its own inference.
    assert main(["plot", str(capture), "--conn", "80", "--from", "11", "--svg", str(tmp_path / "part.svg")]) == 0
    assert "not inferred" not in capsys.readouterr().err

"""`ustack conform PATH... [--json] [--junit FILE]`."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from ustack.cli import main

OURS = Path(__file__).with_name("ours")

FAILING = """\
--tolerance_usecs=10000
 0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0.00 bind(3, ..., ...) = 0
+0.10 <  . 17:20(3) ack 34 win 32767
+0.00 > R  35:35(0) win 0
"""


def scripts(tmp_path):
    """A directory with one failing, one unparsable and one skipped script."""
    (tmp_path / "group").mkdir()
    (tmp_path / "group" / "fails.pkt").write_text(FAILING)
    (tmp_path / "group" / "broken.pkt").write_text("0 close(3)\n")
    (tmp_path / "group" / "skipped.pkt").write_text("0 `sysctl -w net.inet.tcp.blackhole=2`\n")
    return tmp_path / "group"


def test_missing_path_is_one_line_and_exit_2(capsys):
    assert main(["conform", "/no/such/dir"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "ustack conform: no such file or directory: /no/such/dir\n"


def test_our_scripts_pass_with_a_summary(capsys):
    assert main(["conform", str(OURS)]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS ") == len(list(OURS.glob("*.pkt")))
    summary = out.split("\n\n")[-1]
    assert "directory" in summary and "total" in summary


def test_failures_errors_and_skips_are_reported_and_exit_1(tmp_path, capsys):
    group = scripts(tmp_path)
    assert main(["conform", str(group)]) == 1
    out = capsys.readouterr().out
    assert f"ERROR   {group}/broken.pkt:1  expected '= result' after close(...), found end of line" in out
    assert f"FAIL    {group}/fails.pkt:5  sequence number 34 where the script expects 35" in out
    assert "  expected: Flags [R], seq 35, win 0, length 0" in out
    assert "  actual:   Flags [R], seq 34, win 0, length 0" in out
    assert f"SKIPPED {group}/skipped.pkt:1  sysctl net.inet.tcp.blackhole=2" in out
    total = [line for line in out.splitlines() if line.startswith("total")][0].split()
    assert total[1:] == ["0", "1", "1", "1"]  # pass fail skipped error


def test_json_output(tmp_path, capsys):
    group = scripts(tmp_path)
    main(["conform", "--json", str(group)])
    document = json.loads(capsys.readouterr().out)
    by_name = {Path(record["path"]).name: record for record in document["results"]}
    assert by_name["fails.pkt"]["status"] == "fail"
    assert by_name["fails.pkt"]["field"] == "seq"
    assert by_name["fails.pkt"]["expected"] == "Flags [R], seq 35, win 0, length 0"
    assert by_name["broken.pkt"]["status"] == "error" and by_name["broken.pkt"]["line"] == 1
    assert by_name["skipped.pkt"]["status"] == "skipped"
    assert document["summary"]["total"] == {"pass": 0, "fail": 1, "skipped": 1, "error": 1}


def test_junit_report(tmp_path, capsys):
    group = scripts(tmp_path)
    report = tmp_path / "report.xml"
    main(["conform", "--junit", str(report), str(group)])
    root = ElementTree.parse(report).getroot()
    (suite,) = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("3", "1", "1", "1")
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert cases["fails.pkt"].find("failure").get("message") == "sequence number 34 where the script expects 35"
    assert cases["skipped.pkt"].find("skipped") is not None
    assert cases["broken.pkt"].find("error") is not None


def test_unwritable_junit_file_is_one_line(tmp_path, capsys):
    assert main(["conform", "--junit", str(tmp_path / "no" / "such" / "report.xml"), str(OURS)]) == 2
    assert capsys.readouterr().err.startswith("ustack conform: cannot write ")

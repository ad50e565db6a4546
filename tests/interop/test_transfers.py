"""Bulk data, loss and many connections between the kernel's curl/nc/ab and `ustack serve`.

test_serve.py covers the first contact (pages, 20 MB each way, a small echo, ping, 10% loss on a
download); here: a 5 MB echo round trip, both directions under loss with the retransmissions of
each side seen in the pcap, and many connections at once.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess

import pytest
from interop_helpers import STACK_ADDRESS, retransmissions, tcp_segments

MEGABYTE = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    return root


def test_nc_echo_round_trip_of_5_megabytes_is_identical(ustack_serve, tmp_path):
    sent = tmp_path / "sent.bin"
    sent.write_bytes(os.urandom(5 * MEGABYTE))
    echoed = tmp_path / "echoed.bin"
    serve = ustack_serve("--echo")
    # nc writes stdin to the connection while it copies the echo to stdout; -N sends our FIN at
    # the end of stdin, after which the echo service closes its side once everything went back.
    with sent.open("rb") as stdin, echoed.open("wb") as stdout:
        result = serve.inside("nc", "-N", "-w", "20", STACK_ADDRESS, "7", stdin=stdin, stdout=stdout,
                              stderr=subprocess.PIPE, text=False)
    assert result.returncode == 0, result.stderr
    assert echoed.stat().st_size == sent.stat().st_size
    assert sha256(echoed.read_bytes()) == sha256(sent.read_bytes())


def test_five_percent_loss_both_ways_download_and_upload_intact_with_retransmissions_on_both_sides(
        ustack_serve, site, tmp_path):
    original = os.urandom(5 * MEGABYTE)
    (site / "five.bin").write_bytes(original)
    serve = ustack_serve("--http", str(site), "--allow-upload", "--loss", "0.05", "--seed", "11")
    downloaded = tmp_path / "downloaded.bin"
    result = serve.inside("curl", "-sS", "--fail", "--max-time", "90", "-o", str(downloaded),
                          f"http://{STACK_ADDRESS}/five.bin", timeout=100)
    assert result.returncode == 0, result.stderr
    assert sha256(downloaded.read_bytes()) == sha256(original)
    result = serve.inside("curl", "-sS", "--fail", "--max-time", "90", "-T", str(downloaded), "-w", "%{http_code}",
                          f"http://{STACK_ADDRESS}/uploaded.bin", timeout=100)
    assert result.returncode == 0 and result.stdout.endswith("201"), result.stdout + result.stderr
    assert sha256((site / "uploaded.bin").read_bytes()) == sha256(original)

    # The pcap sits next to the TUN device, inside the loss: a segment ustack sent and the loss
    # dropped is not in it, a segment the kernel sent and the loss dropped is. So a data segment
    # starting below what its sender had already put on the wire is that sender's retransmission.
    serve.stop()  # the pcap is complete once serve has closed it
    resent = retransmissions(tcp_segments(serve.pcap_path))
    by_ustack = sum(count for (source, _), count in resent.items() if source[0] == STACK_ADDRESS)
    by_kernel = sum(count for (source, _), count in resent.items() if source[0] != STACK_ADDRESS)
    assert by_ustack > 0 and by_kernel > 0, f"retransmissions seen in the pcap: {resent}"


def test_200_curl_requests_50_at_a_time_all_succeed(ustack_serve, site):
    # 200 files of different sizes, so a response given to the wrong request would show.
    sizes = {f"file{i}.bin": 1000 + 997 * i for i in range(200)}
    for name, size in sizes.items():
        (site / name).write_bytes(os.urandom(size))
    serve = ustack_serve("--http", str(site), "--msl", "1")
    urls = "".join(f"http://{STACK_ADDRESS}/{name}\n" for name in sizes)
    # One curl process per request (a new connection each), 50 running at any time.
    result = serve.inside("xargs", "-P", "50", "-n", "1", "curl", "-sS", "--max-time", "30", "-o", "/dev/null",
                          "-w", "%{url_effective} %{http_code} %{size_download}\\n", input=urls, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    answers = {}
    for line in result.stdout.splitlines():
        url, status, size = line.split()
        answers[url.rsplit("/", 1)[1]] = (int(status), int(size))
    assert answers == {name: (200, size) for name, size in sizes.items()}


def test_apache_bench_2000_requests_20_concurrent_none_fails(ustack_serve, site):
    if shutil.which("ab") is None:
        pytest.fail("`ab` is not installed: apt-get install apache2-utils (./scripts/test installs it)",
                    pytrace=False)
    page = "<p>ab was here</p>\n" * 50
    (site / "page.html").write_text(page)
    serve = ustack_serve("--http", str(site), "--msl", "1")
    # No -k: a new connection for every request, which ustack closes first (HTTP/1.0).
    result = serve.inside("ab", "-n", "2000", "-c", "20", "-s", "20", f"http://{STACK_ADDRESS}/page.html",
                          timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = result.stdout
    assert re.search(r"^Complete requests:\s+2000$", report, re.M), report
    assert re.search(r"^Failed requests:\s+0$", report, re.M), report
    assert "Non-2xx responses" not in report, report
    assert re.search(rf"^Document Length:\s+{len(page)} bytes$", report, re.M), report

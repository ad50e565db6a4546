"""`ustack serve --plot DIR` against the kernel: a curl download through a seeded --loss 0.05
leaves, once the connection has ended, an SVG in DIR whose graph shows the retransmissions that
the losses caused, with the panel of cwnd/ssthresh/RTT/RTO sampled from the connection.

The serve runs in a fresh namespace it creates and removes (ustack_serve fixture); it is
stopped by its PID."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

from interop_helpers import IO_TIMEOUT, STACK_ADDRESS

from ustack.netns import namespace_exists

PAGE_BYTES = 1_000_000  # 100 segments or more (up to 64 kB each with offload): at 5 % loss, losses are all but certain


def test_serve_plot_of_a_lossy_download_shows_retransmissions(ustack_serve, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "big.bin").write_bytes(bytes(range(256)) * (PAGE_BYTES // 256))
    plots = tmp_path / "plots"
    serve = ustack_serve("--http", str(site), "--plot", str(plots), "--msl", "1", "--loss", "0.05", "--seed", "7")
    page = serve.inside("curl", "-sS", "--fail", "--max-time", "60", "-o", "/dev/null", "-w", "%{size_download}",
                        "-H", "Connection: close", f"http://{STACK_ADDRESS}/big.bin", timeout=90)
    assert page.returncode == 0, page.stderr
    assert page.stdout == str(PAGE_BYTES // 256 * 256)
    # Written by itself once the connection is over (after TIME-WAIT: 2 MSL = 2 s).
    line = serve.wait_for_line("plot: ", timeout=IO_TIMEOUT + 10)
    match = re.fullmatch(r"plot: (\S+\.svg) \((\S+):80 > (\S+), (\d+) segments, (\d+) retransmitted, (\d+) lost, "
                         r"(\d+) samples\)", line)
    assert match, line
    path, sender, _, segments, resent, lost, samples = match.groups()
    assert sender == STACK_ADDRESS  # the side that sent the data: ustack
    assert int(segments) > PAGE_BYTES // 65536 and int(resent) >= 1 and int(lost) >= 1 and int(samples) > 10, line
    svg = ElementTree.parse(path).getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    text = open(path, encoding="utf-8").read()
    for words in ("retransmission", "lost", "cwnd", "smoothed RTT", "RTO"):
        assert words in text, words
    assert serve.stop() == 0
    assert not namespace_exists(serve.namespace)

"""The live page in a real browser: headless Chromium (Debian's `chromium` package, driven by
Playwright) loads `ustack serve --web`'s page, a curl inside the namespace fetches a file from
ustack, and the page shows the connection appear, reach TIME-WAIT and its ladder grow. A
screenshot is kept in test-artifacts/web-view.png, pass or fail.

Needs root, /dev/net/tun, namespaces and Chromium: a missing one FAILS (never skips), saying
what to install (./scripts/test installs chromium)."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))
from interop_helpers import STACK_ADDRESS, serve_starter  # noqa: E402

from ustack.netns import namespace_test_problems  # noqa: E402

pytestmark = pytest.mark.interop  # root, a TUN device and namespaces, like tests/interop

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PAGE_TIMEOUT = 20_000  # ms: the longest the page may take to show one thing
_names = iter(range(1_000_000))


@pytest.fixture
def browser_page():
    problems = []
    if not os.path.exists(CHROMIUM):
        problems.append(f"{CHROMIUM} is missing (apt-get install chromium; ./scripts/test does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problems.append("playwright is missing (pip install -e '.[test]')")
    if problems:
        pytest.fail("the browser test cannot run: " + "; ".join(problems), pytrace=False)
    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})  # a projector's shape
            yield page
        finally:
            browser.close()


@pytest.fixture
def ustack_serve(tmp_path):
    problems = namespace_test_problems(("ip", "curl"))
    if problems:
        pytest.fail("the browser test cannot run: " + "; ".join(problems), pytrace=False)
    run_directory = tmp_path / "run"
    run_directory.mkdir()
    environment = {**os.environ, "USTACK_RUN_DIR": str(run_directory)}
    yield from serve_starter(lambda: f"ust-w-{os.getpid()}-{next(_names)}", environment, tmp_path / "link.pcap")


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_page_shows_a_curl_live(ustack_serve, browser_page, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>served by ustack</h1>\n" * 40)
    port = free_loopback_port()
    # --msl 2: TIME-WAIT lasts 4 s, long enough to be sampled, short enough to see it end.
    serve = ustack_serve("--http", str(site), "--msl", "2", "--web", f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}/"
    assert any(line.startswith("web    : " + url) for line in serve.output), serve.output
    page = browser_page
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_function("document.getElementById('status').textContent === 'live'", timeout=PAGE_TIMEOUT)
    page.wait_for_selector("#diagram svg #state-TIME_WAIT", timeout=PAGE_TIMEOUT)
    try:
        # ustack closes first (Connection: close), so its side goes through TIME-WAIT.
        fetched = serve.inside("curl", "-sS", "--max-time", "20", "-H", "Connection: close",
                               f"http://{STACK_ADDRESS}/index.html")
        assert fetched.returncode == 0 and "served by ustack" in fetched.stdout, fetched.stderr
        # The connection appears in the table, in TIME-WAIT, with the diagram lit there.
        page.wait_for_selector('#connections tr[data-state="TIME-WAIT"]', timeout=PAGE_TIMEOUT)
        page.wait_for_selector("#state-TIME_WAIT.local", timeout=PAGE_TIMEOUT)
        key = page.get_attribute('#connections tr[data-state="TIME-WAIT"]', "data-key")
        assert key and key.startswith(f"{STACK_ADDRESS}:80>"), key
        # The ladder grew in several steps (one message per round of the runtime) to the whole
        # conversation: handshake, request, response, both FINs.
        sizes = page.evaluate(f"window.ustack.ladderSizes[{key!r}]")
        assert len(sizes) >= 3 and sizes == sorted(sizes), sizes
        labels = page.locator("#ladder .row[data-kind=arrow] text").all_text_contents()
        flags = " ".join(labels)
        for expected in ("[S]", "[S.]", "[P.]", "F"):
            assert expected in flags, labels
        marks = page.locator("#ladder .row[data-kind=state] text").all_text_contents()
        assert "TIME-WAIT" in marks and "ESTABLISHED" in marks, marks
        assert page.locator("#packets li").count() >= 6
        assert "Flags [S]" in page.locator("#packets li").first.text_content()
        # The last transition (here the kernel's LAST-ACK -> CLOSED) is named and its arrow lit.
        assert page.text_content("#transition").startswith("Last: ")
        assert page.locator("#diagram .edge.lit").count() == 1
        page.wait_for_function("document.querySelector('#chart-cwnd polyline') !== null", timeout=PAGE_TIMEOUT)
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-view.png"), full_page=True)
    # TIME-WAIT ends (2 MSL): the row leaves the table and ustack's side is CLOSED on the diagram.
    page.wait_for_selector('#connections tr[data-state="TIME-WAIT"]', state="detached", timeout=PAGE_TIMEOUT)
    page.wait_for_selector("#state-CLOSED.local", timeout=PAGE_TIMEOUT)
    assert not errors, errors
    # Usable offline: nothing was fetched from anywhere but ustack's own page.
    assert requested and all(address.startswith(url) for address in requested), requested
    assert serve.stop() == 0
    while (line := serve.lines.get(timeout=30)) is not None:  # the rest of its output, to its end
        serve.output.append(line)
    assert serve.output[-1] == "ustack: stopped", serve.output


def test_a_non_loopback_web_address_is_refused_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ustack", "serve", "--netns", "ust-w-never", "--echo",
                             "--web", "0.0.0.0:8077"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not a loopback address" in result.stderr, result.stderr
    assert "--web-remote" in result.stderr
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.find("ust-w-never") < 0


def test_a_lab_runs_live_and_the_page_starts_another(browser_page):
    """`ustack lab handshake --web`: the page shows the lab's connections, and its "start lab"
    button runs the lab again, live, in the same process; Ctrl-C ends it all, cleanly."""
    problems = namespace_test_problems(("ip", "ss", "curl", "nc", "nstat", "sysctl"))
    if problems:
        pytest.fail("the lab cannot run: " + "; ".join(problems), pytrace=False)
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}/"
    process = subprocess.Popen([sys.executable, "-m", "ustack", "lab", "handshake", "--quiet", "--web",
                                f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr] and None, daemon=True).start()
    threading.Thread(target=process.stdout.read, daemon=True).start()  # the reports: keep the pipe moving

    def wait_for_line(words: str) -> str:
        while True:
            line = lines.get(timeout=60)
            if words in line:
                return line

    try:
        assert wait_for_line("web    : ").startswith(f"web    : {url}")
        wait_for_line("lab handshake done")
        page = browser_page
        page.goto(url)
        page.wait_for_function("document.getElementById('status').textContent === 'live'", timeout=PAGE_TIMEOUT)
        # The lab that ran is on the page: its connection's ladder, with the handshake in it.
        page.wait_for_selector("#ladder .row[data-kind=arrow]", timeout=PAGE_TIMEOUT)
        first_keys = page.evaluate("Object.keys(window.ustack.ladderSizes)")
        assert first_keys and all(key.startswith("10.77.0.2:") for key in first_keys), first_keys
        assert page.text_content("#title") == "ustack lab handshake"
        # Start it again from the page: new connections appear and grow while it runs.
        page.click("button[data-lab=handshake]")
        page.wait_for_function(f"Object.keys(window.ustack.ladderSizes).length > {len(first_keys)}",
                               timeout=PAGE_TIMEOUT)
        wait_for_line("lab handshake done")
        new_keys = [key for key in page.evaluate("Object.keys(window.ustack.ladderSizes)") if key not in first_keys]
        sizes = page.evaluate(f"window.ustack.ladderSizes[{new_keys[0]!r}]")
        assert len(sizes) >= 2 and sizes == sorted(sizes), sizes
    finally:
        process.send_signal(signal.SIGINT)
        try:
            status = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait()
    assert status == 0
    leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"ust-lab-handshake-{process.pid}" not in leftover, leftover


def test_a_web_port_in_use_is_one_line_and_nothing_is_left_behind():
    problems = namespace_test_problems(("ip",))
    if problems:
        pytest.fail("this test cannot run: " + "; ".join(problems), pytrace=False)
    namespace = f"ust-w-{os.getpid()}-busy"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "ustack", "serve", "--netns", namespace, "--echo",
                                 "--web", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr, result.stderr
    assert namespace not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout

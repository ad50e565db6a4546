"""What `ustack serve --workers N` does that needs no kernel (ustack/workers.py): the shared SYN
cookie secret, the worker fields of the control answers as `ustack ss` and `ustack stats` show
them, and the parent's handling of its workers (real forked processes; serve_one stands in for a
worker's Stack, so no TUN device is involved)."""

from __future__ import annotations

import os
import signal

from ustack.commands.ss import describe
from ustack.commands.stats import summed_counter_lines, workers_by_parent
from ustack.control import network_owner, worker_label
from ustack.tcp.syn_cookies import KEY_ROTATION_SLOTS, SLOT_SECONDS, SynCookies
from ustack.workers import run_workers

LOCAL, REMOTE, PORT, PEER_PORT, PEER_ISN = 0x0A4D0002, 0x0A4D0001, 80, 40000, 12345
SECRET = b"s" * 32


def make(jar, now):
    return jar.make(LOCAL, PORT, REMOTE, PEER_PORT, PEER_ISN, 1460, now)


def check(jar, cookie, now):
    return jar.check(LOCAL, PORT, REMOTE, PEER_PORT, PEER_ISN, cookie, now)


# ---------------------------------------------------------------- one cookie secret for all workers
def test_a_cookie_made_by_one_worker_validates_on_another_sharing_the_secret():
    # The checker never made a cookie itself: it must derive the key of that period on its own.
    maker, checker = SynCookies(secret=SECRET), SynCookies(secret=SECRET)
    now = 10 * KEY_ROTATION_SLOTS * SLOT_SECONDS - 1.0  # the last second of a key period
    cookie = make(maker, now)
    assert check(checker, cookie, now).failure == ""
    assert check(checker, cookie, now + SLOT_SECONDS).mss == 1460  # one slot later: the next period


def test_a_cookie_fails_under_another_secret_and_keys_still_rotate():
    cookie = make(SynCookies(secret=SECRET), 1000.0)
    assert check(SynCookies(secret=b"t" * 32), cookie, 1000.0).failure == "syncookie_bad_mac"
    assert check(SynCookies(), cookie, 1000.0).failure == "syncookie_bad_mac"  # a random secret
    jar = SynCookies(secret=SECRET)
    period = KEY_ROTATION_SLOTS * SLOT_SECONDS
    assert jar._derived_key(1) != jar._derived_key(2)  # rotation: each period its own key
    assert make(jar, 0.0) != make(jar, 10 * period)


# ---------------------------------------------------------------- control answers of workers
WORKER_ANSWER = {"pid": 501, "program": "ustack serve", "address": "10.77.0.2",
                 "worker": {"index": 2, "count": 3, "parent": 500}}


def test_worker_answers_name_the_worker_and_the_parent_owns_the_network():
    assert worker_label(WORKER_ANSWER) == " worker=2/3"
    assert network_owner(WORKER_ANSWER) == 500
    alone = {"pid": 42, "program": "ustack serve"}
    assert worker_label(alone) == "" and network_owner(alone) == 42


def test_ss_row_of_a_worker_says_which_and_finds_the_parents_namespace():
    connection = {"state": "ESTABLISHED", "local": {"address": "10.77.0.2", "port": 80},
                  "remote": {"address": "10.77.0.1", "port": 40000}}
    record = {"pid": 500, "namespace": "ust-lab", "tun": "ustun0"}
    row = describe(connection, WORKER_ANSWER, record)
    assert row["cells"][-1] == "ustack serve pid=501 worker=2/3 netns=ust-lab dev=ustun0"
    assert row["json"]["worker"] == {"index": 2, "count": 3, "parent": 500}


def test_stats_sums_the_workers_of_each_parent():
    def answer(pid, parent, packets, drops):
        return {"pid": pid, "worker": {"index": pid - parent, "count": 2, "parent": parent},
                "statistics": {"stack": {"counters": {"packets_in": packets}, "drops": drops}}}

    alone = {"pid": 9, "statistics": {"stack": {"counters": {"packets_in": 1000}}}}
    answers = [answer(501, 500, 7, {}), answer(502, 500, 5, {"tcp_no_connection": 1}), alone,
               answer(601, 600, 3, {})]
    groups = workers_by_parent(answers)
    assert sorted(groups) == [500, 600] and [a["pid"] for a in groups[500]] == [501, 502]
    assert summed_counter_lines(groups[500]) == [("stack.packets_in", 12), ("stack.drops.tcp_no_connection", 1)]


# ---------------------------------------------------------------- the parent and its workers
def test_a_worker_ending_on_its_own_stops_the_other(tmp_path):
    announced = []

    def serve_one(place):
        place.ready()
        if place.index == 1:
            signal.pause()  # serves until the parent's SIGTERM ends it
        return 3  # worker 2 ends at once, unasked

    status = run_workers([None, None], serve_one, announced.append)
    assert status == 1
    assert len(announced) == 1 and len(announced[0]) == 2  # announced once, after both were ready
    for pid in announced[0]:  # both reaped by the parent: no such process any more
        assert not os.path.exists(f"/proc/{pid}")


def test_a_worker_failing_before_ready_means_no_announcement():
    announced = []

    def serve_one(place):
        if place.index == 2:
            raise RuntimeError("cannot listen")  # (printed as one line by the worker)
        place.ready()
        signal.pause()
        return 0

    assert run_workers([None, None], serve_one, announced.append) == 1
    assert announced == []


def test_workers_share_one_secret_and_know_their_place(tmp_path):
    results = tmp_path / "places"
    results.mkdir()

    def serve_one(place):
        (results / str(place.index)).write_text(f"{place.count} {place.parent} {place.secret.hex()} {place.link}")
        place.ready()
        return 0  # ends at once: the parent then stops (status 1: a worker ended on its own)

    run_workers(["queue-a", "queue-b"], serve_one, lambda pids: None)
    one, two = (results / "1").read_text().split(), (results / "2").read_text().split()
    assert one[:3] == two[:3] and one[:2] == ["2", str(os.getpid())] and len(bytes.fromhex(one[2])) == 32
    assert (one[3], two[3]) == ("queue-a", "queue-b")

#!/usr/bin/env python3
"""Issue 9's blind-injection goal at full scale: an off-path attacker who knows the 4-tuple but
not the sequence numbers sends COUNT forged RST, SYN, FIN, data and timestamp-poisoning segments
of each kind at an ESTABLISHED connection carrying genuine data, and at connections in
TIME-WAIT. Two ustack Stacks in one process, on virtual time (no network, no namespace): the
attacker and the outcome counts are in tests/stack/blind_attack.py, which the suite runs at
17,000 per kind (tests/stack/test_blind_attack.py).

    .venv/bin/python scripts/attack_blind.py [--count 100000] [--seed 20261206] [--kind rst ...]

Goal (issue 9): 0 connections killed, TIME-WAIT never held past 2*MSL, the answers to
forgeries within the rate limits (TcpConfig.unacceptable_ack_interval per connection,
unacceptable_ack_limit per second and stack, challenge_ack_limit for RFC 5961 challenge ACKs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "stack"))

from blind_attack import CONFIG, FORGERY_INTERVAL, KINDS, attack_established, attack_time_wait  # noqa: E402

COLUMNS = (
    ("killed", "connections_killed"),
    ("data bad", "genuine_data_corrupted_or_lost"),
    ("TW past 2MSL", "time_wait_held_past_2msl"),
    ("TW timer moved", "time_wait_timer_moved"),
    ("TW ended early", "time_wait_ended_early"),
    ("answers", "answers"),
    ("most/s", "most_answers_in_one_second"),
    ("rate-limited", "ack_for_unacceptable_rate_limited"),
    ("challenge", "challenge_acks"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="forged segments of each kind (default 100000)")
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--kind", action="append", choices=KINDS, help="only this kind (repeatable)")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")
    print(
        f"seed {args.seed}, {args.count} forgeries per kind and target; ESTABLISHED: {1 / FORGERY_INTERVAL:.0f} per "
        f"virtual second, TIME-WAIT: {0.1 / FORGERY_INTERVAL:.0f} per second, 2*MSL = {2 * CONFIG.msl:g} s"
    )
    print(
        f"limits: one ACK per {CONFIG.unacceptable_ack_interval} s per connection for non-data forgeries, "
        f"{CONFIG.unacceptable_ack_limit}/s per stack in all, challenge ACKs {CONFIG.challenge_ack_limit}/s per connection"
    )
    print(f"{'target':12} {'kind':10} " + " ".join(f"{title:>14}" for title, _ in COLUMNS) + "   seconds")
    failures = 0
    for kind in args.kind or KINDS:
        for target, attack in (("ESTABLISHED", attack_established), ("TIME-WAIT", attack_time_wait)):
            started = time.perf_counter()
            outcome = attack(kind, args.count, args.seed)
            elapsed = time.perf_counter() - started
            print(f"{target:12} {kind:10} " + " ".join(f"{outcome[key]:>14}" for _, key in COLUMNS) + f"   {elapsed:7.1f}")
            failures += outcome["connections_killed"] + outcome["genuine_data_corrupted_or_lost"]
            failures += outcome["time_wait_held_past_2msl"] + outcome["time_wait_timer_moved"]
    print("goal met: no connection killed, no TIME-WAIT held past 2*MSL" if not failures else f"GOAL MISSED: {failures} bad outcomes")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

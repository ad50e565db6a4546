"""The fault flags of `serve` and `connect`, turned into the two Faults of ustack's FaultInjector
(ustack/link/fault.py does the work; this file only reads the command line).

Each flag takes one value for both directions, or a value per direction:

    --loss 0.05                  5% of the packets dropped each way
    --loss in:0.05,out:0.01      5% of what arrives at ustack, 1% of what ustack sends
    --delay 50/10                every packet held 50 ms plus 0..10 ms of jitter (can reorder, as netem)
    --delay out:100              only what ustack sends is delayed
    --reorder 0.1  --duplicate 0.01  --corrupt 0.001
    --ce 0.02                    2% of the ECN-capable packets marked Congestion Experienced (RFC 3168)
    --rate 20mbit                a token bucket, like tc: bit kbit mbit gbit (bits per second),
                                 bps kbps mbps gbps (BYTES per second, as tc reads them), or a
                                 plain number with an optional k/M/G (bits per second)

"in" is what the kernel sends to ustack, "out" what ustack sends to the kernel. `--seed` seeds
every random decision, in both directions, so a run can be repeated.
"""

from __future__ import annotations

import argparse
import re

DIRECTIONS = ("in", "out")

# tc's units (tc(8), "RATES"): "bit" words are bits per second, "bps" words BYTES per second.
_RATE_UNITS = {
    "": 1, "bit": 1, "k": 1e3, "kbit": 1e3, "m": 1e6, "mbit": 1e6, "g": 1e9, "gbit": 1e9,
    "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9,
}
_RATE = re.compile(r"^([0-9]*\.?[0-9]+)\s*([a-z]*)$")
_MINIMUM_RATE_BITS = 8 * 68  # less than one minimal IPv4 packet a second could never start a connection


def per_direction(parse_one):
    """An argparse type for VALUE or in:VALUE,out:VALUE: returns {"in": v, "out": v}."""

    def parse(text: str) -> dict:
        text = text.strip()
        if ":" not in text:
            value = parse_one(text)
            return {"in": value, "out": value}
        values = {}
        for part in text.split(","):
            direction, _, value_text = part.partition(":")
            direction = direction.strip().lower()
            if direction not in DIRECTIONS or not value_text:
                raise argparse.ArgumentTypeError(
                    f"{text!r}: give one value, or in:VALUE,out:VALUE ('in' reaches ustack, 'out' leaves it)")
            if direction in values:
                raise argparse.ArgumentTypeError(f"{text!r}: '{direction}' is given twice")
            values[direction] = parse_one(value_text.strip())
        return values

    return parse


def _probability(what: str, below_one: bool):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} {text!r} is not a number") from None
        if below_one and not 0.0 <= value < 1.0:  # 1.0 would drop everything: nothing could start
            raise argparse.ArgumentTypeError(f"{what} {text} is not in [0, 1)")
        if not below_one and not 0.0 <= value <= 1.0:
            raise argparse.ArgumentTypeError(f"{what} {text} is not in [0, 1]")
        return value

    return parse


def delay_value(text: str) -> tuple[float, float]:
    """MS[/JITTER] in milliseconds (an optional "ms" suffix), as (delay, jitter) in seconds."""
    delay_text, _, jitter_text = text.partition("/")
    delay = _milliseconds(delay_text, "delay", text)
    jitter = _milliseconds(jitter_text, "jitter", text) if jitter_text else 0.0
    return delay, jitter


def _milliseconds(text: str, what: str, whole: str) -> float:
    number = text.strip().lower().removesuffix("ms")
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} {whole!r} is not MS[/JITTER] in milliseconds (e.g. 50/10)") from None
    if not 0.0 <= value <= 60_000.0:
        raise argparse.ArgumentTypeError(f"{what} {text} ms is outside 0..60000")
    return value / 1000.0


def rate_value(text: str) -> float:
    """A rate like tc's (20mbit, 1M, 500kbps, 100000) in BYTES per second, for the token bucket."""
    match = _RATE.match(text.strip().lower())
    if not match or match.group(2) not in _RATE_UNITS:
        raise argparse.ArgumentTypeError(
            f"rate {text!r} is not a rate: a number with bit, kbit, mbit, gbit (or k, M, G) for bits per second, "
            f"or bps, kbps, mbps for bytes per second, e.g. 20mbit")
    bits = float(match.group(1)) * _RATE_UNITS[match.group(2)]
    if bits < _MINIMUM_RATE_BITS:
        raise argparse.ArgumentTypeError(f"rate {text} is below {_MINIMUM_RATE_BITS} bit/s (one small packet a second)")
    return bits / 8.0


loss_value = per_direction(_probability("loss", below_one=True))
FAULT_FLAGS = {  # flag -> (argparse type, metavar, help)
    "loss": (loss_value, "P", "drop this fraction of the packets (0 <= P < 1)"),
    "delay": (per_direction(delay_value), "MS[/JITTER]",
              "hold each packet MS milliseconds, plus up to JITTER more (packets may then overtake each other)"),
    "reorder": (per_direction(_probability("reorder", below_one=False)), "P",
                "hold back this fraction of the packets until the next one has passed"),
    "duplicate": (per_direction(_probability("duplicate", below_one=False)), "P", "send this fraction twice"),
    "corrupt": (per_direction(_probability("corrupt", below_one=True)), "P",
                "flip one bit after the IP header in this fraction (the checksum then rejects it)"),
    "rate": (per_direction(rate_value), "RATE", "limit the rate, like tc: 20mbit, 1M (bits/s), 500kbps (bytes/s)"),
    "ce": (per_direction(_probability("ce", below_one=False)), "P",
           "mark Congestion Experienced on this fraction of the ECN-capable packets (RFC 3168), as a router's AQM does"),
}


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "faults", "Each takes one value for both directions, or per direction: in:VALUE,out:VALUE "
                  "('in' is what reaches ustack, 'out' what it sends), e.g. --loss in:0.05,out:0.01.")
    for name, (kind, metavar, text) in FAULT_FLAGS.items():
        group.add_argument(f"--{name}", metavar=metavar, type=kind, default=None, help=text)
    group.add_argument("--seed", metavar="N", type=_seed, default=0,
                       help="seed of every random fault, both directions, so a run can be repeated (default 0)")


def _seed(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed {text!r} is not a whole number") from None


def faults_from_args(args: argparse.Namespace):
    """(inbound, outbound) Faults for the FaultInjector, or None when no fault flag is given."""
    from ..link.fault import Faults

    given = {name: getattr(args, name, None) for name in FAULT_FLAGS}
    if all(value is None for value in given.values()):
        return None
    result = []
    for direction in DIRECTIONS:
        options = {}
        if (loss := (given["loss"] or {}).get(direction)) is not None:
            options["drop"] = loss
        if (delay := (given["delay"] or {}).get(direction)) is not None:
            options["delay"], options["jitter"] = delay
        for name in ("reorder", "duplicate", "corrupt", "ce"):
            if (value := (given[name] or {}).get(direction)) is not None:
                options[name] = value
        if (rate := (given["rate"] or {}).get(direction)) is not None:
            options["rate_bytes_per_second"] = rate
        result.append(Faults(**options))
    return tuple(result)


def describe_faults(inbound, outbound) -> str:
    """One line for serve's banner: what is being done to the packets, per direction."""
    def one(faults) -> str:
        parts = []
        if faults.drop:
            parts.append(f"loss {faults.drop:g}")
        if faults.delay or faults.jitter:
            parts.append(f"delay {faults.delay * 1000:g}" + (f"/{faults.jitter * 1000:g}" if faults.jitter else "") + " ms")
        for name in ("reorder", "duplicate", "corrupt", "ce"):
            if getattr(faults, name):
                parts.append(f"{name} {getattr(faults, name):g}")
        if faults.rate_bytes_per_second:
            parts.append(f"rate {faults.rate_bytes_per_second * 8 / 1e6:g} Mbit/s")
        return ", ".join(parts) or "none"

    return f"in: {one(inbound)}; out: {one(outbound)}"

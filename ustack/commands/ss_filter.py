"""The filter language of Linux's `ss` (ss(8), "STATE-FILTER" and "EXPRESSION"), the part people
type, for `ustack ss`:

    ustack ss -tan state established '( dport = :80 or sport = :80 )'
    ustack ss -tn state time-wait dst 10.77.0.1 and sport ge :1024
    ustack ss -t exclude listening not dport = :7

- `state NAME` (several: any of them) and `exclude NAME`, with ss's names and groups: established,
  syn-sent, syn-recv, fin-wait-1, fin-wait-2, time-wait, closed, close-wait, last-ack, listening,
  closing; all, connected, synchronized, bucket, big. RFC 9293 names work too.
- `sport`/`dport` OP PORT and `src`/`dst` [OP] ADDR[/PREFIX][:PORT], OP one of = == != < > <= >=
  eq neq ne lt gt le ge (ports compare as numbers; addresses only with = == != and their words);
  a port is `:80`, `80` or a service name (`:http`).
- `and` (`&&`, or nothing: adjacent terms must both hold), `or` (`||`), `not` (`!`), `( )`.

What ss has and ustack does not (autobound, dev, fwmark, cgroup, inet sockets other than TCP...)
is refused with one line naming it, never silently ignored.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Callable

from ..tcp.state import State
from .errors import CliError

# Where Linux's ss spells a state differently from RFC 9293 (the State's value); the others agree.
_LINUX_SPELLING = {State.SYN_RECEIVED: "SYN-RECV", State.ESTABLISHED: "ESTAB"}


def linux_state_name(state: State) -> str:
    """The name `ss` prints for a state (and `ustack ss` too)."""
    return _LINUX_SPELLING.get(state, state.value)


# The words a state filter takes -> the Linux name: the RFC's, ss's, and ss's "listening".
STATE_WORDS = {
    **{state.value.lower(): linux_state_name(state) for state in State},
    **{linux_state_name(state).lower(): linux_state_name(state) for state in State},
    "listening": linux_state_name(State.LISTEN),
}


def _names(*states: State) -> frozenset[str]:
    return frozenset(linux_state_name(state) for state in states)


ALL_STATES = _names(*State)
_NOT_CONNECTED = _names(State.LISTEN, State.CLOSED)
_LISTENING = _names(State.LISTEN, State.CLOSED)  # ss -l: LISTEN and CLOSE (UDP's "listening" sockets)
_BUCKET = _names(State.SYN_RECEIVED, State.TIME_WAIT)
STATE_GROUPS = {  # ss(8): "all", "connected", "synchronized", "bucket", "big"
    "all": ALL_STATES,
    "connected": ALL_STATES - _NOT_CONNECTED,
    "synchronized": ALL_STATES - _NOT_CONNECTED - _names(State.SYN_SENT),
    "bucket": _BUCKET,
    "big": ALL_STATES - _BUCKET,
}
_COMPARISONS: dict[str, Callable[[int, int], bool]] = {
    "=": lambda a, b: a == b, "==": lambda a, b: a == b, "eq": lambda a, b: a == b,
    "!=": lambda a, b: a != b, "neq": lambda a, b: a != b, "ne": lambda a, b: a != b,
    "<": lambda a, b: a < b, "lt": lambda a, b: a < b, ">": lambda a, b: a > b, "gt": lambda a, b: a > b,
    "<=": lambda a, b: a <= b, "le": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "ge": lambda a, b: a >= b,
}
_EQUALITY = {"=", "==", "eq", "!=", "neq", "ne"}
_SS_ONLY_WORDS = {"autobound", "dev", "fwmark", "cgroup", "inode", "sk"}
_TOKEN = re.compile(r"\(|\)|&&|\|\||!=|<=|>=|==|=|<|>|!|[^\s()!=<>&|]+")

# A connection as the filters see it: {"state": "ESTAB", "local": (address, port), "remote": (...)}
Row = dict
Predicate = Callable[[Row], bool]


def state_names(word: str) -> frozenset[str]:
    """The Linux state names a state word or group means; CliError if it is none."""
    key = word.lower().replace("_", "-")
    if key in STATE_GROUPS:
        return STATE_GROUPS[key]
    if key in STATE_WORDS:
        return frozenset({STATE_WORDS[key]})
    if key.upper() in ALL_STATES:
        return frozenset({key.upper()})
    raise CliError(f"unknown state {word!r} (one of: {', '.join(sorted(set(STATE_WORDS) | set(STATE_GROUPS)))})")


class SsFilter:
    """`SsFilter(tokens)`: parse ss's words once; `matches(row)` for each connection.
    `states` is None when no state word was given (then ss's default: all but listening)."""

    def __init__(self, words: list[str]) -> None:
        self.tokens = [token for word in words for token in _TOKEN.findall(word)]
        self.position = 0
        self.states: set[str] | None = None
        self.excluded: set[str] = set()
        self._take_states()
        self.expression: Predicate | None = None
        if self.position < len(self.tokens):
            self.expression = self._or()
            if self.position < len(self.tokens):
                raise CliError(f"ss filter: unexpected {self.tokens[self.position]!r}")

    def matches(self, row: Row) -> bool:
        return self.expression is None or self.expression(row)

    def allowed_states(self, listening: bool, all_states: bool) -> set[str]:
        """ss's rule: state words if any; else -l: listening only; -a: all; else all but listening."""
        if self.states is not None:
            chosen = set(self.states)
        elif listening:
            chosen = set(_LISTENING)
        elif all_states:
            chosen = set(ALL_STATES)
        else:
            chosen = set(ALL_STATES - _NOT_CONNECTED)
        return chosen - self.excluded

    # --- the grammar ---------------------------------------------------------------------------
    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _next(self, what: str) -> str:
        token = self._peek()
        if token is None:
            raise CliError(f"ss filter: {what} is missing at the end")
        self.position += 1
        return token

    def _take_states(self) -> None:
        # ss reads `state X` / `exclude X` before the expression (and only there).
        while self._peek() in ("state", "exclude"):
            word = self._next("state")
            names = state_names(self._next(f"the state after {word!r}"))
            if word == "state":
                self.states = (self.states or set()) | names
            else:
                self.excluded |= names

    def _or(self) -> Predicate:
        terms = [self._and()]
        while self._peek() in ("or", "||"):
            self.position += 1
            terms.append(self._and())
        return terms[0] if len(terms) == 1 else (lambda row: any(term(row) for term in terms))

    def _and(self) -> Predicate:
        terms = [self._not()]
        while self._peek() is not None and self._peek() not in ("or", "||", ")"):
            if self._peek() in ("and", "&&"):
                self.position += 1
            terms.append(self._not())
        return terms[0] if len(terms) == 1 else (lambda row: all(term(row) for term in terms))

    def _not(self) -> Predicate:
        if self._peek() in ("not", "!"):
            self.position += 1
            inner = self._not()
            return lambda row: not inner(row)
        return self._term()

    def _term(self) -> Predicate:
        token = self._next("a condition")
        if token == "(":
            inner = self._or()
            if self._next("')'") != ")":
                raise CliError("ss filter: '(' without its ')'")
            return inner
        if token in ("sport", "dport"):
            return self._port_condition("local" if token == "sport" else "remote", token)
        if token in ("src", "dst"):
            return self._address_condition("local" if token == "src" else "remote", token)
        if token in ("state", "exclude"):
            raise CliError(f"ss filter: '{token}' must come first, before the other conditions (as in ss)")
        if token in _SS_ONLY_WORDS:
            raise CliError(f"ss filter: '{token}' is not supported by ustack ss "
                           "(supported: state, exclude, sport, dport, src, dst, and, or, not, parentheses)")
        raise CliError(f"ss filter: {token!r} is not a condition "
                       "(supported: state, exclude, sport, dport, src, dst, and, or, not, parentheses)")

    def _operator(self, allowed: set[str] | None = None) -> str:
        token = self._peek()
        if token in _COMPARISONS:
            self.position += 1
            if allowed is not None and token not in allowed:
                raise CliError(f"ss filter: {token!r} compares ports only; an address takes =, == or !=")
            return token
        return "="  # `dport :80` means `dport = :80`

    def _port_condition(self, side: str, word: str) -> Predicate:
        operator = self._operator()
        port = parse_port(self._next(f"the port after {word!r}"))
        compare = _COMPARISONS[operator]
        return lambda row: row[side] is not None and row[side][1] is not None and compare(row[side][1], port)

    def _address_condition(self, side: str, word: str) -> Predicate:
        operator = self._operator(_EQUALITY)
        network, port = parse_endpoint(self._next(f"the address after {word!r}"))

        def matches(row: Row) -> bool:
            endpoint = row[side]
            if endpoint is None:
                return False
            address, endpoint_port = endpoint
            if network is not None and (address is None or ipaddress.IPv4Address(address) not in network):
                return False
            return port is None or endpoint_port == port

        negate = operator in ("!=", "neq", "ne")
        return (lambda row: not matches(row)) if negate else matches


def parse_port(text: str) -> int:
    """`:80`, `80`, `:http` or `http` -> 80; CliError if it is none of those."""
    name = text[1:] if text.startswith(":") else text
    if name.isdigit():
        port = int(name)
        if port <= 65535:
            return port
        raise CliError(f"ss filter: port {name} is outside 0..65535")
    try:
        return socket.getservbyname(name, "tcp")
    except OSError:
        raise CliError(f"ss filter: {text!r} is not a port (like :80 or :http)") from None


def parse_endpoint(text: str) -> tuple[ipaddress.IPv4Network | None, int | None]:
    """ss's ADDR[/PREFIX][:PORT], `*:PORT` or `:PORT` -> (network or None, port or None)."""
    address_text, port = text, None
    if ":" in text:
        address_text, _, port_text = text.rpartition(":")
        port = None if port_text == "*" else parse_port(port_text)
    if address_text in ("", "*", "0.0.0.0"):
        return None, port
    try:
        return ipaddress.IPv4Network(address_text, strict=False), port
    except ValueError:
        raise CliError(f"ss filter: {text!r} is not an IPv4 address (ADDR[/PREFIX][:PORT]; ustack has no IPv6)") from None

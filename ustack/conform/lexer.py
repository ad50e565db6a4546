"""Tokens of the packetdrill dialect, and the `#ifdef` preprocessing that comes before them.

The scripts are line-oriented: one event per line. The only constructs that span lines are a
backquoted shell command and a `%{ ... }%` block, and each of those becomes a single token here, so
the parser can treat NEWLINE as the end of a statement.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class ParseError(Exception):
    """A script the parser cannot read: `path:line: what was expected`, one line."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


class Token(NamedTuple):
    kind: str  # see _TOKEN_PATTERN: FLOAT INT HEX WORD STRING SHELL CODE OPTION ELLIPSIS NEWLINE EOF,
    #            or the punctuation character itself ("<", ":", "(", ...)
    text: str
    line: int
    start: int  # offset in the (preprocessed) source, to recover raw text such as errno notes
    end: int

    def describe(self) -> str:
        if self.kind in ("NEWLINE", "EOF"):
            return "end of line" if self.kind == "NEWLINE" else "end of file"
        return repr(self.text)


_TOKEN_PATTERN = re.compile(
    r"""
      (?P<SPACE>[ \t\r\f\v]+)
    | (?P<LINE_COMMENT>//[^\n]*)
    | (?P<BLOCK_COMMENT>/\*.*?\*/)
    | (?P<NEWLINE>\n)
    | (?P<SHELL>`[^`]*`)
    | (?P<CODE>%\{.*?\}%)
    | (?P<OPTION>--[A-Za-z0-9_]+(?:=[^\s]*)?)
    | (?P<ELLIPSIS>\.\.\.)
    | (?P<HEX>0[xX][0-9a-fA-F]+)
    | (?P<FLOAT>[0-9]+\.[0-9]+|\.[0-9]+)
    | (?P<INT>[0-9]+)
    | (?P<WORD>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<STRING>"(?:[^"\\\n]|\\.)*")
    | (?P<PUNCT>[-+*~<>()\[\]{},:=|/!.;%&])
    | (?P<OTHER>.)
    """,
    re.VERBOSE | re.DOTALL,
)

# Preprocessor words that are not supported here: a script using them fails to parse, rather than
# having them read as comments (every other `#` line is one, as in packetdrill).
_C_DIRECTIVES = frozenset({"if", "elif", "include", "define", "undef", "error", "pragma", "line"})
_DIRECTIVE = re.compile(r"^\s*#\s*(\w+)\s*(\S*)")


def preprocess(text: str, path: str, defines: frozenset[str]) -> str:
    """Apply `#ifdef NAME` / `#ifndef NAME` / `#else` / `#endif`.

    The FreeBSD suite marks the places where FreeBSD deliberately differs from the RFCs with
    `#ifdef FreeBSD ... #endif` next to `#ifdef STANDARD ... #endif`; which branch runs is chosen
    by `defines` (the profile's choice). Lines that are not taken, and the directives themselves,
    become empty lines, so that line numbers stay those of the file.
    """
    lines = text.split("\n")
    active_stack: list[bool] = []  # one entry per open #if: is its current branch taken?
    opened_at: list[int] = []
    output = []
    for number, line in enumerate(lines, start=1):
        match = _DIRECTIVE.match(line)
        if match:
            directive, name = match.group(1), match.group(2)
            if directive in ("ifdef", "ifndef"):
                if not name:
                    raise ParseError(path, number, f"#{directive} needs a name")
                taken = (name in defines) == (directive == "ifdef")
                active_stack.append(taken)
                opened_at.append(number)
            elif directive == "else":
                if not active_stack:
                    raise ParseError(path, number, "#else without #ifdef")
                active_stack[-1] = not active_stack[-1]
            elif directive == "endif":
                if not active_stack:
                    raise ParseError(path, number, "#endif without #ifdef")
                active_stack.pop()
                opened_at.pop()
            elif directive not in _C_DIRECTIVES:
                pass  # `#Since ...`, `#we ...`: packetdrill reads a `#` line as a comment
            else:
                expected = "#ifdef, #ifndef, #else, #endif"
                raise ParseError(path, number, f"unknown directive #{directive} (expected {expected})")
            output.append("")
        elif all(active_stack):
            output.append(line)
        else:
            output.append("")
    if active_stack:
        raise ParseError(path, opened_at[-1], "#ifdef without #endif")
    return "\n".join(output)


def tokenize(text: str, path: str) -> list[Token]:
    """Split preprocessed source into tokens; comments and blanks vanish, newlines stay."""
    tokens: list[Token] = []
    line = 1
    position = 0
    depth = 0  # open ( [ {: a statement goes on over line breaks inside them (a long poll() call)
    while position < len(text):
        match = _TOKEN_PATTERN.match(text, position)
        kind = match.lastgroup
        value = match.group()
        if kind == "PUNCT":
            kind = value
        if kind == "OTHER" and value == "`":
            raise ParseError(path, line, "backquoted command without its closing backquote")
        if kind == "%" and text.startswith("%{", position):
            raise ParseError(path, line, "%{ block without its closing }%")
        if kind in ("(", "[", "{"):
            depth += 1
        elif kind in (")", "]", "}"):
            depth = max(0, depth - 1)
        if kind not in ("SPACE", "LINE_COMMENT", "BLOCK_COMMENT") and not (kind == "NEWLINE" and depth):
            tokens.append(Token(kind, value, line, match.start(), match.end()))
        line += value.count("\n")
        position = match.end()
    tokens.append(Token("EOF", "", line, len(text), len(text)))
    return tokens

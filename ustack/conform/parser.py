"""A recursive-descent parser for the packetdrill dialect, as the FreeBSD tcp-testsuite writes it.

What the 578 scripts use (surveyed with grep over /work/shared/conformance/freebsd-tcp-testsuite):

  headers     --ip_version=ipv4  --tolerance_usecs=N  --mtu=N  --non_fatal=syscall
              --udp_encapsulation=tcp  --tcp_md5_secret=secret
  times       `0.00`, `+0.10`, `+ 0.00` (space after +), `*`, `1.00...6.00` (a blocking call);
              no `~` ranges in the suite, but they are part of the language and parsed here
  packets     `< S 0:0(0) win 32767 <mss 1460,sackOK,eol,eol>`, `> . 1:1(0) ack 1 win 65535`,
              flags S . F R P E W and combinations (`S.`, `SEW`, `SE.`, `F.`, `R.`, `P.`, `SF`),
              `...(0)` (any sequence number), `0:0(0)!` (absolute), `(tos 0x20)`, `(ttl 64)`,
              `[noecn]`, `[ect0]`, `/udp(1 > 9811)`, options mss wscale sackOK sack TS nop eol md5,
              `<...>` (any options, outbound only), spaces after commas inside `<...>`
  icmp        `< icmp unreachable port_unreachable [0:0(0)]`, `frag_needed mtu 1500 [...]`,
              `< icmp source_quench [...]`, `<icmp ...` (no space)
  syscalls    socket bind listen accept connect read write send recv close shutdown fcntl
              getsockopt setsockopt; arguments `...`, ints, hex, names, `A | B`, `[65536]`;
              results with errno and note: `= -1 EINPROGRESS (Operation now in progress)`,
              `= 0x02 (flags O_RDWR)`
  shell       backquoted sysctl/sockstat/tcpdrop lines, and untimed multi-line backquoted commands
  code        `%{ assert tcpi_state == TCPI_CLOSE_WAIT }%`
  preprocessor `#ifdef STANDARD` / `#ifdef FreeBSD` / `#endif` (see lexer.preprocess)
  comments    `// ...` on their own line and after a statement (also glued: `= 0//`)

The parser is also written for the rest of the language the runner needs (struct arguments such
as `{l_onoff=1, l_linger=0}`, `htons(8080)`, strings, `~` ranges, `urg`).
"""

from __future__ import annotations

from pathlib import Path

from ustack.conform.lexer import ParseError, Token, preprocess, tokenize
from ustack.conform.script import (
    ELLIPSIS,
    ArrayExpr,
    BinaryExpr,
    CallExpr,
    CodeEvent,
    IcmpSpec,
    IntExpr,
    NameExpr,
    OptionSpec,
    PacketEvent,
    Script,
    ShellEvent,
    StringExpr,
    StructExpr,
    SyscallEvent,
    TimeSpec,
)

# The #ifdef names taken by default: ustack follows the RFCs, so the STANDARD branches run.
DEFAULT_DEFINES = frozenset({"STANDARD"})

# TCP flag letters packetdrill accepts (W is CWR, E is ECE).
FLAG_LETTERS = "FSRPUEWC"
SEQUENCE_MODULO = 2**32


def parse_file(path: str | Path, defines: frozenset[str] = DEFAULT_DEFINES) -> Script:
    """Read and parse one `.pkt` file. Raises ParseError (also for an unreadable file)."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ParseError(path, 0, f"cannot read the script: {error}") from None
    return parse_text(text, path, defines)


def parse_text(text: str, path: str = "<script>", defines: frozenset[str] = DEFAULT_DEFINES) -> Script:
    source = preprocess(text, path, defines)
    script = _Parser(tokenize(source, path), source, path).script()
    script.defines = frozenset(defines)
    return script


class _Parser:
    def __init__(self, tokens: list[Token], source: str, path: str) -> None:
        self.tokens = tokens
        self.source = source
        self.path = path
        self.position = 0

    # -- token helpers -------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.position + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.peek()
        self.position += 1
        return token

    def at(self, kind: str, text: str | None = None, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == kind and (text is None or token.text == text)

    def accept(self, kind: str, text: str | None = None) -> Token | None:
        return self.advance() if self.at(kind, text) else None

    def fail(self, expected: str, token: Token | None = None) -> ParseError:
        token = token or self.peek()
        return ParseError(self.path, token.line, f"expected {expected}, found {token.describe()}")

    def expect(self, kind: str, expected: str, text: str | None = None) -> Token:
        if not self.at(kind, text):
            raise self.fail(expected)
        return self.advance()

    def integer(self, what: str) -> int:
        negative = self.accept("-") is not None
        token = self.peek()
        if token.kind == "INT":
            value = int(self.advance().text)
        elif token.kind == "HEX":
            value = int(self.advance().text, 16)
        else:
            raise self.fail(what)
        return -value if negative else value

    def end_of_statement(self) -> None:
        if not (self.accept("NEWLINE") or self.at("EOF")):
            raise self.fail("end of line")

    # -- script --------------------------------------------------------------------------------

    def script(self) -> Script:
        script = Script(path=self.path)
        while not self.at("EOF"):
            if self.accept("NEWLINE"):
                continue
            token = self.peek()
            if token.kind == "OPTION":
                self.advance()
                name, _, value = token.text[2:].partition("=")
                script.options[name] = value if _ else None
                self.end_of_statement()
            elif token.kind == "SHELL":  # a command with no time: runs when reached
                self.advance()
                script.events.append(ShellEvent(None, token.line, token.text[1:-1]))
                self.end_of_statement()
            else:
                script.events.append(self.event())
        return script

    def event(self):
        line = self.peek().line
        time = self.time_spec()
        token = self.peek()
        if token.kind in ("<", ">"):
            event = self.packet(time, line)
        elif token.kind == "SHELL":
            self.advance()
            event = ShellEvent(time, line, token.text[1:-1])
        elif token.kind == "CODE":
            self.advance()
            event = CodeEvent(time, line, token.text[2:-2].strip())
        elif token.kind == "WORD" and self.at("(", ahead=1):
            event = self.syscall(time, line)
        else:
            raise self.fail("a packet (< or >), a system call, a `command` or %{ code }% after the time")
        if time.kind == "blocking" and not isinstance(event, SyscallEvent):
            raise ParseError(self.path, line, "a blocking time (start...end) is only allowed on a system call")
        self.end_of_statement()
        return event

    def time_spec(self) -> TimeSpec:
        if self.accept("*"):
            return TimeSpec("any")
        relative = self.accept("+") is not None
        start = self.number("a time (such as 0.1, +0.1 or *)")
        if self.accept("~"):
            if relative:
                self.expect("+", "'+' before the end of a relative time range")
            end = self.number("the end of the time range")
            if end < start:
                raise ParseError(self.path, self.peek().line, f"time range {start}~{end} ends before it starts")
            return TimeSpec("range", start, end, relative)
        if self.accept("ELLIPSIS"):
            end = self.number("the end time of the blocking call")
            return TimeSpec("blocking", start, end, relative)
        return TimeSpec("exact", start, None, relative)

    def number(self, what: str) -> float:
        token = self.peek()
        if token.kind in ("FLOAT", "INT"):
            return float(self.advance().text)
        raise self.fail(what)

    # -- packets -------------------------------------------------------------------------------

    def packet(self, time: TimeSpec, line: int) -> PacketEvent:
        direction = self.advance().kind
        ip_info = self.ip_info() if self.peek().kind in ("(", "[") else ()
        if self.at("WORD", "icmp"):
            return self.icmp(time, line, direction, ip_info)
        if self.at("INT") and self.at(">", ahead=1):
            raise ParseError(self.path, line, "explicit port numbers on a packet are not supported")
        flags = self.flags()
        seq_start, seq_end, length, absolute = self.sequence()
        fields = {}
        while self.peek().kind == "WORD" and self.peek().text in ("ack", "win", "urg"):
            name = self.advance().text
            if name in fields:
                raise ParseError(self.path, line, f"'{name}' given twice")
            fields[name] = self.integer(f"a number after '{name}'")
        if direction == "<" and "win" not in fields:
            raise ParseError(self.path, line, "an inbound packet needs its window (win N)")
        options: tuple | None = ()
        if self.accept("<"):
            options = self.tcp_options(direction, line)
        udp_ports = None
        if self.accept("/"):
            self.expect("WORD", "'udp' after '/'", "udp")
            self.expect("(", "'(' after udp")
            source_port = self.integer("a UDP source port")
            self.expect(">", "'>' between the UDP ports")
            destination_port = self.integer("a UDP destination port")
            self.expect(")", "')' after the UDP ports")
            udp_ports = (source_port, destination_port)
        return PacketEvent(
            time=time,
            line=line,
            direction=direction,
            flags=flags,
            seq_start=seq_start,
            seq_end=seq_end,
            payload_length=length,
            seq_absolute=absolute,
            ack=fields.get("ack"),
            window=fields.get("win"),
            urgent=fields.get("urg"),
            options=options,
            ip_info=ip_info,
            udp_ports=udp_ports,
        )

    def ip_info(self) -> tuple:
        """`(tos 0x20)`, `(ttl 64)`, `[noecn]`, `[ect0]`, `(tos 0x20, ttl 64)`."""
        closing = ")" if self.advance().kind == "(" else "]"
        items = []
        while True:
            name = self.expect("WORD", "an IP field (tos, ttl, noecn, ect0, ect1, ce, ...)").text
            value = None
            if self.peek().kind in ("INT", "HEX"):
                value = self.integer("a value")
            elif self.at("WORD") and name in ("ecn", "dscp"):
                value = self.advance().text
            items.append((name, value))
            if not self.accept(","):
                break
        self.expect(closing, f"'{closing}' after the IP fields")
        return tuple(items)

    def flags(self) -> str:
        if self.accept("."):
            return "."
        if self.accept("-"):
            return "-"
        token = self.expect("WORD", "TCP flags (such as S, S., ., F., R, P.)")
        bad = [letter for letter in token.text if letter not in FLAG_LETTERS]
        if bad:
            message = f"unknown TCP flag {bad[0]!r} in {token.text!r} (flags are {FLAG_LETTERS} and .)"
            raise ParseError(self.path, token.line, message)
        return token.text + ("." if self.accept(".") else "")

    def sequence(self) -> tuple:
        """`start:end(length)`, `start:end(length)!` or `...(length)`."""
        if self.accept("ELLIPSIS"):
            self.expect("(", "'(' after '...'")
            length = self.integer("the payload length")
            self.expect(")", "')' after the payload length")
            return None, None, length, False
        token = self.peek()
        start = self.integer("a sequence range start:end(length)")
        self.expect(":", "':' in start:end(length)")
        end = self.integer("the end of start:end(length)")
        self.expect("(", "'(' in start:end(length)")
        length = self.integer("the payload length")
        self.expect(")", "')' after the payload length")
        if not (0 <= start < SEQUENCE_MODULO and 0 <= end < SEQUENCE_MODULO):
            raise ParseError(self.path, token.line, "sequence number out of range 0..2**32-1")
        if (start + length) % SEQUENCE_MODULO != end:
            raise ParseError(self.path, token.line, f"inconsistent sequence range {start}:{end}({length})")
        absolute = self.accept("!") is not None
        return start, end, length, absolute

    def tcp_options(self, direction: str, line: int) -> tuple | None:
        if self.accept("ELLIPSIS"):
            self.expect(">", "'>' after '<...'")
            if direction != ">":
                raise ParseError(self.path, line, "<...> (any options) can only be used on an outbound packet")
            return None
        options = [self.tcp_option()]
        while self.accept(","):
            options.append(self.tcp_option())
        self.expect(">", "',' or '>' in the TCP options")
        return tuple(options)

    def tcp_option(self) -> OptionSpec:
        token = self.expect("WORD", "a TCP option (mss, wscale, sackOK, sack, TS, nop, eol, md5)")
        name = token.text
        if name in ("nop", "eol", "sackOK"):
            return OptionSpec(name)
        if name == "mss":
            return OptionSpec(name, self.integer("the MSS value"))
        if name == "wscale":
            return OptionSpec(name, self.integer("the window scale shift count"))
        if name == "sack":
            blocks = []
            while self.peek().kind in ("INT", "HEX"):
                left = self.integer("a SACK left edge")
                self.expect(":", "':' in a SACK block left:right")
                blocks.append((left, self.integer("a SACK right edge")))
            if not blocks:
                raise self.fail("SACK blocks left:right")
            return OptionSpec(name, tuple(blocks))
        if name == "TS":
            self.expect("WORD", "'val' after TS", "val")
            value = None if self.accept("ELLIPSIS") else self.integer("the TS value (or ...)")
            self.expect("WORD", "'ecr' after the TS value", "ecr")
            echo = self.integer("the TS echo reply")
            absolute = self.accept("!") is not None
            return OptionSpec(name, (value, echo), absolute)
        if name in ("md5", "FO", "FOEXP"):  # MD5 (RFC 2385) or Fast Open (RFC 7413): hex, or a word
            cookie = ""
            while self.peek().kind in ("WORD", "INT", "HEX"):
                cookie += self.advance().text
            return OptionSpec(name, cookie or None)
        expected = "mss, wscale, sackOK, sack, TS, nop, eol, md5, FO, FOEXP"
        raise ParseError(self.path, token.line, f"unknown TCP option {name!r} (expected {expected})")

    def icmp(self, time: TimeSpec, line: int, direction: str, ip_info: tuple) -> PacketEvent:
        self.advance()  # icmp
        icmp_type = self.expect("WORD", "an ICMP type (unreachable, time_exceeded, ...)").text
        code = None
        if self.at("WORD") and self.peek().text != "mtu":
            code = self.advance().text
        mtu = None
        if self.accept("WORD", "mtu"):
            mtu = self.integer("the MTU")
        start = end = length = None
        if self.accept("["):
            start, end, length, _ = self.sequence()
            self.expect("]", "']' after the quoted segment")
        spec = IcmpSpec(icmp_type, code, mtu, start, end, length)
        return PacketEvent(time=time, line=line, direction=direction, ip_info=ip_info, options=(), icmp=spec)

    # -- system calls --------------------------------------------------------------------------

    def syscall(self, time: TimeSpec, line: int) -> SyscallEvent:
        name = self.advance().text
        self.expect("(", f"'(' after {name}")
        args = self.expression_list(")", f"',' or ')' in the arguments of {name}")
        self.expect("=", f"'= result' after {name}(...)")
        result = self.expression()
        errno = None
        token = self.peek()
        if token.kind == "WORD" and token.text.startswith("E") and token.text.isupper():
            errno = self.advance().text
        note = None
        if self.at("("):
            note = self.raw_parenthesised()
        return SyscallEvent(time, line, name, args, result, errno, note)

    def raw_parenthesised(self) -> str:
        """The text of `( ... )` as written (errno descriptions are free text)."""
        opening = self.advance()
        depth = 1
        while True:
            token = self.peek()
            if token.kind in ("NEWLINE", "EOF"):
                raise self.fail("')' closing the note")
            self.advance()
            if token.kind == "(":
                depth += 1
            elif token.kind == ")":
                depth -= 1
                if depth == 0:
                    return self.source[opening.end : token.start].strip()

    def expression_list(self, closing: str, expected: str) -> tuple:
        items = []
        if self.accept(closing):
            return ()
        items.append(self.expression())
        while self.accept(","):
            items.append(self.expression())
        self.expect(closing, expected)
        return tuple(items)

    def expression(self):
        left = self.primary()
        while self.accept("|"):
            left = BinaryExpr("|", left, self.primary())
        return left

    def primary(self):
        token = self.peek()
        if self.accept("ELLIPSIS"):
            return ELLIPSIS
        if token.kind in ("INT", "HEX") or (token.kind == "-" and self.peek(1).kind in ("INT", "HEX")):
            start = token.start
            value = self.integer("a number")
            return IntExpr(value, self.source[start : self.tokens[self.position - 1].end])
        if token.kind == "WORD":
            self.advance()
            if self.accept("("):
                return CallExpr(token.text, self.expression_list(")", f"',' or ')' in {token.text}(...)"))
            return NameExpr(token.text)
        if token.kind == "STRING":
            self.advance()
            text = bytes(token.text[1:-1], "utf-8").decode("unicode_escape")
            self.accept("ELLIPSIS")  # "prefix"... : a string of which only the start is given
            return StringExpr(text)
        if self.accept("["):
            return ArrayExpr(self.expression_list("]", "',' or ']' in the array"))
        if self.accept("{"):
            return self.struct()
        raise self.fail("an argument (a number, a name, ..., [value] or {field=value})")

    def struct(self) -> StructExpr:
        fields = []
        if self.accept("}"):
            return StructExpr(())
        while True:
            if self.at("WORD") and self.at("=", ahead=1):
                name = self.advance().text
                self.advance()
                fields.append((name, self.expression()))
            else:
                value = self.expression()
                if isinstance(value, CallExpr) and self.accept("="):  # `msg_iov(1)=[...]`: a sized field
                    fields.append((value.name, self.expression()))
                else:
                    fields.append((None, value))
            if not self.accept(","):
                break
        self.expect("}", "',' or '}' in the struct")
        return StructExpr(tuple(fields))

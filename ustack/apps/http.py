"""A static-file HTTP/1.1 server on asyncio streams; h11 does the HTTP protocol, this file the files.

What it does, per request:
- GET and HEAD of a file under the served directory: 200 with Content-Length, the body streamed in
  chunks with `await writer.drain()` between them, so a slow client holds back the reading of the
  file instead of filling memory (DESIGN.md rule 5: backpressure is real).
- GET of a directory: its index.html, or else a generated listing; "/dir" redirects to "/dir/".
- PUT and POST, only with `allow_upload=True` (`ustack serve --allow-upload`): the body is stored
  at the path (parent directories are created), streamed to a temporary file beside it and renamed
  into place when complete. 201 Created for a new file, 204 No Content for a replaced one (RFC 9110
  9.3.4). A body with Content-Length goes from the stream to the file without passing through
  h11 (_store_counted_body); a chunked one through h11. Without it they are 405 like any other method: anyone who can reach the server must not
  be able to overwrite the served files unless the person serving them said so.
- Any path that resolves outside the served directory (../, a symlink leading out, a NUL) is
  refused with 403 and nothing outside is read or written; an upload is written to the resolved
  path (symlinks followed first, then checked), so a link inside cannot carry it out.
- 404 for a missing file, 405 (with Allow) for other methods, 400 for malformed HTTP.
- Keep-alive: one connection serves requests until the client closes or asks to close, or sits
  idle for keep_alive_timeout seconds between requests.
"""

from __future__ import annotations

import asyncio
import email.utils
import html
import mimetypes
import os
import stat
import tempfile
from pathlib import Path
from typing import Callable
from urllib.parse import quote, unquote, urlsplit

import h11

from ..compat import FROM_BUFFER_MOVES_YOUNG_BYTES, asyncio_timeout
from .closing import close_quietly
from .reading import read_some

# The most bytes one read of the stream takes. Each read of an upload's body costs the app a
# stream read and a file write (and, through h11, a receive_data and a Data event: ~25 us of
# Python and system calls): at 64 KB that was 16 per MB; a transport hands over up to 256 KB at once
# (asyncio's selector transport, and ustack's READ_CHUNK), and reading as much at once takes it
# in one go (issue 12).
READ_SIZE = 256 * 1024
# The most bytes one read of a body framed by Content-Length takes (_store_counted_body): as much
# as the stream holds, which on ustack's streams is everything in order in the receive buffer (up
# to its 1 MiB window: TcpConfig.receive_buffer_size), in one read and one os.writev of its pieces.
# Each read and write costs ~25 calls of Python and a system call; at 256 KB, ~4.5 of them per MB
# uploaded over ustack, ~1.8 at 1 MiB (scripts/bench_serve_calls.py --upload), and serve's CPU per
# MB uploaded read 3-5 % less (scripts/bench_trees.py --upload, session 18). asyncio's
# StreamReader hands over what its buffer holds either way (it pauses its transport past 128 KB).
BODY_READ_SIZE = 1024 * 1024
# How long a kept-alive connection may sit idle between requests before we close it (a client
# that never sends again must not hold a connection forever).
KEEP_ALIVE_TIMEOUT = 60.0
# File bytes per read and write() when sending a file. Each chunk costs the app a file read, an
# h11 event, a write and a drain (a task wake-up): ~20 us of Python, which at 64 KB was a fifth of
# the CPU of a download at MTU 1500. A chunk is not copied on its way to the send buffer
# (ustack/aio/transport.py PendingWrites), so the bytes it holds are those the connection would
# buffer anyway; a download holds at most about one chunk beyond the send buffer (issue 12:
# 1 MiB took serve's CPU per MB from ~1.2 to ~1.0 ms against 64 KB).
CHUNK_SIZE = 1 << 20
READ_METHODS = "GET, HEAD"
UPLOAD_METHODS = "GET, HEAD, PUT, POST"
# Longest request line plus headers we accept before answering 431/400 (h11 enforces it).
MAX_HEADER_BYTES = 16 * 1024
# The most pieces one os.writev takes (1024 on Linux).
IOV_MAX = os.sysconf("SC_IOV_MAX")


class _Refused(Exception):
    """A request we answer with an error status instead of doing it."""

    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


class HttpFileServer:
    """`HttpFileServer(directory)` is an asyncio stream handler: pass it to start_server."""

    def __init__(self, root: str | os.PathLike, *, log: Callable[[str], None] | None = None,
                 chunk_size: int = CHUNK_SIZE, keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT,
                 allow_upload: bool = False) -> None:
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise NotADirectoryError(f"{root} is not a directory")
        self.log = log
        self.chunk_size = chunk_size
        self.keep_alive_timeout = keep_alive_timeout
        self.allow_upload = allow_upload
        self.allowed_methods = UPLOAD_METHODS if allow_upload else READ_METHODS

    # ----------------------------------------------------------------------------------------
    # One connection: a loop of request/response cycles (h11 tracks where we are in each)
    # ----------------------------------------------------------------------------------------
    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        try:
            while True:
                try:
                    # Waiting for a request: the only wait with a time limit. asyncio.timeout, not
                    # wait_for: wait_for runs the wait as a task of its own, which wakes this one
                    # two loop iterations after the request came; the answer then left after a
                    # bare ACK (the window update of the read) instead of carrying it.
                    async with asyncio_timeout(self.keep_alive_timeout):
                        event = await _next_event(connection, reader)
                except TimeoutError:
                    break
                if isinstance(event, h11.ConnectionClosed):
                    break
                if isinstance(event, h11.Request):
                    # An upload may hand the connection's HTTP state on to a new h11.Connection
                    # (_store_counted_body): carry on with the one _answer returns.
                    connection = await self._answer(connection, reader, writer, event)
                # Keep-alive: a new cycle only when both sides finished this one cleanly.
                if connection.our_state is h11.DONE and connection.their_state is h11.DONE:
                    connection.start_next_cycle()
                else:
                    break
        except h11.RemoteProtocolError as error:
            # Malformed HTTP from the client: answer 400 (or h11's better hint) if we still can.
            if connection.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                try:
                    await _send_text(connection, writer, error.error_status_hint, str(error), close=True)
                except (ConnectionError, OSError, h11.LocalProtocolError):
                    pass
        except h11.LocalProtocolError:
            pass  # we could not finish a response (a file shrank while we sent it): just close
        except (ConnectionError, OSError):
            pass  # the client went away mid-request; there is no one left to answer
        finally:
            await close_quietly(writer)

    async def _answer(self, connection: h11.Connection, reader, writer, request: h11.Request) -> h11.Connection:
        """Answer one request; returns the h11.Connection that holds the HTTP state from here on."""
        method = request.method.decode("ascii", "replace")
        status = 500
        try:
            url_path = _url_path(request.target)
            if method in ("GET", "HEAD"):
                await _discard_body(connection, reader)
                status = await self._send_path(connection, writer, url_path, head=(method == "HEAD"))
            elif method in ("PUT", "POST") and self.allow_upload:
                status, connection = await self._store_upload(connection, reader, writer, request, url_path)
            elif method in ("PUT", "POST"):
                # Refused before reading the body (a client waiting for 100 Continue gets the
                # answer and a close, not a wait): uploads are the server owner's decision.
                raise _Refused(405, "uploads are off (the server was started without --allow-upload)",
                               headers=[("Allow", self.allowed_methods)])
            else:
                raise _Refused(405, f"{method} is not supported here", headers=[("Allow", self.allowed_methods)])
        except _Refused as refused:
            status = refused.status
            await self._refuse(connection, reader, writer, refused, head=(method == "HEAD"))
        if self.log:
            self.log(f'{_peer(writer)} "{method} {request.target.decode("ascii", "replace")}" {status}')
        return connection

    async def _refuse(self, connection, reader, writer, refused: _Refused, head: bool) -> None:
        if connection.their_state is h11.SEND_BODY and connection.they_are_waiting_for_100_continue:
            # The client holds its body until we say 100 Continue; we will not, so we answer and
            # close rather than wait for a body that is not coming.
            await _send_text(connection, writer, refused.status, refused.message, close=True, head=head,
                             headers=refused.headers)
            return
        await _discard_body(connection, reader)  # read it, so the connection can be kept alive
        await _send_text(connection, writer, refused.status, refused.message, head=head, headers=refused.headers)

    # ----------------------------------------------------------------------------------------
    # GET / HEAD
    # ----------------------------------------------------------------------------------------
    async def _send_path(self, connection, writer, url_path: str, head: bool) -> int:
        path = self._resolve(url_path)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise _Refused(404, f"{url_path} not found") from None
        except (PermissionError, NotADirectoryError):
            raise _Refused(404, f"{url_path} not found") from None
        if stat.S_ISDIR(info.st_mode):
            if not url_path.endswith("/"):
                location = quote(url_path + "/")
                await _send_text(connection, writer, 301, f"moved to {location}",
                                 headers=[("Location", location)], head=head)
                return 301
            index = path / "index.html"
            if index.is_file():
                return await self._send_file(connection, writer, index, head)
            body = _directory_listing(path, url_path).encode("utf-8")
            await _send_body(connection, writer, 200, body, "text/html; charset=utf-8", head=head)
            return 200
        return await self._send_file(connection, writer, path, head)

    async def _send_file(self, connection, writer, path: Path, head: bool) -> int:
        try:
            # Unbuffered: every read takes a whole chunk, which a buffered file reads straight into
            # the bytes it returns anyway on CPython, but on PyPy through its buffer (1 MiB: 340 us
            # against 156, and in serve 1.4 ms against 1.1 with the collections it sets off).
            file = open(path, "rb", buffering=0)
        except (PermissionError, IsADirectoryError):
            raise _Refused(403, "not readable") from None
        with file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                # A FIFO or a device would block or never end: only regular files are served.
                raise _Refused(403, "not a regular file")
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            headers = _common_headers() + [
                ("Content-Type", content_type),
                ("Content-Length", str(info.st_size)),
                ("Last-Modified", email.utils.formatdate(info.st_mtime, usegmt=True)),
            ]
            writer.write(connection.send(h11.Response(status_code=200, headers=headers)))
            if not head:
                # Each read asks for at most what is left of the length we announced, plus one
                # byte: a read makes the whole buffer it is asked for before it reads (a 1 MiB
                # chunk for a file of a few bytes cost PyPy ~70 us per request), and a file that
                # grew meanwhile still shows by the byte too many, which h11 refuses as before.
                left = info.st_size
                while chunk := file.read(min(self.chunk_size, left + 1)):
                    left -= len(chunk)
                    writer.write(connection.send(h11.Data(data=chunk)))
                    # Wait while the peer is slower than the disk: memory stays at about one
                    # chunk plus the send buffer, however large the file.
                    await writer.drain()
            writer.write(connection.send(h11.EndOfMessage()))
            await writer.drain()
        return 200

    # ----------------------------------------------------------------------------------------
    # PUT / POST
    # ----------------------------------------------------------------------------------------
    async def _store_upload(self, connection, reader, writer, request: h11.Request, url_path: str) \
            -> tuple[int, h11.Connection]:
        target = self._resolve(url_path)
        if target == self.root or url_path.endswith("/"):
            raise _Refused(409, "cannot store a body as a directory; name a file")
        if target.is_dir():
            raise _Refused(409, f"{url_path} is a directory")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise _Refused(409, "a parent of the path is a file") from None
        except PermissionError:
            raise _Refused(403, "not writable") from None
        existed = target.exists()
        if connection.they_are_waiting_for_100_continue:
            # RFC 9110 10.1.1: the client waits for this before sending a large body.
            writer.write(connection.send(h11.InformationalResponse(status_code=100, headers=[])))
            await writer.drain()
        # Written beside the target and renamed when complete, so that a reader never sees half a
        # file and a broken upload leaves the old file as it was.
        descriptor, temporary_name = tempfile.mkstemp(prefix=".upload-", dir=target.parent)
        try:
            with os.fdopen(descriptor, "wb") as temporary:
                if _header(request, b"transfer-encoding") is not None:
                    # Chunked (the only coding h11 accepts): h11 takes the framing apart.
                    while True:
                        event = await _next_event(connection, reader)
                        if isinstance(event, h11.Data):
                            temporary.write(event.data)
                        elif isinstance(event, h11.EndOfMessage):
                            break
                        else:  # the connection closed before the body was complete
                            raise ConnectionError("upload ended early")
                else:
                    connection = await _store_counted_body(connection, reader, request, temporary.fileno())
            os.replace(temporary_name, target)
        except BaseException:
            try:
                os.unlink(temporary_name)
            except FileNotFoundError:
                pass
            raise
        if existed:
            await _send_text(connection, writer, 204, "")
            return 204, connection
        location = quote(url_path)
        await _send_text(connection, writer, 201, f"created {location}", headers=[("Location", location)])
        return 201, connection

    # ----------------------------------------------------------------------------------------
    # Paths
    # ----------------------------------------------------------------------------------------
    def _resolve(self, url_path: str) -> Path:
        """The file a URL path names, which must be the served directory or inside it."""
        if "\0" in url_path:
            raise _Refused(400, "NUL in path")
        # resolve() follows "..", "." and symlinks (also of components not yet existing), so the
        # check below sees where a request would really land.
        candidate = (self.root / url_path.lstrip("/")).resolve()
        if candidate != self.root and not candidate.is_relative_to(self.root):
            raise _Refused(403, "path leads outside the served directory")
        return candidate


# --------------------------------------------------------------------------------------------
# h11 plumbing
# --------------------------------------------------------------------------------------------
async def _next_event(connection: h11.Connection, reader) -> object:
    """The next HTTP event, reading from the stream as h11 needs more bytes."""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            chunks = await read_some(reader, READ_SIZE)
            if not chunks:
                connection.receive_data(b"")  # the client closed its side (or reset it)
            for chunk in chunks:
                connection.receive_data(chunk)
            continue
        return event


async def _discard_body(connection: h11.Connection, reader) -> None:
    while connection.their_state is h11.SEND_BODY:
        event = await _next_event(connection, reader)
        if isinstance(event, h11.ConnectionClosed):
            return


async def _store_counted_body(connection: h11.Connection, reader, request: h11.Request,
                             descriptor: int) -> h11.Connection:
    """Write a body framed by Content-Length to the file `descriptor` straight from the stream, and
    return the h11.Connection that stands where `connection` would after the body's EndOfMessage.

    Through h11, every body byte is copied three times in its receive buffer (receive_data adds it
    to the buffer, reading a Data event slices it out twice) before the file write copies it once
    more: about half a millisecond of CPU per MB, a fifth of what an upload cost the app (issue 12).
    Here the bytes go from the stream's chunks to the file in one os.writev per read."""
    # h11 checked the header (digits; one value even if repeated); none means no body.
    remaining = int(_header(request, b"content-length") or 0)
    # What h11 already read past the head: the body's first bytes, perhaps the next request too.
    buffered, closed = connection.trailing_data
    body_start, beyond = buffered[:remaining], buffered[remaining:]
    _write_all(descriptor, [body_start])
    remaining -= len(body_start)
    while remaining:
        # Never more than the body's rest: what the client sent after it stays in the stream.
        chunks = [] if closed else await read_some(reader, min(remaining, BODY_READ_SIZE))
        if not chunks:
            # The client ended its side mid-body: the 400 h11 would answer (RFC 9112 8 lets a
            # server answer an incomplete request before it closes).
            raise h11.RemoteProtocolError(f"upload ended early: {remaining} bytes of the body missing")
        remaining -= _write_all(descriptor, chunks)
        # Written: let go of the pieces before the next read waits, not as it returns. On PyPy
        # they are young copies of whole packets (the TUN link's), and while the next read waits
        # the link reads a batch, and its copies fill the nursery: a minor collection then finds
        # these pieces alive and copies them out, into memory only a major collection frees.
        del chunks
    # h11 still has to own the connection's HTTP state: what to answer the request with (it checks
    # our response), whether to keep the connection (HTTP/1.0 or "Connection: close" means close),
    # and the next request. The old connection is stuck waiting for body bytes it will never see,
    # and h11 has no public way to say "the body was read elsewhere". So a fresh connection is told
    # the same request again, as bytes, with Content-Length and Expect left out: a request with
    # neither Content-Length nor Transfer-Encoding has no body (RFC 9112 6.3), so h11 reads the
    # request and at once its EndOfMessage, and stands where the old one would stand after the
    # body. (The head is written out here because h11 only parses requests, it never formats one.)
    # The bytes that came after the body follow, and the end of the stream if h11 had seen it.
    head = [b"%s %s HTTP/%s\r\n" % (request.method, request.target, request.http_version)]
    head += [b"%s: %s\r\n" % (name, value) for name, value in request.headers
             if name not in (b"content-length", b"expect")]
    fresh = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
    fresh.receive_data(b"".join(head) + b"\r\n" + beyond)
    if closed:
        fresh.receive_data(b"")
    events = fresh.next_event(), fresh.next_event()
    if not (isinstance(events[0], h11.Request) and isinstance(events[1], h11.EndOfMessage)):
        raise RuntimeError(f"h11 did not read the request head again: {events!r}")
    return fresh


def _header(request: h11.Request, name: bytes) -> bytes | None:
    """The value of a header (name in lower case, as h11 gives them), None if absent."""
    return next((value for header_name, value in request.headers if header_name == name), None)


def _write_all(descriptor: int, chunks: list) -> int:
    """os.writev the chunks (bytes-like) until all are in the file; returns how many bytes that
    was. Usually one writev; but a write may take fewer bytes than given, and one writev takes at
    most IOV_MAX pieces. On PyPy one os.write per piece instead: its os.writev is compat's, which
    takes each piece's address with ffi.from_buffer, and so moved each piece's packet (the TUN
    link's young copy) out of the collector's nursery, where os.write copies the piece into a
    young string of its own (compat.FROM_BUFFER_MOVES_YOUNG_BYTES says what that costs)."""
    total = left = sum(map(len, chunks))
    pieces = chunks
    while left:
        if FROM_BUFFER_MOVES_YOUNG_BYTES:
            written = os.write(descriptor, pieces[0])
        else:
            written = os.writev(descriptor, pieces[:IOV_MAX])
        left -= written
        if not left:
            break
        first = 0  # drop what was written: whole pieces, then the start of one
        while written >= len(pieces[first]):
            written -= len(pieces[first])
            first += 1
        pieces = pieces[first:]
        pieces[0] = memoryview(pieces[0])[written:]
    return total


def _common_headers() -> list[tuple[str, str]]:
    return [("Server", "ustack"), ("Date", email.utils.formatdate(usegmt=True))]


async def _send_body(connection, writer, status: int, body: bytes, content_type: str, *,
                     headers=(), close=False, head=False) -> None:
    all_headers = _common_headers() + list(headers)
    if status != 204:
        all_headers += [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    if close:
        all_headers.append(("Connection", "close"))
    writer.write(connection.send(h11.Response(status_code=status, headers=all_headers)))
    if body and not head and status != 204:
        writer.write(connection.send(h11.Data(data=body)))
    writer.write(connection.send(h11.EndOfMessage()))
    await writer.drain()


async def _send_text(connection, writer, status: int, message: str, **options) -> None:
    body = f"{message}\n".encode("utf-8") if message else b""
    await _send_body(connection, writer, status, body, "text/plain; charset=utf-8", **options)


def _url_path(target: bytes) -> str:
    """The decoded path of a request target ("/a%20b?x=1" -> "/a b"); 400 if it is not one."""
    try:
        text = target.decode("ascii")
        path = urlsplit(text).path  # also accepts the absolute form "http://host/path"
        decoded = unquote(path, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise _Refused(400, "request target is not a valid path") from None
    if not decoded.startswith("/"):
        raise _Refused(400, "request target must be a path starting with /")
    return decoded


def _directory_listing(directory: Path, url_path: str) -> str:
    entries = []
    for entry in sorted(directory.iterdir(), key=lambda item: item.name):
        if entry.name.startswith(".upload-"):
            continue  # uploads in progress
        name = entry.name + ("/" if entry.is_dir() else "")
        entries.append(f'<li><a href="{html.escape(quote(name))}">{html.escape(name)}</a></li>')
    title = html.escape(url_path)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n"
            f"<body><h1>Index of {title}</h1>\n<ul>\n" + "\n".join(entries) + "\n</ul></body></html>\n")


def _peer(writer) -> str:
    try:
        peer = writer.get_extra_info("peername")
    except Exception:  # a transport that cannot say
        return "-"
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "-"

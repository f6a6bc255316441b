"""Requests out of one UAPI connection's byte stream, as wireguard-go's IpcHandle frames them.

Sans-I/O: the server hands in what it received (`receive`, `end`) and takes out complete
requests (`next_request`); nothing here reads a socket or a clock. A connection between
requests holds an empty buffer and no parser, so hundreds of idle clients cost little.

Framing, as the reference: several requests may share a connection; `get=1` must be followed
by exactly one byte, a newline (anything else: EINVAL; so must wgpyd's own `wgpy_get=1`, the
drop counters, which the reference does not know); an unknown operation closes the
connection without a reply; body lines may end in CRLF (bufio.Scanner drops the CR); a line
over MAX_LINE bytes is answered with EIO and the connection closed. Where the reference lets
one client hurt the daemon, this does not: a `set` larger than MAX_REQUEST gets EIO and the
connection is closed; after a bad line the rest of the request is read (and ignored) before
the errno reply, so the connection stays usable; a `set` ended by EOF instead of its blank
line is not applied (wireguard-go applies it) but answered EPROTO: a client that died
mid-request must not leave half its configuration behind.
"""

import enum
import logging
from dataclasses import dataclass

from wgpy.uapi.protocol import SetParser, SetRequest, UapiError
from wgpy.uapi.text import EINVAL, EIO, EPROTO, WGPY_GET_OPERATION

log = logging.getLogger("wgpy.uapi")

MAX_LINE = 64 * 1024  # bufio.MaxScanTokenSize, wireguard-go's limit for a line of a `set`
MAX_REQUEST = 32 * 1024 * 1024  # a `set` for wireguard-go's 65 536 peers is ~15 MiB


def errno_reply(code: int) -> bytes:
    """`errno=-N`: wireguard-go sends the errno negated, and `wg` negates it back."""
    return f"errno={-code}\n\n".encode()


@dataclass(frozen=True, slots=True)
class Get:
    """A well-formed `get=1`: answer with the device's state; or, `drops`, a `wgpy_get=1`:
    answer with the drop counters."""

    drops: bool = False


@dataclass(frozen=True, slots=True)
class Set:
    """A whole, valid `set=1`: apply it, then answer."""

    request: SetRequest


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer this (an errno) without touching the device; then close unless `keep_open`."""

    data: bytes
    keep_open: bool


class Close:
    """End the connection without a reply (an unknown operation)."""


CLOSE = Close()
Request = Get | Set | Reply | Close


class _State(enum.Enum):
    OPERATION = enum.auto()
    GET = enum.auto()
    SET = enum.auto()


class _LineTooLong(Exception):
    pass


class RequestStream:
    """One connection's framing state."""

    __slots__ = ("_buffer", "_drops", "_error", "_parser", "_size", "_start", "_state")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._start = 0
        self._state = _State.OPERATION
        self._parser: SetParser | None = None
        self._error: UapiError | None = None
        self._size = 0
        self._drops = False  # the get being read is a wgpy_get

    @property
    def in_request(self) -> bool:
        """Whether a request has begun (its operation line read, or part of it received)."""
        return self._state is not _State.OPERATION or self._start < len(self._buffer)

    def receive(self, data: bytes) -> None:
        if self._start:
            del self._buffer[: self._start]
            self._start = 0
        self._buffer += data

    def next_request(self) -> Request | None:
        """The next complete request, or None until more bytes are received."""
        while True:
            if self._state is _State.OPERATION:
                try:
                    operation = self._line()
                except _LineTooLong:
                    operation = b""
                if operation is None:
                    return None
                if operation in (b"get=1", WGPY_GET_OPERATION):
                    self._state, self._drops = _State.GET, operation == WGPY_GET_OPERATION
                elif operation == b"set=1":
                    self._state, self._parser, self._error, self._size = (
                        _State.SET, SetParser(), None, 0)
                else:
                    log.error("invalid UAPI operation; closing the connection")
                    return CLOSE
            elif self._state is _State.GET:
                if self._start == len(self._buffer):
                    return None
                terminator = self._buffer[self._start]  # as wireguard-go: exactly one byte
                self._start += 1
                self._state = _State.OPERATION
                if terminator != ord("\n"):
                    log.error("trailing character in UAPI get")
                    return Reply(errno_reply(EINVAL), keep_open=True)
                return Get(drops=self._drops)
            else:
                try:
                    line = self._line()
                except _LineTooLong:
                    log.error("UAPI set: line longer than %d bytes", MAX_LINE)
                    return self._done(Reply(errno_reply(EIO), keep_open=False))
                if line is None:
                    return None
                request = self._set_line(line)
                if request is not None:
                    return request

    def _set_line(self, line: bytes) -> Request | None:
        """One line of a `set` body; a Request when the `set` is complete or refused."""
        self._size += len(line) + 1
        if self._size > MAX_REQUEST:
            log.error("UAPI set larger than %d bytes: nothing applied", MAX_REQUEST)
            return self._done(Reply(errno_reply(EIO), keep_open=False))
        if line.endswith(b"\r"):
            line = line[:-1]
        if line:
            if self._error is None:
                assert self._parser is not None
                try:
                    self._parser.feed(line.decode("utf-8", "surrogateescape"))
                except UapiError as exc:
                    self._error = exc  # keep reading to the blank line, then answer
            return None
        if self._error is not None:
            log.error("UAPI set refused, nothing applied: %s", self._error)
            return self._done(Reply(errno_reply(self._error.code), keep_open=True))
        assert self._parser is not None
        return self._done(Set(self._parser.request))

    def _done(self, request: Request) -> Request:
        self._state, self._parser, self._error = _State.OPERATION, None, None
        return request

    def end(self) -> Reply | None:
        """The client closed its side: EPROTO for a `set` cut short, else nothing."""
        if self._state is _State.SET:
            log.error("UAPI set ended without its blank line: nothing applied")
            reply = Reply(errno_reply(EPROTO), keep_open=False)
            self._done(reply)
            return reply
        return None

    def _line(self) -> bytes | None:
        """The next line without its newline; None until one is whole."""
        end = self._buffer.find(b"\n", self._start)
        if end < 0:
            if len(self._buffer) - self._start > MAX_LINE:
                raise _LineTooLong
            return None
        if end - self._start > MAX_LINE:
            raise _LineTooLong
        line = bytes(self._buffer[self._start : end])
        self._start = end + 1
        return line

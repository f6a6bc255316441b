"""The UAPI socket of wgpyd: `/var/run/wireguard/IFACE.sock`, served as wireguard-go serves it.

Like wireguard-go (ipc/uapi_linux.go, device/uapi.go IpcHandle): the directory is created
0755, the socket bound under umask 077, a stale socket (nobody answers) is replaced while a
live one is refused, several requests may share a connection, `get=1` must be followed by
exactly one newline (anything else: EINVAL), an unknown operation closes the connection
without a reply, body lines may end in CRLF (bufio.Scanner drops the CR) and a body line
over 64 KiB is answered with EIO. Deleting the socket file stops the daemon (wireguard-go
watches it with inotify; here the accept loop checks the file's inode every
SOCKET_WATCH_INTERVAL and calls `on_socket_lost`).

Where the reference lets one client hurt the daemon, this one does not:

* each connection has its own thread, at most `max_connections` at once (more wait in the
  listen backlog), so a slow client cannot block the others;
* a request must arrive whole within `request_timeout`, and a connection may sit idle
  between requests for `idle_timeout`; then it is closed and nothing of a half-written
  request is applied. A `set` ended by EOF instead of its blank line is not applied either
  (wireguard-go applies it): a client that died mid-request must not leave half its
  configuration behind. Such a request gets EPROTO if the client still listens;
* a `set` larger than MAX_REQUEST bytes gets EIO and the connection is closed;
* after a bad line the rest of the request is read (and ignored) before the errno reply,
  so the connection stays usable and a client still writing does not get EPIPE;
* no exception leaves a connection thread; nothing logged carries key material.
"""

import contextlib
import errno
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Callable

from wgpy.uapi.protocol import DeviceHost, SetParser, UapiError, apply_set, format_get
from wgpy.uapi.text import EINVAL, EIO, ENOANO, EPROTO, socket_path
from wgpy.uapi.text import socket_dir as default_socket_dir

log = logging.getLogger("wgpy.uapi")

MAX_LINE = 64 * 1024  # bufio.MaxScanTokenSize, wireguard-go's limit for a line of a `set`
MAX_REQUEST = 32 * 1024 * 1024  # a `set` for wireguard-go's 65 536 peers is ~15 MiB
REQUEST_TIMEOUT = 30.0
IDLE_TIMEOUT = 60.0
MAX_CONNECTIONS = 32
SOCKET_WATCH_INTERVAL = 0.5
_RECV_SIZE = 65536


class _LineTooLong(Exception):
    pass


def _reply(code: int) -> bytes:
    """`errno=-N`: wireguard-go sends the errno negated, and `wg` negates it back."""
    return f"errno={-code}\n\n".encode()


class _Reader:
    """Lines from a stream socket, each bounded by MAX_LINE, all reads by one deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.start = 0
        self.deadline = 0.0

    def _fill(self) -> bool:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("UAPI request timed out")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(_RECV_SIZE)
        if not chunk:
            return False
        del self.buffer[: self.start]
        self.start = 0
        self.buffer += chunk
        return True

    def readline(self) -> bytes | None:
        """The next line without its newline; None at EOF (a partial last line is dropped)."""
        while True:
            end = self.buffer.find(b"\n", self.start)
            if end >= 0:
                if end - self.start > MAX_LINE:
                    raise _LineTooLong
                line = bytes(self.buffer[self.start : end])
                self.start = end + 1
                return line
            if len(self.buffer) - self.start > MAX_LINE:
                raise _LineTooLong
            if not self._fill():
                return None

    def read_byte(self) -> bytes | None:
        if self.start == len(self.buffer) and not self._fill():
            return None
        byte = bytes(self.buffer[self.start : self.start + 1])
        self.start += 1
        return byte


class UapiServer:
    """Serves the UAPI of one interface (`host`) on `socket_dir/IFACE.sock` (by default the
    directory the client looks in: text.socket_dir())."""

    def __init__(self, iface: str, host: DeviceHost, socket_dir: str | None = None,
                 *, request_timeout: float = REQUEST_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS,
                 on_socket_lost: Callable[[], None] | None = None) -> None:
        if not iface or "/" in iface or iface in {".", ".."}:
            raise ValueError(f"invalid interface name {iface!r}")
        self.iface = iface
        self.host = host
        self.socket_dir = socket_dir or default_socket_dir()
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self._slots = threading.Semaphore(max_connections)
        self._listener: socket.socket | None = None
        self._inode: int | None = None
        self._accept_thread: threading.Thread | None = None
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closing = False
        self._on_socket_lost = on_socket_lost

    @property
    def path(self) -> str:
        return socket_path(self.iface, self.socket_dir)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Bind the socket (replacing a stale one, refusing a live one) and start serving."""
        os.makedirs(self.socket_dir, mode=0o755, exist_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o077)
        try:
            try:
                listener.bind(self.path)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                self._remove_stale_socket()
                listener.bind(self.path)
            listener.listen(64)
            listener.settimeout(SOCKET_WATCH_INTERVAL)  # accept wakes to check the file
            self._inode = os.stat(self.path).st_ino
        except BaseException:
            listener.close()
            raise
        finally:
            os.umask(old_umask)
        self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(listener,), name=f"uapi-{self.iface}", daemon=True)
        self._accept_thread.start()

    def _remove_stale_socket(self) -> None:
        """UAPIOpen: if a daemon answers, the name is taken; otherwise the file is a leftover
        (but only a socket is removed, never a file someone put there)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(self.path)
            except OSError:
                if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                    raise OSError(errno.EEXIST, f"{self.path} exists and is not a socket") from None
                os.unlink(self.path)
                return
        raise OSError(errno.EADDRINUSE, f"UAPI socket {self.path} is in use")

    def close(self) -> None:
        """Stop serving, end open connections and remove the socket file (if still ours)."""
        self._closing = True
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            listener.close()
        self._slots.release()  # wakes an accept loop waiting for a free slot
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
        if self._inode is not None:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == self._inode:
                    os.unlink(self.path)
            self._inode = None

    # ------------------------------------------------------------------ connections

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            self._slots.acquire()
            if self._closing:
                return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                self._slots.release()
                if not self._closing and not self._socket_is_ours():
                    log.info("UAPI socket %s was removed; shutting down", self.path)
                    if self._on_socket_lost is not None:
                        self._on_socket_lost()
                    return
                continue
            except OSError as exc:
                self._slots.release()
                if self._closing:
                    return
                log.warning("UAPI accept failed: %s", exc)
                time.sleep(0.1)  # e.g. EMFILE: do not spin
                continue
            with self._lock:
                self._clients.add(client)
            try:
                threading.Thread(target=self._serve, args=(client,), name="uapi-client",
                                 daemon=True).start()
            except RuntimeError as exc:  # no more threads
                log.warning("UAPI connection refused: %s", exc)
                self._forget(client)

    def _socket_is_ours(self) -> bool:
        try:
            return os.stat(self.path).st_ino == self._inode
        except FileNotFoundError:
            return False
        except OSError:
            return True  # cannot tell (e.g. EACCES): keep serving

    def _forget(self, client: socket.socket) -> None:
        with self._lock:
            self._clients.discard(client)
        client.close()
        self._slots.release()

    def _serve(self, client: socket.socket) -> None:
        try:
            reader = _Reader(client)
            while not self._closing:
                reader.deadline = time.monotonic() + self.idle_timeout
                try:
                    operation = reader.readline()
                except _LineTooLong:
                    operation = b""
                if operation is None:
                    return
                reader.deadline = time.monotonic() + self.request_timeout
                if operation == b"get=1":
                    reply, keep_open = self._get(reader)
                elif operation == b"set=1":
                    reply, keep_open = self._set(reader)
                else:
                    log.error("invalid UAPI operation; closing the connection")
                    return
                if reply is None:
                    return
                client.settimeout(self.request_timeout)
                client.sendall(reply)
                if not keep_open:
                    return
        except OSError as exc:  # includes timeouts and clients that went away
            log.debug("UAPI connection closed: %s", exc)
        except Exception:
            log.exception("UAPI connection failed")
        finally:
            self._forget(client)

    def _get(self, reader: _Reader) -> tuple[bytes | None, bool]:
        terminator = reader.read_byte()  # as wireguard-go: exactly one byte, a newline
        if terminator is None:
            return None, False
        if terminator != b"\n":
            log.error("trailing character in UAPI get")
            return _reply(EINVAL), True
        host = self.host
        body = self._run(lambda: host.call(lambda: format_get(host)).encode() + b"errno=0\n\n")
        return body, True

    def _set(self, reader: _Reader) -> tuple[bytes | None, bool]:
        parser = SetParser()
        error: UapiError | None = None
        size = 0
        while True:
            try:
                line = reader.readline()
            except _LineTooLong:
                log.error("UAPI set: line longer than %d bytes", MAX_LINE)
                return _reply(EIO), False
            if line is None:
                log.error("UAPI set ended without its blank line: nothing applied")
                return _reply(EPROTO), False
            size += len(line) + 1
            if size > MAX_REQUEST:
                log.error("UAPI set larger than %d bytes: nothing applied", MAX_REQUEST)
                return _reply(EIO), False
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                break
            if error is None:
                try:
                    parser.feed(line.decode("utf-8", "surrogateescape"))
                except UapiError as exc:
                    error = exc  # keep reading to the blank line, then answer
        if error is not None:
            log.error("UAPI set refused, nothing applied: %s", error)
            return _reply(error.code), True

        def apply() -> bytes:
            apply_set(self.host, parser.request)
            return b"errno=0\n\n"

        return self._run(apply), True

    def _run(self, operation: Callable[[], bytes]) -> bytes:
        """The reply of an operation: its own, an errno for a refused one, ENOANO (as
        wireguard-go's 'other UAPI error') for a failure that should not happen. OSError from
        host.call (the interface is going away) ends the connection."""
        try:
            return operation()
        except UapiError as exc:
            log.error("UAPI set refused, nothing applied: %s", exc)
            return _reply(exc.code)
        except OSError:
            raise
        except Exception:
            log.exception("UAPI operation failed")
            return _reply(ENOANO)

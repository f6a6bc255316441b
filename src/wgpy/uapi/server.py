"""The UAPI socket of wgpyd: `/var/run/wireguard/IFACE.sock`, served as wireguard-go serves it.

Like wireguard-go (ipc/uapi_linux.go, device/uapi.go IpcHandle): the directory is created
0755, the socket bound under umask 077, a stale socket (nobody answers) is replaced while a
live one is refused, and requests are framed as framing.py describes. Deleting the socket
file stops the daemon: like wireguard-go, the server watches the file with inotify
(io/filewatch.py) and calls `on_socket_lost`.

One thread serves the listener and every connection from one selector (epoll), so it sleeps
without a timeout while nobody talks to it, and where the reference lets one client hurt the
daemon, this one does not:

* no fixed number of slots: an idle or slowly-writing client costs a socket and a few hundred
  bytes (a RequestStream with an empty buffer), never a thread, and never delays another
  client's request; one client's pipelined requests are served a few at a time, taking turns
  with the others;
* out of file descriptors (EMFILE), the connection idle longest is closed to admit the new
  one; with none idle, accepting pauses until a connection closes;
* a request must arrive whole, and its reply be taken, within `request_timeout`, and a
  connection may sit idle between requests for `idle_timeout`; then it is closed and nothing
  of a half-written request is applied;
* no exception leaves the thread (a connection that raises is closed); nothing logged carries
  key material.
"""

import contextlib
import errno
import logging
import os
import selectors
import socket
import stat
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from wgpy.io.filewatch import FileWatch
from wgpy.uapi.framing import Close, Get, Reply, RequestStream, Set, errno_reply
from wgpy.uapi.protocol import (
    DeviceHost,
    GetFormatter,
    SetRequest,
    UapiError,
    apply_set,
    format_drops,
)
from wgpy.uapi.text import ENOANO, socket_path
from wgpy.uapi.text import socket_dir as default_socket_dir

log = logging.getLogger("wgpy.uapi")

REQUEST_TIMEOUT = 30.0
IDLE_TIMEOUT = 60.0
# Only when inotify is unavailable (e.g. fs.inotify.max_user_instances reached): how often
# the socket file is looked at instead.
SOCKET_WATCH_INTERVAL = 0.5
REQUESTS_PER_TURN = 8  # a client's pipelined requests served before the others' turn
_ACCEPTS_PER_TURN = 64
_RECV_SIZE = 65536
_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_NO_REPLY = memoryview(b"")  # shared: an idle connection holds no reply of its own
_NO_MORE: deque[bytes] = deque()  # shared too, and never added to


class _Client:
    """One connection: its socket, framing state and the reply being written (the chunk
    being written, and the chunks after it)."""

    __slots__ = ("events", "keep_open", "open", "reply", "rest", "sock", "stream")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.stream = RequestStream()
        self.reply = _NO_REPLY
        self.rest = _NO_MORE
        self.keep_open = True
        self.open = True
        self.events = selectors.EVENT_READ


class UapiServer:
    """Serves the UAPI of one interface (`host`) on `socket_dir/IFACE.sock` (by default the
    directory the client looks in: text.socket_dir())."""

    def __init__(self, iface: str, host: DeviceHost, socket_dir: str | None = None,
                 *, request_timeout: float = REQUEST_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT,
                 on_socket_lost: Callable[[], None] | None = None) -> None:
        if not iface or "/" in iface or iface in {".", ".."}:
            raise ValueError(f"invalid interface name {iface!r}")
        self.iface = iface
        self.host = host
        self.socket_dir = socket_dir or default_socket_dir()
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self._on_socket_lost = on_socket_lost
        self._listener: socket.socket | None = None
        self._inode: int | None = None
        self._thread: threading.Thread | None = None
        self._selector = selectors.EpollSelector()  # replaced by start()'s own
        self._wake = -1  # an eventfd while serving: close() wakes the thread through it
        self._watch: FileWatch | None = None
        # Deadlines in the order they fall (each table has one timeout, the clock only grows).
        self._idle: OrderedDict[_Client, float] = OrderedDict()
        self._busy: OrderedDict[_Client, float] = OrderedDict()
        self._turns: deque[_Client] = deque()  # clients with framed requests left to serve
        self._accepting = False
        self._closing = False
        self._socket_lost = False
        self._get_formatter = GetFormatter()

    @property
    def path(self) -> str:
        return socket_path(self.iface, self.socket_dir)

    @property
    def connections(self) -> int:
        """Open client connections (for tests and diagnostics)."""
        return len(self._idle) + len(self._busy)

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
            listener.listen(socket.SOMAXCONN)
            listener.setblocking(False)
            self._inode = os.stat(self.path).st_ino
        except BaseException:
            listener.close()
            raise
        finally:
            os.umask(old_umask)
        self._listener = listener
        self._selector = selectors.EpollSelector()
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            self._watch = FileWatch(self.path)
            self._selector.register(self._watch.fileno(), selectors.EVENT_READ,
                                    self._check_socket_file)
        except OSError as exc:
            log.warning("cannot watch %s (%s): looking at it every %.1f s instead",
                        self.path, exc, SOCKET_WATCH_INTERVAL)
        self._selector.register(self._wake, selectors.EVENT_READ, self._drain_wake)
        self._resume_accepting()
        self._thread = threading.Thread(target=self._serve_forever, name=f"uapi-{self.iface}",
                                        daemon=True)
        self._thread.start()

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
        thread, self._thread = self._thread, None
        if thread is not None:
            os.eventfd_write(self._wake, 1)
            thread.join(timeout=5)
            if not thread.is_alive():  # (one stuck in a host call releases all on return)
                os.close(self._wake)
                self._wake = -1
        else:
            self._release()
        if self._inode is not None:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == self._inode:
                    os.unlink(self.path)
            self._inode = None

    def _release(self) -> None:
        """Close everything the serving thread used (on its way out)."""
        for client in [*self._idle, *self._busy]:
            client.sock.close()
        self._idle.clear()
        self._busy.clear()
        self._turns.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        self._selector.close()

    # ------------------------------------------------------------------ the serving thread

    def _serve_forever(self) -> None:
        try:
            while not self._closing:
                for key, _ in self._selector.select(self._timeout()):
                    if self._closing:
                        break
                    if isinstance(key.data, _Client):
                        self._on_ready(key.data)
                    else:
                        key.data()
                self._take_turns()
                self._expire(time.monotonic())
                if self._watch is None and not self._socket_lost:
                    self._check_socket_file()
        except Exception:  # a bug here must not leave the socket unanswered silently
            log.exception("UAPI server failed")
        finally:
            self._release()

    def _timeout(self) -> float | None:
        """Seconds to the first deadline; None (sleep until something happens) without one."""
        if self._turns:
            return 0.0
        deadlines = [next(iter(table.values())) for table in (self._idle, self._busy) if table]
        if self._watch is None and not self._socket_lost:
            return SOCKET_WATCH_INTERVAL if not deadlines else min(
                SOCKET_WATCH_INTERVAL, max(0.0, min(deadlines) - time.monotonic()))
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._wake)

    def _check_socket_file(self) -> None:
        if self._watch is not None:
            self._watch.drain()
        if self._socket_lost or self._socket_is_ours():
            return
        self._socket_lost = True
        log.info("UAPI socket %s was removed; shutting down", self.path)
        self._pause_accepting()
        if self._watch is not None:
            self._selector.unregister(self._watch.fileno())
            self._watch.close()
            self._watch = None
        if self._on_socket_lost is not None:
            self._on_socket_lost()

    def _socket_is_ours(self) -> bool:
        try:
            return os.stat(self.path).st_ino == self._inode
        except FileNotFoundError:
            return False
        except OSError:
            return True  # cannot tell (e.g. EACCES): keep serving

    # ------------------------------------------------------------------ connections

    def _resume_accepting(self) -> None:
        if not self._accepting and self._listener is not None and not self._socket_lost:
            self._selector.register(self._listener, selectors.EVENT_READ, self._accept)
            self._accepting = True

    def _pause_accepting(self) -> None:
        if self._accepting and self._listener is not None:
            self._selector.unregister(self._listener)
            self._accepting = False

    def _accept(self) -> None:
        assert self._listener is not None
        for _ in range(_ACCEPTS_PER_TURN):
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_DESCRIPTORS:
                    log.debug("UAPI accept failed: %s", exc)  # e.g. ECONNABORTED
                    continue
                if not self._idle:
                    log.warning("UAPI accept failed (%s); waiting for a connection to close",
                                exc.strerror)
                    self._pause_accepting()
                    return
                log.warning("UAPI accept failed (%s); closing the connection idle longest",
                            exc.strerror)
                self._drop(next(iter(self._idle)))
                continue
            sock.setblocking(False)
            client = _Client(sock)
            self._selector.register(sock, selectors.EVENT_READ, client)
            self._idle[client] = time.monotonic() + self.idle_timeout

    def _on_ready(self, client: _Client) -> None:
        self._guarded(client, self._handle_ready)

    def _guarded(self, client: _Client, step: Callable[[_Client], None]) -> None:
        """Run one step of a connection; whatever it raises closes that connection only."""
        try:
            step(client)
        except OSError as exc:  # the client went away, or the interface is going away
            log.debug("UAPI connection closed: %s", exc)
            self._drop(client)
        except Exception:
            log.exception("UAPI connection failed")
            self._drop(client)

    def _handle_ready(self, client: _Client) -> None:
        """The socket is readable, or writable while a reply waits."""
        if client.reply:
            if self._flush(client):
                self._serve_requests(client)
            return
        try:
            data = client.sock.recv(_RECV_SIZE)
        except BlockingIOError:
            return
        if data:
            client.stream.receive(data)
            self._serve_requests(client)
            return
        reply = client.stream.end()
        if reply is None:
            self._drop(client)
        else:
            self._send(client, [reply.data], reply.keep_open)

    def _serve_requests(self, client: _Client) -> None:
        """Answer the framed requests, one reply in flight at a time, at most
        REQUESTS_PER_TURN before the other clients' turn."""
        for _ in range(REQUESTS_PER_TURN):
            if not client.open or client.reply:
                return
            request = client.stream.next_request()
            if request is None:
                self._rearm(client)
                return
            if isinstance(request, Close):
                self._drop(client)
                return
            if isinstance(request, Get) and not request.drops:
                self._send_get(client)
            elif isinstance(request, Get):
                self._send(client, self._get_drops(), keep_open=True)
            elif isinstance(request, Set):
                self._send(client, self._apply(request.request), keep_open=True)
            else:
                assert isinstance(request, Reply)
                self._send(client, [request.data], request.keep_open)
        if client.open and not client.reply:
            self._turns.append(client)

    def _take_turns(self) -> None:
        for _ in range(len(self._turns)):
            client = self._turns.popleft()
            if client.open:
                self._guarded(client, self._serve_requests)

    def _send(self, client: _Client, chunks: list[bytes], keep_open: bool) -> None:
        """Write a reply given in chunks, each chunk freed once written."""
        rest = deque(chunk for chunk in chunks if chunk)
        client.reply = memoryview(rest.popleft() if rest else b"")
        client.rest = rest if rest else _NO_MORE
        client.keep_open = keep_open
        self._finish_sending(client)

    def _send_get(self, client: _Client) -> None:
        """`get=1`, from text kept between gets (GetFormatter), in chunks of one data-plane
        turn each. Each chunk is written as soon as it is made, as much of it as the socket
        takes at once (the rest is queued as any reply's), so that the client reads the
        first peers while the data plane makes the next: `wgpy show` reads a big reply as it
        arrives. The reply is still made whole in this call: no other request is served
        between its turns."""
        client.reply, client.rest, client.keep_open = _NO_REPLY, deque(), True

        def emit(chunk: bytes) -> None:
            if chunk:
                client.rest.append(chunk)
                # what the socket takes now: full, the rest waits; the client gone, the
                # reply's last flush finds it so
                with contextlib.suppress(OSError):
                    self._write(client)

        host, formatter = self.host, self._get_formatter

        def make() -> list[bytes]:
            formatter.reply(host, emit)
            return []

        for refusal in self._run(make):  # an errno reply if making it failed
            emit(refusal)
        self._finish_sending(client)

    @staticmethod
    def _write(client: _Client) -> None:
        """Write the queued reply until it is all written or the socket takes no more
        (BlockingIOError)."""
        while client.reply or client.rest:
            if not client.reply:
                client.reply = memoryview(client.rest.popleft())
            client.reply = client.reply[client.sock.send(client.reply):]

    def _finish_sending(self, client: _Client) -> None:
        if not self._flush(client) and client.open:
            # The client is slow to read: it has request_timeout from now to take the rest.
            self._idle.pop(client, None)
            self._busy.pop(client, None)
            self._busy[client] = time.monotonic() + self.request_timeout

    def _flush(self, client: _Client) -> bool:
        """Write what the socket takes of the reply; True once it is all written and the
        connection stays open (then it reads the next request)."""
        try:
            self._write(client)
        except BlockingIOError:
            self._watch_for(client, selectors.EVENT_WRITE)
            return False
        client.reply, client.rest = _NO_REPLY, _NO_MORE  # nor the last chunk kept alive
        if not client.keep_open:
            self._drop(client)
            return False
        self._watch_for(client, selectors.EVENT_READ)
        self._idle.pop(client, None)
        self._busy.pop(client, None)
        self._rearm(client)
        return True

    def _watch_for(self, client: _Client, events: int) -> None:
        if client.events != events:
            self._selector.modify(client.sock, events, client)
            client.events = events

    def _rearm(self, client: _Client) -> None:
        """Start the connection's deadline when it changes between idle and in a request
        (a request's deadline runs from its first byte and is not renewed by more bytes)."""
        if client.stream.in_request:
            if client not in self._busy:
                self._idle.pop(client, None)
                self._busy[client] = time.monotonic() + self.request_timeout
        elif client not in self._idle:
            self._busy.pop(client, None)
            self._idle[client] = time.monotonic() + self.idle_timeout

    def _expire(self, now: float) -> None:
        for table, what in ((self._idle, "idle"), (self._busy, "request")):
            while table:
                client, deadline = next(iter(table.items()))
                if deadline > now:
                    break
                log.debug("UAPI connection closed: %s timeout (nothing applied)", what)
                self._drop(client)

    def _drop(self, client: _Client) -> None:
        if not client.open:
            return
        client.open = False
        self._idle.pop(client, None)
        self._busy.pop(client, None)
        self._selector.unregister(client.sock)
        client.sock.close()
        if not self._closing:
            self._resume_accepting()

    # ------------------------------------------------------------------ operations

    def _get_drops(self) -> list[bytes]:
        """wgpyd's own `wgpy_get=1`."""
        host = self.host
        return self._run(lambda: [host.call(lambda: format_drops(host)).encode(),
                                  b"errno=0\n\n"])

    def _apply(self, request: SetRequest) -> list[bytes]:
        def apply() -> list[bytes]:
            apply_set(self.host, request, self._get_formatter)
            return [b"errno=0\n\n"]

        return self._run(apply)

    def _run(self, operation: Callable[[], list[bytes]]) -> list[bytes]:
        """The reply of an operation (in chunks): its own, an errno for a refused one, ENOANO
        (as wireguard-go's 'other UAPI error') for a failure that should not happen. OSError
        from host.call (the interface is going away) ends the connection."""
        try:
            return operation()
        except UapiError as exc:
            log.error("UAPI set refused, nothing applied: %s", exc)
            return [errno_reply(exc.code)]
        except OSError:
            raise
        except Exception:
            log.exception("UAPI operation failed")
            return [errno_reply(ENOANO)]

"""The UAPI socket of wgpyd: `/var/run/wireguard/IFACE.sock`, as wireguard-go serves it.

One thread per connection, so a slow or stuck client cannot block others; requests run on
the data-plane thread through `host.call`. Several requests may share a connection. Bad
input never takes the daemon down: a malformed `set` gets an errno reply and changes nothing,
an unknown operation, an over-long line or a half-written request that stalls closes that
connection only.
"""

import contextlib
import errno
import logging
import os
import socket
import stat
import threading

from wgpy.uapi.protocol import EINVAL, EIO, DeviceHost, UapiError, apply_set, format_get, parse_set

log = logging.getLogger("wgpy.uapi")

MAX_LINE = 8192
MAX_REQUEST_LINES = 1_000_000  # a `set` for 10 000 peers has ~60 000 lines
IDLE_TIMEOUT = 30.0


class _Connection:
    """Line reader over a stream socket with the limits above."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def read_byte(self) -> bytes | None:
        if not self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer = chunk
        byte, self.buffer = self.buffer[:1], self.buffer[1:]
        return byte

    def readline(self) -> str | None:
        """One line without its newline; None at EOF. OverflowError for an over-long line."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line, self.buffer = self.buffer[:end], self.buffer[end + 1 :]
                if len(line) > MAX_LINE:
                    raise OverflowError("line too long")
                return line.decode("utf-8", errors="replace")
            if len(self.buffer) > MAX_LINE:
                raise OverflowError("line too long")
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk


class UapiServer:
    def __init__(self, iface: str, host: DeviceHost,
                 socket_dir: str = "/var/run/wireguard") -> None:
        self.iface = iface
        self.host = host
        self.socket_dir = socket_dir
        self._listener: socket.socket | None = None
        self._closing = False

    @property
    def path(self) -> str:
        return os.path.join(self.socket_dir, f"{self.iface}.sock")

    def start(self) -> None:
        """Bind the socket (refusing one a live daemon still answers on) and serve."""
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
        except BaseException:
            listener.close()
            raise
        finally:
            os.umask(old_umask)
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept_loop, name="uapi-accept", daemon=True).start()

    def _remove_stale_socket(self) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(self.path)
            except OSError:
                if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                    os.unlink(self.path)
                    return
                raise
        raise OSError(errno.EADDRINUSE, f"UAPI socket {self.path} is in use")

    def close(self) -> None:
        self._closing = True
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._closing:
            try:
                client, _ = listener.accept()
            except OSError:
                if self._closing:
                    return
                continue
            threading.Thread(target=self._serve, args=(client,), name="uapi-client",
                             daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            client.settimeout(IDLE_TIMEOUT)
            connection = _Connection(client)
            while True:
                operation = connection.readline()
                if operation is None:
                    return
                if operation == "get=1":
                    reply = self._get(connection)
                elif operation == "set=1":
                    reply = self._set(connection)
                else:
                    log.debug("invalid UAPI operation; closing the connection")
                    return
                if reply is None:
                    return
                client.sendall(reply.encode())
        except (OSError, OverflowError, UnicodeError) as exc:
            log.debug("UAPI connection closed: %s", exc)
        except Exception:  # never let a request take the daemon down
            log.exception("UAPI request failed")
        finally:
            client.close()

    def _get(self, connection: _Connection) -> str | None:
        terminator = connection.read_byte()  # wireguard-go reads exactly one byte here
        if terminator is None:
            return None
        if terminator != b"\n":
            return f"errno=-{EINVAL}\n\n"
        body = self.host.call(lambda: format_get(self.host))
        return body + "errno=0\n\n"

    def _set(self, connection: _Connection) -> str | None:
        lines: list[str] = []
        while True:
            line = connection.readline()
            if line is None:
                return None  # half a request: nothing applied
            if line == "":
                break
            lines.append(line)
            if len(lines) > MAX_REQUEST_LINES:
                return f"errno=-{EIO}\n\n"
        try:
            request = parse_set(lines)
            apply_set(self.host, request)
        except UapiError as exc:
            log.error("UAPI set refused: %s", exc)
            return f"errno=-{exc.code}\n\n"
        return "errno=0\n\n"

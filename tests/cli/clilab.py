"""Helpers for the `wgpy` vs `wg` differential tests.

The UAPI socket lives in the file system (/var/run/wireguard), not in a network namespace,
so both tools can talk to a wireguard-go device from the test's own namespace; namespaces are
only needed to give each device its own TUN and ports. `wgpy` runs in-process (fast, same
code as the console script); `wg` runs as the real binary.

`FakeUapi` serves canned `get` replies and records `set` requests on a real socket path, so
`wg` and `wgpy` can be compared on states a live device cannot be put into on demand
(handshake times, byte counters, peer order, odd replies) and on the exact request text
each sends.
"""

import contextlib
import io
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from wgpy.cli.main import main as wgpy_main

from netlab import SOCKET_DIR, Namespace, start_wireguard_go, unique_name

BASE_ENV = {"WG_COLOR_MODE": "never", "WG_ENDPOINT_RESOLUTION_RETRIES": "0"}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_wg(*args: str, env: dict | None = None, stdin: str | None = None) -> Result:
    result = subprocess.run(["wg", *args], capture_output=True, text=True, input=stdin,
                            env={**os.environ, **BASE_ENV, **(env or {})}, timeout=30)
    return Result(result.returncode, result.stdout, result.stderr)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_wgpy(*args: str, env: dict | None = None) -> Result:
    """`wgpy ARGS` in this process, with stdout/stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with (_environment({**BASE_ENV, **(env or {})}), contextlib.redirect_stdout(out),
          contextlib.redirect_stderr(err)):
        argv0, sys.argv[0] = sys.argv[0], "wg"  # usage lines name the program as wg's do
        try:
            code = wgpy_main(list(args))
        finally:
            sys.argv[0] = argv0
    return Result(code, out.getvalue(), err.getvalue())


@dataclass
class DevicePair:
    """Two wireguard-go devices, `a` for wg and `b` for wgpy, in separate namespaces (so both
    can take the same listen port)."""

    a: str
    b: str
    files: str
    namespaces: list[Namespace] = field(default_factory=list)


@contextlib.contextmanager
def device_pair(files: str) -> Iterator[DevicePair]:
    with (Namespace(prefix="wgpycli-") as ns_a, Namespace(prefix="wgpycli-") as ns_b):
        a, b = unique_name("wca", 15), unique_name("wcb", 15)
        with start_wireguard_go(ns_a, a), start_wireguard_go(ns_b, b):
            yield DevicePair(a, b, files, [ns_a, ns_b])


class FakeUapi:
    """A UAPI socket answering `get` with `reply` (a `get` body, errno line added; or `raw`,
    sent as is), wgpyd's `wgpy_get` with `drops` (closing the connection without a reply
    when None, as wireguard-go does) and `set` with `errno=-<set_errno>`, recording every
    `set` request text."""

    def __init__(self, reply: str = "", set_errno: int = 0, raw: str | None = None,
                 directory: str = SOCKET_DIR, drops: str | None = None) -> None:
        self.name = unique_name("wcf", 15)
        self.directory = directory
        self.path = os.path.join(directory, f"{self.name}.sock")
        self.reply = reply
        self.raw = raw
        self.set_errno = set_errno
        self.drops = drops
        self.requests: list[str] = []
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "FakeUapi":
        os.makedirs(self.directory, exist_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(8)
        self._listener = listener
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._listener is not None and self._thread is not None
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def _serve(self) -> None:
        assert self._listener is not None
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                self._answer(connection)

    def _answer(self, connection: socket.socket) -> None:
        data = b""
        while b"\n\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return
            data += chunk
        request = data.decode()
        if request.startswith("wgpy_get=1\n"):
            if self.drops is not None:
                connection.sendall(f"{self.drops}errno=0\n\n".encode())
        elif request.startswith("get=1\n") and self.raw is not None:
            connection.sendall(self.raw.encode())
        elif request.startswith("get=1\n"):
            body = self.reply if not self.reply or self.reply.endswith("\n") else self.reply + "\n"
            connection.sendall(f"{body}errno=0\n\n".encode())
        else:
            self.requests.append(request)
            connection.sendall(f"errno={-self.set_errno}\n\n".encode())

"""Network namespaces, veth links and WireGuard daemons for integration tests.

Everything here cleans up after itself, also when a test fails: namespaces are deleted,
daemons we started are stopped by PID (never by name), and sockets are removed.

    with Namespace(unique_name("mytest-")) as a, Namespace(unique_name("mytest-")) as b:
        veth_pair(a, "va", "10.0.0.1/24", b, "vb", "10.0.0.2/24")
        iface = unique_name("wt", max_len=15)
        with start_wireguard_go(a, iface):
            a.run("wg", "show", iface)

Daemons run in the foreground (`-f`), so we hold their PID instead of hunting for a forked
child. The UAPI socket directory /var/run/wireguard is shared by every namespace: interface
names must be unique across the whole machine, hence `unique_name`. A daemon is stopped the
way wg-quick stops one, by deleting its link (the daemon sees the TUN vanish and exits);
only if that fails is the process we started terminated, then killed.
"""

import contextlib
import ctypes
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

SOCKET_DIR = "/var/run/wireguard"
CLONE_NEWNET = 0x40000000
_COUNTER = itertools.count()
T = TypeVar("T")


def unique_name(prefix: str, max_len: int | None = None) -> str:
    """`prefix` + a token unique to this process and call (base 36 of PID and a counter).

    Interface names are limited to 15 characters (IFNAMSIZ - 1): pass `max_len=15` and a
    short prefix; the name is refused rather than truncated into a possible collision.
    """
    token = _base36(os.getpid()) + _base36(next(_COUNTER))
    name = f"{prefix}{token}"
    if max_len is not None and len(name) > max_len:
        raise ValueError(f"{name!r} is longer than {max_len} characters: shorten the prefix")
    return name


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


class Namespace:
    """`with Namespace("name") as ns:` creates the namespace (lo up) and deletes it after.

    Without a name, one is made from `prefix` with `unique_name`. A stale namespace of the
    same name (left by a killed run) is deleted first.
    """

    def __init__(self, name: str | None = None, prefix: str = "netlab-") -> None:
        self.name = name if name is not None else unique_name(prefix)

    def __enter__(self) -> "Namespace":
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        try:
            self.run("ip", "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def run(self, *args: str, check: bool = True, env: dict | None = None,
            timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
        """Run a command inside the namespace; CalledProcessError carries its output."""
        result = subprocess.run(
            ["ip", "netns", "exec", self.name, *args],
            capture_output=True, text=True, env=env, timeout=timeout, input=input,
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, result.args, result.stdout, result.stderr
            )
        return result

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *args], **kwargs)


def veth_pair(ns_a: Namespace, name_a: str, address_a: str | list[str],
              ns_b: Namespace, name_b: str, address_b: str | list[str]) -> None:
    """A veth link between two namespaces with addresses (CIDR text), both ends up."""
    subprocess.run(["ip", "link", "add", name_a, "netns", ns_a.name, "type", "veth",
                    "peer", "name", name_b, "netns", ns_b.name], check=True, capture_output=True)
    for ns, name, addresses in ((ns_a, name_a, address_a), (ns_b, name_b, address_b)):
        for address in [addresses] if isinstance(addresses, str) else addresses:
            ns.run("ip", "addr", "add", address, "dev", name, "nodad")
        ns.run("ip", "link", "set", name, "up")


def wait_for_socket(iface: str, process: subprocess.Popen | None = None,
                    timeout: float = 10.0) -> str:
    path = os.path.join(SOCKET_DIR, f"{iface}.sock")
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"daemon for {iface} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no UAPI socket for {iface}")
        time.sleep(0.02)
    return path


@contextlib.contextmanager
def _daemon(ns: Namespace, iface: str, argv: list[str],
            env: dict | None = None) -> Iterator[subprocess.Popen]:
    """Run a UAPI daemon in the foreground until the block ends; its stderr goes to a file
    (a pipe nobody reads could fill and stall it) and is quoted if it fails to start."""
    _claim_socket(iface)
    with tempfile.TemporaryFile() as log:
        process = ns.popen(*argv, stdout=subprocess.DEVNULL, stderr=log, env=env)
        try:
            try:
                wait_for_socket(iface, process)
            except (RuntimeError, TimeoutError) as exc:
                log.seek(0)
                message = log.read().decode(errors="replace").strip()
                raise RuntimeError(f"{exc}: {message}" if message else str(exc)) from None
            yield process
        finally:
            _stop(ns, iface, process)


def _claim_socket(iface: str) -> None:
    """Remove a stale socket (its daemon is gone) so that waiting for the socket means waiting
    for *our* daemon; refuse a name that a live daemon serves."""
    path = os.path.join(SOCKET_DIR, f"{iface}.sock")
    if not os.path.exists(path):
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)
            return
    raise RuntimeError(f"a daemon already serves {path}: pick a unique interface name")


def _stop(ns: Namespace, iface: str, process: subprocess.Popen) -> None:
    """Delete the link (the daemon exits), else terminate/kill our PID; remove the socket."""
    ns.run("ip", "link", "del", iface, check=False)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        end_process(process)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(SOCKET_DIR, f"{iface}.sock"))


def end_process(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """Terminate a process we started (by its PID), killing it if it does not exit."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_wireguard_go(ns: Namespace, iface: str) -> contextlib.AbstractContextManager:
    """wireguard-go in the foreground inside `ns` (we hold its PID)."""
    path = shutil.which("wireguard-go") or "wireguard-go"
    return _daemon(ns, iface, [path, "-f", iface])


def start_wgpyd(
    ns: Namespace, iface: str, log_level: str = "error", env: dict[str, str] | None = None
) -> contextlib.AbstractContextManager:
    """wgpyd in the foreground inside `ns`, from this checkout's Python (`env` added to
    ours)."""
    environment = dict(os.environ, LOG_LEVEL=log_level, **(env or {}))
    return _daemon(ns, iface, [sys.executable, "-m", "wgpy.daemon", "-f", iface], environment)


def socket_in_namespace(ns: Namespace, family: int, kind: int) -> socket.socket:
    """A socket created inside `ns`."""
    return in_namespace(ns, lambda: socket.socket(family, kind))


def in_namespace(ns: Namespace, make: Callable[[], T]) -> T:
    """`make()` run inside `ns` (namespaces are per thread: a helper thread enters it), for
    objects bound to a namespace when created: sockets, TUN devices."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: list = []

    def enter_and_create() -> None:
        try:
            fd = os.open(f"/var/run/netns/{ns.name}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
            finally:
                os.close(fd)
            result.append(make())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=enter_and_create)
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]

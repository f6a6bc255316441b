"""Network namespaces, veth links and WireGuard daemons for integration tests.

Everything here cleans up after itself, also when a test fails: namespaces are deleted,
daemons we started are stopped by PID (never by name), and sockets are removed.
"""

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

SOCKET_DIR = "/var/run/wireguard"
CLONE_NEWNET = 0x40000000


class Namespace:
    """`with Namespace("name") as ns:` creates the namespace (lo up) and deletes it after."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> "Namespace":
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        self.run("ip", "link", "set", "lo", "up")
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
    process = ns.popen(*argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        wait_for_socket(iface, process)
        yield process
    finally:
        ns.run("ip", "link", "del", iface, check=False)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(SOCKET_DIR, f"{iface}.sock"))


def start_wireguard_go(ns: Namespace, iface: str) -> contextlib.AbstractContextManager:
    """wireguard-go in the foreground inside `ns` (we hold its PID)."""
    path = shutil.which("wireguard-go") or "wireguard-go"
    return _daemon(ns, iface, [path, "-f", iface])


def start_wgpyd(
    ns: Namespace, iface: str, log_level: str = "error"
) -> contextlib.AbstractContextManager:
    """wgpyd in the foreground inside `ns`, from this checkout's Python."""
    env = dict(os.environ, LOG_LEVEL=log_level)
    return _daemon(ns, iface, [sys.executable, "-m", "wgpy.daemon", "-f", iface], env)


def socket_in_namespace(ns: Namespace, family: int, kind: int) -> socket.socket:
    """A socket created inside `ns` (namespaces are per thread: a helper thread enters it)."""
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
            result.append(socket.socket(family, kind))
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=enter_and_create)
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]

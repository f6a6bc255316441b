"""Two network namespaces joined by a veth pair, and WireGuard daemons started inside them.

The benchmarks own everything they create: namespaces are named `wgpyb-…` and interfaces
`wb…` with this process's PID in them, daemons run in the foreground (`-f`) so we hold their
PIDs, and every exit path (error, Ctrl-C, SIGTERM) stops the daemons by PID and deletes the
namespaces, which takes the veth and TUN links with them.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

NS_PREFIX = "wgpyb-"
SOCKET_DIR = "/var/run/wireguard"
MTU = 1420
UNDERLAY = ("10.201.0.1", "10.201.0.2")
UNDERLAY6 = ("fd01:201::1", "fd01:201::2")
# Routed testbeds: R's addresses on its link to A and to B (A and B keep theirs, with host
# routes to each other via R).
ROUTER = ("10.201.0.254", "10.201.0.253")
ROUTER6 = ("fd01:201::fe", "fd01:201::fd")
TUNNEL = ("10.202.0.1", "10.202.0.2")
LISTEN_PORTS = (51901, 51902)
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Daemon kind -> argv before the interface name. Both create IFACE.sock in SOCKET_DIR when ready.
DAEMON_ARGV = {
    "wireguard-go": lambda: [shutil.which("wireguard-go") or "wireguard-go", "-f"],
    "wgpyd": lambda: [sys.executable, "-m", "wgpy.daemon", "-f"],
    "wgpyd-no-offload": lambda: [sys.executable, "-m", "wgpy.daemon", "-f"],
}
# Daemon kind -> environment it runs with, beyond ours.
DAEMON_ENV = {"wgpyd-no-offload": {"WGPY_OFFLOAD": "0"}}


class Terminated(Exception):
    """SIGTERM, raised in the main thread so a bench unwinds (and cleans up) like Ctrl-C."""


def _terminate(signum: int, _frame: object) -> None:
    raise Terminated(signum)


def raise_terminated_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, _terminate)


def exit_status(interruption: BaseException) -> int:
    """128 + the signal that interrupted a bench (KeyboardInterrupt or Terminated)."""
    if isinstance(interruption, Terminated):
        return 128 + interruption.args[0]
    return 128 + signal.SIGINT


def missing_prerequisites(prog: str, tools: tuple[str, ...]) -> str | None:
    """Why a root benchmark cannot run here (not root, a tool missing), or None."""
    if os.geteuid() != 0:
        return f"{prog}: needs root (network namespaces, TUN)"
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        return f"{prog}: missing tools: {' '.join(missing)}"
    return None


class BenchError(RuntimeError):
    """A configuration could not be set up or measured; the message becomes its report row."""


def run(*argv: str, timeout: float = 30, check: bool = True, input: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command; a failure raises BenchError carrying its stderr."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                input=input, env=env)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(argv[:6])}: timed out after {timeout:.0f} s") from exc
    except FileNotFoundError as exc:
        raise BenchError(f"{argv[0]} is not installed") from exc
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise BenchError(f"{' '.join(argv[:6])}: exit {result.returncode}: "
                         f"{detail[-1] if detail else 'no output'}")
    return result


def stop_process(process: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process by PID, SIGKILL it if it lingers, and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a whole process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid: int, key: str) -> int:
    """A `kB` line of /proc/PID/status (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {key} in /proc/{pid}/status")


class Namespace:
    """A network namespace with lo up; deleted on exit."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> "Namespace":
        run("ip", "netns", "add", self.name)
        try:
            self.run("ip", "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def run(self, *argv: str, **kwargs) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", self.name, *argv, **kwargs)

    def popen(self, *argv: str, **kwargs) -> subprocess.Popen:
        """A child in the namespace. `ip netns exec` execs in place, so its PID is the
        command's own; a new session keeps the terminal's Ctrl-C away from it (we stop it)."""
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv],
                                start_new_session=True, **kwargs)


def veth_pair(*ends: tuple[Namespace, str, str]) -> None:
    """A veth pair between two namespaces, each end (namespace, name, IPv4) addressed /24, up."""
    (ns_a, name_a, _), (ns_b, name_b, _) = ends
    run("ip", "link", "add", name_a, "netns", ns_a.name, "type", "veth",
        "peer", "name", name_b, "netns", ns_b.name)
    for ns, name, address in ends:
        ns.run("ip", "addr", "add", f"{address}/24", "dev", name)
        ns.run("ip", "link", "set", name, "up")


@dataclass
class Daemon:
    kind: str
    iface: str
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)


@contextlib.contextmanager
def daemon(ns: Namespace, kind: str, iface: str, timeout: float = 10.0) -> Iterator[Daemon]:
    """Start `kind` in the foreground for `iface` inside `ns`; stop it by PID afterwards."""
    socket_path = os.path.join(SOCKET_DIR, f"{iface}.sock")
    env = dict(os.environ, LOG_LEVEL="error", **DAEMON_ENV.get(kind, {}))
    with tempfile.TemporaryFile() as errors:
        process = ns.popen(*DAEMON_ARGV[kind](), iface, stdout=subprocess.DEVNULL,
                           stderr=errors, env=env)
        try:
            deadline = time.monotonic() + timeout
            while not os.path.exists(socket_path):
                if process.poll() is not None:
                    errors.seek(0)
                    lines = errors.read().decode(errors="replace").strip().splitlines()
                    raise BenchError(f"{kind} exited with {process.returncode}: "
                                     f"{lines[-1] if lines else 'no output'}")
                if time.monotonic() > deadline:
                    raise BenchError(f"{kind}: no UAPI socket after {timeout:.0f} s")
                time.sleep(0.02)
            yield Daemon(kind, iface, process)
        finally:
            stop_process(process)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(socket_path)


def genkey() -> tuple[str, str]:
    """(private, public) in base64, from the real `wg`."""
    private = run("wg", "genkey").stdout.strip()
    public = run("wg", "pubkey", input=private + "\n").stdout.strip()
    return private, public


class Testbed:
    """Namespaces A and B joined by a veth pair (`UNDERLAY`/`UNDERLAY6` addresses); tunnels
    come and go. `routed=True`: A and B are joined through a router namespace R instead (A-R
    and R-B links), so that a narrower R-B link (`set_path_mtu`) is learned by A only from
    R's ICMP frag-needed / Packet Too Big.

    `with Testbed() as bed:` builds it; leaving the block tears down everything it started.
    """

    def __init__(self, tag: str | None = None, routed: bool = False) -> None:
        self.tag = tag or str(os.getpid())
        self.routed = routed
        self.names = (f"{NS_PREFIX}a{self.tag}", f"{NS_PREFIX}b{self.tag}")
        self.veths = (f"wbv{self.tag}a", f"wbv{self.tag}b")
        self.ifaces = (f"wb{self.tag}a", f"wb{self.tag}b")
        self._stack = contextlib.ExitStack()
        self.a: Namespace
        self.b: Namespace
        self.router: Namespace | None = None

    def __enter__(self) -> "Testbed":
        try:
            self.a = self._stack.enter_context(Namespace(self.names[0]))
            self.b = self._stack.enter_context(Namespace(self.names[1]))
            self.keydir = self._stack.enter_context(tempfile.TemporaryDirectory())
            if self.routed:
                self.router = self._stack.enter_context(Namespace(f"{NS_PREFIX}r{self.tag}"))
                self._route_through(self.router)
            else:
                veth_pair((self.a, self.veths[0], UNDERLAY[0]),
                          (self.b, self.veths[1], UNDERLAY[1]))
            for ns, veth, address6 in zip((self.a, self.b), self.veths, UNDERLAY6, strict=True):
                ns.run("ip", "addr", "add", f"{address6}/64", "dev", veth, "nodad")
            if self.routed:
                self._routes_via_router()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _route_through(self, router: Namespace) -> None:
        """A-R and R-B links, forwarding on in R, host routes from R to A and B (more specific
        than the /24 on both of R's links)."""
        links = (f"wbv{self.tag}ra", f"wbv{self.tag}rb")
        veth_pair((self.a, self.veths[0], UNDERLAY[0]), (router, links[0], ROUTER[0]))
        veth_pair((router, links[1], ROUTER[1]), (self.b, self.veths[1], UNDERLAY[1]))
        router.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
                   "net.ipv6.conf.all.forwarding=1")
        for link, address6, host, host6 in zip(links, ROUTER6, UNDERLAY, UNDERLAY6,
                                               strict=True):
            router.run("ip", "addr", "add", f"{address6}/128", "dev", link, "nodad")
            router.run("ip", "route", "add", f"{host}/32", "dev", link)
            router.run("ip", "-6", "route", "add", f"{host6}/128", "dev", link)

    def _routes_via_router(self) -> None:
        """A and B reach each other's addresses through R (host routes, more specific than
        their own /24 and /64)."""
        for ns, other, gateway, gateway6 in ((self.a, 1, ROUTER[0], ROUTER6[0]),
                                             (self.b, 0, ROUTER[1], ROUTER6[1])):
            ns.run("ip", "route", "add", f"{UNDERLAY[other]}/32", "via", gateway)
            ns.run("ip", "-6", "route", "add", f"{UNDERLAY6[other]}/128", "via", gateway6)

    def set_path_mtu(self, mtu: int) -> None:
        """The MTU of the path's narrow link, at both its ends: the A-B link, or R-B when
        routed (A's own link stays 1500: it learns the path MTU from R)."""
        if self.router is not None:
            ends = ((self.router, f"wbv{self.tag}rb"), (self.b, self.veths[1]))
        else:
            ends = ((self.a, self.veths[0]), (self.b, self.veths[1]))
        for ns, link in ends:
            ns.run("ip", "link", "set", link, "mtu", str(mtu))

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @contextlib.contextmanager
    def tunnel(self, kind_a: str, kind_b: str,
               family: str = "4") -> Iterator[tuple[Daemon, Daemon]]:
        """Daemons of the given kinds in A and B, configured by `wg set` and brought up with
        `TUNNEL` addresses and MTU 1420. Both ends know the other's endpoint, on the IPv4 or
        (`family` "6") the IPv6 underlay."""
        endpoints = (UNDERLAY if family == "4"
                     else tuple(f"[{address}]" for address in UNDERLAY6))
        with contextlib.ExitStack() as stack:
            daemons = []
            for ns, kind, iface in zip((self.a, self.b), (kind_a, kind_b), self.ifaces,
                                       strict=True):
                daemons.append(stack.enter_context(daemon(ns, kind, iface)))
            keys = [genkey(), genkey()]
            for i, (ns, iface) in enumerate(zip((self.a, self.b), self.ifaces, strict=True)):
                other = 1 - i
                key_file = os.path.join(self.keydir, iface)
                with open(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                          "w") as handle:
                    handle.write(keys[i][0] + "\n")
                ns.run("wg", "set", iface, "private-key", key_file,
                       "listen-port", str(LISTEN_PORTS[i]),
                       "peer", keys[other][1], "allowed-ips", f"{TUNNEL[other]}/32",
                       "endpoint", f"{endpoints[other]}:{LISTEN_PORTS[other]}")
                ns.run("ip", "addr", "add", f"{TUNNEL[i]}/24", "dev", iface)
                ns.run("ip", "link", "set", iface, "mtu", str(MTU), "up")
            yield daemons[0], daemons[1]


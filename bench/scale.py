#!/usr/bin/env python3
"""`python3 bench/scale.py` (root): every path through a big hub, wgpy against wg, wg-quick and
wireguard-go in the same run, at 1 000, 10 000 and 50 000 peers.

The hub file has, per peer, a tunnel /32 and /128 inside the hub's Address (covered by its
routes), a routed site (an IPv4 /24 or an IPv6 /64, alternately), an endpoint (every fourth
one IPv6) and, on every fourth peer, a persistent keepalive. Paths, each timed as wall clock:

  quick up, quick down   `wgpy-quick up|down FILE` (starting wgpyd) against `wg-quick` (with
                         WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go), each in its own
                         namespace (without routes out: endpoints are unreachable, the MTU
                         is the default 1420 for both)
  quick reload           wg-quick(8)'s reload, `wg syncconf IFACE <(wg-quick strip FILE)`,
                         against `wgpy syncconf IFACE <(wgpy-quick strip FILE)`, of the file
                         with every 100th endpoint moved
  quick save             `wgpy-quick save FILE` against `wg-quick save FILE`
  daemon setconf         `wg setconf` of the stripped file: wgpyd against wireguard-go, with
                         the daemon's CPU time and memory (RSS idle, after, peak; and after
                         the gets, which wgpyd keeps each peer's text from)
  daemon first get       the first raw UAPI `get=1` round trip after it (wgpyd keeps each
                         peer's text for the gets after: none is kept yet)
  daemon get             one raw UAPI `get=1` round trip: wgpyd against wireguard-go
  daemon set one peer    one raw UAPI `set=1` of one new peer on the full device
  show, show dump, show allowed-ips, showconf, syncconf
                         `wgpy …` against `wg …`, both on the same wgpyd device (output
                         compared byte for byte; a difference fails the run); `wgpy` as
                         installed: its console script, bytecode compiled once (or the
                         `wgpy` given by --wgpy, e.g. a venv's: see bench/README)
  show --json, show --json --config, serve /json, serve /metrics
                         wgpy only (wg has no equivalent), on the same device, against
                         `wgpy show dump`'s time (what a script would read instead):
                         `wgpy show IFACE --json` as above, and with `--config` the
                         stripped hub file (read for the peers' `path`); one GET of /json and of
                         /metrics from a running `wgpy serve IFACE` (the request alone, by a
                         client in the namespace; each answer's peers counted)

Daemons run with their interface down (nothing is sent); the quick paths bring the interface
up; keepalive peers' handshakes find no route and are not sent. Times are medians of
--repeat runs (quick paths: one run each, in the order up, reload, save, down; a step
past --quick-timeout is recorded as timed out and the rest skipped). Hold the bench lock:
`flock /tmp/wgpy-bench.lock python3 bench/scale.py`; `--only quick|daemon|tools` and `--merge`
split a long run into shorter ones and put their figures together again.

--ping-during-get N: instead, whether a big `get` holds up packets: ping RTTs through a
tunnel to a hub daemon with N peers, alone and while it answers 5 gets (ping_during_get).
--ping-during-set N: the same for a `set` adding N peers, then one removing them: ping
RTTs and losses during each (ping_during_set).

--smoke: only the wgpy side at 500 and 2 000 peers (medians of 3), failing unless every
path was measured and its time at 4x the peers is at most 6x its time (linear growth; CI,
tests/bench).
"""

import argparse
import base64
import contextlib
import importlib.util
import itertools
import json
import math
import os
import re
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import machine
from probes import RTT, ping_rtts
from testbed import TUNNEL, BenchError, Namespace, Testbed, cpu_seconds, daemon, genkey, status_kib

SIZES = (1_000, 10_000, 50_000)
SMOKE_SIZES = (500, 2_000)
LINEAR_LIMIT = 6.0  # time at 4x the peers over the time at 1x
TOOL_PATHS = {  # label -> wg arguments after the interface name (None: the file goes last)
    "show": ["show", "{iface}"],
    "show dump": ["show", "{iface}", "dump"],
    "show allowed-ips": ["show", "{iface}", "allowed-ips"],
    "showconf": ["showconf", "{iface}"],
    "syncconf": ["syncconf", "{iface}", "{file}"],
}
# no wg equivalent
WGPY_ONLY_PATHS = ("show --json", "show --json --config", "serve /json", "serve /metrics")
QUICK_PATHS = ("quick up", "quick reload", "quick save", "quick down")
DAEMON_PATHS = ("daemon setconf", "daemon first get", "daemon get", "daemon set one peer")
PATHS = (*QUICK_PATHS, *DAEMON_PATHS, *TOOL_PATHS, *WGPY_ONLY_PATHS)


def _command(script: str, module: str) -> list[str]:
    """The console script installed with this Python, as a user runs it (`python3 -m`
    would add runpy's imports), else the module."""
    path = os.path.join(os.path.dirname(sys.executable), script)
    return [path] if os.access(path, os.X_OK) else [sys.executable, "-m", module]


WGPY = DEFAULT_WGPY = _command("wgpy", "wgpy.cli.main")
WGPY_QUICK = _command("wgpy-quick", "wgpy.quick.main")


def hub_peer(i: int) -> tuple[list[str], str, int | None]:
    """The hub's peer number `i` (see the module docstring): its prefixes, endpoint and
    persistent keepalive (None: none)."""
    tunnel = i + 2
    site = (f"10.{i >> 9 & 255}.{i >> 1 & 255}.0/24" if i % 2 == 0
            else f"fd10:{i >> 16:x}:{i & 0xFFFF:x}::/64")
    endpoint = (f"[2001:db8:18::{i:x}]:{51820 + i % 1000}" if i % 4 == 0
                else f"198.18.{i >> 8 & 255}.{i & 255}:{51820 + i % 1000}")
    prefixes = [f"100.{64 + (tunnel >> 16)}.{tunnel >> 8 & 255}.{tunnel & 255}/32",
                f"fd00:64::{tunnel:x}/128", site]
    return prefixes, endpoint, 25 if i % 4 == 0 else None


def hub_file(path: str, peers: int, port: int) -> None:
    """A wg-quick hub file (see the module docstring); keys are random 32-byte strings."""
    private = genkey()[0]
    lines = ["[Interface]", f"PrivateKey = {private}", f"ListenPort = {port}",
             "Address = 100.64.0.1/10, fd00:64::1/64"]
    for i in range(peers):
        prefixes, endpoint, keepalive = hub_peer(i)
        lines += ["", "[Peer]", f"PublicKey = {base64.b64encode(os.urandom(32)).decode()}",
                  f"AllowedIPs = {', '.join(prefixes)}", f"Endpoint = {endpoint}"]
        if keepalive is not None:
            lines.append(f"PersistentKeepalive = {keepalive}")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write("\n".join(lines) + "\n")


def stripped(hub: str, path: str) -> None:
    """The hub file without wg-quick's keys (what `wg-quick strip` prints)."""
    with open(hub) as source:
        kept = [line for line in source if not line.startswith("Address =")]
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.writelines(kept)


class TimedOut(BenchError):
    """A command ran past its time limit (it was killed)."""


def timed(ns: Namespace, argv: list[str], timeout: float,
          env: dict | None = None) -> tuple[float, str]:
    """Wall time and stdout of a command in the namespace, run in a session of its own so
    that nothing it signals as a group reaches this process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        # files, not pipes: the daemon wg-quick leaves running keeps them open
        start = time.perf_counter()
        process = subprocess.Popen(["ip", "netns", "exec", ns.name, *argv], stdout=out,
                                   stderr=err, env=env, start_new_session=True)
        try:
            returncode = wait_exact(process, timeout)
        except subprocess.TimeoutExpired as exc:
            # the whole session: wg-quick's `ip` children too (its daemon runs on until the
            # caller deletes the interface)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise TimedOut(f"{' '.join(argv[:4])}: timed out after {timeout:.0f} s") from exc
        elapsed = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if returncode != 0:
        detail = (stderr or stdout).strip().splitlines()
        raise BenchError(f"{' '.join(argv[:4])}: exit {returncode}: "
                         f"{detail[-1] if detail else 'no output'}")
    return elapsed, stdout


def wait_exact(process: subprocess.Popen, timeout: float) -> int:
    """process.wait(timeout), woken the moment the process ends: Popen.wait with a timeout
    polls, sleeping up to 50 ms between looks, which put every time measured on a 50 ms grid
    (a 36 ms `wg show` read 65 ms). A pidfd is readable once the process has ended."""
    pidfd = os.pidfd_open(process.pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not ready:
        raise subprocess.TimeoutExpired(process.args, timeout)
    return process.wait()


def uapi_round_trip(ns_name: str, iface: str, request: bytes, timeout: float) -> float:
    """Seconds from sending one UAPI request to the end of its reply (the daemon's time),
    over the interface's socket (a file in the shared /var/run/wireguard)."""
    path = os.path.join("/var/run/wireguard", f"{iface}.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(path)
        start = time.perf_counter()
        client.sendall(request)
        tail = b""
        while True:
            chunk = client.recv(1 << 20)
            if not chunk:
                raise BenchError(f"{ns_name}: {iface} closed the UAPI connection")
            if b"\n\n" in tail + chunk:
                elapsed = time.perf_counter() - start
                if request.startswith(b"set") and b"errno=0\n" not in tail + chunk:
                    raise BenchError(f"{iface}: set refused: {(tail + chunk)[-40:]!r}")
                return elapsed
            tail = chunk[-16:]


def one_peer_request(index: int) -> bytes:
    key = os.urandom(32).hex()
    return (f"set=1\npublic_key={key}\nendpoint=198.19.{index >> 8 & 255}.{index & 255}:51820"
            f"\nreplace_allowed_ips=true\nallowed_ip=172.{16 + (index >> 16 & 15)}."
            f"{index >> 8 & 255}.{index & 255}/32\n\n").encode()


def median(values: list[float]) -> float:
    return statistics.median(values)


def edited(hub: str, path: str, every: int = 100) -> str:
    """The hub file with the endpoint port of every `every`-th peer (from the second, whose
    endpoint is IPv4) moved: what a reload applies. Returns the first moved peer's
    `PUBLIC_KEY<tab>ENDPOINT` line as `wg show IFACE endpoints` prints it after the reload."""
    with open(hub) as source:
        lines = source.read().splitlines()
    count, key, moved = 0, "", ""
    for index, line in enumerate(lines):
        if line.startswith("PublicKey = "):
            key = line.split(" = ", 1)[1]
        elif line.startswith("Endpoint = "):
            if count % every == 1:
                host, _, port = line.rpartition(":")
                lines[index] = f"{host}:{int(port) + 1}"
                moved = moved or f"{key}\t{lines[index].split(' = ', 1)[1]}"
            count += 1
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return moved


def measure_quick(namespaces: dict[str, Namespace], files: str, tag: str, peers: int,
                  kinds: list[str], timeout: float) -> dict:
    """quick up, reload, save and down for each tool, each in its own namespace. A step that
    times out is recorded as `<path> timed out` (its limit in seconds), not as a time, and
    the interface is deleted (which stops its daemon)."""
    results: dict[str, dict[str, float]] = {}
    for kind in kinds:
        impl, suffix = ("wgpyd", "w") if kind == "wgpy" else ("wireguard-go", "g")
        iface = f"wb{tag}q{suffix}"
        hub = os.path.join(files, f"{iface}.conf")
        hub_file(hub, peers, 51911 if kind == "wgpy" else 51912)
        os.makedirs(os.path.join(files, "reload"), exist_ok=True)
        reload_file = os.path.join(files, "reload", f"{iface}.conf")  # named as the interface
        moved = edited(hub, reload_file)
        quick = [*WGPY_QUICK] if kind == "wgpy" else ["wg-quick"]
        tool = [*WGPY] if kind == "wgpy" else ["wg"]
        # wg-quick(8)'s reload: `wg syncconf IFACE <(wg-quick strip FILE)`
        reload_argv = ["bash", "-c", f"{shlex.join(tool)} syncconf {iface} "
                                     f"<({shlex.join(quick)} strip {reload_file})"]
        env = dict(os.environ, WG_QUICK_USERSPACE_IMPLEMENTATION=impl, LOG_LEVEL="error")
        ns = namespaces[kind]
        times: dict[str, float] = {}
        steps = [("quick up", [*quick, "up", hub]), ("quick reload", reload_argv),
                 ("quick save", [*quick, "save", hub]), ("quick down", [*quick, "down", hub])]
        try:
            for path, argv in steps:
                try:
                    times[path], _ = timed(ns, argv, timeout, env)
                except TimedOut:
                    times[f"{path} timed out"] = timeout
                    print(f"{peers} peers: {kind} {path} timed out after {timeout:.0f} s",
                          file=sys.stderr, flush=True)
                    break
                if path != "quick down":
                    endpoints = ns.run("wg", "show", iface, "endpoints", timeout=timeout).stdout
                    shown = endpoints.count("\n")
                    if shown != peers:
                        raise BenchError(f"{kind} {path}: {shown} peers, expected {peers}")
                    if path == "quick reload" and moved not in endpoints:
                        raise BenchError(f"{kind} {path}: an endpoint was not moved")
        finally:
            if "quick down" not in times:
                ns.run("ip", "link", "del", iface, check=False)
        results[kind] = times
    return results


def measure_daemons(namespaces: dict[str, Namespace], files: str, tag: str, peers: int,
                    kinds: list[str], repeat: int, timeout: float) -> dict:
    """Daemon paths on wireguard-go and wgpyd, tool paths (wg vs wgpy) on wgpyd."""
    results: dict[str, dict[str, float]] = {kind: {} for kind in kinds}
    hub = os.path.join(files, "hub.conf")
    config = os.path.join(files, "wg.conf")
    hub_file(hub, peers, 51913)
    stripped(hub, config)
    daemons = {"wgpy": "wgpyd", "reference": "wireguard-go"}
    with contextlib.ExitStack() as stack:
        running = {}
        for kind in kinds:
            iface = f"wb{tag}d{'w' if kind == 'wgpy' else 'g'}"
            running[kind] = (iface, stack.enter_context(
                daemon(namespaces[kind], daemons[kind], iface)))
        for kind, (iface, proc) in running.items():
            ns = namespaces[kind]
            idle = status_kib(proc.pid, "VmRSS")
            before = cpu_seconds(proc.pid)
            seconds, _ = timed(ns, ["wg", "setconf", iface, config], timeout)
            results[kind]["daemon setconf"] = seconds
            results[kind]["daemon setconf cpu"] = cpu_seconds(proc.pid) - before
            rss = status_kib(proc.pid, "VmRSS")
            results[kind]["rss idle MiB"] = idle / 1024
            results[kind]["rss MiB"] = rss / 1024
            results[kind]["peak rss MiB"] = status_kib(proc.pid, "VmHWM") / 1024
            results[kind]["KiB per peer"] = (rss - idle) / peers
            # the first get after the setconf: wgpyd has no text of the peers kept yet
            results[kind]["daemon first get"] = uapi_round_trip(ns.name, iface, b"get=1\n\n",
                                                                timeout)
            shown = ns.run("wg", "show", iface, "peers", timeout=timeout).stdout.count("\n")
            if shown != peers:
                raise BenchError(f"{daemons[kind]}: {shown} peers after setconf, not {peers}")
            results[kind]["daemon get"] = median(
                [uapi_round_trip(ns.name, iface, b"get=1\n\n", timeout) for _ in range(repeat)])
            results[kind]["rss after gets MiB"] = status_kib(proc.pid, "VmRSS") / 1024
            results[kind]["daemon set one peer"] = median(
                [uapi_round_trip(ns.name, iface, one_peer_request(i), timeout)
                 for i in range(repeat)])
        if "wgpy" in running:
            iface, _ = running["wgpy"]
            results.update(measure_tools(namespaces["wgpy"], iface, config, kinds, repeat,
                                         timeout, results))
    return results


def measure_tools_only(ns: Namespace, files: str, tag: str, peers: int, repeat: int,
                       timeout: float) -> dict:
    """The tool paths alone (--only tools): wgpy against wg on one wgpyd device, after the
    gets that keep its peers' text (as measure_daemons leaves it)."""
    hub = os.path.join(files, "hub.conf")
    config = os.path.join(files, "wg.conf")
    hub_file(hub, peers, 51913)
    stripped(hub, config)
    iface = f"wb{tag}t"
    with daemon(ns, "wgpyd", iface):
        timed(ns, ["wg", "setconf", iface, config], timeout)
        uapi_round_trip(ns.name, iface, b"get=1\n\n", timeout)
        kinds = ["wgpy", "reference"]
        return measure_tools(ns, iface, config, kinds, repeat, timeout,
                             {kind: {} for kind in kinds})


def installed_env(cache: str) -> dict[str, str]:
    """The environment for timing `wgpy` as installed: its bytecode compiled once, into
    `cache` (pip compiles it at install), not again at every run as PYTHONDONTWRITEBYTECODE
    (set in some shells) would have it: that is 10 ms of each run no user pays."""
    env = {key: value for key, value in os.environ.items()
           if key != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPYCACHEPREFIX=cache, WG_HIDE_KEYS="never")
    package = os.path.dirname(importlib.util.find_spec("wgpy").origin or "")
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return env


def measure_tools(ns: Namespace, iface: str, config: str, kinds: list[str], repeat: int,
                  timeout: float, results: dict) -> dict:
    """wgpy and wg, alternating, on the same wgpyd device; outputs must be identical."""
    if WGPY != DEFAULT_WGPY:  # installed elsewhere (--wgpy), compiled by its own install
        env = {key: value for key, value in os.environ.items()
               if key not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
        return _measure_tools(ns, iface, config, kinds, repeat, timeout, results,
                              {**env, "WG_HIDE_KEYS": "never"})
    cache = tempfile.mkdtemp(prefix="wgpyb-pyc-")
    try:
        return _measure_tools(ns, iface, config, kinds, repeat, timeout, results,
                              installed_env(cache))
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _measure_tools(ns: Namespace, iface: str, config: str, kinds: list[str], repeat: int,
                   timeout: float, results: dict, env: dict[str, str]) -> dict:
    for label, words in TOOL_PATHS.items():
        args = [word.format(iface=iface, file=config) for word in words]
        samples: dict[str, list[float]] = {kind: [] for kind in kinds}
        outputs: dict[str, str] = {}
        for round_index in range(repeat):
            for kind in kinds if round_index % 2 == 0 else kinds[::-1]:
                argv = [*(WGPY if kind == "wgpy" else ["wg"]), *args]
                seconds, outputs[kind] = timed(ns, argv, timeout, env=env)
                samples[kind].append(seconds)
        if len(set(outputs.values())) > 1:
            raise BenchError(f"`{label}`: wgpy's output differs from wg's")
        for kind in kinds:
            results[kind][label] = median(samples[kind])
    # the device's peers now (syncconf, the last tool path, removed any the file has not)
    peers = ns.run("wg", "show", iface, "peers", timeout=timeout).stdout.count("\n")
    results["wgpy"].update(measure_wgpy_only(ns, iface, config, peers, repeat, timeout, env))
    if "reference" in results:  # each against `wgpy show dump`
        results["reference"].update(dict.fromkeys(WGPY_ONLY_PATHS,
                                                  results["wgpy"]["show dump"]))
    return results


# GETs each path of a `wgpy serve` ARGV[1] times; prints the seconds of each and the peers
# its last answer lists (run in the server's namespace)
_SERVE_CLIENT = """
import json, sys, time, urllib.request
url, repeat = sys.argv[1], int(sys.argv[2])
result = {}
for path in ("json", "metrics"):
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        with urllib.request.urlopen(url + path, timeout=600) as response:
            body = response.read()
        seconds.append(time.perf_counter() - start)
    peers = (len(json.loads(body)["interfaces"][0]["peers"]) if path == "json"
             else body.count(b"\\nwireguard_sent_bytes_total{"))
    result[path] = {"seconds": seconds, "peers": peers}
print(json.dumps(result))
"""


def measure_wgpy_only(ns: Namespace, iface: str, config: str, peers: int, repeat: int,
                      timeout: float, env: dict[str, str]) -> dict[str, float]:
    """show --json (also given the device's file, whose AllowedIPs its `path` routes by),
    and GETs of /json and /metrics from `wgpy serve` (module docstring); each answer must
    list the device's `peers`."""
    times = {}
    for path, extra in (("show --json", []), ("show --json --config", ["--config", config])):
        samples = []
        for _ in range(repeat):
            seconds, output = timed(ns, [*WGPY, "show", iface, "--json", *extra], timeout,
                                    env=env)
            samples.append(seconds)
        if len(json.loads(output)["interfaces"][0]["peers"]) != peers:
            raise BenchError(f"`wgpy {path}`: not {peers} peers")
        times[path] = median(samples)
    server = ns.popen(*WGPY, "serve", "--listen", "127.0.0.1:0", iface, env=env,
                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        match = re.search(r"http://\S+/", server.stderr.readline())
        if match is None:
            raise BenchError("wgpy serve: no address printed")
        answer = json.loads(ns.run(sys.executable, "-c", _SERVE_CLIENT, match.group(0),
                                   str(repeat), timeout=timeout, env=env).stdout)
    finally:
        server.terminate()
        server.wait()
    for path, entry in answer.items():
        if entry["peers"] != peers:
            raise BenchError(f"wgpy serve /{path}: {entry['peers']} peers, not {peers}")
        times[f"serve /{path}"] = median(entry["seconds"])
    return times


def ping_during_get(peers: int, gets: int, timeout: float) -> dict[str, dict[str, float]]:
    """Does a big `get` hold up packets? For each hub daemon (wgpyd, wireguard-go): a tunnel
    to a wgpyd in another namespace, the hub's peers added to the hub (`wg addconf`, without
    keepalives, so nothing else is sent), then pings through the tunnel every 10 ms, alone
    and while `gets` raw UAPI gets run one after the other (0.2 s apart); the first get is
    the first since the peers were added. RTTs in ms: median, 99th percentile, maximum."""
    results: dict[str, dict[str, float]] = {}
    for hub in ("wgpyd", "wireguard-go"):
        with Testbed(tag=f"g{os.getpid() % 100000}") as bed, \
                tempfile.TemporaryDirectory() as files:
            hub_conf, peers_conf = os.path.join(files, "hub.conf"), os.path.join(files, "p.conf")
            hub_file(hub_conf, peers, 1)
            with open(hub_conf) as source:
                sections = source.read().split("\n\n", 1)[1]
            with open(os.open(peers_conf, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
                handle.writelines(line + "\n" for line in sections.splitlines()
                                  if not line.startswith("PersistentKeepalive"))
            with bed.tunnel(hub, "wgpyd"):
                iface = bed.ifaces[0]
                bed.a.run("wg", "addconf", iface, peers_conf, timeout=timeout)
                bed.b.run("ping", "-c", "3", "-W", "5", TUNNEL[0], timeout=30)
                count = 100 + gets * 40
                alone = ping_rtts(bed.b, TUNNEL[0], 100, 0.01)
                ping = bed.b.popen("ping", "-n", "-D", "-c", str(count), "-i", "0.01",
                                   TUNNEL[0], stdout=subprocess.PIPE, text=True)
                try:
                    time.sleep(0.2)
                    windows = []  # wall-clock span of each get
                    for _ in range(gets):
                        start = time.time()
                        uapi_round_trip(bed.a.name, iface, b"get=1\n\n", timeout)
                        windows.append((start, time.time()))
                        time.sleep(0.2)
                    output = ping.communicate(timeout=count * 0.02 + 30)[0]
                finally:
                    if ping.poll() is None:
                        ping.kill()
                        ping.wait()
            # a ping is held up by a get if it was sent (reply time - RTT) during one
            replies = [(float(stamp) - float(rtt) / 1000, float(rtt))
                       for stamp, rtt in _STAMPED_RTT.findall(output)]
            held = [[rtt for sent, rtt in replies if start <= sent <= end]
                    for start, end in windows]
            results[hub] = {"gets s": [end - start for start, end in windows],
                            **rtt_summary("alone", alone),
                            **rtt_summary("during all", [rtt for _, rtt in replies]),
                            **rtt_summary("during the first get", held[0]),
                            **rtt_summary("during later gets",
                                          [rtt for window in held[1:] for rtt in window])}
    return results


_STAMPED_RTT = re.compile(r"^\[([0-9.]+)\].*?" + RTT.pattern, re.MULTILINE)


def set_request(hub_conf: str, remove: bool = False) -> bytes:
    """A raw UAPI `set=1` of the hub file's peers, as `wg addconf` sends them (without their
    keepalives, so nothing is sent to them), or (`remove`) one removing them all. No
    replace_peers: the peer being pinged stays."""
    lines = ["set=1"]
    with open(hub_conf) as source:
        for line in source.read().split("\n\n", 1)[1].splitlines():
            key, _, value = line.partition(" = ")
            if key == "PublicKey":
                lines.append(f"public_key={base64.b64decode(value).hex()}")
                if remove:
                    lines.append("remove=true")
            elif remove:
                continue
            elif key == "Endpoint":
                lines.append(f"endpoint={value}")
            elif key == "AllowedIPs":
                lines += ["replace_allowed_ips=true",
                          *(f"allowed_ip={prefix}" for prefix in value.split(", "))]
    return ("\n".join(lines) + "\n\n").encode()


def ping_during_set(peers: int, timeout: float) -> dict[str, dict[str, float]]:
    """Does a big `set` hold up packets? For each hub daemon (wgpyd, wireguard-go): a tunnel
    to a wgpyd in another namespace, pinged through every 10 ms; after 1 s alone, one raw
    UAPI set adding the hub file's `peers` peers (set_request), and 1 s after it one
    removing them. For the pings sent during each set: RTTs in ms (median, 99th
    percentile, maximum) and the pings never answered."""
    results: dict[str, dict[str, float]] = {}
    for hub in ("wgpyd", "wireguard-go"):
        with Testbed(tag=f"t{os.getpid() % 100000}") as bed, \
                tempfile.TemporaryDirectory() as files:
            hub_conf = os.path.join(files, "hub.conf")
            hub_file(hub_conf, peers, 1)
            sets = {"add": set_request(hub_conf), "remove": set_request(hub_conf, remove=True)}
            with bed.tunnel(hub, "wgpyd"):
                iface = bed.ifaces[0]
                bed.b.run("ping", "-c", "3", "-W", "5", TUNNEL[0], timeout=30)
                ping = bed.b.popen("ping", "-n", "-D", "-i", "0.01", TUNNEL[0],
                                   stdout=subprocess.PIPE, text=True)
                try:
                    time.sleep(1)
                    windows = {}  # wall-clock span of each set
                    for label, request in sets.items():
                        start = time.time()
                        uapi_round_trip(bed.a.name, iface, request, timeout)
                        windows[label] = (start, time.time())
                        time.sleep(1)
                    ping.send_signal(signal.SIGINT)  # ping prints its last lines and ends
                    output = ping.communicate(timeout=30)[0]
                finally:
                    if ping.poll() is None:
                        ping.kill()
                        ping.wait()
                shown = bed.a.run("wg", "show", iface, "peers", timeout=timeout).stdout
                if shown.count("\n") != 1:
                    raise BenchError(f"{hub}: {shown.count(chr(10))} peers after the sets")
            sent = sent_pings(output)
            entry: dict[str, float] = {}
            for label, (start, end) in windows.items():
                during = [rtt for stamp, rtt in sent if start <= stamp <= end]
                answered = [rtt for rtt in during if rtt is not None]
                entry[f"{label} set s"] = end - start
                entry[f"{label} lost"] = len(during) - len(answered)
                entry.update(rtt_summary(f"during the {label} set", answered) if answered else
                             {f"during the {label} set {stat}": math.nan
                              for stat in ("median ms", "p99 ms", "max ms")}
                             | {f"during the {label} set replies": 0})
            entry.update(rtt_summary("alone", [rtt for stamp, rtt in sent
                                               if rtt is not None
                                               and stamp < windows["add"][0]]))
            results[hub] = entry
    return results


_STAMPED_SEQ_RTT = re.compile(r"^\[([0-9.]+)\].*?icmp_seq=([0-9]+) .*?" + RTT.pattern,
                              re.MULTILINE)


def sent_pings(output: str) -> list[tuple[float, float | None]]:
    """(Unix time sent, RTT in ms or None if never answered) of every ping in the output of
    `ping -D -i 0.01`, by sequence number: an answered one was sent its RTT before the
    answer's time stamp, one never answered between its answered neighbours."""
    answered = {int(seq): (float(stamp) - float(rtt) / 1000, float(rtt))
                for stamp, seq, rtt in _STAMPED_SEQ_RTT.findall(output)}
    if not answered:
        raise BenchError("ping through the tunnel: no replies")
    known = sorted(answered)
    pings: list[tuple[float, float | None]] = []
    for seq in range(known[0], known[-1] + 1):
        if seq in answered:
            pings.append(answered[seq])
            continue
        before = max(n for n in known if n < seq)
        after = min(n for n in known if n > seq)
        share = (seq - before) / (after - before)
        pings.append((answered[before][0] + share * (answered[after][0]
                                                     - answered[before][0]), None))
    return pings


def rtt_summary(label: str, rtts: list[float]) -> dict[str, float]:
    if not rtts:
        raise BenchError(f"ping {label}: no replies (a get shorter than 10 ms?)")
    ordered = sorted(rtts)
    return {f"{label} median ms": statistics.median(ordered),
            f"{label} p99 ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            f"{label} max ms": ordered[-1], f"{label} replies": len(ordered)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/scale.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=lambda t: [int(n) for n in t.split(",")],
                        default=list(SIZES), help="comma-separated sizes (1000,10000,50000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timed path (median)")
    parser.add_argument("--only", choices=("quick", "daemon", "tools"),
                        help="only the quick paths, only the daemon and tool paths, or only "
                             "the tool paths (wgpy against wg on one wgpyd)")
    parser.add_argument("--wg-quick-max", type=int, default=50_000,
                        help="largest size to run wg-quick at (it forks `ip` per prefix)")
    parser.add_argument("--quick-timeout", type=float, default=900,
                        help="per quick step; one that takes longer is recorded as timed out")
    parser.add_argument("--timeout", type=float, default=1800, help="per other command")
    parser.add_argument("--smoke", action="store_true",
                        help="wgpy only, 500 and 2000 peers, check linear growth (CI)")
    parser.add_argument("--ping-during-get", type=int, metavar="PEERS",
                        help="measure only this: ping RTT through a tunnel while a hub "
                             "daemon with PEERS peers answers 5 gets (wgpyd, wireguard-go)")
    parser.add_argument("--ping-during-set", type=int, metavar="PEERS",
                        help="measure only this: ping RTT and losses through a tunnel while "
                             "a hub daemon applies a set adding PEERS peers, then one "
                             "removing them (wgpyd, wireguard-go)")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="measure nothing: the table (and --chart) of earlier runs' JSON "
                             "files together (e.g. one run per size)")
    parser.add_argument("--chart", help="PNG of time against peers (needs matplotlib)")
    parser.add_argument("--wgpy", metavar="PATH",
                        help="the wgpy command timed on the tool paths (default: this "
                             "Python's console script), e.g. one installed in a venv")
    parser.add_argument("--out", default=machine.RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.wgpy:
        global WGPY
        WGPY = [os.path.abspath(args.wgpy)]
    if args.merge:
        return report(merged(args.merge), args)
    if args.smoke:
        args.peers, args.repeat = list(SMOKE_SIZES), 3
    if os.geteuid() != 0:
        print("bench/scale.py: needs root (network namespaces, TUN)", file=sys.stderr)
        return 2

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    if args.ping_during_get:
        return reporting_failures(lambda: report_ping(args))
    if args.ping_during_set:
        return reporting_failures(lambda: report_ping_during_set(args))
    return reporting_failures(lambda: report(measured(args), args))


def reporting_failures(work: Callable[[], int]) -> int:
    """`work`'s exit status; an interruption or a failed step ends the run with one line (the
    namespaces and daemons are gone by then: their context managers clean up)."""
    try:
        return work()
    except KeyboardInterrupt:
        print("bench/scale.py: interrupted; cleaned up", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench/scale.py: {exc}", file=sys.stderr)
        return 1


def measured(args: argparse.Namespace) -> dict[int, dict[str, dict[str, float]]]:
    """Times by size, path and implementation, for the sizes and parts `args` name."""
    tag = str(os.getpid())
    table: dict[int, dict[str, dict[str, float]]] = {}
    with contextlib.ExitStack() as stack:
        # no routes out: with endpoints routable, wireguard-go 0.0.20220316 never answers
        # a `wg setconf` of this file (seen at 1,000 and 10,000 peers)
        namespaces = {"wgpy": stack.enter_context(Namespace(f"wgpyb-s{tag}w"))}
        if not args.smoke:
            namespaces["reference"] = stack.enter_context(Namespace(f"wgpyb-s{tag}g"))
        for peers in args.peers:
            kinds = list(namespaces)
            entry: dict[str, dict[str, float]] = {kind: {} for kind in kinds}
            with tempfile.TemporaryDirectory() as files:
                if args.only == "tools":
                    entry = measure_tools_only(namespaces["wgpy"], files, tag, peers,
                                               args.repeat, args.timeout)
                elif args.only != "quick":
                    entry = measure_daemons(namespaces, files, tag, peers, kinds,
                                            args.repeat, args.timeout)
                if args.only not in ("daemon", "tools"):
                    quick_kinds = [k for k in kinds
                                   if k == "wgpy" or peers <= args.wg_quick_max]
                    for kind, times in measure_quick(namespaces, files, tag, peers,
                                                     quick_kinds,
                                                     args.quick_timeout).items():
                        entry[kind].update(times)
            table[peers] = entry
            print(f"{peers} peers: " + json.dumps(entry), file=sys.stderr, flush=True)
    return table


def report_ping(args: argparse.Namespace) -> int:
    results = ping_during_get(args.ping_during_get, 5, args.timeout)
    labels = ("alone", "during the first get", "during later gets", "during all")
    print(f"| hub daemon, {args.ping_during_get} peers | gets s | "
          + " | ".join(f"ping {label}: median / p99 / max ms" for label in labels)
          + " |\n" + "|---" * (len(labels) + 2) + "|")
    for hub, entry in results.items():
        print(f"| {hub} | {', '.join(f'{s:.3f}' for s in entry['gets s'])} | " + " | ".join(
            " / ".join(f"{entry[f'{label} {stat} ms']:.2f}" for stat in ("median", "p99", "max"))
            for label in labels) + " |")
    stamp = machine.timestamp()
    data = {"meta": {"timestamp": stamp, "machine": machine.describe(),
                     "settings": {"ping_during_get": args.ping_during_get, "gets": 5}},
            "ping_during_get": results}
    print(f"\nJSON: {machine.write_json(data, args.out, f'scale-ping-{stamp}.json')}")
    return 0


def report_ping_during_set(args: argparse.Namespace) -> int:
    peers = args.ping_during_set
    results = ping_during_set(peers, args.timeout)
    print(f"| hub daemon, set of {peers} peers | set s | ping alone: median / p99 / max ms"
          " | during the set: median / p99 / max ms | lost |\n|---|---|---|---|---|")
    for hub, entry in results.items():
        for label in ("add", "remove"):
            summary = " / ".join(f"{entry[f'during the {label} set {stat} ms']:.2f}"
                                 for stat in ("median", "p99", "max"))
            alone = " / ".join(f"{entry[f'alone {stat} ms']:.2f}"
                               for stat in ("median", "p99", "max"))
            lost = entry[f"{label} lost"]
            sent = entry[f"during the {label} set replies"] + lost
            print(f"| {hub}, {label} | {entry[f'{label} set s']:.2f} | {alone} | {summary} | "
                  f"{lost:.0f} of {sent:.0f} |")
    stamp = machine.timestamp()
    data = {"meta": {"timestamp": stamp, "machine": machine.describe(),
                     "settings": {"ping_during_set": peers}},
            "ping_during_set": results}
    print(f"\nJSON: {machine.write_json(data, args.out, f'scale-ping-set-{stamp}.json')}")
    return 0


def merged(paths: list[str]) -> dict[int, dict[str, dict[str, float]]]:
    """The times of earlier runs, by size; a later file's figures win for the same size."""
    table: dict[int, dict[str, dict[str, float]]] = {}
    for path in paths:
        with open(path) as handle:
            for size, entry in json.load(handle)["times"].items():
                for kind, times in entry.items():
                    table.setdefault(int(size), {}).setdefault(kind, {}).update(times)
    return table


REFERENCE_NAME = {**dict.fromkeys(WGPY_ONLY_PATHS, "wgpy show dump"),
                  "quick up": "wg-quick + wireguard-go", "quick down": "wg-quick",
                  "quick reload": "wg syncconf <(wg-quick strip)", "quick save": "wg-quick",
                  "daemon setconf": "wireguard-go", "daemon first get": "wireguard-go",
                  "daemon get": "wireguard-go", "daemon set one peer": "wireguard-go"}
MEMORY = (("rss idle MiB", "RSS idle MiB"), ("rss MiB", "RSS MiB"),
          ("peak rss MiB", "peak RSS MiB"), ("KiB per peer", "KiB per peer"),
          ("rss after gets MiB", "RSS after gets MiB"))


def cell(times: dict[str, float], path: str) -> str:
    if path in times:
        return f"{times[path]:.3g}"
    if f"{path} timed out" in times:
        return f"> {times[f'{path} timed out']:.0f} (timed out)"
    return "-"


def report(table: dict[int, dict[str, dict[str, float]]], args: argparse.Namespace) -> int:
    sizes = sorted(table)
    print("| path | reference | " + " | ".join(f"{n} peers: wgpy s / ref s (ratio)"
                                               for n in sizes) + " |")
    print("|---" * (len(sizes) + 2) + "|")
    for path in PATHS:
        cells = []
        for n in sizes:
            ours = table[n].get("wgpy", {})
            ref = table[n].get("reference", {})
            text = cell(ours, path)
            if ref and cell(ref, path) != "-":
                text += f" / {cell(ref, path)}"
                if path in ours and path in ref:
                    text += f" ({ours[path] / ref[path]:.2f}x)"
            cells.append(text)
        print(f"| {path} | {REFERENCE_NAME.get(path, 'wg')} | " + " | ".join(cells) + " |")
    print("\n| daemon after setconf | " + " | ".join(
        f"{n} peers: {' / '.join(label for _, label in MEMORY)}" for n in sizes) + " |")
    print("|---" * (len(sizes) + 1) + "|")
    for kind in ("wgpy", "reference"):
        cells = [" / ".join(f"{table[n][kind][key]:.3g}" if key in table[n][kind] else "-"
                            for key, _ in MEMORY)
                 for n in sizes if "rss MiB" in table[n].get(kind, {})]
        if cells:
            print(f"| {'wgpyd' if kind == 'wgpy' else 'wireguard-go'} | "
                  + " | ".join(cells) + " |")
    status = 0
    growth = {}
    for small, large in itertools.pairwise(sizes):
        for path in PATHS:
            before = table[small].get("wgpy", {}).get(path)
            after = table[large].get("wgpy", {}).get(path)
            if before and after:
                growth[f"{path} {small}->{large}"] = after / before
                if args.smoke and after / before > LINEAR_LIMIT * (large / small) / 4:
                    print(f"not linear: {path} took {after / before:.1f}x the time at "
                          f"{large / small:.0f}x the peers", file=sys.stderr)
                    status = 1
            elif args.smoke:
                print(f"not measured: {path} at {small} or {large} peers", file=sys.stderr)
                status = 1
    stamp = machine.timestamp()
    data = {"meta": {"timestamp": stamp, "machine": machine.describe(),
                     "settings": {"peers": sizes, "repeat": args.repeat, "only": args.only,
                                  "smoke": args.smoke, "wg_quick_max": args.wg_quick_max,
                                  "quick_timeout": args.quick_timeout,
                                  "merged": args.merge}},
            "times": {str(n): table[n] for n in sizes}, "growth": growth}
    print(f"\nJSON: {machine.write_json(data, args.out, f'scale-{stamp}.json')}")
    if args.chart:
        chart(table, sizes, args.chart)
    return status


def chart(table: dict, sizes: list[int], output: str) -> None:
    """One log-log panel per path: seconds against peers, wgpy and its reference."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench/scale.py: matplotlib not installed; no chart", file=sys.stderr)
        return
    # the paths measured (an --only run charts its own)
    paths = [path for path in PATHS
             if any(path in times or f"{path} timed out" in times
                    for n in sizes for times in table[n].values())]
    columns = min(4, len(paths)) or 1
    rows = -(-len(paths) // columns) or 1
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.4 * rows),
                                squeeze=False)
    for ax, path in zip(axes.flat, paths, strict=False):
        for kind, label, style in (("wgpy", "wgpy", "o-"),
                                   ("reference", REFERENCE_NAME.get(path, "wg"), "s--")):
            points = [(n, table[n][kind][path]) for n in sizes
                      if path in table[n].get(kind, {})]
            if points:
                ax.plot(*zip(*points, strict=True), style, label=label)
            limits = [(n, table[n][kind][f"{path} timed out"]) for n in sizes
                      if f"{path} timed out" in table[n].get(kind, {})]
            if limits:  # a lower bound: the step was stopped there
                ax.plot(*zip(*limits, strict=True), "^", color="grey",
                        label=f"{label}: timed out")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(path)
        ax.set_xlabel("peers")
        ax.set_ylabel("seconds")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(paths):]:
        ax.axis("off")
    figure.tight_layout()
    figure.savefig(output, dpi=80)
    print(f"chart: {output}")


if __name__ == "__main__":
    sys.exit(main())

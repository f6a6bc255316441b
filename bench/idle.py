#!/usr/bin/env python3
"""`python3 bench/idle.py` (root): what a quiet interface costs, wgpyd vs wireguard-go.

A VPN is up all day and idle most of it, so its daemon should sleep. For each scenario and
each daemon (fresh, in namespace A; the daemons alternate in a rotated order) this counts
the daemon's wakeups (context switches of all its threads, voluntary and not, from
/proc/PID/task/*/status) and its CPU time (/proc/PID/stat) over `--seconds`:

* `no peers`: a private key, a listen port, the link up with an address;
* `one peer, no traffic`: plus one peer (wireguard-go in namespace B) that nothing is sent to;
* `N peers, keepalive 25`: N peers with persistent keepalive 25 s, each a real peer that
  completed its handshake (bench/peer_farm.py in B: N keys on N ports), measured once every
  handshake is done; the protocol's own timers then send N/25 keepalives a second;
* `trickle (ping 1/s)`: the one peer of the second scenario, pinged once a second through the
  tunnel: wgpyd keeps its packet path warm meanwhile (warm.py), which this prices;
* `trickle, WGPY_KEEP_WARM=0`: the same with keep-warm off (wireguard-go ignores the variable:
  its row is a second sample of the trickle).

Before each measurement the daemon settles for `--settle` seconds (longer than keep-warm's
3 s window, so the quiet scenarios measure it off). Hold /tmp/wgpy-bench.lock while running.
"""

import argparse
import base64
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import machine
from testbed import (
    BenchError,
    Namespace,
    Terminated,
    cpu_seconds,
    daemon,
    exit_status,
    genkey,
    raise_terminated_on_sigterm,
    stop_process,
    veth_pair,
)

from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key

KINDS = ("wireguard-go", "wgpyd")
UNDERLAY = ("10.204.0.1", "10.204.0.2")
TUNNEL = ("10.205.0.1", "10.205.0.2")
PORTS = (51911, 51912)
FARM_PORT = 52000
KEEPALIVE = 25
TRICKLE, TRICKLE_COLD = "trickle (ping 1/s)", "trickle, WGPY_KEEP_WARM=0"
SCENARIOS = ("no peers", "one peer, no traffic", "peers, keepalive 25", TRICKLE, TRICKLE_COLD)


def switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches so far, summed over the threads of `pid`:
    a voluntary one is a thread going to sleep (so, woken later), an involuntary one a
    thread preempted while it ran (other load on the CPU)."""
    voluntary = involuntary = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError), \
                open(f"/proc/{pid}/task/{task}/status") as status:
            for line in status:
                if line.startswith("voluntary_ctxt_switches:"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    involuntary += int(line.split()[1])
    return voluntary, involuntary


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


class Bench:
    """Namespaces A (the measured daemon) and B (its peers), and the keys of everything."""

    def __init__(self, stack: contextlib.ExitStack, tag: str, peers: int) -> None:
        self.tag = tag
        self.peers = peers
        self.a = stack.enter_context(Namespace(f"wgpyb-a{tag}"))
        self.b = stack.enter_context(Namespace(f"wgpyb-b{tag}"))
        veth_pair((self.a, f"wbv{tag}a", UNDERLAY[0]), (self.b, f"wbv{tag}b", UNDERLAY[1]))
        self.tmp = stack.enter_context(tempfile.TemporaryDirectory())
        self.key_a = genkey()
        self.key_a_file = self._secret("a.key", self.key_a[0] + "\n")
        key_b = genkey()
        self.public_b = key_b[1]
        self.iface_a, iface_b = f"wb{tag}a", f"wb{tag}b"
        stack.enter_context(daemon(self.b, "wireguard-go", iface_b))
        self.b.run("wg", "set", iface_b, "private-key", self._secret("b.key", key_b[0] + "\n"),
                   "listen-port", str(PORTS[1]), "peer", self.key_a[1],
                   "allowed-ips", f"{TUNNEL[0]}/32")
        self.b.run("ip", "addr", "add", f"{TUNNEL[1]}/24", "dev", iface_b)
        self.b.run("ip", "link", "set", iface_b, "up")
        farm_keys = [generate_private_key(os.urandom) for _ in range(peers)]
        self.farm_publics = [b64(public_key(key)) for key in farm_keys]
        keys_file = self._secret("farm.keys", "".join(b64(key) + "\n" for key in farm_keys))
        farm = self.b.popen(sys.executable, os.path.join(machine.BENCH_DIR, "peer_farm.py"),
                            keys_file, self.key_a[1], str(FARM_PORT),
                            stdout=subprocess.PIPE, text=True)
        stack.callback(stop_process, farm)
        assert farm.stdout is not None
        if farm.stdout.readline().strip() != "ready":
            raise BenchError("peer_farm.py did not start")

    def _secret(self, name: str, text: str) -> str:
        path = os.path.join(self.tmp, name)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(text)
        return path

    def config(self, scenario: str) -> str:
        """The wg(8) config of the measured interface in `scenario`."""
        lines = ["[Interface]", f"PrivateKey = {self.key_a[0]}", f"ListenPort = {PORTS[0]}"]
        if scenario in ("one peer, no traffic", TRICKLE, TRICKLE_COLD):
            lines += ["[Peer]", f"PublicKey = {self.public_b}", f"AllowedIPs = {TUNNEL[1]}/32",
                      f"Endpoint = {UNDERLAY[1]}:{PORTS[1]}"]
        elif scenario == "peers, keepalive 25":
            for i, key in enumerate(self.farm_publics):
                lines += ["[Peer]", f"PublicKey = {key}",
                          f"AllowedIPs = 10.206.{i >> 8}.{i & 255}/32",
                          f"Endpoint = {UNDERLAY[1]}:{FARM_PORT + i}",
                          f"PersistentKeepalive = {KEEPALIVE}"]
        return self._secret("a.conf", "\n".join(lines) + "\n")

    @contextlib.contextmanager
    def interface(self, kind: str, scenario: str) -> Iterator[int]:
        """`kind` serving A's interface, up and configured for `scenario`; yields its PID."""
        with daemon(self.a, kind, self.iface_a) as running:
            self.a.run("ip", "addr", "add", f"{TUNNEL[0]}/24", "dev", self.iface_a)
            self.a.run("ip", "link", "set", self.iface_a, "up")  # first: keepalives start
            self.a.run("wg", "setconf", self.iface_a, self.config(scenario), timeout=120)
            if scenario == "peers, keepalive 25":
                self._wait_for_handshakes()
            yield running.pid

    def sent_bytes(self) -> int:
        """What the measured interface sent to all its peers so far (`wg show transfer`): the
        two daemons did the same work when these match (a keepalive is 32 bytes)."""
        output = self.a.run("wg", "show", self.iface_a, "transfer").stdout
        return sum(int(line.split("\t")[2]) for line in output.splitlines() if line)

    def _wait_for_handshakes(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            output = self.a.run("wg", "show", self.iface_a, "latest-handshakes").stdout
            done = sum(1 for line in output.splitlines() if not line.endswith("\t0"))
            if done >= self.peers:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"{done} of {self.peers} handshakes after {timeout:.0f} s")
            time.sleep(0.5)


@contextlib.contextmanager
def keep_warm(value: str | None) -> Iterator[None]:
    """WGPY_KEEP_WARM for the daemons started inside the block (None: as it was)."""
    saved = os.environ.get("WGPY_KEEP_WARM")
    if value is not None:
        os.environ["WGPY_KEEP_WARM"] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("WGPY_KEEP_WARM", None)
        else:
            os.environ["WGPY_KEEP_WARM"] = saved


def measure(bench: Bench, kind: str, scenario: str, seconds: float, settle: float) -> dict:
    with keep_warm("0" if scenario == TRICKLE_COLD else None), \
            bench.interface(kind, scenario) as pid:
        ping = None
        if scenario in (TRICKLE, TRICKLE_COLD):
            ping = bench.a.popen("ping", "-q", "-i", "1", TUNNEL[1], stdout=subprocess.DEVNULL)
        try:
            time.sleep(settle)
            sent = bench.sent_bytes()  # (the `wg show` it takes falls outside the window)
            before, cpu, start = switches(pid), cpu_seconds(pid), time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - start
            after, cpu = switches(pid), cpu_seconds(pid) - cpu
            sent = bench.sent_bytes() - sent
        finally:
            if ping is not None:
                stop_process(ping)
        voluntary, involuntary = after[0] - before[0], after[1] - before[1]
        return {"wakeups_per_s": (voluntary + involuntary) / elapsed,
                "voluntary_per_s": voluntary / elapsed, "involuntary_per_s": involuntary / elapsed,
                "cpu_percent": 100 * cpu / elapsed, "sent_bytes_per_s": sent / elapsed,
                "threads": len(os.listdir(f"/proc/{pid}/task"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/idle.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured, per run")
    parser.add_argument("--settle", type=float, default=5.0, help="before measuring")
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--smoke", action="store_true",
                        help="2 s per run, 20 peers, 1 round (for CI)")
    parser.add_argument("--out", default=machine.RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.settle, args.peers, args.rounds = 2.0, 3.5, 20, 1
    if os.geteuid() != 0:
        print("bench/idle.py: needs root (network namespaces, TUN)", file=sys.stderr)
        return 2
    raise_terminated_on_sigterm()
    runs: list[dict] = []
    try:
        with contextlib.ExitStack() as stack:
            bench = Bench(stack, str(os.getpid()), args.peers)
            for round_index in range(args.rounds):
                for number, scenario in enumerate(SCENARIOS):
                    order = KINDS if (round_index + number) % 2 == 0 else KINDS[::-1]
                    for kind in order:
                        record = {"round": round_index + 1, "scenario": scenario, "daemon": kind}
                        try:
                            record |= {"status": "ok", **measure(
                                bench, kind, scenario, args.seconds, args.settle)}
                        except (BenchError, OSError) as exc:
                            record |= {"status": "failed", "reason": str(exc)}
                        runs.append(record)
                        print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in record.items()), file=sys.stderr, flush=True)
    except BenchError as exc:
        print(f"bench/idle.py: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as exc:
        print("bench/idle.py: interrupted; cleaned up", file=sys.stderr)
        return exit_status(exc)
    return report(runs, args)


def _label(scenario: str, peers: int) -> str:
    return f"{peers} peers, keepalive {KEEPALIVE}" if scenario == "peers, keepalive 25" \
        else scenario


def report(runs: list[dict], args: argparse.Namespace) -> int:
    summary: dict[str, dict[str, dict]] = {}
    for scenario in SCENARIOS:
        summary[scenario] = {}
        for kind in KINDS:
            ok = [r for r in runs if r["scenario"] == scenario and r["daemon"] == kind
                  and r["status"] == "ok"]
            summary[scenario][kind] = {
                key: sum(r[key] for r in ok) / len(ok) if ok else None
                for key in ("wakeups_per_s", "cpu_percent")}
    print(f"| {args.seconds:.0f} s each (mean of {args.rounds}) | wakeups/s wireguard-go | "
          "wakeups/s wgpyd | CPU % wireguard-go | CPU % wgpyd |")
    print("|---|---|---|---|---|")
    for scenario, by_kind in summary.items():
        go, py = by_kind["wireguard-go"], by_kind["wgpyd"]

        def cell(entry: dict, key: str, digits: int) -> str:
            return "failed" if entry[key] is None else f"{entry[key]:.{digits}f}"

        print(f"| {_label(scenario, args.peers)} | {cell(go, 'wakeups_per_s', 1)} | "
              f"{cell(py, 'wakeups_per_s', 1)} | {cell(go, 'cpu_percent', 2)} | "
              f"{cell(py, 'cpu_percent', 2)} |")
    stamp = machine.timestamp()
    data = {"meta": {"timestamp": stamp, "machine": machine.describe(),
                     "settings": {"seconds": args.seconds, "settle": args.settle,
                                  "peers": args.peers, "rounds": args.rounds,
                                  "smoke": args.smoke}},
            "runs": runs, "summary": summary}
    print(f"\nJSON: {machine.write_json(data, args.out, f'idle-{stamp}.json')}")
    return 0 if all(run["status"] == "ok" for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""`python3 bench/badnet.py` (root): tunnels over a bad network, wgpyd and wireguard-go.

This kernel has no sch_netem, so the bad network is built from parts. Namespaces A and B hold
the tunnel ends; between them, namespace M runs a userspace UDP relay (bench/netpath.py) that
both ends use as their peer's endpoint and that adds delay, jitter and reordering, and
nftables rules in M drop (`numgen random`), duplicate (`dup to`) or blackhole the tunnel's
datagrams:

    A: daemon ── veth ── M: nft input (loss, blackhole) → relay (delay ± jitter, reorder)
                            → nft output (dup) ── veth ── B: daemon

Per scenario and daemon (wgpyd ↔ wgpyd, then wireguard-go ↔ wireguard-go, same scenarios):
iperf3 TCP A → B (rate, retransmits, one-second intervals that moved nothing) while
sequence-numbered UDP probes go A → B through the tunnel; the receiver counts each sequence
number once and every repeat as a duplicate delivered. A WireGuard receiver must never deliver
a duplicate: a duplicated or replayed datagram has a counter it has seen, which wgpyd counts
as a `replayed` drop (`wgpy show IFACE --drops`, compared with nft's count of duplicates
sent). The blackhole scenario drops everything for `--blackhole` seconds under a steady probe
stream and measures how long after the path returns the probes flow again, with no action
from anyone. Hold /tmp/wgpy-bench.lock while it runs: it measures throughput.
"""

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import machine
from probes import IPERF_PORT, iperf3_server
from testbed import (
    BenchError,
    Namespace,
    Terminated,
    daemon,
    exit_status,
    genkey,
    raise_terminated_on_sigterm,
    stop_process,
    veth_pair,
)

NETPATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netpath.py")
A_UNDERLAY, M_A, M_B, B_UNDERLAY = "10.204.1.1", "10.204.1.2", "10.204.2.2", "10.204.2.1"
TUNNEL = ("10.205.0.1", "10.205.0.2")
DAEMON_PORTS = (51911, 51912)
RELAY_PORTS = (51920, 51921)  # M's socket facing A, facing B
PROBE_PORT = 9100
KINDS = ("wgpyd", "wireguard-go")


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    loss: int = 0  # percent of datagrams dropped, each direction
    dup: int = 0  # percent of datagrams sent twice, each direction
    delay: float = 0.0  # ms, one way
    jitter: float = 0.0  # ± ms
    reorder: float = 0.0  # percent held back `HOLD_MS` more
    blackhole: bool = False


HOLD_MS = 20.0
SCENARIOS = (
    Scenario("clean", "clean path"),
    Scenario("loss1", "1 % loss", loss=1),
    Scenario("loss5", "5 % loss", loss=5),
    Scenario("loss10", "10 % loss", loss=10),
    Scenario("dup", "10 % duplicated", dup=10),
    Scenario("delay", "150 ± 50 ms delay, 5 % reordered", delay=150, jitter=50, reorder=5),
    Scenario("combined", "10 % loss + 10 % dup + 150 ± 50 ms, 5 % reordered",
             loss=10, dup=10, delay=150, jitter=50, reorder=5),
    Scenario("blackhole", "blackhole, then the path returns", blackhole=True),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [s.name for s in SCENARIOS]
    parser = argparse.ArgumentParser(prog="bench/badnet.py", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="per scenario (TCP + probes)")
    parser.add_argument("--blackhole", type=float, default=30, help="seconds of blackhole")
    parser.add_argument("--only", type=lambda t: t.split(","), default=names,
                        help=f"comma-separated scenarios (default: {','.join(names)})")
    parser.add_argument("--daemons", type=lambda t: t.split(","), default=list(KINDS))
    parser.add_argument("--probe-rate", type=float, default=200, help="probes per second")
    parser.add_argument("--smoke", action="store_true",
                        help="wgpyd only: 10 %% loss + dup + reorder for 3 s, 4 s blackhole (CI)")
    parser.add_argument("--out", default=machine.RESULTS_DIR)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only) - set(names)) + sorted(set(args.daemons) - set(KINDS))
    if unknown:
        parser.error(f"unknown {', '.join(unknown)}")
    if args.smoke:
        args.only, args.daemons, args.seconds, args.blackhole = (
            ["combined", "blackhole"], ["wgpyd"], 3, 4)
    return args


# ---------------------------------------------------------------------- the lab


class Lab:
    """Namespaces A, M, B; veths A-M and M-B; nftables and the relay in M."""

    def __init__(self) -> None:
        tag = str(os.getpid())
        self.tag = tag
        self._stack = contextlib.ExitStack()
        self.a = Namespace(f"wgpyb-a{tag}")
        self.m = Namespace(f"wgpyb-m{tag}")
        self.b = Namespace(f"wgpyb-b{tag}")
        self.ifaces = (f"wb{tag}a", f"wb{tag}b")
        self.m_veths = (f"wbn{tag}ma", f"wbn{tag}mb")
        self.relay: subprocess.Popen | None = None

    def __enter__(self) -> "Lab":
        try:
            for ns in (self.a, self.m, self.b):
                self._stack.enter_context(ns)
            for ns, veth, address, m_veth, m_address in (
                    (self.a, f"wbn{self.tag}a", A_UNDERLAY, self.m_veths[0], M_A),
                    (self.b, f"wbn{self.tag}b", B_UNDERLAY, self.m_veths[1], M_B)):
                veth_pair((ns, veth, address), (self.m, m_veth, m_address))
                # One datagram per skb on the way into M, so that nftables drops or duplicates
                # datagrams, not whole UDP GSO batches (wgpyd sends those; a veth passes them
                # on unsegmented).
                ns.run("ip", "link", "set", veth, "gso_max_segs", "1")
            self._stack.callback(self.stop_relay)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def impair(self, scenario: Scenario, blackhole: bool = False) -> None:
        """nftables in M for this scenario (replacing any before it)."""
        ports = f"{{ {RELAY_PORTS[0]}, {RELAY_PORTS[1]} }}"
        rules = ["table ip wgpyb_badnet {",
                 "  chain input { type filter hook input priority 0; policy accept;"]
        if blackhole:
            rules.append(f'    udp dport {ports} counter drop comment "blackhole"')
        if scenario.loss:
            rules.append(f"    udp dport {ports} numgen random mod 100 < {scenario.loss} "
                         'counter drop comment "loss"')
        rules += ["  }", "  chain output { type filter hook output priority 0; policy accept;"]
        if scenario.dup:
            for target, port, veth in ((A_UNDERLAY, RELAY_PORTS[0], self.m_veths[0]),
                                       (B_UNDERLAY, RELAY_PORTS[1], self.m_veths[1])):
                rules.append(f"    ip daddr {target} udp sport {port} numgen random mod 100 < "
                             f'{scenario.dup} counter dup to {target} device "{veth}" '
                             'comment "dup"')
        rules += ["  }", "}"]
        self.m.run("nft", "-f", "-", input="table ip wgpyb_badnet {}\n"
                   "delete table ip wgpyb_badnet\n" + "\n".join(rules) + "\n")

    def nft_counts(self) -> dict[str, int]:
        """Packets counted by each commented rule (both directions summed)."""
        listing = self.m.run("nft", "list", "table", "ip", "wgpyb_badnet").stdout
        counts: dict[str, int] = {}
        for packets, comment in re.findall(r'counter packets (\d+) .*comment "(\w+)"', listing):
            counts[comment] = counts.get(comment, 0) + int(packets)
        return counts

    def start_relay(self, scenario: Scenario) -> None:
        self.stop_relay()
        self.relay = self.m.popen(
            sys.executable, NETPATH, "relay",
            "--a-listen", f"{M_A}:{RELAY_PORTS[0]}", "--a-target", f"{A_UNDERLAY}:"
            f"{DAEMON_PORTS[0]}", "--b-listen", f"{M_B}:{RELAY_PORTS[1]}",
            "--b-target", f"{B_UNDERLAY}:{DAEMON_PORTS[1]}", "--delay", str(scenario.delay),
            "--jitter", str(scenario.jitter), "--reorder", str(scenario.reorder),
            "--hold", str(HOLD_MS), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while str(RELAY_PORTS[1]) not in self.m.run("ss", "-Hlun").stdout:
            if self.relay.poll() is not None or time.monotonic() > deadline:
                raise BenchError("the relay did not start")
            time.sleep(0.05)

    def stop_relay(self) -> None:
        if self.relay is not None:
            stop_process(self.relay)
            self.relay = None

    @contextlib.contextmanager
    def tunnel(self, kind: str):
        """`kind` in A and B, each with the relay in M as its peer's endpoint."""
        with daemon(self.a, kind, self.ifaces[0]) as da, daemon(self.b, kind, self.ifaces[1]):
            keys = [genkey(), genkey()]
            key_file = f"/tmp/wgpyb-badnet-{self.tag}.key"
            ends = ((self.a, M_A, RELAY_PORTS[0]), (self.b, M_B, RELAY_PORTS[1]))
            for i, (ns, relay_address, relay_port) in enumerate(ends):
                with open(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                          "w") as handle:
                    handle.write(keys[i][0] + "\n")
                ns.run("wg", "set", self.ifaces[i], "private-key", key_file,
                       "listen-port", str(DAEMON_PORTS[i]), "peer", keys[1 - i][1],
                       "allowed-ips", f"{TUNNEL[1 - i]}/32",
                       "endpoint", f"{relay_address}:{relay_port}")
                os.unlink(key_file)
                ns.run("ip", "addr", "add", f"{TUNNEL[i]}/24", "dev", self.ifaces[i])
                ns.run("ip", "link", "set", self.ifaces[i], "mtu", "1420", "up")
            yield da


def drop_counts(ns: Namespace, iface: str) -> dict[str, int]:
    """wgpyd's named drop counters (`wgpy show IFACE --drops`)."""
    output = ns.run(sys.executable, "-m", "wgpy.cli.main", "show", iface, "--drops").stdout
    return {name: int(count) for name, count in (line.split() for line in output.splitlines())}


# ---------------------------------------------------------------------- measurements


class Probes:
    """A receiver in B for the duration of the block; `send` from A."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.result: dict = {}

    def __enter__(self) -> "Probes":
        self.receiver = self.lab.b.popen(sys.executable, NETPATH, "probe-recv", "--bind",
                                         f"{TUNNEL[1]}:{PROBE_PORT}", stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True)
        assert self.receiver.stdout is not None
        if self.receiver.stdout.readline().strip() != "ready":
            raise BenchError("probe receiver did not start")
        return self

    def send(self, seconds: float, rate: float) -> subprocess.Popen:
        return self.lab.a.popen(sys.executable, NETPATH, "probe-send", "--to",
                                f"{TUNNEL[1]}:{PROBE_PORT}", "--rate", str(rate), "--seconds",
                                str(seconds), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def __exit__(self, *exc: object) -> None:
        if self.receiver.poll() is None:
            self.receiver.terminate()
        try:
            output, _ = self.receiver.communicate(timeout=10)
            self.result = json.loads(output)
        except (subprocess.TimeoutExpired, json.JSONDecodeError):
            stop_process(self.receiver)


def tcp(lab: Lab, seconds: float, out: dict) -> None:
    """iperf3 A → B (in a thread: the probes run meanwhile)."""
    result = lab.a.run("iperf3", "-c", TUNNEL[1], "-p", str(IPERF_PORT), "-t", f"{seconds:g}",
                       "--json", "--connect-timeout", "10000", timeout=seconds + 60,
                       check=False)
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        out["error"] = result.stderr.strip() or "no output"
        return
    if "error" in data:
        out["error"] = data["error"]
        return
    intervals = [i["sum"]["bytes"] for i in data["intervals"]]
    out.update(mbps=data["end"]["sum_received"]["bits_per_second"] / 1e6,
               retransmits=data["end"]["sum_sent"].get("retransmits", 0),
               stalled_seconds=sum(1 for b in intervals if b == 0), intervals=len(intervals))


def measure(lab: Lab, kind: str, scenario: Scenario, args: argparse.Namespace) -> dict:
    lab.impair(scenario)
    lab.start_relay(scenario)
    drops_before = {i: drop_counts(ns, lab.ifaces[i]) for i, ns in enumerate((lab.a, lab.b))} \
        if kind == "wgpyd" else None
    record: dict = {"daemon": kind, "scenario": scenario.name}
    if scenario.blackhole:
        record |= blackhole(lab, scenario, args)
    else:
        tcp_result: dict = {}
        with Probes(lab) as probes:
            thread = threading.Thread(target=tcp, args=(lab, args.seconds, tcp_result))
            thread.start()
            sender = probes.send(args.seconds, args.probe_rate)
            sender.wait(timeout=args.seconds + 30)
            thread.join()
            time.sleep(1 + scenario.delay / 1000 * 2)  # stragglers still in the relay
        sent = int(args.seconds * args.probe_rate)
        got = probes.result
        record |= {"tcp": tcp_result, "probes_sent": sent,
                   "probes_received": got.get("received", 0),
                   "duplicates_delivered": got.get("duplicates"),
                   "out_of_order_delivered": got.get("out_of_order")}
    record["nft"] = lab.nft_counts()
    if drops_before is not None:
        after = {i: drop_counts(ns, lab.ifaces[i]) for i, ns in enumerate((lab.a, lab.b))}
        record["wgpyd_drops"] = {
            reason: sum(after[i][reason] - drops_before[i].get(reason, 0) for i in after)
            for reason in after[0] if any(after[i][reason] - drops_before[i].get(reason, 0)
                                          for i in after)}
    return record


def blackhole(lab: Lab, scenario: Scenario, args: argparse.Namespace) -> dict:
    """Probes at 50/s: `before` s of path, `--blackhole` s of nothing, then the path back;
    recovery is the first probe delivered after the path returned."""
    before, after, rate = 2.0, min(15.0, max(4.0, args.blackhole)), 50.0
    with Probes(lab) as probes:
        sender = probes.send(before + args.blackhole + after, rate)
        time.sleep(before)
        lab.impair(scenario, blackhole=True)
        start = time.monotonic()
        time.sleep(args.blackhole)
        lab.impair(scenario)
        end = time.monotonic()
        sender.wait(timeout=after + 30)
        time.sleep(1)
    arrivals = [t for _, t in probes.result.get("arrivals", [])]
    during = sum(1 for t in arrivals if start < t < end)
    first_after = next((t for t in arrivals if t >= end), None)
    tcp_result: dict = {}
    tcp(lab, 2, tcp_result)  # and TCP moves again
    return {"blackhole_s": args.blackhole,
            "delivered_before": sum(1 for t in arrivals if t <= start),
            "delivered_during": during,
            "recovery_s": None if first_after is None else round(first_after - end, 2),
            "delivered_after": sum(1 for t in arrivals if t >= end),
            "duplicates_delivered": probes.result.get("duplicates"), "tcp": tcp_result}


# ---------------------------------------------------------------------- report


def table(runs: list[dict]) -> str:
    lines = ["| scenario | daemon | TCP Mbit/s | retransmits | stalled s | probes delivered "
             "| duplicates delivered | dups injected (nft) | wgpyd `replayed` drops |",
             "|---|---|---|---|---|---|---|---|---|"]
    labels = {s.name: s.label for s in SCENARIOS}
    for r in runs:
        if r.get("status") == "failed":
            lines.append(f"| {labels[r['scenario']]} | {r['daemon']} | failed: {r['reason']} "
                         "| | | | | | |")
            continue
        t = r["tcp"]
        tcp_cells = (f"{t['mbps']:.1f} | {t['retransmits']} | {t['stalled_seconds']}/"
                     f"{t['intervals']}" if "mbps" in t else f"error: {t.get('error')} | | ")
        replayed = r.get("wgpyd_drops", {}).get("replayed", 0) if r["daemon"] == "wgpyd" \
            else "n/a"
        if r["scenario"] == "blackhole":
            delivered = (f"recovered {r['recovery_s']} s after {r['blackhole_s']:g} s; "
                         f"{r['delivered_during']} during")
        else:
            delivered = (f"{r['probes_received']}/{r['probes_sent']} "
                         f"({r['out_of_order_delivered']} out of order)")
        lines.append(f"| {labels[r['scenario']]} | {r['daemon']} | {tcp_cells} | {delivered} "
                     f"| {r['duplicates_delivered']} | {r['nft'].get('dup', 0)} | {replayed} |")
    return "\n".join(lines)


def verdict(runs: list[dict]) -> list[str]:
    """What must hold: TCP moves, nothing duplicated delivered, the blackhole heals."""
    problems = []
    for r in runs:
        where = f"{r['daemon']} {r['scenario']}"
        if r.get("status") == "failed":
            problems.append(f"{where}: {r['reason']}")
            continue
        if not r["tcp"].get("mbps"):
            problems.append(f"{where}: TCP did not move ({r['tcp'].get('error')})")
        if r["duplicates_delivered"]:
            problems.append(f"{where}: {r['duplicates_delivered']} duplicates delivered")
        if r["scenario"] == "blackhole" and r["recovery_s"] is None:
            problems.append(f"{where}: never recovered")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/badnet.py: needs root (network namespaces, TUN, nftables)",
              file=sys.stderr)
        return 2
    raise_terminated_on_sigterm()
    stamp = machine.timestamp()
    scenarios = [s for s in SCENARIOS if s.name in args.only]
    runs = []
    try:
        with Lab() as lab, iperf3_server(lab.b):
            for kind in args.daemons:
                with lab.tunnel(kind):
                    for scenario in scenarios:
                        lab.impair(Scenario("clean", ""))
                        lab.start_relay(Scenario("clean", ""))
                        try:
                            wait_path(lab)
                            record = measure(lab, kind, scenario, args)
                            record["status"] = "ok"
                        except (BenchError, OSError, ValueError, KeyError) as exc:
                            record = {"daemon": kind, "scenario": scenario.name,
                                      "status": "failed", "reason": str(exc)}
                        runs.append(record)
                        print(f"{kind} {scenario.name}: {json.dumps(record)}",
                              file=sys.stderr, flush=True)
    except (KeyboardInterrupt, Terminated) as exc:
        print("bench/badnet.py: interrupted; namespaces and daemons cleaned up", file=sys.stderr)
        return exit_status(exc)
    except BenchError as exc:
        print(f"bench/badnet.py: lab: {exc}", file=sys.stderr)
        return 2
    print(table(runs))
    problems = verdict(runs)
    for problem in problems:
        print(f"FAIL: {problem}")
    data = {"meta": {"timestamp": stamp, "machine": machine.describe(),
                     "settings": {k: getattr(args, k) for k in
                                  ("seconds", "blackhole", "probe_rate", "smoke")}},
            "scenarios": [vars(s) for s in scenarios], "runs": runs, "problems": problems}
    print(f"JSON: {machine.write_json(data, args.out, f'badnet-{stamp}.json')}")
    return 1 if problems else 0


def wait_path(lab: Lab, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.a.run("ping", "-n", "-c", "1", "-W", "1", TUNNEL[1], check=False).returncode == 0:
            return
    raise BenchError(f"no ping through the tunnel within {timeout:.0f} s")


if __name__ == "__main__":
    sys.exit(main())

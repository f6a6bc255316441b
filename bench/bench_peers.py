#!/usr/bin/env python3
"""`python3 bench/bench_peers.py` (root): a device with 10,000 peers, wgpyd vs wireguard-go.

For each daemon (fresh, in its own namespace, interface left down so nothing is sent) it
times the real `wg setconf IFACE FILE` of a generated config with N peers (each with a
public key, an IPv4 /32 and an IPv6 /128 allowed IP and an endpoint), then `wg show IFACE
dump`, and reads the daemon's memory from /proc/PID/status (VmRSS before and after, VmHWM)
and its CPU time during the setconf. Daemons alternate in rounds; medians are reported with
ratios against wireguard-go. The run fails if a daemon does not end up with exactly N peers.
"""

import argparse
import base64
import os
import signal
import statistics
import sys
import tempfile
import time

import machine
from testbed import BenchError, Namespace, cpu_seconds, daemon, genkey, status_kib

KINDS = ("wireguard-go", "wgpyd")
BASELINE = "wireguard-go"
LISTEN_PORT = 51903


def write_config(path: str, peers: int) -> None:
    """A wg(8) config with `peers` peers; keys are random 32-byte strings (valid for `wg`)."""
    lines = ["[Interface]", f"PrivateKey = {genkey()[0]}", f"ListenPort = {LISTEN_PORT}"]
    for i in range(peers):
        key = base64.b64encode(os.urandom(32)).decode()
        lines += ["", "[Peer]", f"PublicKey = {key}",
                  f"AllowedIPs = 10.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}/32, "
                  f"fd00:b::{i:x}/128",
                  f"Endpoint = 198.51.100.{i % 250 + 1}:{20000 + i % 40000}"]
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def timed(ns: Namespace, *argv: str, timeout: float) -> tuple[float, str]:
    start = time.perf_counter()
    result = ns.run(*argv, timeout=timeout)
    return time.perf_counter() - start, result.stdout


def measure(ns: Namespace, kind: str, iface: str, config: str, peers: int,
            timeout: float) -> dict:
    with daemon(ns, kind, iface) as running:
        pid = running.pid
        rss_idle = status_kib(pid, "VmRSS")
        cpu_before = cpu_seconds(pid)
        setconf, _ = timed(ns, "wg", "setconf", iface, config, timeout=timeout)
        setconf_cpu = cpu_seconds(pid) - cpu_before
        dump, output = timed(ns, "wg", "show", iface, "dump", timeout=timeout)
        lines = output.count("\n")
        if lines != peers + 1:
            raise BenchError(f"{kind}: `wg show dump` lists {lines - 1} peers, expected {peers}")
        return {"setconf_s": setconf, "setconf_daemon_cpu_s": setconf_cpu, "dump_s": dump,
                "rss_idle_kib": rss_idle, "rss_kib": status_kib(pid, "VmRSS"),
                "hwm_kib": status_kib(pid, "VmHWM")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/bench_peers.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", type=lambda text: text.split(","), default=list(KINDS),
                        help="comma-separated daemons (default: wireguard-go,wgpyd)")
    parser.add_argument("--timeout", type=float, default=600, help="per wg command")
    parser.add_argument("--smoke", action="store_true", help="200 peers, 1 round (for CI)")
    parser.add_argument("--out", default=machine.RESULTS_DIR)
    args = parser.parse_args(argv)
    if set(args.only) - set(KINDS):
        parser.error(f"--only takes {','.join(KINDS)}")
    if args.smoke:
        args.peers, args.rounds = 200, 1
    if os.geteuid() != 0:
        print("bench/bench_peers.py: needs root (network namespace, TUN)", file=sys.stderr)
        return 2

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    tag = str(os.getpid())
    kinds = [kind for kind in KINDS if kind in args.only]
    runs = []
    try:
        with Namespace(f"wgpyb-p{tag}") as ns, tempfile.TemporaryDirectory() as tmp:
            config = os.path.join(tmp, "peers.conf")
            write_config(config, args.peers)
            for round_index in range(args.rounds):
                for kind in kinds if round_index % 2 == 0 else kinds[::-1]:
                    record = {"round": round_index + 1, "daemon": kind}
                    try:
                        record |= {"status": "ok", **measure(
                            ns, kind, f"wb{tag}p", config, args.peers, args.timeout)}
                    except (BenchError, OSError) as exc:
                        record |= {"status": "failed", "reason": str(exc)}
                    runs.append(record)
                    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in record.items()), file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("bench/bench_peers.py: interrupted; cleaned up", file=sys.stderr)
        return 130
    return report(runs, kinds, args)


def report(runs: list[dict], kinds: list[str], args: argparse.Namespace) -> int:
    columns = {"setconf_s": "wg setconf s", "setconf_daemon_cpu_s": "daemon CPU s",
               "dump_s": "wg show dump s", "rss_idle_kib": "RSS idle MiB",
               "rss_kib": "RSS MiB", "hwm_kib": "peak RSS MiB"}
    summary: dict[str, dict] = {}
    for kind in kinds:
        ok = [run for run in runs if run["daemon"] == kind and run["status"] == "ok"]
        summary[kind] = {key: statistics.median(run[key] for run in ok) if ok else None
                         for key in columns}
        summary[kind]["runs_ok"] = len(ok)
        summary[kind]["reasons"] = sorted({run["reason"] for run in runs
                                           if run["daemon"] == kind and run["status"] != "ok"})
    print(f"| daemon ({args.peers} peers, median of {args.rounds}) | runs ok | "
          + " | ".join(columns.values()) + " | KiB per peer |")
    print("|---" * (len(columns) + 3) + "|")
    for kind, entry in summary.items():
        head = f"| {kind} | {entry['runs_ok']}/{args.rounds} |"
        if not entry["runs_ok"]:
            print(f"{head} failed: {'; '.join(entry['reasons'])} |")
            continue
        cells = [f"{entry[key] / 1024:.1f}" if key.endswith("_kib") else f"{entry[key]:.3f}"
                 for key in columns]
        per_peer = (entry["rss_kib"] - entry["rss_idle_kib"]) / args.peers
        entry["kib_per_peer"] = per_peer
        print(f"{head} {' | '.join(cells)} | {per_peer:.2f} |")
    base = summary.get(BASELINE)
    if base and base["runs_ok"]:
        for kind, entry in summary.items():
            if kind != BASELINE and entry["runs_ok"]:
                entry["ratio"] = {key: entry[key] / base[key] for key in columns if base[key]}
                print(f"{kind} vs {BASELINE}: " + ", ".join(
                    f"{columns[key]} {ratio:.2f}x" for key, ratio in entry["ratio"].items()))
    stamp = machine.timestamp()
    data = {"meta": {"timestamp": stamp, "machine": machine.describe(),
                     "settings": {"peers": args.peers, "rounds": args.rounds,
                                  "smoke": args.smoke}},
            "runs": runs, "summary": summary}
    print(f"\nJSON: {machine.write_json(data, args.out, f'peers-{stamp}.json')}")
    return 0 if all(run["status"] == "ok" for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

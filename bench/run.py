#!/usr/bin/env python3
"""`python3 bench/run.py` (root): wgpyd and wireguard-go throughput, side by side.

Two namespaces joined by a veth pair; client in A, server in B. Each configuration (raw veth,
wireguard-go ↔ wireguard-go, wgpyd ↔ wgpyd, and the two mixed directions) gets fresh daemons,
an idle ping RTT, iperf3 TCP with 1 and 4 streams and iperf3 UDP at a fixed rate, with the
daemons' CPU time and the kernel's UDP counters read around each iperf3 run. Configurations
are interleaved in rounds (in a rotated order each round) so that machine noise hits them all
alike; the report gives medians over rounds and ratios against wireguard-go ↔ wireguard-go.
A configuration that cannot run is reported as "failed: <reason>", never a crash.
"""

import argparse
import contextlib
import os
import sys

import machine
import report
from probes import (
    counter_delta,
    drop_percent,
    iperf3,
    iperf3_server,
    link_drops,
    median,
    ping_rtts,
    socket_drops,
    udp_counters,
    wait_for_path,
)
from report import Config
from testbed import (
    LISTEN_PORTS,
    TUNNEL,
    UNDERLAY,
    BenchError,
    Namespace,
    Terminated,
    Testbed,
    exit_status,
    missing_prerequisites,
    raise_terminated_on_sigterm,
)

CONFIGS = [
    Config("raw", "raw veth", None, None),
    Config("go-go", "wireguard-go ↔ wireguard-go", "wireguard-go", "wireguard-go"),
    Config("wgpyd-wgpyd", "wgpyd ↔ wgpyd", "wgpyd", "wgpyd"),
    Config("wgpyd-go", "wgpyd → wireguard-go", "wgpyd", "wireguard-go"),
    Config("go-wgpyd", "wireguard-go → wgpyd", "wireguard-go", "wgpyd"),
]
BASELINE = "go-go"
# Test name -> (parallel streams, UDP at --udp-rate?)
TESTS = {"tcp1": (1, False), "tcp4": (4, False), "udp": (1, True)}
REQUIRED_TOOLS = ("ip", "iperf3", "ping", "nstat", "ss")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [config.name for config in CONFIGS]
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Throughput, RTT and CPU cost of wgpyd vs wireguard-go (needs root).",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every configuration")
    parser.add_argument("--seconds", type=float, default=10, help="length of each iperf3 run")
    parser.add_argument("--only", type=lambda text: text.split(","), default=names,
                        help=f"comma-separated configurations (default: all of {','.join(names)})")
    parser.add_argument("--udp-rate", default="500M", help="iperf3 -b for the UDP test")
    parser.add_argument("--pings", type=int, default=20, help="pings for the idle RTT")
    parser.add_argument("--ping-interval", type=float, default=0.05)
    parser.add_argument("--smoke", action="store_true",
                        help="one 2-second round of each, 5 pings (for CI)")
    parser.add_argument("--out", default=machine.RESULTS_DIR,
                        help="directory for the JSON and PNG (default: bench/results)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only) - set(names))
    if unknown:
        parser.error(f"unknown configuration {', '.join(unknown)}; choose from {names}")
    if args.smoke:
        args.rounds, args.seconds, args.pings = 1, 2, 5
    return args


def measure(bed: Testbed, config: Config, args: argparse.Namespace) -> dict:
    """One configuration once: fresh daemons (if any), RTT, then the iperf3 tests."""
    with contextlib.ExitStack() as stack:
        daemons = []
        target = UNDERLAY[1]
        if config.kind_a and config.kind_b:
            daemons = list(stack.enter_context(bed.tunnel(config.kind_a, config.kind_b)))
            target = TUNNEL[1]
        wait_for_path(bed.a, target)
        rtts = ping_rtts(bed.a, target, args.pings, args.ping_interval)
        stack.enter_context(iperf3_server(bed.b))
        # The links the iperf3 packets cross first in A and last in B: TUN or veth.
        links = bed.ifaces if daemons else bed.veths
        tests = {}
        for name, (streams, udp) in TESTS.items():
            cpu_before = [d.cpu_seconds() for d in daemons]
            udp_a, udp_b = udp_counters(bed.a), udp_counters(bed.b)
            link_a, link_b = link_drops(bed.a, links[0]), link_drops(bed.b, links[1])
            daemon_drops_b = socket_drops(bed.b, LISTEN_PORTS[1]) if daemons else 0
            result = iperf3(bed.a, target, args.seconds, streams,
                            args.udp_rate if udp else None)
            result["cpu_seconds"] = [d.cpu_seconds() - before
                                     for d, before in zip(daemons, cpu_before, strict=True)]
            result["udp_counters_a"] = counter_delta(udp_a, udp_counters(bed.a))
            result["udp_counters_b"] = counter_delta(udp_b, udp_counters(bed.b))
            result["link_drops_a"] = counter_delta(link_a, link_drops(bed.a, links[0]))
            result["link_drops_b"] = counter_delta(link_b, link_drops(bed.b, links[1]))
            if daemons:
                result["daemon_socket_drops_b"] = (socket_drops(bed.b, LISTEN_PORTS[1])
                                                   - daemon_drops_b)
            tests[name] = result
        tunnel_bytes = tunnel_rx_bytes(bed.b, daemons[1].iface) if daemons else None
    if tunnel_bytes is not None and tunnel_bytes < sum(test["bytes"] for test in tests.values()):
        raise BenchError(f"B's daemon received {tunnel_bytes} bytes, fewer than iperf3 did: "
                         "the traffic did not go through the tunnel")
    return {"rtt_ms": rtts, "tests": tests, "tunnel_rx_bytes_b": tunnel_bytes,
            "metrics": metrics(rtts, tests, bool(daemons))}


def tunnel_rx_bytes(ns: Namespace, iface: str) -> int:
    """Bytes the daemon says it received from its peer (`wg show IFACE transfer`)."""
    lines = ns.run("wg", "show", iface, "transfer").stdout.split("\n")
    return sum(int(line.split("\t")[1]) for line in lines if line.strip())


def metrics(rtts: list[float], tests: dict, has_daemons: bool) -> dict:
    """The numbers the tables and the chart show. CPU per GB is over the TCP tests: there the
    daemons run flat out, while the fixed-rate UDP test's cost depends on the rate chosen."""
    tcp = [tests["tcp1"], tests["tcp4"]]
    gigabytes = sum(test["bytes"] for test in tcp) / 1e9
    values = {
        "tcp1_mbps": tests["tcp1"]["mbps"],
        "tcp4_mbps": tests["tcp4"]["mbps"],
        "udp_mbps": tests["udp"]["mbps"],
        "udp_loss_pct": tests["udp"]["loss_percent"],
        "udp_drop_pct": drop_percent(tests["udp"]["udp_counters_b"]),
        "rtt_ms": median(rtts),
        "cpu_a_s_per_gb": None,
        "cpu_b_s_per_gb": None,
        # receive drops on B's daemon socket alone, all three tests
        "daemon_rx_drops": (sum(test["daemon_socket_drops_b"] for test in tests.values())
                            if has_daemons else None),
    }
    if has_daemons and gigabytes:
        values["cpu_a_s_per_gb"] = sum(test["cpu_seconds"][0] for test in tcp) / gigabytes
        values["cpu_b_s_per_gb"] = sum(test["cpu_seconds"][1] for test in tcp) / gigabytes
    return values


def progress(record: dict, rounds: int) -> str:
    head = f"round {record['round']}/{rounds} {record['config']:<12}"
    if record["status"] != "ok":
        return f"{head} failed: {record['reason']}"
    m = record["metrics"]
    cpu = ""
    if m["cpu_a_s_per_gb"] is not None:
        cpu = f"  cpu A {m['cpu_a_s_per_gb']:.2f} B {m['cpu_b_s_per_gb']:.2f} s/GB"
    return (f"{head} tcp1 {m['tcp1_mbps']:7.0f}  tcp4 {m['tcp4_mbps']:7.0f}  "
            f"udp {m['udp_mbps']:6.0f} Mbit/s loss {m['udp_loss_pct']:5.1f}%  "
            f"drops {m['udp_drop_pct']:5.1f}%  rtt {m['rtt_ms']:.3f} ms{cpu}")


def run_rounds(bed: Testbed, configs: list[Config], args: argparse.Namespace) -> list[dict]:
    runs = []
    for round_index in range(args.rounds):
        shift = round_index % len(configs)
        for config in configs[shift:] + configs[:shift]:
            record = {"round": round_index + 1, "config": config.name}
            try:
                record |= {"status": "ok", "reason": None, **measure(bed, config, args)}
            except (BenchError, OSError, KeyError, ValueError) as exc:
                record |= {"status": "failed", "reason": str(exc) or type(exc).__name__}
            runs.append(record)
            print(progress(record, args.rounds), file=sys.stderr, flush=True)
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = missing_prerequisites("bench/run.py", REQUIRED_TOOLS)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    raise_terminated_on_sigterm()
    configs = [config for config in CONFIGS if config.name in args.only]
    stamp = machine.timestamp()
    meta = {"timestamp": stamp, "machine": machine.describe(),
            "settings": {key: getattr(args, key) for key in
                         ("rounds", "seconds", "udp_rate", "pings", "ping_interval", "smoke")},
            "baseline": BASELINE}
    try:
        with Testbed() as bed:
            runs = run_rounds(bed, configs, args)
    except (KeyboardInterrupt, Terminated) as exc:
        print("bench/run.py: interrupted; namespaces and daemons cleaned up", file=sys.stderr)
        return exit_status(exc)
    except BenchError as exc:
        print(f"bench/run.py: testbed: {exc}", file=sys.stderr)
        return 2

    summary = report.summarize(configs, runs, BASELINE)
    base_label = next(c.label for c in CONFIGS if c.name == BASELINE)
    print(report.medians_table(summary))
    if BASELINE in args.only:
        print()
        print(report.ratios_table(summary, base_label))
    for line in report.failures(runs):
        print(f"failed: {line}")
    data = {"meta": meta, "configs": [vars(config) for config in configs],
            "runs": runs, "summary": summary}
    path = machine.write_json(data, args.out, f"{stamp}.json")
    print(f"\nJSON: {path}")
    chart_path = os.path.join(args.out, f"{stamp}.png")
    try:
        title = (f"{meta['machine']['cpu']}, {meta['machine']['nproc']} CPUs, "
                 f"{args.rounds} rounds of {args.seconds:g} s per test")
        report.chart(configs, runs, summary, chart_path, title)
        print(f"chart: {chart_path}")
    except ImportError:
        print("chart: skipped (matplotlib is not installed: "
              "pip install -r bench/requirements.txt)")
    return 1 if report.failures(runs) else 0


if __name__ == "__main__":
    sys.exit(main())

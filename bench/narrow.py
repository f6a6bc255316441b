#!/usr/bin/env python3
"""`python3 bench/narrow.py` (root): TCP through tunnels over paths narrower than a tunnel
packet, wgpyd vs wireguard-go side by side (issue 17).

With the default tunnel MTU of 1420 a full datagram needs 1480 bytes on an IPv4 underlay and
1500 on IPv6; on a narrower path the outer datagrams must be fragmented. Every path here is
built afresh (namespaces A and B, and router R for the routed ones, so no path MTU learned in
one run leaks into the next): the narrow link is either A-B itself ("local", both hosts know
it from their own link) or R-B behind a router ("routed", A learns it from ICMP frag-needed /
Packet Too Big), on an IPv4 or IPv6 underlay, at MTU 1280, 1400 or 1460; plus "narrows": a
routed path at 1500 whose R-B link drops to 1400 a third into the transfer. On each path
every configuration runs iperf3 TCP (one stream, A to B) in a rotated order; the report gives
Mbit/s per configuration and wgpyd's ratio to wireguard-go's, plus datagrams wgpyd counted as
udp_send_failed (which must stay 0).
"""

import argparse
import os
import sys
import threading
from dataclasses import dataclass

import machine
from probes import iperf3, iperf3_server, median, wait_for_path
from report import Config, markdown_table
from testbed import (
    TUNNEL,
    BenchError,
    Terminated,
    Testbed,
    exit_status,
    missing_prerequisites,
    raise_terminated_on_sigterm,
)

from wgpy.uapi.client import get_drops

CONFIGS = [
    Config("go-go", "wireguard-go", "wireguard-go", "wireguard-go"),
    Config("wgpyd-wgpyd", "wgpyd", "wgpyd", "wgpyd"),
    Config("wgpyd-go", "wgpyd → wireguard-go", "wgpyd", "wireguard-go"),
    Config("go-wgpyd", "wireguard-go → wgpyd", "wireguard-go", "wgpyd"),
    Config("plain-plain", "wgpyd WGPY_OFFLOAD=0", "wgpyd-no-offload", "wgpyd-no-offload"),
]
BASELINE = "go-go"
REQUIRED_TOOLS = ("ip", "iperf3", "ping", "wg", "wireguard-go", "sysctl")
WIDE_MTU = 1500


@dataclass(frozen=True)
class Path:
    family: str  # underlay: "4" or "6"
    mtu: int  # the narrow link's
    routed: bool
    narrows: bool = False  # starts at WIDE_MTU, narrows to `mtu` a third into the transfer

    @property
    def name(self) -> str:
        where = "narrows" if self.narrows else "routed" if self.routed else "local"
        return f"v{self.family}-{where}-{self.mtu}"

    @property
    def label(self) -> str:
        if self.narrows:
            where = f"router's far link 1500 → {self.mtu} mid-transfer"
        elif self.routed:
            where = f"router's far link {self.mtu} (" + (
                "ICMP frag-needed)" if self.family == "4" else "Packet Too Big)")
        else:
            where = f"both links {self.mtu}"
        return f"IPv{self.family}, {where}"


PATHS = [Path(family, mtu, routed) for routed in (False, True) for family in ("4", "6")
         for mtu in (1280, 1400, 1460)]
PATHS += [Path(family, 1400, True, narrows=True) for family in ("4", "6")]
SMOKE_PATHS = [Path("4", 1400, False), Path("6", 1280, True), Path("4", 1400, True, True)]
SMOKE_CONFIGS = ("go-go", "wgpyd-wgpyd", "wgpyd-go")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [config.name for config in CONFIGS]
    parser = argparse.ArgumentParser(
        prog="bench/narrow.py",
        description="TCP through narrow paths, wgpyd vs wireguard-go (needs root).")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every path")
    parser.add_argument("--seconds", type=float, default=5, help="length of each iperf3 run")
    parser.add_argument("--only", type=lambda text: text.split(","), default=names,
                        help=f"comma-separated configurations (default: all of {','.join(names)})")
    parser.add_argument("--paths", type=lambda text: text.split(","), default=None,
                        help="comma-separated paths (default: all of "
                             f"{','.join(path.name for path in PATHS)})")
    parser.add_argument("--smoke", action="store_true",
                        help=f"3 paths, configurations {','.join(SMOKE_CONFIGS)}, 1 s each (CI)")
    parser.add_argument("--out", default=machine.RESULTS_DIR,
                        help="directory for the JSON (default: bench/results)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only) - set(names))
    known_paths = {path.name: path for path in PATHS + SMOKE_PATHS}
    unknown += sorted(set(args.paths or ()) - set(known_paths))
    if unknown:
        parser.error(f"unknown configuration or path {', '.join(unknown)}")
    if args.smoke:
        args.rounds, args.seconds = 1, 1
        args.only = [name for name in args.only if name in SMOKE_CONFIGS]
    args.path_list = ([known_paths[name] for name in args.paths] if args.paths
                      else SMOKE_PATHS if args.smoke else PATHS)
    return args


def send_failures(iface: str) -> int:
    """Datagrams a wgpyd counted as udp_send_failed (read over its UAPI socket)."""
    return get_drops(iface)["udp_send_failed"]


def measure(path: Path, config: Config, seconds: float, tag: str) -> dict:
    """One configuration on one path: a fresh testbed and daemons, iperf3 TCP A to B."""
    with Testbed(tag, routed=path.routed) as bed:
        bed.set_path_mtu(WIDE_MTU if path.narrows else path.mtu)
        with bed.tunnel(config.kind_a, config.kind_b, family=path.family) as daemons, \
                iperf3_server(bed.b):
            wait_for_path(bed.a, TUNNEL[1])
            narrowing = threading.Timer(seconds / 3, bed.set_path_mtu, (path.mtu,))
            if path.narrows:
                narrowing.start()
            try:
                result = iperf3(bed.a, TUNNEL[1], seconds)
            finally:
                narrowing.cancel()
            failed = sum(send_failures(d.iface) for d in daemons
                         if d.kind.startswith("wgpyd"))
    return {"mbps": result["mbps"], "bytes": result["bytes"],
            "retransmits": result["retransmits"], "udp_send_failed": failed}


def run_rounds(paths: list[Path], configs: list[Config], args: argparse.Namespace,
               tag: str) -> list[dict]:
    runs = []
    for round_index in range(args.rounds):
        for number, path in enumerate(paths):
            shift = (round_index + number) % len(configs)
            for config in configs[shift:] + configs[:shift]:
                record = {"round": round_index + 1, "path": path.name, "config": config.name}
                try:
                    record |= {"status": "ok", "reason": None,
                               **measure(path, config, args.seconds, tag)}
                except (BenchError, OSError, KeyError, ValueError) as exc:
                    record |= {"status": "failed", "reason": str(exc) or type(exc).__name__}
                runs.append(record)
                shown = (f"{record['mbps']:7.0f} Mbit/s, udp_send_failed "
                         f"{record['udp_send_failed']}" if record["status"] == "ok"
                         else f"failed: {record['reason']}")
                print(f"round {round_index + 1}/{args.rounds} {path.name:<14} "
                      f"{config.name:<12} {shown}", file=sys.stderr, flush=True)
    return runs


def summarize(paths: list[Path], configs: list[Config], runs: list[dict]) -> dict:
    """Per path and configuration: median Mbit/s over rounds (None if every run failed) and
    the udp_send_failed total; per path, wgpyd's ratio to wireguard-go."""
    summary = {}
    for path in paths:
        entry: dict = {"label": path.label, "mbps": {}, "udp_send_failed": {}}
        for config in configs:
            ok = [run for run in runs if run["path"] == path.name
                  and run["config"] == config.name and run["status"] == "ok"]
            entry["mbps"][config.name] = median([run["mbps"] for run in ok]) if ok else None
            entry["udp_send_failed"][config.name] = sum(run["udp_send_failed"] for run in ok)
        go, wgpyd = entry["mbps"].get(BASELINE), entry["mbps"].get("wgpyd-wgpyd")
        entry["ratio"] = wgpyd / go if go and wgpyd is not None else None
        summary[path.name] = entry
    return summary


def report_table(summary: dict, configs: list[Config]) -> str:
    header = ["underlay path", *(f"{config.label} Mbit/s" for config in configs),
              "wgpyd / wireguard-go", "wgpyd udp_send_failed"]
    rows = []
    for entry in summary.values():
        cells = ["failed" if (mbps := entry["mbps"][config.name]) is None else f"{mbps:.0f}"
                 for config in configs]
        ratio = "-" if entry["ratio"] is None else f"{entry['ratio']:.2f}x"
        failed = sum(entry["udp_send_failed"].values())
        rows.append([entry["label"], *cells, ratio, str(failed)])
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = missing_prerequisites("bench/narrow.py", REQUIRED_TOOLS)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    raise_terminated_on_sigterm()
    configs = [config for config in CONFIGS if config.name in args.only]
    stamp = machine.timestamp()
    meta = {"timestamp": stamp, "machine": machine.describe(),
            "settings": {"rounds": args.rounds, "seconds": args.seconds, "smoke": args.smoke},
            "baseline": BASELINE}
    try:
        runs = run_rounds(args.path_list, configs, args, str(os.getpid()))
    except (KeyboardInterrupt, Terminated) as exc:
        print("bench/narrow.py: interrupted; namespaces and daemons cleaned up",
              file=sys.stderr)
        return exit_status(exc)
    summary = summarize(args.path_list, configs, runs)
    print(report_table(summary, configs))
    failures = [f"round {run['round']} {run['path']} {run['config']}: {run['reason']}"
                for run in runs if run["status"] != "ok"]
    for line in failures:
        print(f"failed: {line}")
    data = {"meta": meta, "configs": [vars(config) for config in configs],
            "paths": [vars(path) | {"name": path.name} for path in args.path_list],
            "runs": runs, "summary": summary}
    print(f"\nJSON: {machine.write_json(data, args.out, f'{stamp}-narrow.json')}")
    lost = any(run["status"] == "ok" and run["udp_send_failed"] for run in runs)
    return 1 if failures or lost else 0


if __name__ == "__main__":
    sys.exit(main())

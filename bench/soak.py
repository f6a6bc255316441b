#!/usr/bin/env python3
"""`python3 bench/soak.py --minutes N` (root): does a daemon leak under a long, busy life?

wgpyd in namespace A and wireguard-go in B carry a rate-limited iperf3 TCP stream (A → B)
for the whole run while a fixed cycle of disturbances hits both daemons over UAPI (the real
`wg`), one every `--period` seconds:

- roam: the other side changes its listen port, so each daemon sees its peer's endpoint move
  (and the one changing rebinds its UDP socket);
- rekey: one side removes its peer and adds it back, which throws away its sessions and forces a
  fresh handshake that the other side must accept in place of its current keypairs;
- churn: `--churn` extra peers with AllowedIPs are added to both daemons, then removed.

Natural rekeys (REKEY_AFTER_TIME, 120 s) come on top. Every `--sample` seconds the bench
reads each daemon's RSS, open file descriptors and threads from /proc. Verdict (after a
warm-up: the first fifth, at least one period): no RSS growth trend over the last half of the
run (see `verdict`), fd and thread counts not above the early maximum. Only wgpyd's verdict
sets the exit status; wireguard-go is measured alongside for comparison. Disturbances are
checked to take effect (endpoint seen moving, a new handshake, peers present then gone), so a
soak in which nothing happened cannot pass.
"""

import argparse
import base64
import contextlib
import itertools
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

import machine
from probes import IPERF_PORT, iperf3_server, wait_for_path
from testbed import (
    LISTEN_PORTS,
    TUNNEL,
    UNDERLAY,
    BenchError,
    Namespace,
    Terminated,
    Testbed,
    exit_status,
    raise_terminated_on_sigterm,
    status_kib,
    stop_process,
)

ACTIONS = ("roam-b", "roam-a", "rekey-b", "rekey-a", "churn")
ROAM_PORTS = (52011, 52012, 52013)
RSS_SLACK_KIB, RSS_SLACK_FRACTION = 1024, 0.03


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/soak.py", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30, help="length of the soak")
    parser.add_argument("--period", type=float, default=20,
                        help="seconds between disturbances (roam, rekey, churn)")
    parser.add_argument("--sample", type=float, default=5, help="seconds between samples")
    parser.add_argument("--rate", default="20M", help="iperf3 -b for the TCP stream")
    parser.add_argument("--churn", type=int, default=200, help="peers added and removed")
    parser.add_argument("--smoke", action="store_true",
                        help="15 s, a disturbance every 2 s, 50-peer churn (for CI)")
    parser.add_argument("--out", default=machine.RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.smoke:
        args.minutes, args.period, args.sample, args.churn = 0.25, 2, 0.5, 50
    return args


def random_key() -> str:
    """A random X25519 public key in base64: any 32 bytes are one."""
    return base64.b64encode(os.urandom(32)).decode()


def proc_sample(pid: int) -> dict:
    """RSS (KiB), open file descriptors and threads of a process, from /proc."""
    return {"rss_kib": status_kib(pid, "VmRSS"), "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": status_kib(pid, "Threads")}


class Traffic:
    """iperf3 TCP A → B at a fixed rate, restarted back to back in short runs so that a
    disturbance that breaks one connection costs one run, not the soak; and pings B → A every
    0.2 s, because a peer is only seen to roam (or to need a handshake) once it sends, and a
    TCP receiver that hears nothing sends nothing."""

    RUN_SECONDS = 15

    def __init__(self, a: Namespace, b: Namespace, rate: str) -> None:
        self.a, self.b, self.rate = a, b, rate
        self.runs_ok = self.runs_failed = 0
        self.ping_summary = ""
        self._stop = threading.Event()
        self._process: subprocess.Popen | None = None
        self._ping: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._loop, name="traffic", daemon=True)

    def __enter__(self) -> "Traffic":
        self._ping = self.b.popen("ping", "-q", "-n", "-i", "0.2", TUNNEL[0],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._process is not None:
            stop_process(self._process)
        self._thread.join(timeout=10)
        if self._ping is not None:
            with contextlib.suppress(ProcessLookupError):
                self._ping.send_signal(signal.SIGINT)  # ping prints its summary on SIGINT
            try:
                output, _ = self._ping.communicate(timeout=5)
                self.ping_summary = next((line for line in output.splitlines()
                                          if "packet loss" in line), "")
            except subprocess.TimeoutExpired:
                stop_process(self._ping)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._process = self.a.popen(
                "iperf3", "-c", TUNNEL[1], "-p", str(IPERF_PORT), "-b", self.rate,
                "-t", str(self.RUN_SECONDS), "--connect-timeout", "3000",
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            code = self._process.wait()
            if self._stop.is_set():
                return
            if code == 0:
                self.runs_ok += 1
            else:
                self.runs_failed += 1
                self._stop.wait(1)


class Side:
    """One daemon's namespace, interface and the peer it talks to, for UAPI changes."""

    def __init__(self, ns: Namespace, iface: str, kind: str, pid: int, index: int) -> None:
        self.ns, self.iface, self.kind, self.pid, self.index = ns, iface, kind, pid, index
        self.port = LISTEN_PORTS[index]
        self.peer_key = ""
        self.public_key = ns.run("wg", "show", iface, "public-key").stdout.strip()

    def wg(self, *args: str, input: str | None = None) -> str:
        return self.ns.run("wg", *args, input=input).stdout

    def peer_endpoint(self) -> str:
        return self.wg("show", self.iface, "endpoints").split()[1]

    def latest_handshake(self) -> int:
        fields = self.wg("show", self.iface, "latest-handshakes").split()
        return int(fields[1]) if len(fields) > 1 else 0

    def peer_count(self) -> int:
        return len(self.wg("show", self.iface, "peers").split())

    def add_main_peer(self, other: "Side") -> None:
        self.wg("set", self.iface, "peer", self.peer_key, "allowed-ips",
                f"{TUNNEL[other.index]}/32", "endpoint", f"{UNDERLAY[other.index]}:{other.port}")


def wait_until(condition, what: str, timeout: float) -> float:
    """Poll `condition` until true; seconds it took. BenchError names `what` on timeout."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise BenchError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - start


def disturb(action: str, sides: dict[str, Side], churn: int, step: int) -> dict:
    """Apply one disturbance and wait until it has visibly taken effect."""
    a, b = sides["a"], sides["b"]
    if action.startswith("roam"):
        mover, watcher = (b, a) if action == "roam-b" else (a, b)
        mover.port = ROAM_PORTS[step % len(ROAM_PORTS)] + 10 * mover.index
        mover.wg("set", mover.iface, "listen-port", str(mover.port))
        expected = f"{UNDERLAY[mover.index]}:{mover.port}"
        took = wait_until(lambda: watcher.peer_endpoint() == expected,
                          f"{watcher.kind} seeing {mover.kind} roam to {expected}", 30)
        return {"action": action, "seconds": took}
    if action.startswith("rekey"):
        actor, other = (b, a) if action == "rekey-b" else (a, b)
        before = other.latest_handshake()
        actor.wg("set", actor.iface, "peer", actor.peer_key, "remove")
        actor.add_main_peer(other)
        # The actor has no session now; the traffic (or its reply) makes it initiate.
        took = wait_until(lambda: other.latest_handshake() > before,
                          f"{other.kind} accepting a fresh handshake", 30)
        return {"action": action, "seconds": took}
    keys = [random_key() for _ in range(churn)]
    for side in (a, b):
        lines = [f"[Peer]\nPublicKey = {key}\nAllowedIPs = 10.{240 + side.index}.{i // 250}."
                 f"{i % 250 + 1}/32\n" for i, key in enumerate(keys)]
        side.wg("addconf", side.iface, "/dev/stdin", input="".join(lines))
        if side.peer_count() != churn + 1:
            raise BenchError(f"{side.kind}: {side.peer_count()} peers after adding {churn}")
        removal = [arg for key in keys for arg in ("peer", key, "remove")]
        side.wg("set", side.iface, *removal)
        if side.peer_count() != 1:
            raise BenchError(f"{side.kind}: {side.peer_count()} peers after removing {churn}")
    return {"action": action, "seconds": 0.0}


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread \
        if spread else 0.0


def verdict(samples: list[dict], kind: str, warmup_s: float) -> dict:
    """Flat or not, after the warm-up. RSS: its least-squares trend over the last half of the
    run, extrapolated over that half, may add at most 3 % + 1 MiB. (An allocator that takes a
    step up to a new high-water mark under heavy churn and stays there is not a leak; memory
    that keeps climbing is.) fds and threads: the last quarter's maximum may not exceed the
    first quarter's. Early → late medians are reported alongside."""
    times = [s["t"] for s in samples if s["t"] >= warmup_s]
    series = [s[kind] for s in samples if s["t"] >= warmup_s]
    if len(series) < 4:
        return {"flat": False, "reason": "too few samples after warm-up"}
    quarter = max(1, len(series) // 4)
    early, late = series[:quarter], series[-quarter:]
    rss_early = statistics.median(x["rss_kib"] for x in early)
    rss_late = statistics.median(x["rss_kib"] for x in late)
    fds_early, fds_late = max(x["fds"] for x in early), max(x["fds"] for x in late)
    thr_early, thr_late = max(x["threads"] for x in early), max(x["threads"] for x in late)
    half = len(series) // 2
    trend = _slope(times[half:], [x["rss_kib"] for x in series[half:]])
    projected = trend * (times[-1] - times[half])
    problems = []
    if projected > rss_late * RSS_SLACK_FRACTION + RSS_SLACK_KIB:
        problems.append(f"RSS climbs {trend * 3600 / 1024:+.1f} MiB/h over the last half")
    if fds_late > fds_early:
        problems.append(f"fds grew {fds_early} → {fds_late}")
    if thr_late > thr_early:
        problems.append(f"threads grew {thr_early} → {thr_late}")
    return {"flat": not problems, "reason": "; ".join(problems) or None,
            "rss_kib_per_hour_last_half": round(trend * 3600),
            "rss_kib_early": rss_early, "rss_kib_late": rss_late,
            "rss_kib_max": max(x["rss_kib"] for x in series),
            "fds_early": fds_early, "fds_late": fds_late,
            "threads_early": thr_early, "threads_late": thr_late}


def soak(bed: Testbed, args: argparse.Namespace) -> dict:
    samples: list[dict] = []
    events: list[dict] = []
    handshakes_seen: set[int] = set()
    with bed.tunnel("wgpyd", "wireguard-go") as (daemon_a, daemon_b), \
            iperf3_server(bed.b):
        sides = {"a": Side(bed.a, bed.ifaces[0], "wgpyd", daemon_a.pid, 0),
                 "b": Side(bed.b, bed.ifaces[1], "wireguard-go", daemon_b.pid, 1)}
        sides["a"].peer_key, sides["b"].peer_key = sides["b"].public_key, sides["a"].public_key
        wait_for_path(bed.a, TUNNEL[1])
        start = time.monotonic()
        duration = args.minutes * 60
        next_sample = next_action = start
        step = 0
        with Traffic(bed.a, bed.b, args.rate) as traffic:
            while (now := time.monotonic()) - start < duration:
                if now >= next_sample:
                    sample = {"t": round(now - start, 2)}
                    for side in sides.values():
                        sample[side.kind] = proc_sample(side.pid)
                    rx_tx = sides["a"].wg("show", sides["a"].iface, "transfer").split()
                    sample["tx_bytes_a"] = int(rx_tx[2])
                    handshakes_seen.add(sides["a"].latest_handshake())
                    samples.append(sample)
                    while next_sample <= now:
                        next_sample += args.sample
                if now >= next_action and now - start > args.period / 2:
                    action = ACTIONS[step % len(ACTIONS)]
                    event = disturb(action, sides, args.churn, step)
                    event["t"] = round(now - start, 2)
                    events.append(event)
                    print(f"[{event['t']:7.1f} s] {action} took {event['seconds']:.1f} s",
                          file=sys.stderr, flush=True)
                    step += 1
                    next_action = now + args.period
                time.sleep(max(0.0, min(next_sample, next_action) - time.monotonic()))
        runs = {"ok": traffic.runs_ok, "failed": traffic.runs_failed,
                "ping_b_to_a": traffic.ping_summary}
    warmup = max(duration / 5, args.period)
    return {"samples": samples, "events": events, "traffic_runs": runs,
            "handshakes_seen": len(handshakes_seen - {0}), "warmup_s": warmup,
            "verdict": {kind: verdict(samples, kind, warmup)
                        for kind in ("wgpyd", "wireguard-go")}}


def chart(result: dict, path: str, title: str) -> None:
    """RSS, fds, threads and traffic over time for both daemons; matplotlib imported here so
    the soak runs without it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    minutes = [s["t"] / 60 for s in samples]
    figure, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    for kind in ("wgpyd", "wireguard-go"):
        axes[0].plot(minutes, [s[kind]["rss_kib"] / 1024 for s in samples], label=kind)
        axes[1].plot(minutes, [s[kind]["fds"] for s in samples], label=kind)
        axes[2].plot(minutes, [s[kind]["threads"] for s in samples], label=kind)
    # the counter restarts when rekey-a re-adds the peer: then the new count is the delta
    rates = [0.0] + [8 * (b["tx_bytes_a"] - a["tx_bytes_a"] if b["tx_bytes_a"] >= a["tx_bytes_a"]
                          else b["tx_bytes_a"]) / max(b["t"] - a["t"], 0.01) / 1e6
                     for a, b in itertools.pairwise(samples)]
    axes[3].plot(minutes, rates, color="gray")
    for axis, label in zip(axes, ("RSS (MiB)", "open fds", "threads", "wgpyd tx (Mbit/s)"),
                           strict=True):
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.axvline(result["warmup_s"] / 60, color="black", linestyle=":", linewidth=0.8)
    axes[0].legend()
    axes[0].set_ylim(bottom=0)
    axes[3].set_xlabel("minutes (dotted: end of warm-up)")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/soak.py: needs root (network namespaces, TUN)", file=sys.stderr)
        return 2
    raise_terminated_on_sigterm()
    stamp = machine.timestamp()
    try:
        with Testbed() as bed:
            result = soak(bed, args)
    except (KeyboardInterrupt, Terminated) as exc:
        print("bench/soak.py: interrupted; namespaces and daemons cleaned up", file=sys.stderr)
        return exit_status(exc)
    except BenchError as exc:
        print(f"bench/soak.py: {exc}", file=sys.stderr)
        return 1
    result["meta"] = {"timestamp": stamp, "machine": machine.describe(),
                      "settings": {key: getattr(args, key) for key in
                                   ("minutes", "period", "sample", "rate", "churn", "smoke")}}
    counts = {action: sum(e["action"] == action for e in result["events"])
              for action in ACTIONS}
    print(f"soak: {args.minutes:g} min, {len(result['samples'])} samples, disturbances "
          + ", ".join(f"{action} x{n}" for action, n in counts.items())
          + f", distinct handshake times sampled on wgpyd {result['handshakes_seen']}, iperf3 runs "
          f"{result['traffic_runs']['ok']} ok / {result['traffic_runs']['failed']} failed, "
          f"ping B → A: {result['traffic_runs']['ping_b_to_a']}")
    print("| daemon | RSS early → late (max) MiB | RSS trend, last half | fds early → late "
          "| threads early → late | flat |")
    print("|---|---|---|---|---|---|")
    for kind, v in result["verdict"].items():
        if "rss_kib_early" not in v:
            print(f"| {kind} | - | - | - | - | no: {v['reason']} |")
            continue
        print(f"| {kind} | {v['rss_kib_early'] / 1024:.1f} → {v['rss_kib_late'] / 1024:.1f} "
              f"({v['rss_kib_max'] / 1024:.1f}) | "
              f"{v['rss_kib_per_hour_last_half'] / 1024:+.2f} MiB/h | "
              f"{v['fds_early']} → {v['fds_late']} | "
              f"{v['threads_early']} → {v['threads_late']} | "
              f"{'yes' if v['flat'] else 'no: ' + v['reason']} |")
    path = machine.write_json(result, args.out, f"soak-{stamp}.json")
    print(f"JSON: {path}")
    with contextlib.suppress(ImportError):
        chart_path = os.path.join(args.out, f"soak-{stamp}.png")
        chart(result, chart_path, f"bench/soak.py --minutes {args.minutes:g}: wgpyd (A) ↔ "
              f"wireguard-go (B), iperf3 {args.rate}, a disturbance every {args.period:g} s")
        print(f"chart: {chart_path}")
    return 0 if result["verdict"]["wgpyd"]["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""`python3 bench/flood.py` (root): a handshake flood against wgpyd and wireguard-go, same run.

Three namespaces on a bridge (in the victim's namespace): the victim (wgpyd or wireguard-go),
a legitimate peer (always wireguard-go) with an established tunnel to it, and an attacker that
knows only the victim's public key. The attacker (flood_sender.py) sends handshake initiations
with a valid mac1 and random contents, round-robin from `--sources` addresses, at each rate of
`--rates` (`max`: as fast as one Python process can); in the `+mac2` variant from
`--mac2-sources` addresses only, answering the victim's cookie replies so that its initiations
carry a valid mac2.

Per victim: first a baseline without attack (iperf3 TCP legit → victim, pings every 0.1 s),
then per attack, after a one-second start: the same iperf3 run and pings, while the victim's
UAPI socket is asked `get=1` every 0.25 s (what `wg show` sends) and its RSS is sampled; then
the legitimate daemon is restarted (stopped, started afresh with the same key, configured) and
the time until its first ping through the tunnel comes back is taken (a new handshake, under
the flood). Reported: attack rate achieved, throughput kept (% of the baseline), ping loss %,
the restarted peer's handshake time, victim RSS, UAPI latency, victim CPU.

Everything created carries this process's PID; every exit path stops the daemons, iperf3, ping
and the attacker by PID and deletes the namespaces. Hold /tmp/wgpy-bench.lock while measuring.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import machine
from probes import iperf3, iperf3_server, wait_for_path
from testbed import (
    MTU,
    NS_PREFIX,
    SOCKET_DIR,
    BenchError,
    Daemon,
    Namespace,
    Terminated,
    cpu_seconds,
    daemon,
    exit_status,
    genkey,
    raise_terminated_on_sigterm,
    run,
    status_kib,
    stop_process,
)

from wgpy.uapi.client import get_drops

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
KINDS = ("wireguard-go", "wgpyd")
VICTIM, LEGIT = "10.203.0.1", "10.203.0.2"
ATTACKER_NET = "10.203.{}.{}"  # attacker sources: 10.203.1.1 onwards
TUNNEL_VICTIM, TUNNEL_LEGIT = "10.204.0.1", "10.204.0.2"
VICTIM_PORT, LEGIT_PORT = 51910, 51911
PING_INTERVAL = 0.1
UAPI_INTERVAL = 0.25
_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/flood.py", description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="5000,20000,40000,60000,100000,max",
                        help="attack rates, initiations/s ('max': as fast as the sender can)")
    parser.add_argument("--mac2-rate", default="40000,max",
                        help="rates of the valid-mac2 variant ('none' skips it)")
    parser.add_argument("--sources", type=int, default=64, help="attacker source addresses")
    parser.add_argument("--mac2-sources", type=int, default=4,
                        help="source addresses of the valid-mac2 variant")
    parser.add_argument("--seconds", type=float, default=8, help="iperf3/ping time per attack")
    parser.add_argument("--restart-timeout", type=float, default=20,
                        help="give up on the restarted peer's handshake after this")
    parser.add_argument("--only", default=",".join(KINDS), help="victims: wgpyd,wireguard-go")
    parser.add_argument("--rounds", type=int, default=1, help="victims alternate each round")
    parser.add_argument("--smoke", action="store_true",
                        help="one attack at 5000/s for 2 s per victim, no valid-mac2 variant (CI)")
    parser.add_argument("--out", default=machine.RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.smoke:
        args.rates, args.mac2_rate, args.seconds, args.sources = "5000", "none", 2, 16
    args.only = [kind for kind in args.only.split(",") if kind]
    if not set(args.only) <= set(KINDS):
        parser.error(f"--only takes {', '.join(KINDS)}")
    attacks = [{"rate": rate, "mac2": False} for rate in args.rates.split(",") if rate]
    if args.mac2_rate != "none":
        attacks += [{"rate": rate, "mac2": True} for rate in args.mac2_rate.split(",") if rate]
    for attack in attacks:
        if attack["rate"] != "max" and not attack["rate"].isdigit():
            parser.error(f"bad rate {attack['rate']!r}: a number or 'max'")
    args.attacks = attacks
    return args


def attack_label(attack: dict) -> str:
    rate = "max" if attack["rate"] == "max" else f"{int(attack['rate']):,}/s"
    return f"{rate} +mac2" if attack["mac2"] else rate


class Topology:
    """Victim V, legitimate peer L and attacker X; V holds the bridge that L's and X's veths
    join. X has one address per attacker source."""

    def __init__(self, sources: int) -> None:
        tag = str(os.getpid())
        self.tag = tag
        self.names = {role: f"{NS_PREFIX}{role}{tag}" for role in "vlx"}
        self.bridge = f"wbf{tag}"
        self.sources = [ATTACKER_NET.format(1 + i // 250, 1 + i % 250) for i in range(sources)]
        self.victim_iface, self.legit_iface = f"wb{tag}v", f"wb{tag}l"
        self._stack = contextlib.ExitStack()
        self.keydir = ""

    def __enter__(self) -> "Topology":
        try:
            self.v, self.l, self.x = (self._stack.enter_context(Namespace(self.names[role]))
                                      for role in "vlx")
            self.keydir = self._stack.enter_context(tempfile.TemporaryDirectory())
            self.v.run("ip", "link", "add", self.bridge, "type", "bridge")
            self.v.run("ip", "addr", "add", f"{VICTIM}/16", "dev", self.bridge)
            self.v.run("ip", "link", "set", self.bridge, "up")
            for ns, role in ((self.l, "l"), (self.x, "x")):
                inside, port = f"wbf{self.tag}{role}", f"wbf{self.tag}{role}b"
                run("ip", "link", "add", inside, "netns", ns.name, "type", "veth",
                    "peer", "name", port, "netns", self.v.name)
                self.v.run("ip", "link", "set", port, "master", self.bridge, "up")
                addresses = [LEGIT] if role == "l" else self.sources
                batch = "".join(f"addr add {a}/16 dev {inside}\n" for a in addresses)
                ns.run("ip", "-batch", "-", input=batch)
                ns.run("ip", "link", "set", inside, "up")
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def key_file(self, name: str, private: str) -> str:
        path = os.path.join(self.keydir, name)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(private + "\n")
        return path


def configure(ns: Namespace, iface: str, key_file: str, port: int, peer: str, allowed: str,
              address: str, endpoint: str | None) -> None:
    argv = ["wg", "set", iface, "private-key", key_file, "listen-port", str(port),
            "peer", peer, "allowed-ips", allowed]
    if endpoint:
        argv += ["endpoint", endpoint]
    ns.run(*argv)
    ns.run("ip", "addr", "add", f"{address}/24", "dev", iface)
    ns.run("ip", "link", "set", iface, "mtu", str(MTU), "up")


class Legit:
    """The legitimate peer's wireguard-go, which can be restarted with the same key."""

    def __init__(self, topo: Topology, victim_public: str) -> None:
        self.topo = topo
        self.victim_public = victim_public
        self.private, self.public = genkey()
        self.key_file = topo.key_file("legit", self.private)
        self._stack: contextlib.ExitStack | None = None

    def start(self) -> None:
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(daemon(self.topo.l, "wireguard-go", self.topo.legit_iface))
            configure(self.topo.l, self.topo.legit_iface, self.key_file, LEGIT_PORT,
                      self.victim_public, f"{TUNNEL_VICTIM}/32", TUNNEL_LEGIT,
                      f"{VICTIM}:{VICTIM_PORT}")
        except BaseException:
            stack.close()
            raise
        self._stack = stack

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


@contextlib.contextmanager
def attacker(topo: Topology, victim_public: str, attack: dict, sources: int,
             mac2_sources: int) -> Iterator[dict]:
    """flood_sender.py in X for the block; yields its statistics once it is stopped."""
    chosen = topo.sources[:mac2_sources] if attack["mac2"] else topo.sources[:sources]
    rate = "0" if attack["rate"] == "max" else attack["rate"]
    argv = [sys.executable, os.path.join(BENCH_DIR, "flood_sender.py"),
            "--victim", f"{VICTIM}:{VICTIM_PORT}", "--public-key", victim_public,
            "--sources", ",".join(chosen), "--rate", rate] + (["--mac2"] if attack["mac2"] else [])
    process = topo.x.popen(*argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stats: dict = {}
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise BenchError(f"attacker did not start: {process.communicate()[1].strip()[-200:]}")
        yield stats
    finally:
        stop_process(process, grace=10)
        out, err = process.communicate()
        lines = out.strip().splitlines()
        try:
            stats.update(json.loads(lines[-1]))
        except (IndexError, json.JSONDecodeError):
            stats["error"] = err.strip()[-200:] or "no statistics"


def uapi_get(iface: str, timeout: float = 10.0) -> tuple[float, str]:
    """One `get=1` on the UAPI socket, as `wg show` sends it: (seconds taken, reply)."""
    start = time.monotonic()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(os.path.join(SOCKET_DIR, f"{iface}.sock"))
        sock.sendall(b"get=1\n\n")
        reply = b""
        while not reply.endswith(b"\n\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    return time.monotonic() - start, reply.decode(errors="replace")


def wgpy_drops(iface: str) -> dict[str, int]:
    """wgpyd's non-zero drop counters (its own UAPI request; wireguard-go has none)."""
    return {reason: count for reason, count in get_drops(iface).items() if count}


class Sampler:
    """In a thread: UAPI `get=1` latency every UAPI_INTERVAL and the victim's RSS."""

    def __init__(self, victim: Daemon) -> None:
        self.victim = victim
        self.latencies: list[float] = []
        self.failures = 0
        self.rss_kib: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.latencies.append(uapi_get(self.victim.iface)[0])
            except OSError:
                self.failures += 1
            with contextlib.suppress(OSError, BenchError):
                self.rss_kib.append(status_kib(self.victim.pid, "VmRSS"))
            self._stop.wait(UAPI_INTERVAL)


def ping_loss(process: subprocess.Popen) -> tuple[int, int]:
    out, _ = process.communicate(timeout=30)
    match = _PING_SUMMARY.search(out)
    if not match:
        raise BenchError(f"ping: no summary in {out.strip()[-120:]!r}")
    return int(match.group(1)), int(match.group(2))


def traffic(topo: Topology, seconds: float) -> dict:
    """iperf3 TCP legit → victim for `seconds`, with pings alongside."""
    count = int(seconds / PING_INTERVAL)
    ping = topo.l.popen("ping", "-q", "-n", "-i", f"{PING_INTERVAL:g}", "-c", str(count),
                        "-W", "1", TUNNEL_VICTIM, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True)
    try:
        try:
            tcp = iperf3(topo.l, TUNNEL_VICTIM, seconds)
        except BenchError as exc:  # a tunnel that carried nothing: 0, not a failed run
            tcp = {"mbps": 0.0, "error": str(exc)}
        sent, received = ping_loss(ping)
    finally:
        stop_process(ping)
    return {"tcp_mbps": tcp["mbps"], "tcp_error": tcp.get("error"),
            "pings_sent": sent, "pings_received": received,
            "ping_loss_pct": 100.0 * (sent - received) / sent if sent else None}


def restart_handshake(topo: Topology, legit: Legit, timeout: float) -> float | None:
    """Restart the legitimate daemon; seconds from its configured link to its first ping
    reply through the victim (None: not within `timeout`)."""
    legit.stop()
    legit.start()
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if topo.l.run("ping", "-n", "-c", "1", "-W", "1", TUNNEL_VICTIM,
                      check=False).returncode == 0:
            return time.monotonic() - start
    return None


def measure_victim(topo: Topology, kind: str, args: argparse.Namespace) -> list[dict]:
    """Baseline, then each attack, against a fresh `kind` victim."""
    records = []
    victim_private, victim_public = genkey()
    with contextlib.ExitStack() as stack:
        victim = stack.enter_context(daemon(topo.v, kind, topo.victim_iface))
        legit = Legit(topo, victim_public)
        stack.callback(legit.stop)
        configure(topo.v, topo.victim_iface, topo.key_file("victim", victim_private),
                  VICTIM_PORT, legit.public, f"{TUNNEL_LEGIT}/32", TUNNEL_VICTIM, None)
        legit.start()
        stack.enter_context(iperf3_server(topo.v))
        wait_for_path(topo.l, TUNNEL_VICTIM)
        base = traffic(topo, args.seconds)
        records.append({"victim": kind, "attack": None, "status": "ok", **base})
        print(f"{kind:<12} baseline   tcp {base['tcp_mbps']:7.0f} Mbit/s  "
              f"ping loss {base['ping_loss_pct']:.0f}%", file=sys.stderr, flush=True)
        for attack in args.attacks:
            record = {"victim": kind, "attack": attack, "label": attack_label(attack)}
            try:
                record |= {"status": "ok", **flood(topo, victim, legit, victim_public, attack,
                                                   base, args)}
            except BenchError as exc:
                record |= {"status": "failed", "reason": str(exc)}
            records.append(record)
            print(progress(record), file=sys.stderr, flush=True)
    return records


def flood(topo: Topology, victim: Daemon, legit: Legit, victim_public: str, attack: dict,
          base: dict, args: argparse.Namespace) -> dict:
    is_wgpyd = victim.kind == "wgpyd"
    drops_before = wgpy_drops(victim.iface) if is_wgpyd else {}
    cpu_before = cpu_seconds(victim.pid)
    started = time.monotonic()
    with attacker(topo, victim_public, attack, args.sources, args.mac2_sources) as sent:
        time.sleep(1.0)  # let the victim's load state settle
        with Sampler(victim) as sampler:
            during = traffic(topo, args.seconds)
            handshake_s = restart_handshake(topo, legit, args.restart_timeout)
        cpu = cpu_seconds(victim.pid) - cpu_before
        elapsed = time.monotonic() - started
        drops = wgpy_drops(victim.iface) if is_wgpyd else {}
    if "error" in sent:
        raise BenchError(f"attacker: {sent['error']}")
    if handshake_s is None:  # make sure the next attack starts from a working tunnel
        wait_for_path(topo.l, TUNNEL_VICTIM, timeout=30)
    latencies = sorted(sampler.latencies)
    return {
        **during,
        "kept_pct": 100.0 * during["tcp_mbps"] / base["tcp_mbps"] if base["tcp_mbps"] else None,
        "baseline_mbps": base["tcp_mbps"],
        "attack_rate": (sent["sent"] - sent["errors"]) / sent["seconds"],
        "attack_sent": sent["sent"], "attack_errors": sent["errors"],
        "attack_cookies": sent["cookies"],
        "restart_handshake_s": handshake_s,
        "rss_max_mib": max(sampler.rss_kib) / 1024 if sampler.rss_kib else None,
        "uapi_median_ms": 1000 * statistics.median(latencies) if latencies else None,
        "uapi_max_ms": 1000 * latencies[-1] if latencies else None,
        "uapi_failures": sampler.failures,
        "victim_cpu_pct": 100.0 * cpu / elapsed,
        "victim_drops": {reason: count - drops_before.get(reason, 0)
                         for reason, count in drops.items()
                         if count > drops_before.get(reason, 0)},
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def progress(record: dict) -> str:
    head = f"{record['victim']:<12} {record['label']:<14}"
    if record["status"] != "ok":
        return f"{head} failed: {record['reason']}"
    return (f"{head} sent {record['attack_rate']:8.0f}/s  tcp {record['tcp_mbps']:6.0f} Mbit/s "
            f"({_fmt(record['kept_pct'], '.0f')}%)  ping loss {record['ping_loss_pct']:.0f}%  "
            f"restart {_fmt(record['restart_handshake_s'], '.1f')} s  "
            f"uapi max {_fmt(record['uapi_max_ms'], '.0f')} ms  "
            f"rss {_fmt(record['rss_max_mib'], '.1f')} MiB  cpu {record['victim_cpu_pct']:.0f}%")


COLUMNS = ("victim", "attack", "runs ok", "sent/s", "TCP Mbit/s", "kept %", "ping loss %",
           "restart handshake s", "RSS MiB", "UAPI median ms", "UAPI max ms", "victim CPU %")


def summarize(records: list[dict]) -> list[dict]:
    """Medians per (victim, attack) over the rounds."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        if record["attack"] is not None:
            groups.setdefault((record["victim"], record["label"]), []).append(record)
    rows = []
    for (kind, label), group in groups.items():
        ok = [r for r in group if r["status"] == "ok"]

        def med(key: str, ok=ok) -> float | None:
            values = [r[key] for r in ok if r[key] is not None]
            return statistics.median(values) if values else None

        handshakes = [r["restart_handshake_s"] for r in ok]
        rows.append({"victim": kind, "attack": label, "runs_ok": f"{len(ok)}/{len(group)}",
                     "sent": med("attack_rate"), "tcp": med("tcp_mbps"), "kept": med("kept_pct"),
                     "loss": med("ping_loss_pct"),
                     # a restart that never got through counts as worst
                     "handshake": (None if not handshakes or None in handshakes
                                   else statistics.median(handshakes)),
                     "handshake_failed": sum(h is None for h in handshakes),
                     "rss": med("rss_max_mib"), "uapi_median": med("uapi_median_ms"),
                     "uapi_max": med("uapi_max_ms"), "cpu": med("victim_cpu_pct")})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    attacks = list(dict.fromkeys(row["attack"] for row in rows))  # in the order they ran
    for row in sorted(rows, key=lambda r: (attacks.index(r["attack"]), r["victim"])):
        handshake = (f"none in {row['handshake_failed']} run(s)" if row["handshake_failed"]
                     else _fmt(row["handshake"], ".1f"))
        cells = [row["victim"], row["attack"], row["runs_ok"], _fmt(row["sent"], ",.0f"),
                 _fmt(row["tcp"], ".0f"), _fmt(row["kept"], ".0f"), _fmt(row["loss"], ".1f"),
                 handshake, _fmt(row["rss"], ".1f"), _fmt(row["uapi_median"], ".1f"),
                 _fmt(row["uapi_max"], ".1f"), _fmt(row["cpu"], ".0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(records: list[dict], path: str, title: str, restart_timeout: float) -> None:
    """Kept and absolute throughput, ping loss and restart handshake time against the attack
    rate achieved: a dot per run, a line through each attack's medians per victim
    (valid-mac2 runs as squares)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("kept_pct", "TCP kept, % of baseline"), ("tcp_mbps", "TCP under attack, Mbit/s"),
              ("ping_loss_pct", "ping loss, %"),
              ("restart_handshake_s", "restarted peer's handshake, s"))
    figure, axes = plt.subplots(1, len(panels), figsize=(19, 4.5))
    colors = {"wgpyd": "tab:blue", "wireguard-go": "tab:orange"}
    for axis, (key, heading) in zip(axes, panels, strict=True):
        for kind in KINDS:
            for mac2, marker, style in ((False, "o", "-"), (True, "s", "none")):
                runs = [r for r in records if r["victim"] == kind and r["status"] == "ok"
                        and r["attack"] is not None and r["attack"]["mac2"] == mac2]
                values = [restart_timeout if r[key] is None else r[key] for r in runs]
                axis.scatter([r["attack_rate"] for r in runs], values, s=10, alpha=0.4,
                             color=colors[kind], marker=marker)
                medians = []
                for label in dict.fromkeys(r["label"] for r in runs):
                    group = [(r, v) for r, v in zip(runs, values, strict=True)
                             if r["label"] == label]
                    medians.append((statistics.median(r["attack_rate"] for r, _ in group),
                                    statistics.median(v for _, v in group)))
                medians.sort()
                if medians:
                    axis.plot([m[0] for m in medians], [m[1] for m in medians], marker=marker,
                              linestyle=style, color=colors[kind],
                              label=f"{kind}{' +mac2' if mac2 else ''}")
        axis.set_title(heading)
        axis.set_xlabel("attack initiations/s achieved")
        axis.set_xscale("log")
        axis.grid(alpha=0.3)
        if key == "restart_handshake_s":
            axis.axhline(restart_timeout, color="grey", linestyle=":", linewidth=1)
            axis.text(0.01, restart_timeout, "gave up", va="bottom", color="grey", fontsize=8,
                      transform=axis.get_yaxis_transform())
    axes[0].legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


REQUIRED_TOOLS = ("ip", "wg", "wireguard-go", "iperf3", "ping", "ss")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/flood.py: needs root (network namespaces, TUN)", file=sys.stderr)
        return 2
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        print(f"bench/flood.py: missing tools: {' '.join(missing)}", file=sys.stderr)
        return 2
    raise_terminated_on_sigterm()
    stamp = machine.timestamp()
    records: list[dict] = []
    try:
        with Topology(args.sources) as topo:
            for round_index in range(args.rounds):
                kinds = args.only if round_index % 2 == 0 else args.only[::-1]
                for kind in kinds:
                    try:
                        for record in measure_victim(topo, kind, args):
                            records.append({"round": round_index + 1, **record})
                    except BenchError as exc:
                        records.append({"round": round_index + 1, "victim": kind,
                                        "attack": None, "status": "failed", "reason": str(exc)})
                        print(f"{kind}: failed: {exc}", file=sys.stderr, flush=True)
    except (KeyboardInterrupt, Terminated) as exc:
        print("bench/flood.py: interrupted; namespaces and processes cleaned up",
              file=sys.stderr)
        return exit_status(exc)
    except BenchError as exc:
        print(f"bench/flood.py: testbed: {exc}", file=sys.stderr)
        return 2
    rows = summarize(records)
    print(table(rows))
    settings = {key: getattr(args, key) for key in
                ("rates", "mac2_rate", "sources", "mac2_sources", "seconds", "restart_timeout",
                 "rounds", "smoke")}
    data = {"meta": {"timestamp": stamp, "machine": machine.describe(), "settings": settings},
            "runs": records, "summary": rows}
    path = machine.write_json(data, args.out, f"{stamp}-flood.json")
    print(f"\nJSON: {path}")
    try:
        png = os.path.join(args.out, f"{stamp}-flood.png")
        chart(records, png, f"handshake flood, {args.sources} sources "
              f"({args.mac2_sources} for +mac2), {args.seconds:g} s per attack, "
              f"{machine.describe()['nproc']} CPUs", args.restart_timeout)
        print(f"chart: {png}")
    except ImportError:
        print("chart: skipped (matplotlib is not installed: "
              "pip install -r bench/requirements.txt)")
    failed = [r for r in records if r["status"] != "ok"]
    for record in failed:
        print(f"failed: {record['victim']} {record.get('label', '')}: {record['reason']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

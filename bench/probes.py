"""What the throughput benchmark measures: iperf3 runs, idle ping RTT, kernel UDP counters.

Each probe runs a real tool inside a namespace and returns plain numbers, so the JSON record
of a run can be re-read without this code.
"""

import contextlib
import json
import re
import statistics
import subprocess
import time
from collections.abc import Iterator

from testbed import BenchError, Namespace, stop_process

IPERF_PORT = 5201
# UDP payload per datagram: 1350 + 28 header bytes fit the 1420-byte tunnel MTU, and the raw
# veth run sends the same datagrams, so the packet rates compare.
UDP_PAYLOAD = 1350
UDP_COUNTERS = ("UdpInDatagrams", "Udp6InDatagrams", "UdpInErrors", "Udp6InErrors",
                "UdpRcvbufErrors", "Udp6RcvbufErrors", "UdpSndbufErrors", "Udp6SndbufErrors")
RTT = re.compile(r"time=([0-9.]+) ms")
_SKMEM_DROPS = re.compile(r"skmem:\([^)]*,d(\d+)\)")


@contextlib.contextmanager
def iperf3_server(ns: Namespace, timeout: float = 5.0) -> Iterator[None]:
    """An iperf3 server in `ns` for the duration of the block, stopped by PID."""
    process = ns.popen("iperf3", "-s", "-p", str(IPERF_PORT), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not ns.run("ss", "-Hltn", f"sport = :{IPERF_PORT}").stdout.strip():
            if process.poll() is not None:
                raise BenchError(f"iperf3 server exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise BenchError("iperf3 server is not listening")
            time.sleep(0.02)
        yield
    finally:
        stop_process(process)


def iperf3(ns: Namespace, server: str, seconds: float, streams: int = 1,
           udp_rate: str | None = None) -> dict:
    """One iperf3 client run from `ns`; receiver-side bytes and rate (and UDP loss)."""
    argv = ["iperf3", "-c", server, "-p", str(IPERF_PORT), "-t", f"{seconds:g}",
            "-P", str(streams), "--json", "--connect-timeout", "5000"]
    if udp_rate:
        argv += ["-u", "-b", udp_rate, "-l", str(UDP_PAYLOAD)]
    for _attempt in range(20):
        result = ns.run(*argv, timeout=seconds + 30, check=False)
        try:
            data = json.loads(result.stdout)
        except json.JSONDecodeError:
            detail = result.stderr.strip() or result.stdout.strip()[:200] or "no output"
            raise BenchError(f"iperf3 exit {result.returncode}: {detail}") from None
        if "server is busy" not in data.get("error", ""):
            break
        time.sleep(0.25)  # the server is still closing the previous test
    if "error" in data:
        raise BenchError(f"iperf3: {data['error']}")
    received = data["end"]["sum_received"]
    out = {"bytes": received["bytes"], "mbps": received["bits_per_second"] / 1e6,
           "seconds": received["seconds"]}
    if udp_rate:
        out["lost_packets"] = received["lost_packets"]
        out["packets"] = received["packets"]
        out["loss_percent"] = received["lost_percent"]
    else:
        out["retransmits"] = data["end"]["sum_sent"].get("retransmits", 0)
    return out


def wait_for_path(ns: Namespace, address: str, timeout: float = 10.0) -> None:
    """Ping until one reply comes back: the handshake is done and the path carries data."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ns.run("ping", "-n", "-c", "1", "-W", "1", address, check=False).returncode == 0:
            return
    raise BenchError(f"no ping reply from {address} within {timeout:.0f} s (handshake?)")


def ping_rtts(ns: Namespace, address: str, count: int, interval: float) -> list[float]:
    """Round-trip times in ms of `count` pings at `interval` seconds on an idle path."""
    result = ns.run("ping", "-n", "-c", str(count), "-i", f"{interval:g}", "-W", "1", address,
                    check=False, timeout=count * interval + 10)
    rtts = [float(match) for match in RTT.findall(result.stdout)]
    if not rtts:
        raise BenchError(f"ping {address}: no replies")
    return rtts


def median(values: list[float]) -> float:
    return statistics.median(values)


def udp_counters(ns: Namespace) -> dict[str, int]:
    """Absolute kernel UDP counters of the namespace (`nstat -a`: no history file involved,
    which matters because nstat's history is per user, not per namespace)."""
    output = ns.run("nstat", "-asz", *UDP_COUNTERS).stdout
    counters = dict.fromkeys(UDP_COUNTERS, 0)
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] in counters:
            counters[fields[0]] = int(fields[1])
    return counters


def socket_drops(ns: Namespace, port: int) -> int:
    """Receive drops on the sockets bound to `port` (`ss -m`, skmem `d`): the daemon's own,
    which the namespace-wide UDP counters mix with iperf3's. Counted in socket buffers: a UDP
    GRO socket (wgpyd) drops whole coalesced bundles, one count each."""
    output = ns.run("ss", "-H", "-u", "-a", "-n", "-m", f"sport = :{port}").stdout
    return sum(int(drops) for drops in _SKMEM_DROPS.findall(output))


def link_drops(ns: Namespace, iface: str) -> dict[str, int]:
    """Packets the kernel dropped on a link: on a TUN, `tx_dropped` are packets the daemon
    did not read in time (its queue was full), `rx_dropped` packets it wrote that the stack
    refused. Together with the UDP counters this says where a UDP test's loss happened."""
    (link,) = json.loads(ns.run("ip", "-s", "-j", "link", "show", iface).stdout)
    stats = link["stats64"]
    return {"tx_dropped": stats["tx"]["dropped"], "rx_dropped": stats["rx"]["dropped"]}


def counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in before}


def drop_percent(delta: dict[str, int]) -> float:
    """Datagrams the kernel dropped at receive (InErrors, which includes RcvbufErrors) as a
    share of all datagrams that reached a socket (delivered + dropped), v4 and v6."""
    drops = delta["UdpInErrors"] + delta["Udp6InErrors"]
    total = delta["UdpInDatagrams"] + delta["Udp6InDatagrams"] + drops
    return 100.0 * drops / total if total else 0.0

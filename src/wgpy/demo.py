"""`python3 -m wgpy.demo`: a real wgpy tunnel on one machine, shown step by step.

Two network namespaces joined by a veth pair play two hosts. Each runs `wgpyd`, configured
through its UAPI socket with the real `wg set`; then a ping and a short TCP transfer cross the
tunnel and `wg show` prints both ends. Everything it creates is removed at the end, also on error.
Needs root (namespaces, TUN). Without root it runs the in-memory core demo instead.
"""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64
from wgpy.inmemory import Pair, ipv4_packet
from wgpy.uapi.client import get_drops
from wgpy.uapi.text import socket_path


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def run(*args: str, check: bool = True, show: bool = True) -> subprocess.CompletedProcess:
    if show:
        print("   $", " ".join(args), flush=True)
    result = subprocess.run(args, capture_output=True, text=True)
    if show and (result.stdout or result.stderr):
        print("     " + (result.stdout + result.stderr).rstrip().replace("\n", "\n     "))
    if check and result.returncode != 0:
        raise RuntimeError(f"command failed ({result.returncode}): {' '.join(args)}")
    return result


def in_ns(ns: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return run("ip", "netns", "exec", ns, *args, **kwargs)


def wg_command() -> list[str]:
    """The control tool: the real `wg` (it speaks UAPI to wgpyd as to wireguard-go)."""
    return ["wg"]


def print_drops(iface: str) -> None:
    """The drop counters, wgpyd's own UAPI request (`wgpy_get=1`)."""
    drops = get_drops(iface)
    print("     " + ", ".join(f"{k}={v}" for k, v in drops.items()))


@contextlib.contextmanager
def host(name: str, iface: str) -> Iterator[subprocess.Popen]:
    """A namespace running `wgpyd -f iface`; torn down on exit."""
    run("ip", "netns", "add", name)
    daemon = None
    try:
        run("ip", "-n", name, "link", "set", "lo", "up")
        daemon = subprocess.Popen(
            ["ip", "netns", "exec", name, sys.executable, "-m", "wgpy.daemon", "-f", iface],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 10
        while not os.path.exists(socket_path(iface)):
            if daemon.poll() is not None or time.monotonic() > deadline:
                error = daemon.stderr.read() if daemon.stderr else ""
                raise RuntimeError(f"wgpyd did not start: {error}")
            time.sleep(0.05)
        print(f"   wgpyd {iface} running in namespace {name} (pid {daemon.pid})")
        yield daemon
    finally:
        if daemon is not None:
            run("ip", "-n", name, "link", "del", iface, check=False, show=False)
            try:
                daemon.wait(timeout=5)
            except subprocess.TimeoutExpired:
                daemon.terminate()
                daemon.wait(timeout=5)
        run("ip", "netns", "del", name, check=False, show=False)


def real_tunnel() -> None:
    suffix = str(os.getpid() % 10000)
    ns_a, ns_b = f"wgpy-demo-a{suffix}", f"wgpy-demo-b{suffix}"
    if_a, if_b = f"wgdemoa{suffix}", f"wgdemob{suffix}"
    key_a, key_b = generate_private_key(os.urandom), generate_private_key(os.urandom)
    wg = wg_command()
    with tempfile.TemporaryDirectory() as keydir:
        files = {}
        for label, key in (("a", key_a), ("b", key_b)):
            files[label] = os.path.join(keydir, label)
            with open(os.open(files[label], os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
                handle.write(key_to_base64(key) + "\n")
        step("Two hosts: network namespaces joined by a veth pair (the 'underlay')")
        with host(ns_a, if_a), host(ns_b, if_b):
            run("ip", "link", "add", f"vda{suffix}", "netns", ns_a, "type", "veth",
                "peer", "name", f"vdb{suffix}", "netns", ns_b)
            for ns, dev, address in ((ns_a, f"vda{suffix}", "192.168.240.1/24"),
                                     (ns_b, f"vdb{suffix}", "192.168.240.2/24")):
                run("ip", "-n", ns, "addr", "add", address, "dev", dev)
                run("ip", "-n", ns, "link", "set", dev, "up")
            step("Configure both ends over their UAPI sockets with the real `wg set`")
            in_ns(ns_a, *wg, "set", if_a, "private-key", files["a"], "listen-port", "51820",
                  "peer", key_to_base64(public_key(key_b)), "allowed-ips", "10.240.0.2/32",
                  "endpoint", "192.168.240.2:51821")
            in_ns(ns_b, *wg, "set", if_b, "private-key", files["b"], "listen-port", "51821",
                  "peer", key_to_base64(public_key(key_a)), "allowed-ips", "10.240.0.1/32")
            for ns, dev, address in ((ns_a, if_a, "10.240.0.1/24"), (ns_b, if_b, "10.240.0.2/24")):
                run("ip", "-n", ns, "addr", "add", address, "dev", dev)
                run("ip", "-n", ns, "link", "set", dev, "up")
            time.sleep(0.3)
            step("Ping through the tunnel (the first packet triggers the handshake)")
            in_ns(ns_a, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.240.0.2")
            if shutil.which("iperf3"):
                step("A short TCP transfer with iperf3")
                server = subprocess.Popen(["ip", "netns", "exec", ns_b, "iperf3", "-s", "-1",
                                           "-B", "10.240.0.2"], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
                time.sleep(0.5)
                try:
                    result = in_ns(ns_a, "iperf3", "-c", "10.240.0.2", "-t", "2", show=False)
                    print("     " + "\n     ".join(result.stdout.strip().splitlines()[-4:-1]))
                finally:
                    server.wait(timeout=10)
            step("`wg show` on both ends")
            in_ns(ns_a, *wg, "show", if_a)
            in_ns(ns_b, *wg, "show", if_b)
            step("Why packets were dropped, by reason (all zero is good news)")
            print_drops(if_b)
            step("Cleaning up: deleting the interfaces stops the daemons")
    print("\nDone: namespaces, interfaces and sockets removed.")


_MESSAGE_NAMES = {1: "handshake initiation", 2: "handshake response", 3: "cookie reply",
                  4: "transport data"}


def in_memory() -> None:
    """The sans-I/O core alone: two devices handshake and exchange a packet in memory."""
    pair = Pair(seed=int.from_bytes(os.urandom(4), "little"))
    a, b = pair.a, pair.b
    step(f"A has a packet for {b.address} but no session: it queues it and sends an initiation")
    pair.send(a, ipv4_packet(a.address, b.address))
    while pair.wire:
        sender, _, datagram = pair.wire[0]
        receiver = pair.other(sender)
        print(f"   {sender.name} -> {receiver.name}: {len(datagram)} bytes, type {datagram[0]} "
              f"({_MESSAGE_NAMES.get(datagram[0], 'unknown')})")
        pair.step(1)
    print(f"   B delivers to its TUN: {b.delivered[-1]!r}")


def main() -> int:
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        print("Not root (or no /dev/net/tun): showing the in-memory core instead of a tunnel.")
        in_memory()
        return 0
    real_tunnel()
    return 0


if __name__ == "__main__":
    sys.exit(main())

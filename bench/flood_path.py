#!/usr/bin/env python3
"""`python3 bench/flood_path.py`: what one flood datagram costs wgpyd's data thread.

The listening socket's whole path for a mac1-valid initiation from an attacker who knows only
the public key (flood_sender.py's), with the device under load and each source's cookie
replies spent, as in bench/flood.py after its first second: a real UdpSocket on loopback
(recvmsg_into, PKTINFO, GRO as wgpyd opens it) drained by the loop's own `_drain_udp` into a
real Device, 64 source addresses round-robin. Datagrams are sent in chunks the socket buffer
holds and only the draining is timed (time.perf_counter), so the figure is the daemon's
side alone: reading, the core's screening and refusal, the loop's bookkeeping. No root
needed; hold /tmp/wgpy-bench.lock while measuring.
"""

import argparse
import os
import socket
import statistics
import sys
import time

import machine
from flood_sender import initiation_pool

from wgpy.core.device import Device
from wgpy.core.keys import generate_private_key
from wgpy.io.loop import Tunnel
from wgpy.io.memory import ChannelTun
from wgpy.io.udp import UdpSocket

SOURCES = 64
CHUNK = 2000  # datagrams sent before each drain (well within the 4 MiB receive buffer)


def measure(datagrams: int) -> tuple[float, dict[str, int]]:
    """Seconds per datagram over `datagrams`, and the device's drop counters."""
    device = Device(generate_private_key(os.urandom))
    assert device.public_key is not None
    tunnel = Tunnel(ChannelTun(), device, lambda port, mark: UdpSocket(port, mark),
                    keep_warm=0)
    senders = []
    try:
        tunnel._check_link()  # the interface is up: datagrams are received
        udp = tunnel.udp
        assert udp is not None
        pool = initiation_pool(device.public_key, 1024)
        for i in range(SOURCES):
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            senders.append(sender)
            sender.bind((f"127.0.1.{1 + i}", 0))
        target = ("127.0.0.1", udp.port)
        # First the cookie replies (5 a source) and the under-load state, untimed.
        for i in range(SOURCES * 8):
            senders[i % SOURCES].sendto(pool[i % len(pool)], target)
        while udp.waiting():
            tunnel._drain_udp(udp, time.monotonic())
        spent = 0.0
        sent = 0
        while sent < datagrams:
            for i in range(sent, sent + CHUNK):
                senders[i % SOURCES].sendto(pool[i % len(pool)], target)
            start = time.perf_counter()
            while udp.waiting():
                tunnel._drain_udp(udp, time.monotonic())
            spent += time.perf_counter() - start
            sent += CHUNK
        return spent / sent, {str(k): v for k, v in device.drops.items() if v}
    finally:
        for sender in senders:
            sender.close()
        tunnel._finish()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/flood_path.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--datagrams", type=int, default=40000, help="timed per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="the median is reported")
    parser.add_argument("--smoke", action="store_true", help="4,000 datagrams, 1 repeat (CI)")
    parser.add_argument("--out", default=machine.RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.smoke:
        args.datagrams, args.repeats = 4000, 1
    samples = []
    drops: dict[str, int] = {}
    for repeat in range(args.repeats):
        seconds, drops = measure(args.datagrams)
        samples.append(seconds)
        print(f"repeat {repeat + 1}/{args.repeats}: {seconds * 1e6:.2f} µs a datagram",
              file=sys.stderr)
    if drops.get("cookie_ratelimited", 0) < args.datagrams // 2:
        print(f"the flood did not take the refusal path: {drops}", file=sys.stderr)
        return 1
    median = statistics.median(samples)
    print(f"flood datagram on the listening socket: {median * 1e6:.2f} µs "
          f"(median of {args.repeats}, {args.datagrams:,} each; last drops {drops})")
    path = machine.write_json({"machine": machine.describe(), "datagrams": args.datagrams,
                               "seconds_per_datagram": samples, "median": median,
                               "drops": drops}, args.out, f"{machine.timestamp()}-flood-path.json")
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

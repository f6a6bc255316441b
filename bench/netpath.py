#!/usr/bin/env python3
"""The userspace pieces of `bench/badnet.py`, each run inside one of its namespaces.

`relay`: the middle of the path. Two UDP sockets, one facing each tunnel end; what arrives on
one leaves the other towards the configured far end, after `--delay` ms ± `--jitter` ms
(uniform, so packets overtake each other) and, for `--reorder` percent of packets, `--hold`
ms more. This is the delay/jitter/reordering that sch_netem would give; loss and duplication
are nftables' job (numgen, dup) around this relay.

`probe-send` / `probe-recv`: sequence-numbered UDP datagrams through the tunnel. The receiver
counts what the tunnel delivered: distinct sequence numbers, duplicates (a sequence number
seen twice: a replayed or duplicated outer packet that got through), and arrivals that are
out of order; it prints JSON with the arrival time of each distinct number on SIGTERM/SIGINT.
"""

import argparse
import contextlib
import heapq
import json
import random
import select
import signal
import socket
import struct
import sys
import time

PROBE = struct.Struct("!Qd")  # sequence number, send time (CLOCK_MONOTONIC, shared by netns)


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


class Stop(Exception):
    pass


def _stop(_signum: int, _frame: object) -> None:
    raise Stop


def relay(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    sockets = []
    for listen in (args.a_listen, args.b_listen):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind(address(listen))
        sock.setblocking(False)
        sockets.append(sock)
    # what arrives from A leaves through the B-facing socket to B, and the other way round
    route = {sockets[0]: (sockets[1], address(args.b_target)),
             sockets[1]: (sockets[0], address(args.a_target))}
    pending: list[tuple[float, int, socket.socket, tuple[str, int], bytes]] = []
    order = forwarded = 0
    delay, jitter, hold = args.delay / 1000, args.jitter / 1000, args.hold / 1000
    try:
        while True:
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                _, _, out, target, data = heapq.heappop(pending)
                with contextlib.suppress(OSError):  # far end not there: lost, as on a real path
                    out.sendto(data, target)
                    forwarded += 1
            timeout = max(0.0, pending[0][0] - now) if pending else 1.0
            readable, _, _ = select.select(sockets, [], [], timeout)
            now = time.monotonic()
            for sock in readable:
                out, target = route[sock]
                while True:
                    try:
                        data = sock.recv(65535)
                    except BlockingIOError:
                        break
                    due = now + delay + (rng.uniform(-jitter, jitter) if jitter else 0.0)
                    if args.reorder and rng.random() * 100 < args.reorder:
                        due += hold
                    order += 1
                    heapq.heappush(pending, (due, order, out, target, data))
    except Stop:
        print(json.dumps({"received": order, "forwarded": forwarded}), flush=True)


def probe_send(args: argparse.Namespace) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = address(args.to)
    interval = 1.0 / args.rate
    start = time.monotonic()
    padding = bytes(args.size - PROBE.size)
    for seq in range(int(args.seconds * args.rate)):
        due = start + seq * interval
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        with contextlib.suppress(OSError):  # a refusal while the tunnel is down: a lost probe
            sock.sendto(PROBE.pack(seq, time.monotonic()) + padding, target)
    print(json.dumps({"sent": int(args.seconds * args.rate)}), flush=True)


def probe_recv(args: argparse.Namespace) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(address(args.bind))
    arrivals: dict[int, float] = {}
    duplicates = out_of_order = 0
    highest = -1
    print("ready", flush=True)
    try:
        while True:
            data = sock.recv(65535)
            now = time.monotonic()
            seq, _sent = PROBE.unpack_from(data)
            if seq in arrivals:
                duplicates += 1
                continue
            arrivals[seq] = now
            if seq < highest:
                out_of_order += 1
            highest = max(highest, seq)
    except Stop:
        pass
    print(json.dumps({"received": len(arrivals), "duplicates": duplicates,
                      "out_of_order": out_of_order,
                      "arrivals": sorted(arrivals.items())}), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/netpath.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    r = commands.add_parser("relay")
    r.add_argument("--a-listen", required=True)
    r.add_argument("--a-target", required=True)
    r.add_argument("--b-listen", required=True)
    r.add_argument("--b-target", required=True)
    r.add_argument("--delay", type=float, default=0.0, help="ms")
    r.add_argument("--jitter", type=float, default=0.0, help="± ms, uniform")
    r.add_argument("--reorder", type=float, default=0.0, help="percent of packets held back")
    r.add_argument("--hold", type=float, default=20.0, help="ms a held-back packet waits more")
    r.add_argument("--seed", type=int, default=1)
    s = commands.add_parser("probe-send")
    s.add_argument("--to", required=True)
    s.add_argument("--rate", type=float, default=200.0, help="datagrams per second")
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--size", type=int, default=200)
    v = commands.add_parser("probe-recv")
    v.add_argument("--bind", required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    {"relay": relay, "probe-send": probe_send, "probe-recv": probe_recv}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""`python3 bench/set_collection.py [PEERS]`: Python's full garbage collections around a big set.

In one process, without I/O (a host whose `call` runs the function at once): a UAPI `set`
adding PEERS peers shaped as bench/scale.py's hub file (an endpoint, three prefixes, a
keepalive on every fourth), then one removing them all, as --ping-during-set sends them.
Every full collection (generation 2) that runs is timed through gc.callbacks and named by
the step it ran in: each one stops every thread, so in wgpyd it is a stall of the data
plane (bench/scale.py --ping-during-set measures that from outside). Then the full pass
that a daemon holding the peers pays from then on, and the objects it scans; and how long
the turns of a `replace_peers` set of as many other peers hold the data plane. Hold
/tmp/wgpy-bench.lock while measuring.
"""

import gc
import os
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from scale import hub_peer

from wgpy.core.device import Device
from wgpy.uapi.protocol import GetFormatter, apply_set, parse_set

T = TypeVar("T")


class Host:
    """A DeviceHost without I/O: `call` runs the function at once, the clock stands still."""

    def __init__(self) -> None:
        self.device = Device(os.urandom(32), wall_offset=1_700_000_000.0)
        self.calls_ms: list[float] = []  # how long each call held the (absent) data plane

    def listen_port(self) -> int:
        return 0

    def set_listen_port(self, port: int) -> None:
        pass

    def fwmark(self) -> int:
        return 0

    def set_fwmark(self, mark: int) -> None:
        pass

    def now(self) -> float:
        return 100.0

    def call(self, fn: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.calls_ms.append((time.perf_counter() - start) * 1000)

    def io_drops(self) -> dict[str, int]:
        return {}


def hub_lines(peers: int) -> list[str]:
    """The `set` lines of bench/scale.py's hub file (`wg addconf` of it)."""
    lines = []
    for i in range(peers):
        prefixes, endpoint, keepalive = hub_peer(i)
        lines += [f"public_key={os.urandom(32).hex()}", f"endpoint={endpoint}",
                  "replace_allowed_ips=true", *(f"allowed_ip={prefix}" for prefix in prefixes)]
        if keepalive is not None:
            lines.append(f"persistent_keepalive_interval={keepalive}")
    return lines


def main() -> None:
    peers = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    host, formatter = Host(), GetFormatter()
    step = ""
    passes: list[tuple[str, float]] = []
    started = 0.0

    def timed(phase: str, info: dict) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        elif info["generation"] == 2:
            passes.append((step, (time.perf_counter() - started) * 1000))

    lines = hub_lines(peers)
    gc.collect()
    gc.callbacks.append(timed)
    step = "parse the add"
    request = parse_set(lines)
    step = "apply the add"
    apply_set(host, request, formatter)
    del request
    step = "parse the remove"
    request = parse_set([line for key in host.device.peers
                         for line in (f"public_key={key.hex()}", "remove=true")])
    step = "apply the remove"
    apply_set(host, request, formatter)
    gc.callbacks.remove(timed)
    del request, host
    print(f"{peers} peers: full collections (ms) by step")
    for name in dict.fromkeys(name for name, _ in passes):
        print(f"  {name}: " + ", ".join(f"{ms:.0f}" for n, ms in passes if n == name))

    keep, formatter = Host(), GetFormatter()  # the same peers again, held this time
    apply_set(keep, parse_set(lines), formatter)
    formatter.reply(keep)
    gc.collect()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - start) * 1000)
    print(f"then, with {peers} peers held (and their get text): a full pass "
          f"{min(times):.0f} ms (best of 5), {len(gc.get_objects())} objects tracked")

    keep.calls_ms.clear()
    apply_set(keep, parse_set(["replace_peers=true", *hub_lines(peers)]), formatter)
    first, *middle, last = keep.calls_ms
    print(f"a replace_peers set of {peers} other peers: its first turn (removing every peer) "
          f"{first:.0f} ms, its last (with the pass) {last:.0f} ms, the others at most "
          f"{max(middle, default=0):.0f} ms")


if __name__ == "__main__":
    main()

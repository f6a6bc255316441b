#!/usr/bin/env python3
"""`python3 bench/bench_allowedips.py [--prefixes N]`: AllowedIPs build time and lookup rate.

Random IPv4 (/8-/32) and IPv6 (/16-/128) prefixes spread over 1 000 peers; lookups of random
addresses (mostly misses, the worst case for longest-prefix match), each new so the answer
cache cannot help; then the hot path: lookups among 1 000 destinations, as traffic does.
"""

import argparse
import ipaddress
import json
import random
import time

from wgpy.core.allowedips import CACHE_SIZE, AllowedIPs

HOT_DESTINATIONS = 1000
assert HOT_DESTINATIONS <= CACHE_SIZE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefixes", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=300_000)
    parser.add_argument("--smoke", action="store_true", help="20 000 prefixes, for CI")
    args = parser.parse_args()
    count = 20_000 if args.smoke else args.prefixes
    rng = random.Random(20261125)
    peers = [object() for _ in range(1000)]
    table: AllowedIPs[object] = AllowedIPs()
    started = time.perf_counter()
    distinct: set[tuple[int, int, int]] = set()
    i = 0
    while len(distinct) < count:  # random draws repeat (short IPv4 prefixes): draw until N distinct
        if i % 2:
            length = rng.randint(8, 32)
            network = rng.getrandbits(32) >> (32 - length) << (32 - length)
            table.insert(ipaddress.IPv4Network((network, length)), peers[i % 1000])
            distinct.add((4, network, length))
        else:
            length = rng.randint(16, 128)
            network = rng.getrandbits(128) >> (128 - length) << (128 - length)
            table.insert(ipaddress.IPv6Network((network, length)), peers[i % 1000])
            distinct.add((6, network, length))
        i += 1
    inserted = time.perf_counter() - started
    started = time.perf_counter()
    table.compact()
    indexed = time.perf_counter() - started
    probes = [rng.getrandbits(32).to_bytes(4, "big") if i % 2 else
              rng.getrandbits(128).to_bytes(16, "big") for i in range(args.lookups)]
    lookup = table.lookup
    started = time.perf_counter()
    for probe in probes:
        lookup(probe)
    rate = len(probes) / (time.perf_counter() - started)
    # The hot path: traffic to a working set of destinations (here 1 000), answered from the
    # cache after the first packet to each.
    working_set = probes[:HOT_DESTINATIONS]
    hot_probes = [working_set[rng.randrange(HOT_DESTINATIONS)] for _ in range(args.lookups)]
    started = time.perf_counter()
    for probe in hot_probes:
        lookup(probe)
    hot_rate = len(hot_probes) / (time.perf_counter() - started)
    result = {"prefixes": len(table), "insert_s": round(inserted, 2),
              "index_s": round(indexed, 2), "build_s": round(inserted + indexed, 2),
              "lookups_per_s": round(rate), "hot_lookups_per_s": round(hot_rate),
              "hot_destinations": HOT_DESTINATIONS}
    print(f"| prefixes | build s (insert + index) | lookups/s uncached | lookups/s hot "
          f"({HOT_DESTINATIONS:,} destinations) |\n|---|---|---|---|\n"
          f"| {len(table):,} | {inserted + indexed:.1f} ({inserted:.1f} + {indexed:.1f}) | "
          f"{rate:,.0f} | {hot_rate:,.0f} |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

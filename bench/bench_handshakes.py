#!/usr/bin/env python3
"""`python3 bench/bench_handshakes.py`: handshakes a wgpy responder completes per second.

Measured on the sans-I/O core, pinned to one CPU, so the number is the protocol's cost alone
(no sockets, no scheduler). Many initiator `Device`s (one per peer) each produce a real
handshake initiation; a responder `Device` that knows all of them as peers is then timed on
`decrypt` of the whole batch: mac1 check, Noise_IKpsk2 consumption (two DH, timestamp
replay/flood rules) and building the MAC'd response. Two cheaper paths are timed alongside
because they bound what an attacker can make us spend: initiations with a wrong mac1
(rejected after one BLAKE2s) and, under load, initiations without a valid mac2 (answered with
a cookie reply). Two more are a flood's: initiations with a valid mac1 and random contents (what
an attacker who knows only our public key sends) finished while not under load (a DH, then the
static key fails to decrypt), and refused under load from 64 sources whose cookie replies are
spent (no mac2, the cookie rate limiter's answer, decided before mac1). Every message must
take the intended path, or the run fails.
"""

import argparse
import gc
import os
import random
import statistics
import sys
import time

import machine

from wgpy.core.constants import (
    MESSAGE_HANDSHAKE_COOKIE,
    MESSAGE_HANDSHAKE_INITIATION,
    MESSAGE_HANDSHAKE_RESPONSE,
    MESSAGE_INITIATION_SIZE,
)
from wgpy.core.cookie import CookieGenerator
from wgpy.core.crypto import public_key
from wgpy.core.device import Device
from wgpy.core.drops import Drop
from wgpy.core.keys import generate_private_key

WALL_OFFSET = 1.7e9
RESPONDER = ("192.0.2.1", 51820)
# An IPv4 packet to 10.0.0.1: enough for the initiator to route it and start a handshake.
PACKET = bytes.fromhex("4500001c000000004001000000000000") + bytes([10, 0, 0, 1]) + bytes(8)
MAC1_BYTE = -20  # a byte inside mac1 (mac1 then mac2, 16 bytes each, end the message)


def build_initiators(count: int, responder_public: bytes, random_bytes) -> list[Device]:
    initiators = []
    for _ in range(count):
        device = Device(generate_private_key(random_bytes), random_bytes=random_bytes,
                        wall_offset=WALL_OFFSET)
        peer = device.add_peer(responder_public)
        device.allowed_ips.insert("0.0.0.0/0", peer)
        peer.endpoint = RESPONDER
        initiators.append(device)
    return initiators


def initiations(initiators: list[Device], now: float) -> list[tuple[bytes, tuple[str, int]]]:
    """One fresh initiation from each initiator, with a distinct source endpoint."""
    batch = []
    for i, device in enumerate(initiators):
        device.encrypt(PACKET, now)
        (_, message), = device.take_outbox()
        batch.append((message, (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 40000)))
    return batch


def forged_initiations(responder_public: bytes, count: int,
                       random_bytes) -> list[tuple[bytes, tuple[str, int]]]:
    """Random initiations with a valid mac1, round-robin from 64 source addresses."""
    macs = CookieGenerator(responder_public)
    batch = []
    for i in range(count):
        message = bytearray(random_bytes(MESSAGE_INITIATION_SIZE))
        message[0:4] = MESSAGE_HANDSHAKE_INITIATION.to_bytes(4, "little")
        macs.add_macs(message, 0.0)
        batch.append((bytes(message), (f"198.51.100.{i % 64}", 40000)))
    return batch


def responder(private_key: bytes, initiators: list[Device], random_bytes) -> Device:
    device = Device(private_key, random_bytes=random_bytes, wall_offset=WALL_OFFSET)
    for initiator in initiators:
        assert initiator.public_key is not None
        device.add_peer(initiator.public_key)
    return device


def timed(device: Device, batch: list[tuple[bytes, tuple[str, int]]], now: float) -> float:
    gc.collect()
    start = time.perf_counter()
    for message, source in batch:
        device.decrypt(message, source, now)
    return time.perf_counter() - start


def one_repeat(private_key: bytes, initiators: list[Device], now: float,
               random_bytes) -> dict[str, float]:
    """Seconds per message on each path; raises if any message took another path."""
    count = len(initiators)
    batch = initiations(initiators, now)
    results = {}

    device = responder(private_key, initiators, random_bytes)
    device.handshakes.under_load_depth = count + 1  # never under load: every message is handshaken
    results["handshake"] = timed(device, batch, now)
    replies = [message[0] for _, message in device.take_outbox()]
    if replies.count(MESSAGE_HANDSHAKE_RESPONSE) != count:
        raise RuntimeError(f"{replies.count(MESSAGE_HANDSHAKE_RESPONSE)} responses to {count} "
                           f"initiations; drops: {_nonzero(device.drops)}")

    forged = []
    for message, source in batch:
        corrupted = bytearray(message)
        corrupted[MAC1_BYTE] ^= 1
        forged.append((bytes(corrupted), source))
    device = responder(private_key, initiators, random_bytes)
    results["bad_mac1"] = timed(device, forged, now)
    if device.drops[Drop.BAD_MAC1] != count:
        raise RuntimeError(f"bad mac1 not rejected: {_nonzero(device.drops)}")

    device = responder(private_key, initiators, random_bytes)
    device.handshakes.under_load_depth = 0  # always under load: no mac2, so a cookie reply each
    results["cookie_reply"] = timed(device, batch, now)
    replies = [message[0] for _, message, _ in device.take_cookie_replies()]
    if replies.count(MESSAGE_HANDSHAKE_COOKIE) != count:
        raise RuntimeError(f"cookie replies: {replies.count(MESSAGE_HANDSHAKE_COOKIE)} of "
                           f"{count}; drops: {_nonzero(device.drops)}")

    forged = forged_initiations(public_key(private_key), count, random_bytes)
    device = responder(private_key, initiators, random_bytes)
    device.handshakes.under_load_depth = count + 1
    results["flood_finished"] = timed(device, forged, now)
    if device.drops[Drop.HANDSHAKE_FAILED] != count:
        raise RuntimeError(f"forged initiations not finished: {_nonzero(device.drops)}")
    device.handshakes.under_load_depth = 0
    replied = -1
    while device.drops[Drop.COOKIE_NEEDED] != replied:  # spend each source's cookie replies
        replied = device.drops[Drop.COOKIE_NEEDED]
        timed(device, forged, now)
    refused = device.drops[Drop.COOKIE_RATELIMITED]
    results["flood_refused"] = timed(device, forged, now)
    if device.drops[Drop.COOKIE_RATELIMITED] - refused != count:
        raise RuntimeError(f"forged initiations not refused: {_nonzero(device.drops)}")
    return {path: seconds / count for path, seconds in results.items()}


def _nonzero(drops: dict[str, int]) -> dict[str, int]:
    return {reason: n for reason, n in drops.items() if n}


def pin_to_one_cpu() -> int | None:
    """Run on a single CPU, as the title promises; returns it (None if not supported)."""
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        return None
    return cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/bench_handshakes.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=2000,
                        help="initiating peers, one initiation each per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="50 peers, 1 repeat (for CI)")
    parser.add_argument("--out", default=machine.RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.smoke:
        args.peers, args.repeats = 50, 1

    cpu = pin_to_one_cpu()
    random_bytes = random.Random(args.seed).randbytes
    private_key = generate_private_key(random_bytes)
    print(f"building {args.peers} initiators...", file=sys.stderr, flush=True)
    initiators = build_initiators(args.peers, public_key(private_key), random_bytes)

    repeats = []
    now = 1000.0
    for repeat in range(args.repeats):
        # Past REKEY_TIMEOUT, so each initiator sends a new initiation with a newer timestamp.
        now += 10.0
        per_message = one_repeat(private_key, initiators, now, random_bytes)
        repeats.append(per_message)
        print(f"repeat {repeat + 1}/{args.repeats}: "
              + "  ".join(f"{path} {1 / s:,.0f}/s" for path, s in per_message.items()),
              file=sys.stderr, flush=True)

    labels = {"handshake": "handshakes completed (responder, incl. mac1)",
              "bad_mac1": "initiations rejected for bad mac1",
              "cookie_reply": "cookie replies sent (under load, no mac2)",
              "flood_finished": "flood initiations finished (random, valid mac1; not under load)",
              "flood_refused": "flood initiations refused (under load, cookie replies spent)"}
    summary = {}
    print(f"| path ({args.peers} peers, median of {args.repeats}, CPU {cpu}) | per second "
          "| µs each |\n|---|---|---|")
    for path, label in labels.items():
        seconds = statistics.median(r[path] for r in repeats)
        summary[path] = {"per_second": 1 / seconds, "microseconds": seconds * 1e6}
        print(f"| {label} | {1 / seconds:,.0f} | {seconds * 1e6:.0f} |")
    data = {"meta": {"timestamp": machine.timestamp(), "machine": machine.describe(),
                     "settings": {"peers": args.peers, "repeats": args.repeats,
                                  "seed": args.seed, "cpu": cpu, "smoke": args.smoke}},
            "repeats": repeats, "summary": summary}
    path = machine.write_json(data, args.out, f"handshakes-{data['meta']['timestamp']}.json")
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The attacker of bench/flood.py: handshake initiations with a valid mac1, as fast as asked.

It knows only the victim's public key. A pool of initiations with random ephemeral, static,
timestamp and sender index is built up front, each with the mac1 the victim checks, so sending
is a `sendto` of prepared bytes, round-robin over one socket per source address. With `--mac2`
it also reads the cookie replies the victim sends back (XChaCha20-Poly1305 under
HASH("cookie--" || victim public key), with the answered message's mac1 as associated data),
and from then on sends that source's pool with a valid mac2, which is what a real host at those
addresses could do. `--rate 0` sends as fast as this process can.

Runs until SIGTERM or SIGINT, then prints one JSON line: packets sent, send errors, seconds,
cookies taken.
"""

import argparse
import base64
import json
import os
import select
import signal
import socket
import sys
import time

from wgpy.core import crypto
from wgpy.core.constants import (
    LABEL_COOKIE,
    LABEL_MAC1,
    MESSAGE_COOKIE_REPLY_SIZE,
    MESSAGE_HANDSHAKE_COOKIE,
    MESSAGE_HANDSHAKE_INITIATION,
    MESSAGE_INITIATION_SIZE,
)
from wgpy.core.messages import COOKIE_REPLY, MAC1_OFFSET_FROM_END, MAC2_OFFSET_FROM_END

POOL = 1024
TICK = 0.001  # pacing granularity: a burst of rate/1000 initiations each millisecond


def initiation_pool(victim_public: bytes, count: int) -> list[bytes]:
    """`count` initiations with random contents and a valid mac1 (mac2 zero)."""
    mac1_key = crypto.hash_(LABEL_MAC1, victim_public)
    pool = []
    for _ in range(count):
        body = bytearray(os.urandom(MESSAGE_INITIATION_SIZE))
        body[0:4] = MESSAGE_HANDSHAKE_INITIATION.to_bytes(4, "little")
        end1 = MESSAGE_INITIATION_SIZE - MAC1_OFFSET_FROM_END
        body[end1:] = crypto.mac(mac1_key, bytes(body[:end1])) + bytes(16)
        pool.append(bytes(body))
    return pool


def with_mac2(pool: list[bytes], cookie: bytes) -> list[bytes]:
    end2 = MESSAGE_INITIATION_SIZE - MAC2_OFFSET_FROM_END
    return [message[:end2] + crypto.mac(cookie, message[:end2]) for message in pool]


class Sender:
    def __init__(self, victim: tuple[str, int], victim_public: bytes, sources: list[str],
                 mac2: bool) -> None:
        self.victim = victim
        self.pool = initiation_pool(victim_public, POOL)
        self.mac1_by_sender = {message[4:8]: message[-MAC1_OFFSET_FROM_END:-MAC2_OFFSET_FROM_END]
                               for message in self.pool}
        self.cookie_key = crypto.hash_(LABEL_COOKIE, victim_public)
        self.mac2 = mac2
        self.sockets = []
        for address in sources:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((address, 0))
            sock.setblocking(False)
            self.sockets.append(sock)
        # What each socket sends: the plain pool until its cookie arrives.
        self.pools = [self.pool] * len(self.sockets)
        self.cookies = 0
        self.sent = 0
        self.errors = 0

    def take_cookies(self) -> None:
        """Read pending cookie replies (non-blocking) and switch those sources to mac2."""
        readable, _, _ = select.select(self.sockets, [], [], 0)
        for sock in readable:
            index = self.sockets.index(sock)
            while True:
                try:
                    reply = sock.recv(2048)
                except BlockingIOError:
                    break
                if len(reply) != MESSAGE_COOKIE_REPLY_SIZE or reply[0] != MESSAGE_HANDSHAKE_COOKIE:
                    continue
                _, receiver, nonce, sealed = COOKIE_REPLY.unpack(reply)
                mac1 = self.mac1_by_sender.get(receiver.to_bytes(4, "little"))
                if mac1 is None or self.pools[index] is not self.pool:
                    continue
                try:
                    cookie = crypto.xaead_decrypt(self.cookie_key, nonce, sealed, mac1)
                except crypto.InvalidTag:
                    continue
                self.pools[index] = with_mac2(self.pool, cookie)
                self.cookies += 1

    def run(self, rate: float, stop: list[bool]) -> float:
        sockets, pools, victim = self.sockets, self.pools, self.victim
        count = len(sockets)
        start = time.monotonic()
        next_cookie_check = start
        i = 0
        while not stop[0]:
            now = time.monotonic()
            if self.mac2 and now >= next_cookie_check:
                self.take_cookies()
                next_cookie_check = now + 0.05
            if rate:
                due = min(int((now - start) * rate) - self.sent, 4096)
                if due <= 0:
                    time.sleep(TICK)
                    continue
            else:
                due = 256
            for _ in range(due):
                source = i % count
                try:
                    sockets[source].sendto(pools[source][i % POOL], victim)
                except (BlockingIOError, OSError):
                    self.errors += 1
                i += 1
            self.sent += due
        return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/flood_sender.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--victim", required=True, help="ADDRESS:PORT")
    parser.add_argument("--public-key", required=True, help="the victim's, base64")
    parser.add_argument("--sources", required=True, help="comma-separated local addresses")
    parser.add_argument("--rate", type=float, default=0, help="initiations/s (0: max)")
    parser.add_argument("--mac2", action="store_true", help="answer cookie replies: valid mac2")
    args = parser.parse_args(argv)
    host, _, port = args.victim.rpartition(":")
    sender = Sender((host, int(port)), base64.b64decode(args.public_key),
                    args.sources.split(","), args.mac2)
    stop = [False]

    def finish(_signum: int, _frame: object) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    print("ready", flush=True)
    seconds = sender.run(args.rate, stop)
    json.dump({"sent": sender.sent, "errors": sender.errors, "seconds": seconds,
               "cookies": sender.cookies}, sys.stdout)
    print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

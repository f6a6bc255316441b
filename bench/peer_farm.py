#!/usr/bin/env python3
"""Many WireGuard peers in one process, for bench/idle.py: each answers handshakes on its own
UDP port (BASE_PORT + i) with its own key, and takes keepalives; it sends nothing else.

A daemon with N peers whose endpoints are these ports completes N real handshakes and then
sends each peer its persistent keepalives, as it would to N real machines. The peers are wgpy
cores (wgpy.core.device.Device), one per key, behind one selector.

    peer_farm.py KEYFILE DAEMON_PUBLIC_KEY BASE_PORT

KEYFILE holds one base64 private key per line; "ready" is printed once every port is bound.
It serves until SIGTERM.
"""

import base64
import resource
import selectors
import signal
import socket
import sys
import time

from wgpy.core.device import Device


def main(argv: list[str]) -> int:
    key_file, daemon_key, base_port = argv[0], base64.b64decode(argv[1]), int(argv[2])
    with open(key_file) as handle:
        keys = [base64.b64decode(line) for line in handle.read().split()]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a socket per peer
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    selector = selectors.DefaultSelector()
    for index, key in enumerate(keys):
        device = Device(key, wall_offset=time.time() - time.monotonic())
        device.add_peer(daemon_key)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", base_port + index))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, device)
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            sock, device = key.fileobj, key.data
            assert isinstance(sock, socket.socket)
            try:
                data, source = sock.recvfrom(65536)
            except OSError:
                continue
            device.decrypt(data, source, time.monotonic())
            for endpoint, reply in device.take_outbox():
                sock.sendto(reply, endpoint)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

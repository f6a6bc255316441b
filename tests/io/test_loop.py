"""The data loop survives its own bugs: an exception handling one batch is logged and counted,
and the interface keeps serving."""

import os
import socket
import subprocess
import threading
import time

import pytest

from wgpy.core.device import Device
from wgpy.io.loop import Tunnel
from wgpy.io.tun import Tun

pytestmark = pytest.mark.root


def test_an_exception_in_a_batch_is_counted_and_the_loop_goes_on(root_netns):
    name = f"wgpyl{os.getpid() % 100000}"
    tun = Tun(name, mtu=1420)
    tunnel = Tunnel(tun, Device())
    seen: list[bytes] = []
    real_decrypt = tunnel.device.decrypt

    def flaky_decrypt(datagram, source, now):
        seen.append(bytes(datagram))
        if len(seen) == 1:
            raise RuntimeError("a bug in the core")
        return real_decrypt(datagram, source, now)

    tunnel.device.decrypt = flaky_decrypt  # type: ignore[method-assign]
    thread = threading.Thread(target=tunnel.run)
    try:
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        thread.start()
        deadline = time.monotonic() + 5
        while not tunnel.device.running and time.monotonic() < deadline:
            time.sleep(0.05)  # the loop notices the link is up
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for payload in (b"\x09first", b"\x09second"):
                sender.sendto(payload, ("127.0.0.1", tunnel.listen_port()))
                time.sleep(0.2)
        assert seen == [b"\x09first", b"\x09second"]
        assert tunnel.internal_errors == 1
        assert tunnel.device.drops["bad_type"] == 1  # the second went through the real core
    finally:
        tunnel.stop()
        thread.join(timeout=5)
        tun.close()
        subprocess.run(["ip", "link", "del", name], capture_output=True)

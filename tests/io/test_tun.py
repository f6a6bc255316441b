"""The TUN device: a write the kernel refuses is counted, not fatal; deletion is noticed."""

import os
import subprocess

import pytest

from wgpy.io.tun import InterfaceGone, Tun

pytestmark = pytest.mark.root


def test_refused_write_is_counted_and_the_device_keeps_working(root_netns):
    name = f"wgpyt{os.getpid() % 100000}"
    tun = Tun(name, mtu=1420)
    try:
        assert tun.vnet_hdr
        assert tun.mtu() == 1420
        # a down interface refuses writes (EIO); it is counted, not raised
        assert tun.write_batch([b"\x45" + bytes(19)]) == 1
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        # version nibble 0: the kernel refuses it with EINVAL
        assert tun.write_batch([b"\x00not an ip packet"]) == 1
        packet = bytes([0x45, 0, 0, 20]) + bytes(8) + bytes([127, 0, 0, 1, 127, 0, 0, 1])
        assert tun.write_batch([packet]) == 0
        tun.read_batch(64)  # whatever the kernel queued (e.g. IPv6 router solicitations)
        subprocess.run(["ip", "link", "del", name], check=True)
        with pytest.raises(InterfaceGone):
            tun.read_batch(8)
    finally:
        tun.close()
        subprocess.run(["ip", "link", "del", name], capture_output=True)

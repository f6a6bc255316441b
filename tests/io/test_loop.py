"""The data loop: it survives its own bugs (an exception handling one batch is logged and
counted, and the interface keeps serving), and it answers a handshake it may not trust yet (a
cookie reply under load) from the address the handshake was sent to."""

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from threadstat import voluntary_switches
from wgpy.core.constants import MESSAGE_HANDSHAKE_COOKIE
from wgpy.core.crypto import public_key
from wgpy.core.device import Device
from wgpy.core.drops import Drop
from wgpy.core.keys import generate_private_key
from wgpy.inmemory import ipv4_packet
from wgpy.io.linkwatch import LinkEvents
from wgpy.io.loop import Tunnel
from wgpy.io.tun import InterfaceGone, Tun
from wgpy.io.udp import UdpSocket

pytestmark = pytest.mark.root


@contextlib.contextmanager
def running(device: Device, up: bool = True) -> Iterator[Tunnel]:
    """A Tunnel on a fresh TUN, its loop in a thread, the interface up (unless not `up`)."""
    name = f"wgpyl{os.getpid() % 100000}"
    tun = Tun(name, mtu=1420)
    tunnel = Tunnel(tun, device, UdpSocket)
    thread = threading.Thread(target=tunnel.run)
    try:
        if up:
            subprocess.run(["ip", "link", "set", name, "up"], check=True)
        thread.start()
        deadline = time.monotonic() + 5
        while up and not tunnel.device.running and time.monotonic() < deadline:
            time.sleep(0.05)  # the loop notices the link is up
        yield tunnel
    finally:
        tunnel.stop()
        thread.join(timeout=5)
        tun.close()
        subprocess.run(["ip", "link", "del", name], capture_output=True)


def test_an_exception_in_a_batch_is_counted_and_the_loop_goes_on(root_netns):
    device = Device()
    seen: list[bytes] = []
    real_decrypt = device.decrypt

    def flaky_decrypt(datagram, source, now, context=None):
        seen.append(bytes(datagram))
        if len(seen) == 1:
            raise RuntimeError("a bug in the core")
        return real_decrypt(datagram, source, now, context)

    device.decrypt = flaky_decrypt  # type: ignore[method-assign]
    with running(device) as tunnel:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for payload in (b"\x09first", b"\x09second"):
                sender.sendto(payload, ("127.0.0.1", tunnel.listen_port()))
                time.sleep(0.2)
        assert seen == [b"\x09first", b"\x09second"]
        assert tunnel.internal_errors == tunnel.io_drops()["internal_error"] == 1
        assert tunnel.device.drops["bad_type"] == 1  # the second went through the real core


def test_the_interface_gone_while_a_datagram_is_handled_ends_the_loop(root_netns):
    """InterfaceGone met while the listening socket's datagrams are handled (a packet for a
    TUN that is no more) ends the loop as it does anywhere else: it is not a bug to count."""
    device = Device()

    def gone(datagram, source, now, context=None):
        raise InterfaceGone("wgpyl-test")

    device.decrypt = gone  # type: ignore[method-assign]
    with running(device) as tunnel:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"\x09datagram", ("127.0.0.1", tunnel.listen_port()))
        deadline = time.monotonic() + 5
        while tunnel.udp is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tunnel.udp is None  # the loop has finished (and closed its sockets)
        assert tunnel.internal_errors == 0


def test_a_datagram_right_after_link_up_is_not_lost(root_netns, monkeypatch):
    """`wg-quick up` returns once the link is up; a peer's initiation may come before the
    loop has read the link event (here: never): it must be taken, not discarded."""
    monkeypatch.setattr(LinkEvents, "drain", lambda self: False)
    with running(Device(), up=False) as tunnel:
        time.sleep(0.2)  # the loop has looked once: down
        assert not tunnel.device.running
        subprocess.run(["ip", "link", "set", tunnel.tun.name, "up"], check=True)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"\x09garbage", ("127.0.0.1", tunnel.listen_port()))
        deadline = time.monotonic() + 3
        while tunnel.device.drops["bad_type"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert tunnel.device.drops["bad_type"] == 1 and tunnel.device.running


def test_cookie_reply_leaves_from_the_address_the_initiation_was_sent_to(root_netns):
    """127.0.0.0/8 is all local: an initiation sent to 127.0.0.2 from 127.0.0.1 must be
    answered from 127.0.0.2 (the kernel would pick 127.0.0.1), and since it did not
    authenticate, nothing else we send to that endpoint sticks to 127.0.0.2."""
    server_key, client_key = generate_private_key(os.urandom), generate_private_key(os.urandom)
    server = Device(server_key)
    server.add_peer(public_key(client_key))
    server.handshakes.under_load_depth = 0  # every handshake finds us under load
    with running(server) as tunnel, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(3)
        port = tunnel.listen_port()
        client = Device(client_key)
        peer = client.add_peer(public_key(server_key))
        client.allowed_ips.insert("10.0.0.0/8", peer)
        peer.endpoint = ("127.0.0.2", port)
        assert client.encrypt(ipv4_packet("10.0.0.1", "10.0.0.2"), 0.0) is None  # staged
        [(_, initiation)] = client.take_outbox()

        sock.sendto(initiation, ("127.0.0.2", port))
        reply, sender = sock.recvfrom(2048)
        assert reply[0] == MESSAGE_HANDSHAKE_COOKIE and sender == ("127.0.0.2", port)
        assert client.decrypt(reply, ("127.0.0.2", port), 0.0) is None
        assert client.drops[Drop.BAD_COOKIE_REPLY] == 0
        assert server.drops[Drop.COOKIE_NEEDED] == 1

        assert tunnel.udp is not None
        tunnel.udp.send_batch([(("127.0.0.1", sock.getsockname()[1]), b"later")])
        assert sock.recvfrom(100) == (b"later", ("127.0.0.1", port))


def wait_for(condition, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_link_down_up_and_mtu_changes_arrive_as_events(root_netns):
    with running(Device()) as tunnel:
        name = tunnel.tun.name
        subprocess.run(["ip", "link", "set", name, "down"], check=True)
        assert wait_for(lambda: not tunnel.device.running)
        subprocess.run(["ip", "link", "set", name, "mtu", "1280", "up"], check=True)
        assert wait_for(lambda: tunnel.device.running and tunnel.device.mtu == 1280)


def test_an_idle_loop_sleeps_until_something_happens(root_netns):
    """No peer, no traffic: the loop thread blocks in epoll without a timeout (it used to
    wake every 100 ms to look at the link). Other links changing do not wake it for long:
    it reads the event and sleeps again."""
    with running(Device(), up=False) as tunnel:
        time.sleep(0.3)  # settled
        loop_thread = next(t for t in threading.enumerate() if t.ident == tunnel._thread_id)
        before = voluntary_switches(loop_thread)
        time.sleep(1.0)
        assert voluntary_switches(loop_thread) - before <= 2
        subprocess.run(["ip", "link", "set", tunnel.tun.name, "up"], check=True)
        assert wait_for(lambda: tunnel.device.running)  # woken by the link event

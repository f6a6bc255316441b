"""`wgpy reresolve`: a peer known by name moves to another address and the tunnel follows.

A's configuration names B by a hostname that resolves through A's namespace's own hosts file
(`ip netns exec` binds /etc/netns/NAME/hosts over /etc/hosts). B moves to another address
and the name is changed; B stays silent (it never sends first, so A cannot learn the new
address by roaming). The re-resolver, with its 135 s shortened to a few seconds, must leave
the endpoint alone while the last handshake is recent, then point it at the new address by
itself, and the tunnel works again. A runs wgpyd, then wireguard-go: only UAPI is used.
"""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import require
from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64
from wgpy.uapi.client import get_device

from netlab import Namespace, start_wgpyd, start_wireguard_go, unique_name, veth_pair

pytestmark = pytest.mark.root

STALE_AFTER = 3.0
NAME = "peer-b.dyn.test"


def _wgpy(ns: Namespace, *args: str, env: dict | None = None):
    return ns.run(sys.executable, "-m", "wgpy.cli.main", *args, env=env)


def _write_hosts(path: str, address: str) -> None:
    """Rewritten in place: a process already in the namespace sees the bind-mounted inode."""
    with open(path, "r+" if os.path.exists(path) else "w") as handle:
        handle.seek(0)
        handle.truncate()
        handle.write(f"127.0.0.1 localhost\n{address} {NAME}\n")


def _handshake_time(iface: str) -> float:
    peer = get_device(iface).peers[0]
    return peer.last_handshake_sec + peer.last_handshake_nsec / 1e9


def _endpoint(iface: str) -> str:
    return str(get_device(iface).peers[0].endpoint)


@pytest.mark.parametrize("kind_a", ["wgpyd", "wireguard-go"])
def test_endpoint_follows_its_name_once_handshakes_stall(root_netns, kind_a):
    if kind_a == "wireguard-go":
        require(shutil.which("wireguard-go") is not None, "needs wireguard-go")
    net = 100 + os.getpid() % 100
    tag = unique_name("", max_len=9)
    iface_a, iface_b = f"wra{tag}", f"wrb{tag}"
    start_a = start_wgpyd if kind_a == "wgpyd" else start_wireguard_go
    key_a, key_b = (generate_private_key(os.urandom) for _ in range(2))
    old, new = f"192.168.{net}.2", f"192.168.{net}.3"
    with (Namespace(unique_name("wgpyrr-a")) as ns_a, Namespace(unique_name("wgpyrr-b")) as ns_b,
          tempfile.TemporaryDirectory() as directory):
        netns_etc = f"/etc/netns/{ns_a.name}"
        try:
            os.makedirs(netns_etc)
            hosts = os.path.join(netns_etc, "hosts")
            _write_hosts(hosts, old)
            veth_pair(ns_a, f"vra{tag}", f"192.168.{net}.1/24", ns_b, f"vrb{tag}", f"{old}/24")
            config = os.path.join(directory, "a.conf")
            with open(config, "w") as handle:
                handle.write(f"[Interface]\nPrivateKey = {key_to_base64(key_a)}\n"
                             "ListenPort = 51821\n\n"
                             f"[Peer]\n# Name = b\nPublicKey = {key_to_base64(public_key(key_b))}\n"
                             f"AllowedIPs = 10.{net}.0.2/32\nEndpoint = {NAME}:51822\n")
            key_file, key_file_a = (os.path.join(directory, name) for name in ("b.key", "a.key"))
            for path, key in ((key_file, key_b), (key_file_a, key_a)):
                with open(path, "w") as handle:
                    handle.write(key_to_base64(key) + "\n")
            log_path = os.path.join(directory, "reresolve.log")
            env = dict(os.environ, WGPY_RERESOLVE_AFTER=str(STALE_AFTER),
                       WGPY_STATE_DIR=directory)
            # wgpyd's side is configured from a file, wireguard-go's with `wgpy set` (whose
            # names are remembered): both sources of names are exercised
            from_file = kind_a == "wgpyd"
            config_args = ["--config", config] if from_file else []
            with start_a(ns_a, iface_a), start_wgpyd(ns_b, iface_b):
                if from_file:
                    _wgpy(ns_a, "setconf", iface_a, config)
                else:
                    _wgpy(ns_a, "set", iface_a, "private-key", key_file_a, "listen-port",
                          "51821", "peer", key_to_base64(public_key(key_b)), "allowed-ips",
                          f"10.{net}.0.2/32", "endpoint", f"{NAME}:51822", env=env)
                _wgpy(ns_b, "set", iface_b, "private-key", key_file, "listen-port", "51822",
                      "peer", key_to_base64(public_key(key_a)), "allowed-ips",
                      f"10.{net}.0.1/32")
                for ns, iface, address in ((ns_a, iface_a, "1"), (ns_b, iface_b, "2")):
                    ns.run("ip", "addr", "add", f"10.{net}.0.{address}/24", "dev", iface)
                    ns.run("ip", "link", "set", iface, "up")
                ns_a.run("ping", "-c", "2", "-i", "0.2", "-W", "2", f"10.{net}.0.2")
                assert _endpoint(iface_a) == f"{old}:51822"

                # the name changes while handshakes are recent: nothing is looked up
                _write_hosts(hosts, new)
                _wgpy(ns_a, "reresolve", iface_a, *config_args, env=env)
                assert _endpoint(iface_a) == f"{old}:51822"

                # B moves; the re-resolver runs by itself from now on
                ns_b.run("ip", "addr", "del", f"{old}/24", "dev", f"vrb{tag}")
                ns_b.run("ip", "addr", "add", f"{new}/24", "dev", f"vrb{tag}", "nodad")
                with open(log_path, "w") as log, _running(ns_a.popen(
                        sys.executable, "-m", "wgpy.cli.main", "reresolve", iface_a,
                        *config_args, "--interval", "0.2", env=env,
                        stdout=subprocess.DEVNULL, stderr=log)):
                    handshake = _handshake_time(iface_a)
                    deadline = time.monotonic() + 30
                    while _endpoint(iface_a) == f"{old}:51822":
                        assert time.monotonic() < deadline, "endpoint never re-resolved"
                        time.sleep(0.05)
                    # not before the handshake went stale (the wall clock is what both use)
                    assert time.time() - handshake >= STALE_AFTER
                    assert _endpoint(iface_a) == f"{new}:51822"
                    ns_a.run("ping", "-c", "2", "-i", "0.2", "-W", "2", f"10.{net}.0.2")
                with open(log_path) as log:
                    text = log.read()
                who = "b" if from_file else key_to_base64(public_key(key_b))
                assert f"peer {who}: {NAME}:51822 now resolves to {new}:51822 (was " \
                    f"{old}:51822)" in text, text
        finally:
            shutil.rmtree(netns_etc, ignore_errors=True)


@contextlib.contextmanager
def _running(process: subprocess.Popen):
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)

"""wgpyd as a process: backgrounding, signals, interface deletion, and wg-quick driving it."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64

from netlab import Namespace, wait_for_socket

pytestmark = pytest.mark.root


def socket_path(iface: str) -> str:
    return f"/var/run/wireguard/{iface}.sock"


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def link_exists(ns: Namespace, iface: str) -> bool:
    return ns.run("ip", "link", "show", iface, check=False).returncode == 0


def test_background_daemon_is_ready_when_it_returns_and_exits_on_link_delete(root_netns):
    with Namespace(f"wgpyl-bg{os.getpid() % 10000}") as ns:
        iface = f"wl{os.getpid() % 10000}"
        result = ns.run(sys.executable, "-m", "wgpy.daemon", iface)
        assert result.returncode == 0
        # ready on return: no waiting
        assert os.path.exists(socket_path(iface))
        assert link_exists(ns, iface)
        assert ns.run("wg", "show", iface).returncode == 0
        mtu = ns.run("cat", f"/sys/class/net/{iface}/mtu").stdout.strip()
        assert mtu == "1420"
        ns.run("ip", "link", "del", iface)
        assert wait_until(lambda: not os.path.exists(socket_path(iface)))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_removes_socket_and_interface(root_netns, signum):
    with Namespace(f"wgpyl-sig{os.getpid() % 10000}") as ns:
        iface = f"ws{os.getpid() % 10000}"
        process = ns.popen(sys.executable, "-m", "wgpy.daemon", "-f", iface,
                           stderr=subprocess.PIPE)
        try:
            wait_for_socket(iface, process)
            assert link_exists(ns, iface)
            process.send_signal(signum)
            assert process.wait(timeout=10) == 0
            assert not os.path.exists(socket_path(iface))
            assert not link_exists(ns, iface)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.parametrize("daemon", ["wgpyd", "wireguard-go"])
def test_removing_the_socket_file_stops_the_daemon(root_netns, wireguard_go, daemon):
    """wireguard-go exits when its UAPI socket is deleted (inotify); wgpyd does the same and
    takes its interface with it."""
    with Namespace(f"wgpyl-rm{os.getpid() % 10000}") as ns:
        iface = f"wr{os.getpid() % 10000}"
        argv = ([sys.executable, "-m", "wgpy.daemon"] if daemon == "wgpyd"
                else [wireguard_go])
        process = ns.popen(*argv, "-f", iface, stderr=subprocess.PIPE)
        try:
            wait_for_socket(iface, process)
            os.unlink(socket_path(iface))
            assert process.wait(timeout=10) == 0
            assert wait_until(lambda: not link_exists(ns, iface))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_second_daemon_for_same_interface_is_refused(root_netns):
    with Namespace(f"wgpyl-dup{os.getpid() % 10000}") as ns:
        iface = f"wd{os.getpid() % 10000}"
        assert ns.run(sys.executable, "-m", "wgpy.daemon", iface).returncode == 0
        try:
            second = ns.run(sys.executable, "-m", "wgpy.daemon", "-f", iface, check=False)
            assert second.returncode != 0
            assert "wgpyd:" in second.stderr and "Traceback" not in second.stderr
            assert ns.run("wg", "show", iface).returncode == 0
        finally:
            ns.run("ip", "link", "del", iface, check=False)
            wait_until(lambda: not os.path.exists(socket_path(iface)))


def test_wg_quick_up_and_down_with_wgpyd(wireguard_go):
    wgpyd = shutil.which("wgpyd")
    assert wgpyd, "the wgpyd console script must be installed (pip install -e .)"
    iface = f"wgq{os.getpid() % 1000}"
    key = key_to_base64(generate_private_key(os.urandom))
    peer = key_to_base64(public_key(generate_private_key(os.urandom)))
    with Namespace(f"wgpyl-q{os.getpid() % 10000}") as ns, tempfile.TemporaryDirectory() as d:
        config = os.path.join(d, f"{iface}.conf")
        with open(os.open(config, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
            handle.write(f"[Interface]\nPrivateKey = {key}\nAddress = 10.77.0.1/24\n"
                         f"ListenPort = 51977\nMTU = 1380\n\n[Peer]\nPublicKey = {peer}\n"
                         "AllowedIPs = 10.78.0.0/16\n")
        env = dict(os.environ, WG_QUICK_USERSPACE_IMPLEMENTATION=wgpyd)
        up = ns.run("wg-quick", "up", config, env=env, check=False)
        assert up.returncode == 0, up.stderr
        try:
            show = ns.run("wg", "show", iface).stdout
            assert "listening port: 51977" in show and peer in show
            assert "10.77.0.1/24" in ns.run("ip", "-4", "addr", "show", iface).stdout
            assert "10.78.0.0/16" in ns.run("ip", "route").stdout
            assert "mtu 1380" in ns.run("ip", "link", "show", iface).stdout
        finally:
            down = ns.run("wg-quick", "down", config, env=env, check=False)
        assert down.returncode == 0, down.stderr
        assert wait_until(lambda: not os.path.exists(socket_path(iface)))
        assert not link_exists(ns, iface)

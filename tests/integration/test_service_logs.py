"""wgpyd's log as a service manager sees it (not on a terminal): one line per event, no
timestamp (journald adds its own), the interface named; a handshake completing, the peer's
endpoint changing and the interface going down at info; no key material even at debug."""

import base64
import os
import subprocess
import sys
import tempfile
import time

import pytest

from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64

from netlab import Namespace, start_wireguard_go, unique_name, veth_pair, wait_for_socket

pytestmark = pytest.mark.root


def keypair() -> tuple[str, str]:
    private = generate_private_key(os.urandom)
    return key_to_base64(private), key_to_base64(public_key(private))


def key_file(directory: str, name: str, key: str) -> str:
    path = os.path.join(directory, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
        handle.write(key + "\n")
    return path


@pytest.mark.parametrize("level", ["info", "debug"])
def test_events_logged_at_info_without_timestamps_or_keys(wireguard_go, level):
    private_a, public_a = keypair()
    private_b, public_b = keypair()
    psk = key_to_base64(os.urandom(32))
    iface_a, iface_b = unique_name("wla", max_len=15), unique_name("wlb", max_len=15)
    with tempfile.TemporaryDirectory() as keys, tempfile.TemporaryFile() as log, \
            Namespace(unique_name("wgpylog-")) as ns_a, Namespace(unique_name("wgpylog-")) as ns_b:
        veth_pair(ns_a, unique_name("va", max_len=15), "192.168.77.1/24",
                  ns_b, unique_name("vb", max_len=15), "192.168.77.2/24")
        daemon = ns_a.popen(sys.executable, "-m", "wgpy.daemon", "-f", iface_a,
                            env={**os.environ, "LOG_LEVEL": level},
                            stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_for_socket(iface_a, daemon)
            with start_wireguard_go(ns_b, iface_b):
                for ns, iface, private, peer, address, other in (
                        (ns_a, iface_a, private_a, public_b, "10.77.0.1/24", None),
                        (ns_b, iface_b, private_b, public_a, "10.77.0.2/24", "192.168.77.1:51901")):
                    args = ["wg", "set", iface, "private-key", key_file(keys, iface, private),
                            "listen-port", "51901" if ns is ns_a else "51902", "peer", peer,
                            "preshared-key", key_file(keys, iface + "psk", psk),
                            "allowed-ips", "10.77.0.0/24"]
                    if other:
                        args += ["endpoint", other]
                    ns.run(*args)
                    ns.run("ip", "addr", "add", address, "dev", iface)
                    ns.run("ip", "link", "set", iface, "up")
                # B initiates: A learns B's endpoint from it (none -> B) and completes
                ns_b.run("ping", "-c", "3", "-W", "5", "10.77.0.1", timeout=30)
            ns_a.run("ip", "link", "set", iface_a, "down")
            time.sleep(0.5)
        finally:
            ns_a.run("ip", "link", "del", iface_a, check=False)
            daemon.wait(timeout=10)
        log.seek(0)
        text = log.read().decode()
    lines = text.splitlines()
    label = f"peer({public_b[:4]}…{public_b[39:43]})"
    assert any(f"INFO: ({iface_a}) {label}: handshake completed" == line for line in lines), text
    assert any(line.startswith(f"INFO: ({iface_a}) {label}: endpoint changed (")
               for line in lines), text
    assert f"INFO: ({iface_a}) interface is down" in lines, text
    assert all(line.startswith(("INFO: (", "DEBUG: (", "WARNING: (", "ERROR: (")) for line in lines)
    assert not any(line.split(") ", 1)[1][:4].isdigit() for line in lines), "timestamp"
    for secret in (private_a, private_b, psk):
        assert secret not in text and secret[:20] not in text
        assert base64.b64decode(secret).hex() not in text

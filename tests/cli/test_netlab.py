"""The shared namespace helpers clean up after themselves, also when the test body fails."""

import os
import subprocess

import pytest

from netlab import SOCKET_DIR, Namespace, start_wireguard_go, unique_name, veth_pair

pytestmark = pytest.mark.root


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_unique_names_differ_and_respect_the_length_limit():
    names = {unique_name("wc", max_len=15) for _ in range(100)}
    assert len(names) == 100 and all(len(n) <= 15 for n in names)
    with pytest.raises(ValueError):
        unique_name("x" * 15, max_len=15)


def test_namespace_is_deleted_even_when_the_body_raises(root_netns):
    ns = Namespace(prefix="wgpycli-")
    with pytest.raises(RuntimeError), ns:
        assert ns.name in namespaces()
        raise RuntimeError("boom")
    assert ns.name not in namespaces()


def test_veth_pair_connects_two_namespaces(root_netns):
    with Namespace(prefix="wgpycli-") as a, Namespace(prefix="wgpycli-") as b:
        veth_pair(a, "va", "10.77.0.1/24", b, "vb", "10.77.0.2/24")
        a.run("ping", "-c", "1", "-W", "2", "10.77.0.2")


def test_wireguard_go_starts_and_stops_by_link_deletion(wireguard_go):
    iface = unique_name("wc", max_len=15)
    socket_path = os.path.join(SOCKET_DIR, f"{iface}.sock")
    with Namespace(prefix="wgpycli-") as ns:
        with start_wireguard_go(ns, iface) as process:
            assert os.path.exists(socket_path)
            assert ns.run("wg", "show", iface, "listen-port").returncode == 0
        assert process.returncode is not None
        assert not os.path.exists(socket_path)
        assert iface not in ns.run("ip", "link").stdout

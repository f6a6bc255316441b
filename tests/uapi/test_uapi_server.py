"""UAPI protocol and server without root: a real core Device behind a fake host."""

import os
import socket
import threading
import time

import pytest

from wgpy.core.crypto import public_key
from wgpy.core.device import Device
from wgpy.core.keys import generate_private_key
from wgpy.uapi.server import MAX_LINE, UapiServer


class FakeHost:
    """DeviceHost with no I/O: ports and marks are remembered, a 'busy' port refuses."""

    busy_port = 4242

    def __init__(self) -> None:
        self.device = Device(wall_offset=1_700_000_000.0)
        self._port = 0
        self._mark = 0

    def listen_port(self) -> int:
        return self._port

    def set_listen_port(self, port: int) -> None:
        if port == self.busy_port:
            raise OSError(98, "Address already in use")
        self._port = port

    def fwmark(self) -> int:
        return self._mark

    def set_fwmark(self, mark: int) -> None:
        self._mark = mark

    def now(self) -> float:
        return 10.0

    def call(self, fn):
        return fn()


@pytest.fixture
def server(tmp_path):
    host = FakeHost()
    uapi = UapiServer("wtest0", host, socket_dir=str(tmp_path))
    uapi.start()
    yield host, uapi
    uapi.close()
    assert not os.path.exists(uapi.path)


def request(path: str, text: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(path)
        client.sendall(text.encode())
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode()


def get(path: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for line in request(path, "get=1\n\n").splitlines():
        key, _, value = line.partition("=")
        result.setdefault(key, []).append(value)
    return result


KEY = generate_private_key(os.urandom)
PEER1 = public_key(generate_private_key(os.urandom))
PEER2 = public_key(generate_private_key(os.urandom))


def test_set_then_get_in_wireguard_go_order(server):
    _host, uapi = server
    body = (f"set=1\nprivate_key={KEY.hex()}\nlisten_port=51820\nfwmark=7\n"
            f"public_key={PEER1.hex()}\nendpoint=[2001:db8::1]:51820\n"
            "persistent_keepalive_interval=0\nallowed_ip=10.0.0.1/24\nallowed_ip=fd00::/64\n"
            f"public_key={PEER2.hex()}\nallowed_ip=10.0.0.0/24\nendpoint=192.0.2.9:1\n\n")
    assert request(uapi.path, body) == "errno=0\n\n"
    text = request(uapi.path, "get=1\n\n")
    keys = [line.split("=", 1)[0] for line in text.splitlines() if line]
    standard = [k for k in keys if not k.startswith("wgpy_drop_")]
    assert standard == [
        "private_key", "listen_port", "fwmark",
        "public_key", "preshared_key", "protocol_version", "endpoint",
        "last_handshake_time_sec", "last_handshake_time_nsec", "tx_bytes", "rx_bytes",
        "persistent_keepalive_interval", "allowed_ip",
        "public_key", "preshared_key", "protocol_version", "endpoint",
        "last_handshake_time_sec", "last_handshake_time_nsec", "tx_bytes", "rx_bytes",
        "persistent_keepalive_interval", "allowed_ip", "errno",
    ]
    state = get(uapi.path)
    assert state["allowed_ip"] == ["fd00::/64", "10.0.0.0/24"]  # 10.0.0.0/24 moved to PEER2
    assert state["endpoint"] == ["[2001:db8::1]:51820", "192.0.2.9:1"]
    assert "wgpy_drop_src_not_allowed" in state
    assert text.index("wgpy_drop_") < text.index("public_key=")


@pytest.mark.parametrize(("line", "code"), [
    ("listen_port=65536", 22), ("listen_port=-1", 22), ("fwmark=x", 22),
    ("private_key=abc", 22), ("bogus=1", 22), ("no equals sign", 71),
    ("replace_peers=false", 22), (f"public_key={PEER1.hex()}\nallowed_ip=10.0.0.0/33", 22),
    (f"public_key={PEER1.hex()}\nallowed_ip=10.0.0.0", 22),
    (f"public_key={PEER1.hex()}\nendpoint=example.com:1", 22),
    (f"public_key={PEER1.hex()}\npersistent_keepalive_interval=70000", 22),
    (f"public_key={PEER1.hex()}\nprotocol_version=2", 22),
    (f"public_key={PEER1.hex()}\nprivate_key={KEY.hex()}", 22),
    ("listen_port=4242", 98),
])
def test_bad_set_gets_errno_and_changes_nothing(server, line, code):
    _host, uapi = server
    before = request(uapi.path, "get=1\n\n")
    if line.startswith("public_key"):
        # a valid device part and peer before the bad peer line
        body = f"set=1\nfwmark=5\npublic_key={PEER2.hex()}\nallowed_ip=10.5.0.0/16\n{line}\n\n"
    else:
        # the bad device line first, then valid lines that must not be applied either
        body = f"set=1\n{line}\nfwmark=5\npublic_key={PEER2.hex()}\n\n"
    assert request(uapi.path, body) == f"errno=-{code}\n\n"
    assert request(uapi.path, "get=1\n\n") == before


def test_dummy_self_peer_update_only_remove_and_replace(server):
    host, uapi = server
    own = public_key(KEY)
    assert request(uapi.path, f"set=1\nprivate_key={KEY.hex()}\npublic_key={own.hex()}\n"
                              "allowed_ip=10.0.0.0/8\n\n") == "errno=0\n\n"
    assert host.device.peers == {}
    assert request(uapi.path, f"set=1\npublic_key={PEER1.hex()}\nupdate_only=true\n"
                              "allowed_ip=10.0.0.0/8\n\n") == "errno=0\n\n"
    assert host.device.peers == {}
    request(uapi.path, f"set=1\npublic_key={PEER1.hex()}\nallowed_ip=10.1.0.0/16\n"
                       "allowed_ip=10.2.0.0/16\n\n")
    request(uapi.path, f"set=1\npublic_key={PEER1.hex()}\nreplace_allowed_ips=true\n"
                       "allowed_ip=10.3.0.0/16\n\n")
    assert get(uapi.path)["allowed_ip"] == ["10.3.0.0/16"]
    request(uapi.path, f"set=1\npublic_key={PEER1.hex()}\nremove=true\nallowed_ip=1.0.0.0/8\n\n")
    assert host.device.peers == {}
    request(uapi.path, f"set=1\npublic_key={PEER1.hex()}\n\n")
    request(uapi.path, "set=1\nreplace_peers=true\n\n")
    assert host.device.peers == {}


def test_several_requests_on_one_connection(server):
    _, uapi = server
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(uapi.path)
        client.sendall(b"set=1\nlisten_port=7\n\nget=1\n\n")
        data = b""
        while data.count(b"\n\n") < 2:
            data += client.recv(65536)
    assert data.startswith(b"errno=0\n\n") and b"listen_port=7\n" in data


def test_garbage_half_requests_and_long_lines_do_not_hurt_the_server(server):
    _host, uapi = server
    request(uapi.path, "set=1\nlisten_port=9\n\n")
    # unknown operation: connection closed without reply
    assert request(uapi.path, "hello\n\n") == ""
    # binary garbage
    assert request(uapi.path, "\x00\xff\x01garbage\n") == ""
    # an over-long line closes the connection
    assert request(uapi.path, "set=1\nlisten_port=" + "1" * (MAX_LINE * 2) + "\n\n") == ""
    # a half-written set, abandoned: nothing applied
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(uapi.path)
        client.sendall(b"set=1\nlisten_port=11\n")
    # a stalled client does not block others
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stalled.connect(uapi.path)
    stalled.sendall(b"set=1\n")
    try:
        time.sleep(0.1)
        assert get(uapi.path)["listen_port"] == ["9"]
    finally:
        stalled.close()
    assert request(uapi.path, "get=1\nx") == "errno=-22\n\n"  # as wireguard-go: one byte


def test_concurrent_clients(server):
    host, uapi = server
    errors: list[Exception] = []

    def worker(index: int) -> None:
        try:
            for i in range(20):
                peer = public_key(generate_private_key(os.urandom))
                reply = request(uapi.path, f"set=1\npublic_key={peer.hex()}\n"
                                           f"allowed_ip=10.{index}.{i}.0/24\n\n")
                assert reply == "errno=0\n\n"
                assert "errno=0" in request(uapi.path, "get=1\n\n")
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(host.device.peers) == 120


def test_stale_socket_is_replaced_but_a_live_one_is_not(tmp_path):
    path = tmp_path / "wstale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    first = UapiServer("wstale", FakeHost(), socket_dir=str(tmp_path))
    first.start()
    try:
        second = UapiServer("wstale", FakeHost(), socket_dir=str(tmp_path))
        with pytest.raises(OSError):
            second.start()
        assert "errno=0" in request(first.path, "get=1\n\n")
        assert oct(os.stat(first.path).st_mode & 0o777) == "0o700"
    finally:
        first.close()

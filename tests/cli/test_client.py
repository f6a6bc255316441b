"""The UAPI client and the `show` formatting without root: a scripted socket in a temporary
WG_SOCKET_DIR stands in for the device."""

import errno
import os
import socket

import pytest

from wgpy.cli.show import handshake_order, human_bytes, pretty
from wgpy.config.model import DeviceConfig, Endpoint, PeerConfig
from wgpy.config.parser import parse_config
from wgpy.uapi import client
from wgpy.uapi.records import PeerState
from wgpy.uapi.reply import DeviceState
from wgpy.uapi.text import UapiFormatError, parse_message

from clilab import FakeUapi, run_wgpy

KEY1, KEY2 = bytes([1]) * 32, bytes([2]) * 32


@pytest.fixture
def socket_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("WG_SOCKET_DIR", str(tmp_path))
    return str(tmp_path)


def test_get_reads_a_typed_model_and_keeps_unknown_interface_keys(socket_dir):
    reply = (f"private_key={bytes(range(32)).hex()}\nlisten_port=51820\nfwmark=0\n"
             "future=1\n"
             f"public_key={KEY1.hex()}\npreshared_key={'00' * 32}\nprotocol_version=1\n"
             "endpoint=[fe80::1%lo]:51820\nlast_handshake_time_sec=1700000000\n"
             "last_handshake_time_nsec=42\ntx_bytes=10\nrx_bytes=20\nunknown_peer_key=x\n"
             "persistent_keepalive_interval=25\nallowed_ip=10.0.0.0/8\nallowed_ip=::/0\n")
    with FakeUapi(reply, directory=socket_dir) as fake:
        device = client.get_device(fake.name)
        assert client.list_interfaces() == [fake.name]
    assert device.name == fake.name and device.listen_port == 51820 and device.fwmark == 0
    assert device.public_key is not None
    (peer,) = device.peers
    assert peer.preshared_key is None and peer.protocol_version == 1
    assert peer.endpoint == Endpoint("fe80::1%lo", 51820)
    assert (peer.last_handshake_sec, peer.last_handshake_nsec) == (1700000000, 42)
    assert (peer.rx_bytes, peer.tx_bytes, peer.persistent_keepalive) == (20, 10, 25)
    assert [str(a) for a in peer.allowed_ips] == ["10.0.0.0/8", "::/0"]


@pytest.mark.parametrize(("raw", "code"), [
    ("errno=0\n\n", 0),
    ("errno=19\n\n", errno.ENODEV),
    ("listen_port=1\n\n", errno.EPROTO),  # no errno line
    ("errno=0\n", errno.EPROTO),  # no blank line: cut short
    ("listen_port=x\nerrno=0\n\n", errno.EPROTO),
    (f"public_key={KEY1.hex()}\nallowed_ip=10.0.0.1\nerrno=0\n\n", errno.EPROTO),
    (f"public_key={KEY1.hex()}\nendpoint=nonexistent.invalid:1\nerrno=0\n\n",
     errno.ENETUNREACH),
])
def test_get_refuses_what_wg_refuses(socket_dir, raw, code):
    with FakeUapi(raw=raw, directory=socket_dir) as fake:
        if code == 0:
            assert client.get_device(fake.name).peers == []
        else:
            with pytest.raises(client.UapiClientError) as info:
                client.get_device(fake.name)
            assert info.value.errno == code


def test_set_sends_wg_text_and_reports_the_device_errno(socket_dir):
    device = parse_config("[Interface]\nListenPort = 1\n[Peer]\n"
                          "PublicKey = AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"
                          "AllowedIPs = 10.0.0.1, ::ffff:1.2.3.4/128\nEndpoint = [::1]:5\n")
    device.peers.append(PeerConfig(public_key=KEY2, update_only=True, persistent_keepalive=0))
    device.peers.append(PeerConfig(public_key=KEY2, remove=True, preshared_key=KEY1))
    with FakeUapi(directory=socket_dir) as fake:
        client.set_device(fake.name, device)
        assert fake.requests == [
            f"set=1\nprivate_key={'00' * 32}\nlisten_port=1\nfwmark=0\nreplace_peers=true\n"
            f"public_key={KEY1.hex()}\nendpoint=[::1]:5\nreplace_allowed_ips=true\n"
            "allowed_ip=10.0.0.1/32\nallowed_ip=::ffff:1.2.3.4/128\n"
            f"public_key={KEY2.hex()}\nupdate_only=true\npersistent_keepalive_interval=0\n"
            f"public_key={KEY2.hex()}\nremove=true\n\n"]
    with FakeUapi(set_errno=errno.EADDRINUSE, directory=socket_dir) as fake:
        with pytest.raises(client.UapiClientError) as info:
            client.set_device(fake.name, DeviceConfig(listen_port=1))
        assert info.value.errno == errno.EADDRINUSE


def test_listing_skips_non_sockets_and_removes_dead_sockets(socket_dir):
    open(os.path.join(socket_dir, "file.sock"), "w").close()
    open(os.path.join(socket_dir, ".sock"), "w").close()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.path.join(socket_dir, "dead.sock"))
    dead.close()  # bound, never listening: connect is refused, as for a crashed daemon
    with FakeUapi(directory=socket_dir) as fake:
        assert client.list_interfaces() == [fake.name]
    assert sorted(os.listdir(socket_dir)) == [".sock", "file.sock"]


def test_missing_interface_errors_like_wg(socket_dir):
    with pytest.raises(client.UapiClientError) as info:
        client.get_device("nosuch0")
    expected = errno.ENODEV if os.path.exists("/sys/module/wireguard") else \
        errno.EPROTONOSUPPORT
    assert info.value.errno == expected
    result = run_wgpy("show", "nosuch0", env={"WG_SOCKET_DIR": socket_dir})
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"Unable to access interface: {os.strerror(expected)}\n"


def test_message_text():
    assert parse_message("a=1\nb=x=y\n\nignored") == [("a", "1"), ("b", "x=y")]
    for broken in ("a=1\n", "a\n\n", ""):
        with pytest.raises(UapiFormatError):
            parse_message(broken)


def test_cli_reads_the_device_through_the_socket_dir(socket_dir):
    with FakeUapi(f"listen_port=7\npublic_key={KEY1.hex()}\n", drops="drop_replayed=4\n",
                  directory=socket_dir) as fake:
        env = {"WG_SOCKET_DIR": socket_dir}
        shown = run_wgpy("show", fake.name, "listen-port", env=env)
        drops = run_wgpy("show", fake.name, "--drops", env=env)
        interfaces = run_wgpy("show", "interfaces", env=env)
    assert shown.stdout == "7\n" and drops.stdout == "replayed  4\n"
    assert interfaces.stdout == f"{fake.name}\n"


def test_pretty_formatting():
    device = DeviceState("wg0")
    device.listen_port = 1
    device.peers = [
        PeerState(KEY1, [], last_handshake_sec="1000", rx_bytes="1023", tx_bytes="1024"),
        PeerState(KEY2, [], last_handshake_sec="1000", last_handshake_nsec="1",
                  persistent_keepalive="3661")]
    text = pretty(device, color=False, now=1000 + 90061)
    assert text == (
        "interface: wg0\n  listening port: 1\n\n"
        "peer: AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n  allowed ips: (none)\n"
        "  latest handshake: 1 day, 1 hour, 1 minute, 1 second ago\n"
        "  persistent keepalive: every 1 hour, 1 minute, 1 second\n\n"
        "peer: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n  allowed ips: (none)\n"
        "  latest handshake: 1 day, 1 hour, 1 minute, 1 second ago\n"
        "  transfer: 1023 B received, 1.00 KiB sent\n")
    assert "\x1b[" in pretty(device, color=True, now=0)


def test_units_and_order():
    class Plain:
        def __call__(self, *codes):
            return ""
    assert [human_bytes(n, Plain()) for n in (0, 1023, 1024, 1048575, 2**20, 2**40 + 2**39)] \
        == ["0 B", "1023 B", "1.00 KiB", "1024.00 KiB", "1.00 MiB", "1.50 TiB"]
    device = DeviceState("wg0")
    device.peers = [*(PeerState(bytes([i]) * 32, []) for i in range(3)),
                    PeerState(KEY1, [], last_handshake_sec="5"),
                    PeerState(KEY2, [], last_handshake_nsec="9"),
                    PeerState(KEY1, [], last_handshake_sec="5", last_handshake_nsec="1")]
    # latest first (seconds, then nanoseconds); ties and the never-seen keep their order
    assert handshake_order(device.table) == [5, 3, 4, 0, 1, 2]

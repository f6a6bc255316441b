"""UAPI client: read and configure any userspace WireGuard (wgpyd, wireguard-go, boringtun).

Usable from Python as well as by the `wgpy` command:

    from wgpy.uapi.client import get_device, set_device
    device = get_device("wg0")            # a wgpy.config.model.DeviceConfig
    print(device.listen_port, [p.rx_bytes for p in device.peers])

The request text is the same `wg` sends (ipc-uapi.h), so a device cannot tell the two apart.
"""

import contextlib
import errno
import ipaddress
import os
import socket

from wgpy.config.model import AllowedIP, DeviceConfig, Endpoint, PeerConfig
from wgpy.core.crypto import public_key
from wgpy.core.keys import KeyFormatError, key_from_hex

SOCKET_DIR = "/var/run/wireguard"


class UapiClientError(OSError):
    """The device answered with a non-zero errno, or could not be reached."""


def socket_path(iface: str) -> str:
    return os.path.join(SOCKET_DIR, f"{iface}.sock")


def list_interfaces() -> list[str]:
    """Interfaces with a live UAPI socket, in directory order (as `wg show` lists them)."""
    try:
        names = os.listdir(SOCKET_DIR)
    except OSError:
        return []
    result = []
    for name in names:
        if not name.endswith(".sock") or len(name) == len(".sock"):
            continue
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(os.path.join(SOCKET_DIR, name))
            except OSError as exc:
                if exc.errno == errno.ECONNREFUSED:
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(SOCKET_DIR, name))  # stale, as wg removes it
                continue
        result.append(name[: -len(".sock")])
    return result


def _exchange(iface: str, request: bytes) -> str:
    path = socket_path(iface)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
            client.sendall(request)
            data = b""
            while not data.endswith(b"\n\n") and data != b"\n":
                chunk = client.recv(65536)
                if not chunk:
                    break
                data += chunk
    except FileNotFoundError:
        raise UapiClientError(errno.ENODEV, os.strerror(errno.ENODEV)) from None
    except ConnectionRefusedError:
        raise UapiClientError(errno.ENODEV, os.strerror(errno.ENODEV)) from None
    return data.decode("utf-8", errors="replace")


def _errno_of(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("errno="):
            try:
                value = int(line[6:])
            except ValueError:
                break
            return -value if value < 0 else value  # devices send -errno, as wg expects
    return errno.EPROTO


def get_device(iface: str) -> DeviceConfig:
    """The device's configuration and state; unknown keys (extensions) are ignored."""
    text = _exchange(iface, b"get=1\n\n")
    code = _errno_of(text)
    if code:
        raise UapiClientError(code, os.strerror(code))
    device = DeviceConfig(name=iface)
    peer: PeerConfig | None = None
    try:
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key == "public_key":
                peer = PeerConfig(public_key=key_from_hex(value))
                device.peers.append(peer)
            elif peer is None:
                if key == "private_key":
                    device.private_key = key_from_hex(value)
                    device.public_key = public_key(device.private_key)
                elif key == "listen_port":
                    device.listen_port = int(value)
                elif key == "fwmark":
                    device.fwmark = int(value)
            elif key == "preshared_key":
                psk = key_from_hex(value)
                peer.preshared_key = psk if any(psk) else None
            elif key == "endpoint":
                host, _, port = value.rpartition(":")
                peer.endpoint = Endpoint(host.strip("[]"), int(port))
            elif key == "persistent_keepalive_interval":
                peer.persistent_keepalive = int(value)
            elif key == "allowed_ip":
                address, _, cidr = value.partition("/")
                peer.allowed_ips.append(AllowedIP(ipaddress.ip_address(address), int(cidr)))
            elif key == "last_handshake_time_sec":
                peer.last_handshake_sec = int(value)
            elif key == "last_handshake_time_nsec":
                peer.last_handshake_nsec = int(value)
            elif key == "rx_bytes":
                peer.rx_bytes = int(value)
            elif key == "tx_bytes":
                peer.tx_bytes = int(value)
    except (ValueError, KeyFormatError):
        raise UapiClientError(errno.EPROTO, os.strerror(errno.EPROTO)) from None
    return device


def get_extensions(iface: str) -> dict[str, str]:
    """Interface-level keys that only wgpyd sends (e.g. wgpy_drop_<reason> counters)."""
    result: dict[str, str] = {}
    for line in _exchange(iface, b"get=1\n\n").splitlines():
        key, _, value = line.partition("=")
        if key == "public_key":
            break
        if key.startswith("wgpy_"):
            result[key] = value
    return result


def format_set(device: DeviceConfig) -> str:
    """The `set=1` request `wg` would send for this configuration."""
    lines = ["set=1"]
    if device.private_key is not None:
        lines.append(f"private_key={device.private_key.hex()}")
    if device.listen_port is not None:
        lines.append(f"listen_port={device.listen_port}")
    if device.fwmark is not None:
        lines.append(f"fwmark={device.fwmark}")
    if device.replace_peers:
        lines.append("replace_peers=true")
    for peer in device.peers:
        lines.append(f"public_key={peer.public_key.hex()}")
        if peer.remove:
            lines.append("remove=true")
            continue
        if peer.preshared_key is not None:
            lines.append(f"preshared_key={peer.preshared_key.hex()}")
        if peer.endpoint is not None:
            lines.append(f"endpoint={peer.endpoint}")
        if peer.persistent_keepalive is not None:
            lines.append(f"persistent_keepalive_interval={peer.persistent_keepalive}")
        if peer.replace_allowed_ips:
            lines.append("replace_allowed_ips=true")
        lines.extend(f"allowed_ip={allowed}" for allowed in peer.allowed_ips)
    return "\n".join(lines) + "\n\n"


def set_device(iface: str, device: DeviceConfig) -> None:
    code = _errno_of(_exchange(iface, format_set(device).encode()))
    if code:
        raise UapiClientError(code, os.strerror(code))

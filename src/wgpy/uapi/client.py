"""UAPI client: read and configure any userspace WireGuard (wgpyd, wireguard-go, boringtun).

Usable from Python as well as by the `wgpy` command:

    from wgpy.uapi.client import get_device, set_device
    device = get_device("wg0")            # a wgpy.config.model.DeviceConfig
    print(device.listen_port, [p.rx_bytes for p in device.peers])

Requests and the reading of replies follow `wg` (ipc-uapi.h, ipc-uapi-unix.h): the same text
is sent, a reply is accepted or refused on the same grounds, and the errno reported is the
one `wg` would report, so a device cannot tell the two apart and neither can a user. Keys a
reply carries that `wg` does not know are ignored, except that interface-level ones (wgpyd's
`wgpy_drop_<reason>=N`) are kept in `DeviceConfig.extensions`.

Kernel WireGuard interfaces (netlink) are not supported: they are listed, and any request
for one fails with a KernelInterfaceError that says so. (wg handles those; this machine
class has no kernel module to test an implementation against.)
"""

import contextlib
import errno
import ipaddress
import os
import socket
import stat

from wgpy.config.model import AllowedIP, DeviceConfig, Endpoint, PeerConfig
from wgpy.config.values import ConfigError, split_endpoint
from wgpy.core.crypto import public_key
from wgpy.uapi.text import (
    GET_REQUEST,
    SOCKET_SUFFIX,
    UapiFormatError,
    format_hex_key,
    format_message,
    parse_errno,
    parse_hex_key,
    parse_message,
    parse_unsigned,
    socket_dir,
    socket_path,
)

SYSFS_NET = "/sys/class/net"


class UapiClientError(OSError):
    """The device answered with a non-zero errno, or could not be reached (errno, strerror)."""


class KernelInterfaceError(UapiClientError):
    """The interface is a kernel WireGuard one, which wgpy cannot talk to."""


def _fail(code: int) -> UapiClientError:
    return UapiClientError(code, os.strerror(code))


def _is_kernel_wireguard(iface: str) -> bool:
    with contextlib.suppress(OSError), open(os.path.join(SYSFS_NET, iface, "uevent")) as f:
        return "DEVTYPE=wireguard\n" in f.read()
    return False


def _has_socket(path: str) -> bool:
    """ipc-uapi-unix.h userspace_has_wireguard_interface: a socket someone answers on; a
    refused one is left by a dead daemon and removed, as wg removes it."""
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return False
    except OSError:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            with contextlib.suppress(OSError):
                os.unlink(path)
            return False
        except OSError:
            pass
    return True


def list_interfaces() -> list[str]:
    """Kernel WireGuard links, then live UAPI sockets in directory order, as `wg show` lists
    them."""
    names = []
    with contextlib.suppress(OSError):
        names = [name for name in os.listdir(SYSFS_NET) if _is_kernel_wireguard(name)]
    try:
        entries = os.listdir(socket_dir())
    except FileNotFoundError:
        return names
    names.extend(entry[: -len(SOCKET_SUFFIX)] for entry in entries
                 if len(entry) > len(SOCKET_SUFFIX) and entry.endswith(SOCKET_SUFFIX)
                 and _has_socket(os.path.join(socket_dir(), entry)))
    return names


def _connect(iface: str) -> socket.socket:
    """userspace_interface_file, falling back like ipc.c to the kernel when no socket."""
    path = socket_path(iface)
    if "/" in iface or not _has_socket(path):
        if _is_kernel_wireguard(iface):
            raise KernelInterfaceError(
                errno.EOPNOTSUPP, f"{iface} is a kernel WireGuard interface; wgpy speaks only "
                "the userspace API (use wg for kernel interfaces)")
        # wg would now ask the kernel, which answers ENODEV, or EPROTONOSUPPORT when the
        # wireguard module is absent; give the same answer.
        module = os.path.exists("/sys/module/wireguard")
        raise _fail(errno.ENODEV if module else errno.EPROTONOSUPPORT)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(path)
    except OSError as exc:
        client.close()
        raise _fail(exc.errno or errno.EIO) from None
    return client


def _exchange(iface: str, request: bytes) -> str:
    """Send one request, read one reply (up to and including its blank line)."""
    with _connect(iface) as client:
        try:
            client.sendall(request)
            data = b""
            while data != b"\n" and b"\n\n" not in data:
                chunk = client.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            raise _fail(exc.errno or errno.EIO) from None
    return data.decode("utf-8", "surrogateescape")


def get_device(iface: str) -> DeviceConfig:
    """The device's configuration and state (userspace_get_device)."""
    try:
        pairs = parse_message(_exchange(iface, GET_REQUEST))
        device, code = _read_get(iface, pairs)
    except UapiFormatError:
        raise _fail(errno.EPROTO) from None
    if code is None:
        raise _fail(errno.EPROTO)
    if code:
        raise _fail(code)
    return device


def _read_get(iface: str, pairs: list[tuple[str, str]]) -> tuple[DeviceConfig, int | None]:
    device = DeviceConfig(name=iface)
    peer: PeerConfig | None = None
    code: int | None = None
    for key, value in pairs:
        if key == "public_key":
            peer = PeerConfig(public_key=parse_hex_key(value))
            device.peers.append(peer)
        elif key == "errno":
            code = parse_unsigned(value, 0x7FFFFFFF)
        elif peer is None:
            if key == "private_key":
                device.private_key = parse_hex_key(value)
                device.public_key = public_key(device.private_key)
            elif key == "listen_port":
                device.listen_port = parse_unsigned(value, 0xFFFF)
            elif key == "fwmark":
                device.fwmark = parse_unsigned(value, 0xFFFFFFFF)
            else:
                device.extensions[key] = value
        else:
            _read_peer_key(peer, key, value)
    return device, code


def _read_peer_key(peer: PeerConfig, key: str, value: str) -> None:
    if key == "preshared_key":
        psk = parse_hex_key(value)
        peer.preshared_key = psk if any(psk) else None
    elif key == "endpoint":
        peer.endpoint = _read_endpoint(value)
    elif key == "persistent_keepalive_interval":
        peer.persistent_keepalive = parse_unsigned(value, 0xFFFF)
    elif key == "allowed_ip":
        peer.allowed_ips.append(_read_allowed_ip(value))
    elif key == "last_handshake_time_sec":
        peer.last_handshake_sec = parse_unsigned(value, 2**63 - 1)
    elif key == "last_handshake_time_nsec":
        peer.last_handshake_nsec = parse_unsigned(value, 2**63 - 1)
    elif key == "rx_bytes":
        peer.rx_bytes = parse_unsigned(value, 2**64 - 1)
    elif key == "tx_bytes":
        peer.tx_bytes = parse_unsigned(value, 2**64 - 1)
    elif key == "protocol_version":
        peer.protocol_version = parse_unsigned(value, 2**64 - 1)


def _read_endpoint(value: str) -> Endpoint:
    """Through getaddrinfo/getnameinfo as wg does, so scopes print as names (fe80::1%eth0)."""
    try:
        parts = split_endpoint(value)
    except ConfigError:
        raise UapiFormatError(f"bad endpoint {value!r}") from None
    try:
        infos = socket.getaddrinfo(parts[0], parts[1], socket.AF_UNSPEC, socket.SOCK_DGRAM,
                                   socket.IPPROTO_UDP)
        host, port = socket.getnameinfo(
            infos[0][4], socket.NI_NUMERICHOST | socket.NI_NUMERICSERV | socket.NI_DGRAM)
    except (OSError, UnicodeError, ValueError):
        raise _fail(errno.ENETUNREACH) from None
    return Endpoint(host, int(port))


def _read_allowed_ip(value: str) -> AllowedIP:
    address_text, slash, cidr_text = value.partition("/")
    family = socket.AF_INET6 if ":" in address_text else socket.AF_INET
    try:
        address = ipaddress.ip_address(socket.inet_pton(family, address_text))
    except (OSError, ValueError) as exc:
        raise UapiFormatError(f"bad allowed ip {value!r}") from exc
    if not slash:
        raise UapiFormatError(f"bad allowed ip {value!r}")
    return AllowedIP(address, parse_unsigned(cidr_text, address.max_prefixlen))


def get_extensions(iface: str) -> dict[str, str]:
    """Interface-level keys only some devices send (wgpyd's wgpy_drop_<reason> counters)."""
    return get_device(iface).extensions


def format_set(device: DeviceConfig) -> bytes:
    """The `set=1` request `wg` would send for this configuration (ipc-uapi.h), plus
    `update_only`, which wg never sends."""
    pairs: list[tuple[str, object]] = [("set", 1)]
    if device.private_key is not None:
        pairs.append(("private_key", format_hex_key(device.private_key)))
    if device.listen_port is not None:
        pairs.append(("listen_port", device.listen_port))
    if device.fwmark is not None:
        pairs.append(("fwmark", device.fwmark))
    if device.replace_peers:
        pairs.append(("replace_peers", "true"))
    for peer in device.peers:
        pairs.append(("public_key", format_hex_key(peer.public_key)))
        if peer.remove:
            pairs.append(("remove", "true"))
            continue
        if peer.update_only:
            pairs.append(("update_only", "true"))
        if peer.preshared_key is not None:
            pairs.append(("preshared_key", format_hex_key(peer.preshared_key)))
        if peer.endpoint is not None:
            pairs.append(("endpoint", peer.endpoint))
        if peer.persistent_keepalive is not None:
            pairs.append(("persistent_keepalive_interval", peer.persistent_keepalive))
        if peer.replace_allowed_ips:
            pairs.append(("replace_allowed_ips", "true"))
        pairs.extend(("allowed_ip", allowed) for allowed in peer.allowed_ips)
    return format_message(pairs)


def set_device(iface: str, device: DeviceConfig) -> None:
    """Apply a configuration (userspace_set_device); raises UapiClientError on refusal."""
    code = -errno.EPROTO
    try:
        for key, value in parse_message(_exchange(iface, format_set(device))):
            if key == "errno":
                code = parse_errno(value)
    except UapiFormatError:
        raise _fail(errno.EPROTO) from None
    if code:
        raise _fail(-code)  # devices send the negated errno

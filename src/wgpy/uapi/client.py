"""UAPI client: read and configure any userspace WireGuard (wgpyd, wireguard-go, boringtun).

Usable from Python as well as by the `wgpy` command:

    from wgpy.uapi.client import get_device, set_device
    device = get_device("wg0")            # a wgpy.config.model.DeviceConfig
    print(device.listen_port, [p.rx_bytes for p in device.peers])

`get_state` reads the same reply into uapi.reply's table of text instead (values as `wg`
prints them, a column per field), in a fraction of the time on a big device: what the `wgpy`
tools use. `PendingGet` splits it in two, so that a caller can work while the device writes
its reply.

Requests and the reading of replies follow `wg` (ipc-uapi.h, ipc-uapi-unix.h): the same text
is sent, a reply is accepted or refused on the same grounds, and the errno reported is the
one `wg` would report, so a device cannot tell the two apart and neither can a user. Keys a
reply carries that `wg` does not know are ignored. `get_drops` asks wgpyd for its drop
counters with its own request (`wgpy_get=1`), which other implementations refuse.

Kernel WireGuard interfaces (netlink) are not supported: they are listed, and any request
for one fails with a KernelInterfaceError that says so. (wg handles those; this machine
class has no kernel module to test an implementation against.)
"""

import codecs
import contextlib
import errno
import os
import socket
import stat
from collections.abc import Callable

from wgpy.uapi.text import (
    DROP_PREFIX,
    GET_REQUEST,
    SOCKET_SUFFIX,
    WGPY_GET_REQUEST,
    UapiFormatError,
    format_hex_key,
    parse_errno,
    parse_message,
    parse_unsigned,
    socket_dir,
    socket_path,
)

TYPE_CHECKING = False  # typing's flag without importing typing (`wgpy show` start-up)
if TYPE_CHECKING:  # imported where used: `wgpy show` sends its request before the rest
    from wgpy.config.model import DeviceConfig
    from wgpy.uapi.reply import DeviceState

SYSFS_NET = "/sys/class/net"
_RECV_SIZE = 1 << 18


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


def _send(iface: str, request: bytes) -> socket.socket:
    """Connect (userspace_interface_file, falling back like ipc.c to the kernel when no
    socket) and send one request; the connection, to read the reply from."""
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
        client.sendall(request)
    except OSError as exc:
        client.close()
        raise _fail(exc.errno or errno.EIO) from None
    return client


def _receive(client: socket.socket, consume: Callable[[str], None]) -> None:
    """One reply (up to and including its blank line), handed to `consume` a piece at a time
    as it arrives (a big device's reply is megabytes: 10,000 peers, about 4 MB, which
    `wgpy show` reads while the rest is on its way); closes the connection."""
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    with client:
        try:
            # the end looked for only where the last piece meets the new one
            first, previous = True, b""
            while True:
                chunk = client.recv(_RECV_SIZE)
                if not chunk:
                    break
                consume(decoder.decode(chunk))
                if (chunk == b"\n" and first) or b"\n\n" in previous + chunk[:1] \
                        or b"\n\n" in chunk:
                    break
                first, previous = False, chunk[-1:]
        except OSError as exc:
            raise _fail(exc.errno or errno.EIO) from None
    consume(decoder.decode(b"", final=True))


def _exchange(iface: str, request: bytes) -> str:
    """Send one request, read one reply."""
    pieces: list[str] = []
    _receive(_send(iface, request), pieces.append)
    return "".join(pieces)


class PendingGet:
    """A `get=1` sent and not yet read: the device prepares its reply (milliseconds, on a
    big device) while the caller does something else, such as importing what will print
    it; `result()` reads it. Errors are get_state's, raised by `result()` (also those of
    sending the request, so that a caller can report others first, as wg would)."""

    def __init__(self, iface: str) -> None:
        self.iface = iface
        self._client: socket.socket | None = None
        self._error: OSError | None = None
        try:
            self._client = _send(iface, GET_REQUEST)
        except OSError as exc:
            self._error = exc

    def result(self) -> "DeviceState":
        from wgpy.uapi.reply import (  # here: see TYPE_CHECKING
            DeviceState,
            EndpointUnreachable,
            ReplyReader,
        )

        if self._client is None:
            assert self._error is not None
            raise self._error
        reader = ReplyReader(DeviceState(self.iface))
        _receive(self._client, reader.feed)
        try:
            device, code = reader.result()
        except UapiFormatError:
            raise _fail(errno.EPROTO) from None
        except EndpointUnreachable:
            raise _fail(errno.ENETUNREACH) from None
        if code is None:
            raise _fail(errno.EPROTO)
        if code:
            raise _fail(code)
        return device

    def close(self) -> None:
        """Give the request up without reading the reply."""
        if self._client is not None:
            self._client.close()


def get_state(iface: str) -> "DeviceState":
    """The device's configuration and state as plain records (userspace_get_device): what
    the `wgpy` tools read, a quarter of get_device's time on a big device."""
    return PendingGet(iface).result()


def get_device(iface: str) -> "DeviceConfig":
    """The device's configuration and state in the typed config model."""
    return device_config(get_state(iface))


def device_config(state: "DeviceState") -> "DeviceConfig":
    """A `get` reply's device (get_state) in the typed config model, from its records
    (DeviceState.peers), each address from inet_pton's bytes (the reply's text is
    inet_ntop's, which ipaddress would parse again, at a few times the cost: a 10,000-peer
    hub has 30,000 prefixes, and get_device is what `wgpy reresolve` and wgpy-quick read)."""
    from ipaddress import IPv4Address, IPv6Address

    from wgpy.config.model import (  # here: see TYPE_CHECKING above
        AllowedIP,
        DeviceConfig,
        Endpoint,
        PeerConfig,
    )

    device = DeviceConfig(name=state.name, private_key=state.private_key,
                          public_key=state.public_key(), listen_port=state.listen_port,
                          fwmark=state.fwmark)
    pton = socket.inet_pton
    for peer in state.peers:
        endpoint = None
        if peer.endpoint is not None:
            host, _, port = peer.endpoint.rpartition(":")
            endpoint = Endpoint(host.removeprefix("[").removesuffix("]"), int(port))
        allowed_ips = []
        for text in peer.allowed_ips:
            address, _, cidr = text.partition("/")
            allowed_ips.append(AllowedIP(
                IPv6Address(pton(socket.AF_INET6, address)) if ":" in address
                else IPv4Address(pton(socket.AF_INET, address)), int(cidr)))
        keepalive, version = peer.persistent_keepalive, peer.protocol_version
        device.peers.append(PeerConfig(
            public_key=peer.public_key, preshared_key=peer.preshared_key, endpoint=endpoint,
            persistent_keepalive=None if keepalive is None else int(keepalive),
            allowed_ips=allowed_ips, last_handshake_sec=int(peer.last_handshake_sec),
            last_handshake_nsec=int(peer.last_handshake_nsec), rx_bytes=int(peer.rx_bytes),
            tx_bytes=int(peer.tx_bytes),
            protocol_version=None if version is None else int(version)))
    return device


class NoDropCountersError(UapiClientError):
    """The device does not keep drop counters (it is not wgpyd: it refused `wgpy_get=1`)."""


def get_drops(iface: str) -> dict[str, int]:
    """wgpyd's drop counters by reason, in its order. A device that closes the connection
    without a reply (wireguard-go does, on an operation it does not know) raises
    NoDropCountersError."""
    reply = _exchange(iface, WGPY_GET_REQUEST)
    if not reply:
        raise NoDropCountersError(errno.EOPNOTSUPP, f"{iface} keeps no drop counters "
                                  "(only wgpyd counts dropped packets by reason)")
    drops: dict[str, int] = {}
    code: int | None = None
    try:
        for key, value in parse_message(reply):
            if key == "errno":
                code = parse_errno(value)
            elif key.startswith(DROP_PREFIX):
                drops[key.removeprefix(DROP_PREFIX)] = parse_unsigned(value, 2**64 - 1)
    except UapiFormatError:
        raise _fail(errno.EPROTO) from None
    if code is None:
        raise _fail(errno.EPROTO)
    if code:
        raise _fail(abs(code))
    return drops


def format_set(device: "DeviceConfig") -> bytes:
    """The `set=1` request `wg` would send for this configuration (ipc-uapi.h), plus
    `update_only`, which wg never sends: `key=value` lines and the blank line, made
    directly (a 10,000-peer syncconf sends 60,000 of them)."""
    lines = ["set=1"]
    if device.private_key is not None:
        lines.append(f"private_key={format_hex_key(device.private_key)}")
    if device.listen_port is not None:
        lines.append(f"listen_port={device.listen_port}")
    if device.fwmark is not None:
        lines.append(f"fwmark={device.fwmark}")
    if device.replace_peers:
        lines.append("replace_peers=true")
    append = lines.append
    for peer in device.peers:
        append(f"public_key={format_hex_key(peer.public_key)}")
        if peer.remove:
            append("remove=true")
            continue
        if peer.update_only:
            append("update_only=true")
        if peer.preshared_key is not None:
            append(f"preshared_key={format_hex_key(peer.preshared_key)}")
        if peer.endpoint is not None:
            append(f"endpoint={peer.endpoint}")
        if peer.persistent_keepalive is not None:
            append(f"persistent_keepalive_interval={peer.persistent_keepalive}")
        if peer.replace_allowed_ips:
            append("replace_allowed_ips=true")
        lines.extend([f"allowed_ip={allowed}" for allowed in peer.allowed_ips])
    lines.append("\n")
    return "\n".join(lines).encode()


def set_device(iface: str, device: "DeviceConfig") -> None:
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

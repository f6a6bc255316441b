"""`wgpyd [-f] IFACE`: the userspace WireGuard daemon, a drop-in for `wireguard-go [-f] IFACE`.

It creates the TUN interface and the UAPI socket, then (unless -f) detaches into the background
and returns to the shell only once both are ready, so `wg` and `wg-quick` can use them at once.
It exits on SIGTERM/SIGINT (removing socket and interface), when the interface is deleted
(which is how `wg-quick down` and `ip link del` stop it) or when its UAPI socket file is
removed, as wireguard-go does.
"""

import argparse
import contextlib
import functools
import logging
import os
import resource
import signal
import socket
import sys
import time

from wgpy import __version__
from wgpy.core.constants import DEFAULT_MTU
from wgpy.core.device import Device
from wgpy.io.loop import Tunnel
from wgpy.io.offload import offloads_enabled
from wgpy.io.tun import Tun
from wgpy.io.udp import UdpSocket
from wgpy.uapi.server import UapiServer

log = logging.getLogger("wgpy.daemon")

_LOG_LEVELS = {
    "verbose": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "error": logging.ERROR,
    "silent": logging.CRITICAL + 1,
}


def _configure_logging(iface: str) -> None:
    """One line per event, naming the interface. On a terminal with a timestamp, as
    wireguard-go prints; otherwise without one, since journald (or whatever collects a
    service's output) stamps each line itself."""
    level = _LOG_LEVELS.get(os.environ.get("LOG_LEVEL", "error").lower(), logging.ERROR)
    stamp = "%(asctime)s " if sys.stderr.isatty() else ""
    logging.basicConfig(
        level=level,
        format=f"%(levelname)s: ({iface}) {stamp}%(message)s",
        datefmt="%Y/%m/%d %H:%M:%S",
    )


def _notify_service_manager(state: str) -> None:
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET, if systemd gave one
    (wgpyd@.service is Type=notify, so units after it find the UAPI socket ready)."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):  # an abstract socket
        path = "\0" + path[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(state.encode(), path)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="wgpyd", description="Userspace WireGuard daemon (wireguard-go compatible)."
    )
    parser.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    parser.add_argument("--version", action="version", version=f"wgpyd v{__version__}")
    parser.add_argument("interface", metavar="INTERFACE-NAME")
    return parser.parse_args(argv)


def _raise_file_limit() -> None:
    """Let the process use as many descriptors as it may (the soft limit up to the hard one),
    as the Go runtime does for wireguard-go: UAPI clients are not limited otherwise."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _start(iface: str) -> tuple[Tunnel, UapiServer]:
    _raise_file_limit()
    offload = offloads_enabled()
    tun = Tun(iface, mtu=DEFAULT_MTU, vnet_hdr=offload)
    log.info("TUN %s created (vnet header %s)", tun.name, "on" if tun.vnet_hdr else "off")
    device = Device(wall_offset=time.time() - time.monotonic(), mtu=DEFAULT_MTU)
    tunnel = Tunnel(tun, device, functools.partial(UdpSocket, offload=offload))
    server = UapiServer(tun.name, tunnel, on_socket_lost=tunnel.stop)
    try:
        server.start()
    except BaseException:
        tun.close()
        raise
    return tunnel, server


def _serve(tunnel: Tunnel, server: UapiServer) -> None:
    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        tunnel.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        tunnel.run()
    finally:
        server.close()
        tunnel.tun.close()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    iface = args.interface
    _configure_logging(iface)
    if args.foreground or os.environ.get("WG_PROCESS_FOREGROUND") == "1":
        try:
            tunnel, server = _start(iface)
        except (OSError, ValueError) as exc:
            print(f"wgpyd: failed to create interface {iface}: {exc}", file=sys.stderr)
            return 1
        _notify_service_manager("READY=1")
        _serve(tunnel, server)
        return 0

    ready_read, ready_write = os.pipe()
    if os.fork() > 0:
        os.close(ready_write)
        status = os.read(ready_read, 1)
        return 0 if status == b"1" else 1
    os.close(ready_read)
    os.setsid()
    try:
        tunnel, server = _start(iface)
    except (OSError, ValueError) as exc:
        print(f"wgpyd: failed to create interface {iface}: {exc}", file=sys.stderr)
        os.write(ready_write, b"0")
        os._exit(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.write(ready_write, b"1")
    os.close(ready_write)
    _serve(tunnel, server)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())

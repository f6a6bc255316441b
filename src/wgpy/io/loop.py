"""The data-plane loop: TUN and UDP in, core, UDP and TUN out, timers, control calls.

One thread owns the core. Each wake-up drains up to BATCH packets from every ready source
with one clock read, so batching (and later GSO/GRO) is a change of the drain functions, not
of the loop. Control requests (UAPI) run on the same thread through `call`, which keeps the core
single-threaded without locks on the hot path.

Nothing is polled: the loop sleeps in epoll until a packet, a control call, a change of the
link (netlink, linkwatch.py) or the core's next timer deadline; with no peer and no traffic it
sleeps without a timeout. The interface's deletion shows up as an error on the TUN fd.

While tunnel traffic trickles (within a few seconds of the last packet that went to or came
from a peer through the TUN: WGPY_KEEP_WARM, 3 by default) the loop also wakes every few
milliseconds to keep the packet path in the CPU caches (warm.py): on a VM that is what an idle
ping's round trip is made of. Keepalives, handshakes and packets no peer takes (the kernel's
own IPv6 chatter on the TUN) do not count.

Handshake messages cost ten to forty times a data packet, and anyone who knows our public key
can send them, so the core only screens them on arrival (mac1, cookie replies under load) and
queues them; the loop finishes queued handshakes after the packets of each wake-up, for at
most HANDSHAKE_SLICE seconds, so data never waits behind a pile of handshakes and UAPI calls
are never starved. The queue's depth is what puts the core "under load" (handshakequeue.py).

A flood can still outrun the thread that reads the socket. So each endpoint that
authenticated gets a lane (lanes.py): a connected socket of its own that the kernel gives
its datagrams to. The loop reads lanes and the TUN first and the listening socket, where
new peers and floods arrive, last, and while lanes or the TUN had work in the same wake-up
only LISTEN_SHARE datagrams of it: the rest of a flood waits in, and overflows, a buffer no
established peer's data is in. (Lanes send nothing: every datagram leaves from the
listening socket, so lanes change nothing on the wire.)

Like wireguard-go, the UDP port is bound from the start (a random one until ListenPort is
set), traffic flows only while the interface is up, and taking it down forgets every session.

The loop knows its TUN device and its UDP bind only through protocols.py: the daemon passes a
Tun and an opener of UdpSockets, tests the in-memory channel devices of memory.py.
"""

import contextlib
import errno
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar, cast

from wgpy.core.constants import MESSAGE_TRANSPORT_DATA
from wgpy.core.device import Device
from wgpy.core.keys import key_to_base64
from wgpy.core.peer import Endpoint
from wgpy.io.lanes import Lanes
from wgpy.io.protocols import Bind, BindOpener, ControlMessage, Lane, TunDevice
from wgpy.io.routewatch import RouteEvents
from wgpy.io.tun import InterfaceGone
from wgpy.io.udp import normalize
from wgpy.io.warm import WARM_INTERVAL, Warmer, keep_warm_window

log = logging.getLogger("wgpy.loop")
T = TypeVar("T")

BATCH = 128
# Datagrams read from the listening socket per wake-up while lanes or the TUN also had work
# (and lanes are open: without any, everything arrives there and it gets BATCH as before).
LISTEN_SHARE = 16
# Seconds of queued handshakes finished per wake-up, after its packets (at least one each).
HANDSHAKE_SLICE = 0.0005


def peer_label(public_key: bytes) -> str:
    """A peer as wireguard-go names it in logs: peer(AbCd…WxYz), the ends of its public key
    (public, and enough to tell peers apart)."""
    text = key_to_base64(public_key)
    return f"peer({text[:4]}…{text[39:43]})"


class Tunnel:
    """A running WireGuard interface: TUN + UDP + core. Implements the UAPI DeviceHost."""

    def __init__(self, tun: TunDevice, device: Device, open_bind: BindOpener, *,
                 keep_warm: float | None = None) -> None:
        """`open_bind(port, fwmark)` opens the UDP bind (now, and again on each port change).
        `keep_warm`: seconds to keep the path warm after a packet (0: never; None: from
        WGPY_KEEP_WARM, see warm.py)."""
        self.tun = tun
        self._open_bind = open_bind
        self.device = device
        device.defer_handshakes = True
        self._warm_window = keep_warm_window() if keep_warm is None else keep_warm
        self._warmer = Warmer() if self._warm_window > 0 else None
        self.udp: Bind | None = None
        self._fwmark = 0
        self._up = False
        self._stopping = False
        self._thread_id: int | None = None
        self._calls: list[tuple[Callable[[], object], Future]] = []
        self._calls_lock = threading.Lock()
        device.set_running(False, time.monotonic())  # until the interface is up
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll = select.epoll()
        self._epoll.register(tun.fd, select.EPOLLIN)
        self._epoll.register(self._wake, select.EPOLLIN)
        self._links = tun.link_events()
        self._epoll.register(self._links.fileno(), select.EPOLLIN)
        self._routes = RouteEvents()  # sticky sources are checked again after a route change
        self._epoll.register(self._routes.fileno(), select.EPOLLIN)
        self.tun_write_errors = 0
        self.udp_send_errors = 0
        self.internal_errors = 0
        self.lanes = Lanes(self._watch, self._epoll.unregister)
        self._bind(0)

    # ------------------------------------------------------------------ DeviceHost

    def now(self) -> float:
        return time.monotonic()

    def listen_port(self) -> int:
        return self.udp.port if self.udp is not None else 0

    def io_drops(self) -> dict[str, int]:
        """What this shell lost outside the core, for `wgpy show --drops`."""
        return {
            "tun_bad_vnet_header": self.tun.malformed_reads,
            "tun_write_failed": self.tun_write_errors,
            "udp_send_failed": self.udp_send_errors,
            "internal_error": self.internal_errors,
        }

    def set_listen_port(self, port: int) -> None:
        """Rebind (port 0: a new random port); OSError, e.g. EADDRINUSE, leaves the old one."""
        if self.udp is None or port != self.udp.port:
            self._bind(port)

    def fwmark(self) -> int:
        return self._fwmark

    def set_fwmark(self, mark: int) -> None:
        if self.udp is not None:
            self.udp.set_fwmark(mark)
        self._fwmark = mark

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the loop thread and return its result (or raise its exception)."""
        if self._thread_id is None or threading.get_ident() == self._thread_id:
            return fn()
        future: Future = Future()
        with self._calls_lock:
            if self._stopping:
                raise OSError(errno.ESHUTDOWN, "interface is shutting down")
            self._calls.append((fn, future))
        os.eventfd_write(self._wake, 1)
        return future.result()

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask the loop to finish (safe from signal handlers and other threads)."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.eventfd_write(self._wake, 1)

    def _watch(self, fd: int) -> None:
        self._epoll.register(fd, select.EPOLLIN)

    def _bind(self, port: int) -> None:
        new = self._open_bind(port, self._fwmark)
        self.lanes.close_all()  # (bound to the old port)
        if self.udp is not None:
            self._epoll.unregister(self.udp.fileno())
            self.udp.close()
        self.udp = new
        self._epoll.register(new.fileno(), select.EPOLLIN)
        log.info("UDP bound to port %d (GSO %s, GRO %s)", new.port,
                 "on" if new.gso else "off", "on" if new.gro else "off")

    def _check_link(self) -> None:
        up = self.tun.is_up()
        if up != self._up:
            self._up = up
            self.device.set_running(up, time.monotonic())
            log.info("interface is %s", "up" if up else "down")
        mtu = self.tun.mtu()
        if mtu is not None and mtu != self.device.mtu:
            self.device.mtu = mtu

    def run(self) -> None:
        """Serve until stop() or until the interface is deleted."""
        self._thread_id = threading.get_ident()
        self._check_link()  # after subscribing to link events: no change falls in between
        window = self._warm_window
        last_traffic = -window
        warmer = self._warmer
        links = self._links
        routes = self._routes
        lanes = self.lanes
        by_fd = lanes.by_fd
        try:
            while not self._stopping:
                now = time.monotonic()
                wake_at = self.device.next_deadline()
                warming = warmer is not None and now - last_traffic < window
                if warming:
                    warm_at = now + WARM_INTERVAL
                    wake_at = warm_at if wake_at is None else min(wake_at, warm_at)
                if self.device.handshakes:
                    wake_at = now
                events = self._epoll.poll(-1 if wake_at is None else max(0.0, wake_at - now))
                now = time.monotonic()
                udp = self.udp
                if not events and warming and not self.device.handshakes:
                    self._keep_warm()
                listening = False  # the listening socket is read last
                busy = False  # lanes or the TUN had work
                for fd, _ in events:
                    try:
                        if fd == self.tun.fd:
                            busy = True
                            if self._drain_tun(now):
                                last_traffic = now
                        elif fd in by_fd:
                            busy = True
                            if self._drain_udp(by_fd[fd].lane, now, lane=fd):
                                last_traffic = now
                        elif udp is not None and fd == udp.fileno():
                            listening = True
                        elif fd == self._wake:
                            self._run_calls()
                        elif fd == links.fileno() and links.drain():
                            self._check_link()
                        elif fd == routes.fileno() and routes.drain() and udp is not None:
                            udp.route_changed()
                    except InterfaceGone:
                        raise
                    except Exception:
                        self._batch_failed()
                if listening and udp is self.udp and udp is not None:
                    try:
                        share = LISTEN_SHARE if busy and by_fd else BATCH
                        if self._drain_udp(udp, now, share):
                            last_traffic = now
                    except InterfaceGone:  # a packet for the TUN found it gone
                        raise
                    except Exception:
                        self._batch_failed()
                if self.device.handshakes:
                    self._run_handshakes()
                deadline = self.device.next_deadline()
                if deadline is not None and deadline <= now:
                    self.device.tick(now)
                lanes.sweep(now)
                self._flush_outbox()
                if self.device.events:
                    self._log_events()
        except InterfaceGone:
            log.info("interface %s was deleted; shutting down", self.tun.name)
        finally:
            self._finish()

    def _keep_warm(self) -> None:
        """Between the packets of a live tunnel: run the path's costly pieces (see warm.py)."""
        assert self._warmer is not None
        self._warmer.touch()
        self.tun.waiting()
        if self.udp is not None:
            self.udp.waiting()

    def _batch_failed(self) -> None:
        """A bug must cost a batch, not the interface: count it, log it, go on."""
        self.internal_errors += 1
        log.exception("internal error in the data loop; batch dropped")

    def _finish(self) -> None:
        with self._calls_lock:
            self._stopping = True
            calls, self._calls = self._calls, []
        for _, future in calls:
            future.set_exception(OSError(errno.ESHUTDOWN, "interface is shutting down"))
        self.lanes.close_all()
        if self.udp is not None:
            self.udp.close()
            self.udp = None
        self._epoll.close()
        self._links.close()
        self._routes.close()
        os.close(self._wake)

    # ------------------------------------------------------------------ data plane

    def _drain_tun(self, now: float) -> bool:
        """Read a batch from the TUN, encrypt each packet, send the lot (GSO where it can).
        True if anything is sent to a peer (a packet, or the handshake it waits for)."""
        if not self._up:
            self._check_link()  # (see _drain_udp)
        encrypt = self.device.encrypt
        udp = self.udp
        batch: list[tuple[Endpoint, bytes]] = []
        append = batch.append
        for packet in self.tun.read_batch(BATCH):
            if udp is None:
                continue  # interface down: nothing may leave
            result = encrypt(packet, now)
            if result is not None:
                append(result)
        tunnel_traffic = bool(batch or self.device.outbox)
        if batch and udp is not None:
            self.udp_send_errors += udp.send_batch(batch)
        if self.device.tun_outbox:  # ICMP errors for packets no peer could take
            self.tun_write_errors += self.tun.write_batch(self.device.take_tun_outbox())
        self._flush_outbox()
        return tunnel_traffic

    def _drain_udp(self, reader: Bind | Lane, now: float, limit: int = BATCH,
                   lane: int | None = None) -> bool:
        """Receive up to `limit` datagrams (GRO-coalesced where it can) from the listening
        socket or from `lane` (its fd), decrypt each, write to TUN; an endpoint that
        authenticated on the listening socket gets a lane.
        True if a packet went to the TUN: keepalives and handshakes (a 1,000-peer server gets
        dozens a second with nothing flowing) do not keep the path warm."""
        if not self._up:
            # The link may have come up since the last poll: `wg-quick up` returns as soon
            # as it is, and a peer's first initiation can be here before the poll notices.
            self._check_link()
        udp = self.udp
        assert udp is not None
        device = self.device
        decrypt = device.decrypt
        receive = reader.receive
        packets: list[bytes] = []
        deliver = packets.append
        received = 0
        receives = 0
        while received < limit:
            if receives == 1 and not reader.waiting():
                break  # the usual case on a quiet tunnel: no receive that ends in EAGAIN
            receives += 1
            try:
                result = receive()
            except OSError as exc:  # e.g. ICMP errors surfacing as ECONNREFUSED
                log.debug("UDP receive error: %s", exc)
                continue
            if result is None:
                break
            data, segment, address, pktinfo = result
            if not device.running:
                continue  # interface down: nothing is received
            source = normalize(address)
            length = len(data)
            authenticated = False
            for offset in range(0, length, segment or 1):
                datagram = data[offset : offset + segment]
                received += 1
                if datagram[0] != MESSAGE_TRANSPORT_DATA:
                    # A handshake message (screened and queued by the core with its arrival
                    # address, for _run_handshakes), a cookie reply or garbage: a view, the
                    # core copies what it keeps.
                    decrypt(datagram, source, now, pktinfo)
                    continue
                packet = decrypt(datagram, source, now)
                if packet is not None:  # it authenticated (an empty packet: a keepalive)
                    authenticated = True
                    if packet:
                        deliver(packet)
            if authenticated:
                if pktinfo is not None:
                    udp.remember_source(source, pktinfo)
                if lane is None:
                    self.lanes.authenticated(udp, source, pktinfo, now)
                else:
                    self.lanes.seen(lane, now)
        if device.cookie_replies:
            self._send_cookie_replies(udp)
        if packets:
            failures = self.tun.write_batch(packets)
            if failures:
                self.tun_write_errors += failures
                log.warning("%d TUN writes failed", failures)
            if self.tun.waiting():
                # The kernel answers on the TUN inside the write (an echo reply, a TCP ACK):
                # encrypt it now rather than after another trip through epoll.
                self._drain_tun(now)
                return True
        self._flush_outbox()
        return bool(packets)

    def _send_cookie_replies(self, udp: Bind) -> None:
        """What the core answered to handshakes that did not authenticate (cookie replies,
        under load), sent after the batch they came in. Each leaves from the address its
        handshake was sent to, as wireguard-go's do, without that address sticking to the
        sender."""
        device = self.device
        for endpoint, reply, arrival in device.take_cookie_replies():
            if arrival is None:  # (no PKTINFO: the kernel picks the source address)
                self.udp_send_errors += udp.send_batch([(endpoint, reply)])
                continue
            try:
                udp.reply_once(endpoint, reply, cast(ControlMessage, arrival))
            except OSError as exc:
                self.udp_send_errors += 1
                log.debug("reply to %s:%d failed: %s", endpoint[0], endpoint[1], exc)

    def _run_handshakes(self) -> None:
        """Finish queued handshakes for up to HANDSHAKE_SLICE seconds; a sender that
        authenticated keeps the local address it reached us on (sticky source)."""
        device = self.device
        udp = self.udp
        stop_at = time.monotonic() + HANDSHAKE_SLICE
        while device.handshakes:
            try:
                authenticated = device.process_handshake(time.monotonic())
            except Exception:  # a bug must cost a handshake, not the interface
                self.internal_errors += 1
                log.exception("internal error finishing a handshake; dropped")
                authenticated = None
            if authenticated is not None and udp is not None:
                source, pktinfo = authenticated
                if pktinfo is not None:
                    udp.remember_source(source, cast(ControlMessage, pktinfo))
                self.lanes.authenticated(udp, source, cast(ControlMessage | None, pktinfo),
                                         time.monotonic())
            if time.monotonic() >= stop_at:
                break
        self._flush_outbox()

    def _log_events(self) -> None:
        """Handshakes completed, failed or given up, endpoints moved: one info line each."""
        for kind, public_key, detail in self.device.take_events():
            log.info("%s: %s%s", peer_label(public_key), kind, f" ({detail})" if detail else "")

    def _flush_outbox(self) -> None:
        if not self.device.outbox:
            return
        outbox = self.device.take_outbox()
        if self.udp is not None:
            self.udp_send_errors += self.udp.send_batch(outbox)

    def _run_calls(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._wake)
        with self._calls_lock:
            calls, self._calls = self._calls, []
        for fn, future in calls:
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed back to the caller's thread
                future.set_exception(exc)

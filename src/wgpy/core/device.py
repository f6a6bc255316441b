"""The device core: peers, cryptokey routing, handshakes and transport data.

The state machine that drives the protocol's timers; their rules (when each is armed, cancelled
and what its expiry does) are all in timers.py, called here at the events they name.

Sans-I/O. The shell hands in datagrams (with their source endpoint), IP packets from the TUN
and the time; the core hands back what to deliver and what to send:

* `encrypt(packet, now)` returns `(endpoint, datagram)` for the hot path, or None;
* `decrypt(datagram, source, now)` returns the inner IP packet to deliver (empty for a
  keepalive) when the datagram authenticated its sender, or None when it did not (dropped, or
  a handshake message: `process_handshake` finishes those and says whether they authenticated);
* everything else the protocol sends (handshakes, cookie replies, keepalives, packets that
  were waiting for a session) is appended to `outbox` as `(endpoint, datagram)`;
* cookie replies, which answer senders that did not authenticate, are appended to
  `cookie_replies` as `(endpoint, datagram, context)`, the context their message came with (the
  shell sends each from the address it was sent to, and remembers nothing of the sender);
* ICMP errors for packets no peer can take (see icmp.py) are appended to `tun_outbox`, to be
  written back into the TUN;
* `tick(now)` runs due timers (dispatched by timers.EXPIRY); `next_deadline()` says when to
  call it next.

Network input never raises: every rejected packet is counted in `drops` under a named reason.
The rules follow wireguard-go and the Linux module; comments name the reference function where
behaviour is subtle.
"""

import os
import socket
from collections.abc import Callable

from cryptography.exceptions import InvalidTag

from wgpy.core import noise
from wgpy.core.allowedips import AllowedIPs
from wgpy.core.constants import (
    DEFAULT_MTU,
    KEEPALIVE_TIMEOUT,
    MESSAGE_HANDSHAKE_COOKIE,
    MESSAGE_HANDSHAKE_INITIATION,
    MESSAGE_PADDING_MULTIPLE,
    MESSAGE_TRANSPORT_DATA,
    MESSAGE_TRANSPORT_HEADER_SIZE,
    MESSAGE_TRANSPORT_MIN_SIZE,
    REJECT_AFTER_MESSAGES,
    REJECT_AFTER_TIME,
    REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME,
    REKEY_TIMEOUT,
    ZERO_KEY,
)
from wgpy.core.cookie import MAX_REMEMBERED_COOKIES, CookieChecker
from wgpy.core.crypto import aead_nonce
from wgpy.core.drops import Drop, new_counters
from wgpy.core.events import PeerEvent, PeerEventKind, endpoint_text, new_event_log
from wgpy.core.handshakequeue import HandshakeQueue
from wgpy.core.icmp import UnreachableReporter
from wgpy.core.indextable import IndexTable
from wgpy.core.keypair import Keypair
from wgpy.core.messages import HANDSHAKE_SIZES, MESSAGE_TYPE, RESPONSE, TRANSPORT_HEADER
from wgpy.core.peer import Endpoint, Peer
from wgpy.core.ratelimiter import RateLimiter
from wgpy.core.timers import (
    EXPIRY,
    TimerQueue,
    any_authenticated_packet_received,
    any_authenticated_packet_sent,
    any_authenticated_packet_traversal,
    data_received,
    data_sent,
    handshake_complete,
    handshake_initiated,
    persistent_keepalive_off,
    session_derived,
    stopped,
)

Datagram = tuple[Endpoint, bytes]
# A screened handshake message waiting for its costly part: (message, type, source, context).
QueuedHandshake = tuple[bytes, int, Endpoint, object]

_PADDING_MASK = ~(MESSAGE_PADDING_MULTIPLE - 1)
# Last-minute rekey: the initiator renews before its receiving key would be rejected.
_REKEY_BEFORE_REJECT = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT


def endpoint_address_bytes(endpoint: Endpoint) -> bytes:
    """Packed IP address of an endpoint (4 or 16 bytes; an IPv6 zone is not part of it).

    inet_pton (a pure conversion, no I/O) rather than `ipaddress`: under a handshake flood
    this runs for every initiation, and `ipaddress` costs ~3 µs of the ~8 µs that takes."""
    host = endpoint[0]
    if ":" in host:
        return socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
    return socket.inet_pton(socket.AF_INET, host)


def endpoint_cookie_source(endpoint: Endpoint) -> bytes:
    """What a cookie binds to: source address then port, big-endian (kernel cookie.c)."""
    return endpoint_address_bytes(endpoint) + endpoint[1].to_bytes(2, "big")


class Device:
    def __init__(
        self,
        private_key: bytes | None = None,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        wall_offset: float = 0.0,
        mtu: int = DEFAULT_MTU,
    ) -> None:
        """`wall_offset` turns the monotonic `now` into Unix time (for TAI64N timestamps and
        last-handshake times); the shell passes time.time() - time.monotonic()."""
        self._random = random_bytes
        jitter_seed = int.from_bytes(random_bytes(8), "little")
        self.wall_offset = wall_offset
        self.mtu = mtu
        self.identity: noise.StaticIdentity | None = None
        self.peers: dict[bytes, Peer] = {}
        self.allowed_ips: AllowedIPs[Peer] = AllowedIPs()
        self.index_table: IndexTable[Peer | Keypair] = IndexTable(random_bytes)
        self.cookie_checker = CookieChecker(random_bytes)
        self.rate_limiter = RateLimiter()
        # Cookie replies are limited per source too: under a flood they are what we send most.
        self.cookie_rate_limiter = RateLimiter()
        self._cookie_sources: dict[Endpoint, tuple[bytes, bytes]] = {}  # see _cookie_source
        self.timers = TimerQueue(jitter_seed)
        self.outbox: list[Datagram] = []
        self.cookie_replies: list[tuple[Endpoint, bytes, object]] = []
        self.tun_outbox: list[bytes] = []
        self._unreachable = UnreachableReporter()
        self.drops = new_counters()
        self.events = new_event_log()  # for the shell's log (events.py); take_events()
        # Like a wireguard-go device that is down: nothing is sent and no timer runs.
        self.running = True
        # Handshakes that passed the cheap checks; their depth decides "under load".
        self.handshakes: HandshakeQueue[QueuedHandshake] = HandshakeQueue()
        # False: `decrypt` finishes each handshake at once (tests, in-memory use). The I/O
        # shell sets True and runs the queue with `process_handshake` after the data packets,
        # so no data packet waits behind a pile of handshakes.
        self.defer_handshakes = False
        if private_key is not None:
            self.set_private_key(private_key, 0.0)

    # ------------------------------------------------------------------ configuration

    @property
    def private_key(self) -> bytes | None:
        return self.identity.private_key if self.identity else None

    @property
    def public_key(self) -> bytes | None:
        return self.identity.public_key if self.identity else None

    def set_private_key(self, private_key: bytes | None, now: float) -> None:
        """Change identity (None or all-zero removes it); every session must be renewed.

        As wireguard-go's SetPrivateKey: a peer whose key is our new public key is removed,
        static-static secrets are recomputed and current keypairs expired.
        """
        if private_key == ZERO_KEY:
            private_key = None
        if private_key == self.private_key:
            return
        if private_key is None:
            self.identity = None
        else:
            self.identity = noise.StaticIdentity.load(private_key)
            self.remove_peer(self.identity.public_key)
        self.cookie_checker.set_public_key(self.public_key)
        for peer in self.peers.values():
            peer.handshake.precomputed_static_static = noise.precompute_static_static(
                self.identity, peer.public_key
            )
            self.expire_current_keypairs(peer)

    def add_peer(self, public_key: bytes) -> Peer:
        """Create a peer (ValueError for our own public key, which the reference ignores)."""
        if self.identity is not None and public_key == self.identity.public_key:
            raise ValueError("peer has the device's own public key")
        if public_key in self.peers:
            return self.peers[public_key]
        peer = Peer(public_key)
        peer.handshake.precomputed_static_static = noise.precompute_static_static(
            self.identity, public_key
        )
        self.peers[public_key] = peer
        return peer

    def remove_peer(self, public_key: bytes) -> None:
        peer = self.peers.pop(public_key, None)
        if peer is None:
            return
        self.allowed_ips.remove_by_peer(peer)
        self.reset_peer(peer)

    def set_running(self, running: bool, now: float) -> None:
        """Interface up or down (wireguard-go's Up/Down): down forgets every session; up
        may handshake at once (Peer.Start) and sends a keepalive to each peer with a
        persistent keepalive interval."""
        if running == self.running:
            return
        self.running = running
        if not running:
            self.handshakes.clear()
        for peer in list(self.peers.values()):
            if running:
                peer.last_sent_handshake = None
                if peer.persistent_keepalive_interval:
                    self.send_keepalive(peer, now)
            else:
                self.reset_peer(peer)

    def reset_peer(self, peer: Peer) -> None:
        """Forget the peer's sessions, waiting packets and timers (interface went down)."""
        self.zero_and_flush(peer)
        stopped(peer)

    def remove_all_peers(self) -> None:
        for key in list(self.peers):
            self.remove_peer(key)

    def set_preshared_key(self, peer: Peer, key: bytes | None) -> None:
        peer.handshake.preshared_key = key or ZERO_KEY

    def set_persistent_keepalive(self, peer: Peer, interval: int, now: float) -> None:
        """Set the interval; turning it on sends a keepalive at once (wireguard-go IpcSet)."""
        was_off = peer.persistent_keepalive_interval == 0
        peer.persistent_keepalive_interval = interval
        if interval == 0:
            persistent_keepalive_off(peer)
        elif was_off and self.running:
            self.send_keepalive(peer, now)

    def expire_current_keypairs(self, peer: Peer) -> None:
        """Force a fresh handshake before more data is sent (ExpireCurrentKeypairs)."""
        self._clear_handshake(peer)
        peer.last_sent_handshake = None
        if peer.keypairs.current is not None:
            peer.keypairs.current.send_counter = REJECT_AFTER_MESSAGES
        if peer.keypairs.next is not None:
            peer.keypairs.next.send_counter = REJECT_AFTER_MESSAGES

    # ------------------------------------------------------------------ outbound data

    def encrypt(self, packet: bytes, now: float) -> Datagram | None:
        """An IP packet from the TUN: route by destination, encrypt or wait for a session."""
        if not self.running:
            return None
        size = len(packet)
        version = packet[0] >> 4 if size else 0
        if version == 4 and size >= 20:
            destination = packet[16:20]
        elif version == 6 and size >= 40:
            destination = packet[24:40]
        else:
            self.drops[Drop.BAD_OUTBOUND_PACKET] += 1
            return None
        peer = self.allowed_ips.lookup(destination)
        if peer is None:
            self.drops[Drop.NO_KEY] += 1
            self._report_unreachable(packet, now)
            return None
        endpoint = peer.endpoint
        if endpoint is None:
            self.drops[Drop.NO_ENDPOINT] += 1
            self._report_unreachable(packet, now)
            return None
        keypair = peer.keypairs.current
        if (
            peer.staged
            or keypair is None
            or keypair.send_counter >= REJECT_AFTER_MESSAGES
            or now - keypair.created >= REJECT_AFTER_TIME
        ):
            if not peer.stage(packet):
                self.drops[Drop.STAGED_OVERFLOW] += 1
            self._send_staged(peer, now)
            return None
        datagram = self._seal(peer, keypair, packet, now)
        peer.tx_bytes += len(datagram)
        return endpoint, datagram

    def _report_unreachable(self, packet: bytes, now: float) -> None:
        """Tell the sender, as the kernel module does (wg_xmit's err_icmp)."""
        error = self._unreachable.error_for(packet, now)
        if error is not None:
            self.tun_outbox.append(error)

    def _seal(self, peer: Peer, keypair: Keypair, packet: bytes, now: float) -> bytes:
        """Encrypt one packet (or a keepalive) under `keypair`, with the send-side timers."""
        counter = keypair.send_counter
        keypair.send_counter = counter + 1
        size = len(packet)
        if size:
            padded = min((size + MESSAGE_PADDING_MULTIPLE - 1) & _PADDING_MASK, self.mtu)
            if padded > size:
                packet = packet + bytes(padded - size)
        header = TRANSPORT_HEADER.pack(MESSAGE_TRANSPORT_DATA, keypair.remote_index, counter)
        datagram = header + keypair.send.encrypt(aead_nonce(counter), packet, None)

        any_authenticated_packet_traversal(self.timers, peer, now)
        any_authenticated_packet_sent(peer)
        if size:
            data_sent(self.timers, peer, now)
        # keepKeyFreshSending
        if counter + 1 > REKEY_AFTER_MESSAGES or (
            keypair.is_initiator and now - keypair.created >= REKEY_AFTER_TIME
        ):
            self.send_initiation(peer, now)
        return datagram

    def _send_staged(self, peer: Peer, now: float) -> None:
        keypair = peer.keypairs.current
        if (
            keypair is None
            or keypair.send_counter >= REJECT_AFTER_MESSAGES
            or now - keypair.created >= REJECT_AFTER_TIME
        ):
            self.send_initiation(peer, now)
            return
        staged = peer.staged
        while staged and peer.keypairs.current is keypair:
            self._emit(peer, self._seal(peer, keypair, staged.popleft(), now))
        if staged is not None and not staged and peer.staged is staged:
            peer.staged = None  # (see Peer.staged)

    def send_keepalive(self, peer: Peer, now: float) -> None:
        """An empty data packet, through the waiting packets and the session rules."""
        if not self.running:
            return
        if not peer.staged:
            peer.stage(b"")
        self._send_staged(peer, now)

    def _emit(self, peer: Peer, datagram: bytes) -> None:
        if peer.endpoint is None:
            self.drops[Drop.NO_ENDPOINT] += 1
            return
        peer.tx_bytes += len(datagram)
        self.outbox.append((peer.endpoint, datagram))

    # ------------------------------------------------------------------ inbound

    def decrypt(self, datagram: bytes | memoryview, source: Endpoint, now: float,
                context: object = None) -> bytes | None:
        """A datagram from the network; returns an IP packet to deliver, or None.

        Transport data may come as a view into the shell's receive buffer (nothing keeps it).
        A handshake message is screened and queued (see `process_handshake`) with `context`,
        what the shell wants back if it authenticates (the local address it arrived on)."""
        size = len(datagram)
        if size < 4:
            self.drops[Drop.BAD_LENGTH] += 1
            return None
        message_type = MESSAGE_TYPE.unpack_from(datagram)[0]
        if message_type == MESSAGE_TRANSPORT_DATA:
            return self._receive_transport(datagram, source, now)
        expected = HANDSHAKE_SIZES.get(message_type)
        if expected is None:
            self.drops[Drop.BAD_TYPE] += 1
        elif size != expected:
            self.drops[Drop.BAD_LENGTH] += 1
        elif message_type == MESSAGE_HANDSHAKE_COOKIE:
            self._receive_cookie_reply(bytes(datagram), now)
        else:
            self._receive_handshake(datagram, message_type, source, now, context)
        return None

    def _receive_transport(
        self, datagram: bytes | memoryview, source: Endpoint, now: float
    ) -> bytes | None:
        drops = self.drops
        if len(datagram) < MESSAGE_TRANSPORT_MIN_SIZE:
            drops[Drop.BAD_LENGTH] += 1
            return None
        _, receiver, counter = TRANSPORT_HEADER.unpack_from(datagram)
        keypair = self.index_table.entries.get(receiver)
        if keypair.__class__ is not Keypair:
            drops[Drop.UNKNOWN_INDEX] += 1
            return None
        assert isinstance(keypair, Keypair)
        if now - keypair.created >= REJECT_AFTER_TIME:
            drops[Drop.EXPIRED_KEY] += 1
            return None
        replay = keypair.replay
        if not replay.would_accept(counter):
            drops[Drop.REPLAYED] += 1
            return None
        try:
            plaintext = keypair.receive.decrypt(
                aead_nonce(counter), datagram[MESSAGE_TRANSPORT_HEADER_SIZE:], None
            )
        except InvalidTag:
            drops[Drop.DECRYPT_FAILED] += 1
            return None
        if not replay.validate(counter):
            drops[Drop.REPLAYED] += 1
            return None

        peer = keypair.peer
        if peer.endpoint != source:
            self._move_endpoint(peer, source)
        keypairs = peer.keypairs
        if keypair is keypairs.next:
            self._confirm_keypair(peer, keypair, now)
        elif (
            keypair is keypairs.current
            and keypair.is_initiator
            and not peer.sent_last_minute_handshake
            and now - keypair.created >= _REKEY_BEFORE_REJECT
        ):
            # keepKeyFreshReceiving
            peer.sent_last_minute_handshake = True
            self.send_initiation(peer, now)
        any_authenticated_packet_traversal(self.timers, peer, now)
        any_authenticated_packet_received(peer)
        peer.rx_bytes += len(datagram)
        if not plaintext:
            return plaintext  # a keepalive: nothing to deliver, but the sender authenticated
        data_received(self.timers, peer, now)

        version = plaintext[0] >> 4
        size = len(plaintext)
        if version == 4 and size >= 20:
            length = (plaintext[2] << 8) | plaintext[3]
            source_address = plaintext[12:16]
            minimum = 20
        elif version == 6 and size >= 40:
            length = ((plaintext[4] << 8) | plaintext[5]) + 40
            source_address = plaintext[8:24]
            minimum = 40
        else:
            drops[Drop.BAD_INNER_PACKET] += 1
            return None
        if length > size or length < minimum:
            drops[Drop.BAD_INNER_PACKET] += 1
            return None
        if self.allowed_ips.lookup(source_address) is not peer:
            drops[Drop.SRC_NOT_ALLOWED] += 1
            return None
        return plaintext if length == size else plaintext[:length]

    def _confirm_keypair(self, peer: Peer, keypair: Keypair, now: float) -> None:
        """Responder's first data under a new session: it becomes current."""
        dropped = peer.keypairs.confirm(keypair)
        if isinstance(dropped, Keypair):
            self._release_keypair(dropped)
        handshake_complete(peer, now + self.wall_offset)
        self._send_staged(peer, now)

    # ------------------------------------------------------------------ handshakes

    def _receive_handshake(
        self, message: bytes | memoryview, message_type: int, source: Endpoint, now: float,
        context: object,
    ) -> None:
        """The cheap checks, cheapest first, then the queue: mac1 (one BLAKE2s); under load,
        mac2 (else a cookie reply, at most as often as the per-source rate limiter allows) and
        the per-source handshake rate (cookie.c / receive.c of the kernel). `message` may be
        a view into the shell's receive buffer: only what is queued is copied (a flood's
        datagrams, refused here, never are).

        Most of a flood's datagrams end as cookie_ratelimited: under load, no mac2, and their
        source has used up its cookie replies. That outcome does not depend on mac1 (nothing is
        sent, nothing changes), so it is decided first, without the BLAKE2s: such a datagram
        with a bad mac1 is counted as cookie_ratelimited, not bad_mac1."""
        checker = self.cookie_checker
        handshakes = self.handshakes
        if handshakes.loaded(now) and checker.lacks_mac2(message):
            cookie_source, address = self._cookie_source(source)
            if self.cookie_rate_limiter.exhausted(address, now):
                handshakes.under_load(now)  # (an arrival all the same)
                self.drops[Drop.COOKIE_RATELIMITED] += 1
                return
        if not checker.check_mac1(message):
            self.drops[Drop.BAD_MAC1] += 1
            return
        if handshakes.under_load(now):
            cookie_source, address = self._cookie_source(source)
            if not checker.check_mac2(message, cookie_source, now):
                if not self.cookie_rate_limiter.allow(address, now):
                    self.drops[Drop.COOKIE_RATELIMITED] += 1
                    return
                sender = MESSAGE_TYPE.unpack_from(message, 4)[0]
                reply = checker.create_reply(message, sender, cookie_source, now)
                self.cookie_replies.append((source, reply, context))
                self.drops[Drop.COOKIE_NEEDED] += 1
                return
            if not self.rate_limiter.allow(address, now):
                self.drops[Drop.RATELIMITED] += 1
                return
        if not self.handshakes.push((bytes(message), message_type, source, context)):
            self.drops[Drop.HANDSHAKE_QUEUE_FULL] += 1
            return
        if not self.defer_handshakes:
            self.process_handshake(now)

    def _cookie_source(self, source: Endpoint) -> tuple[bytes, bytes]:
        """`source`'s cookie source (address and port) and address, remembered: a flood
        comes again and again from the same few, and each conversion costs ~0.5 µs. Bounded
        like the cookie memo (cleared when full: random sources cannot grow it)."""
        known = self._cookie_sources.get(source)
        if known is None:
            if len(self._cookie_sources) >= MAX_REMEMBERED_COOKIES:
                self._cookie_sources.clear()
            cookie_source = endpoint_cookie_source(source)
            known = self._cookie_sources[source] = (cookie_source, cookie_source[:-2])
        return known

    def process_handshake(self, now: float) -> tuple[Endpoint, object] | None:
        """Finish the oldest queued handshake (the costly part: Noise, DH, the answer).

        Returns its (source, context) when it authenticated the sender, so the shell may keep
        the local address it arrived on for replies; None otherwise (or if none waits)."""
        if not self.handshakes:
            return None
        message, message_type, source, context = self.handshakes.pop()
        if self.identity is None:  # the key was removed while it waited
            self.drops[Drop.HANDSHAKE_FAILED] += 1
            authenticated = False
        elif message_type == MESSAGE_HANDSHAKE_INITIATION:
            authenticated = self._receive_initiation(message, source, now)
        else:
            authenticated = self._receive_response(message, source, now)
        return (source, context) if authenticated else None

    def _receive_initiation(self, message: bytes, source: Endpoint, now: float) -> bool:
        """Consume an initiation and answer it; True if it authenticated its sender."""
        identity = self.identity
        assert identity is not None  # process_handshake checked
        received = noise.open_initiation(identity, message)
        if received is None:
            self.drops[Drop.HANDSHAKE_FAILED] += 1
            return False
        peer = self.peers.get(received.remote_static)
        if peer is None:
            self.drops[Drop.UNKNOWN_PEER] += 1
            return False
        try:
            noise.accept_initiation(peer.handshake, received, now)
        except noise.InitiationRejected as rejected:
            self.drops[rejected.reason] += 1
            return False
        self._move_endpoint(peer, source)
        peer.rx_bytes += len(message)
        any_authenticated_packet_traversal(self.timers, peer, now)
        any_authenticated_packet_received(peer)
        self._send_response(peer, now)
        return True

    def _send_response(self, peer: Peer, now: float) -> None:
        handshake = peer.handshake
        self._release_handshake_index(peer)
        index = self.index_table.allocate(peer)
        message = noise.create_response(handshake, index, self._random)
        if message is None:
            self.index_table.release(index)
            handshake.clear()
            self.drops[Drop.HANDSHAKE_FAILED] += 1
            return
        peer.cookie_generator.add_macs(message, now)
        # A response is a sent handshake (kernel wg_packet_send_handshake_response, wireguard-go
        # SendHandshakeResponse): until the initiator's first data confirms the session, our
        # own traffic waits for it instead of starting a second handshake and a key rotation.
        peer.last_sent_handshake = now
        self._begin_session(peer, now)
        any_authenticated_packet_traversal(self.timers, peer, now)
        any_authenticated_packet_sent(peer)
        self._emit(peer, bytes(message))

    def _receive_response(self, message: bytes, source: Endpoint, now: float) -> bool:
        """Consume a response to our initiation; True if it authenticated its sender."""
        receiver = RESPONSE.unpack_from(message)[2]
        peer = self.index_table.entries.get(receiver)
        if not isinstance(peer, Peer) or peer.handshake.local_index != receiver:
            self.drops[Drop.UNKNOWN_INDEX] += 1
            return False
        handshake = peer.handshake
        if handshake.state != noise.HandshakeState.CREATED_INITIATION:
            self.drops[Drop.UNEXPECTED_RESPONSE] += 1
            return False
        assert self.identity is not None
        if not noise.consume_response(self.identity, handshake, message):
            self.drops[Drop.HANDSHAKE_FAILED] += 1
            self.events.append(PeerEvent(
                PeerEventKind.HANDSHAKE_FAILED, peer.public_key,
                "the response did not authenticate (preshared keys differ?)"))
            return False
        self._move_endpoint(peer, source)
        peer.rx_bytes += len(message)
        any_authenticated_packet_traversal(self.timers, peer, now)
        any_authenticated_packet_received(peer)
        self._begin_session(peer, now)
        handshake_complete(peer, now + self.wall_offset)
        self.send_keepalive(peer, now)
        return True

    def _receive_cookie_reply(self, message: bytes, now: float) -> None:
        receiver = MESSAGE_TYPE.unpack_from(message, 4)[0]
        entry = self.index_table.entries.get(receiver)
        if entry is None:
            self.drops[Drop.UNKNOWN_INDEX] += 1
            return
        peer = entry if isinstance(entry, Peer) else entry.peer
        if not peer.cookie_generator.consume_reply(message, now):
            self.drops[Drop.BAD_COOKIE_REPLY] += 1

    def send_initiation(self, peer: Peer, now: float, *, is_retry: bool = False) -> None:
        """SendHandshakeInitiation: at most one per REKEY_TIMEOUT per peer."""
        if not self.running:
            return
        if not is_retry:
            peer.handshake_attempts = 0
        if peer.last_sent_handshake is not None and now - peer.last_sent_handshake < REKEY_TIMEOUT:
            return
        identity = self.identity
        if identity is None:
            return
        peer.last_sent_handshake = now
        self._release_handshake_index(peer)
        index = self.index_table.allocate(peer)
        message = noise.create_initiation(
            identity, peer.handshake, index, now + self.wall_offset, self._random
        )
        if message is None:
            self.index_table.release(index)
            return
        peer.cookie_generator.add_macs(message, now)
        any_authenticated_packet_traversal(self.timers, peer, now)
        any_authenticated_packet_sent(peer)
        self._emit(peer, bytes(message))
        handshake_initiated(self.timers, peer, now)

    def _begin_session(self, peer: Peer, now: float) -> None:
        """Derive transport keys from the finished handshake and slot them in."""
        handshake = peer.handshake
        send_key, receive_key, is_initiator = noise.derive_transport_keys(handshake)
        keypair = Keypair(
            send_key,
            receive_key,
            is_initiator,
            handshake.local_index,
            handshake.remote_index,
            now,
            peer,
        )
        self.index_table.replace(handshake.local_index, keypair)
        handshake.clear()
        for dropped in peer.keypairs.install(keypair):
            self._release_keypair(dropped)
        session_derived(self.timers, peer, now)
        self.events.append(PeerEvent(PeerEventKind.HANDSHAKE_COMPLETED, peer.public_key))

    def _move_endpoint(self, peer: Peer, source: Endpoint) -> None:
        """An authenticated packet came from `source`: roam there (and say so if it moved)."""
        if peer.endpoint != source:
            self.events.append(PeerEvent(
                PeerEventKind.ENDPOINT_CHANGED, peer.public_key,
                f"{endpoint_text(peer.endpoint)} -> {endpoint_text(source)}"))
            peer.endpoint = source

    def _release_keypair(self, keypair: Keypair) -> None:
        if self.index_table.entries.get(keypair.local_index) is keypair:
            self.index_table.release(keypair.local_index)

    def _release_handshake_index(self, peer: Peer) -> None:
        index = peer.handshake.local_index
        if self.index_table.entries.get(index) is peer:
            self.index_table.release(index)

    def _clear_handshake(self, peer: Peer) -> None:
        self._release_handshake_index(peer)
        peer.handshake.clear()

    def zero_and_flush(self, peer: Peer) -> None:
        """ZeroAndFlushAll: forget every session and waiting packet of the peer."""
        for keypair in peer.keypairs.clear():
            self._release_keypair(keypair)
        self._clear_handshake(peer)
        peer.staged = None

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        return self.timers.next_deadline()

    def tick(self, now: float) -> None:
        """Run every timer due at `now` (the rules and their expiry: timers.py)."""
        peers = self.peers
        for timers, timer in self.timers.expired(now):
            peer = peers.get(timers.public_key)
            if peer is not None and peer.timers is timers:  # (not a removed peer's)
                EXPIRY[timer](self, peer, now)

    # ------------------------------------------------------------------ control path

    def take_outbox(self) -> list[Datagram]:
        """Everything queued for sending since the last call."""
        out, self.outbox = self.outbox, []
        return out

    def take_cookie_replies(self) -> list[tuple[Endpoint, bytes, object]]:
        """The cookie replies made since the last call, each with its message's context."""
        out, self.cookie_replies = self.cookie_replies, []
        return out

    def take_events(self) -> list[PeerEvent]:
        """What happened to peers since the last call (events.py), oldest first."""
        out = list(self.events)
        self.events.clear()
        return out

    def take_tun_outbox(self) -> list[bytes]:
        """The packets for the TUN made since the last call (ICMP errors)."""
        out, self.tun_outbox = self.tun_outbox, []
        return out


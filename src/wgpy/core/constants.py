"""Protocol constants, named as in the WireGuard whitepaper (section 6) and the references.

Every timing and size rule of the protocol lives here so the rest of the core reads like the
paper. Times are seconds (floats), compared against the monotonic `now` the I/O shell passes in.
"""

from typing import Final

CONSTRUCTION: Final = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER: Final = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1: Final = b"mac1----"
LABEL_COOKIE: Final = b"cookie--"

# Section 6.1 of the whitepaper.
REKEY_AFTER_MESSAGES: Final = 1 << 60
REJECT_AFTER_MESSAGES: Final = (1 << 64) - (1 << 13) - 1
REKEY_AFTER_TIME: Final = 120.0
REJECT_AFTER_TIME: Final = 180.0
REKEY_ATTEMPT_TIME: Final = 90.0
REKEY_TIMEOUT: Final = 5.0
KEEPALIVE_TIMEOUT: Final = 10.0
COOKIE_REFRESH_TIME: Final = 120.0

# From the reference implementations (kernel messages.h, wireguard-go constants.go).
REKEY_TIMEOUT_JITTER_MAX: Final = 1.0 / 3.0
MAX_TIMER_HANDSHAKES: Final = int(REKEY_ATTEMPT_TIME / REKEY_TIMEOUT)
# A cookie we received is used for mac2 only while younger than this (kernel cookie.c).
COOKIE_SECRET_LATENCY: Final = 5.0
# Initiations from one peer faster than this are a flood (INITIATIONS_PER_SECOND = 50).
INITIATIONS_PER_SECOND: Final = 50
HANDSHAKE_INITIATION_RATE: Final = 1.0 / INITIATIONS_PER_SECOND
# Packets waiting for a session, per peer; the oldest is dropped when full.
MAX_STAGED_PACKETS: Final = 128
# The device is "under load" once this many handshakes wait, and stays so for a second.
MAX_QUEUED_INCOMING_HANDSHAKES: Final = 4096
UNDER_LOAD_QUEUE_LENGTH: Final = MAX_QUEUED_INCOMING_HANDSHAKES // 8
UNDER_LOAD_AFTER_TIME: Final = 1.0
# Handshake rate limiter: 20 per second per source, bursts of 5 (ratelimiter.c).
RATELIMITER_PACKETS_PER_SECOND: Final = 20
RATELIMITER_PACKETS_BURSTABLE: Final = 5
RATELIMITER_GARBAGE_COLLECT_TIME: Final = 1.0

# Replay window (kernel COUNTER_BITS_TOTAL = 8192, minus one word of slack).
COUNTER_BITS_TOTAL: Final = 8192
COUNTER_WINDOW_SIZE: Final = COUNTER_BITS_TOTAL - 64

# Message types and sizes (section 5.4).
MESSAGE_HANDSHAKE_INITIATION: Final = 1
MESSAGE_HANDSHAKE_RESPONSE: Final = 2
MESSAGE_HANDSHAKE_COOKIE: Final = 3
MESSAGE_TRANSPORT_DATA: Final = 4

KEY_LEN: Final = 32
# The all-zero key: "no key" wherever one is optional (preshared key, a removed private key
# in UAPI and config files), and the X25519 result that marks a small-order public key.
ZERO_KEY: Final = bytes(KEY_LEN)
HASH_LEN: Final = 32
TAG_LEN: Final = 16
TIMESTAMP_LEN: Final = 12
COOKIE_LEN: Final = 16
COOKIE_NONCE_LEN: Final = 24

MESSAGE_INITIATION_SIZE: Final = 148
MESSAGE_RESPONSE_SIZE: Final = 92
MESSAGE_COOKIE_REPLY_SIZE: Final = 64
MESSAGE_TRANSPORT_HEADER_SIZE: Final = 16
MESSAGE_TRANSPORT_MIN_SIZE: Final = MESSAGE_TRANSPORT_HEADER_SIZE + TAG_LEN
MESSAGE_KEEPALIVE_SIZE: Final = MESSAGE_TRANSPORT_MIN_SIZE
MESSAGE_PADDING_MULTIPLE: Final = 16

DEFAULT_MTU: Final = 1420
# Largest datagram the protocol produces or accepts: 65535 minus IPv6 + UDP headers.
MAX_MESSAGE_SIZE: Final = 65535 - 40 - 8

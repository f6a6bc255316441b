"""Wire formats of the four WireGuard messages (whitepaper section 5.4), little-endian.

The first four bytes are read as one little-endian u32 type, as both references do, so a
message with non-zero reserved bytes is of no known type and is dropped.
"""

import struct
from typing import Final

from wgpy.core.constants import (
    MESSAGE_COOKIE_REPLY_SIZE,
    MESSAGE_HANDSHAKE_COOKIE,
    MESSAGE_HANDSHAKE_INITIATION,
    MESSAGE_HANDSHAKE_RESPONSE,
    MESSAGE_INITIATION_SIZE,
    MESSAGE_RESPONSE_SIZE,
    MESSAGE_TRANSPORT_HEADER_SIZE,
)

# type(u32) sender(u32) ephemeral(32) encrypted_static(48) encrypted_timestamp(28) mac1 mac2
INITIATION: Final = struct.Struct("<II32s48s28s16s16s")
# type sender receiver ephemeral(32) encrypted_nothing(16) mac1 mac2
RESPONSE: Final = struct.Struct("<III32s16s16s16s")
# type receiver nonce(24) encrypted_cookie(32)
COOKIE_REPLY: Final = struct.Struct("<II24s32s")
# type receiver counter(u64); the encrypted packet follows
TRANSPORT_HEADER: Final = struct.Struct("<IIQ")
MESSAGE_TYPE: Final = struct.Struct("<I")

assert INITIATION.size == MESSAGE_INITIATION_SIZE
assert RESPONSE.size == MESSAGE_RESPONSE_SIZE
assert COOKIE_REPLY.size == MESSAGE_COOKIE_REPLY_SIZE
assert TRANSPORT_HEADER.size == MESSAGE_TRANSPORT_HEADER_SIZE

# Offsets of the MAC fields: mac1 covers everything before it, mac2 everything before mac2.
MAC1_OFFSET_FROM_END: Final = 32
MAC2_OFFSET_FROM_END: Final = 16

# The exact size each handshake message type must have.
HANDSHAKE_SIZES: Final = {
    MESSAGE_HANDSHAKE_INITIATION: MESSAGE_INITIATION_SIZE,
    MESSAGE_HANDSHAKE_RESPONSE: MESSAGE_RESPONSE_SIZE,
    MESSAGE_HANDSHAKE_COOKIE: MESSAGE_COOKIE_REPLY_SIZE,
}


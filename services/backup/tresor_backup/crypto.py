"""Encryption of snapshot parts: AES-256-GCM in chunks, keys wrapped by the operator's key.

Every snapshot has a random data key; the manifest holds it wrapped (AES-GCM) by the
operator's key, so the operator's key never touches the bulk data and a wrong key is
reported before anything is read.

A part file is a header and a sequence of chunks:

    header:  MAGIC (8 bytes) | nonce prefix (8 random bytes)
    chunk:   length of the sealed chunk (4 bytes, big-endian) | sealed chunk

A chunk is sealed with nonce = prefix | chunk index (4 bytes) and associated data
= part name | chunk index (8 bytes) | final flag (1 byte). The last chunk, and only
the last, carries the final flag, so a truncated, reordered, swapped or extended part
fails authentication.
"""

import base64
import hashlib
import hmac
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"TRSBAK1\0"
CHUNK_SIZE = 1 << 20
_TAG = 16
_WRAP_CONTEXT = b"tresor-backup data key v1:"


class CryptoError(Exception):
    """A key is wrong or encrypted data is damaged; the message says which."""


def parse_operator_key(text: str) -> bytes:
    """The operator's key: 32 random bytes, base64 (standard or URL-safe)."""
    padded = text.strip() + "=" * (-len(text.strip()) % 4)
    raw = b""
    for alphabet in (b"+/", b"-_"):
        try:
            raw = base64.b64decode(padded, altchars=alphabet, validate=True)
        except ValueError:
            continue
        if len(raw) == 32:
            break
    if len(raw) != 32:
        raise ValueError("expected 32 random bytes in base64 (e.g. `openssl rand -base64 32`)")
    return raw


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key, to tell which key a snapshot needs."""
    return hashlib.sha256(b"tresor-backup key id:" + key).hexdigest()[:16]


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def wrap_key(operator_key: bytes, data_key: bytes, snapshot_id: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(operator_key).encrypt(nonce, data_key, _WRAP_CONTEXT + snapshot_id.encode())
    return base64.b64encode(nonce + sealed).decode()


def unwrap_key(operator_key: bytes, wrapped: str, snapshot_id: str) -> bytes:
    raw = base64.b64decode(wrapped)
    try:
        return AESGCM(operator_key).decrypt(
            raw[:12], raw[12:], _WRAP_CONTEXT + snapshot_id.encode()
        )
    except InvalidTag:
        raise CryptoError("wrong key: the snapshot's data key does not open with it") from None


def manifest_mac(operator_key: bytes, body: bytes) -> str:
    """Authenticates the manifest (its checksums, sizes, wrapped key) with the operator's key."""
    mac_key = hashlib.sha256(b"tresor-backup manifest mac:" + operator_key).digest()
    return hmac.new(mac_key, body, hashlib.sha256).hexdigest()


def _associated(part: str, index: int, final: bool) -> bytes:
    return part.encode() + b"\0" + struct.pack(">QB", index, 1 if final else 0)


class EncryptingWriter:
    """A write-only file object: buffers plaintext and writes sealed chunks to `out`."""

    def __init__(self, out: BinaryIO, data_key: bytes, part: str) -> None:
        self._out = out
        self._aead = AESGCM(data_key)
        self._part = part
        self._prefix = os.urandom(8)
        self._buffer = bytearray()
        self._index = 0
        self._closed = False
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._emit(MAGIC + self._prefix)

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        self.sha256.update(data)
        self.size += len(data)

    def _seal(self, plaintext: bytes, final: bool) -> None:
        if self._index >= 1 << 32:
            raise CryptoError(f"{self._part}: too many chunks")
        nonce = self._prefix + struct.pack(">I", self._index)
        sealed = self._aead.encrypt(nonce, plaintext, _associated(self._part, self._index, final))
        self._emit(struct.pack(">I", len(sealed)) + sealed)
        self._index += 1

    def write(self, data: bytes) -> int:
        if self._closed:
            raise ValueError("write to a closed EncryptingWriter")
        self._buffer += data
        # Keep at least one byte back: the final chunk must never be empty-by-accident.
        while len(self._buffer) > CHUNK_SIZE:
            self._seal(bytes(self._buffer[:CHUNK_SIZE]), final=False)
            del self._buffer[:CHUNK_SIZE]
        return len(data)

    def flush(self) -> None:
        """Chunks are sealed whole; nothing to flush early."""

    def close(self) -> None:
        if not self._closed:
            self._seal(bytes(self._buffer), final=True)
            self._buffer.clear()
            self._closed = True


def _read_exact(source: BinaryIO, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        block = source.read(size - len(data))
        if not block:
            break
        data += block
    return bytes(data)


def decrypt_chunks(source: BinaryIO, data_key: bytes, part: str) -> Iterator[bytes]:
    """Plaintext chunks of a part; raises CryptoError naming the part on any damage."""
    header = _read_exact(source, len(MAGIC) + 8)
    if len(header) != len(MAGIC) + 8 or header[: len(MAGIC)] != MAGIC:
        raise CryptoError(f"{part}: not a Tresor backup part (bad header)")
    prefix = header[len(MAGIC) :]
    aead = AESGCM(data_key)
    index = 0
    while True:
        length_bytes = _read_exact(source, 4)
        if len(length_bytes) != 4:
            raise CryptoError(f"{part}: truncated (no final chunk)")
        (length,) = struct.unpack(">I", length_bytes)
        if length < _TAG or length > CHUNK_SIZE + _TAG:
            raise CryptoError(f"{part}: damaged (bad chunk length at chunk {index})")
        sealed = _read_exact(source, length)
        if len(sealed) != length:
            raise CryptoError(f"{part}: truncated in chunk {index}")
        nonce = prefix + struct.pack(">I", index)
        final = False
        try:
            plaintext = aead.decrypt(nonce, sealed, _associated(part, index, False))
        except InvalidTag:
            try:
                plaintext = aead.decrypt(nonce, sealed, _associated(part, index, True))
                final = True
            except InvalidTag:
                raise CryptoError(
                    f"{part}: damaged or wrong key (chunk {index} fails authentication)"
                ) from None
        yield plaintext
        index += 1
        if final:
            if source.read(1):
                raise CryptoError(f"{part}: damaged (data after the final chunk)")
            return

"""WeCom callback crypto, wire-compatible with the official WXBizMsgCrypt libraries.

WeCom signs every callback with `sha1(sorted(token, timestamp, nonce, encrypt))` and encrypts the body
with AES-256-CBC (IV = key[:16], PKCS#7 padding to a 32-byte block). The plaintext is
`16 random bytes | 4-byte big-endian length | message | receive id`.

Errors carry the official error code (`WeComCryptoError.code`) and sit under the copilot's error tree so
the web layer can answer without knowing the codes:

    code    meaning                 class                     base (HTTP)
    -40001  bad signature           WeComSignatureError       AuthError (401)
    -40005  receive id mismatch     WeComReceiveIdError       AuthError (401)
    -40002  XML/JSON parse          WeComPayloadError         ValidationError (400 for callbacks)
    -40007  decrypt failure         WeComPayloadError         ValidationError
    -40008  illegal buffer/padding  WeComPayloadError         ValidationError
    -40010  base64 decode failure   WeComPayloadError         ValidationError
    -40004  bad EncodingAESKey      WeComKeyError             ConfigurationError (500)

The signature is always checked before anything is decrypted, so a forger learns nothing from the
padding and length checks (no padding oracle).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from copilot.errors import AuthError, ConfigurationError, CopilotError, ValidationError

__all__ = [
    "EncryptedEnvelope",
    "WeComCrypto",
    "WeComCryptoError",
    "WeComKeyError",
    "WeComPayloadError",
    "WeComReceiveIdError",
    "WeComSignatureError",
]

_BLOCK = 32
_RANDOM_LEN = 16
_LEN_FIELD = 4


class WeComCryptoError(CopilotError):
    """A callback failed a crypto check; `code` is the official WXBizMsgCrypt error code."""

    code: int

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(f"[{code}] {message}")


class WeComSignatureError(WeComCryptoError, AuthError):
    """-40001: msg_signature does not match; the request did not come from WeCom with our Token."""


class WeComReceiveIdError(WeComCryptoError, AuthError):
    """-40005: the message decrypted but was addressed to another CorpID/SuiteID."""


class WeComPayloadError(WeComCryptoError, ValidationError):
    """-40002/-40007/-40008/-40010: the envelope or ciphertext is malformed."""


class WeComKeyError(WeComCryptoError, ConfigurationError):
    """-40004: the configured EncodingAESKey is not a 43-character base64 key."""


@dataclass(frozen=True)
class EncryptedEnvelope:
    """An encrypted, signed message ready to answer WeCom (passive reply) or to feed a test callback."""

    encrypt: str
    signature: str
    timestamp: str
    nonce: str

    def to_xml(self) -> str:
        """The passive-reply XML the official libraries produce."""
        return (
            f"<xml><Encrypt><![CDATA[{self.encrypt}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{self.signature}]]></MsgSignature>"
            f"<TimeStamp>{self.timestamp}</TimeStamp>"
            f"<Nonce><![CDATA[{self.nonce}]]></Nonce></xml>"
        )


def _decode_key(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != 43:
        raise WeComKeyError(
            -40004,
            f"EncodingAESKey must be exactly 43 characters (got {len(encoding_aes_key)}); "
            "copy it again from the app's callback settings",
        )
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise WeComKeyError(
            -40004, "EncodingAESKey is not base64 (only a-z, A-Z, 0-9 are allowed); copy it again"
        ) from exc
    if len(key) != 32:  # pragma: no cover - 43 valid base64 chars always decode to 32 bytes
        raise WeComKeyError(-40004, "EncodingAESKey does not decode to a 32-byte AES key")
    return key


class WeComCrypto:
    """Signs, verifies, encrypts and decrypts WeCom callback payloads for one app's settings."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if not token:
            raise ConfigurationError("the WeCom callback Token is empty; copy it from the app's settings")
        self._token = token
        self._key = _decode_key(encoding_aes_key)
        self._receive_id = receive_id.encode("utf-8")

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        """sha1 hex of the four strings sorted and concatenated, as WeCom computes msg_signature."""
        parts = sorted([self._token, timestamp, nonce, encrypt])
        return hashlib.sha1("".join(parts).encode("utf-8")).hexdigest()

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """Check the URL-verification GET and return the plaintext echostr to answer with."""
        plain = self.decrypt(msg_signature, timestamp, nonce, echostr)
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WeComPayloadError(-40008, "the decrypted echostr is not UTF-8 text") from exc

    def decrypt(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> bytes:
        """Verify the signature, then decrypt and unframe the message; returns the message bytes."""
        self._check_signature(msg_signature, timestamp, nonce, encrypt)
        try:
            cipher_bytes = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise WeComPayloadError(-40010, "the Encrypt field is not valid base64") from exc
        if not cipher_bytes or len(cipher_bytes) % 16:
            raise WeComPayloadError(
                -40007, f"ciphertext length {len(cipher_bytes)} is not a positive multiple of 16"
            )
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).decryptor()
        padded = decryptor.update(cipher_bytes) + decryptor.finalize()
        return self._unframe(self._unpad(padded))

    def encrypt(
        self, plaintext: bytes, *, nonce: str, timestamp: str, random16: bytes | None = None
    ) -> EncryptedEnvelope:
        """Frame, pad, encrypt and sign `plaintext`; `random16` makes the output deterministic in tests."""
        prefix = os.urandom(_RANDOM_LEN) if random16 is None else random16
        if len(prefix) != _RANDOM_LEN:
            raise ValidationError(f"random16 must be exactly 16 bytes (got {len(prefix)})")
        framed = prefix + struct.pack(">I", len(plaintext)) + plaintext + self._receive_id
        pad = _BLOCK - len(framed) % _BLOCK
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).encryptor()
        cipher_bytes = encryptor.update(framed + bytes([pad]) * pad) + encryptor.finalize()
        encrypt = base64.b64encode(cipher_bytes).decode("ascii")
        return EncryptedEnvelope(
            encrypt=encrypt,
            signature=self.signature(timestamp, nonce, encrypt),
            timestamp=timestamp,
            nonce=nonce,
        )

    def _check_signature(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        expected = self.signature(timestamp, nonce, encrypt)
        given = msg_signature.strip().lower().encode("utf-8")
        if not hmac.compare_digest(expected.encode("ascii"), given):
            raise WeComSignatureError(
                -40001,
                "msg_signature does not match; check the callback Token and that timestamp, nonce and "
                "the Encrypt value are passed unchanged (URL-decoded once)",
            )

    @staticmethod
    def _unpad(padded: bytes) -> bytes:
        pad = padded[-1]
        if not 1 <= pad <= _BLOCK or padded[-pad:] != bytes([pad]) * pad:
            raise WeComPayloadError(-40008, "invalid PKCS#7 padding after decryption")
        return padded[:-pad]

    def _unframe(self, content: bytes) -> bytes:
        header = _RANDOM_LEN + _LEN_FIELD
        if len(content) < header:
            raise WeComPayloadError(-40008, "decrypted buffer is shorter than its 20-byte header")
        (msg_len,) = struct.unpack(">I", content[_RANDOM_LEN:header])
        if msg_len > len(content) - header:
            raise WeComPayloadError(-40008, f"declared message length {msg_len} exceeds the buffer")
        message = content[header : header + msg_len]
        receive_id = content[header + msg_len :]
        if not hmac.compare_digest(receive_id, self._receive_id):
            raise WeComReceiveIdError(
                -40005,
                "the message is addressed to another receive id; set the CorpID (internal app) or "
                "SuiteID (third-party suite) that owns this callback",
            )
        return message

"""Callback crypto: WeCom's published sample vectors plus an independent implementation as a cross-check."""

from __future__ import annotations

import base64
import hashlib
import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from copilot.errors import AuthError, ConfigurationError, ValidationError
from copilot.wecom.protocol.crypto import (
    WeComCrypto,
    WeComCryptoError,
    WeComKeyError,
    WeComPayloadError,
    WeComReceiveIdError,
    WeComSignatureError,
)

# The sample settings and callbacks of WeCom's "加解密方案说明" and of the official library samples.
TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
RECEIVE_ID = "wx5823bf96d3bd56c7"

VERIFY_SIGNATURE = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
VERIFY_TIMESTAMP = "1409659589"
VERIFY_NONCE = "263014780"
VERIFY_ECHOSTR = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="

MSG_SIGNATURE = "477715d11cdb4164915debcba66cb864d751f3e6"
MSG_TIMESTAMP = "1409659813"
MSG_NONCE = "1372623149"
MSG_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/s"
    "YYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJ"
    "YuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGU"
    "callcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDY"
    "A5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)
MSG_PLAINTEXT = (
    b"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
    b"<FromUserName><![CDATA[mycreate]]></FromUserName>\n"
    b"<CreateTime>1409659813</CreateTime>\n"
    b"<MsgType><![CDATA[text]]></MsgType>\n"
    b"<Content><![CDATA[hello]]></Content>\n"
    b"<MsgId>4561255354251345929</MsgId>\n"
    b"<AgentID>218</AgentID>\n"
    b"</xml>"
)


@pytest.fixture
def crypto() -> WeComCrypto:
    return WeComCrypto(TOKEN, AES_KEY, RECEIVE_ID)


# --- an independent implementation, written from the protocol description -----------------------------


def reference_key() -> bytes:
    return base64.b64decode(AES_KEY + "=")


def reference_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def reference_encrypt(body: bytes, random16: bytes, receive_id: bytes, *, tail: bytes | None = None) -> str:
    """`tail` replaces the PKCS#7 padding, to build malformed ciphertexts."""
    framed = random16 + struct.pack(">I", len(body)) + body + receive_id
    n = 32 - len(framed) % 32
    padded = framed + (bytes([n]) * n if tail is None else tail)
    key = reference_key()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()


def reference_decrypt(encrypt: str) -> tuple[bytes, bytes]:
    key = reference_key()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(encrypt)) + decryptor.finalize()
    plain = plain[: -plain[-1]]
    (length,) = struct.unpack(">I", plain[16:20])
    return plain[20 : 20 + length], plain[20 + length :]


# --- the published vectors ------------------------------------------------------------------------


def test_sample_signatures_match_the_published_values(crypto: WeComCrypto) -> None:
    assert crypto.signature(VERIFY_TIMESTAMP, VERIFY_NONCE, VERIFY_ECHOSTR) == VERIFY_SIGNATURE
    assert crypto.signature(MSG_TIMESTAMP, MSG_NONCE, MSG_ENCRYPT) == MSG_SIGNATURE


def test_sample_url_verification_returns_the_plain_echostr(crypto: WeComCrypto) -> None:
    echo = crypto.verify_url(VERIFY_SIGNATURE, VERIFY_TIMESTAMP, VERIFY_NONCE, VERIFY_ECHOSTR)
    assert echo == "1616140317555161061"


def test_sample_message_decrypts_to_its_xml(crypto: WeComCrypto) -> None:
    assert crypto.decrypt(MSG_SIGNATURE, MSG_TIMESTAMP, MSG_NONCE, MSG_ENCRYPT) == MSG_PLAINTEXT
    assert reference_decrypt(MSG_ENCRYPT) == (MSG_PLAINTEXT, RECEIVE_ID.encode())


def test_signature_is_accepted_in_upper_case(crypto: WeComCrypto) -> None:
    assert crypto.decrypt(MSG_SIGNATURE.upper(), MSG_TIMESTAMP, MSG_NONCE, MSG_ENCRYPT) == MSG_PLAINTEXT


# --- cross-checks with the independent implementation --------------------------------------------


@pytest.mark.parametrize(
    "body", [b"", b"x", "中文消息，长度按字节计算".encode(), os.urandom(31), os.urandom(500)]
)
def test_encrypt_matches_the_reference_byte_for_byte(crypto: WeComCrypto, body: bytes) -> None:
    random16 = os.urandom(16)
    envelope = crypto.encrypt(body, nonce="n1", timestamp="1700000000", random16=random16)
    assert envelope.encrypt == reference_encrypt(body, random16, RECEIVE_ID.encode())
    assert envelope.signature == reference_signature(TOKEN, "1700000000", "n1", envelope.encrypt)
    assert reference_decrypt(envelope.encrypt) == (body, RECEIVE_ID.encode())


def test_reference_ciphertext_decrypts(crypto: WeComCrypto) -> None:
    body = b"<xml><MsgType>event</MsgType></xml>"
    encrypt = reference_encrypt(body, os.urandom(16), RECEIVE_ID.encode())
    signature = reference_signature(TOKEN, "1", "2", encrypt)
    assert crypto.decrypt(signature, "1", "2", encrypt) == body


def test_encrypt_pads_to_a_32_byte_block_not_16(crypto: WeComCrypto) -> None:
    # 16 + 4 + 10 + 18 = 48 bytes framed: a 16-byte block would need 0 extra bytes, 32-byte needs 16.
    envelope = crypto.encrypt(b"0123456789", nonce="n", timestamp="t", random16=bytes(16))
    assert len(base64.b64decode(envelope.encrypt)) == 64


def test_round_trip_with_random_prefix_and_reply_xml(crypto: WeComCrypto) -> None:
    envelope = crypto.encrypt(MSG_PLAINTEXT, nonce="987", timestamp="1409659813")
    assert crypto.decrypt(envelope.signature, envelope.timestamp, envelope.nonce, envelope.encrypt) == (
        MSG_PLAINTEXT
    )
    xml = envelope.to_xml()
    assert f"<Encrypt><![CDATA[{envelope.encrypt}]]></Encrypt>" in xml
    assert f"<MsgSignature><![CDATA[{envelope.signature}]]></MsgSignature>" in xml


# --- failures and their codes ------------------------------------------------------------------------


def test_tampered_signature_is_an_auth_error_with_code_40001(crypto: WeComCrypto) -> None:
    with pytest.raises(WeComSignatureError) as caught:
        crypto.decrypt("0" * 40, MSG_TIMESTAMP, MSG_NONCE, MSG_ENCRYPT)
    assert caught.value.code == -40001
    assert isinstance(caught.value, AuthError) and isinstance(caught.value, WeComCryptoError)


def test_changed_timestamp_or_wrong_token_fails_the_signature() -> None:
    with pytest.raises(WeComSignatureError):
        WeComCrypto(TOKEN, AES_KEY, RECEIVE_ID).decrypt(MSG_SIGNATURE, "1409659814", MSG_NONCE, MSG_ENCRYPT)
    with pytest.raises(WeComSignatureError):
        WeComCrypto("other", AES_KEY, RECEIVE_ID).verify_url(
            VERIFY_SIGNATURE, VERIFY_TIMESTAMP, VERIFY_NONCE, VERIFY_ECHOSTR
        )


def test_receive_id_mismatch_is_an_auth_error_with_code_40005() -> None:
    other = WeComCrypto(TOKEN, AES_KEY, "ww-another-corp")
    with pytest.raises(WeComReceiveIdError) as caught:
        other.decrypt(MSG_SIGNATURE, MSG_TIMESTAMP, MSG_NONCE, MSG_ENCRYPT)
    assert caught.value.code == -40005 and isinstance(caught.value, AuthError)


def test_receive_id_that_is_a_prefix_is_still_a_mismatch() -> None:
    prefix = WeComCrypto(TOKEN, AES_KEY, RECEIVE_ID[:-1])
    with pytest.raises(WeComReceiveIdError):
        prefix.decrypt(MSG_SIGNATURE, MSG_TIMESTAMP, MSG_NONCE, MSG_ENCRYPT)


def signed(encrypt: str) -> tuple[str, str, str, str]:
    return reference_signature(TOKEN, "1", "2", encrypt), "1", "2", encrypt


@pytest.mark.parametrize(
    ("encrypt", "code"),
    [
        ("not base64 !!", -40010),
        (base64.b64encode(b"short").decode(), -40007),
        # 16 + 4 + 4 + 18 = 42 framed bytes; each tail below brings them to 64.
        (reference_encrypt(b"body", bytes(16), RECEIVE_ID.encode(), tail=bytes(22)), -40008),
        (reference_encrypt(b"body", bytes(16), RECEIVE_ID.encode(), tail=bytes([33]) * 22), -40008),
        (reference_encrypt(b"body", bytes(16), RECEIVE_ID.encode(), tail=bytes(21) + b"\x16"), -40008),
    ],
    ids=["not-base64", "not-block-multiple", "zero-padding", "padding-over-32", "inconsistent-padding"],
)
def test_malformed_ciphertext_is_a_validation_error(crypto: WeComCrypto, encrypt: str, code: int) -> None:
    with pytest.raises(WeComPayloadError) as caught:
        crypto.decrypt(*signed(encrypt))
    assert caught.value.code == code
    assert isinstance(caught.value, ValidationError) and not isinstance(caught.value, AuthError)


def test_declared_length_beyond_the_buffer_is_an_illegal_buffer(crypto: WeComCrypto) -> None:
    framed = bytes(16) + struct.pack(">I", 10_000) + b"tiny"
    padded = framed + bytes([32 - len(framed) % 32]) * (32 - len(framed) % 32)
    key = reference_key()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    encrypt = base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()
    with pytest.raises(WeComPayloadError) as caught:
        crypto.decrypt(*signed(encrypt))
    assert caught.value.code == -40008


@pytest.mark.parametrize("key", [AES_KEY[:-1], AES_KEY + "A", AES_KEY[:-1] + "!"])
def test_bad_encoding_aes_key_is_a_configuration_error_with_code_40004(key: str) -> None:
    with pytest.raises(WeComKeyError) as caught:
        WeComCrypto(TOKEN, key, RECEIVE_ID)
    assert caught.value.code == -40004 and isinstance(caught.value, ConfigurationError)


def test_random_prefix_must_be_16_bytes(crypto: WeComCrypto) -> None:
    with pytest.raises(ValidationError, match="16 bytes"):
        crypto.encrypt(b"x", nonce="n", timestamp="t", random16=b"short")

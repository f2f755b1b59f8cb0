"""WeCom (企业微信) protocol layer: callback crypto, message parsing, the outbound API client and
the JS-SDK signature. No storage and no routes live here."""

from copilot.wecom.client import KfSyncPage, WeComApiError, WeComClient
from copilot.wecom.crypto import (
    EncryptedEnvelope,
    WeComCrypto,
    WeComCryptoError,
    WeComKeyError,
    WeComPayloadError,
    WeComReceiveIdError,
    WeComSignatureError,
)
from copilot.wecom.jssdk import agent_config_signature
from copilot.wecom.messages import CallbackEnvelope, WeComEvent, parse_envelope, parse_message

__all__ = [
    "CallbackEnvelope",
    "EncryptedEnvelope",
    "KfSyncPage",
    "WeComApiError",
    "WeComClient",
    "WeComCrypto",
    "WeComCryptoError",
    "WeComEvent",
    "WeComKeyError",
    "WeComPayloadError",
    "WeComReceiveIdError",
    "WeComSignatureError",
    "agent_config_signature",
    "parse_envelope",
    "parse_message",
]

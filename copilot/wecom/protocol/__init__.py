"""WeCom (企业微信) protocol: callback crypto (WXBizMsgCrypt), callback and message parsing, the outbound
API client (token cache, retries) and the JS-SDK signature.

No storage, no routes and no policy live here, and nothing here imports `copilot.wecom.automation`.
"""

from copilot.wecom.protocol.client import KfSyncPage, WeComApiError, WeComClient
from copilot.wecom.protocol.crypto import (
    EncryptedEnvelope,
    WeComCrypto,
    WeComCryptoError,
    WeComKeyError,
    WeComPayloadError,
    WeComReceiveIdError,
    WeComSignatureError,
)
from copilot.wecom.protocol.jssdk import agent_config_signature
from copilot.wecom.protocol.messages import CallbackEnvelope, WeComEvent, parse_envelope, parse_message

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
